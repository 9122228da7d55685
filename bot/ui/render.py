"""Text and embeds the bot shows: progress bar, results, errors, limits, help."""

from __future__ import annotations

import discord

from bot.config import Settings
from bot.gallery.builtin import BUILTINS
from bot.requests.arguments import STRENGTH_MAX, STRENGTH_MIN
from bot.storage.limits import Limits
from bot.ui import fitting
from nst_engine.types import LossSummary, ProgressEvent

COLOR_OK = discord.Color.green()
COLOR_ERROR = discord.Color.red()
COLOR_INFO = discord.Color.blurple()


def progress_bar(fraction: float, width: int = 20) -> str:
    """``[██████░░░░░░░░░░░░░░]  30%``"""
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * width)
    return f"[{'█' * filled}{'░' * (width - filled)}] {fraction * 100:3.0f}%"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "estimating…"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_loss(value: float) -> str:
    """Losses span many orders of magnitude: 3 significant digits, scientific when large or small."""
    if value == 0:
        return "0"
    if 0.01 <= abs(value) < 100_000:
        return f"{value:.3g}"
    return f"{value:.2e}"


def progress_text(event: ProgressEvent, *, title: str) -> str:
    losses = event.losses
    parts = [f"{title}", progress_bar(event.fraction)]
    frame = f"Frame {event.frame} of {event.frames} · " if event.frames > 1 else ""
    parts.append(
        f"{frame}Step {event.step}/{event.total_steps} · scale {event.scale}/{event.scales} "
        f"({event.width}×{event.height}) · ETA {format_duration(event.eta)}"
    )
    if losses:
        parts.append(
            "Loss: "
            + " · ".join(f"{k} {format_loss(losses[k])}" for k in ("content", "style", "tv", "total") if k in losses)
        )
    return "\n".join(parts)


def queued_text(position: int, *, title: str) -> str:
    if position <= 1:
        return f"{title}\nQueued: you are next."
    return f"{title}\nQueued: position {position} (jobs from different people take turns)."


def result_embed(
    summary: LossSummary, *, user: discord.abc.User | None, filename: str, chart: bool = True, note: str = ""
) -> discord.Embed:
    start, end = summary.start, summary.end
    embed = discord.Embed(title="Style transfer done", color=COLOR_OK)
    if user is not None:
        embed.set_author(name=user.display_name, icon_url=user.display_avatar.url)
    rows = [
        ("Content", start.content, end.content),
        ("Style", start.style, end.style),
        ("TV", start.tv, end.tv),
        ("Total", start.total, end.total),
    ]
    lines = [f"`{name:<7}` {format_loss(a)} → **{format_loss(b)}**" for name, a, b in rows]
    heading = "Loss (start → end)" if summary.frames == 1 else f"Loss (start → end, the mean of {summary.frames} frames)"
    embed.add_field(name=heading, value="\n".join(lines), inline=False)
    embed.add_field(name="Iterations", value=str(summary.iterations))
    embed.add_field(name="Time", value=format_duration(summary.seconds))
    embed.add_field(name="Preset", value=summary.preset)
    size = f"{summary.width}×{summary.height}"
    embed.add_field(name="Size", value=size if summary.frames == 1 else f"{size}, {summary.frames} frames")
    embed.add_field(name="Device", value=f"{summary.device} ({summary.precision})")
    embed.set_image(url=f"attachment://{filename}")
    if chart:
        embed.set_thumbnail(url="attachment://losses.png")
    footer = " · ".join([*summary.notes, note] if note else summary.notes)
    if footer:
        embed.set_footer(text=footer)
    return embed


def error_embed(message: str, *, title: str = "Can't do that") -> discord.Embed:
    # Within Discord's limits whatever the message quotes: a refusal that cannot be sent is a refusal unheard.
    return fitting.fit_embed(discord.Embed(title=title, description=message, color=COLOR_ERROR))


