"""History compression on the console and a public endpoint, against a real ``qwend-sim``
lane: its ``/tokenize`` for counts, its ``max_model_len`` for the default budget, and its
``usage.prompt_tokens`` as the judge of the budget.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from qwend.config.model import ListenAddress, PublicConfig, PublicEndpoint
from qwend.public.app import make_public_app
from qwend.public.console.app import make_console_app
from qwend.public.history import HistoryCompressor
from qwend.routing.lanetable import LaneTable
from tests.support.router_fakes import routable, run_router
from tests.support.router_fakes import serve as serve_app
from tests.support.simlane import SimLaneProcess

TIMEOUT = aiohttp.ClientTimeout(total=30)
TOPICS = ("scheduler", "kv cache", "npu memory", "tokenizer", "router", "promotion", "driver")


def history(turns: int) -> list[dict[str, Any]]:
    """A long conversation: user and assistant turns of several distinct sentences each."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are terse."}]
    for i in range(turns):
        topic = TOPICS[i % len(TOPICS)]
        sentences = [
            f"In step {i}.{j} the {topic} team measured {i * 7 + j} units on lane {j % 3}."
            for j in range(8)
        ]
        role = "user" if i % 2 == 0 else "assistant"
        messages.append({"role": role, "content": " ".join(sentences)})
    messages.append({"role": "user", "content": "Which lane measured the most units?"})
    return messages


@contextlib.asynccontextmanager
async def stack(
    lane: SimLaneProcess, public: PublicConfig, seen: list[HistoryCompressor] | None = None
) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """A router on the sim lane; the console and one ``compress = true`` public endpoint."""
    table = LaneTable()
    table.replace((routable("stable", lane.base_url, "stable"),))
    async with run_router(table) as handle:
        history = HistoryCompressor(handle.router.forwarding.upstream, public)
        if seen is not None:
            seen.append(history)
        console = make_console_app(public, handle.router, None, history)
        endpoint = PublicEndpoint(ListenAddress("127.0.0.1", 0), "router", compress=True)
        api = make_public_app(endpoint, handle.router, None, history=history)
        async with serve_app(console) as console_url, serve_app(api) as api_url:
            yield console_url, {"console": console_url, "api": api_url}


async def post(
    url: str, messages: list[dict[str, Any]], headers: dict[str, str]
) -> tuple[int, dict[str, str], dict[str, Any]]:
    doc = {"messages": messages, "max_tokens": 4}
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
        session.post(url + "/v1/chat/completions", json=doc, headers=headers) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.json()


async def test_the_console_compresses_within_budget_and_reports_it(
    sim_lane: Callable[..., SimLaneProcess],
) -> None:
    lane = sim_lane(time_scale=50)
    budget = 700
    public = PublicConfig(history_budget_tokens=budget, keep_recent_turns=3)
    async with stack(lane, public) as (url, _urls):
        messages = history(24)
        headers = {"X-Qwend-Session": "conversation-1"}
        status, resp_headers, doc = await post(url, messages, headers)
        assert status == 200, doc
        before, after = map(int, resp_headers["X-Qwend-Compressed"].split("->"))
        assert before > 3 * budget and after <= budget
        # The lane's own count is the judge: the compressed prompt fits the budget.
        assert doc["usage"]["prompt_tokens"] <= budget
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as session,
            session.get(url + "/api/sessions/conversation-1/compression") as resp,
        ):
            report = await resp.json()
        assert (report["tokens_before"], report["tokens_after"]) == (before, after)
        turns = report["turns"]
        assert turns[0]["role"] == "system" and turns[0]["verbatim"]  # system prompt kept
        assert all(t["verbatim"] for t in turns[-3:])  # the recent turns kept whole
        shortened = [t for t in turns if t["dropped"]]
        assert shortened
        for turn in turns:
            text = messages[turn["index"]]["content"]
            assert all(sentence in text for sentence in turn["kept"])  # extractive

        # Next turn of the same conversation: older turns go the same way (prefix cache).
        follow = [*messages, {"role": "assistant", "content": "Lane 2."},
                  {"role": "user", "content": "And the least?"}]  # fmt: skip
        status, _, doc = await post(url, follow, headers)
        assert status == 200 and doc["usage"]["prompt_tokens"] <= budget
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as session,
            session.get(url + "/api/sessions/conversation-1/compression") as resp,
        ):
            later = await resp.json()
        first = {t["index"]: t["kept"] for t in turns if not t["verbatim"]}
        again = {t["index"]: t["kept"] for t in later["turns"] if t["index"] in first}
        assert again == first


