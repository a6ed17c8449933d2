"""qwen-tui(1) lists every key the dashboard binds, from the same table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from qwen_tui.actions import all_keys

GEN = Path(__file__).resolve().parents[2] / "packaging" / "gen_manpages.py"


def gen_manpages() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_manpages", GEN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_man_page_lists_every_key() -> None:
    gen = gen_manpages()
    page = next(p for p in gen.PAGES if p.command == "qwen-tui")
    text = gen.render(page, "0.1.0", "2026-11-30")
    keys = text[text.index(".SH KEYS") : text.index(".SH SEE ALSO")]
    for key in all_keys():
        assert f"\\fB{gen.roff(key.key)}\\fR\n{gen.roff(key.description)}" in keys
