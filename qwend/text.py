"""Plain text for people: one table layout, one duration and one millisecond format (pure).

Shared by qwenctl, qwen-tui, ``qwend check-config`` and the NPU views so they print
alike; imports nothing of qwend.
"""

from __future__ import annotations

from collections.abc import Sequence

Cell = str | int | float | None
"""A table cell: text as is, numbers right-aligned, ``None`` as ``-``."""


def cell_text(value: Cell) -> str:
    """``-`` for None, floats with one decimal, anything else as ``str``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    """Columns two spaces apart, no trailing blanks and no final newline.

    Text is left-aligned; a column whose every cell is a number (or None) is right-aligned.
    """
    text = [[cell_text(value) for value in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in text)]) for i, h in enumerate(headers)]
    numeric = [
        bool(rows) and all(isinstance(r[i], int | float) or r[i] is None for r in rows)
        for i in range(len(headers))
    ]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(r) for r in text)])


def duration(seconds: float | None) -> str:
    """``3d4h``, ``2h05m``, ``4m07s``, ``12s``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def milliseconds(value: float | None, *, sep: str = "") -> str:
    """Whole milliseconds: ``412ms`` (qwenctl's narrow columns), ``412 ms`` with ``sep=" "``.

    ``-`` when unknown.
    """
    return "-" if value is None else f"{value:.0f}{sep}ms"
