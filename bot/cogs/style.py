"""``!style`` (prefix, attachments on the message or a reply) and ``/style`` (slash, attachment options)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import KNOWN_PRESETS, Settings
from bot.gallery.named import parse_painting_request
from bot.gallery.store import PaintingCatalog, UnknownPainting, painting_sources
from bot.requests.arguments import SEED_MAX, STRENGTH_MAX, STRENGTH_MIN, STYLE_USAGE, ArgumentError, StyleArgs
from bot.requests.defaults import Baseline, DefaultsLookup
from bot.requests.gate import RequestGate
from bot.requests.policy import InputFile, Source
from bot.requests.service import JobService
from bot.ui.render import error_embed
from bot.ui.replies import answer
from bot.ui.reporters import InteractionReporter, MessageReporter
from nst_engine.presets import DEFAULT_PRESET, PRESETS

# Built from the presets, so the menu says what each one really does; a server's limits may refuse some.
PRESET_CHOICES = [
    app_commands.Choice(name=f"{name}: {PRESETS[name].description}"[:100], value=name) for name in KNOWN_PRESETS
]

NO_STYLE = (
    "Choose a `painting` (start typing to see them) or attach a `style` image, so I know what to paint "
    "`content` like. `/style-gallery list` shows the paintings; `/style-settings painting:` sets a favourite."
)
NO_PICTURE = (
    "Attach the picture to paint (one image), or reply to a message that holds it: "
    "`{prefix}style starry night` with a photo attached."
)


class StyleCog(commands.Cog):
    def __init__(self, settings: Settings, jobs: JobService, paintings: PaintingCatalog, *, gate: RequestGate,
                 defaults: DefaultsLookup) -> None:
        self.settings = settings
        self.jobs = jobs
        self.paintings = paintings  # built-in and gallery paintings, named instead of a style image (bot/gallery/)
        self.gate = gate  # the checks before anything public is posted
        self.defaults = defaults  # each person's own defaults, for the options they leave out

    async def _favourite(self, base: Baseline, guild_id: int | None) -> str | None:
        """The person's favourite painting when it can be used here."""
        name = base.defaults.painting
        return name if name is not None and await self.paintings.exists(guild_id, name) else None

    @commands.command(name="style")
    async def style_prefix(self, ctx: commands.Context[commands.Bot], *, args: str = "") -> None:
        """Stylize the first attached image with the second (or reply to the content image), or with paintings
        named first: ``!style starry night fast``."""
        guild_id = ctx.guild.id if ctx.guild else None
        files = await self._collect(ctx.message)
        if files is None:
            return
        base = await self.defaults(ctx.author.id, guild_id)
        try:
            request = await parse_painting_request(args, self.paintings, guild_id, one_image=len(files) <= 1,
                                                   base=base.args)
        except ArgumentError as exc:
            usage = STYLE_USAGE.format(prefix=self.settings.bot_prefix)
            await answer(ctx.message, error_embed(f"{exc}\n{usage}"))
            return
        except UnknownPainting as exc:
            await answer(ctx.message, error_embed(str(exc)))
            return
        sources: list[Source] = list(files)
        paintings = list(request.paintings)
        favourite = await self._favourite(base, guild_id) if len(files) == 1 and not paintings else None
        if favourite is not None:  # one picture and no style: the person's favourite painting
            paintings.append(favourite)
        if paintings:
            if not files:
                await answer(ctx.message, error_embed(NO_PICTURE.format(prefix=self.settings.bot_prefix)))
                return
            try:
                sources += await painting_sources(self.paintings, guild_id, paintings)
            except UnknownPainting as exc:  # removed a moment ago
                await answer(ctx.message, error_embed(str(exc)))
                return
        failure = await self.gate.check(user_id=ctx.author.id, guild_id=guild_id, origin="prefix", sources=sources,
                                        args=request.args)
        reporter = MessageReporter(ctx.message)
        if failure is not None:  # Discord has no private replies: a refusal of a message is a reply (or a DM)
            await reporter.failed(failure.message, title=failure.title)
            return
        reporter.note = base.note(request.args, painting=favourite)
        self.jobs.submit(reporter, sources, request.args)

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
                    await answer(
                        message, error_embed("I can't read the message you replied to; attach both images instead.")
                    )
                    return None
            if replied.attachments:
                attachments = [replied.attachments[0], *attachments] if attachments else list(replied.attachments)
        return [InputFile.from_attachment(a) for a in attachments]

    @app_commands.command(name="style", description="Paint the content image in the style of a painting or image.")
    @app_commands.describe(
        content="The picture to repaint",
        painting="A painting on hand (built-in or this server's gallery) instead of a style image",
        style="The picture whose style to copy (optional when you choose a painting)",
        preset=f"Speed/quality trade-off (default: yours from /style-settings, else {DEFAULT_PRESET})",
        strength=f"How strong the style is: {STRENGTH_MIN:g} subtle … {STRENGTH_MAX:g} strong (default: yours, else 1)",
        preserve_colors="Keep the content's colours (default: yours from /style-settings, else no)",
        seed="Random seed, for reproducible results",
        fit="An animation over this server's limits: paint its first frames, or smaller, instead of refusing it",
        style2="A second style image to blend in",
        style3="A third style image to blend in",
    )
    @app_commands.choices(preset=PRESET_CHOICES)
    async def style_slash(
        self,
        interaction: discord.Interaction,
        content: discord.Attachment,
        painting: str | None = None,
        style: discord.Attachment | None = None,
        preset: app_commands.Choice[str] | None = None,
        strength: app_commands.Range[float, STRENGTH_MIN, STRENGTH_MAX] | None = None,
        preserve_colors: bool | None = None,
        seed: app_commands.Range[int, 0, SEED_MAX] = 0,
        fit: bool = False,
        style2: discord.Attachment | None = None,
        style3: discord.Attachment | None = None,
    ) -> None:
        guild_id = interaction.guild.id if interaction.guild else None
        base = await self.defaults(interaction.user.id, guild_id)
        favourite = await self._favourite(base, guild_id) if style is None and painting is None else None
        painting = painting if painting is not None else favourite
        if style is None and painting is None:
            await interaction.response.send_message(embed=error_embed(NO_STYLE), ephemeral=True)
            return
        # Every check before anything public: a refusal is for the asker alone (ephemeral).
        attachments = [a for a in (content, style, style2, style3) if a is not None]
        sources: list[Source] = [InputFile.from_attachment(a) for a in attachments]
        try:
            if painting is not None:
                sources += await painting_sources(self.paintings, guild_id, [painting])  # names close ones if unknown
        except UnknownPainting as exc:
            await interaction.response.send_message(embed=error_embed(str(exc)), ephemeral=True)
            return
        args = StyleArgs(
            preset=preset.value if preset else base.args.preset,
            strength=base.args.strength if strength is None else float(strength),
            preserve_colors=base.args.preserve_colors if preserve_colors is None else preserve_colors,
            seed=int(seed),
            fit=fit,
        )
        failure = await self.gate.check(user_id=interaction.user.id, guild_id=guild_id, origin="slash",
                                        sources=sources, args=args)
        if failure is not None:
            await interaction.response.send_message(embed=error_embed(failure.message, title=failure.title),
                                                    ephemeral=True)
            return
        # Acknowledge now, publicly: the status and the result are for the channel (Discord allows 3 seconds).
        await interaction.response.defer(thinking=True)
        reporter = InteractionReporter(interaction)
        reporter.note = base.note(args, painting=favourite)
        self.jobs.submit(reporter, sources, args)

    @style_slash.autocomplete("painting")
    async def _painting_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        names = await self.paintings.suggest(interaction.guild.id if interaction.guild else None, current)
        return [app_commands.Choice(name=n, value=n) for n in names]
