"""Re-run buttons: what each one changes, and which colour button a result offers."""

from __future__ import annotations

from bot.requests.arguments import STRENGTH_MAX, StyleArgs
from bot.ui.buttons import rerun_args, result_view


def _labels(view) -> list[str]:
    return [item.item.label for item in view.children]


async def test_color_button_offers_the_choice_the_result_did_not_use():
    # async: the bot makes its views on the event loop (before 2.7, discord.py needs one to make a View)
    assert _labels(result_view("ab12")) == ["Stronger style", "Weaker style", "Preserve colours"]
    assert _labels(result_view("ab12", preserved_colors=True)) == ["Stronger style", "Weaker style", "Style's colours"]


def test_rerun_args_set_rather_than_toggle_the_colors():
    plain = StyleArgs(preset=None, strength=1.0, preserve_colors=False, seed=0)
    kept = rerun_args("colors", plain)
    assert kept.preserve_colors is True
    assert rerun_args("colors", kept) == kept  # clicking it again changes nothing (the bot says so)
    assert rerun_args("stylecolors", kept).preserve_colors is False
    assert rerun_args("stronger", plain).strength == 2.0
    assert rerun_args("stronger", rerun_args("stronger", rerun_args("stronger", plain))).strength == STRENGTH_MAX
