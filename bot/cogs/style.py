"""``!style`` (prefix, attachments on the message or a reply) and ``/style`` (slash, attachment options)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import KNOWN_PRESETS, Settings
from bot.delivery import InteractionReporter, MessageReporter
from bot.jobs import JobService
from bot.parsing import SEED_MAX, STRENGTH_MAX, STRENGTH_MIN, USAGE, ArgumentError, StyleArgs, parse_style_args
from bot.policy import InputFile
from bot.render import error_embed
from nst_engine.presets import DEFAULT_PRESET, PRESETS

# Built from the presets, so the menu says what each one really does; a server's limits may refuse some.
PRESET_CHOICES = [
    app_commands.Choice(name=f"{name}: {PRESETS[name].description}"[:100], value=name) for name in KNOWN_PRESETS
]


class StyleCog(commands.Cog):
    def __init__(self, settings: Settings, jobs: JobService) -> None:
        self.settings = settings
        self.jobs = jobs

    @commands.command(name="style")
    async def style_prefix(self, ctx: commands.Context[commands.Bot], *, args: str = "") -> None:
        """Stylize the first attached image with the second (or reply to the content image)."""
        try:
            parsed = parse_style_args(args)
        except ArgumentError as exc:
            usage = USAGE.format(prefix=self.settings.bot_prefix)
            await ctx.reply(embed=error_embed(f"{exc}\n{usage}"), mention_author=False)
            return
        files = await self._collect(ctx.message)
        if files is None:
            return
        self.jobs.submit(MessageReporter(ctx.message), files, parsed)

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
        preset=f"Speed/quality trade-off (default: {DEFAULT_PRESET})",
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
        self.jobs.submit(InteractionReporter(interaction), [InputFile.from_attachment(a) for a in attachments], args)
