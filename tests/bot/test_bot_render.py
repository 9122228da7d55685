import discord

from bot.config import Settings
from bot.storage.limits import Limits
from bot.ui.render import (
    error_embed,
    format_duration,
    format_loss,
    help_embed,
    limits_embed,
    progress_bar,
    progress_text,
    queued_text,
    result_embed,
)
from nst_engine.types import LossSummary, LossTerms, ProgressEvent

LIMITS = Limits(max_file_mb=8, max_megapixels=16, max_output_side=1024, allowed_presets=("fast", "balanced"))


def test_progress_bar():
    assert progress_bar(0) == "[░░░░░░░░░░░░░░░░░░░░]   0%"
    assert progress_bar(0.5, width=10) == "[█████░░░░░]  50%"
    assert progress_bar(1.7, width=4) == "[████] 100%"


def test_durations_and_losses():
    assert format_duration(None) == "estimating…"
    assert format_duration(4.4) == "4 s"
    assert format_duration(75) == "1 min 15 s"
    assert format_duration(3 * 3600 + 120) == "3 h 02 min"
    assert format_loss(0) == "0"
    assert format_loss(12.3456) == "12.3"
    assert format_loss(1234567.0) == "1.23e+06"
    assert format_loss(0.000123) == "1.23e-04"


def test_progress_text_shows_bar_eta_and_losses():
    ev = ProgressEvent(
        scale=2, scales=3, width=64, height=48, iteration=5, iterations=10, step=15, total_steps=30,
        losses={"content": 1.5, "style": 20.0, "tv": 0.25, "total": 21.75}, elapsed=3.0, eta=3.2,
    )
    text = progress_text(ev, title="T")
    assert text.splitlines()[0] == "T"
    assert " 50%" in text and "ETA 3 s" in text and "scale 2/3 (64×48)" in text
    assert "content 1.5 · style 20 · tv 0.25 · total 21.8" in text


def test_queued_text():
    assert "you are next" in queued_text(1, title="T")
    assert "position 3" in queued_text(3, title="T")


def test_result_embed_lists_the_loss_summary():
    terms = LossTerms(content=0.0, style=100.0, tv=1.0, total=101.0)
    end = LossTerms(content=5.0, style=2.0, tv=0.5, total=7.5)
    summary = LossSummary(
        start=terms, end=end, style_layers_start={}, style_layers_end={}, iterations=42, seconds=3.5,
        device="cpu", precision="fp32", preset="fast", width=64, height=48, scales=((64, 48, 42),),
        optimizer="adam", notes=("a note",),
    )
    embed = result_embed(summary, user=None, filename="styled.png", chart=False, note="smaller")
    fields = {f.name: f.value for f in embed.fields}
    assert "`Total  ` 101 → **7.5**" in fields["Loss (start → end)"]
    assert fields["Iterations"] == "42"
    assert fields["Preset"] == "fast"
    assert fields["Device"] == "cpu (fp32)"
    assert embed.image.url == "attachment://styled.png"
    assert embed.thumbnail.url is None
    assert embed.footer.text == "a note · smaller"
    assert result_embed(summary, user=None, filename="x.jpg").thumbnail.url == "attachment://losses.png"


def test_limits_and_help_embeds():
    lower = Limits(max_file_mb=2, max_megapixels=16, max_output_side=512, allowed_presets=("fast",))
    embed = limits_embed(lower, ceilings=LIMITS, guild_name="G", max_styles=3)
    fields = {f.name: f.value for f in embed.fields}
    assert fields["Max file size"] == "2 MB (bot-wide: 8 MB)"
    assert fields["Max image size"] == "16 MP"
    assert fields["Presets"] == "fast"
    assert "direct messages" in limits_embed(LIMITS, ceilings=LIMITS, guild_name=None, max_styles=3).description
    help_text = str(help_embed(Settings(_env_file=None, bot_prefix="?", max_styles=2), limits=LIMITS).to_dict())
    assert "`?style`" in help_text and "/style content:" in help_text
    # The numbers come from the settings and limits, not from the text.
    wide = Settings(_env_file=None, user_max_running=2, user_max_waiting=3)
    only_fast = Limits(max_file_mb=8, max_megapixels=16, max_output_side=512, allowed_presets=("fast",))
    help_text = str(help_embed(wide, limits=only_fast).to_dict())
    assert "2 jobs running and 3 waiting per person" in help_text and "`preset` (fast)" in help_text
    assert error_embed("nope").colour == discord.Color.red()
