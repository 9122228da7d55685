"""``/style-gallery list``: the paintings on hand (built-in and this server's own, which admins change with
``/style-admin gallery``); and the **Stylize** context menu."""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import replace

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.gallery.builtin import BUILTINS
from bot.gallery.sheet import SheetSection, decode_thumbs, gallery_sheet_jpeg
from bot.gallery.store import (
    GalleryEntry,
    GalleryStore,
    PaintingCatalog,
    UnknownPainting,
)
from bot.requests.arguments import StyleArgs
from bot.requests.defaults import Baseline, DefaultsLookup
from bot.requests.gate import RequestGate
from bot.requests.policy import ImageInput, InputFile, Source, choose_preset
from bot.storage.limits import LimitsLookup
from bot.ui.buttons import JobControls
from bot.ui.painting_picker import StylizePicker
from bot.ui.render import COLOR_INFO, error_embed
from bot.ui.reporters import MessageReporter
from nst_engine.images import human_bytes
from nst_engine.presets import PRESETS

log = logging.getLogger(__name__)

SHEET_NAME = "gallery.jpg"


class GalleryCog(commands.GroupCog, group_name="style-gallery", group_description="Paintings to style pictures with"):
    def __init__(self, settings: Settings, store: GalleryStore, limits_for: LimitsLookup) -> None:
        self.settings = settings
        self.store = store
        self.limits_for = limits_for
        super().__init__()

    # -- list ----------------------------------------------------------------------------------------

    @app_commands.command(name="list", description="Show the paintings you can use here, with a picture of each")
    async def list_paintings(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild = interaction.guild
        entries: list[GalleryEntry] = []
        server: SheetSection | None = None
        if guild is not None:
            entries = await self.store.entries(guild.id)
            thumbs = decode_thumbs(await self.store.thumbnails(guild.id))
            server = SheetSection(
                f"{guild.name}'s gallery", thumbs,
                empty_text="No paintings yet: a moderator adds them with /style-admin gallery add.",
            )
        sheet = await asyncio.to_thread(gallery_sheet_jpeg, server)
        embed = discord.Embed(title="Paintings", color=COLOR_INFO)
        embed.add_field(
            name="Built-in (everywhere)",
            value="\n".join(f"**{p.name}** · {p.artist}, {p.year}" for p in BUILTINS),
            inline=False,
        )
        if guild is not None:
            count, used = await self.store.usage(guild.id)
            lines = [f"**{e.name}** · added by <@{e.added_by}>" for e in entries]
            embed.add_field(name="This server", value=_clip_lines(lines) or "None yet.", inline=False)
            embed.set_footer(text=usage_text(self.store, count, used))
        else:
            embed.description = "In direct messages only the built-in paintings are available."
        embed.add_field(
            name="Use one",
            value=(
                "`/style content:<image> painting:<name>` · "
                f"`{self.settings.bot_prefix}style <name> [preset] [strength]` with one image · "
                "right-click a message with an image → Apps → **Stylize**"
            ),
            inline=False,
        )
        embed.set_image(url=f"attachment://{SHEET_NAME}")
        await interaction.followup.send(
            embed=embed, file=discord.File(io.BytesIO(sheet), filename=SHEET_NAME), ephemeral=True
        )

def usage_text(store: GalleryStore, count: int, used: int) -> str:
    """A server's gallery use, for the footers of the gallery commands."""
    return (
        f"{count} of {store.max_items} paintings · {human_bytes(used)} of "
        f"{human_bytes(store.max_bytes)} stored"
    )


def _clip_lines(lines: list[str], limit: int = 1000) -> str:
    """Lines joined, within an embed field's 1024 characters (the rest is counted, not lost silently)."""
    out: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        if used + len(line) + 1 > limit:
            out.append(f"… and {len(lines) - i} more")
            break
        out.append(line)
        used += len(line) + 1
    return "\n".join(out)


# -- "Stylize" on any message ------------------------------------------------------------------------------

NO_IMAGE = (
    "That message has no image attached. Right-click a message that holds a picture (PNG, JPEG, WebP, GIF or BMP), "
    "then **Apps → Stylize**."
)


def first_image(message: discord.Message) -> discord.Attachment | None:
    """The message's first attachment that is a picture (by Discord's content type, or its pixel size)."""
    for attachment in message.attachments:
        ctype = (attachment.content_type or "").split(";")[0].strip().lower()
        if ctype.startswith("image/") or (not ctype and attachment.width):
            return attachment
    return None


class ReplyReporter(MessageReporter):
    """Status and result as replies to ``message``, for ``user`` (who asked from the message's menu); a refusal goes
    to the picker the person pressed **Stylize** in, which only they see."""

    def __init__(self, message: discord.Message, user: discord.User | discord.Member,
                 picker: discord.Interaction) -> None:
        super().__init__(message)
        self.user = user
        self.picker = picker

    async def failed(self, message: str, *, title: str) -> None:
        if self.started:
            await super().failed(message, title=title)
            return
        try:
            await self.picker.edit_original_response(content=None, embed=error_embed(message, title=title), view=None)
        except discord.HTTPException as exc:  # the picker's token expired: say it in the channel after all
            log.info("could not refuse in the picker (%s); replying instead", exc)
            await super().failed(message, title=title)
            return
        if self._status is not None:  # "Downloading…" was public: the refusal is not
            try:
                await self._status.delete()
            except discord.HTTPException:
                log.info("could not remove the status of a refused Stylize request")


class StylizeCog(commands.Cog):
    """The message context-menu command "Stylize": pick a painting and a preset, and the message's picture is
    painted in a reply to it."""

    def __init__(self, settings: Settings, jobs: JobControls, catalog: PaintingCatalog, limits_for: LimitsLookup,
                 tree: app_commands.CommandTree, *, gate: RequestGate, defaults: DefaultsLookup) -> None:
        self.settings = settings
        self.jobs = jobs
        self.catalog = catalog
        self.limits_for = limits_for
        self.tree = tree
        self.gate = gate
        self.defaults = defaults
        self.menu = app_commands.ContextMenu(name="Stylize", callback=self.stylize)

    async def cog_load(self) -> None:
        self.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.tree.remove_command(self.menu.name, type=self.menu.type)

    async def stylize(self, interaction: discord.Interaction, message: discord.Message) -> None:
        image = first_image(message)
        if image is None:
            await interaction.response.send_message(embed=error_embed(NO_IMAGE), ephemeral=True)
            return
        guild_id = interaction.guild.id if interaction.guild else None
        limits = await self.limits_for(guild_id)
        base = await self.defaults(interaction.user.id, guild_id)
        presets = [(p, f"{p}: {PRESETS[p].description}"[:100]) for p in limits.allowed_presets]

        async def go(click: discord.Interaction, painting_name: str, preset: str) -> None:
            await self._start(click, message, image, painting_name, replace(base.args, preset=preset), base)

        names = await self.catalog.names(guild_id)
        favourite = (base.defaults.painting or "").casefold()
        picker = StylizePicker(
            user_id=interaction.user.id, paintings=names, presets=presets,
            default_preset=choose_preset(base.args.preset, limits), on_go=go,
            default_painting=next((n for n in names if n.casefold() == favourite), None),
        )
        await interaction.response.send_message(
            f"Stylize `{image.filename}`: choose a painting and a preset, then press **Stylize**.", view=picker,
            ephemeral=True,
        )

    async def _start(self, interaction: discord.Interaction, message: discord.Message, image: discord.Attachment,
                     painting_name: str, args: StyleArgs, base: Baseline) -> None:
        guild_id = interaction.guild.id if interaction.guild else None
        try:
            painting = await self.catalog.resolve(guild_id, painting_name)
        except UnknownPainting as exc:  # removed since the picker opened
            await interaction.response.edit_message(content=None, embed=error_embed(str(exc)), view=None)
            return
        sources: list[Source] = [InputFile.from_attachment(image), ImageInput(painting.name, painting.image)]
        failure = await self.gate.check(user_id=interaction.user.id, guild_id=guild_id, origin=ReplyReporter.origin,
                                        sources=sources, args=args)
        if failure is not None:  # in the picker, which only the asker sees
            await interaction.response.edit_message(
                content=None, embed=error_embed(failure.message, title=failure.title), view=None)
            return
        await interaction.response.edit_message(
            content=f"Painting `{image.filename}` in the style of **{painting.name}** ({args.preset}): the result "
            f"will be a reply to {message.jump_url}.",
            view=None,
        )
        reporter = ReplyReporter(message, interaction.user, interaction)
        reporter.note = base.note(args, painting=painting.name)
        self.jobs.submit(reporter, sources, args)
