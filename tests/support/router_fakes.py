"""In-process fake lanes and a real-socket router runner for the router tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from qwend.config.model import RouterConfig
from qwend.router.app import make_router_app
from qwend.router.router import ROUTER_KEY, Router
from qwend.routing.lanetable import LaneTable, RoutableLane
from tests.support.polling import until as until  # re-exported for the router tests


@dataclass
class FakeLane:
    """Behaviour knobs and observations of one fake OpenAI-compatible lane."""

    name: str
    status: int = 200
    """Status of completion answers (non-200 answers carry an OpenAI error body)."""
    chunks: int = 4
    """Content chunks of a streamed answer."""
    chunk_gap_s: float = 0.0
    delay_s: float = 0.0
    """Sleep before answering (simulates prefill)."""
    hang: bool = False
    """Never answer, not even ``/v1/models`` (until the client goes away)."""
    die_after: int | None = None
    """Streamed: cut the connection after this many chunks."""
    gate: asyncio.Event | None = None
    """Streamed: wait for this event after the first chunk."""
    fail_ratio: float = 0.0
    """Fraction of requests answered with ``fail_status``, spread evenly (request k fails
    when floor(k * fail_ratio) grows, like ``qwend-sim --error-rate``)."""
    fail_status: int = 500
    requests: int = 0
    """Client requests (the router's probes are counted in ``probes``)."""
    probes: int = 0
    aborts: int = 0
    """Handlers cancelled because the router closed the connection."""
    abort_times: list[float] = field(default_factory=list)
    bodies: list[dict[str, object]] = field(default_factory=list)
    accepts: str | None = None
    """Accept only this ``model`` (others get a FastAPI-style ``{"detail": ...}`` 400)."""
    answers_model: str | None = None
    """The ``model`` of every answer (like transformers' ``ORG/NAME@main``); None: the
    request's."""
    done: bool = True
    """End streams with ``data: [DONE]`` (transformers serve does not)."""
    usage_chunk: bool = True
    """Honour ``stream_options.include_usage`` with a usage chunk."""
    request_ids: list[str | None] = field(default_factory=list)
    """The ``X-Request-Id`` of each request the lane answered."""
    started: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    def model_of(self, doc: dict[str, object]) -> object:
        """The ``model`` this lane answers ``doc`` with."""
        return self.answers_model if self.answers_model is not None else doc.get("model", "m")

    def reply(self, doc: dict[str, object]) -> dict[str, object]:
        usage = {
            "prompt_tokens": 10,
            "completion_tokens": self.chunks,
            "total_tokens": 10 + self.chunks,
        }
        if "messages" in doc:
            return {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": self.model_of(doc),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"hello from {self.name}"},
                        "finish_reason": "length",
                    }
                ],
                "usage": usage,
            }
        return {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 1,
            "model": self.model_of(doc),
            "choices": [{"index": 0, "text": f"hello from {self.name}", "finish_reason": "length"}],
            "usage": usage,
        }


def _chunk(doc: dict[str, object], i: int, lane: str, model: object = "m") -> bytes:
    if "messages" in doc:
        body: dict[str, object] = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "delta": {"content": f"{lane}{i} "}, "finish_reason": None}],
        }
    else:
        body = {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "text": f"{lane}{i} ", "finish_reason": None}],
        }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _body(data: bytes) -> dict[str, object]:
    """The JSON body as a lane reads it: UTF-8 whatever charset the Content-Type names
    (``request.json()`` would decode by that charset and fail on a bogus one)."""
    doc: dict[str, object] = json.loads(data)
    return doc


