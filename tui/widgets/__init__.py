"""Reusable widgets of qwen-tui; each module's styles are in the ``.tcss`` file beside it."""
