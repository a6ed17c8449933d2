"""One lane in full, for its detail view (pure): config, state, graphs, promotion, bench."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from rich.text import Text

from qwen_tui.history import History, sparkline
from qwen_tui.lastbench import LaneBench, bench_lines
from qwen_tui.rows import STATE_STYLES, latency
from qwend.api.describe import gate_line, result_line
from qwend.api.messages import LaneInfo, PromotionAccepted, PromotionMode, PromotionRecord
from qwend.text import duration

GRAPHS: tuple[tuple[str, str, str], ...] = (
    ("ttft", "TTFT p50", "cyan"),
    ("e2e", "E2E p95", "magenta"),
    ("tok_s", "tok/s", "green"),
    ("req_s", "req/s", "blue"),
    ("err_s", "errors/s", "red"),
)
"""The lane's series in the history, their labels and colours (as on the dashboard)."""


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _involves(lane: str, from_lane: str | None, to_lane: str) -> bool:
    return lane in (from_lane, to_lane)


def last_promotion(
    lane: str, running: Iterable[PromotionAccepted], records: Iterable[PromotionRecord]
) -> PromotionAccepted | PromotionRecord | None:
    """A running promotion involving ``lane``, else the latest finished one, else None."""
    for item in running:
        if _involves(lane, item.from_lane, item.to_lane):
            return item
    mine = [r for r in records if _involves(lane, r.from_lane, r.to_lane)]
    return max(mine, key=lambda r: r.finished_at) if mine else None


def _clock(at: float) -> str:
    return f"{datetime.fromtimestamp(at).astimezone():%Y-%m-%d %H:%M:%S}"


def promotion_lines(item: PromotionAccepted | PromotionRecord | None) -> list[tuple[str, str]]:
    """(text, style) lines of the promotion section."""
    if item is None:
        return [("no promotion involving this lane in qwend's history", "dim")]
    mode = "in place" if item.mode is PromotionMode.IN_PLACE else "blue/green"
    move = f"role {item.role}: {item.from_lane or 'no lane'} → {item.to_lane} ({mode})"
    if isinstance(item, PromotionAccepted):
        return [(f"running: {move} (P shows its steps)", "yellow")]
    ok = item.outcome.value == "promoted"
    lines = [
        (f"{item.kind} {_clock(item.started_at)}: {move}", ""),
        (result_line(item), "green" if ok else "bold red"),
    ]
    if item.gate is None:
        lines.append(("no latency gate on it", "dim"))
    else:
        lines.append((gate_line(item.gate), "green" if item.gate.accepted else "bold red"))
    return lines


def _field(text: Text, name: str, value: str, style: str = "") -> None:
    text.append(f"{name:>12}  ", style="bold")
    text.append(value + "\n", style=style)


def detail_text(
    lane: LaneInfo,
    now: float,
    history: History,
    promotion: PromotionAccepted | PromotionRecord | None,
    bench: LaneBench | None,
    bench_loaded: bool,
    width: int = 100,
) -> Text:
    """The whole view; ``bench_loaded`` False while the saved results are still being read."""
    text = Text(no_wrap=True, overflow="ellipsis")
    active = f" (active lane of {lane.role})" if lane.active else " (candidate)"
    text.append(f"lane {lane.name}{active}\n\n", style="bold")
    _field(text, "role", lane.role)
    _field(text, "variant", lane.variant)
    _field(text, "model", lane.model or "-")
    _field(text, "npus", lane.npus_text)
    _field(text, "port", str(lane.port) if lane.port else "-")
    state = lane.state + (" (degraded)" if lane.degraded else "")
    _field(text, "state", state, STATE_STYLES.get(lane.state, ""))
    for name, value in (
        ("reason", lane.last_error or lane.reason or lane.degraded),
        ("last exit", lane.last_exit),
    ):
        _field(text, name, value or "-", "dark_orange" if value else "dim")
    uptime = lane.uptime_s
    if uptime is None and lane.started_at is not None:
        uptime = max(0.0, now - lane.started_at)
    _field(text, "pid", "-" if lane.pid is None else str(lane.pid))
    _field(text, "up", duration(uptime))
    _field(text, "restarts", str(lane.restarts))
    if lane.group is not None:
        _field(text, "group", lane.group.line())
    if lane.runs_on:
        # Its NPUs are the group's members' (Ray's workers): started and stopped with it.
        _field(text, "runs on", f"lane group {lane.runs_on} (started once it is ready)")
    in_flight = "-" if lane.stats is None else str(lane.stats.in_flight)
    _field(text, "in flight", in_flight)
    for warning in lane.warnings:
        _field(text, "warning", warning, "yellow")

    text.append("\nlast minutes\n", style="bold")
    spark = max(8, width - 12 - 2 - 12)
    owner = f"lane:{lane.name}"
    for name, label, style in GRAPHS:
        values = history.series(owner, name)
        fmt: Callable[[float | None], str] = latency if name in ("ttft", "e2e") else _rate
        text.append(f"{label:>12}  ", style="bold")
        text.append(sparkline(values, spark), style=style)
        text.append(f" {fmt(values[-1] if values else None):>9}\n")

    text.append("\nlast promotion\n", style="bold")
    for line, style in promotion_lines(promotion):
        text.append(f"  {line}\n", style=style)

    text.append("\nlast bench\n", style="bold")
    if not bench_loaded:
        text.append("  reading saved results…\n", style="dim")
    else:
        for line in bench_lines(bench, lane.name, lane.variant):
            text.append(f"  {line}\n", style="" if bench else "dim")
    if lane.log_tail:
        text.append("\nlast output\n", style="bold")
        for line in lane.log_tail:
            text.append(f"  | {line}\n", style="dim")
    return text