def fake_lane_app(lane: FakeLane) -> web.Application:
    """An aiohttp app behaving like a vLLM lane, per ``lane``'s knobs."""

    async def complete(request: web.Request) -> web.StreamResponse:
        doc = _body(await request.read())
        if request.headers.get("X-Qwend-Probe"):
            lane.probes += 1
            if lane.hang:
                await asyncio.Event().wait()
            status = lane.status if lane.fail_ratio < 1 else lane.fail_status
            return web.json_response(lane.reply(doc), status=status)
        lane.requests += 1
        lane.bodies.append(doc)
        lane.request_ids.append(request.headers.get("X-Request-Id"))
        lane.started.set()
        try:
            return await _answer(request, doc)
        except asyncio.CancelledError:
            lane.aborts += 1
            lane.abort_times.append(time.monotonic())
            raise

    async def _answer(request: web.Request, doc: dict[str, object]) -> web.StreamResponse:
        if lane.hang:
            await asyncio.Event().wait()
        if lane.delay_s:
            await asyncio.sleep(lane.delay_s)
        status = lane.status
        k = lane.requests
        if int(k * lane.fail_ratio) > int((k - 1) * lane.fail_ratio):
            status = lane.fail_status
        if status != 200:
            err = {"error": {"message": f"{lane.name} says {status}", "type": "x", "code": None}}
            return web.json_response(err, status=status)
        if lane.accepts is not None and doc.get("model") != lane.accepts:
            detail = f"model {doc.get('model')!r} is not {lane.accepts!r}"
            return web.json_response({"detail": detail}, status=400)
        if not doc.get("stream"):
            return web.json_response(lane.reply(doc))
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        for i in range(lane.chunks):
            if lane.die_after is not None and i == lane.die_after:
                assert request.transport is not None
                request.transport.close()
                return out
            await out.write(_chunk(doc, i, lane.name, lane.model_of(doc)))
            if i == 0 and lane.gate is not None:
                await lane.gate.wait()
            if lane.chunk_gap_s:
                await asyncio.sleep(lane.chunk_gap_s)
        options = doc.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") and lane.usage_chunk:
            usage = lane.reply(doc)["usage"]
            await out.write(
                b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n"
            )
        if lane.done:
            await out.write(b"data: [DONE]\n\n")
        await out.write_eof()
        return out

    async def models(_: web.Request) -> web.Response:
        if lane.hang:  # hung as a whole (SIGSTOP-like): not even the model list answers
            await asyncio.Event().wait()
        return web.json_response(
            {"object": "list", "data": [{"id": f"model-{lane.name}", "object": "model"}]}
        )

    async def tokenize(request: web.Request) -> web.Response:
        doc = _body(await request.read())
        return web.json_response({"tokens": [1, 2, 3], "count": 3, "lane": lane.name, "echo": doc})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", complete)
    app.router.add_post("/v1/completions", complete)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/tokenize", tokenize)
    return app


@contextlib.asynccontextmanager
async def serve(app: web.Application, *, handler_cancellation: bool = False) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port; yields its base URL."""
    runner = web.AppRunner(app, handler_cancellation=handler_cancellation, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def fake_lanes(*lanes: FakeLane) -> AsyncIterator[list[FakeLane]]:
    """Start each fake lane on its own port (handler cancellation on: aborts are seen)."""
    async with contextlib.AsyncExitStack() as stack:
        for lane in lanes:
            lane.url = await stack.enter_async_context(
                serve(fake_lane_app(lane), handler_cancellation=True)
            )
        yield list(lanes)


def routable(
    name: str,
    url: str,
    role: str,
    *,
    image: bool = False,
    text: bool = True,
    accepting: bool = True,
    model: str = "m",
) -> RoutableLane:
    """A lane serving ``model`` (what the tests' requests ask for)."""
    return RoutableLane(name, role, "v3", url, text, image, True, accepting, model)


@dataclass
class RouterHandle:
    """A running router on a real socket."""

    url: str
    router: Router
    table: LaneTable

    @property
    def queued(self) -> int:
        """Requests waiting for a lane slot (the router's snapshot)."""
        return self.router.stats_snapshot().queued

    @property
    def idle(self) -> bool:
        """Nothing in flight on any lane and nothing queued."""
        snap = self.router.stats_snapshot()
        return snap.in_flight == 0 and snap.queued == 0


@contextlib.asynccontextmanager
async def run_router(
    table: LaneTable, config: RouterConfig | None = None
) -> AsyncIterator[RouterHandle]:
    """Serve the router app like the daemon would (no handler cancellation by aiohttp)."""
    app = make_router_app(config or RouterConfig(), table)
    async with serve(app) as url:
        yield RouterHandle(url, app[ROUTER_KEY], table)


def chat(text: str = "hello", max_tokens: int = 8, **extra: object) -> dict[str, object]:
    return {
        "model": "m",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
        **extra,
    }


IMAGE_PART = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


TRICKLE_GAP_S = 0.1
"""Between two body bytes of ``trickled``: the client is alive, just far too slow."""


async def _trickle(writer: asyncio.StreamWriter, body: bytes) -> None:
    """Send ``body`` a byte at a time until the server closes the connection."""
    for byte in body:
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(TRICKLE_GAP_S)  # the slowness under test, not synchronisation


async def trickled(url: str, path: str, *, within_s: float) -> tuple[bytes, float]:
    """POST ``path`` with complete headers, then a chat body trickled a byte per
    ``TRICKLE_GAP_S``: what the server answered up to closing the connection (which it
    must do within ``within_s``), and how long that took after the headers."""
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps(chat("hello " * 50)).encode()
    # The whole body would take longer: the server's deadline, not the body's end, answers.
    assert len(body) * TRICKLE_GAP_S > within_s
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    writer.write(head)
    await writer.drain()
    started = time.monotonic()
    sender = asyncio.create_task(_trickle(writer, body))
    try:
        async with asyncio.timeout(within_s):
            answer = await reader.read(-1)  # up to EOF: the server closed the connection
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        writer.close()
    return answer, time.monotonic() - started
