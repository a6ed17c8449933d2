"""qwenctl subcommands: one async function per command, in ``COMMANDS``."""

from __future__ import annotations

import argparse
import importlib.resources
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from qwend.api.client import ControlClient, PromotionItem, discover_socket
from qwend.api.describe import event_line, promotion_line
from qwend.api.messages import (
    ConfigIssueInfo,
    Event,
    EventKind,
    LaneAction,
    Message,
    PromotionAccepted,
    PromotionRecord,
)
from qwend.cli import render
from qwend.cli.bench import cmd_bench, gate_request
from qwend.cli.exit import ExitStatus, exit_status_for_outcome
from qwend.cli.npus import parse_npu_file
from qwend.cli.verify import cmd_verify
from qwend.config.check import render_check
from qwend.config.load import DEFAULT_CONFIG_PATH, check_config
from qwend.config.model import LaneConfig
from qwend.errors import ControlError


@dataclass
class Context:
    """One invocation: parsed arguments, environment and output streams."""

    args: argparse.Namespace
    env: Mapping[str, str]
    stdout: TextIO
    stderr: TextIO

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    def client(self) -> ControlClient:
        return ControlClient(discover_socket(self.args.socket, self.env))

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

    def emit_line(self, message: Message, human: str) -> None:
        """One NDJSON line with --json (streams), else the human line."""
        self.out(json.dumps(message.to_dict()) if self.json else human)


Command = Callable[[Context], Coroutine[Any, Any, int]]


async def cmd_status(ctx: Context) -> int:
    async with ctx.client() as client:
        status = await client.status()
    ctx.emit(status, render.render_status(status))
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
    async with ctx.client() as client:
        if not ctx.args.wait:
            accepted = await client.promote_nowait(ctx.args.name, ctx.args.timeout, gate)
            return _accepted(ctx, accepted)
        return await _follow_promotion(ctx, client.promote(ctx.args.name, ctx.args.timeout, gate))


async def cmd_rollback(ctx: Context) -> int:
    async with ctx.client() as client:
        if not ctx.args.wait:
            return _accepted(ctx, await client.rollback_nowait(ctx.args.name, ctx.args.timeout))
        return await _follow_promotion(ctx, client.rollback(ctx.args.name, ctx.args.timeout))


def _lane_action(action: LaneAction) -> Command:
    async def run(ctx: Context) -> int:
        async with ctx.client() as client:
            result = await client.lane_action(ctx.args.name, action)
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
    async with ctx.client() as client:
        result = await client.reload()
    if result.ok or ctx.json:
        ctx.emit(result, render.render_reload(result))
    else:
        ctx.stderr.write(render.render_reload(result))
    return ExitStatus.OK if result.ok else ExitStatus.ERROR


async def cmd_events(ctx: Context) -> int:
    interval = ctx.args.stats
    async with ctx.client() as client:
        async for event in client.events(stats_interval_s=interval):
            if event.kind is EventKind.STATS and interval <= 0:
                continue
            ctx.emit_line(event, event_line(event))
    return ExitStatus.OK


async def cmd_check_config(ctx: Context) -> int:
    check = check_config(Path(ctx.args.path) if ctx.args.path else DEFAULT_CONFIG_PATH)
    if ctx.json:
        errors = [ConfigIssueInfo(i.file, i.key, i.message).to_dict() for i in check.issues]
        data: dict[str, Any] = {"ok": check.ok, "path": str(check.path), "errors": errors}
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


def completion_script(shell: str) -> str:
    """The completion script shipped as package data."""
    return importlib.resources.files("qwend.cli").joinpath(f"qwenctl.{shell}").read_text()


async def cmd_completion(ctx: Context) -> int:
    ctx.stdout.write(completion_script(ctx.args.shell))
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
}
