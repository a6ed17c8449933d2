"""Compress a chat history to a token budget, extractively and stably (pure).

What is sent: every system message as is, the last ``keep_recent_turns`` messages as is,
and of each older user/assistant message the sentences that a plan keeps, in their
order (every kept sentence is a substring of its message; image parts always stay
while the budget allows any). Other older messages (tool results, tool calls) are sent
whole unless the budget cannot hold them.

Stability: a lane's prefix cache only hits if the compressed older turns read the same
as last time. Given the previous result for the same conversation, turns it already
compressed are compressed the same way again, and turns that have just left the recent
window keep their sentences above the plan's importance bar; only when that no longer fits
is the whole older history planned anew, then to ``REPLAN_HEADROOM`` of the room, so
that many turns pass before the next re-plan. A re-plan is also made when the
conversation comes back to something the plan dropped (its importance, which leans
towards what the recent turns talk about, has risen above twice the plan's bar).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qwend.compress.anneal import Segment, allocate
from qwend.compress.counting import EstimatingCounter, TokenCounter
from qwend.compress.graph import sentence_scores
from qwend.compress.model import Budget, CompressionResult, TurnReport
from qwend.compress.sentences import Span, join_spans, split_sentences
from qwend.compress.terms import sentence_terms, term_set
from qwend.tokens import REPLY_PRIMER_TOKENS

REPLAN_HEADROOM = 0.75
"""Share of the room a re-plan fills when a previous result is given (the rest absorbs
the turns that age before the next re-plan)."""
RESCUE_FACTOR = 2.0
"""A dropped sentence this many times denser in importance than the plan's bar forces a
re-plan: the conversation has come back to it."""
SYSTEM_ROLES = frozenset({"system", "developer"})
"""Instructions, never compressed (``developer`` is OpenAI's newer name for ``system``)."""
COMPRESSIBLE_ROLES = frozenset({"user", "assistant"})
IMAGE_PART_TYPES = frozenset({"image_url", "image", "input_image"})
IMAGE_MARK = "[image]"


@dataclass(frozen=True)
class _Sentence:
    part: int
    """Index of the text part (0 for string content)."""
    span: Span


@dataclass(frozen=True)
class _Turn:
    index: int
    message: Mapping[str, Any]
    role: str
    kind: str
    """``system``, ``recent``, ``pinned`` (older, sent whole) or ``older`` (compressible)."""
    sentences: tuple[_Sentence, ...]
    images: int


def _texts(message: Mapping[str, Any]) -> list[str | None]:
    """Text of each content part (None for non-text parts); string content is one part."""
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            p.get("text") if isinstance(p, Mapping) and p.get("type") == "text" else None
            for p in content
        ]
    return []


def _images(message: Mapping[str, Any]) -> int:
    content = message.get("content")
    if not isinstance(content, list):
        return 0
    return sum(1 for p in content if isinstance(p, Mapping) and p.get("type") in IMAGE_PART_TYPES)


def _classify(messages: Sequence[Mapping[str, Any]], keep_recent: int) -> list[_Turn]:
    conversation = [i for i, m in enumerate(messages) if m.get("role") not in SYSTEM_ROLES]
    recent = set(conversation[len(conversation) - keep_recent :]) if keep_recent else set()
    turns: list[_Turn] = []
    for i, message in enumerate(messages):
        role = str(message.get("role", ""))
        content = message.get("content")
        if role in SYSTEM_ROLES:
            kind = "system"
        elif i in recent:
            kind = "recent"
        elif (
            role in COMPRESSIBLE_ROLES
            and isinstance(content, str | list)
            and not message.get("tool_calls")
        ):
            kind = "older"
        else:
            kind = "pinned"
        sentences: tuple[_Sentence, ...] = ()
        if kind in ("older", "recent"):
            sentences = tuple(
                _Sentence(part, span)
                for part, text in enumerate(_texts(message))
                if isinstance(text, str)
                for span in split_sentences(text)
            )
        turns.append(_Turn(i, message, role, kind, sentences, _images(message)))
    return turns


