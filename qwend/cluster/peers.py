"""The links to this host's ``[[peers]]``: one long-lived control client per peer.

Built from the configuration at start-up (a bad token or TLS file of a peer is a start-up
error naming it); each client keeps its connections open so status polls and forwarded
actions do not pay a TCP and TLS handshake each time. ``statuses`` asks every peer at
once, each within its own deadline: a slow or unreachable peer costs its deadline, never
more, and never delays the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from qwend.api.client import ControlClient, PeerTarget
from qwend.cluster.secrets import read_token
from qwend.cluster.tls import peer_context
from qwend.cluster.view import PeerAnswer
from qwend.config.model import ClusterConfig, Config, PeerConfig
from qwend.errors import ControlError, QwendError
from qwend.logs import get_logger

log = get_logger("cluster")

STATUS_DEADLINE_S = 2.0
"""The most a cluster view waits for one peer (or its ``timeout_s`` when smaller)."""


class UnknownPeer(QwendError):
    """No ``[[peers]]`` of that name."""


def target(peer: PeerConfig) -> PeerTarget:
    """How to reach ``peer``; CredentialError when its token or TLS files are unusable."""
    token = None
    if peer.token_file is not None:
        token = read_token(peer.token_file, f"peer {peer.name}: token_file")
    return PeerTarget(name=peer.name, base_url=peer.url, token=token, ssl=peer_context(peer))


class Peers:
    """This host's name and its peer links (``client(name)``, ``statuses()``)."""

    def __init__(self, cluster: ClusterConfig, peers: Sequence[PeerConfig]) -> None:
        self.this = cluster.name
        self.configs = {p.name: p for p in peers}
        self._clients = {
            p.name: ControlClient.for_peer(target(p), timeout_s=p.timeout_s) for p in peers
        }

    @classmethod
    def from_config(cls, config: Config) -> Peers:
        return cls(config.cluster, config.peers)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.configs)

    async def client(self, name: str) -> ControlClient:
        """The open client of peer ``name``; UnknownPeer names the configured ones."""
        client = self._clients.get(name)
        if client is None:
            known = ", ".join(self.configs) or "none"
            raise UnknownPeer(f"no peer named {name!r} (peers: {known}; see [[peers]])")
        await client.open()
        return client

    async def _ask(self, name: str, deadline_s: float) -> PeerAnswer:
        started = time.monotonic()
        limit = min(deadline_s, self.configs[name].timeout_s)
        try:
            client = await self.client(name)
            async with asyncio.timeout(limit):
                status = await client.status()
        except TimeoutError:
            error = f"no answer within {limit:g}s"
        except ControlError as exc:
            error = str(exc)
        else:
            return PeerAnswer(name, status, "", time.monotonic() - started)
        log.debug("peer status failed", peer=name, error=error)
        return PeerAnswer(name, None, error, time.monotonic() - started)

    async def statuses(self, deadline_s: float = STATUS_DEADLINE_S) -> tuple[PeerAnswer, ...]:
        """Every peer's status, asked concurrently, in configured order."""
        return tuple(await asyncio.gather(*(self._ask(n, deadline_s) for n in self.configs)))

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
