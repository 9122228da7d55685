"""``/style-gallery add|list|remove``: each server's own paintings, next to the built-in ones."""

from __future__ import annotations

import asyncio
import io
import logging

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.gallery.builtin import BUILTINS
from bot.gallery.sheet import SheetSection, decode_thumbs, gallery_sheet_jpeg
from bot.gallery.store import (
    GalleryEntry,
    GalleryError,
    GalleryStore,
    PaintingCatalog,
    UnknownPainting,
    prepare_upload,
    validate_name,
)
from bot.requests.arguments import StyleArgs
from bot.requests.downloads import DownloadError, download
from bot.requests.policy import ImageInput, InputFile, Source, choose_preset, image_refusal
from bot.storage.limits import LimitsLookup
from bot.ui.buttons import JobControls
from bot.ui.painting_picker import StylizePicker
from bot.ui.render import COLOR_INFO, COLOR_OK, error_embed
from bot.ui.reporters import MessageReporter
from nst_engine.errors import ImageError
from nst_engine.images import ImageLimits, human_bytes
from nst_engine.presets import PRESETS

log = logging.getLogger(__name__)

_GUILD_ONLY = (
    "Galleries belong to servers. In direct messages you can use the built-in paintings "
    "(`/style-gallery list` shows them)."
)
SHEET_NAME = "gallery.jpg"


class NotInServer(app_commands.CheckFailure):
    """A server-only gallery command used in direct messages."""


def _in_server(interaction: discord.Interaction) -> bool:
    # Checked before the permission check, so a DM gets "only in servers", not "you need Manage Server".
    if interaction.guild is None:
        raise NotInServer(_GUILD_ONLY)
    return True




class GalleryCog(commands.GroupCog, group_name="style-gallery", group_description="Paintings to style pictures with"):
    def __init__(self, settings: Settings, store: GalleryStore, limits_for: LimitsLookup) -> None:
        self.settings = settings
        self.store = store
        self.limits_for = limits_for
        self.session: aiohttp.ClientSession | None = None
        super().__init__()

    async def cog_load(self) -> None:
        self.session = aiohttp.ClientSession()

    async def cog_unload(self) -> None:
        if self.session is not None:
            await self.session.close()

    # -- add -----------------------------------------------------------------------------------------

    @app_commands.command(name="add", description="Add a painting to this server's gallery (Manage Server)")
    @app_commands.describe(name="What members will call it (2-32 characters)", image="The painting")
    # default_permissions hides the command from members, but Discord ignores it on subcommands: the check below is
    # what enforces it, in code, whatever a server's command permissions say.
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.check(_in_server)
    async def add(self, interaction: discord.Interaction, name: str, image: discord.Attachment) -> None:
        assert interaction.guild is not None
        guild_id = interaction.guild.id
        limits = await self.limits_for(guild_id)
        try:
            name = validate_name(name)
            existing = await self.store.get(guild_id, name)
            if existing is not None:
                raise GalleryError(
                    f"This server's gallery already has a painting called **{existing.name}** (names ignore "
                    "case). Pick another name, or remove that one first."
                )
            count, _ = await self.store.usage(guild_id)
            if count >= self.store.max_items:
                raise GalleryError(
                    f"This server's gallery is full: {count} of {self.store.max_items} paintings. "
                    "Remove one with `/style-gallery remove` first."
                )
            self._check_metadata(image, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels,
                                 max_mp=limits.max_megapixels)
        except GalleryError as exc:
            await interaction.response.send_message(embed=error_embed(str(exc)), ephemeral=True)
            return
        # Downloading and checking can take a while: acknowledge now (Discord allows 3 seconds).
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            assert self.session is not None
            data = await download(self.session, image.url, filename=image.filename, max_bytes=limits.max_bytes,
                                  timeout=self.settings.download_timeout)
            image_limits = ImageLimits(max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)
            prepared = await asyncio.to_thread(
                prepare_upload, data, limits=image_limits, max_side=self.settings.gallery_max_side
            )
            entry = await self.store.add(guild_id, name, prepared, added_by=interaction.user.id)
        except (DownloadError, GalleryError) as exc:
            await interaction.followup.send(embed=error_embed(str(exc)), ephemeral=True)
            return
        except ImageError as exc:
            await interaction.followup.send(embed=error_embed(image_refusal(exc, filename=image.filename)),
                                            ephemeral=True)
            return
        log.info("gallery: guild=%s user=%s added %r (%d bytes)", guild_id, interaction.user.id, entry.name,
                 entry.nbytes)
        count, used = await self.store.usage(guild_id)
        embed = discord.Embed(
            title="Painting added",
            description=(
                f"**{entry.name}** is in this server's gallery ({entry.width}×{entry.height}).\n"
                f"Use it with `/style content:<image> painting:{entry.name}`, "
                f"`{self.settings.bot_prefix}style {entry.name}` with one image attached, "
                "or right-click a message with an image → Apps → **Stylize**."
            ),
            color=COLOR_OK,
        )
        embed.set_thumbnail(url="attachment://painting.jpg")
        embed.set_footer(text=self._usage_text(count, used))
        await interaction.followup.send(
            embed=embed, file=discord.File(io.BytesIO(prepared.thumb), filename="painting.jpg"), ephemeral=True
        )

    @staticmethod
    def _check_metadata(image: discord.Attachment, *, max_bytes: int, max_pixels: int, max_mp: float) -> None:
        """Refuse (before downloading) what Discord's metadata already shows to be wrong."""
        ctype = (image.content_type or "").split(";")[0].strip().lower()
        if ctype and not ctype.startswith("image/"):
            raise GalleryError(
                f"`{image.filename}` is not an image (Discord says `{ctype}`); send PNG, JPEG, WebP, GIF or BMP."
            )
        if image.size > max_bytes:
            raise GalleryError(
                f"`{image.filename}` is {human_bytes(image.size)}; the limit here is {human_bytes(max_bytes)}. "
                "Send a smaller file."
            )
        if image.width and image.height and image.width * image.height > max_pixels:
            raise GalleryError(
                f"`{image.filename}` is {image.width}×{image.height} px; the limit here is {max_mp:g} MP. "
                "Send a smaller image."
            )

    def _usage_text(self, count: int, used: int) -> str:
        return (
            f"{count} of {self.store.max_items} paintings · {human_bytes(used)} of "
            f"{human_bytes(self.store.max_bytes)} stored"
        )

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
                empty_text="No paintings yet: a moderator adds them with /style-gallery add.",
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
            embed.set_footer(text=self._usage_text(count, used))
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

    # -- remove --------------------------------------------------------------------------------------

    @app_commands.command(name="remove", description="Remove a painting from this server's gallery (Manage Server)")
    @app_commands.describe(name="The painting to remove")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.check(_in_server)
    async def remove(self, interaction: discord.Interaction, name: str) -> None:
        assert interaction.guild is not None
        entry = await self.store.remove(interaction.guild.id, name)
        if entry is None:
            await interaction.response.send_message(
                embed=error_embed(f"This server's gallery has no painting called `{name[:64]}`; "
                                  "`/style-gallery list` shows them."),
                ephemeral=True,
            )
            return
        log.info("gallery: guild=%s user=%s removed %r", interaction.guild.id, interaction.user.id, entry.name)
        count, used = await self.store.usage(interaction.guild.id)
        embed = discord.Embed(
            title="Painting removed",
            description=f"**{entry.name}** is no longer in this server's gallery. Jobs already waiting with it "
            "still finish.",
            color=COLOR_OK,
        )
        embed.set_footer(text=self._usage_text(count, used))
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @remove.autocomplete("name")
    async def _remove_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild is None:
            return []
        key = current.casefold().strip()
        names = [e.name for e in await self.store.entries(interaction.guild.id)]
        names = [n for n in names if key in n.casefold()]
        return [app_commands.Choice(name=n, value=n) for n in names[:25]]


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
    """Status and result as replies to ``message``, for ``user`` (who asked from the message's menu)."""

    def __init__(self, message: discord.Message, user: discord.User | discord.Member) -> None:
        super().__init__(message)
        self.user = user


