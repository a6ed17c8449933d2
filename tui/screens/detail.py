"""One lane in full: config, state, graphs, its last promotion and its last bench."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from qwen_tui.detail import detail_text, last_promotion
from qwen_tui.history import History
from qwen_tui.lastbench import LaneBench, last_bench
from qwen_tui.messages import LogsRequested
from qwen_tui.promotion import Promotions
from qwend.api.client import ControlClient
from qwend.api.messages import PromotionRecord
from qwend.api.stats import StatsFrame
from qwend.bench.store import ResultNotFound
from qwend.errors import QwendError


class DetailScreen(Screen[None]):
    """Redrawn on every frame the app receives; the promotion history and bench load once."""

    CSS_PATH = "detail.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("l", "logs", "Logs"),
        Binding("P", "app.show_promotion", "Promotion"),
    ]

    def __init__(
        self,
        lane: str,
        frame: Callable[[], StatsFrame | None],
        history: History,
        promotions: Promotions,
        connect: Callable[[], ControlClient],
        bench_dir: Path,
    ) -> None:
        super().__init__()
        self.lane = lane
        self.frame = frame
        self.history = history
        self.promotions = promotions
        self.connect = connect
        self.bench_dir = bench_dir
        self.bench: LaneBench | None = None
        self.bench_loaded = False
        self.bench_problem = ""
        self.history_records: tuple[PromotionRecord, ...] = ()
        # Held, not queried: frames arrive every tick, also before the screen is mounted.
        self.title_bar = Static(f"lane {lane}", id="detail-title")
        self.body = Static("", id="detail")

    def compose(self) -> ComposeResult:
        yield self.title_bar
        with VerticalScroll(id="detail-body"):
            yield self.body
        yield Footer()

    def on_mount(self) -> None:
        self.redraw()
        self.load_bench()
        self.load_promotions()

    @work(thread=True, exclusive=True, exit_on_error=False, group="bench")
    def load_bench(self) -> None:
        """Read the saved results (file I/O, off the event loop)."""
        try:
            bench, problem = last_bench(self.bench_dir, self.lane), ""
        except (OSError, ResultNotFound) as exc:  # an unreadable directory is a notice
            bench, problem = None, f"cannot read saved bench results in {self.bench_dir}: {exc}"
        self.app.call_from_thread(self._bench_loaded, bench, problem)

    def _bench_loaded(self, bench: LaneBench | None, problem: str) -> None:
        self.bench, self.bench_loaded, self.bench_problem = bench, True, problem
        self.redraw()

    @work(exclusive=True, exit_on_error=False, group="promotions")
    async def load_promotions(self) -> None:
        """qwend's promotion history (promotions from before qwen-tui started, too)."""
        try:
            async with self.connect() as client:
                self.history_records = (await client.promotions()).history
        except Exception as exc:  # the worker boundary: say it, the rest of the view stands
            problem = str(exc) if isinstance(exc, QwendError) else repr(exc)
            self.notify(f"promotion history unavailable: {problem}", severity="warning")
        self.redraw()

    def redraw(self) -> None:
        """Draw the lane from the app's latest frame (called on every frame)."""
        frame = self.frame()
        lanes = () if frame is None else frame.lanes
        lane = next((x for x in lanes if x.name == self.lane), None)
        if frame is None or lane is None:
            self.body.update(f"lane {self.lane} is not known to qwend right now")
            return
        seen = [p.record for p in self.promotions.all() if p.record is not None]
        promotion = last_promotion(self.lane, frame.promotions, (*self.history_records, *seen))
        width = self.size.width - 2 if self.size.width else 100
        text = detail_text(
            lane, frame.at, self.history, promotion, self.bench, self.bench_loaded, width
        )
        if self.bench_problem:
            text.append(f"  {self.bench_problem}\n", style="bold red")
        self.body.update(text)

    def set_stale(self, stale: bool, why: str = "") -> None:
        """qwend is away: grey the view and say so in the title."""
        if stale == self.has_class("-stale"):
            return
        self.set_class(stale, "-stale")
        self.title_bar.update(
            f"lane {self.lane}" + (f" · {why} · last values seen" if stale else "")
        )

    def action_logs(self) -> None:
        self.app.post_message(LogsRequested(self.lane))
