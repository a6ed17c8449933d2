"""``qwenctl verify``: a verification report of a deployment (Markdown, or JSON with --json).

Sections: environment (NPU health per NPU used, driver/firmware/CANN versions,
each lane's backend version), endpoints, routes (through the router, against the
policy), latency over N single requests, QPS at a concurrency, GSM8K accuracy.
Exit status 0 when no section failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from qwend import __version__
from qwend.api.messages import LaneInfo, NpusResponse, StatusResponse
from qwend.bench.target import LANE_HOST, Target, from_status, is_url
from qwend.bench.target import resolve as resolve_target
from qwend.bench.wire import first_model
from qwend.cli.bench import Context, add_credential_args, credentials
from qwend.cli.exit import ExitStatus
from qwend.errors import ControlError
from qwend.verify import checks
from qwend.verify.environment import ASCEND_ROOT, environment_section, versions
from qwend.verify.interpreter import lane_packages
from qwend.verify.report import Report, Section, Verdict, render_markdown

SubFactory = Callable[[str, str], argparse.ArgumentParser]
MULTIMODAL_ROLE = "multimodal"
"""Lanes of this role take images; the others take text (the seed's topology)."""
REQUEST_TIMEOUT_S = 900.0


def _fraction(text: str) -> float:
    return float(text.rstrip("%")) / 100


def add_parser(sub: SubFactory) -> None:
    p = sub("verify", "verification report: environment, endpoints, routes, latency, QPS, GSM8K")
    p.add_argument(
        "target",
        nargs="?",
        default="router",
        help="router (default), role:NAME, lane:NAME or an OpenAI-compatible URL",
    )
    p.add_argument("--requests", type=int, default=10, metavar="N", help="latency requests (10)")
    p.add_argument("--concurrency", type=int, default=10, metavar="C", help="QPS concurrency (10)")
    p.add_argument("--total", type=int, default=50, metavar="M", help="QPS requests (50)")
    p.add_argument(
        "--gsm8k-samples",
        type=int,
        default=20,
        metavar="N",
        help="GSM8K test problems, 1-200 (20; 0 skips accuracy)",
    )
    p.add_argument("--shots", type=int, default=4, help="worked examples in the prompt (4)")
    p.add_argument("--temperature", type=float, default=0.6)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--max-tokens", type=int, default=512, help="GSM8K answer limit (512)")
    p.add_argument(
        "--min-accuracy",
        type=_fraction,
        metavar="PCT",
        help="fail the accuracy section below this (default: report only)",
    )
    p.add_argument(
        "--image",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="send an image request (default: when a multimodal lane is active)",
    )
    p.add_argument(
        "--ascend-root",
        default=str(ASCEND_ROOT),
        metavar="DIR",
        help="where driver, firmware and ascend-toolkit are installed",
    )
    p.add_argument("--model", help="model name (default: the target's first /v1/models id)")
    p.add_argument("--output", "-o", metavar="FILE", help="also write the report here")
    add_credential_args(p)


async def _daemon(ctx: Context) -> tuple[StatusResponse | None, NpusResponse | None]:
    """The daemon's status and NPU view; a URL target works without a daemon."""
    try:
        async with ctx.client() as client:
            return await client.status(), await client.npus()
    except (ControlError, OSError):
        if not is_url(ctx.args.target):
            raise
        return None, None


def _running(lanes: tuple[LaneInfo, ...]) -> list[LaneInfo]:
    return [lane for lane in lanes if lane.pid is not None and lane.port]


def _served_lanes(target: Target, status: StatusResponse | None) -> list[LaneInfo]:
    if status is None:
        return []
    running = _running(status.lanes)
    if target.lane:
        return [lane for lane in running if lane.name == target.lane]
    return [lane for lane in running if lane.active]


def _expected_routes(status: StatusResponse) -> dict[str, set[str]]:
    active = [lane for lane in _running(status.lanes) if lane.active]
    images = {lane.name for lane in active if lane.role == MULTIMODAL_ROLE}
    text = {lane.name for lane in active if lane.role != MULTIMODAL_ROLE}
    expected = {"short text": text, "long text": text}
    if images:
        expected["image"] = images
    return expected


async def _model(target: Target, headers: dict[str, str], tls: ssl.SSLContext | bool) -> str:
    """The model name to ask the target for.

    Through qwend (router, role) the public name; a lane addressed directly knows the
    model by the name its backend serves, which may be a path (transformers serve), so
    the lane's own ``/v1/models`` says first.
    """
    if target.lane:
        return await first_model(target.url, headers=headers, tls=tls) or target.model or "default"
    return target.model or await first_model(target.url, headers=headers, tls=tls) or "default"


async def cmd_verify(ctx: Context) -> int:
    args = ctx.args
    status, npus = await _daemon(ctx)
    target = from_status(args.target, status) if status else await resolve_target(args.target, None)
    lanes = _served_lanes(target, status)
    headers, tls = credentials(args, ctx.env)
    model = args.model or await _model(target, headers, tls)
    image = args.image
    if image is None:
        image = any(lane.role == MULTIMODAL_ROLE for lane in lanes)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    sections: list[Section] = []
    connector = aiohttp.TCPConnector(ssl=tls)
    async with aiohttp.ClientSession(
        timeout=timeout, headers=headers, connector=connector
    ) as session:
        probes = [(lane.name, lane.variant, f"http://{LANE_HOST}:{lane.port}") for lane in lanes]
        version_rows = await checks.lane_versions(session, probes or [("target", "-", target.url)])
        sim_lanes = frozenset(row[0] for row in version_rows if row[-1] == "yes")
        simulated = len(sim_lanes) == len(version_rows)
        packages = {lane.name: await lane_packages(lane.pid) for lane in lanes}
        sections.append(
            environment_section(
                npus.view if npus else None,
                bool(npus and npus.enabled),
                versions(Path(args.ascend_root)),
                version_rows,
                packages,
            )
        )
        ctx.stderr.write("verify: endpoints\n")
        sections.append(
            await checks.endpoints(session, target.url, model, image, direct=bool(target.lane))
        )
        if target.via_router and status is not None:
            ctx.stderr.write("verify: routes\n")
            sections.append(
                await checks.routes(session, target.url, model, _expected_routes(status))
            )
        else:
            sections.append(Section("Routes", Verdict.SKIPPED, "the target is not the router"))
        ctx.stderr.write(f"verify: latency over {args.requests} requests\n")
        sections.append(await checks.latency(session, target.url, model, max(1, args.requests)))
        ctx.stderr.write(f"verify: {args.total} requests at concurrency {args.concurrency}\n")
        sections.append(
            await checks.qps(
                session, target.url, model, max(1, args.concurrency), max(1, args.total)
            )
        )
        if args.gsm8k_samples > 0:
            ctx.stderr.write(f"verify: GSM8K, {args.gsm8k_samples} problems\n")
            cfg = checks.AccuracySettings(
                samples=args.gsm8k_samples,
                shots=args.shots,
                temperature=args.temperature,
                top_p=args.top_p,
                max_tokens=args.max_tokens,
                min_accuracy=args.min_accuracy,
            )
            sections.append(
                await checks.accuracy(session, target.url, model, cfg, simulated, sim_lanes)
            )
        else:
            sections.append(Section("Accuracy (GSM8K)", Verdict.SKIPPED, "--gsm8k-samples 0"))
    report = Report(
        target=args.target,
        url=target.url,
        generated_at=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        qwend_version=__version__,
        simulated=simulated,
        sections=tuple(sections),
        simulated_lanes=() if simulated else tuple(sorted(sim_lanes)),
    )
    text = json.dumps(report.to_dict(), indent=2) + "\n" if ctx.json else render_markdown(report)
    if args.output:
        await asyncio.to_thread(Path(args.output).write_text, text, "utf-8")
    ctx.out(text.rstrip("\n"))
    return ExitStatus.OK if report.ok else ExitStatus.ERROR
