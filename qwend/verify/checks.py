"""The report's measured sections (aiohttp): endpoints, routes, latency, QPS, GSM8K."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from qwend.bench.payload import image_data_url
from qwend.bench.stats import summarize
from qwend.verify import gsm8k
from qwend.verify.report import Section, Table, Verdict

LANE_HEADER = "X-Qwend-Lane"
PERF_PROMPT = "The future of artificial intelligence is"
"""The seed report's latency prompt (completions, max_tokens=50)."""
LONG_TEXT = " ".join(["Summarise the history of computing in detail."] * 12)


@dataclass(frozen=True)
class Answer:
    ok: bool
    status: int
    seconds: float
    body: Any
    lane: str
    error: str = ""


async def call(
    session: aiohttp.ClientSession, method: str, url: str, body: object | None = None
) -> Answer:
    """One request; the decoded JSON (or SSE text for streams); failures are answers too."""
    began = time.perf_counter()
    try:
        async with session.request(method, url, json=body) as resp:
            raw = await resp.text()
            lane = resp.headers.get(LANE_HEADER, "")
            took = time.perf_counter() - began
            is_json = resp.content_type == "application/json"
            data: Any = json.loads(raw) if is_json and raw else raw
            error = "" if resp.status == 200 else f"HTTP {resp.status}: {raw[:160]}"
            return Answer(resp.status == 200, resp.status, took, data, lane, error)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        took = time.perf_counter() - began
        return Answer(False, 0, took, None, "", f"{type(exc).__name__}: {exc}")


def _text(answer: Answer) -> str:
    try:
        choice = answer.body["choices"][0]
    except (KeyError, IndexError, TypeError):
        return ""
    return str(choice.get("text") or (choice.get("message") or {}).get("content") or "")


def _excerpt(text: str, n: int = 60) -> str:
    """One line of at most ``n`` characters; control characters (a random model's
    tokens, or a terminal escape sequence from a hostile backend) shown as U+FFFD."""
    flat = "".join(c if c.isprintable() else "\ufffd" for c in " ".join(text.split()))
    return flat if len(flat) <= n else flat[: n - 1] + "…"


def _chat(model: str, content: object, max_tokens: int, **extra: object) -> dict[str, object]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        **extra,
    }


def _image_content() -> list[dict[str, object]]:
    return [
        {"type": "text", "text": "What colour is this image? Answer in one word."},
        {"type": "image_url", "image_url": {"url": image_data_url()}},
    ]


def _finished(sse: str) -> bool:
    """Some chunk of the event stream carries a finish_reason (the generation ended)."""
    for line in sse.splitlines():
        if not line.startswith("data: {"):
            continue
        try:
            chunk = json.loads(line[len("data: ") :])
        except ValueError:
            continue
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if any(isinstance(c, dict) and c.get("finish_reason") for c in choices or ()):
            return True
    return False


async def endpoints(
    session: aiohttp.ClientSession, url: str, model: str, image: bool, *, direct: bool = False
) -> Section:
    """/v1/models, completions, chat, streaming chat, and an image request where one fits.

    ``direct``: the target is one lane, not qwend's router. Some backends (transformers
    serve) end a stream without ``data: [DONE]``; the router adds it for clients, so
    there a finished stream without it passes, with a note, rather than failing the lane.
    """
    rows: list[tuple[str, ...]] = []
    failed: list[str] = []
    notes: list[str] = [] if image else ["no multimodal lane: image request not sent"]

    def add(name: str, a: Answer, detail: str, good: bool) -> None:
        rows.append(
            (
                name,
                str(a.status or "-"),
                f"{a.seconds * 1000:.0f}",
                a.lane or "-",
                _excerpt(detail if a.ok else a.error),
            )
        )
        if not (a.ok and good):
            failed.append(name)

    models = await call(session, "GET", f"{url}/v1/models")
    ids = [m.get("id") for m in (models.body or {}).get("data", [])] if models.ok else []
    add("GET /v1/models", models, ", ".join(map(str, ids)), model in ids or not ids)
    comp = await call(
        session,
        "POST",
        f"{url}/v1/completions",
        {"model": model, "prompt": PERF_PROMPT, "max_tokens": 50, "temperature": 0.7},
    )
    add("POST /v1/completions", comp, _text(comp), bool(_text(comp)))
    chat = await call(
        session,
        "POST",
        f"{url}/v1/chat/completions",
        _chat(model, "What is the capital of France?", 50, temperature=0.7),
    )
    add("POST /v1/chat/completions", chat, _text(chat), bool(_text(chat)))
    stream = await call(
        session,
        "POST",
        f"{url}/v1/chat/completions",
        _chat(model, "Count to five.", 16, stream=True),
    )
    text = stream.body if isinstance(stream.body, str) else ""
    chunks = text.count("data: {")
    if "data: [DONE]" in text:
        add("chat stream", stream, f"{chunks} chunks, [DONE]", chunks > 0)
    elif direct and _finished(text):
        add("chat stream", stream, f"{chunks} chunks, finished, no [DONE]", chunks > 0)
        notes.append("the lane ends its stream without data: [DONE]; qwend's router adds it")
    else:
        add("chat stream", stream, f"{chunks} chunks, no [DONE]", False)
    if image:
        img = await call(
            session, "POST", f"{url}/v1/chat/completions", _chat(model, _image_content(), 8)
        )
        add("chat with an image", img, _text(img), bool(_text(img)))
    table = Table(("endpoint", "status", "ms", "lane", "answer"), tuple(rows))
    if failed:
        return Section(
            "Endpoints", Verdict.FAIL, "failed: " + ", ".join(failed), (table,), tuple(notes)
        )
    return Section(
        "Endpoints", Verdict.PASS, f"{len(rows)} endpoint checks answered", (table,), tuple(notes)
    )


