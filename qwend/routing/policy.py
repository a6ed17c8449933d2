"""Lane choice (pure: no aiohttp, no I/O).

``choose`` takes a ``RequestSummary`` (``qwend.routing.classify``), the lanes as
the router sees them right now and the text policy, and returns a ``Decision``:
a lane, "wait for a slot", or "no lane can serve this" with a message a person
can act on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from qwend.config.model import KvRole, TextPolicy
from qwend.routing.classify import DEFAULT_EXPECTED_OUTPUT, RequestClass, RequestSummary
from qwend.routing.pd import choose_pair, is_pd
from qwend.routing.perf import LanePerf

MULTIMODAL_ROLE = "multimodal"
THROUGHPUT_ROLE = "throughput"
STABLE_ROLE = "stable"


class LaneCandidate(Protocol):
    """A lane as a policy reads it (the router's live state or a test's snapshot)."""

    @property
    def name(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def text(self) -> bool: ...
    @property
    def image(self) -> bool: ...
    @property
    def eligible(self) -> bool:
        """Active, accepting and its breaker lets a request through."""
        ...

    @property
    def in_flight(self) -> int: ...
    @property
    def limit(self) -> int: ...
    @property
    def outstanding_work(self) -> float:
        """Expected output tokens still to generate for the requests it serves."""
        ...

    @property
    def perf(self) -> LanePerf: ...
    @property
    def why_not(self) -> str:
        """Why the lane is not eligible (``draining``, ``breaker open`` ...)."""
        ...

    @property
    def pending(self) -> bool:
        """Not eligible now, but being replaced in place: worth waiting for."""
        ...

    @property
    def kv_role(self) -> KvRole | None:
        """Its half of a prefill/decode pair; None: it serves whole requests."""
        ...


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of ``choose``."""

    lane: str | None
    """The lane to send to now; None means wait (``wait``) or refuse."""
    wait: bool = False
    """Eligible lanes exist but all are at their in-flight limit: queue."""
    spilled: bool = False
    """Short text went to another lane than the throughput lane."""
    message: str = ""
    """Why no lane could be chosen (for the 503 body)."""
    decode: str | None = None
    """Set for a prefill/decode pair: ``lane`` is the prefill lane, this the decode lane."""


@dataclass
class PolicyState:
    """The little mutable state policies keep between calls (round-robin cursor)."""

    cursor: int = 0


NO_LANES_MESSAGE = "no lanes configured yet; add one in /etc/qwend/lanes.d"


def _free(lane: LaneCandidate) -> bool:
    return lane.in_flight < lane.limit


def _text_pool(lanes: Sequence[LaneCandidate]) -> list[LaneCandidate]:
    """Eligible text lanes, keeping the multimodal lane for text only as a last resort."""
    text = [lane for lane in lanes if lane.text and lane.eligible]
    dedicated = [lane for lane in text if lane.role != MULTIMODAL_ROLE]
    return dedicated or text


def _no_lane(lanes: Sequence[LaneCandidate], what: str) -> Decision:
    if not lanes:
        return Decision(None, message=NO_LANES_MESSAGE)
    states = ", ".join(f"{lane.name}: {lane.why_not or 'busy'}" for lane in lanes)
    return Decision(None, message=f"no lane can serve {what} right now ({states}); retry later")


def _pick(
    pool: Iterable[LaneCandidate], key: Callable[[LaneCandidate], Any] | None = None
) -> LaneCandidate | None:
    free = [lane for lane in pool if _free(lane)]
    if not free:
        return None
    if key is None:
        return free[0]
    return min(free, key=key)


def _choose_multimodal(lanes: Sequence[LaneCandidate]) -> Decision:
    capable = [lane for lane in lanes if lane.image and lane.eligible]
    pool = [lane for lane in capable if lane.role == MULTIMODAL_ROLE] or capable
    if not pool:
        return _no_lane(lanes, "image input (no accepting lane with the image capability)")
    lane = _pick(pool, key=lambda c: c.in_flight)
    return Decision(lane.name) if lane else Decision(None, wait=True)


def _balanced_long_text(pool: list[LaneCandidate], short: bool) -> Decision:
    by_role = {lane.role: lane for lane in pool if lane.role in (THROUGHPUT_ROLE, STABLE_ROLE)}
    fast, stable = by_role.get(THROUGHPUT_ROLE), by_role.get(STABLE_ROLE)
    if not by_role:
        lane = _pick(pool, key=lambda c: (c.outstanding_work, c.in_flight))
        return Decision(lane.name) if lane else Decision(None, wait=True)
    if short:
        if fast is not None and _free(fast) and fast.in_flight == 0:
            return Decision(fast.name)
        if stable is not None and stable.in_flight == 0 and _free(stable):
            return Decision(stable.name, spilled=fast is not None)
        if fast is not None and _free(fast):
            return Decision(fast.name)
        if stable is not None and _free(stable):
            return Decision(stable.name, spilled=fast is not None)
        return Decision(None, wait=True)
    # Long text: the lane with the least outstanding expected work; ties go to throughput.
    pair = [lane for lane in (fast, stable) if lane is not None]
    lane = _pick(pair, key=lambda c: c.outstanding_work)
    return Decision(lane.name) if lane else Decision(None, wait=True)


