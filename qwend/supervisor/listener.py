"""Whose listener answers on a lane's port (pure): parse /proc/net/tcp, judge the holders.

A lane binds its port only after loading its model (minutes on an NPU). Any local
process that binds the port meanwhile and answers ``/health`` would otherwise be
taken for the lane and get its traffic (prompts included). So a lane counts as up
only when every socket listening on its port belongs to its own process group;
``qwend.supervisor.identity`` reads /proc and feeds these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

TCP_LISTEN = "0A"
"""The ``st`` column of /proc/net/tcp{,6} for a listening socket (include/net/tcp_states.h)."""


def listening_inodes(table: str, port: int) -> frozenset[int]:
    """Inodes of the sockets listening on ``port`` (any address) in a /proc/net/tcp{,6} text.

    Every address counts: a listener on another address of the same port (or one
    sharing it with SO_REUSEPORT) is as suspicious as one on the lane's own.
    """
    found = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != TCP_LISTEN:
            continue
        _, _, hex_port = fields[1].rpartition(":")
        try:
            if int(hex_port, 16) == port:
                found.add(int(fields[9]))
        except ValueError:
            continue
    return frozenset(found)


def socket_inode(link: str) -> int | None:
    """The inode of a ``/proc/PID/fd/N`` link target ``socket:[1234]``; None for other files."""
    if link.startswith("socket:[") and link.endswith("]"):
        try:
            return int(link[8:-1])
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class Holder:
    """A process holding a listening socket."""

    pid: int
    name: str
    """Its command name (``/proc/PID/comm``), ``?`` when unreadable."""

    def __str__(self) -> str:
        return f"PID {self.pid} ({self.name})"


class Verdict(StrEnum):
    """Who listens on a lane's port."""

    OWN = "own"
    """At least one listener, and every one belongs to the lane's process group."""
    NONE = "none"
    """Nobody listens (the lane has not bound its port yet)."""
    FOREIGN = "foreign"
    """Some listener belongs to another process: it must not be taken for the lane."""


@dataclass(frozen=True)
class Listeners:
    """The verdict on a lane's port and, when foreign, a message naming the holders."""

    verdict: Verdict
    problem: str | None = None


def judge(
    lane: str,
    port: int,
    pgid: int,
    listening: frozenset[int],
    own: frozenset[int],
    holders: Mapping[int, Holder],
) -> Listeners:
    """Judge the listeners on ``port`` (inodes) given those the lane's group ``pgid`` holds.

    ``holders`` maps the other inodes to the processes found holding them; an inode
    missing there belongs to a process qwend may not inspect (another user's).
    """
    if not listening:
        return Listeners(Verdict.NONE, f"nothing listens on port {port} yet")
    strangers = listening - own
    if not strangers:
        return Listeners(Verdict.OWN)
    return Listeners(
        Verdict.FOREIGN,
        f"port {port} is answered by {_who(strangers, holders)}, not by lane {lane}'s"
        f" processes (group {pgid}); refusing to route to it: stop that process or"
        " change lane.port",
    )


def _who(inodes: Iterable[int], holders: Mapping[int, Holder]) -> str:
    names = sorted({str(holders[i]) for i in inodes if i in holders})
    if len(names) < len(set(inodes)):
        names.append("a process qwend cannot inspect")
    return " and ".join(names)
