"""How many client connections each TCP listener may hold, from the file-descriptor limit (pure).

Every client connection costs the daemon a file descriptor. When clients hold them all,
``socket()``, ``pipe()`` and ``open()`` fail with EMFILE everywhere else: health probes
fail, lanes cannot be restarted, ``qwenctl`` cannot connect. So a reserve is kept out of
the limit for what must always work, and the rest is shared by the listeners; the
per-listener caps (``qwend.daemon.connections``) keep clients inside their share.
"""

from __future__ import annotations

from dataclasses import dataclass

BASE_RESERVE = 256
"""Descriptors for the daemon itself whatever the lanes: the interpreter and event loop,
the control socket and its clients (qwenctl, qwen-tui event streams), npu-smi's pipes,
/proc reads of the supervisor and the monitor, the journal."""

PER_LANE_RESERVE = 16
"""Per lane: its process's pipes and log file, its health and inference probes, its
orphan-guard bookkeeping, a restart overlapping the old process's exit."""


@dataclass(frozen=True)
class FdPlan:
    """The descriptor budget in force."""

    limit: int
    """The soft RLIMIT_NOFILE the daemon runs with."""
    reserve: int
    """Kept out of the listeners' reach (see the module docstring)."""
    listeners: int
    """TCP listeners sharing the rest (the router's port and each public endpoint)."""
    configured: int
    """``[connections] max_per_listener``."""
    per_listener: int
    """The cap in force on each listener: the configured one, or less to fit the limit."""

    @property
    def lowered(self) -> bool:
        """Whether the limit forced a cap below the configured one."""
        return self.per_listener < self.configured


def lane_reserve(lanes: int, max_in_flight_per_lane: int) -> int:
    """The reserve for ``lanes`` lanes, each with up to ``max_in_flight_per_lane`` upstream
    connections (a proxied request holds one besides its client's, which the caps count)."""
    return BASE_RESERVE + lanes * (PER_LANE_RESERVE + max_in_flight_per_lane)


def plan_fds(limit: int, *, reserve: int, listeners: int, configured: int) -> FdPlan:
    """The caps that keep ``reserve`` descriptors free below ``limit``.

    Each listener gets an equal share of what is left, at most ``configured`` and at
    least one (a listener that accepts nothing would only look broken).
    """
    share = max(0, limit - reserve) // max(1, listeners)
    per_listener = max(1, min(configured, share))
    return FdPlan(limit, reserve, listeners, configured, per_listener)
