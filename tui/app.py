"""qwen-tui: watch and operate qwend from a terminal on the host."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType

from qwen_tui.actions import ACTION_TITLES, Action, impact
from qwen_tui.backoff import Backoff
from qwen_tui.commands import QwendCommands
from qwen_tui.history import History
from qwen_tui.messages import (
    ActionFinished,
    ActionRequested,
    DaemonEvent,
    DaemonUnreachable,
    DetailRequested,
    EventStreamLost,
    LogsRequested,
    StatsReceived,
    StatusReceived,
)
from qwen_tui.promotion import PromotionItem, Promotions
from qwen_tui.screens.confirm import ConfirmScreen
from qwen_tui.screens.dashboard import DashboardScreen
from qwen_tui.screens.detail import DetailScreen
from qwen_tui.screens.help import HelpScreen
from qwen_tui.screens.logs import LogsScreen
from qwen_tui.screens.promotion import PromotionScreen
from qwend import __version__
from qwend.api.client import (
    ControlClient,
    ControlTimeout,
    DaemonNotRunning,
    SocketPermissionDenied,
    discover_socket,
)
from qwend.api.describe import promotion_line, result_line
from qwend.api.messages import (
    EventKind,
    LaneAction,
    PromotionAccepted,
    PromotionEvent,
    PromotionRecord,
    ReloadResponse,
)
from qwend.api.stats import StatsFrame, apply_update
from qwend.bench.store import results_dir
from qwend.errors import QwendError

STATUS_TIMEOUT_S = 10.0
"""A daemon silent for longer than this (and three ticks) shows as unreachable."""


def local_now() -> datetime:
    """Wall clock in the local time zone (the "since" of an outage)."""
    return datetime.now().astimezone()


def _problem(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, QwendError) else f"{type(exc).__name__}: {exc}"


class QwenTui(App[None]):
    """Composes the screens and talks to the daemon in workers; widgets never do I/O."""

    TITLE = "qwen-tui"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "quit", "Quit")]
    COMMANDS = App.COMMANDS | {QwendCommands}

    def __init__(
        self,
        socket_path: Path,
        refresh_s: float = 2.0,
        client_factory: Callable[[Path], ControlClient] = ControlClient,
        clock: Callable[[], datetime] = local_now,
        backoff_cap_s: float = 10.0,
        bench_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.socket_path = socket_path
        # Injectable so tests render fixed data and a fixed clock; else the socket and the time.
        self.client_factory = client_factory
        self.clock = clock
        self.refresh_s = refresh_s
        self.backoff_cap_s = backoff_cap_s
        self.sub_title = str(socket_path)
        self.dashboard = DashboardScreen()
        self.history = History()
        self.promotions = Promotions()
        self.frame: StatsFrame | None = None
        # Saved ``qwenctl bench`` results of the operator running qwen-tui (the same store).
        self.bench_dir = results_dir(os.environ) if bench_dir is None else bench_dir

    def on_mount(self) -> None:
        self.push_screen(self.dashboard)
        self.watch_stats()
        self.watch_events()

    def _backoff(self) -> Backoff:
        return Backoff(first=min(0.5, self.refresh_s), cap=self.backoff_cap_s)

    # --- workers: everything the daemon says comes in here ------------------------------

    @work(exclusive=True, exit_on_error=False, group="stats")
    async def watch_stats(self) -> None:
        """Follow the stats stream; on any failure say since when qwend is away and retry."""
        backoff = self._backoff()
        down_since: datetime | None = None
        silence = max(STATUS_TIMEOUT_S, 3 * self.refresh_s)
        while True:
            try:
                async with self.client_factory(self.socket_path) as client:
                    async with asyncio.timeout(STATUS_TIMEOUT_S):
                        self.post_message(StatusReceived(await client.status()))
                    frame: StatsFrame | None = None
                    seq = -1
                    stream = client.stats_stream(self.refresh_s)
                    async with contextlib.aclosing(stream):  # type: ignore[type-var]
                        while True:
                            # Heartbeats come every tick: a wedged daemon shows as away.
                            async with asyncio.timeout(silence):
                                update = await anext(stream)
                            if frame is not None and not update.full and update.seq != seq + 1:
                                raise QwendError("missed stats updates; resubscribing")
                            seq, frame = update.seq, apply_update(frame, update)
                            self.frame = frame
                            self.history.add(frame)
                            down_since = None
                            backoff.succeeded()
                            self.post_message(StatsReceived(frame))
            except StopAsyncIteration:
                problem = "qwend ended the stats stream"
            except TimeoutError:
                problem = f"qwend sent nothing for {silence:g} s on {self.socket_path}"
            except (
                Exception
            ) as exc:  # the worker boundary: any failure means retry, not a dead view
                problem = _problem(exc)
            if down_since is None:
                down_since = self.clock()
            self.post_message(DaemonUnreachable(problem, down_since))
            await asyncio.sleep(backoff.failed())

    @work(exclusive=True, exit_on_error=False, group="events")
    async def watch_events(self) -> None:
        """Stream lane state changes and promotion progress into the event log."""
        said = ""
        backoff = self._backoff()
        while True:
            streaming = False
            try:
                async with self.client_factory(self.socket_path) as client:
                    # No periodic stats here: the stats stream carries them, as deltas.
                    async for event in client.events(stats_interval_s=0):
                        streaming, said = True, ""
                        backoff.succeeded()
                        if event.kind is not EventKind.STATS:
                            self.post_message(DaemonEvent(event))
                problem = "qwend ended the event stream"
            except (DaemonNotRunning, SocketPermissionDenied, ControlTimeout) as exc:
                # The banner already says qwend cannot be reached: only news if we were live.
                problem = str(exc) if streaming else ""
            except Exception as exc:  # refused, unknown event, or a bug: say it, then retry
                problem = _problem(exc)
            if problem and problem != said:  # once per problem, not once per retry
                self.post_message(EventStreamLost(f"no live events: {problem}; retrying"))
                said = problem
            await asyncio.sleep(backoff.failed())

    # --- what the workers found -----------------------------------------------------------

    def on_stats_received(self, message: StatsReceived) -> None:
        self.dashboard.show_frame(message.frame, self.history, self.promotions)
        if isinstance(detail := self._top(), DetailScreen):
            detail.set_stale(False)
            detail.redraw()

    def on_status_received(self, message: StatusReceived) -> None:
        self.dashboard.show_status(message.status)

    def on_daemon_unreachable(self, message: DaemonUnreachable) -> None:
        self.dashboard.show_unreachable(message.reason, message.since)
        if isinstance(detail := self._top(), DetailScreen):
            detail.set_stale(True, f"qwend unreachable since {message.since:%H:%M:%S}")

    def on_daemon_event(self, message: DaemonEvent) -> None:
        payload = message.event.payload()
        if isinstance(payload, PromotionAccepted | PromotionEvent | PromotionRecord):
            self._promotion_item(payload)
        else:
            self.dashboard.add_event(message.event)

    def _promotion_item(self, item: PromotionItem) -> None:
        """One promotion item from either stream: logged once, progress view refreshed."""
        if not self.promotions.feed(item):
            return
        if isinstance(item, PromotionRecord):
            progress = self.promotions.get(item.id)
            ok = progress is not None and progress.ok
            # One line in the log; a failed candidate's output is in the promotion view (P).
            line = result_line(item)
            self.dashboard.add_note(line, "green" if ok else "bold red")
            if not ok:
                self.notify(line, severity="error")
        else:
            self.dashboard.add_event_line(promotion_line(item))
        self.dashboard.show_promotions(self.promotions)
        if isinstance(detail := self._top(), DetailScreen):
            detail.redraw()
        if isinstance(self.screen, PromotionScreen):
            self.screen.refresh_progress()

    def on_event_stream_lost(self, message: EventStreamLost) -> None:
        self.dashboard.add_note(message.reason, "yellow")
        self.notify(message.reason, severity="warning")

    def on_action_finished(self, message: ActionFinished) -> None:
        self.dashboard.add_note(message.text, "green" if message.ok else "bold red")
        if not message.ok:
            self.notify(message.text, severity="error")

    # --- operator actions: confirm, then run ---------------------------------------------

    def on_action_requested(self, message: ActionRequested) -> None:
        self.request_action(message.action, message.lane)

    def request_action(self, action: Action, lane: str | None) -> None:
        """Ask for confirmation with the action's impact; run it only on an explicit yes."""
        what = impact(action, self.frame, lane)
        label = ACTION_TITLES[action].split()[0]

        def decided(confirmed: bool | None) -> None:
            if confirmed:
                self.perform_action(action, lane)
            else:
                self.dashboard.add_note(f"{what.title}: cancelled", "dim")

        self.push_screen(ConfirmScreen(what, label), decided)

    @work(exit_on_error=False, group="actions")
    async def perform_action(self, action: Action, lane: str | None) -> None:
        """Carry out a confirmed action; the outcome goes to the event log."""
        subject = f"{action.value} {lane or ''}".strip()
        try:
            async with self.client_factory(self.socket_path) as client:
                if action in (Action.PROMOTE, Action.ROLLBACK):
                    text, ok = await self._promotion(client, action, lane or "")
                elif action is Action.RELOAD:
                    text, ok = _reload_text(await client.reload())
                else:
                    # The confirmation the operator just accepted stated the impact; it is
                    # the --force the daemon asks for on a role's active lane.
                    result = await client.lane_action(
                        lane or "", LaneAction(action.value), force=True
                    )
                    text, ok = f"{subject}: {result.lane.state}", True
        except Exception as exc:  # the worker boundary: report, never crash the view
            text, ok = f"{subject} failed: {_problem(exc)}", False
        if text:
            self.post_message(ActionFinished(text, ok))

    async def _promotion(
        self, client: ControlClient, action: Action, lane: str
    ) -> tuple[str, bool]:
        if action is Action.PROMOTE:
            stream = client.promote(lane)
        else:
            role = next(
                (x.role for x in (self.frame.lanes if self.frame else ()) if x.name == lane), lane
            )
            stream = client.rollback(role)
        final: PromotionRecord | None = None
        async for item in stream:
            if isinstance(item, PromotionAccepted):
                self.push_screen(PromotionScreen(self.promotions, item.id, self._daemon_now))
            if isinstance(item, PromotionRecord):
                final = item
            self._promotion_item(item)
        if final is None:
            return f"{action.value} {lane}: no result from qwend", False
        return "", True  # the result line was logged once, by _promotion_item

    def _daemon_now(self) -> float:
        """Daemon time of the latest frame (elapsed times are on the daemon's clock)."""
        return self.frame.at if self.frame is not None else self.clock().timestamp()

    # --- screens -------------------------------------------------------------------------

    def on_logs_requested(self, message: LogsRequested) -> None:
        self.push_screen(LogsScreen(message.lane, partial(self.client_factory, self.socket_path)))

    def _top(self) -> object:
        """The screen on top, or None while the app shuts down (frames may still arrive)."""
        return self.screen_stack[-1] if self.screen_stack else None

    def on_detail_requested(self, message: DetailRequested) -> None:
        self.push_screen(
            DetailScreen(
                message.lane,
                lambda: self.frame,
                self.history,
                self.promotions,
                partial(self.client_factory, self.socket_path),
                self.bench_dir,
            )
        )

    def action_show_keys(self) -> None:
        self.push_screen(HelpScreen())

    def action_show_promotion(self) -> None:
        self.push_screen(PromotionScreen(self.promotions, None, self._daemon_now))


