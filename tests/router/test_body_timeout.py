"""The body deadline (``[connections] body_timeout_s``) on the router port and a public port.

The connection guard's head deadline ends with the headers; a client that then trickles
its body a byte at a time must still be cut off: 408, connection closed, no lane asked.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from structlog.testing import capture_logs

from qwend.config.model import ListenAddress, PublicEndpoint, RouterConfig
from qwend.public.app import make_public_app
from qwend.router.app import make_router_app
from qwend.router.router import ROUTER_KEY
from qwend.routing.lanetable import LaneTable
from tests.support.polling import SLACK_S
from tests.support.router_fakes import FakeLane, chat, fake_lanes, routable, serve, trickled

BODY_TIMEOUT_S = 0.5


@contextlib.asynccontextmanager
async def ports() -> AsyncIterator[tuple[FakeLane, dict[str, str]]]:
    """A fake lane behind the router's port and a public port, both with a short deadline."""
    async with fake_lanes(FakeLane("a")) as (lane,):
        table = LaneTable((routable("a", lane.url, "throughput"),))
        router_app = make_router_app(RouterConfig(), table, body_timeout_s=BODY_TIMEOUT_S)
        async with serve(router_app) as router_url:
            endpoint = PublicEndpoint(ListenAddress("127.0.0.1", 0), "router")
            public_app = make_public_app(
                endpoint, router_app[ROUTER_KEY], body_timeout_s=BODY_TIMEOUT_S
            )
            async with serve(public_app) as public_url:
                yield lane, {"router": router_url, "public": public_url}


@pytest.mark.parametrize(
    ("port", "path"),
    [
        ("router", "/v1/chat/completions"),
        ("router", "/tokenize"),
        ("public", "/v1/chat/completions"),
    ],
)
async def test_a_trickled_body_gets_408_and_the_connection_is_closed(port: str, path: str) -> None:
    async with ports() as (lane, urls):
        with capture_logs() as logs:
            answer, took = await trickled(urls[port], path, within_s=BODY_TIMEOUT_S + SLACK_S)
        assert lane.requests == 0  # never reached a lane
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert b"Connection: close" in head
    error = json.loads(body)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "request_timeout"
    assert f"{BODY_TIMEOUT_S:g} s" in error["message"]
    assert BODY_TIMEOUT_S * 0.9 <= took < BODY_TIMEOUT_S + SLACK_S
    warnings = [e for e in logs if e["log_level"] in ("warning", "error", "critical")]
    assert [e["event"] for e in warnings] == ["request body too slow"]
    assert not any("exc_info" in e or "exception" in e for e in logs)


@pytest.mark.parametrize("port", ["router", "public"])
async def test_a_body_sent_at_once_is_served(port: str) -> None:
    async with ports() as (lane, urls), aiohttp.ClientSession() as session:
        url = urls[port] + "/v1/chat/completions"
        async with session.post(url, json=chat("hi")) as resp:
            assert resp.status == 200
            doc = await resp.json()
        assert doc["choices"][0]["message"]["content"] == "hello from a"
        assert lane.requests == 1
