"""``!style`` (prefix, attachments on the message or a reply) and ``/style`` (slash, attachment options)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.delivery import InteractionReporter, MessageReporter
from bot.jobs import InputFile
from bot.parsing import SEED_MAX, STRENGTH_MAX, STRENGTH_MIN, USAGE, ArgumentError, StyleArgs, parse_style_args
from bot.render import error_embed

if TYPE_CHECKING:
    from bot.app import StyleBot

PRESET_CHOICES = [
    app_commands.Choice(name="fast: quick, 384 px", value="fast"),
    app_commands.Choice(name="balanced: the default, 512 px", value="balanced"),
    app_commands.Choice(name="quality: slow, 768 px", value="quality"),
]


class StyleCog(commands.Cog):
    def __init__(self, bot: StyleBot) -> None:
        self.bot = bot

    @commands.command(name="style")
    async def style_prefix(self, ctx: commands.Context, *, args: str = "") -> None:
        """Stylise the first attached image with the second (or reply to the content image)."""
        try:
            parsed = parse_style_args(args)
        except ArgumentError as exc:
            usage = USAGE.format(prefix=self.bot.settings.bot_prefix)
            await ctx.reply(embed=error_embed(f"{exc}\n{usage}"), mention_author=False)
            return
        files = await self._collect(ctx.message)
        if files is None:
            return
        self.bot.jobs.spawn(
            self.bot.jobs.handle_request(MessageReporter(ctx.message), files=files, args=parsed)
        )

    async def _collect(self, message: discord.Message) -> list[InputFile] | None:
        """The images: on the message itself, or content from the replied-to message + styles from this one."""
        attachments = list(message.attachments)
        ref = message.reference
        if ref is not None and ref.message_id is not None:
            replied = ref.resolved if isinstance(ref.resolved, discord.Message) else None
            if replied is None:
                try:
                    replied = await message.channel.fetch_message(ref.message_id)
                except discord.HTTPException:
                    await message.reply(
                        embed=error_embed("I can't read the message you replied to; attach both images instead."),
                        mention_author=False,
                    )
                    return None
            if replied.attachments:
                attachments = [replied.attachments[0], *attachments] if attachments else list(replied.attachments)
        return [InputFile.from_attachment(a) for a in attachments]

    @app_commands.command(name="style", description="Paint the content image in the style of the style image.")
    @app_commands.describe(
        content="The picture to repaint",
        style="The picture whose style to copy",
        preset="Speed/quality trade-off (default: balanced)",
        strength=f"How strong the style is: {STRENGTH_MIN:g} subtle … {STRENGTH_MAX:g} strong (default 1)",
        preserve_colors="Keep the content's colours",
        seed="Random seed, for reproducible results",
        style2="A second style image to blend in",
        style3="A third style image to blend in",
    )
    @app_commands.choices(preset=PRESET_CHOICES)
    async def style_slash(
        self,
        interaction: discord.Interaction,
        content: discord.Attachment,
        style: discord.Attachment,
        preset: app_commands.Choice[str] | None = None,
        strength: app_commands.Range[float, STRENGTH_MIN, STRENGTH_MAX] = 1.0,
        preserve_colors: bool = False,
        seed: app_commands.Range[int, 0, SEED_MAX] = 0,
        style2: discord.Attachment | None = None,
        style3: discord.Attachment | None = None,
    ) -> None:
        # Acknowledge first: Discord drops interactions not answered within 3 seconds.
        await interaction.response.defer(thinking=True)
        attachments = [a for a in (content, style, style2, style3) if a is not None]
        args = StyleArgs(
            preset=preset.value if preset else None,
            strength=float(strength),
            preserve_colors=preserve_colors,
            seed=int(seed),
        )
        self.bot.jobs.spawn(
            self.bot.jobs.handle_request(
                InteractionReporter(interaction),
                files=[InputFile.from_attachment(a) for a in attachments],
                args=args,
            )
        )
