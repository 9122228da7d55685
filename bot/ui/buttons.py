"""Buttons. They are DynamicItems (state in the custom_id), so they keep answering after a restart.

A click is a request like a command: it goes down to the job service (``JobControls``, found on the client that
received the interaction), never the other way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol, cast

import discord

from bot.requests.arguments import STRENGTH_MAX, STRENGTH_MIN, StyleArgs
from bot.requests.gate import RequestGate
from bot.requests.policy import Source
from bot.requests.reporter import RequestReporter
from bot.requests.reruns import RerunInputs
from bot.ui import render

log = logging.getLogger(__name__)

RERUN_KINDS = {
    "stronger": ("Stronger style", "💪"),
    "weaker": ("Weaker style", "🪶"),
    "colors": ("Preserve colours", "🎨"),
    "stylecolors": ("Style's colours", "🖌️"),  # offered instead of "colors" when the result kept the colours
}


class JobControls(Protocol):
    """What the buttons ask of the job service (``bot.requests.service.JobService``)."""

    def cancel(self, job_id: str, *, by: discord.abc.User, moderator: bool) -> str: ...

    def rerun_inputs(self, job_id: str) -> RerunInputs | None: ...

    def submit(self, reporter: RequestReporter, sources: Sequence[Source], args: StyleArgs) -> object: ...


class _HasJobs(Protocol):
    jobs: JobControls
    gate: RequestGate


def _controls(interaction: discord.Interaction) -> JobControls:
    # DynamicItems are made by discord.py from a custom_id, so the only context they get is the client.
    return cast(_HasJobs, interaction.client).jobs


def _is_moderator(interaction: discord.Interaction) -> bool:
    perms = getattr(interaction.user, "guild_permissions", None)
    return bool(perms and perms.manage_messages)


class CancelButton(discord.ui.DynamicItem[discord.ui.Button], template=r"nst:cancel:(?P<job>[0-9a-f]+)"):
    def __init__(self, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(label="Cancel", style=discord.ButtonStyle.danger, custom_id=f"nst:cancel:{job_id}")
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> CancelButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            await self._cancel(interaction)
        except Exception as exc:
            await report_item_error(interaction, exc)

    async def _cancel(self, interaction: discord.Interaction) -> None:
        text = _controls(interaction).cancel(self.job_id, by=interaction.user, moderator=_is_moderator(interaction))
        await interaction.response.send_message(text, ephemeral=True)


class RerunButton(
    discord.ui.DynamicItem[discord.ui.Button], template=r"nst:rerun:(?P<kind>[a-z]+):(?P<job>[0-9a-f]+)"
):
    def __init__(self, kind: str, job_id: str) -> None:
        label, emoji = RERUN_KINDS[kind]
        super().__init__(
            discord.ui.Button(
                label=label, emoji=emoji, style=discord.ButtonStyle.secondary, custom_id=f"nst:rerun:{kind}:{job_id}"
            )
        )
        self.kind = kind
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> RerunButton:
        if match["kind"] not in RERUN_KINDS:
            raise ValueError("unknown re-run kind")
        return cls(match["kind"], match["job"])

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            await self._rerun(interaction)
        except Exception as exc:
            await report_item_error(interaction, exc)

    async def _rerun(self, interaction: discord.Interaction) -> None:
        controls = _controls(interaction)
        from bot.ui.reporters import InteractionReporter  # it shows these buttons: imported when one is clicked

        entry = controls.rerun_inputs(self.job_id)
        if entry is None:
            await interaction.response.send_message(
                "I no longer have the images of that job in memory (they are kept for a while after each result). "
                "Please send them again.",
                ephemeral=True,
            )
            return
        args = rerun_args(self.kind, entry.args)
        if args == entry.args:
            # Nothing would change: running the same job again would only repeat the same picture.
            await interaction.response.send_message(_same_job_text(self.kind), ephemeral=True)
            return
        sources = entry.inputs.sources()
        gate = cast(_HasJobs, interaction.client).gate
        failure = await gate.check(user_id=interaction.user.id, guild_id=interaction.guild_id, origin="button",
                                   sources=sources, args=args)
        if failure is not None:  # before anything public: for the clicker alone
            await interaction.response.send_message(embed=render.error_embed(failure.message, title=failure.title),
                                                    ephemeral=True)
            return
        await interaction.response.defer(thinking=True)
        controls.submit(InteractionReporter(interaction), sources, args)


def _same_job_text(kind: str) -> str:
    if kind in ("stronger", "weaker"):
        bound = f"strongest ({STRENGTH_MAX:g})" if kind == "stronger" else f"weakest ({STRENGTH_MIN:g})"
        return f"That result already used the {bound} style strength, so this would give the same picture."
    return "That result already used those colours, so this would give the same picture."


def rerun_args(kind: str, args: StyleArgs) -> StyleArgs:
    """The arguments of a re-run: strength doubled or halved (within bounds), or the colour choice set."""
    if kind == "stronger":
        return replace(args, strength=min(STRENGTH_MAX, args.strength * 2))
    if kind == "weaker":
        return replace(args, strength=max(STRENGTH_MIN, args.strength / 2))
    return replace(args, preserve_colors=kind == "colors")


async def report_item_error(interaction: discord.Interaction, error: Exception) -> None:
    """Buttons have no global error handler: log the fault and tell the clicker, never silently."""
    log.error("button %s failed", interaction.data and interaction.data.get("custom_id"), exc_info=error)
    text = "Something went wrong on my side. It has been logged; please try again."
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except discord.HTTPException:
        pass


def cancel_view(job_id: str) -> discord.ui.View:
    """The Cancel button of a job's status message."""
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


def result_view(job_id: str, *, preserved_colors: bool = False) -> discord.ui.View:
    """Re-run buttons; the colour button offers whichever colour choice the result did not use."""
    view = discord.ui.View(timeout=None)
    for kind in ("stronger", "weaker", "stylecolors" if preserved_colors else "colors"):
        view.add_item(RerunButton(kind, job_id))
    return view