def _reload_text(response: ReloadResponse) -> tuple[str, bool]:
    if not response.ok:
        issues = "; ".join(str(e) for e in response.errors) or "no reason given"
        return f"reload refused, nothing changed: {issues}", False
    parts = [
        f"{name} {', '.join(lanes)}"
        for name, lanes in (
            ("restarted", response.restarted),
            ("started", response.started),
            ("stopped", response.stopped),
        )
        if lanes
    ]
    return "reloaded: " + ("; ".join(parts) or "no lane changed"), True


def build_parser() -> argparse.ArgumentParser:
    """Arguments of qwen-tui (also used to generate its man page)."""
    parser = argparse.ArgumentParser(
        prog="qwen-tui",
        description="Terminal UI for qwend: lanes, live latency graphs, NPUs, events,"
        " promotion; every action that changes traffic asks first. Press ? for the keys.",
        epilog="Socket discovery: --socket, $QWEND_SOCKET, /run/qwend/control.sock, "
        "$XDG_RUNTIME_DIR/qwend/control.sock.",
    )
    parser.add_argument("--socket", help="control socket of the qwend daemon")
    parser.add_argument(
        "--host",
        metavar="NAME",
        help="watch and act on a peer host's lanes ([[peers]] name): the local daemon"
        " forwards every request over its link to that host",
    )
    parser.add_argument(
        "--refresh",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds between live updates (the daemon pushes changes at this tick;"
        " default %(default)s, as nvitop and btop)",
    )
    parser.add_argument("--version", action="version", version=f"qwen-tui {__version__}")
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point of ``qwen-tui``."""
    args = build_parser().parse_args(argv)
    environ = os.environ if env is None else env
    try:
        socket_path = discover_socket(args.socket, environ)
    except QwendError as exc:
        print(f"qwen-tui: {exc}", file=sys.stderr)
        return 3
    if args.host:
        app = QwenTui(
            socket_path,
            refresh_s=args.refresh,
            client_factory=partial(ControlClient, host=args.host),
        )
        app.sub_title = f"{socket_path} -> host {args.host}"
        app.run()
        return 0
    QwenTui(socket_path, refresh_s=args.refresh).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
