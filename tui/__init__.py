"""qwen-tui: the terminal UI for qwend (installed as the ``qwen_tui`` package)."""

from __future__ import annotations