async def test_the_budget_defaults_to_the_lanes_context(
    sim_lane: Callable[..., SimLaneProcess],
) -> None:
    lane = sim_lane(time_scale=50, extra=["--max-model-len", "1200"])
    async with stack(lane, PublicConfig()) as (url, _urls):
        status, headers, doc = await post(url, history(24), {})
        assert status == 200, doc
        before, after = map(int, headers["X-Qwend-Compressed"].split("->"))
        # 90 % of 1200, minus max_tokens 4.
        assert before > 1200 and after <= 1076
        assert doc["usage"]["prompt_tokens"] <= 1076


async def test_a_public_endpoint_compresses_when_configured_or_asked(
    sim_lane: Callable[..., SimLaneProcess],
) -> None:
    lane = sim_lane(time_scale=50)
    public = PublicConfig(history_budget_tokens=800)
    seen: list[HistoryCompressor] = []
    async with stack(lane, public, seen) as (_url, urls):
        api = urls["api"]
        status, headers, doc = await post(api, history(20), {})
        assert status == 200
        assert "X-Qwend-Compressed" in headers and doc["usage"]["prompt_tokens"] <= 800
        assert seen[0].observed == 1  # the lane's count went back into the estimator
        status, headers, doc = await post(api, history(20), {"X-Qwend-Compress": "off"})
        assert status == 200 and "X-Qwend-Compressed" not in headers
        assert doc["usage"]["prompt_tokens"] > 800
        status, headers, doc = await post(api, history(20), {"X-Qwend-Compress": "500"})
        assert status == 200 and doc["usage"]["prompt_tokens"] <= 500
        status, _, doc = await post(api, history(2), {"X-Qwend-Compress": "lots"})
        assert status == 400
        assert doc["error"]["param"] == "X-Qwend-Compress"
        assert "'auto', 'off' or a token budget" in doc["error"]["message"]


async def test_a_streamed_answer_trains_the_estimator_with_the_lanes_own_count(
    sim_lane: Callable[..., SimLaneProcess],
) -> None:
    lane = sim_lane(time_scale=50)
    public = PublicConfig(history_budget_tokens=800)
    seen: list[HistoryCompressor] = []
    async with stack(lane, public, seen) as (_url, urls):
        for target, observed in (("api", 1), ("console", 2)):
            doc = {"messages": history(20), "max_tokens": 4, "stream": True,
                   "stream_options": {"include_usage": True}}  # fmt: skip
            async with (
                aiohttp.ClientSession(timeout=TIMEOUT) as session,
                session.post(urls[target] + "/v1/chat/completions", json=doc) as resp,
            ):
                assert resp.status == 200 and "X-Qwend-Compressed" in resp.headers
                assert resp.headers.get("X-Request-Id")
                body = await resp.text()
            assert '"prompt_tokens"' in body and "qwend_usage_estimated" not in body
            assert seen[0].observed == observed  # the lane's count, read from the stream
        # Without a usage chunk there is no count of the lane's: nothing is learned.
        doc = {"messages": history(20), "max_tokens": 4, "stream": True}
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as session,
            session.post(urls["api"] + "/v1/chat/completions", json=doc) as resp,
        ):
            assert resp.status == 200
            await resp.read()
        assert seen[0].observed == 2