async def routes(
    session: aiohttp.ClientSession, url: str, model: str, expected: Mapping[str, set[str]]
) -> Section:
    """Which lane served a short text, a long text and an image through the router.

    ``expected`` maps each request kind to the lanes the routing policy allows.
    """
    requests = {
        "short text": _chat(model, "Hi", 8),
        "long text": _chat(model, LONG_TEXT, 64),
        "image": _chat(model, _image_content(), 8),
    }
    rows = []
    wrong = []
    for kind, body in requests.items():
        if kind not in expected:
            continue
        a = await call(session, "POST", f"{url}/v1/chat/completions", body)
        allowed = expected[kind]
        good = a.ok and a.lane in allowed
        rows.append(
            (
                kind,
                a.lane or "-",
                ", ".join(sorted(allowed)),
                "yes" if good else "NO",
                "" if a.ok else _excerpt(a.error),
            )
        )
        if not good:
            wrong.append(kind)
    table = Table(("request", "served by", "policy allows", "as expected", "error"), tuple(rows))
    if wrong:
        return Section("Routes", Verdict.FAIL, "unexpected lane for " + ", ".join(wrong), (table,))
    return Section("Routes", Verdict.PASS, "every request went where the policy says", (table,))


async def latency(session: aiohttp.ClientSession, url: str, model: str, n: int) -> Section:
    """N single completions one after the other (the seed report's prompt, max_tokens=50)."""
    body = {"model": model, "prompt": PERF_PROMPT, "max_tokens": 50, "temperature": 0.7}
    answers = [await call(session, "POST", f"{url}/v1/completions", body) for _ in range(n)]
    ms = [a.seconds * 1000 for a in answers if a.ok]
    s = summarize(ms)
    per = Table(
        ("request", "latency (ms)", "lane", "result"),
        tuple(
            (str(i), f"{a.seconds * 1000:.1f}", a.lane or "-", "ok" if a.ok else _excerpt(a.error))
            for i, a in enumerate(answers, 1)
        ),
    )
    stats = (
        Table(
            ("statistic", "value"),
            (
                ("mean", f"{s.mean:.1f} ms"),
                ("p50", f"{s.median:.1f} ms"),
                ("min", f"{s.min:.1f} ms"),
                ("max", f"{s.max:.1f} ms"),
                ("stdev", f"{s.stdev:.1f} ms"),
            ),
        )
        if ms
        else Table(("statistic", "value"), ())
    )
    failed = n - len(ms)
    data = {"n": n, "failed": failed, "latency_ms": s.to_dict()}
    if failed:
        return Section(
            "Latency", Verdict.FAIL, f"{failed} of {n} requests failed", (per, stats), data=data
        )
    return Section(
        "Latency", Verdict.PASS, f"mean {s.mean:.1f} ms over {n} requests", (per, stats), data=data
    )


async def qps(
    session: aiohttp.ClientSession, url: str, model: str, concurrency: int, total: int
) -> Section:
    """``total`` completions, ``concurrency`` at a time; success rate and requests per second."""
    body = {"model": model, "prompt": PERF_PROMPT, "max_tokens": 50, "temperature": 0.7}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)
    answers: list[Answer] = []

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            answers.append(await call(session, "POST", f"{url}/v1/completions", body))

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - began
    ok = [a.seconds * 1000 for a in answers if a.ok]
    s = summarize(ok)
    rate = len(ok) / wall if wall > 0 else 0.0
    lanes = sorted({a.lane for a in answers if a.lane})
    table = Table(
        ("metric", "value"),
        (
            ("requests", str(total)),
            ("concurrency", str(concurrency)),
            ("succeeded", str(len(ok))),
            ("success rate", f"{len(ok) / total:.0%}"),
            ("total time", f"{wall:.2f} s"),
            ("QPS", f"{rate:.2f}"),
            ("mean latency", f"{s.mean:.1f} ms"),
            ("min latency", f"{s.min:.1f} ms"),
            ("max latency", f"{s.max:.1f} ms"),
            ("lanes", ", ".join(lanes) or "-"),
        ),
    )
    data = {"requests": total, "succeeded": len(ok), "wall_s": wall, "qps": rate}
    if len(ok) < total:
        return Section(
            "Throughput", Verdict.FAIL, f"{total - len(ok)} of {total} failed", (table,), data=data
        )
    return Section(
        "Throughput",
        Verdict.PASS,
        f"{rate:.2f} QPS at concurrency {concurrency}, 100% success",
        (table,),
        data=data,
    )


