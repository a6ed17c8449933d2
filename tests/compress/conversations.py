"""Small generated conversations for the compression tests."""

from __future__ import annotations

import random
from typing import Any

FILLER = [
    "the",
    "weather",
    "was",
    "nice",
    "and",
    "we",
    "talked",
    "about",
    "movies",
    "music",
    "food",
    "travel",
    "plans",
    "work",
    "meetings",
    "coffee",
    "books",
    "weekend",
    "garden",
    "lunch",
    "dinner",
    "walk",
    "evening",
    "morning",
]
ZH_FILLER = (
    "今天天气很好，我们去公园散步了。",
    "晚饭以后我和朋友聊了很久的电影。",
    "这周的会议有点多，工作计划要调整。",
    "周末想去旅行，但是预算还没定。",
    "早上喝了一杯咖啡，然后开始看书。",
    "花园里的花开了，下雨以后更好看。",
)


def filler_sentence(rng: random.Random, chinese: bool = False) -> str:
    if chinese:
        return rng.choice(ZH_FILLER)
    words = [rng.choice(FILLER) for _ in range(rng.randint(6, 14))]
    return " ".join(words).capitalize() + "."


def conversation(
    turns: int, seed: int = 0, *, facts: dict[int, str] | None = None
) -> list[dict[str, Any]]:
    """A system prompt and ``turns`` alternating user/assistant messages of filler, with
    ``facts[i]`` appended to turn ``i``."""
    rng = random.Random(seed)
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a helpful aide."}]
    for i in range(turns):
        chinese = i % 3 == 2
        text = " ".join(filler_sentence(rng, chinese) for _ in range(rng.randint(2, 4)))
        if facts and i in facts:
            text += " " + facts[i]
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return messages
