"""qwen-tui: watch and operate qwend from a terminal on the host."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

from textual import work
from textual.app import App

from qwen_tui.messages import (
    ActionFinished,
    DaemonEvent,
    DaemonUnreachable,
    EventStreamLost,
    LaneActionRequested,
    LogsRequested,
    StatusUpdated,
)
from qwen_tui.screens.dashboard import DashboardScreen
from qwen_tui.screens.logs import LogsScreen
from qwend import __version__
from qwend.api.client import (
    ControlClient,
    ControlTimeout,
    DaemonNotRunning,
    SocketPermissionDenied,
    discover_socket,
)
from qwend.api.describe import result_line
from qwend.api.messages import (
    EventKind,
    LaneAction,
    NpusResponse,
    PromotionOutcome,
    PromotionRecord,
)
from qwend.errors import QwendError

STATUS_TIMEOUT_S = 10.0
"""A status refresh slower than this shows the daemon as unreachable."""


class QwenTui(App[None]):
    """Composes the screens and talks to the daemon in workers; widgets never do I/O."""

    TITLE = "qwen-tui"
    BINDINGS = [("q", "quit", "Quit")]  # noqa: RUF012 - Textual's own convention

    def __init__(
        self,
        socket_path: Path,
        refresh_s: float = 1.0,
        client_factory: Callable[[Path], ControlClient] = ControlClient,
    ) -> None:
        super().__init__()
        self.socket_path = socket_path
        # Injectable so snapshot tests can render fixed data; everything else uses the socket.
        self.client_factory = client_factory
        self.refresh_s = refresh_s
        self.sub_title = str(socket_path)
        self.dashboard = DashboardScreen()

    def on_mount(self) -> None:
        self.push_screen(self.dashboard)
        self.poll_status()
        self.watch_events()

    @work(exclusive=True, exit_on_error=False, group="status")
    async def poll_status(self) -> None:
        """Refresh status and NPUs every ``refresh_s``; say clearly when qwend is away."""
        while True:
            try:
                async with self.client_factory(self.socket_path) as client:
                    while True:
                        # A wedged daemon must show as unreachable, not freeze the view.
                        async with asyncio.timeout(STATUS_TIMEOUT_S):
                            status = await client.status()
                            npus: NpusResponse | None = None
                            try:
                                npus = await client.npus()
                            except QwendError:
                                npus = None
                        self.dashboard.post_message(StatusUpdated(status, npus))
                        await asyncio.sleep(self.refresh_s)
            except QwendError as exc:
                self.dashboard.post_message(DaemonUnreachable(str(exc)))
                await asyncio.sleep(max(self.refresh_s, 1.0))
            except TimeoutError:
                reason = f"qwend did not answer within {STATUS_TIMEOUT_S:g} s ({self.socket_path})"
                self.dashboard.post_message(DaemonUnreachable(reason))

    @work(exclusive=True, exit_on_error=False, group="events")
    async def watch_events(self) -> None:
        """Stream lane state changes and promotion progress into the event log."""
        said = ""
        while True:
            streaming = False
            try:
                async with self.client_factory(self.socket_path) as client:
                    async for event in client.events():
                        streaming, said = True, ""
                        # Periodic stats already refresh the lanes table; the log is for changes.
                        if event.kind is not EventKind.STATS:
                            self.dashboard.post_message(DaemonEvent(event))
                problem = "qwend ended the event stream"
            except (DaemonNotRunning, SocketPermissionDenied, ControlTimeout) as exc:
                # The status line already says qwend cannot be reached: only news if we were live.
                problem = str(exc) if streaming else ""
            except QwendError as exc:  # the daemon refused the stream, or sent an unknown event
                problem = str(exc)
            if problem and problem != said:  # once per problem, not once per retry
                self.dashboard.post_message(EventStreamLost(f"no live events: {problem}; retrying"))
                said = problem
            await asyncio.sleep(max(self.refresh_s, 1.0))

    def on_lane_action_requested(self, message: LaneActionRequested) -> None:
        self.run_lane_action(message.lane, message.action)

    def on_logs_requested(self, message: LogsRequested) -> None:
        self.push_screen(LogsScreen(message.lane, partial(self.client_factory, self.socket_path)))

    @work(exit_on_error=False, group="actions")
    async def run_lane_action(self, lane: str, action: str) -> None:
        """Carry out an operator action; the outcome goes to the event log."""
        try:
            async with self.client_factory(self.socket_path) as client:
                if action == "promote":
                    text, ok = await self._promote(client, lane)
                else:
                    result = await client.lane_action(lane, LaneAction(action))
                    text, ok = f"{action} {lane}: {result.lane.state}", True
        except QwendError as exc:
            text, ok = f"{action} {lane} failed: {exc}", False
        self.dashboard.post_message(ActionFinished(text, ok))

    @staticmethod
    async def _promote(client: ControlClient, lane: str) -> tuple[str, bool]:
        final: PromotionRecord | None = None
        async for item in client.promote(lane):
            if isinstance(item, PromotionRecord):
                final = item
        if final is None:
            return f"promote {lane}: no result from qwend", False
        return result_line(final).rstrip(), final.outcome is PromotionOutcome.PROMOTED


def build_parser() -> argparse.ArgumentParser:
    """Arguments of qwen-tui (also used to generate its man page)."""
    parser = argparse.ArgumentParser(
        prog="qwen-tui",
        description="Terminal UI for qwend: lanes, live latency, NPUs, events, promotion.",
        epilog="Socket discovery: --socket, $QWEND_SOCKET, /run/qwend/control.sock, "
        "$XDG_RUNTIME_DIR/qwend/control.sock.",
    )
    parser.add_argument("--socket", help="control socket of the qwend daemon")
    parser.add_argument(
        "--refresh", type=float, default=1.0, metavar="S", help="seconds between status refreshes"
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
    QwenTui(socket_path, refresh_s=args.refresh).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
