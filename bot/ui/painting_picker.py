"""The "Stylize" picker: an ephemeral message with a painting menu, a preset menu and a Go button.

Discord allows 25 options per menu, so the paintings are split over as many menus as needed (at most three: the
built-ins plus a full gallery fit). Choosing in one menu clears the others. What Go does is given to the view
(``on_go``), so the view knows nothing of jobs.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import discord

from bot.ui.buttons import report_item_error

MENU_SIZE = 25
MAX_PAINTING_MENUS = 3  # five rows in all: painting menus, the preset menu, the buttons

GoCallback = Callable[[discord.Interaction, str, str], Awaitable[None]]  # (interaction, painting, preset)


class PaintingMenu(discord.ui.Select["StylizePicker"]):
    def __init__(self, names: Sequence[str], index: int, count: int, tag: str) -> None:
        placeholder = "Choose a painting" if count == 1 else f"Choose a painting ({names[0]} … {names[-1]})"
        super().__init__(
            placeholder=placeholder[:150],
            options=[discord.SelectOption(label=n[:100], value=n[:100]) for n in names],
            custom_id=f"nst:stylize:{tag}:painting:{index}",
            row=index,
        )

    async def callback(self, interaction: discord.Interaction) -> None:
        assert self.view is not None
        await self.view.choose_painting(interaction, self.values[0])


class PresetMenu(discord.ui.Select["StylizePicker"]):
    def __init__(self, presets: Sequence[tuple[str, str]], default: str, row: int, tag: str) -> None:
        super().__init__(
            placeholder="Preset",
            options=[discord.SelectOption(label=label[:100], value=value, default=value == default)
                     for value, label in presets],
            custom_id=f"nst:stylize:{tag}:preset",
            row=row,
        )

    async def callback(self, interaction: discord.Interaction) -> None:
        assert self.view is not None
        await self.view.choose_preset(interaction, self.values[0])


class StylizePicker(discord.ui.View):
    """Ephemeral, for the person who opened it; ``on_go`` runs the job once a painting is chosen."""

    def __init__(
        self,
        *,
        user_id: int,
        paintings: Sequence[str],
        presets: Sequence[tuple[str, str]],
        default_preset: str,
        on_go: GoCallback,
        default_painting: str | None = None,  # the person's favourite, chosen already
        timeout: float = 600.0,
    ) -> None:
        super().__init__(timeout=timeout)
        if not paintings:
            raise ValueError("no paintings to choose from")
        self.user_id = user_id
        self.on_go = on_go
        self.painting: str | None = None
        self.preset = default_preset
        chunks = [list(paintings[i:i + MENU_SIZE]) for i in range(0, len(paintings), MENU_SIZE)][:MAX_PAINTING_MENUS]
        tag = secrets.token_hex(4)  # each picker's own ids: several can be open at once
        self.menus = [PaintingMenu(chunk, i, len(chunks), tag) for i, chunk in enumerate(chunks)]
        for menu in self.menus:
            self.add_item(menu)
        self.preset_menu = PresetMenu(presets, default_preset, row=len(self.menus), tag=tag)
        self.add_item(self.preset_menu)
        self.go: discord.ui.Button[StylizePicker] = discord.ui.Button(
            label="Stylize", emoji="🎨", style=discord.ButtonStyle.primary, custom_id=f"nst:stylize:{tag}:go",
            row=len(self.menus) + 1, disabled=True,
        )
        self.go.callback = self._go  # type: ignore[method-assign]
        self.add_item(self.go)
        if default_painting is not None and any(o.value == default_painting for m in self.menus for o in m.options):
            self._select_painting(default_painting)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        # Ephemeral messages are only seen by their owner; this guards against anything else.
        return interaction.user.id == self.user_id

    async def choose_painting(self, interaction: discord.Interaction, name: str) -> None:
        self._select_painting(name)
        await interaction.response.edit_message(content=self.text(), view=self)

    def _select_painting(self, name: str) -> None:
        self.painting = name
        for menu in self.menus:
            for option in menu.options:
                option.default = option.value == name
        self.go.disabled = False

    async def choose_preset(self, interaction: discord.Interaction, preset: str) -> None:
        self.preset = preset
        for option in self.preset_menu.options:
            option.default = option.value == preset
        await interaction.response.edit_message(content=self.text(), view=self)

    def text(self) -> str:
        chosen = f"**{self.painting}**" if self.painting else "a painting"
        return f"Stylize with {chosen}, preset **{self.preset}**. Press **Stylize** to start."

    async def _go(self, interaction: discord.Interaction) -> None:
        if self.painting is None:  # the button starts disabled; a stale client may still send it
            await interaction.response.send_message("Choose a painting first.", ephemeral=True)
            return
        for item in self.children:
            if isinstance(item, discord.ui.Button | discord.ui.Select):
                item.disabled = True
        self.stop()
        await self.on_go(interaction, self.painting, self.preset)

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any]) -> None:
        await report_item_error(interaction, error)
