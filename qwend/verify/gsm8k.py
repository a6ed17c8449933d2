"""GSM8K prompts and scoring (pure): k-shot chain of thought, exact match on the final number."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

TEST_FILE = "gsm8k_test_first200.jsonl"
TRAIN_FILE = "gsm8k_train_first50.jsonl"
MAX_SAMPLES = 200
"""Test problems vendored (the first 200 of the split, the seed report's sample)."""
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_ANSWER_IS = re.compile(r"answer is[:\s]*\$?\s*(-?\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    question: str
    solution: str
    """The reference chain of thought, without the ``#### N`` line."""
    answer: str
    """The final number, normalised."""


def normalise(number: str) -> str:
    """``1,000.00`` -> ``1000``; ``-3.50`` -> ``-3.5``."""
    text = number.replace(",", "").rstrip(".")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _problem(line: str) -> Problem:
    data = json.loads(line)
    solution, _, final = str(data["answer"]).rpartition("####")
    return Problem(str(data["question"]), solution.strip(), normalise(final.strip()))


@cache
def _load(name: str) -> tuple[Problem, ...]:
    text = resources.files("qwend.verify.data").joinpath(name).read_text(encoding="utf-8")
    return tuple(_problem(line) for line in text.splitlines() if line.strip())


def problems(n: int) -> tuple[Problem, ...]:
    """The first ``n`` test problems (at most ``MAX_SAMPLES``)."""
    if not 1 <= n <= MAX_SAMPLES:
        raise ValueError(f"GSM8K samples must be within 1-{MAX_SAMPLES}, got {n}")
    return _load(TEST_FILE)[:n]


def shots(k: int) -> tuple[Problem, ...]:
    """The first ``k`` train problems, as worked examples."""
    if not 0 <= k <= len(_load(TRAIN_FILE)):
        raise ValueError(f"GSM8K shots must be within 0-{len(_load(TRAIN_FILE))}, got {k}")
    return _load(TRAIN_FILE)[:k]


def _worked(p: Problem) -> str:
    steps = re.sub(r"<<[^>]*>>", "", p.solution)  # drop the calculator annotations
    return f"{steps}\nThe answer is {p.answer}."


def messages(problem: Problem, k: int) -> list[dict[str, str]]:
    """A k-shot chain-of-thought chat: worked examples as earlier turns, then the problem."""
    out: list[dict[str, str]] = []
    for example in shots(k):
        out.append({"role": "user", "content": _question(example)})
        out.append({"role": "assistant", "content": _worked(example)})
    out.append({"role": "user", "content": _question(problem)})
    return out


def _question(p: Problem) -> str:
    return f"Question: {p.question}\nLet's think step by step and end with 'The answer is N.'"


def extract(text: str) -> str | None:
    """The model's final number: after the last "answer is", else the last number in the text."""
    stated = _ANSWER_IS.findall(text)
    if stated:
        return normalise(stated[-1])
    numbers = _NUMBER.findall(text)
    return normalise(numbers[-1]) if numbers else None


def correct(problem: Problem, text: str) -> bool:
    """Exact match of the final number."""
    return extract(text) == problem.answer