def _least_work(pool: list[LaneCandidate], summary: RequestSummary) -> Decision:
    """The lane where the request adds the least predicted latency (``LanePerf.cost``).

    A lane takes requests up to its learned efficient concurrency (where its token
    rate stops rising), not up to its admission limit: past that point another
    request makes everything on the lane slower without the lane serving more, so
    waiting for a slot there or elsewhere finishes sooner. When every lane is at
    that point the request queues (and is placed by this policy again when a slot
    frees).

    ``horizon`` says how much of a request outlives the lane's current batch: a
    request of ``DEFAULT_EXPECTED_OUTPUT`` (256) tokens or more is priced at the
    batch the lane may reach (its efficient concurrency), an 8-token one at the
    batch it finds. Long requests thereby go to the lane that degrades least under
    concurrency, short ones fill the other.
    """
    prompt, out = summary.prompt_tokens, summary.expected_output
    horizon = min(1.0, out / DEFAULT_EXPECTED_OUTPUT)
    best: LaneCandidate | None = None
    best_cost = 0.0
    for lane in pool:
        perf = lane.perf
        reach = perf.efficient_concurrency(lane.limit)
        if lane.in_flight >= reach:
            continue
        cost = perf.cost(prompt, out, lane.in_flight, lane.outstanding_work, horizon, reach)
        if best is None or cost < best_cost:
            best, best_cost = lane, cost
    return Decision(best.name) if best is not None else Decision(None, wait=True)


def _round_robin(pool: list[LaneCandidate], state: PolicyState) -> Decision:
    ordered = sorted(pool, key=lambda c: c.name)
    for step in range(len(ordered)):
        lane = ordered[(state.cursor + step) % len(ordered)]
        if _free(lane):
            state.cursor = (state.cursor + step + 1) % len(ordered)
            return Decision(lane.name)
    return Decision(None, wait=True)


def _choose_pinned(lanes: Sequence[LaneCandidate], role: str) -> Decision:
    """Only the lanes of ``role``; capabilities do not apply (the client chose the lane)."""
    own = [lane for lane in lanes if lane.role == role]
    pool = [lane for lane in own if lane.eligible]
    if not pool:
        if not own:
            return Decision(None, message=f"no lane of role {role!r} is routable; retry later")
        return _no_lane(own, f"requests for role {role!r}")
    lane = _pick(pool, key=lambda c: c.in_flight)
    return Decision(lane.name) if lane else Decision(None, wait=True)


def choose(
    summary: RequestSummary,
    lanes: Sequence[LaneCandidate],
    policy: TextPolicy,
    *,
    long_text_min_tokens: int,
    state: PolicyState | None = None,
    exclude: frozenset[str] = frozenset(),
) -> Decision:
    """Choose a lane for ``summary`` among ``lanes`` minus ``exclude`` (lanes already tried,
    lanes not serving the requested model).

    When no lane can serve it but one that could is being replaced in place (``pending``),
    the request waits for it in the queue rather than being refused.
    """
    candidates = [lane for lane in lanes if lane.name not in exclude] if exclude else lanes
    if summary.role is None and any(is_pd(lane) for lane in candidates):
        return _choose_with_pairs(summary, candidates, policy, long_text_min_tokens, state)
    decision = _choose(summary, candidates, policy, long_text_min_tokens, state)
    if decision.lane is None and not decision.wait and _awaited(summary, candidates):
        return Decision(None, wait=True, message=decision.message)
    return decision


def _choose_with_pairs(
    summary: RequestSummary,
    candidates: Sequence[LaneCandidate],
    policy: TextPolicy,
    long_text_min_tokens: int,
    state: PolicyState | None,
) -> Decision:
    """Text goes to a prefill/decode pair when one is ready, else to the co-located lanes.

    A half of a pair never serves a whole request on its own here (a decode lane may
    refuse one without transfer parameters; a prefill lane would decode on prefill
    NPUs), only a request pinned to its role does. When every lane of one half is at
    its limit, a free co-located lane takes the request rather than making it wait.
    """
    colocated = [lane for lane in candidates if not is_pd(lane)]
    if not summary.multimodal:
        pair = choose_pair(candidates)
        if pair.chosen:
            return Decision(pair.prefill, decode=pair.decode)
        decision = _choose(summary, colocated, policy, long_text_min_tokens, state)
        if decision.lane is not None:
            return decision
        if pair.ready or decision.wait or _awaited(summary, colocated):
            return Decision(None, wait=True, message=pair.message)
        if not colocated:
            return Decision(None, message=f"{pair.message}; retry later")
        return Decision(None, message=f"{pair.message}; {decision.message}")
    decision = _choose(summary, colocated, policy, long_text_min_tokens, state)
    if decision.lane is None and not decision.wait and _awaited(summary, colocated):
        return Decision(None, wait=True, message=decision.message)
    return decision


def _awaited(summary: RequestSummary, lanes: Sequence[LaneCandidate]) -> bool:
    """A pending lane could serve ``summary`` once it is back."""
    for lane in lanes:
        if not lane.pending:
            continue
        if summary.role is not None:
            if lane.role == summary.role:
                return True
        elif lane.image if summary.multimodal else lane.text:
            return True
    return False


def _choose(
    summary: RequestSummary,
    candidates: Sequence[LaneCandidate],
    policy: TextPolicy,
    long_text_min_tokens: int,
    state: PolicyState | None,
) -> Decision:
    if summary.role is not None:
        return _choose_pinned(candidates, summary.role)
    if summary.multimodal:
        return _choose_multimodal(candidates)
    pool = _text_pool(candidates)
    if not pool:
        return _no_lane(candidates, "text (no accepting lane with the text capability)")
    if policy is TextPolicy.BALANCED_LONG_TEXT:
        short = summary.request_class(long_text_min_tokens) is RequestClass.SHORT_TEXT
        return _balanced_long_text(pool, short)
    if policy is TextPolicy.LEAST_WORK:
        return _least_work(pool, summary)
    if policy is TextPolicy.ROUND_ROBIN:
        return _round_robin(pool, state if state is not None else PolicyState())
    lane = _pick(pool, key=lambda c: (c.in_flight, c.outstanding_work))
    return Decision(lane.name) if lane else Decision(None, wait=True)
