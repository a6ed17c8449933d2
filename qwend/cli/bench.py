"""``qwenctl bench``: run seed cases or open-loop load, save, list and compare results.

    qwenctl bench [TARGET] [--suite seed | --case NAME ...] [--repeat N]
    qwenctl bench [TARGET] --rate R --duration S [--arrival poisson] [--mix text_8=3,mm_8=1]
    qwenctl bench compare A B     # saved results (id, prefix or path) or live targets
    qwenctl bench list

TARGET is ``router`` (default), ``role:NAME``, ``lane:NAME`` or an OpenAI-compatible URL.
The load runs here, in the client, like a user's traffic.
"""

from __future__ import annotations

import argparse
import json
import platform
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol, TextIO

from qwend import __version__
from qwend.api.client import ControlClient
from qwend.api.messages import GateRequest
from qwend.bench import store
from qwend.bench.compare import compare
from qwend.bench.render import render_comparison, render_result
from qwend.bench.results import BenchResult, CaseRun, Metadata, Slo
from qwend.bench.runner import RunSettings, run_scenarios
from qwend.bench.scenarios import SEED_CASES, SUITES, Arrival, Scenario, make_load, resolve
from qwend.bench.target import Target, TargetError, from_status, is_url
from qwend.bench.target import resolve as resolve_target
from qwend.bench.wire import first_model
from qwend.cli.exit import ExitStatus
from qwend.errors import ControlError

SubFactory = Callable[[str, str], argparse.ArgumentParser]


class Context(Protocol):
    """What a bench command needs of qwenctl's invocation context (``commands.Context``)."""

    args: argparse.Namespace
    env: Mapping[str, str]
    stdout: TextIO
    stderr: TextIO

    @property
    def json(self) -> bool: ...

    def client(self) -> ControlClient: ...

    def out(self, text: str) -> None: ...

    def err(self, text: str) -> None: ...


HELP = "benchmark a target (seed cases or open-loop load); compare or list saved results"
DEFAULT_CASE = "concurrency_8"
"""What ``bench compare`` runs on a live target when nothing says otherwise."""


