"""An engine on the sim's Ray cluster (``--distributed-executor-backend ray``).

Like vLLM's Ray executor, the engine (Ray's driver) connects to the head, asks for a
placement group of ``TP x PP`` one-NPU bundles and waits, bounded by the placement
timeout, until the cluster can hold it; then its workers run on those nodes (the head's
first). Once placed, ``failed`` is set when a node holding some of its workers dies or
the head link is lost, with ``failure`` saying which: the engine then stops serving and
exits 1, as vLLM does when one of its actors' nodes dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from qwend.sim.raycluster import (
    NodeDead,
    Pending,
    Place,
    Placed,
    RayDriverSettings,
    Reject,
)
from qwend.sim.raylink import LinkLost, RayLink, connect

CONNECT_RETRY_S = 0.25
"""Pause between attempts to reach a head that is not listening yet."""


class RayPlacementError(Exception):
    """The engine could not be placed (``str()`` says why); the process exits 1."""


class RayDriver:
    """The engine's link to the head (see module docstring)."""

    def __init__(self, settings: RayDriverSettings, name: str, log: Any) -> None:
        self.settings = settings
        self.name = name
        self.placed: Placed | None = None
        self.failed = asyncio.Event()
        self.failure = ""
        self._log = log
        self._link: RayLink | None = None
        self._last: Pending | None = None
        self._unreachable = "no answer"
        self._watcher: asyncio.Task[None] | None = None

    async def place(self) -> Placed:
        """Connect, ask for the placement group and wait for it; RayPlacementError if the
        placement timeout passes first, the head refuses, or the head link is lost."""
        s = self.settings
        deadline = time.monotonic() + s.placement_timeout_s
        try:
            async with asyncio.timeout(s.placement_timeout_s):
                self._link = await self._connect(deadline)
                self._link.send(Place(self.name, s.world_size))
                self._link.start_heartbeat()
                placed = await self._await_placement(self._link)
        except TimeoutError:
            raise RayPlacementError(self._timeout_message()) from None
        except LinkLost as exc:
            raise RayPlacementError(f"Ray head at {s.address} lost while placing: {exc}") from None
        self.placed = placed
        self._watcher = asyncio.create_task(self._watch(self._link, placed))
        return placed

    async def _connect(self, deadline: float) -> RayLink:
        s = self.settings
        while True:
            left = deadline - time.monotonic()
            try:
                return await connect(
                    s.address, s.link, max(0.1, min(s.link.heartbeat_timeout_s, left))
                )
            except (OSError, TimeoutError) as exc:
                self._unreachable = str(exc) or type(exc).__name__
            await asyncio.sleep(CONNECT_RETRY_S)

    async def _await_placement(self, link: RayLink) -> Placed:
        while True:
            message = await link.receive()
            if isinstance(message, Placed):
                return message
            if isinstance(message, Reject):
                raise RayPlacementError(f"the Ray head refused the placement: {message.error}")
            if isinstance(message, Pending):
                if message != self._last:
                    self._log.info(
                        "waiting for the Ray cluster's NPUs",
                        needed=self.settings.world_size,
                        free=message.free,
                        total=message.total,
                        nodes=message.nodes,
                    )
                self._last = message

    def _timeout_message(self) -> str:
        s = self.settings
        needed = (
            f"a placement group of {s.world_size} NPU bundles (tensor parallel"
            f" {s.tensor_parallel} x pipeline parallel {s.pipeline_parallel})"
        )
        within = f"within {s.placement_timeout_s:g}s"
        if self._link is None:
            return (
                f"cannot reach the Ray head at {s.address} {within}"
                f" ({self._unreachable}); is `ray start --head` running"
                " there and RAY_ADDRESS pointing at it?"
            )
        last = self._last
        have = (
            "the head never said what it has"
            if last is None
            else f"the cluster has {last.free} free of {last.total} NPUs on {last.nodes} nodes"
        )
        return (
            f"{needed} not ready {within}: {have}; start more `ray start` workers or lower"
            " the tensor/pipeline parallel sizes"
        )

    async def _watch(self, link: RayLink, placed: Placed) -> None:
        mine = {b.node.node_id: b.npus for b in placed.bundles}
        while True:
            try:
                message = await link.receive()
            except LinkLost as exc:
                self._fail(f"Ray head at {self.settings.address} lost ({exc})")
                return
            if isinstance(message, NodeDead):
                held = mine.get(message.node.node_id)
                if held is None:
                    self._log.warning(
                        "a Ray node without workers of this engine died",
                        node=message.node.describe(),
                    )
                    continue
                self._fail(
                    f"Ray node {message.node.describe()} holding {held} of the engine's"
                    f" {self.settings.world_size} workers died ({message.why})"
                )
                return

    def _fail(self, why: str) -> None:
        self.failure = why
        self._log.error("the engine lost its Ray workers", reason=why)
        self.failed.set()

    async def close(self) -> None:
        """Stop watching and close the link (the head frees the placement)."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._link is not None:
            await self._link.close()
