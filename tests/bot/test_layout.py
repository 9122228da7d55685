"""The import rules that bot/'s package docstrings state (docs/architecture.md draws them): each part imports only
the parts below it, so the listing of bot/ tells which way the data flows."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parents[2] / "bot"

# What each part may import from the bot (besides itself and the leaves bot.config and bot.quoting); anything else is
# a wrong-way arrow.
ALLOWED: dict[str, set[str]] = {
    "storage": set(),
    "requests": {"bot.storage"},
    "gallery": {"bot.requests", "bot.storage"},
    "ui": {"bot.requests", "bot.storage", "bot.gallery"},
    "cogs": {"bot.requests", "bot.gallery", "bot.storage", "bot.ui"},
    "ops": {"bot.requests", "bot.storage", "bot.gallery", "bot.ui"},
}


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def allowed(name: str, part: str) -> bool:
    if not name.startswith("bot.") or name.startswith((f"bot.{part}.", "bot.config", "bot.quoting")) or name == f"bot.{part}":
        return True
    return any(name == rule or name.startswith(rule + ".") for rule in ALLOWED[part])


def _is_package_member(name: str) -> bool:
    # ``from bot.ui import render`` names the module as bot.ui and bot.ui.render: judge the module, not bot.ui.
    return (BOT.parent / name.replace(".", "/")).is_dir()


def test_every_part_imports_only_the_parts_below_it() -> None:
    problems = []
    for part in ALLOWED:
        for path in sorted((BOT / part).rglob("*.py")):
            for name in sorted(imports(path)):
                if name.startswith("bot.") and not _is_package_member(name) and not allowed(name, part):
                    problems.append(f"{path.relative_to(BOT.parent)} imports {name}")
    assert problems == []


def test_the_request_path_uses_no_discord_ui() -> None:
    """The job service reports through its reporter; buttons and views are the reporters' business (bot.ui)."""
    for path in sorted((BOT / "requests").rglob("*.py")):
        text = path.read_text()
        assert "discord.ui" not in text, path
        assert not {n for n in imports(path) if n.startswith("bot.ui")}, path


def test_only_the_bot_itself_imports_the_cogs_and_operations() -> None:
    for path in sorted(BOT.rglob("*.py")):
        if path.parent == BOT or path.is_relative_to(BOT / "ops"):
            continue  # app and __main__ assemble the parts; ops watches them
        bad = {n for n in imports(path) if n.startswith(("bot.ops", "bot.app", "bot.__main__"))}
        if not path.is_relative_to(BOT / "cogs"):
            bad |= {n for n in imports(path) if n.startswith("bot.cogs")}
        assert not bad, f"{path.relative_to(BOT.parent)} imports {sorted(bad)}"


def test_the_engine_imports_nothing_of_the_bot() -> None:
    """nst_engine is a library the bot uses: an import the other way would tie the library to Discord."""
    engine = BOT.parent / "nst_engine"
    bad = [f"{p.relative_to(BOT.parent)} imports {n}" for p in sorted(engine.rglob("*.py"))
           for n in sorted(imports(p)) if n == "bot" or n.startswith("bot.")]  # fmt: skip
    assert bad == []
