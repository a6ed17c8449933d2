"""Promotion planning (pure): is a promotion valid, and in place or blue/green?

In place when the candidate cannot run beside the incumbent (the rule is
``qwend.config.model.promotes_in_place``, which check-config's summary uses too)
and is not already ready; blue/green otherwise. The plan also says which lanes
are running so the executor knows what to skip.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from qwend.api.messages import PromotionMode, PromotionOutcome, PromotionRecord
from qwend.config.model import Config, promotes_in_place
from qwend.errors import LaneError, PromotionError
from qwend.supervisor.states import WANTED_UP, LaneState


class UnknownLane(LaneError):
    """No lane or role with that name is configured."""


@dataclass(frozen=True)
class PromotionPlan:
    """What a promotion will do."""

    role: str
    candidate: str
    incumbent: str | None
    """The active lane of the role now (None when the role has none)."""
    mode: PromotionMode
    candidate_ready: bool
    """The candidate already runs and is ready: no start needed."""
    incumbent_running: bool
    """The incumbent has a process that must be drained and stopped."""


def plan_promotion(
    config: Config,
    active: Mapping[str, str],
    candidate: str,
    states: Mapping[str, LaneState],
) -> PromotionPlan:
    """Plan promoting ``candidate``; ``states`` maps lane name -> current state.

    Raises UnknownLane for a lane that is not configured and PromotionError
    when there is nothing to do.
    """
    try:
        cand = config.lane(candidate)
    except KeyError:
        known = ", ".join(lane.name for lane in config.lanes) or "none"
        raise UnknownLane(f"no lane named {candidate!r} (configured lanes: {known})") from None
    incumbent_name = active.get(cand.role)
    if incumbent_name == candidate:
        raise PromotionError(
            f"lane {candidate!r} is already the active lane of role {cand.role!r}; nothing to do"
        )
    candidate_ready = states.get(candidate) is LaneState.READY
    if incumbent_name is None:
        return PromotionPlan(
            cand.role, candidate, None, PromotionMode.BLUE_GREEN, candidate_ready, False
        )
    inc = config.lane(incumbent_name)
    in_place = promotes_in_place(cand, inc) and not candidate_ready
    mode = PromotionMode.IN_PLACE if in_place else PromotionMode.BLUE_GREEN
    return PromotionPlan(
        role=cand.role,
        candidate=candidate,
        incumbent=incumbent_name,
        mode=mode,
        candidate_ready=candidate_ready,
        incumbent_running=states.get(incumbent_name) in WANTED_UP,
    )


def rollback_target(
    history: tuple[PromotionRecord, ...], role: str, active: Mapping[str, str]
) -> PromotionRecord:
    """The promotion a manual rollback of ``role`` reverts (pure).

    The newest successful promotion of the role, provided it is what is active
    now and it had a previous lane to go back to.
    """
    for record in reversed(history):
        if record.role != role or record.outcome is not PromotionOutcome.PROMOTED:
            continue
        if record.from_lane is None:
            raise PromotionError(
                f"the last promotion of role {role!r} ({record.id}) had no previous lane"
            )
        if active.get(role) != record.to_lane:
            raise PromotionError(
                f"role {role!r} is served by {active.get(role)!r}, not by {record.to_lane!r}"
                f" from the last promotion ({record.id}); promote the lane you want instead"
            )
        return record
    raise PromotionError(f"no promotion of role {role!r} to roll back")