class StylizeCog(commands.Cog):
    """The message context-menu command "Stylize": pick a painting and a preset, and the message's picture is
    painted in a reply to it."""

    def __init__(self, settings: Settings, jobs: JobControls, catalog: PaintingCatalog, limits_for: LimitsLookup,
                 tree: app_commands.CommandTree) -> None:
        self.settings = settings
        self.jobs = jobs
        self.catalog = catalog
        self.limits_for = limits_for
        self.tree = tree
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
        presets = [(p, f"{p}: {PRESETS[p].description}"[:100]) for p in limits.allowed_presets]

        async def go(click: discord.Interaction, painting_name: str, preset: str) -> None:
            await self._start(click, message, image, painting_name, preset)

        picker = StylizePicker(
            user_id=interaction.user.id, paintings=await self.catalog.names(guild_id), presets=presets,
            default_preset=choose_preset(None, limits), on_go=go,
        )
        await interaction.response.send_message(
            f"Stylize `{image.filename}`: choose a painting and a preset, then press **Stylize**.", view=picker,
            ephemeral=True,
        )

    async def _start(self, interaction: discord.Interaction, message: discord.Message, image: discord.Attachment,
                     painting_name: str, preset: str) -> None:
        guild_id = interaction.guild.id if interaction.guild else None
        try:
            painting = await self.catalog.resolve(guild_id, painting_name)
        except UnknownPainting as exc:  # removed since the picker opened
            await interaction.response.edit_message(content=None, embed=error_embed(str(exc)), view=None)
            return
        await interaction.response.edit_message(
            content=f"Painting `{image.filename}` in the style of **{painting.name}** ({preset}): the result will be "
            f"a reply to {message.jump_url}.",
            view=None,
        )
        sources: list[Source] = [InputFile.from_attachment(image), ImageInput(painting.name, painting.image)]
        self.jobs.submit(ReplyReporter(message, interaction.user), sources, StyleArgs(preset=preset))
