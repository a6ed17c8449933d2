"""Chat history compression as the console and the public endpoints apply it (I/O side).

``qwend.compress`` does the work (pure); this module supplies what it needs from
the running system: the budget (configured, asked for, or what the target lane's
``max_model_len`` from its ``/v1/models`` leaves), token counts from the lane's
``/tokenize`` where it has one (exact counts of whole messages, which also train
the per-script estimator used for sentences), and the previous compression of
the same conversation (``X-Qwend-Session``), so a turn compressed once is sent
the same way on every later turn and the lane's prefix cache keeps hitting.
Sessions are kept in a bounded LRU: a forgotten session only costs one turn of
prefix-cache misses.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientError, ClientTimeout

from qwend.compress import Budget, CompressionResult, compress_history
from qwend.compress.counting import EstimatingCounter
from qwend.config.model import PublicConfig
from qwend.logs import get_logger
from qwend.public.historyplan import (
    COMPRESS_HEADER,
    COMPRESSED_HEADER,
    SESSION_HEADER,
    Compressed,
    HistoryRefused,
    budget_for,
    parse_mode,
)
from qwend.router.lanes import LaneRuntime
from qwend.router.upstream import Upstream
from qwend.tokens import MESSAGE_OVERHEAD_TOKENS, REPLY_PRIMER_TOKENS

__all__ = [
    "COMPRESSED_HEADER",
    "COMPRESS_HEADER",
    "SESSION_HEADER",
    "HistoryCompressor",
    "HistoryRefused",
    "Outcome",
]

log = get_logger("public")
MAX_SESSIONS = 512
"""Conversations whose last compression is remembered (least recently used go first)."""
MAX_SESSION_ID = 128
"""Characters of an ``X-Qwend-Session`` id that count (a longer one is cut)."""
MAX_EXACT = 8192
"""Message texts whose exact token count is remembered, per lane."""
LANE_TIMEOUT = ClientTimeout(total=2.0)
"""A lane's ``/v1/models`` or ``/tokenize`` answer; slower ones fall back to estimates."""
TOKENIZE_PARALLEL = 8
TOKENIZE_PER_REQUEST = 64
"""Most uncounted messages sent to ``/tokenize`` for one request (the newest first): a
500-turn history pasted at once costs a bounded wait; the estimator, trained on these
counts, covers the rest until later requests have counted them too."""
INFO_TTL_S = 60.0
"""How long a lane's context length and ``/tokenize`` support are trusted."""


@dataclass(frozen=True)
class Outcome:
    """A compressed request."""

    doc: dict[str, Any]
    """The request body with its messages replaced."""
    header: str
    """``X-Qwend-Compressed`` value."""
    result: CompressionResult
    counter: LaneCounter
    """The counter the compression used (it learns from the lane's answer)."""


def header_value(result: CompressionResult) -> str:
    """``X-Qwend-Compressed``: prompt tokens before and after."""
    return f"{result.tokens_before}->{result.tokens_after}"


def report_doc(result: CompressionResult, budget: int) -> dict[str, object]:
    """What the console's badge shows: totals and, per turn, what was kept and dropped."""
    return {
        "tokens_before": result.tokens_before,
        "tokens_after": result.tokens_after,
        "budget": budget,
        "within_budget": result.within_budget,
        "compressed": result.compressed,
        "turns": [
            {
                "index": t.index,
                "role": t.role,
                "tokens_before": t.tokens_before,
                "tokens_after": t.tokens_after,
                "verbatim": t.verbatim,
                "kept": list(t.kept),
                "dropped": list(t.dropped),
            }
            for t in result.turns
        ],
    }


class LaneCounter:
    """A ``TokenCounter``: exact counts of known texts (the lane's ``/tokenize``), else the
    estimator, which learns from every exact count it is shown."""

    def __init__(self) -> None:
        self.estimator = EstimatingCounter()
        self._exact: OrderedDict[str, int] = OrderedDict()

    def known(self, text: str) -> bool:
        return text in self._exact

    def learn(self, text: str, tokens: int) -> None:
        """Remember the exact count of ``text`` and train the estimator with it."""
        self._exact[text] = tokens
        self._exact.move_to_end(text)
        while len(self._exact) > MAX_EXACT:
            self._exact.popitem(last=False)
        message = {"role": "user", "content": text}
        self.estimator.observe([message], tokens + MESSAGE_OVERHEAD_TOKENS + REPLY_PRIMER_TOKENS)

    def count(self, text: str) -> int:
        exact = self._exact.get(text)
        return exact if exact is not None else self.estimator.count(text)

    def count_message(self, message: Mapping[str, Any]) -> int:
        content = message.get("content")
        if isinstance(content, str) and content in self._exact:
            return self._exact[content] + MESSAGE_OVERHEAD_TOKENS
        return self.estimator.count_message(message)

    def observe(self, messages: Sequence[Mapping[str, Any]], prompt_tokens: int) -> None:
        self.estimator.observe(messages, prompt_tokens)


@dataclass
class _LaneInfo:
    context: int | None
    tokenize: bool
    checked_at: float