def limits_embed(limits: Limits, *, ceilings: Limits, guild_name: str | None, max_styles: int) -> discord.Embed:
    where = f"on **{guild_name}**" if guild_name else "in direct messages (bot-wide limits)"
    embed = discord.Embed(title="Style transfer limits", description=f"Limits {where}:", color=COLOR_INFO)

    def row(value: float, ceiling: float, unit: str) -> str:
        text = f"{value:g} {unit}"
        return text if value >= ceiling else f"{text} (bot-wide: {ceiling:g} {unit})"

    embed.add_field(name="Max file size", value=row(limits.max_file_mb, ceilings.max_file_mb, "MB"))
    embed.add_field(name="Max image size", value=row(limits.max_megapixels, ceilings.max_megapixels, "MP"))
    embed.add_field(
        name="Max output long side", value=row(limits.max_output_side, ceilings.max_output_side, "px")
    )
    embed.add_field(name="Presets", value=", ".join(limits.allowed_presets))
    embed.add_field(name="Style images per job", value=f"up to {max_styles}")
    embed.add_field(name="Animation frames", value=row(limits.max_frames, ceilings.max_frames, "frames"))
    embed.add_field(
        name="Animation size",
        value=row(limits.max_animation_megapixels, ceilings.max_animation_megapixels, "MP (frames × output)"),
    )
    return embed


def help_embed(settings: Settings, *, limits: Limits) -> discord.Embed:
    """How to use the bot, with the numbers of this server's limits and the bot's settings."""
    prefix, max_styles = settings.bot_prefix, settings.max_styles
    embed = discord.Embed(
        title="Neural style transfer",
        description=(
            "Paint one picture in the style of another. Send two images: the **content** (what to show) "
            "and the **style** (how it should look). The result comes back with a loss summary."
        ),
        color=COLOR_INFO,
    )
    example = "balanced" if "balanced" in limits.allowed_presets else limits.allowed_presets[0]
    embed.add_field(
        name="Slash command",
        value=(
            f"`/style content:<image> style:<image> preset:{example} strength:1.5`\n"
            f"Options: `preset` ({', '.join(limits.allowed_presets)}), `strength` ({STRENGTH_MIN:g} subtle … "
            f"{STRENGTH_MAX:g} strong), `preserve_colors`, `seed`, and extra style images to blend."
        ),
        inline=False,
    )
    embed.add_field(
        name="Message command",
        value=(
            f"Attach two images to a message that says `{prefix}style` (first = content, second = style; "
            f"more images are blended styles, up to {max_styles}). Example: `{prefix}style {example} 2 colors`.\n"
            f"Or reply to a message holding the content image, with the style image attached."
        ),
        inline=False,
    )
    embed.add_field(
        name="Paintings on hand",
        value=(
            "No style image? Name a painting: `/style content:<image> painting:<name>` (suggestions as you type), "
            f"`{prefix}style starry night {example}` with one image, or right-click a message with a picture → "
            f"**Apps → Stylize**. Built in: {', '.join(p.name for p in BUILTINS)}; `/style-gallery list` shows "
            "this server's own too (moderators add them with `/style-admin gallery add`)."
        ),
        inline=False,
    )
    embed.add_field(
        name="Limits",
        value=(
            f"Files up to {limits.max_file_mb:g} MB and {limits.max_megapixels:g} MP; output up to "
            f"{limits.max_output_side} px; presets: {', '.join(limits.allowed_presets)}. "
            f"{_count(settings.user_max_running, 'job')} running and {settings.user_max_waiting} waiting per "
            "person. `/style-limits show` lists this server's limits."
        ),
        inline=False,
    )
    embed.add_field(
        name="Your defaults",
        value="`/style-settings` sets your own preset, strength, colours and favourite painting, used whenever you "
        "leave them out. `/style-about` says what the bot stores and for how long.",
        inline=False,
    )
    embed.add_field(
        name="After a result",
        value="Buttons re-run it *stronger*, *weaker*, or *preserving the content's colours*. "
        "**Cancel** stops a job (yours, or any if you can manage messages).",
        inline=False,
    )
    return embed


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
