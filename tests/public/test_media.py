"""The public endpoints apply the media URL policy and the JSON nesting bound (real HTTP)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from qwend.config.model import ListenAddress, PublicEndpoint, RouterConfig
from qwend.public.app import make_public_app
from qwend.routing.lanetable import LaneTable
from tests.router.test_media import (
    ALLOWED_HOST,
    DATA_URL,
    PUBLIC_ADDRESS_URL,
    REFUSED_URLS,
    deep,
    image_chat,
)
from tests.support.router_fakes import FakeLane, fake_lanes, routable, run_router, serve

TARGETS = ("router", "role:multimodal")


@contextlib.asynccontextmanager
async def public(lane: FakeLane) -> AsyncIterator[dict[str, str]]:
    """The router and one public endpoint per target, in front of ``lane`` (image-capable)."""
    table = LaneTable((routable("mm", lane.url, "multimodal", image=True),))
    config = RouterConfig(media_allowed_hosts=(ALLOWED_HOST,))
    async with run_router(table, config) as h, contextlib.AsyncExitStack() as apps:
        urls = {}
        for target in TARGETS:
            endpoint = PublicEndpoint(ListenAddress("127.0.0.1", 0), target)
            urls[target] = await apps.enter_async_context(
                serve(make_public_app(endpoint, h.router))
            )
        yield urls


async def post(url: str, body: object) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else None
    doc = None if data is not None else body
    async with (
        aiohttp.ClientSession() as s,
        s.post(url + "/v1/chat/completions", json=doc, data=data) as r,
    ):
        return r.status, await r.json()


@pytest.mark.parametrize("target", TARGETS)
async def test_internal_urls_are_400_at_a_public_port_and_never_reach_the_lane(
    target: str,
) -> None:
    async with fake_lanes(FakeLane("mm")) as (lane,), public(lane) as urls:
        for url in REFUSED_URLS:
            status, doc = await post(urls[target], image_chat(url))
            assert status == 400, url
            assert doc["error"]["code"] == "media_url_refused", url
            assert doc["error"]["param"] == "messages[0].content[1].image_url.url"
        assert lane.requests == 0
        for url in (DATA_URL, f"http://{ALLOWED_HOST}/cat.png", PUBLIC_ADDRESS_URL):
            status, doc = await post(urls[target], image_chat(url))
            assert status == 200, (url, doc)
        assert lane.requests == 3


@pytest.mark.parametrize("target", TARGETS)
async def test_deeply_nested_json_is_a_400_at_a_public_port(
    target: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with fake_lanes(FakeLane("mm")) as (lane,), public(lane) as urls:
        for depth in (200, 100_000):
            status, doc = await post(urls[target], deep(depth))
            assert status == 400
            assert doc["error"]["type"] == "invalid_request_error"
            assert "levels deep" in doc["error"]["message"]
        assert lane.requests == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
