import pytest

from bot.requests.arguments import ArgumentError, StyleArgs, parse_style_args


def test_empty_gives_defaults():
    assert parse_style_args("") == StyleArgs()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fast", StyleArgs(preset="fast")),
        ("QUALITY 2", StyleArgs(preset="quality", strength=2.0)),
        ("0.5 balanced", StyleArgs(preset="balanced", strength=0.5)),
        ("2x colors", StyleArgs(strength=2.0, preserve_colors=True)),
        ("strength=3 seed=42", StyleArgs(strength=3.0, seed=42)),
        ("preserve-colours fast", StyleArgs(preset="fast", preserve_colors=True)),
    ],
)
def test_parses_words_in_any_order(text, expected):
    assert parse_style_args(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("banana", "don't understand `banana`"),
        ("fast quality", "one preset"),
        ("9", "from 0.25"),
        ("0.1", "not 0.1"),
        ("1 2", "only once"),
        ("seed=-3", "whole number"),
        ("seed=abc", "whole number"),
    ],
)
def test_refusals_explain_the_fix(text, fragment):
    with pytest.raises(ArgumentError) as info:
        parse_style_args(text)
    assert fragment in str(info.value)


def test_left_out_options_come_from_the_base_and_given_ones_win():
    mine = StyleArgs(preset="fast", strength=2.0, preserve_colors=True)
    assert parse_style_args("", base=mine) == mine
    assert parse_style_args("quality 0.5 style-colors seed=3", base=mine) == StyleArgs("quality", 0.5, False, 3)
    with pytest.raises(ArgumentError, match="either the photo's colours"):
        parse_style_args("colors nocolors")
