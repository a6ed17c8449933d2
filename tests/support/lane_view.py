"""``LaneView``: a frozen ``LaneCandidate`` for routing policy tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from qwend.routing.stats import LanePerf


@dataclass(frozen=True, slots=True)
class LaneView:
    """A frozen ``qwend.routing.policy.LaneCandidate``."""

    name: str
    role: str
    text: bool = True
    image: bool = False
    eligible: bool = True
    in_flight: int = 0
    limit: int = 8
    outstanding_work: float = 0.0
    perf: LanePerf = field(default_factory=lambda: LanePerf())
    why_not: str = ""