def _render(turn: _Turn, kept: set[int], keep_images: bool) -> Mapping[str, Any] | None:
    """The message with only the kept sentences (and images), or None if nothing is left."""
    texts = _texts(turn.message)
    by_part: dict[int, list[Span]] = {}
    for k, sentence in enumerate(turn.sentences):
        if k in kept:
            by_part.setdefault(sentence.part, []).append(sentence.span)
    content = turn.message.get("content")
    if isinstance(content, str):
        if not by_part:
            return None
        return {**turn.message, "content": join_spans(content, by_part[0])}
    parts: list[Any] = []
    for p, part in enumerate(content if isinstance(content, list) else []):
        text = texts[p]
        if isinstance(text, str):
            if p in by_part:
                parts.append({**part, "text": join_spans(text, by_part[p])})
        elif isinstance(part, Mapping) and part.get("type") in IMAGE_PART_TYPES:
            if keep_images:
                parts.append(part)
        else:
            parts.append(part)
    if not any(
        isinstance(p, Mapping) and (p.get("type") == "text" or p.get("type") in IMAGE_PART_TYPES)
        for p in parts
    ):
        return None
    return {**turn.message, "content": parts}


def _reuse(turn: _Turn, report: TurnReport | None) -> set[int] | None:
    """The sentences ``report`` kept, if it compressed this very message; else None."""
    if report is None or report.verbatim or report.role != turn.role:
        return None
    texts = [s.span.text for s in turn.sentences]
    if sorted(texts) != sorted(report.kept + tuple(d for d in report.dropped if d != IMAGE_MARK)):
        return None
    wanted = Counter(report.kept)
    kept: set[int] = set()
    for k, text in enumerate(texts):
        if wanted[text] > 0:
            wanted[text] -= 1
            kept.add(k)
    return kept


