"""Every message fits Discord's limits; user text is shortened (never dropped) and never pings anyone."""

from __future__ import annotations

import discord

from bot import quoting
from bot.ui import fitting


def test_shorten_keeps_both_ends():
    text = "a" * 50 + "MIDDLE" + "b" * 50 + ".png"
    out = quoting.shorten(text, 40)
    assert len(out) == 40 and out.startswith("aaaa") and out.endswith("b.png") and quoting.ELLIPSIS in out
    assert quoting.shorten("short.png", 40) == "short.png"


def test_a_4200_character_filename_is_shortened_with_its_extension():
    shown = quoting.name("x" * 4196 + ".jpg")
    assert len(shown) == quoting.NAME_MAX and shown.endswith(".jpg")


def test_user_text_is_inert():
    shown = quoting.name("@everyone <@123456789012345678> <@&456789012345678901> `code`\nline.png")
    assert "@everyone" not in shown and "<@1234" not in shown and "<@&4567" not in shown
    assert "`" not in shown and "\n" not in shown
    assert shown.endswith("line.png")


def test_fit_embed_respects_every_limit():
    embed = discord.Embed(title="t" * 400, description="d" * 9000)
    for i in range(10):
        embed.add_field(name="n" * 300, value=f"{i}" * 2000)
    embed.set_footer(text="f" * 3000)
    fitting.fit_embed(embed)
    assert len(embed.title or "") <= 256 and len(embed.description or "") <= 4096
    assert all(len(f.value or "") <= 1024 and len(f.name or "") <= 256 for f in embed.fields)
    assert len(embed) <= fitting.EMBED_TOTAL_MAX
    assert embed.fields  # shortened, not emptied: the message still says something


def test_content_is_cut_to_2000():
    assert len(fitting.content("z" * 5000) or "") == 2000
    assert fitting.content(None) is None