class HistoryCompressor:
    """Compresses chat bodies for one listener group; remembers sessions and lane facts."""

    def __init__(self, upstream: Upstream, public: PublicConfig) -> None:
        self._upstream = upstream
        self.public = public
        self._sessions: OrderedDict[str, tuple[CompressionResult, dict[str, object]]] = (
            OrderedDict()
        )
        self._lanes: dict[str, _LaneInfo] = {}
        self._counters: dict[str, LaneCounter] = {}
        self._fallback = LaneCounter()
        self.observed = 0
        """Answers whose ``usage.prompt_tokens`` corrected the estimator."""

    def report(self, session: str) -> dict[str, object] | None:
        """The last compression report of ``session``, if remembered."""
        entry = self._sessions.get(session[:MAX_SESSION_ID])
        return None if entry is None else entry[1]

    async def apply(
        self,
        doc: dict[str, Any],
        lanes: Sequence[LaneRuntime],
        *,
        mode: str | None,
        enabled: bool,
        session: str | None,
    ) -> Outcome | None:
        """The compressed request, or None when it is not to be (or cannot be) compressed.

        HistoryRefused for a bad ``X-Qwend-Compress`` header.
        """
        wanted = parse_mode(mode, enabled)
        messages = doc.get("messages")
        if not wanted.enabled or not isinstance(messages, list) or len(messages) < 2:
            return None
        if not all(isinstance(m, Mapping) for m in messages):
            return None  # the router's validation answers this request
        infos = await asyncio.gather(*(self._info(r.lane.base_url) for r in lanes))
        contexts = [i.context for i in infos if i.context is not None]
        budget = budget_for(wanted, self.public.history_budget_tokens, contexts, doc)
        if budget is None:
            return None
        counter = self._fallback
        with_tokenize = [r for r, i in zip(lanes, infos, strict=True) if i.tokenize]
        if with_tokenize:
            url = with_tokenize[0].lane.base_url
            counter = self._counters.setdefault(url, LaneCounter())
            await self._count_exactly(url, counter, messages)
        key = session[:MAX_SESSION_ID] if session is not None else None
        entry = self._sessions.get(key) if key is not None else None
        previous = entry[0] if entry is not None else None
        result = compress_history(
            messages,
            Budget(budget, self.public.keep_recent_turns),
            counter=counter,
            seed=0,
            previous=previous,
        )
        if key is not None:
            self._remember(key, result, report_doc(result, budget))
        return Outcome(
            {**doc, "messages": list(result.messages)}, header_value(result), result, counter
        )

    def observe(self, outcome: Compressed, prompt_tokens: int) -> None:
        """Correct the estimator with what the lane counted for a compressed request."""
        if isinstance(outcome, Outcome):
            outcome.counter.observe(outcome.result.messages, prompt_tokens)
            self.observed += 1

    def _remember(self, session: str, result: CompressionResult, doc: dict[str, object]) -> None:
        self._sessions[session] = (result, doc)
        self._sessions.move_to_end(session)
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)

    async def _info(self, base_url: str) -> _LaneInfo:
        """The lane's context length and whether it has ``/tokenize`` (cached a while)."""
        now = time.monotonic()
        info = self._lanes.get(base_url)
        if info is not None and now - info.checked_at < INFO_TTL_S:
            return info
        context = await self._context(base_url)
        tokenize = await self._tokenize(base_url, "qwend") is not None
        info = _LaneInfo(context, tokenize, now)
        self._lanes[base_url] = info
        return info

    async def _context(self, base_url: str) -> int | None:
        try:
            session = self._upstream.session
            async with session.get(base_url + "/v1/models", timeout=LANE_TIMEOUT) as resp:
                doc = await resp.json() if resp.status == 200 else None
        except (ClientError, TimeoutError, ValueError, RuntimeError):
            return None
        data = doc.get("data") if isinstance(doc, dict) else None
        lengths = [
            e["max_model_len"]
            for e in data or ()
            if isinstance(e, dict) and isinstance(e.get("max_model_len"), int)
        ]
        return min(lengths) if lengths else None

    async def _tokenize(self, base_url: str, text: str) -> int | None:
        try:
            session = self._upstream.session
            async with session.post(
                base_url + "/tokenize", json={"prompt": text}, timeout=LANE_TIMEOUT
            ) as resp:
                doc = await resp.json() if resp.status == 200 else None
        except (ClientError, TimeoutError, ValueError, RuntimeError):
            return None
        count = doc.get("count") if isinstance(doc, dict) else None
        return count if isinstance(count, int) else None

    async def _count_exactly(
        self, base_url: str, counter: LaneCounter, messages: Sequence[Mapping[str, Any]]
    ) -> None:
        """Ask the lane for the counts of the message texts it has not counted yet."""
        texts: list[str] = []
        for message in reversed(messages):
            text = message.get("content")
            if isinstance(text, str) and not counter.known(text) and text not in texts:
                texts.append(text)
                if len(texts) == TOKENIZE_PER_REQUEST:
                    break
        gate = asyncio.Semaphore(TOKENIZE_PARALLEL)

        async def one(text: str) -> None:
            async with gate:
                tokens = await self._tokenize(base_url, text)
            if tokens is not None:
                counter.learn(text, tokens)

        await asyncio.gather(*(one(t) for t in texts))
