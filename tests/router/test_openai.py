"""The openai package works through the router unchanged (fake lanes)."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from qwend.routing.lanetable import LaneTable
from tests.support.router_fakes import IMAGE_PART, FakeLane, fake_lanes, routable, run_router


async def test_openai_client_through_the_router() -> None:
    lanes = (FakeLane("mm"), FakeLane("fast", chunks=3), FakeLane("stable"))
    async with fake_lanes(*lanes) as (mm, fast, st):
        table = LaneTable(
            (
                routable("mm", mm.url, "multimodal", image=True),
                routable("fast", fast.url, "throughput"),
                routable("stable", st.url, "stable"),
            )
        )
        async with run_router(table) as h:
            client = openai.AsyncOpenAI(base_url=h.url + "/v1", api_key="x", max_retries=0)
            try:
                raw = await client.chat.completions.with_raw_response.create(
                    model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=8
                )
                assert raw.headers["x-qwend-lane"] == "fast"
                reply = raw.parse()
                assert reply.choices[0].message.content == "hello from fast"
                assert reply.usage is not None and reply.usage.completion_tokens == 3

                done = await client.completions.create(model="m", prompt="once", max_tokens=4)
                assert done.choices[0].text.startswith("hello from")

                stream = await client.chat.completions.create(
                    model="m",
                    messages=[{"role": "user", "content": "hi"}],
                    max_tokens=8,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                parts, usage = [], None
                async for chunk in stream:
                    if chunk.choices:
                        parts.append(chunk.choices[0].delta.content or "")
                    if chunk.usage is not None:
                        usage = chunk.usage
                assert "".join(parts) == "fast0 fast1 fast2 "
                assert usage is not None and usage.completion_tokens == 3

                image_message: Any = {
                    "role": "user",
                    "content": [{"type": "text", "text": "?"}, IMAGE_PART],
                }
                raw = await client.chat.completions.with_raw_response.create(
                    model="m",
                    messages=[image_message],
                    max_tokens=8,
                )
                assert raw.headers["x-qwend-lane"] == "mm"

                with pytest.raises(openai.BadRequestError) as bad:
                    await client.chat.completions.create(model="m", messages=[], max_tokens=8)
                assert "messages" in str(bad.value)

                fast.status = st.status = mm.status = 500  # retried on every lane
                with pytest.raises(openai.InternalServerError):
                    await client.chat.completions.create(
                        model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=8
                    )
            finally:
                await client.close()


async def test_openai_client_sees_mid_stream_failure_as_an_error() -> None:
    async with fake_lanes(FakeLane("fast", chunks=5, die_after=2)) as (fast,):
        table = LaneTable((routable("fast", fast.url, "throughput"),))
        async with run_router(table) as h:
            client = openai.AsyncOpenAI(base_url=h.url + "/v1", api_key="x", max_retries=0)
            try:
                stream = await client.chat.completions.create(
                    model="m",
                    messages=[{"role": "user", "content": "hi"}],
                    max_tokens=8,
                    stream=True,
                )
                got = []
                with pytest.raises(openai.APIError, match="mid-stream"):
                    async for chunk in stream:
                        got.append(chunk)
                assert len(got) == 2
            finally:
                await client.close()


async def test_openai_queue_full_is_a_rate_limit_error() -> None:
    from qwend.config.model import RouterConfig

    config = RouterConfig(max_in_flight_per_lane=1, queue_size=0)
    async with fake_lanes(FakeLane("fast", hang=True)) as (fast,):
        table = LaneTable((routable("fast", fast.url, "throughput"),))
        async with run_router(table, config) as h:
            client = openai.AsyncOpenAI(base_url=h.url + "/v1", api_key="x", max_retries=0)
            try:
                first = asyncio.create_task(
                    client.chat.completions.create(
                        model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=8
                    )
                )
                await asyncio.wait_for(fast.started.wait(), 5)
                with pytest.raises(openai.RateLimitError) as info:
                    await client.chat.completions.create(
                        model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=8
                    )
                assert info.value.response.headers["retry-after"] == "1"
                first.cancel()
                await asyncio.gather(first, return_exceptions=True)
            finally:
                await client.close()
