"""The cluster view (pure): this host's status and each peer's answer, as one message."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qwend.api.messages import ClusterResponse, HostStatus, StatusResponse


@dataclass(frozen=True)
class PeerAnswer:
    """What asking one peer gave: its status, or the error that says why not."""

    name: str
    status: StatusResponse | None
    error: str
    elapsed_s: float


def cluster_view(
    this: str, local: StatusResponse, answers: Sequence[PeerAnswer]
) -> ClusterResponse:
    """This host first, then the peers in the order given (their configured order)."""
    hosts = [HostStatus(name=this, local=True, reachable=True, status=local)]
    for answer in answers:
        hosts.append(
            HostStatus(
                name=answer.name,
                local=False,
                reachable=answer.status is not None,
                status=answer.status,
                error="" if answer.status is not None else answer.error,
                elapsed_ms=round(answer.elapsed_s * 1000.0, 1),
            )
        )
    return ClusterResponse(this=this, hosts=tuple(hosts))
