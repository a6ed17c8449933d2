"""A frozen ``LaneCandidate`` for the policy tests (the router's live lanes stand in production)."""

from __future__ import annotations

from dataclasses import dataclass, field

from qwend.config.model import KvRole
from qwend.routing.perf import LanePerf


@dataclass(frozen=True, slots=True)
class LaneView:
    """One lane as ``qwend.routing.policy.choose`` reads it, with test-friendly defaults."""

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
    pending: bool = False
    kv_role: KvRole | None = None
