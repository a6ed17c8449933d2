"""Public endpoints on real ``qwend-sim`` lanes, with the ``openai`` package as the client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from qwend.config.model import ListenAddress, PublicEndpoint
from qwend.public.app import make_public_app
from qwend.public.keys import ApiKeys, read_key_file
from qwend.routing.lanetable import LaneTable, RoutableLane
from tests.support.router_fakes import RouterHandle, run_router, until
from tests.support.router_fakes import serve as serve_app
from tests.support.simlane import DEFAULT_MODEL as MODEL
from tests.support.simlane import (
    IMAGE_MESSAGE,
    SimLaneFactory,
    collect_stream,
    metric_value,
    msg,
    wait_for,
)

KEY = "sk-public-test-key"
TARGETS = ("router", "role:multimodal", "role:throughput")


def seed(sim_lane: SimLaneFactory) -> LaneTable:
    """The shipped seed topology on sim lanes: mm takes images only, the others text only."""
    mm = sim_lane(variant="baseline", time_scale=20, lane_name="mm")
    stable = sim_lane(variant="recurrent_v2", time_scale=20, lane_name="stable")
    fast = sim_lane(variant="v3", time_scale=20, lane_name="fast")
    return LaneTable(
        (
            RoutableLane("mm", "multimodal", "baseline", mm.base_url,
                         False, True, True, True, MODEL),
            RoutableLane("stable", "stable", "recurrent_v2", stable.base_url,
                         True, False, True, True, MODEL),
            RoutableLane("fast", "throughput", "v3", fast.base_url, True, False, True, True, MODEL),
        )
    )  # fmt: skip


@contextlib.asynccontextmanager
async def public(
    table: LaneTable, keys: ApiKeys
) -> AsyncIterator[tuple[RouterHandle, dict[str, str]]]:
    async with run_router(table) as handle, contextlib.AsyncExitStack() as stack:
        urls = {}
        for target in TARGETS:
            endpoint = PublicEndpoint(ListenAddress("127.0.0.1", 0), target)
            app = make_public_app(endpoint, handle.router, keys)
            urls[target] = await stack.enter_async_context(serve_app(app))
        yield handle, urls


def client(url: str, key: str = KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


async def lane_of_chat(c: openai.AsyncOpenAI, messages: Any, max_tokens: int = 8) -> str:
    raw = await c.chat.completions.with_raw_response.create(
        model=MODEL, messages=messages, max_tokens=max_tokens
    )
    assert raw.parse().choices[0].message.content
    return raw.headers["x-qwend-lane"]


async def test_openai_package_through_public_endpoints_with_a_key(
    sim_lane: SimLaneFactory, tmp_path: Path
) -> None:
    keys_path = tmp_path / "api-keys"
    keys_path.write_text(f"# operators\n{KEY}\n")
    async with public(seed(sim_lane), ApiKeys(read_key_file(keys_path))) as (handle, urls):
        mm, fast, router = (
            client(urls["role:multimodal"]),
            client(urls["role:throughput"]),
            client(urls["router"]),
        )
        try:
            # Pinned: text reaches the image-only mm lane; an image reaches the text lane.
            assert await lane_of_chat(mm, msg("Say hello.")) == "mm"
            assert await lane_of_chat(mm, IMAGE_MESSAGE) == "mm"
            assert await lane_of_chat(fast, msg("Say hello."), max_tokens=64) == "fast"
            # The router target routes by content and policy.
            assert await lane_of_chat(router, IMAGE_MESSAGE) == "mm"
            assert await lane_of_chat(router, msg("Say hello.")) == "fast"

            stream = await fast.chat.completions.create(
                model=MODEL,
                messages=msg("Count."),
                max_tokens=12,
                stream=True,
                stream_options={"include_usage": True},
            )
            text, usage = await collect_stream(stream)
            assert text and usage is not None and usage.completion_tokens == 12

            done = await fast.completions.create(model=MODEL, prompt="Once upon", max_tokens=5)
            assert done.choices[0].text
            assert [m.id for m in (await mm.models.list()).data] == [MODEL]
        finally:
            for c in (mm, fast, router):
                await c.close()
        snap = handle.router.stats_snapshot()
        assert snap.lane("mm").requests == 3
        assert snap.lane("stable").requests == 0
        assert snap.in_flight == 0

        wrong = client(urls["role:throughput"], key="sk-not-this-one")
        try:
            with pytest.raises(openai.AuthenticationError) as caught:
                await wrong.chat.completions.create(model=MODEL, messages=msg("x"), max_tokens=4)
        finally:
            await wrong.close()
        assert caught.value.status_code == 401
        assert caught.value.code == "invalid_api_key"


async def test_client_disconnect_through_a_role_endpoint_aborts_the_lane(
    sim_lane: SimLaneFactory,
) -> None:
    table = seed(sim_lane)
    fast = table.get("fast")
    assert fast is not None
    async with public(table, ApiKeys()) as (handle, urls), aiohttp.ClientSession() as s:
        body = {"model": MODEL, "messages": msg("go on"), "max_tokens": 400, "stream": True}

        async def reader() -> None:
            async with s.post(urls["role:throughput"] + "/v1/chat/completions", json=body) as r:
                assert r.headers["X-Qwend-Lane"] == "fast"
                await r.content.readuntil(b"\n\n")
                await asyncio.Event().wait()

        task = asyncio.create_task(reader())
        await until(lambda: handle.router.in_flight("fast") == 1)
        running = "vllm:num_requests_running"
        await asyncio.to_thread(
            wait_for, lambda: metric_value(fast.base_url, running) == 1.0, what="generating"
        )
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        aborted = "qwend_sim_requests_aborted_total"
        await asyncio.to_thread(
            wait_for, lambda: metric_value(fast.base_url, aborted) == 1.0, 5.0, "abort counted"
        )
        await until(lambda: handle.router.in_flight("fast") == 0)
        assert handle.router.stats_snapshot().client_disconnects == 1
