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
ZH_FILLER = [
    "今天",
    "天气",
    "很好",
    "我们",
    "聊了",
    "电影",
    "音乐",
    "美食",
    "旅行",
    "计划",
    "工作",
    "会议",
    "咖啡",
    "书籍",
    "周末",
    "花园",
    "晚饭",
    "散步",
    "早上",
    "晚上",
    "朋友",
    "公园",
    "下雨",
    "周一",
    "出差",
]


def filler_sentence(rng: random.Random, chinese: bool = False) -> str:
    if chinese:
        return "".join(rng.choice(ZH_FILLER) for _ in range(rng.randint(4, 8))) + "。"
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
