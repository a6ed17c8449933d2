"""How much does qwend's router cost on top of the lane? Direct vs bare aiohttp proxy vs qwend.

A fast mock upstream (raw asyncio protocol, no sleeps) plays the lane. Three
systems are measured side by side in one session, round-robin, each in its own
process: ``direct`` (client -> mock), ``bare`` (a minimal aiohttp reverse proxy,
written below: the floor of any aiohttp router) and ``qwend`` (the real router
app: classification, admission, breaker, statistics and all). A closed-loop
client (raw asyncio HTTP/1.1 keep-alive connections, in this process) runs at
concurrency 1 and 64, non-streaming and streaming (16 SSE chunks). Reported:
req/s, p50/p99 latency, added latency vs direct, proxy CPU ms per request
(utime+stime of the proxy process from /proc) and its peak RSS (VmHWM).

    .venv/bin/python benchmarks/router_overhead.py                 # about 2 minutes
    .venv/bin/python benchmarks/router_overhead.py --duration 3 --rounds 1 --json out.json
    .venv/bin/python benchmarks/router_overhead.py --profile /tmp/router.prof   # cProfile qwend

Every process shares the same cores (client, proxy and mock): on a 2-core
machine the c=64 figures are CPU-bound for all three systems alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

CHUNKS = 16
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# ----------------------------------------------------------------------------- mock lane

_COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "word " * 16},
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 16, "total_tokens": 28},
    }
).encode()
_CHUNK = (
    b"data: "
    + json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "bench",
            "choices": [{"index": 0, "delta": {"content": "word "}, "finish_reason": None}],
        }
    ).encode()
    + b"\n\n"
)


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class MockLane(asyncio.Protocol):
    """A minimal HTTP/1.1 keep-alive server answering completions instantly."""

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[: end + 2].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 : head.find(b"\r\n", at)]) if at >= 0 else 0
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            self.respond(head, body)

    def respond(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        if head.startswith(b"get /v1/models"):
            doc = b'{"object":"list","data":[{"id":"bench","object":"model"}]}'
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(doc), doc))  # fmt: skip
            return
        if b'"stream": true' not in body and b'"stream":true' not in body:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s"
                                 % (len(_COMPLETION), _COMPLETION))  # fmt: skip
            return
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
        loop = asyncio.get_running_loop()

        def send(i: int) -> None:
            if self.transport is None or self.transport.is_closing():
                return
            if i < CHUNKS:
                self.transport.write(_chunked(_CHUNK))
                loop.call_soon(send, i + 1)  # one chunk per loop turn: separate writes
            else:
                self.transport.write(_chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n")

        send(0)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def run_mock() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(MockLane, "127.0.0.1", 0, backlog=1024)
    print("PORT", server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


# ----------------------------------------------------------------------------- bare proxy


def run_bare(upstream: str, profile: str | None = None) -> None:
    """The floor: a few dozen lines of aiohttp reverse proxy, no features."""
    from aiohttp import ClientSession, TCPConnector, web

    async def session_ctx(app: web.Application) -> object:
        app["session"] = ClientSession(connector=TCPConnector(limit=0), auto_decompress=False)
        yield
        await app["session"].close()

    async def proxy(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        session: ClientSession = request.app["session"]
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        async with session.request(
            request.method, upstream + request.path_qs, data=body, headers=headers
        ) as resp:
            if resp.content_type != "text/event-stream":
                data = await resp.read()
                return web.Response(status=resp.status, body=data, content_type=resp.content_type)
            out = web.StreamResponse(status=resp.status)
            out.content_type = resp.content_type
            await out.prepare(request)
            async for chunk in resp.content.iter_any():
                await out.write(chunk)
            await out.write_eof()
            return out

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)  # type: ignore[arg-type]
    app.router.add_route("*", "/{tail:.*}", proxy)
    _profiled(app, profile)


def run_qwend(upstream: str, profile: str | None, served_model: str = "") -> None:
    """qwend's router app with one lane (the mock) of the throughput role; with
    ``served_model``, the lane's backend name differs from the public ``bench``, so every
    request is rewritten on its way in."""
    from qwend.config.model import RouterConfig
    from qwend.router.app import make_router_app
    from qwend.routing.lanetable import LaneTable, RoutableLane

    lane = RoutableLane("mock", "throughput", "v3", upstream, True, False, True, True, "bench")
    if served_model:  # only when asked: the figures before this option had no such field
        lane = replace(lane, served_model=served_model)
    config = RouterConfig(max_in_flight_per_lane=1024, queue_size=1024)
    app = make_router_app(config, LaneTable((lane,)))
    _profiled(app, profile)


def _profiled(app: object, profile: str | None) -> None:
    if profile is None:
        _serve(app)
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        _serve(app)
    finally:
        profiler.disable()
        profiler.dump_stats(profile)


def _serve(app: object) -> None:
    from aiohttp import web

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)  # type: ignore[arg-type]
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        print("PORT", runner.addresses[0][1], flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal

        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


# ----------------------------------------------------------------------------- client


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"content-length:")
    if at >= 0:
        await reader.readexactly(int(lower[at + 15 : lower.find(b"\r\n", at)]))
        return status
    while True:  # chunked
        size = int((await reader.readline()).split(b";")[0], 16)
        await reader.readexactly(size + 2)
        if size == 0:
            return status


def _request(port: int, stream: bool) -> bytes:
    body = json.dumps(
        {
            "model": "bench",
            "messages": [{"role": "user", "content": "Tell me a short story about a cat."}],
            "max_tokens": 16,
            "stream": stream,
        }
    ).encode()
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (port, len(body), body)
    )


async def load(port: int, concurrency: int, stream: bool, duration: float) -> dict[str, float]:
    """Closed loop: ``concurrency`` keep-alive connections for ``duration`` s (after warm-up)."""
    req = _request(port, stream)
    latencies: list[float] = []
    errors = 0
    warm_until = time.monotonic() + min(1.0, duration / 3)
    end = warm_until + duration

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                t0 = time.monotonic()
                if t0 >= end:
                    return
                writer.write(req)
                status = await _read_response(reader)
                t1 = time.monotonic()
                if status != 200:
                    errors += 1
                if t0 >= warm_until:
                    latencies.append(t1 - t0)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    latencies.sort()
    n = len(latencies)
    return {
        "requests": n,
        "errors": errors,
        "rps": n / duration,
        "p50_ms": 1000 * latencies[n // 2] if n else 0.0,
        "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else 0.0,
    }


# ----------------------------------------------------------------------------- orchestration


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[str]
    port: int

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)


def spawn(name: str, *args: str) -> Proc:
    popen = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    assert popen.stdout is not None
    line = popen.stdout.readline()
    if not line.startswith("PORT"):
        popen.kill()
        raise RuntimeError(f"{name} did not start: {line!r}")
    return Proc(name, popen, int(line.split()[1]))


@dataclass
class Row:
    system: str
    mode: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    added_p50_ms: float
    added_p99_ms: float
    cpu_ms_per_req: float
    peak_rss_mb: float
    errors: int


async def measure(
    procs: dict[str, Proc], duration: float, rounds: int, cases: Sequence[tuple[str, int]]
) -> list[Row]:
    results: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    for _ in range(rounds):
        for mode, conc in cases:
            for system, proc in procs.items():
                cpu0 = proc.cpu_s() if system != "direct" else 0.0
                r = await load(proc.port, conc, mode == "stream", duration)
                cpu1 = proc.cpu_s() if system != "direct" else 0.0
                # CPU spent during warm-up is counted too: divide by every request sent.
                warm = min(1.0, duration / 3)
                sent = r["requests"] * (duration + warm) / duration
                r["cpu_ms"] = 1000 * (cpu1 - cpu0) / sent if system != "direct" else 0.0
                results.setdefault((system, mode, conc), []).append(r)
    rows = []
    for (system, mode, conc), runs in results.items():
        med = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
        direct = {
            k: statistics.median(run[k] for run in results[("direct", mode, conc)]) for k in runs[0]
        }
        proc = procs[system]
        rows.append(
            Row(
                system, mode, conc, med["rps"], med["p50_ms"], med["p99_ms"],
                med["p50_ms"] - direct["p50_ms"], med["p99_ms"] - direct["p99_ms"],
                med["cpu_ms"], proc.peak_rss_mb() if system != "direct" else 0.0,
                int(sum(run["errors"] for run in runs)),
            )
        )  # fmt: skip
    return rows


def table(rows: list[Row]) -> str:
    out = [
        "| mode | c | system | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms "
        "| CPU ms/req | peak RSS MB | errors |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in sorted(
        rows, key=lambda r: (r.mode, r.concurrency, ["direct", "bare", "qwend"].index(r.system))
    ):
        out.append(
            f"| {r.mode} | {r.concurrency} | {r.system} | {r.rps:.0f} | {r.p50_ms:.3f} | "
            f"{r.p99_ms:.3f} | {r.added_p50_ms:.3f} | {r.added_p99_ms:.3f} | "
            f"{r.cpu_ms_per_req:.3f} | {r.peak_rss_mb:.1f} | {r.errors} |"
        )
    return "\n".join(out)


def ratios(rows: list[Row]) -> str:
    by = {(r.system, r.mode, r.concurrency): r for r in rows}
    lines = []
    for mode in ("plain", "stream"):
        for conc in (1, 64):
            q, b = by.get(("qwend", mode, conc)), by.get(("bare", mode, conc))
            if q is None or b is None:
                continue
            cpu = q.cpu_ms_per_req / b.cpu_ms_per_req if b.cpu_ms_per_req else float("nan")
            added = q.added_p50_ms / b.added_p50_ms if b.added_p50_ms > 0 else float("nan")
            lines.append(
                f"{mode} c={conc}: CPU qwend/bare {cpu:.2f}x (target <= 1.3), added p50 "
                f"{added:.2f}x (target <= 1.3), throughput {q.rps / b.rps:.0%} of bare "
                f"(target >= 85% at c=64), added p99 {q.added_p99_ms:.2f} ms (target < 5 at c=64; "
                f"bare: {b.added_p99_ms:.2f} ms, qwend above bare: "
                f"{q.p99_ms - b.p99_ms:.2f} ms)"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd")
    sub.add_parser("mock")
    for name in ("bare", "qwend"):
        p = sub.add_parser(name)
        p.add_argument("--upstream", required=True)
        p.add_argument("--profile")
        p.add_argument("--served-model", default="")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="round-robin repetitions (median)")
    parser.add_argument("--profile", help="cProfile the qwend router into this file")
    parser.add_argument("--profile-bare", help="cProfile the bare proxy into this file")
    parser.add_argument("--json", help="write the rows as JSON here")
    parser.add_argument("--only", choices=["plain", "stream"], help="one mode only")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    parser.add_argument(
        "--served-model",
        default="",
        help="qwend's lane expects this model name (the request is rewritten from 'bench')",
    )
    args = parser.parse_args(argv)
    if args.cmd == "mock":
        asyncio.run(run_mock())
        return 0
    if args.cmd == "bare":
        run_bare(args.upstream, args.profile)
        return 0
    if args.cmd == "qwend":
        run_qwend(args.upstream, args.profile, args.served_model)
        return 0
    mock = spawn("mock", "mock")
    upstream = f"http://127.0.0.1:{mock.port}"
    bare_args = ["bare", "--upstream", upstream]
    if args.profile_bare:
        bare_args += ["--profile", args.profile_bare]
    procs = {"direct": mock, "bare": spawn("bare", *bare_args)}
    qwend_args = ["qwend", "--upstream", upstream]
    if args.profile:
        qwend_args += ["--profile", args.profile]
    if args.served_model:
        qwend_args += ["--served-model", args.served_model]
    procs["qwend"] = spawn("qwend", *qwend_args)
    modes = [args.only] if args.only else ["plain", "stream"]
    cases = [(mode, conc) for mode in modes for conc in args.concurrency]
    try:
        rows = asyncio.run(measure(procs, args.duration, args.rounds, cases))
    finally:
        for proc in (procs["qwend"], procs["bare"], mock):
            proc.stop()
    print(f"CPUs: {os.cpu_count()}, duration {args.duration}s x {args.rounds} rounds (median)")
    print(table(rows))
    print(ratios(rows))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