def add_parser(sub: SubFactory) -> None:
    """Add ``bench`` to qwenctl's parser (``sub(name, help)`` makes a subcommand parser)."""
    p = sub("bench", HELP)
    p.add_argument(
        "words",
        nargs="*",
        metavar="TARGET | compare A B | list",
        help="router (default), role:NAME, lane:NAME or a URL; or compare A B; or list",
    )
    known = ", ".join([*SUITES, *SEED_CASES])
    p.add_argument("--suite", action="append", default=[], help=f"suite or case: {known}")
    p.add_argument("--case", action="append", default=[], help="a seed case (repeatable)")
    p.add_argument("--repeat", type=int, default=1, metavar="N", help="runs per case (1)")
    p.add_argument("--rate", type=float, metavar="R", help="open-loop load: requests per second")
    p.add_argument("--duration", type=float, default=30.0, metavar="S", help="load seconds (30)")
    p.add_argument("--arrival", choices=[a.value for a in Arrival], default="poisson")
    p.add_argument(
        "--mix",
        default="text_8=3,text_64=1,mm_8=1",
        help="load request mix: text_8, text_32, text_64, mm_8, text-IN-OUT, mm-IN-OUT, =WEIGHT",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of arrivals, mix and bootstrap")
    p.add_argument("--slo-ttft", type=float, metavar="MS", help="goodput SLO: TTFT")
    p.add_argument("--slo-tpot", type=float, metavar="MS", help="goodput SLO: TPOT")
    p.add_argument("--slo-e2e", type=float, metavar="MS", help="goodput SLO: E2E latency")
    p.add_argument("--model", help="model name to send (default: the lanes' served model)")
    add_credential_args(p)
    p.add_argument(
        "--time-scale", type=float, default=1.0, metavar="K", help=argparse.SUPPRESS
    )  # sim lanes run K times faster; figures are multiplied back (tests)
    p.add_argument("--results-dir", metavar="DIR", help="where results are saved")
    p.add_argument("--no-save", action="store_true", help="do not save the result")


def add_credential_args(p: argparse.ArgumentParser) -> None:
    """``--api-key-file`` and ``--cacert``: what a target that is not qwend's may ask for."""
    p.add_argument(
        "--api-key-file",
        metavar="FILE",
        help="for a target that asks for a key (vllm serve --api-key, a remote lane's"
        " api_key_file): its first line is sent as Authorization: Bearer"
        " (default: $OPENAI_API_KEY when set)",
    )
    p.add_argument("--cacert", metavar="PEM", help="CA bundle of an https:// target (tls_ca)")


def _fraction(text: str) -> float:
    """``5%``, ``5`` (percent) -> 0.05."""
    try:
        value = float(text.strip().rstrip("%")) / 100
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage like 5%, got {text!r}") from None
    if not 0 <= value < 10:
        raise argparse.ArgumentTypeError(f"expected a percentage from 0% to 1000%, got {text!r}")
    return value


def add_gate_args(parser: argparse.ArgumentParser) -> None:
    """``promote``'s latency gate options."""
    parser.add_argument(
        "--gate",
        metavar="SCENARIO",
        help="bench candidate and incumbent on this seed case first; switch only if not slower",
    )
    parser.add_argument(
        "--max-regression",
        type=_fraction,
        default=0.05,
        metavar="PCT",
        help="allowed slowdown of the candidate under --gate (5%%)",
    )
    parser.add_argument(
        "--gate-repeat", type=int, default=3, metavar="N", help="gate runs per side (3)"
    )
    parser.add_argument(
        "--gate-time-scale", type=float, default=1.0, help=argparse.SUPPRESS
    )  # sim lanes running K times faster (tests)


def gate_request(args: argparse.Namespace) -> GateRequest | None:
    """The ``GateRequest`` of ``promote --gate`` (checked here, so a typo fails before anything)."""
    if not getattr(args, "gate", None):
        return None
    resolve([args.gate])
    return GateRequest(
        args.gate, args.max_regression, max(1, args.gate_repeat), args.gate_time_scale
    )


def _scenarios(args: argparse.Namespace) -> list[Scenario]:
    chosen: list[Scenario] = list(resolve([*args.suite, *args.case]))
    if args.rate is not None:
        arrival = Arrival(args.arrival)
        chosen.append(make_load(args.rate, args.duration, arrival, args.mix, args.seed))
    return chosen


def _slo(args: argparse.Namespace) -> Slo:
    def sec(ms: float | None) -> float | None:
        return None if ms is None else ms / 1000

    return Slo(sec(args.slo_ttft), sec(args.slo_tpot), sec(args.slo_e2e))


class _ProgressBar:
    """A one-line progress bar on a terminal (nothing when stderr is not a terminal)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()

    def __call__(self, case: str, done: int, total: int) -> None:
        if not self.tty:
            return
        width = 30
        filled = width * done // max(total, 1)
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(f"\r{case:<22} [{bar}] {done}/{total}")
        if done == total:
            self.stream.write("\n")
        self.stream.flush()


def _result_id(spec: str, started: float) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in spec.split("://")[-1]).strip("-")
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(started))
    return f"{stamp}{int(started * 1000) % 1000:03d}Z-{slug[:40]}"


async def _target(ctx: Context, spec: str) -> Target:
    if not is_url(spec):
        async with ctx.client() as client:
            return await resolve_target(spec, client)
    try:  # a URL needs no daemon, but one beside it tells which variant each lane runs
        async with ctx.client() as client:
            return from_status(spec, await client.status())
    except (ControlError, OSError):
        return await resolve_target(spec, None)


def credentials(
    args: argparse.Namespace, env: Mapping[str, str]
) -> tuple[dict[str, str], ssl.SSLContext | bool]:
    """The headers and TLS settings of a target: ``--api-key-file`` (else
    ``$OPENAI_API_KEY``, as vLLM's own bench) and ``--cacert``."""
    key = env.get("OPENAI_API_KEY", "").strip()
    path = getattr(args, "api_key_file", None)
    if path:
        try:
            lines = Path(path).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise TargetError(f"--api-key-file {path}: cannot read it: {exc}") from None
        found = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        if not found:
            raise TargetError(f"--api-key-file {path}: no key in it (an empty file?)")
        key = found[0]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    cacert = getattr(args, "cacert", None)
    if not cacert:
        return headers, True
    try:
        return headers, ssl.create_default_context(cafile=cacert)
    except (OSError, ssl.SSLError) as exc:
        raise TargetError(f"--cacert {cacert}: not a usable CA bundle: {exc}") from None


def _attributed(runs: list[CaseRun], lane: str) -> list[CaseRun]:
    """Mark the answers of a lane benchmarked directly (no router header) as that lane's."""
    if not lane:
        return runs
    return [
        replace(run, records=tuple(r if r.lane else replace(r, lane=lane) for r in run.records))
        for run in runs
    ]


async def run_bench(
    ctx: Context, spec: str, scenarios: Sequence[Scenario], *, save: bool = True
) -> BenchResult:
    """Benchmark ``spec`` on ``scenarios``; saves the result unless told not to."""
    args = ctx.args
    target = await _target(ctx, spec)
    headers, tls = credentials(args, ctx.env)
    model = (
        args.model
        or target.model
        or await first_model(target.url, headers=headers, tls=tls)
        or "default"
    )
    settings = RunSettings(
        target.url, model, max(1, args.repeat), args.time_scale, headers=headers, ssl=tls
    )
    started = time.time()
    runs = await run_scenarios(scenarios, settings, _ProgressBar(ctx.stderr))
    runs = _attributed(runs, target.lane)
    served = {r.lane for run in runs for r in run.records if r.lane}
    meta = Metadata(
        target=spec,
        url=target.url,
        started_at=started,
        qwend_version=__version__,
        host=platform.node(),
        model=model,
        lanes={lane: target.lanes.get(lane, "") for lane in sorted(served)},
        config_digest=target.config_digest,
        via_router=target.via_router,
        time_scale=args.time_scale,
    )
    result = BenchResult(_result_id(spec, started), meta, tuple(runs), _slo(args))
    if save and not args.no_save:
        path = store.save(store.results_dir(ctx.env, args.results_dir), result)
        ctx.stderr.write(f"saved {path}\n")
    return result


async def _side(ctx: Context, ref: str, cases: Sequence[Scenario]) -> BenchResult:
    """A saved result, or a fresh run when ``ref`` names a live target."""
    directory = store.results_dir(ctx.env, ctx.args.results_dir)
    if ref == "router" or is_url(ref) or ref.startswith(("lane:", "role:")):
        return await run_bench(ctx, ref, cases)
    return store.load(directory, ref)


async def cmd_compare(ctx: Context, a_ref: str, b_ref: str) -> int:
    args = ctx.args
    asked = _scenarios(args)
    directory = store.results_dir(ctx.env, args.results_dir)
    saved = [
        store.load(directory, ref)
        for ref in (a_ref, b_ref)
        if not (ref == "router" or is_url(ref) or ref.startswith(("lane:", "role:")))
    ]
    # Live sides run what was asked, else the saved side's cases, else concurrency_8.
    seed_cases = [c for c in saved[0].cases if c in SEED_CASES] if saved else []
    cases = asked or resolve(seed_cases or [DEFAULT_CASE])
    a = await _side(ctx, a_ref, cases)
    b = await _side(ctx, b_ref, cases)
    rows = compare(a, b, seed=args.seed)
    if not rows:
        ctx.err(f"{a.id} and {b.id} have no case in common ({a.cases} vs {b.cases})")
        return ExitStatus.ERROR
    if ctx.json:
        data = {"a": a.id, "b": b.id, "cases": [_comparison_dict(c) for c in rows]}
        ctx.out(json.dumps(data, indent=2))
    else:
        ctx.out(render_comparison(_describe(a), _describe(b), rows))
    return ExitStatus.OK


def _describe(result: BenchResult) -> str:
    lanes = ", ".join(f"{k}={v or '?'}" for k, v in sorted(result.meta.lanes.items()))
    return f"{result.id} ({result.meta.target}{'; ' + lanes if lanes else ''})"


def _comparison_dict(c: object) -> dict[str, object]:
    data = dict(vars(c))
    data["interval"] = None if data["interval"] is None else dict(vars(data["interval"]))
    data["verdict"] = str(data["verdict"])
    return data


async def cmd_list(ctx: Context) -> int:
    results = store.listing(store.results_dir(ctx.env, ctx.args.results_dir))
    if ctx.json:
        ctx.out(json.dumps([_summary(r) for r in results], indent=2))
        return ExitStatus.OK
    for r in results:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.meta.started_at))
        ctx.out(f"{r.id}  {when}Z  {r.meta.target}  {' '.join(r.cases)}")
    return ExitStatus.OK


