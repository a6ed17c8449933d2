"""Column widths that follow their content both ways, without jitter (pure).

A column grows at once when a longer value appears (a value is never cut), and
shrinks back only once every value has been narrower for ``hold`` ticks in a row,
to the widest value seen over those ticks: a number that flips between three and
four digits every tick does not make the table twitch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.cells import cell_len

SHRINK_AFTER_TICKS = 5
"""Ticks a column must be too wide before it shrinks (10 s at the default 2 s refresh)."""


class ColumnWidths:
    """The width each column should have, fed the width its content needs every tick."""

    def __init__(self, labels: Mapping[str, int], hold: int = SHRINK_AFTER_TICKS) -> None:
        if hold < 1:
            raise ValueError(f"hold must be at least one tick, got {hold}")
        self.hold = hold
        self._floor = dict(labels)
        """A column is never narrower than its header."""
        self.widths = dict(labels)
        self._narrower: dict[str, list[int]] = {name: [] for name in labels}

    def tick(self, needed: Mapping[str, int]) -> dict[str, int]:
        """Take this tick's needed widths; returns the columns whose width changes now."""
        changed: dict[str, int] = {}
        for name, floor in self._floor.items():
            need = max(needed.get(name, 0), floor)
            seen = self._narrower[name]
            if need >= self.widths[name]:
                seen.clear()
                if need > self.widths[name]:
                    self.widths[name] = changed[name] = need
                continue
            seen.append(need)
            if len(seen) >= self.hold:
                self.widths[name] = changed[name] = max(seen[-self.hold :])
                seen.clear()
        return changed


def needed_widths(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> dict[str, int]:
    """The widest cell of each column (terminal cells, so wide characters count double)."""
    return {
        name: max((cell_len(row[i]) for row in rows), default=0) for i, name in enumerate(columns)
    }
