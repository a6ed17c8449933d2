"""qwenctl subcommands: one async function per command, in ``COMMANDS``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from qwend.api import reconnect
from qwend.api.client import (
    ControlClient,
    ControlTimeout,
    DaemonNotRunning,
    PromotionItem,
    RemoteError,
    discover_socket,
)
from qwend.api.describe import event_line, promotion_line
from qwend.api.messages import (
    ConfigIssueInfo,
    DaemonInfo,
    ErrorCode,
    Event,
    EventKind,
    LaneAction,
    Message,
    PromotionAccepted,
    PromotionRecord,
)
from qwend.cli import completion, render
from qwend.cli.bench import cmd_bench, gate_request
from qwend.cli.clustercheck import run_cluster_check
from qwend.cli.exit import ExitStatus, exit_status_for_outcome
from qwend.cli.init import InitRequest, list_text, run_init
from qwend.cli.npus import parse_npu_file
from qwend.cli.verify import cmd_verify
from qwend.config.check import render_check
from qwend.config.load import DEFAULT_CONFIG_PATH, check_config
from qwend.config.model import LaneConfig
from qwend.errors import ControlError
from qwend.npu.hostcheck import with_host_check

READ_TIMEOUT_S = 5.0
"""Default wait of a read-only command: a hung daemon must not block a shell or a script."""
ACTION_TIMEOUT_S = 300.0
"""Default wait of an action: a drain, a stop or a lane start may take minutes."""


@dataclass
class Context:
    """One invocation: parsed arguments, environment and output streams."""

    args: argparse.Namespace
    env: Mapping[str, str]
    stdout: TextIO
    stderr: TextIO
    parser: argparse.ArgumentParser | None = None
    """The parser the arguments came from (completion scripts are generated from it)."""

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    def client(self, *, read_only: bool = True) -> ControlClient:
        """A client waiting ``--timeout`` seconds, else the default for the kind of command."""
        explicit: float | None = getattr(self.args, "request_timeout", None)
        default = READ_TIMEOUT_S if read_only else ACTION_TIMEOUT_S
        return ControlClient(
            discover_socket(self.args.socket, self.env),
            timeout_s=explicit if explicit is not None else default,
            host=getattr(self.args, "host", None),
        )

    def out(self, text: str) -> None:
        self.stdout.write(text if text.endswith("\n") else text + "\n")
        self.stdout.flush()

    def err(self, text: str) -> None:
        self.stderr.write(f"qwenctl: {text}\n")
        self.stderr.flush()

    def emit(self, message: Message | Mapping[str, Any], human: str) -> None:
        """``message`` as indented JSON with --json, else the human text."""
        if self.json:
            data = message.to_dict() if isinstance(message, Message) else dict(message)
            self.out(json.dumps(data, indent=2))
        else:
            self.out(human)

    def emit_line(self, message: Message, human: str, *, stamp: bool = False) -> None:
        """One NDJSON line with --json (streams), else the human line.

        ``stamp`` adds ``time``: when qwenctl received the line (ISO 8601, UTC).
        """
        if not self.json:
            self.out(human)
            return
        data = message.to_dict()
        if stamp:
            data = {"time": iso_now(), **data}
        self.out(json.dumps(data))


def iso_now() -> str:
    """Now as ISO 8601 UTC with milliseconds (``2026-01-31T12:00:00.123Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


Command = Callable[[Context], Coroutine[Any, Any, int]]


async def cmd_status(ctx: Context) -> int:
    """Every host's lanes when the daemon has peers; ``--local``/``--host``: one host."""
    async with ctx.client() as client:
        if getattr(ctx.args, "local", False) or client.host is not None:
            view = None
        else:
            try:
                view = await client.cluster()
            except RemoteError as exc:
                if exc.code is not ErrorCode.NOT_FOUND:  # a daemon without /v1/cluster
                    raise
                view = None
        if view is None or (not view.this and len(view.hosts) == 1):
            status = view.hosts[0].status if view is not None else await client.status()
            assert status is not None  # this host's status is always there
            ctx.emit(status, render.render_status(status))
            return ExitStatus.OK
    ctx.emit(view, render.render_cluster(view))
    # Every host shown, yet a check script must not read a silent peer as a healthy one.
    if any(host.status is None for host in view.hosts):
        return ExitStatus.PEER_UNREACHABLE
    return ExitStatus.OK


async def cmd_lanes(ctx: Context) -> int:
    async with ctx.client() as client:
        lanes = await client.lanes()
    ctx.emit(lanes, render.render_lanes(lanes))
    return ExitStatus.OK


def _read_input(name: str) -> str:
    return sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")


async def cmd_npus(ctx: Context) -> int:
    if ctx.args.parse:
        data, table = parse_npu_file(_read_input(ctx.args.parse))
        ctx.emit(data, table)
        return ExitStatus.OK
    async with ctx.client() as client:
        npus = await client.npus()
    ctx.emit(npus, npus.table)
    return ExitStatus.OK


async def _follow_promotion(ctx: Context, stream: AsyncIterator[PromotionItem]) -> int:
    async for item in stream:
        ctx.emit_line(Event.of(item), promotion_line(item))
        if isinstance(item, PromotionRecord):
            return exit_status_for_outcome(item.outcome)
    raise ControlError("the daemon ended the promotion stream without a result; see qwenctl status")


def _accepted(ctx: Context, accepted: PromotionAccepted) -> int:
    ctx.emit(accepted, promotion_line(accepted))
    if not ctx.json:
        ctx.stderr.write("running in the daemon; follow it with: qwenctl events\n")
    return ExitStatus.OK


async def cmd_promote(ctx: Context) -> int:
    gate = gate_request(ctx.args)
    async with ctx.client(read_only=False) as client:
        if not ctx.args.wait:
            accepted = await client.promote_nowait(ctx.args.name, ctx.args.timeout, gate)
            return _accepted(ctx, accepted)
        return await _follow_promotion(ctx, client.promote(ctx.args.name, ctx.args.timeout, gate))


async def cmd_rollback(ctx: Context) -> int:
    async with ctx.client(read_only=False) as client:
        if not ctx.args.wait:
            return _accepted(ctx, await client.rollback_nowait(ctx.args.name, ctx.args.timeout))
        return await _follow_promotion(ctx, client.rollback(ctx.args.name, ctx.args.timeout))


def _lane_action(action: LaneAction) -> Command:
    async def run(ctx: Context) -> int:
        force = bool(getattr(ctx.args, "force", False))
        now = bool(getattr(ctx.args, "now", False))
        async with ctx.client(read_only=False) as client:
            result = await client.lane_action(ctx.args.name, action, force=force, now=now)
        ctx.emit(result, render.render_action(result))
        return ExitStatus.OK

    return run


async def cmd_logs(ctx: Context) -> int:
    args = ctx.args
    async with ctx.client() as client:
        if args.follow and not args.previous:
            async for line in client.follow_logs(args.name, args.lines):
                ctx.emit_line(line, line.line)
            return ExitStatus.OK
        logs = await client.logs(args.name, args.lines, args.previous)
    ctx.emit(logs, "".join(line + "\n" for line in logs.lines) or "(empty)\n")
    return ExitStatus.OK


async def cmd_reload(ctx: Context) -> int:
    async with ctx.client(read_only=False) as client:
        result = await client.reload()
    if result.ok or ctx.json:
        ctx.emit(result, render.render_reload(result))
    else:
        ctx.stderr.write(render.render_reload(result))
    return ExitStatus.OK if result.ok else ExitStatus.ERROR


async def cmd_events(ctx: Context) -> int:
    """Follow the event stream; once connected, reconnect with backoff whenever it breaks."""
    connected = False
    attempt = 0
    while True:
        try:
            async with ctx.client() as client:
                async for event in client.events(stats_interval_s=ctx.args.stats):
                    if event.kind is EventKind.HELLO:
                        if attempt:
                            ctx.err(f"reconnected to qwend{_pid_text(event)}")
                        connected, attempt = True, 0
                    if event.kind is not EventKind.STATS or ctx.args.stats > 0:
                        ctx.emit_line(event, event_line(event), stamp=True)
            reason = "the daemon closed the event stream (shutting down or restarting)"
        except (DaemonNotRunning, ControlTimeout) as exc:
            if not connected:
                raise  # never connected: qwend is not there; say so and exit
            reason = str(exc)
        if not ctx.args.reconnect:
            ctx.err(reason)
            return ExitStatus.OK
        attempt += 1
        delay = reconnect.delay(attempt)
        ctx.err(f"{reason}; reconnecting in {delay:.1f}s (attempt {attempt}, Ctrl-C to stop)")
        await asyncio.sleep(delay)


def _pid_text(event: Event) -> str:
    payload = event.payload()
    return f" (pid {payload.pid})" if isinstance(payload, DaemonInfo) else ""


async def cmd_check_config(ctx: Context) -> int:
    if ctx.args.cluster:
        if ctx.args.path:
            ctx.err("check-config: give PATH or --cluster PATH..., not both")
            return ExitStatus.USAGE
        cluster, result, out, err = run_cluster_check(ctx.args.cluster)
        if ctx.json:
            ctx.emit(result, "")
        else:
            if out:
                print(out, file=ctx.stdout)
            if err:
                print(err, file=ctx.stderr)
        return ExitStatus.OK if cluster.ok else ExitStatus.USAGE
    check = check_config(Path(ctx.args.path) if ctx.args.path else DEFAULT_CONFIG_PATH)
    check = with_host_check(check)
    if ctx.json:
        errors = [ConfigIssueInfo(i.file, i.key, i.message).to_dict() for i in check.issues]
        data: dict[str, Any] = {"ok": check.ok, "path": str(check.path), "errors": errors}
        data["warnings"] = list(check.warnings)
        data["notes"] = list(check.notes)
        if check.config is not None:
            data["lanes"] = [_lane_summary(lane) for lane in check.config.lanes]
        ctx.emit(data, "")
    else:
        print(render_check(check), file=ctx.stdout if check.ok else ctx.stderr)
    return ExitStatus.OK if check.ok else ExitStatus.USAGE


def _lane_summary(lane: LaneConfig) -> dict[str, Any]:
    """One lane in ``check-config --json``."""
    return {
        "name": lane.name,
        "role": lane.role,
        "variant": lane.variant,
        "standby": lane.standby,
        "npus": list(lane.npus),
        "port": lane.port,
    }


NAMES_TIMEOUT_S = 2.0
"""A completion waits this long for live names: a shell must not hang on a TAB."""


async def cmd_init(ctx: Context) -> int:
    if ctx.args.list:
        data, human = list_text()
        ctx.emit({"presets": data}, human)
        return ExitStatus.OK
    if not ctx.args.preset:
        ctx.err("init needs --preset NAME (qwenctl init --list shows them)")
        return ExitStatus.USAGE
    request = InitRequest(
        ctx.args.preset,
        Path(ctx.args.dir) if ctx.args.dir else None,
        force=ctx.args.force,
        host=ctx.args.host,
        addresses=ctx.args.address or (),
        nics=ctx.args.nic or (),
    )
    status, result, human = run_init(request)
    if ctx.json:
        ctx.emit(result, "")
    elif status == ExitStatus.OK:
        ctx.out(human)
    else:
        ctx.err(human)
    return status


async def cmd_completion(ctx: Context) -> int:
    if ctx.args.names:
        return await _print_names(ctx, ctx.args.names)
    if ctx.args.shell is None or ctx.parser is None:
        ctx.err("completion: name a shell: bash, zsh or fish")
        return ExitStatus.USAGE
    ctx.stdout.write(completion.render(ctx.args.shell, completion.spec(ctx.parser)))
    return ExitStatus.OK


async def _print_names(ctx: Context, kind: str) -> int:
    """Lane, role or peer host names of the running daemon, one a line (for completion
    scripts)."""
    client = ControlClient(discover_socket(ctx.args.socket, ctx.env), timeout_s=NAMES_TIMEOUT_S)
    async with client:
        if kind == completion.HOSTS:
            ctx.out("\n".join((await client.status()).daemon.peers))
            return ExitStatus.OK
        lanes = (await client.lanes()).lanes
    field = "name" if kind == completion.LANES else "role"
    names = {str(getattr(lane, field)) for lane in lanes}
    ctx.out("\n".join(sorted(names)))
    return ExitStatus.OK


COMMANDS: dict[str, Command] = {
    "status": cmd_status,
    "lanes": cmd_lanes,
    "npus": cmd_npus,
    "promote": cmd_promote,
    "rollback": cmd_rollback,
    **{action.value: _lane_action(action) for action in LaneAction},
    "logs": cmd_logs,
    "reload": cmd_reload,
    "events": cmd_events,
    "check-config": cmd_check_config,
    "completion": cmd_completion,
    "bench": cmd_bench,
    "verify": cmd_verify,
    "init": cmd_init,
}
