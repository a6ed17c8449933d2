"""Short histories of the live stats, for sparklines and bars (pure).

The daemon sends deltas; every update (a heartbeat included) is one sample tick,
so each series gets the value the frame holds at that tick. Series are bounded
(``HISTORY`` samples), so memory stays flat however long the TUI runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from qwend.api.stats import StatsFrame

HISTORY = 120
"""Samples kept per series: four minutes at the default two-second tick."""

BLOCKS = " ▁▂▃▄▅▆▇█"
"""Sparkline glyphs, empty to full."""

STALE_STYLE = "grey50"
"""Everything drawn from data of a daemon that no longer answers."""

WARNING_PCT = 80.0
CRITICAL_PCT = 95.0
"""HBM and AICore use at or above these is drawn in the warning / critical colour."""


def sparkline(values: Iterable[float | None], width: int, top: float | None = None) -> str:
    """The last ``width`` values as block glyphs, scaled to ``top`` (else their maximum).

    A missing value (no data that tick) is a blank; the line is right-aligned so
    the newest sample is always at the right edge.
    """
    recent = list(values)[-width:] if width > 0 else []
    known = [v for v in recent if v is not None]
    peak = top if top is not None else max(known, default=0.0)
    glyphs = []
    for value in recent:
        if value is None or peak <= 0:
            glyphs.append(" " if value is None else BLOCKS[1])
            continue
        level = round(min(value, peak) / peak * (len(BLOCKS) - 2)) + 1
        glyphs.append(BLOCKS[max(1, min(level, len(BLOCKS) - 1))])
    return "".join(glyphs).rjust(width)


def bar(fraction: float | None, width: int) -> str:
    """A horizontal bar ``width`` cells wide, ``fraction`` (0..1) of it filled."""
    if fraction is None:
        return "·" * width
    filled = round(max(0.0, min(fraction, 1.0)) * width)
    return "█" * filled + "░" * (width - filled)


def level_style(pct: float | None) -> str:
    """Colour of a percentage: normal, warning or critical."""
    if pct is None:
        return "dim"
    if pct >= CRITICAL_PCT:
        return "bold red"
    if pct >= WARNING_PCT:
        return "yellow"
    return "green"


@dataclass(frozen=True)
class Series:
    """The names of the series kept per lane, per class and per NPU chip."""

    LANE = ("ttft", "e2e", "tok_s", "req_s", "err_s")
    CLASS = ("ttft", "e2e", "req_s")
    NPU = ("hbm_pct", "aicore_pct")


class History:
    """Bounded per-key series, fed one frame per tick."""

    def __init__(self, size: int = HISTORY) -> None:
        self.size = size
        self._series: dict[tuple[str, str], deque[float | None]] = {}
        self._last: dict[str, tuple[float, int, int]] = {}
        """Per lane/class: (at, requests, errors) of the previous tick, for rates."""
        self.ticks = 0

    def series(self, owner: str, name: str) -> Sequence[float | None]:
        """The samples of ``name`` for ``owner`` (``lane:X``, ``class:X``, ``npu:N.C``)."""
        return self._series.get((owner, name), ())

    def latest(self, owner: str, name: str) -> float | None:
        values = self.series(owner, name)
        return values[-1] if values else None

    def _push(self, owner: str, name: str, value: float | None) -> None:
        key = (owner, name)
        if key not in self._series:
            # Pad a new series so every series of a tick lines up at the right edge.
            self._series[key] = deque([None] * min(self.ticks, self.size), maxlen=self.size)
        self._series[key].append(value)

    def _rates(self, owner: str, at: float, requests: int, errors: int) -> tuple[float, float]:
        before = self._last.get(owner)
        self._last[owner] = (at, requests, errors)
        if before is None or at <= before[0] or requests < before[1]:
            return 0.0, 0.0  # first tick, or the counters restarted (lane or router reset)
        span = at - before[0]
        return (requests - before[1]) / span, max(0, errors - before[2]) / span

    def add(self, frame: StatsFrame) -> None:
        """One tick: sample every lane, class and chip of ``frame``."""
        for lane in frame.lanes:
            owner, stats = f"lane:{lane.name}", lane.stats
            if stats is None:
                for name in Series.LANE:
                    self._push(owner, name, None)
                continue
            req_s, err_s = self._rates(owner, frame.at, stats.requests, stats.errors)
            self._push(owner, "ttft", stats.ttft_p50_ms)
            self._push(owner, "e2e", stats.e2e_p95_ms)
            self._push(owner, "tok_s", stats.tokens_per_s)
            self._push(owner, "req_s", req_s)
            self._push(owner, "err_s", err_s)
        for cls in frame.classes:
            owner = f"class:{cls.name}"
            req_s, _ = self._rates(owner, frame.at, cls.requests, cls.errors)
            self._push(owner, "ttft", cls.ttft_p50_ms)
            self._push(owner, "e2e", cls.e2e_p95_ms)
            self._push(owner, "req_s", req_s)
        for chip in frame.npus:
            owner = f"npu:{chip.key}"
            hbm = (
                100.0 * chip.hbm_used_mb / chip.hbm_total_mb
                if chip.hbm_used_mb is not None and chip.hbm_total_mb
                else None
            )
            self._push(owner, "hbm_pct", hbm)
            aicore = None if chip.aicore_pct is None else float(chip.aicore_pct)
            self._push(owner, "aicore_pct", aicore)
        self.ticks += 1