def _summary(r: BenchResult) -> dict[str, object]:
    return {"id": r.id, "target": r.meta.target, "started_at": r.meta.started_at, "cases": r.cases}


async def cmd_bench(ctx: Context) -> int:
    words = list(ctx.args.words)
    if words[:1] == ["compare"]:
        if len(words) != 3:
            ctx.err("usage: qwenctl bench compare A B (saved result ids or live targets)")
            return ExitStatus.USAGE
        return await cmd_compare(ctx, words[1], words[2])
    if words[:1] == ["list"]:
        return await cmd_list(ctx)
    if len(words) > 1:
        ctx.err(f"one target at a time, got {' '.join(words)}")
        return ExitStatus.USAGE
    scenarios = _scenarios(ctx.args) or resolve(["seed"])
    result = await run_bench(ctx, words[0] if words else "router", scenarios)
    if ctx.json:
        ctx.out(json.dumps(result.to_dict() | {"metrics": _metrics(result)}, indent=2))
    else:
        ctx.out(render_result(result))
    return ExitStatus.ERROR if result.failed else ExitStatus.OK


def _metrics(result: BenchResult) -> list[dict[str, object]]:
    out = []
    for m in result.metrics():
        data: dict[str, object] = {}
        for key, value in vars(m).items():
            data[key] = value.to_dict() if hasattr(value, "to_dict") else value
        data["lanes"] = dict(m.lanes)
        data["errors"] = list(m.errors)
        out.append(data)
    return out
