"""Model names through the router: public names in, backend names out, and back; unknown
names; backends' non-OpenAI errors; streams repaired ([DONE], usage) (fake lanes)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import openai

from qwend.routing.lanetable import LaneTable, RoutableLane
from tests.support.router_fakes import (
    FakeLane,
    RouterHandle,
    chat,
    fake_lanes,
    routable,
    run_router,
)

SERVED = "Org/Qwen3.5-9B"
ALIAS = "gpt-x"
ANSWERED = "Org/Qwen3.5-9B@main"  # what transformers serve answers with


def named(lane: FakeLane, role: str) -> RoutableLane:
    """A lane known as ``qwen`` (alias ``gpt-x``) whose backend wants ``SERVED``."""
    base = routable(lane.name, lane.url, role, model="qwen")
    return replace(base, aliases=("gpt-x",), served_model=SERVED, max_model_len=4096)


@contextlib.asynccontextmanager
async def one_lane(lane: FakeLane) -> AsyncIterator[tuple[RouterHandle, aiohttp.ClientSession]]:
    """A router in front of ``lane`` (known as ``named``), and a client session."""
    async with contextlib.AsyncExitStack() as stack:
        (a,) = await stack.enter_async_context(fake_lanes(lane))
        h = await stack.enter_async_context(run_router(LaneTable((named(a, "stable"),))))
        yield h, await stack.enter_async_context(aiohttp.ClientSession())


def events(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


async def test_request_names_the_backend_model_and_answers_name_the_public_one() -> None:
    lane = FakeLane("a", accepts=SERVED, answers_model=ANSWERED, chunks=3)
    async with one_lane(lane) as (h, s):
        async with s.post(h.url + "/v1/chat/completions", json=chat(model="gpt-x")) as r:
            assert r.status == 200
            whole = await r.json()
        body = chat(model="qwen", stream=True)
        async with s.post(h.url + "/v1/chat/completions", json=body) as r:
            assert r.status == 200
            streamed = await r.text()
    assert [b["model"] for b in lane.bodies] == [SERVED, SERVED]
    assert whole["model"] == "gpt-x"  # the name the client asked for
    assert whole["choices"][0]["message"]["content"] == "hello from a"
    data = events(streamed)
    assert data[-1] == "[DONE]"
    assert [json.loads(d)["model"] for d in data[:-1]] == ["qwen"] * 3
    assert ANSWERED not in streamed


async def test_unknown_model_is_a_404_listing_the_served_names() -> None:
    lane = FakeLane("a")
    body = chat(model="gpt-5")
    async with one_lane(lane) as (h, s), s.post(h.url + "/v1/chat/completions", json=body) as r:
        status, doc = r.status, await r.json()
    assert status == 404
    assert doc["error"]["code"] == "model_not_found"
    assert doc["error"]["param"] == "model"
    assert "'gpt-5'" in doc["error"]["message"]
    assert "'qwen', 'gpt-x'" in doc["error"]["message"]
    assert lane.requests == 0


async def test_a_request_goes_only_to_lanes_serving_its_model() -> None:
    fast, stable = FakeLane("fast"), FakeLane("stable")
    async with fake_lanes(fast, stable) as (f, st):
        table = LaneTable(
            (routable("fast", f.url, "throughput", model="small"), named(st, "stable"))
        )
        async with run_router(table) as h, aiohttp.ClientSession() as s:
            for model in ("qwen", "small", "qwen", "small"):
                # short text prefers the throughput lane: only "small" may go there
                async with s.post(h.url + "/v1/completions", json={"model": model, "prompt": "x",
                                  "max_tokens": 1}) as r:  # fmt: skip
                    assert r.status == 200
                    assert r.headers["X-Qwend-Lane"] == ("fast" if model == "small" else "stable")
            async with s.post(h.url + "/v1/completions", json={"prompt": "x"}) as r:
                assert r.status == 200  # no model: any lane, as before
    assert [b["model"] for b in st.bodies] == [SERVED, SERVED]
    assert [b["model"] for b in f.bodies[:2]] == ["small", "small"]


async def test_non_openai_error_bodies_are_wrapped_keeping_the_status() -> None:
    lane = FakeLane("a", accepts="something-else")
    body = chat(model="qwen")
    async with one_lane(lane) as (h, s), s.post(h.url + "/v1/chat/completions", json=body) as r:
        status, doc = r.status, await r.json()
    assert status == 400
    error = doc["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"] == f"lane 'a': model {SERVED!r} is not 'something-else'"
    assert set(error) == {"message", "type", "param", "code"}


async def test_stream_without_done_or_usage_is_repaired_for_the_openai_client() -> None:
    # transformers serve: no [DONE], no usage chunk, its own model name on every chunk
    lane = FakeLane("a", chunks=4, done=False, usage_chunk=False, answers_model=ANSWERED)
    async with fake_lanes(lane) as (a,), run_router(LaneTable((named(a, "stable"),))) as h:
        client = openai.AsyncOpenAI(base_url=h.url + "/v1", api_key="x", max_retries=0)
        try:
            stream = await client.chat.completions.create(
                model="gpt-x",
                messages=[{"role": "user", "content": "hello there"}],
                max_tokens=8,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]
        finally:
            await client.close()
        async with aiohttp.ClientSession() as s:
            body = chat(model="qwen", stream=True)
            async with s.post(h.url + "/v1/chat/completions", json=body) as r:
                raw = await r.text()
    assert {c.model for c in chunks} == {"gpt-x"}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "a0 a1 a2 a3 "
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    assert usage.completion_tokens == 4  # one per text event
    assert usage.prompt_tokens > 0 and usage.total_tokens == usage.prompt_tokens + 4
    assert (chunks[-1].model_extra or {}).get("qwend_usage_estimated") is True
    assert chunks[-1].id == chunks[0].id
    data = events(raw)
    assert data[-1] == "[DONE]" and data.count("[DONE]") == 1
    assert not any('"usage"' in d for d in data)  # not asked: no usage chunk


async def test_a_backend_usage_chunk_is_kept_and_not_duplicated() -> None:
    lane = FakeLane("a", chunks=3)
    body = chat(model="qwen", stream=True, stream_options={"include_usage": True})
    async with one_lane(lane) as (h, s), s.post(h.url + "/v1/chat/completions", json=body) as r:
        raw = await r.text()
    data = events(raw)
    assert data[-1] == "[DONE]" and data.count("[DONE]") == 1
    usages = [json.loads(d)["usage"] for d in data[:-1] if '"usage"' in d]
    assert usages == [{"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}]
    assert "qwend_usage_estimated" not in raw


async def test_tokenize_names_the_backend_model_too() -> None:
    lane = FakeLane("a")
    async with one_lane(lane) as (h, s):
        async with s.post(h.url + "/tokenize", json={"model": ALIAS, "prompt": "hi"}) as r:
            assert r.status == 200
            echoed = (await r.json())["echo"]
        async with s.post(h.url + "/tokenize", json={"model": "nope", "prompt": "hi"}) as r:
            assert r.status == 404
            assert (await r.json())["error"]["code"] == "model_not_found"
    assert echoed == {"model": SERVED, "prompt": "hi"}