class _Planner:
    """Scores, costs and plans for the older turns of one call."""

    def __init__(self, turns: list[_Turn], counter: TokenCounter) -> None:
        self.turns = turns
        self.counter = counter
        self.older = [t for t in turns if t.kind == "older"]
        ranked = [t for t in turns if t.kind in ("older", "recent")]
        term_lists = [sentence_terms(s.span.text) for t in ranked for s in t.sentences]
        recent = [t.kind == "recent" for t in ranked for _ in t.sentences]
        scores, self.idf = sentence_scores(term_lists, recent)
        keys = [(t.index, k) for t in ranked for k in range(len(t.sentences))]
        self.scores: dict[tuple[int, int], float] = dict(zip(keys, scores, strict=True))
        self.terms: dict[tuple[int, int], frozenset[str]] = dict(
            zip(keys, map(term_set, term_lists), strict=True)
        )
        self.tokens = {
            (t.index, k): max(1, counter.count(s.span.text))
            for t in self.older
            for k, s in enumerate(t.sentences)
        }
        self.order = {t.index: self._density_order(t) for t in self.older}
        self.fixed = {t.index: self._fixed(t) for t in self.older}

    def _density_order(self, turn: _Turn) -> list[int]:
        i, scores, tokens = turn.index, self.scores, self.tokens
        ranked = sorted((-scores[(i, k)] / tokens[(i, k)], k) for k in range(len(turn.sentences)))
        return [k for _, k in ranked]

    def _fixed(self, turn: _Turn) -> int:
        content = turn.message.get("content")
        bare: Any = (
            ""
            if isinstance(content, str)
            else [
                p
                for p in content or []
                if isinstance(p, Mapping) and p.get("type") in IMAGE_PART_TYPES
            ]
        )
        return self.counter.count_message({**turn.message, "content": bare})

    def segment(self, turn: _Turn) -> Segment:
        order = self.order[turn.index]
        return Segment(
            scores=tuple(self.scores[(turn.index, k)] for k in order),
            tokens=tuple(self.tokens[(turn.index, k)] for k in order),
            terms=tuple(self.terms[(turn.index, k)] for k in order),
            fixed=self.fixed[turn.index],
            always=turn.images > 0,
        )

    def cost(self, turn: _Turn, kept: set[int]) -> int:
        if not kept and not turn.images:
            return 0
        return self.fixed[turn.index] + sum(self.tokens[(turn.index, k)] for k in kept)

    def density(self, index: int, k: int) -> float:
        return self.scores[(index, k)] / self.tokens[(index, k)]

    def density_floor(self, decided: Mapping[int, set[int]]) -> float:
        """The importance per token above which the plan behind ``decided`` keeps sentences.

        Ranked by today's scores, the decided turns' sentences are walked best first until
        as many tokens as the plan kept: the density reached there is the plan's bar.
        """
        ranked = sorted(
            (
                (self.density(i, k), self.tokens[(i, k)])
                for i in decided
                for k in range(len(self.turns[i].sentences))
            ),
            reverse=True,
        )
        budget = sum(self.tokens[(i, k)] for i, kept in decided.items() for k in kept)
        used = 0
        for density, size in ranked:
            used += size
            if used > budget:
                return density
        return 0.0

    def stale(self, decided: Mapping[int, set[int]], floor: float) -> bool:
        """True when a sentence the plan dropped now matters far more than what it kept
        (typically: the latest turn asks about it), worth a re-plan and a cache miss."""
        bar = RESCUE_FACTOR * floor
        return any(
            self.density(i, k) > bar
            for i, kept in decided.items()
            for k in range(len(self.turns[i].sentences))
            if k not in kept
        )

    def above(self, turn: _Turn, floor: float) -> set[int]:
        """The sentences of ``turn`` at least as important per token as ``floor``."""
        return {k for k in range(len(turn.sentences)) if self.density(turn.index, k) > floor}

    def plan(self, target: int, seed: int) -> dict[int, set[int]]:
        counts = allocate([self.segment(t) for t in self.older], self.idf, target, seed=seed)
        return {
            t.index: set(self.order[t.index][:n]) for t, n in zip(self.older, counts, strict=True)
        }


def _carry_over(planner: _Planner, previous: CompressionResult) -> dict[int, set[int]] | None:
    """Last call's decisions for the turns it compressed, and for newly aged turns their
    sentences above the plan's bar; None when the history was edited, last call
    compressed nothing, or the conversation has come back to a dropped sentence."""
    if not previous.compressed:
        return None
    reports = {r.index: r for r in previous.turns}
    decided: dict[int, set[int]] = {}
    fresh: list[_Turn] = []
    for turn in planner.older:
        report = reports.get(turn.index)
        if report is None or report.verbatim:
            fresh.append(turn)
            continue
        kept = _reuse(turn, report)
        if kept is None:
            return None
        decided[turn.index] = kept
    floor = planner.density_floor(decided)
    if planner.stale(decided, floor):
        return None
    for turn in fresh:
        decided[turn.index] = planner.above(turn, floor)
    return decided


def _report(
    turn: _Turn,
    before: int,
    after: int,
    kept: set[int] | None,
    images_kept: bool,
) -> TurnReport:
    texts = [s.span.text for s in turn.sentences]
    if kept is None:
        return TurnReport(turn.index, turn.role, before, after, tuple(texts), (), verbatim=True)
    dropped = [t for k, t in enumerate(texts) if k not in kept]
    if turn.images and not images_kept:
        dropped.extend([IMAGE_MARK] * turn.images)
    return TurnReport(
        turn.index,
        turn.role,
        before,
        after,
        tuple(t for k, t in enumerate(texts) if k in kept),
        tuple(dropped),
    )


