"""Follow promotions from any source (own request, event stream), each step once (pure).

A promotion started from this TUI arrives twice: on the request's own progress
stream and on the daemon's event stream. ``Promotions.feed`` says whether an
item is news, so the event log prints every step and the result exactly once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from qwend.api.messages import (
    PromotionAccepted,
    PromotionEvent,
    PromotionMode,
    PromotionOutcome,
    PromotionRecord,
)

PromotionItem = PromotionAccepted | PromotionEvent | PromotionRecord


@dataclass(frozen=True)
class Step:
    """One progress line: ``at`` is the daemon's clock."""

    step: str
    lane: str
    message: str
    at: float


@dataclass(frozen=True)
class Progress:
    """One promotion (or rollback) as far as it has gone."""

    id: str
    role: str
    from_lane: str | None
    to_lane: str
    mode: PromotionMode
    started_at: float | None = None
    """Daemon time of the first step seen."""
    steps: tuple[Step, ...] = ()
    record: PromotionRecord | None = None

    @property
    def finished(self) -> bool:
        return self.record is not None

    @property
    def ok(self) -> bool:
        return self.record is not None and self.record.outcome is PromotionOutcome.PROMOTED

    def elapsed(self, now: float) -> float:
        """Seconds since the first step, up to the end once finished."""
        if self.record is not None:
            return max(0.0, self.record.finished_at - self.record.started_at)
        start = self.started_at if self.started_at is not None else now
        return max(0.0, now - start)

    def headline(self) -> str:
        mode = "in place" if self.mode is PromotionMode.IN_PLACE else "blue/green"
        source = self.from_lane or "no lane"
        kind = "rollback" if self.record is not None and self.record.kind == "rollback" else ""
        verb = kind or "promotion"
        return f"{verb} of role {self.role}: {source} → {self.to_lane} ({mode})"


class Promotions:
    """Every promotion seen since the TUI started, newest last."""

    def __init__(self) -> None:
        self._by_id: dict[str, Progress] = {}

    @property
    def latest(self) -> Progress | None:
        return next(reversed(self._by_id.values()), None)

    def all(self) -> tuple[Progress, ...]:
        """Every promotion seen, oldest first."""
        return tuple(self._by_id.values())

    def get(self, promotion_id: str) -> Progress | None:
        return self._by_id.get(promotion_id)

    def feed(self, item: PromotionItem) -> bool:
        """Take one item; True when it is news (not seen from the other stream)."""
        if isinstance(item, PromotionAccepted):
            if item.id in self._by_id:
                return False
            self._by_id[item.id] = Progress(
                item.id, item.role, item.from_lane, item.to_lane, item.mode
            )
            return True
        current = self._by_id.get(item.id) or self._from(item)
        if isinstance(item, PromotionEvent):
            step = Step(item.step.value, item.lane, item.message, item.at)
            if step in current.steps:
                return False
            start = current.started_at if current.started_at is not None else item.at
            self._by_id[item.id] = dataclasses.replace(
                current, started_at=start, steps=(*current.steps, step)
            )
            return True
        if current.record is not None:
            return False
        self._by_id[item.id] = dataclasses.replace(current, record=item)
        return True

    @staticmethod
    def _from(item: PromotionEvent | PromotionRecord) -> Progress:
        """A promotion first seen mid-way (the TUI started after it was accepted)."""
        if isinstance(item, PromotionRecord):
            return Progress(item.id, item.role, item.from_lane, item.to_lane, item.mode)
        return Progress(item.id, item.role, None, item.lane, PromotionMode.IN_PLACE)
