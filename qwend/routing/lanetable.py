"""The routable lane set: what the supervisor publishes and the router reads.

The supervisor owns lane processes; the router owns traffic. They meet here:
the supervisor replaces the whole tuple of ``RoutableLane`` at once (so a
promotion or a drain is atomic from the router's point of view) and asks the
router, through ``TrafficGate``, how much traffic a lane still has in flight.
Pure: no aiohttp, no textual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from qwend.config.model import KvRole, RemoteConfig


@dataclass(frozen=True)
class RoutableLane:
    """One lane as the router sees it."""

    name: str
    role: str
    variant: str
    base_url: str
    """``http://127.0.0.1:PORT`` of the lane process."""
    text: bool
    """Can serve text requests."""
    image: bool
    """Can serve requests with image parts."""
    active: bool
    """The active lane of its role (standby lanes are never routed)."""
    accepting: bool
    """Ready and not draining: may receive new requests."""
    model: str = ""
    """The public model name of the lane (``lane.model``): what clients ask for."""
    aliases: tuple[str, ...] = ()
    """More public names of the lane's model (``lane.aliases``)."""
    served_model: str = ""
    """The name its backend expects in a request's ``model``; empty: ``model``."""
    max_model_len: int | None = None
    """The context length ``/v1/models`` advertises (``lane.max_model_len``)."""
    remote: RemoteConfig | None = None
    """How to reach a remote lane (TLS, key, connect timeout); None for a local lane."""
    pending: bool = False
    """Not accepting now, but being replaced in place: requests for it wait in the queue
    (bounded by the queue timeout) instead of being refused."""
    kv_role: KvRole | None = None
    """Its half of a prefill/decode pair (``lane.kv_role``); None: whole requests."""

    @property
    def backend_model(self) -> str:
        """The ``model`` the router sends to this lane."""
        return self.served_model or self.model

    @property
    def public_names(self) -> tuple[str, ...]:
        """``model`` then the aliases (an empty ``model`` is no name)."""
        return (self.model, *self.aliases) if self.model else self.aliases


class LaneTable:
    """Holds the current lane set; replaced atomically, observed by listeners."""

    def __init__(self, lanes: tuple[RoutableLane, ...] = ()) -> None:
        self._lanes = lanes
        self._generation = 0
        self._listeners: list[Callable[[tuple[RoutableLane, ...]], None]] = []

    def snapshot(self) -> tuple[RoutableLane, ...]:
        """The current lane set (an immutable tuple, safe to keep)."""
        return self._lanes

    @property
    def generation(self) -> int:
        """Incremented on every replace; lets readers detect change cheaply."""
        return self._generation

    def replace(self, lanes: tuple[RoutableLane, ...]) -> None:
        """Swap in a new lane set and tell listeners."""
        self._lanes = lanes
        self._generation += 1
        for listener in tuple(self._listeners):
            listener(lanes)

    def subscribe(self, listener: Callable[[tuple[RoutableLane, ...]], None]) -> None:
        """Call ``listener`` with the new set after every replace."""
        self._listeners.append(listener)

    def get(self, name: str) -> RoutableLane | None:
        """The lane called ``name`` in the current set, if any."""
        for lane in self._lanes:
            if lane.name == name:
                return lane
        return None


class TrafficGate(Protocol):
    """What the router tells the supervisor about traffic on a lane."""

    def in_flight(self, lane: str) -> int:
        """Requests currently being served by ``lane`` (admitted, not finished)."""
        ...

    async def wait_drained(self, lane: str, timeout: float) -> bool:
        """Wait until ``lane`` has nothing in flight; False if ``timeout`` passed first."""
        ...