def compress_history(
    messages: Sequence[Mapping[str, Any]],
    budget: Budget,
    *,
    counter: TokenCounter | None = None,
    seed: int = 0,
    previous: CompressionResult | None = None,
) -> CompressionResult:
    """Fit ``messages`` into ``budget`` by dropping the least important older sentences.

    Deterministic for given inputs and ``seed``. Pass the ``previous`` result of the same
    conversation (its history being a prefix of this one) to keep older turns stable.
    """
    counter = counter or EstimatingCounter()
    turns = _classify(messages, budget.keep_recent_turns)
    before = [counter.count_message(m) for m in messages]
    tokens_before = REPLY_PRIMER_TOKENS + sum(before)
    if tokens_before <= budget.max_tokens:
        reports = [
            _report(t, before[t.index], before[t.index], None, True)
            if t.kind != "older"
            else _report(t, before[t.index], before[t.index], set(range(len(t.sentences))), True)
            for t in turns
        ]
        return CompressionResult(
            tuple(messages), tokens_before, tokens_before, False, tuple(reports), True
        )
    planner = _Planner(turns, counter)
    fixed = REPLY_PRIMER_TOKENS + sum(before[t.index] for t in turns if t.kind != "older")
    room = budget.max_tokens - fixed
    decided = _carry_over(planner, previous) if previous is not None else None
    if decided is None or sum(planner.cost(t, decided[t.index]) for t in planner.older) > room:
        target = int(room * REPLAN_HEADROOM) if previous is not None else room
        decided = planner.plan(max(0, target), seed)
    return _fit(turns, planner, decided, before, budget, counter)


def _fit(
    turns: list[_Turn],
    planner: _Planner,
    decided: dict[int, set[int]],
    before: list[int],
    budget: Budget,
    counter: TokenCounter,
) -> CompressionResult:
    """Render the plan, count it exactly, and shed what is still over the budget:
    the least important sentence first, then older images and pinned messages, oldest first."""
    images = {t.index: True for t in turns}
    pinned_out: set[int] = set()
    rendered: dict[int, Mapping[str, Any] | None] = {}
    after: dict[int, int] = {}

    def render(turn: _Turn) -> None:
        if turn.kind == "older":
            message = _render(turn, decided[turn.index], images[turn.index])
        elif turn.index in pinned_out:
            message = None
        else:
            message = turn.message
        rendered[turn.index] = message
        after[turn.index] = 0 if message is None else counter.count_message(message)

    for turn in turns:
        render(turn)
    total = REPLY_PRIMER_TOKENS + sum(after.values())
    candidates = sorted(
        (
            (planner.scores[(t.index, k)] / planner.tokens[(t.index, k)], t.index, k)
            for t in planner.older
            for k in decided[t.index]
        ),
        reverse=True,
    )
    last_resort = [t for t in turns if (t.kind == "older" and t.images) or t.kind == "pinned"]
    while total > budget.max_tokens:
        if candidates:
            _, index, k = candidates.pop()
            decided[index].discard(k)
            turn = turns[index]
        elif last_resort:
            turn = last_resort.pop(0)
            images[turn.index] = False
            pinned_out.add(turn.index)
        else:
            break
        total -= after[turn.index]
        render(turn)
        total += after[turn.index]
    reports = []
    for turn in turns:
        kept = decided.get(turn.index) if turn.kind == "older" else None
        if turn.kind == "pinned" and turn.index in pinned_out:
            reports.append(TurnReport(turn.index, turn.role, before[turn.index], 0, (), ()))
            continue
        reports.append(
            _report(turn, before[turn.index], after[turn.index], kept, images[turn.index])
        )
    out = tuple(m for m in (rendered[t.index] for t in turns) if m is not None)
    tokens_before = REPLY_PRIMER_TOKENS + sum(before)
    return CompressionResult(
        messages=out,
        tokens_before=tokens_before,
        tokens_after=total,
        compressed=total < tokens_before or len(out) < len(turns),
        turns=tuple(reports),
        within_budget=total <= budget.max_tokens,
    )