@dataclass(frozen=True)
class AccuracySettings:
    samples: int = 20
    shots: int = 4
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 512
    concurrency: int = 4
    min_accuracy: float | None = None
    """Fail below this fraction (None: report only)."""


async def accuracy(
    session: aiohttp.ClientSession,
    url: str,
    model: str,
    cfg: AccuracySettings,
    simulated: bool,
    simulated_lanes: frozenset[str] | None = None,
) -> Section:
    """GSM8K: k-shot chain of thought, exact match on the final number.

    ``simulated`` says whether the target is simulated when answers do not name their
    lane (a URL or a lane directly); through the router the lanes that actually answered
    (``X-Qwend-Lane``) decide, against ``simulated_lanes``: a real text lane beside a
    simulated image lane measures a real model.
    """
    problems = gsm8k.problems(cfg.samples)
    results: list[tuple[bool, Answer]] = [(False, Answer(False, 0, 0, None, ""))] * len(problems)
    sem = asyncio.Semaphore(cfg.concurrency)

    async def one(i: int, p: gsm8k.Problem) -> None:
        body = {
            "model": model,
            "messages": gsm8k.messages(p, cfg.shots),
            "max_tokens": cfg.max_tokens,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
        }
        async with sem:
            a = await call(session, "POST", f"{url}/v1/chat/completions", body)
        results[i] = (a.ok and gsm8k.correct(p, _text(a)), a)

    await asyncio.gather(*(one(i, p) for i, p in enumerate(problems)))
    answered = sum(1 for _, a in results if a.ok)
    right = sum(1 for good, _ in results if good)
    acc = right / len(problems)
    served = {a.lane for _, a in results if a.lane}
    if served and simulated_lanes is not None:
        simulated = bool(served & simulated_lanes)
    table = Table(
        ("item", "value"),
        (
            ("dataset", f"GSM8K test, first {cfg.samples} problems"),
            ("mode", f"{cfg.shots}-shot chain of thought, chat prompt"),
            (
                "generation",
                f"temperature={cfg.temperature:g}, top_p={cfg.top_p:g}, "
                f"max_tokens={cfg.max_tokens}",
            ),
            ("answered", f"{answered}/{len(problems)}"),
            ("exact match", f"{right}/{len(problems)}"),
            ("accuracy", f"{acc:.2%}"),
        ),
    )
    data = {
        "samples": cfg.samples,
        "correct": right,
        "answered": answered,
        "accuracy": acc,
        "simulated": simulated,
        "lanes": sorted(served),
    }
    lanes_note = f"answered by {', '.join(sorted(served))} (real model)" if served else ""
    if answered < len(problems):
        return Section(
            "Accuracy (GSM8K)",
            Verdict.FAIL,
            f"{len(problems) - answered} requests failed",
            (table,),
            data=data,
        )
    if simulated:
        note = ("simulated lanes generate placeholder text: this accuracy measures nothing",)
        return Section(
            "Accuracy (GSM8K)",
            Verdict.INFO,
            f"{acc:.2%} (simulated: not a model measurement)",
            (table,),
            note,
            data,
        )
    if cfg.min_accuracy is not None and acc < cfg.min_accuracy:
        return Section(
            "Accuracy (GSM8K)",
            Verdict.FAIL,
            f"{acc:.2%} below the required {cfg.min_accuracy:.0%}",
            (table,),
            data=data,
        )
    notes = (lanes_note,) if lanes_note else ()
    if cfg.min_accuracy is None:
        return Section(
            "Accuracy (GSM8K)",
            Verdict.INFO,
            f"{acc:.2%} exact match (reported only: no --min-accuracy)",
            (table,),
            notes,
            data,
        )
    return Section(
        "Accuracy (GSM8K)",
        Verdict.PASS,
        f"{acc:.2%} exact match, at least the required {cfg.min_accuracy:.0%}",
        (table,),
        notes,
        data,
    )


async def lane_versions(
    session: aiohttp.ClientSession, lanes: Sequence[tuple[str, str, str]]
) -> list[tuple[str, ...]]:
    """(lane, variant, base URL) -> rows of (lane, variant, /version, model, simulated)."""
    rows: list[tuple[str, ...]] = []
    for name, variant, base in lanes:
        version = await call(session, "GET", f"{base}/version")
        models = await call(session, "GET", f"{base}/v1/models")
        v = str((version.body or {}).get("version", "unknown")) if version.ok else "unknown"
        data = (models.body or {}).get("data", []) if models.ok else []
        first = data[0] if data else {}
        simulated = first.get("owned_by") == "qwend-sim" or v.endswith("+qwend-sim")
        rows.append(
            (name, variant, v, str(first.get("id", "unknown")), "yes" if simulated else "no")
        )
    return rows
