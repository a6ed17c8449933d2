"""The lane state machine (pure): states, events, the transition table.

The supervisor never assigns a lane state directly: it feeds an ``Event`` to
``transition()``, which returns the new state and the effects the supervisor
must carry out (spawn, terminate, route ...). Anything not in ``TRANSITIONS``
is a bug and raises ``IllegalTransition``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class LaneState(StrEnum):
    """Where a lane is in its life."""

    STOPPED = "stopped"
    """No process, and none wanted: never started, stopped by an operator, or reset."""
    STARTING = "starting"
    """Process spawned (or being spawned); waiting for health and ``/v1/models``."""
    READY = "ready"
    """Passed readiness and keeps passing liveness; routable when active."""
    UNHEALTHY = "unhealthy"
    """Readiness timed out or liveness failed ``failure_threshold`` times; killed to restart."""
    DRAINING = "draining"
    """Running, but takes no new requests; in-flight requests may finish."""
    STOPPING = "stopping"
    """An operator (or shutdown, or reload) asked it to stop; its process group is being stopped."""
    BACKOFF = "backoff"
    """The process died or could not start; waiting before the next automatic start."""
    FAILED = "failed"
    """Crash loop: too many restarts in the window. Stays down until reset or started."""


class Event(StrEnum):
    """What can happen to a lane."""

    START = "start"
    """An operator, the daemon or a promotion asks the lane to run."""
    READY = "ready"
    """The readiness probe passed."""
    UNHEALTHY = "unhealthy"
    """Readiness timed out, or liveness failed ``failure_threshold`` times in a row."""
    CRASHED = "crashed"
    """The process is gone (or never came up) unasked; the restart policy allows another try."""
    CRASH_LOOP = "crash_loop"
    """The process is gone unasked and the crash-loop limit is exceeded."""
    RETRY = "retry"
    """The backoff delay is over: start again."""
    DRAIN = "drain"
    """Stop routing new requests to the lane."""
    RESUME = "resume"
    """Route to a drained lane again."""
    STOP = "stop"
    """An operator, shutdown or reload asks the lane to stop."""
    STOPPED = "stopped"
    """The process group is gone after a requested stop."""
    RESET = "reset"
    """An operator clears a crash loop."""


class Effect(StrEnum):
    """What the supervisor must do after a transition."""

    SPAWN = "spawn"
    """Run preflight and start the process, then probe readiness."""
    ROUTE = "route"
    """Publish the lane as accepting."""
    UNROUTE = "unroute"
    """Publish the lane as not accepting."""
    TERMINATE = "terminate"
    """Stop the process group (stop signal, then SIGKILL after the timeout)."""
    SCHEDULE_RESTART = "schedule_restart"
    """Sleep the backoff delay, then feed ``RETRY``."""
    CANCEL_RESTART = "cancel_restart"
    """Cancel a pending backoff sleep."""
    RESET_CRASHES = "reset_crashes"
    """Forget the crash history (the crash-loop window starts empty)."""


RUNNING: frozenset[LaneState] = frozenset(
    {
        LaneState.STARTING,
        LaneState.READY,
        LaneState.UNHEALTHY,
        LaneState.DRAINING,
        LaneState.STOPPING,
    }
)
"""States in which a lane process may exist."""

ROUTABLE: frozenset[LaneState] = frozenset({LaneState.READY})
"""States in which a lane accepts new requests."""

CLAIMING: frozenset[LaneState] = RUNNING | {LaneState.BACKOFF}
"""States in which a lane holds (or is about to take back) its port and NPUs."""

WANTED_UP: frozenset[LaneState] = frozenset(
    {
        LaneState.STARTING,
        LaneState.READY,
        LaneState.UNHEALTHY,
        LaneState.DRAINING,
        LaneState.BACKOFF,
    }
)
"""States in which the lane is meant to be running (the supervisor keeps it up)."""


@dataclass(frozen=True)
class Transition:
    """The result of applying one event."""

    new_state: LaneState
    effects: tuple[Effect, ...] = ()
    """In the order the supervisor should carry them out."""


S = LaneState
E = Event
F = Effect

TRANSITIONS: dict[tuple[LaneState, Event], Transition] = {
    # stopped
    (S.STOPPED, E.START): Transition(S.STARTING, (F.SPAWN,)),
    (S.STOPPED, E.STOP): Transition(S.STOPPED),
    # starting
    (S.STARTING, E.READY): Transition(S.READY, (F.ROUTE,)),
    (S.STARTING, E.UNHEALTHY): Transition(S.UNHEALTHY, (F.TERMINATE,)),
    (S.STARTING, E.CRASHED): Transition(S.BACKOFF, (F.SCHEDULE_RESTART,)),
    (S.STARTING, E.CRASH_LOOP): Transition(S.FAILED),
    (S.STARTING, E.STOP): Transition(S.STOPPING, (F.TERMINATE,)),
    # ready
    (S.READY, E.UNHEALTHY): Transition(S.UNHEALTHY, (F.UNROUTE, F.TERMINATE)),
    (S.READY, E.CRASHED): Transition(S.BACKOFF, (F.UNROUTE, F.SCHEDULE_RESTART)),
    (S.READY, E.CRASH_LOOP): Transition(S.FAILED, (F.UNROUTE,)),
    (S.READY, E.DRAIN): Transition(S.DRAINING, (F.UNROUTE,)),
    (S.READY, E.STOP): Transition(S.STOPPING, (F.UNROUTE, F.TERMINATE)),
    # unhealthy: the process is being killed; its end is a crash for the restart policy
    (S.UNHEALTHY, E.CRASHED): Transition(S.BACKOFF, (F.SCHEDULE_RESTART,)),
    (S.UNHEALTHY, E.CRASH_LOOP): Transition(S.FAILED),
    (S.UNHEALTHY, E.STOP): Transition(S.STOPPING, (F.TERMINATE,)),
    # draining
    (S.DRAINING, E.RESUME): Transition(S.READY, (F.ROUTE,)),
    (S.DRAINING, E.DRAIN): Transition(S.DRAINING),
    (S.DRAINING, E.UNHEALTHY): Transition(S.UNHEALTHY, (F.TERMINATE,)),
    (S.DRAINING, E.CRASHED): Transition(S.BACKOFF, (F.SCHEDULE_RESTART,)),
    (S.DRAINING, E.CRASH_LOOP): Transition(S.FAILED),
    (S.DRAINING, E.STOP): Transition(S.STOPPING, (F.TERMINATE,)),
    # stopping
    (S.STOPPING, E.STOPPED): Transition(S.STOPPED),
    (S.STOPPING, E.STOP): Transition(S.STOPPING),
    # backoff
    (S.BACKOFF, E.RETRY): Transition(S.STARTING, (F.SPAWN,)),
    (S.BACKOFF, E.START): Transition(S.STARTING, (F.CANCEL_RESTART, F.SPAWN)),
    (S.BACKOFF, E.STOP): Transition(S.STOPPED, (F.CANCEL_RESTART,)),
    # failed
    (S.FAILED, E.START): Transition(S.STARTING, (F.RESET_CRASHES, F.SPAWN)),
    (S.FAILED, E.RESET): Transition(S.STOPPED, (F.RESET_CRASHES,)),
    (S.FAILED, E.STOP): Transition(S.STOPPED),
}
"""Every legal move. A pair not listed here is illegal."""

del S, E, F


class IllegalTransition(ValueError):
    """An event that the lane's current state does not allow (a supervisor bug)."""

    def __init__(self, state: LaneState, event: Event) -> None:
        self.state = state
        self.event = event
        allowed = sorted(ev.value for ev in allowed_events(state))
        super().__init__(
            f"event {event.value!r} is not allowed in lane state {state.value!r}"
            f" (allowed: {', '.join(allowed) or 'none'})"
        )


def transition(state: LaneState, event: Event) -> Transition:
    """Apply ``event`` to a lane in ``state``; raises ``IllegalTransition`` for illegal moves."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(state, event) from None


def allowed_events(state: LaneState) -> frozenset[Event]:
    """The events ``state`` accepts (for error messages and UIs)."""
    return frozenset(ev for (st, ev) in TRANSITIONS if st is state)
