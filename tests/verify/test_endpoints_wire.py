"""The endpoints section over HTTP against a backend that ends streams without [DONE].

transformers serve does so; qwend's router adds the terminator. A lane verified directly
passes with a note when its stream finished; through the router the terminator is required.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from qwend.verify import checks
from qwend.verify.report import Verdict

FINISH = web.AppKey("finish", list[str | None])


async def models(_: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})


async def completion(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    if not body.get("stream"):
        # A terminal escape sequence: the report must not carry it to the operator's terminal.
        text = "ok\x1b[2J"
        choice = {"index": 0, "text": text, "message": {"role": "assistant", "content": text}}
        return web.json_response({"choices": [choice]})
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for finish in request.app[FINISH]:
        chunk = {"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": finish}]}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
    await response.write_eof()  # and no "data: [DONE]"
    return response


@pytest.fixture
async def backend() -> AsyncIterator[tuple[str, web.Application]]:
    app = web.Application()
    app[FINISH] = [None, "length"]
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", completion)
    app.router.add_post("/v1/chat/completions", completion)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/"), app


async def test_a_finished_stream_without_done_passes_only_for_a_lane(
    backend: tuple[str, web.Application],
) -> None:
    url, app = backend
    async with aiohttp.ClientSession() as session:
        lane = await checks.endpoints(session, url, "m", False, direct=True)
        router = await checks.endpoints(session, url, "m", False)
        app[FINISH][-1] = None  # cut off: no finish_reason either
        cut = await checks.endpoints(session, url, "m", False, direct=True)
    assert lane.verdict is Verdict.PASS, lane
    answers = [row[-1] for row in lane.tables[0].rows]
    assert answers[1:3] == ["ok\ufffd[2J", "ok\ufffd[2J"]
    assert lane.tables[0].rows[-1][-1] == "2 chunks, finished, no [DONE]"
    assert any("router adds it" in note for note in lane.notes)
    assert router.verdict is Verdict.FAIL and router.conclusion == "failed: chat stream"
    assert cut.verdict is Verdict.FAIL and cut.conclusion == "failed: chat stream"
