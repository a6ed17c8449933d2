"""The GSM8K path end to end over HTTP: prompts out, answers in, exact match, verdict.

A small OpenAI-compatible server on loopback plays a model that solves every other
problem it is asked (it reads the question from the last user turn), so the
measured accuracy is known exactly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from qwend.verify import checks, gsm8k
from qwend.verify.report import Verdict

SAMPLES = 6
BODIES = web.AppKey("bodies", list[dict[str, object]])


async def chat(request: web.Request) -> web.Response:
    body = await request.json()
    request.app[BODIES].append(body)
    question = body["messages"][-1]["content"]
    index = next(i for i, p in enumerate(gsm8k.problems(SAMPLES)) if p.question in question)
    answer = gsm8k.problems(SAMPLES)[index].answer
    said = answer if index % 2 == 0 else f"{answer}1"
    text = f"Let me work it out step by step. The answer is {said}."
    # Playing a router: the model names the lane that answers (none: not a router).
    lane = {"real": "stable", "sim": "mm"}.get(body["model"])
    headers = {"X-Qwend-Lane": lane} if lane else {}
    return web.json_response({"choices": [{"index": 0, "message": {"role": "assistant",
                              "content": text}, "finish_reason": "stop"}]},
                             headers=headers)  # fmt: skip


@pytest.fixture
async def model_url() -> AsyncIterator[tuple[str, list[dict[str, object]]]]:
    app = web.Application()
    app[BODIES] = []
    app.router.add_post("/v1/chat/completions", chat)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/"), app[BODIES]


async def test_accuracy_is_measured_and_judged(
    model_url: tuple[str, list[dict[str, object]]],
) -> None:
    url, bodies = model_url
    cfg = checks.AccuracySettings(samples=SAMPLES, shots=4, min_accuracy=0.4)
    async with aiohttp.ClientSession() as session:
        section = await checks.accuracy(session, url, "m", cfg, simulated=False)
        strict = await checks.accuracy(
            session, url, "m", checks.AccuracySettings(samples=SAMPLES, min_accuracy=0.6), False
        )
        simulated = await checks.accuracy(session, url, "m", cfg, simulated=True)
    assert section.data == {"samples": 6, "correct": 3, "answered": 6, "accuracy": 0.5,
                            "simulated": False, "lanes": []}  # fmt: skip
    assert section.verdict is Verdict.PASS
    assert section.conclusion == "50.00% exact match, at least the required 40%"
    assert strict.verdict is Verdict.FAIL and "below the required 60%" in strict.conclusion
    assert simulated.verdict is Verdict.INFO and "measures nothing" in simulated.notes[0]
    first = bodies[0]
    assert (first["temperature"], first["top_p"], first["max_tokens"]) == (0.6, 0.95, 512)
    assert isinstance(first["messages"], list) and len(first["messages"]) == 9  # 4 shots + 1


async def test_failed_requests_fail_the_section() -> None:
    cfg = checks.AccuracySettings(samples=2)
    async with aiohttp.ClientSession() as session:
        section = await checks.accuracy(session, "http://127.0.0.1:9", "m", cfg, False)
    assert section.verdict is Verdict.FAIL and "2 requests failed" in section.conclusion


async def test_the_lanes_that_answered_decide_whether_it_is_simulated(
    model_url: tuple[str, list[dict[str, object]]],
) -> None:
    """A real text lane beside a simulated image lane: the accuracy is a real measurement."""
    url, _ = model_url
    sim = frozenset({"mm"})
    cfg = checks.AccuracySettings(samples=2, min_accuracy=0.0)
    async with aiohttp.ClientSession() as session:
        real = await checks.accuracy(session, url, "real", cfg, True, sim)
        fake = await checks.accuracy(session, url, "sim", cfg, False, sim)
        report_only = await checks.accuracy(
            session, url, "real", checks.AccuracySettings(samples=2), True, sim
        )
    assert real.verdict is Verdict.PASS and real.data["simulated"] is False
    assert real.data["lanes"] == ["stable"] and "stable (real model)" in real.notes[0]
    assert fake.verdict is Verdict.INFO and fake.data["simulated"] is True
    assert "measures nothing" in fake.notes[0]
    # Without --min-accuracy a real model's score is reported, not judged.
    assert report_only.verdict is Verdict.INFO
    assert "reported only" in report_only.conclusion
