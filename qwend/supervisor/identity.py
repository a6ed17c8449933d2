"""Lane identity: is the listener on a lane's port the lane's own process? (reads /proc)

Called at readiness and on each liveness probe, never per request. The lane's
process group is small, so finding its sockets is cheap; the whole of /proc is
searched only when a stranger holds the port, to name it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from qwend.supervisor.listener import Holder, Listeners, judge, listening_inodes, socket_inode
from qwend.supervisor.process import group_members

PROC = Path("/proc")
TCP_TABLES = ("net/tcp", "net/tcp6")


def check_listeners(lane: str, port: int, pgid: int) -> Listeners:
    """Who listens on ``port``: the lane's group ``pgid``, nobody, or a stranger (named).

    OSError (e.g. no fd left to read /proc) propagates: the lane runner backs off.
    """
    listening = frozenset().union(*(_listening(table, port) for table in TCP_TABLES))
    if not listening:
        return judge(lane, port, pgid, listening, frozenset(), {})
    own = _held([pgid], listening)  # the group leader listens itself in most servers
    if own != listening:
        own = _held(group_members(pgid), listening)
    holders = {} if listening <= own else _holders(listening - own)
    return judge(lane, port, pgid, listening, own, holders)


def _listening(table: str, port: int) -> frozenset[int]:
    try:
        text = (PROC / table).read_text()
    except FileNotFoundError:  # no IPv6 in this kernel
        return frozenset()
    return listening_inodes(text, port)


def _socket_inodes(pid: int) -> Iterable[int]:
    """Socket inodes among the open files of ``pid`` (nothing when it is gone or hidden)."""
    try:
        with os.scandir(PROC / str(pid) / "fd") as listing:
            entries = list(listing)
    except (FileNotFoundError, PermissionError, ProcessLookupError):
        return
    for entry in entries:
        try:
            inode = socket_inode(str(Path(entry.path).readlink()))
        except (FileNotFoundError, PermissionError):
            continue  # closed meanwhile, or not ours to see
        if inode is not None:
            yield inode


def _held(pids: Iterable[int], wanted: frozenset[int]) -> frozenset[int]:
    found: set[int] = set()
    for pid in pids:
        found.update(i for i in _socket_inodes(pid) if i in wanted)
        if found >= wanted:
            break
    return frozenset(found)


def _holders(inodes: frozenset[int]) -> dict[int, Holder]:
    """Which processes hold ``inodes`` (a walk over every process qwend may inspect)."""
    holders: dict[int, Holder] = {}
    with os.scandir(PROC) as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            for inode in _socket_inodes(pid):
                if inode in inodes and inode not in holders:
                    holders[inode] = Holder(pid, _name(pid))
            if len(holders) == len(inodes):
                break
    return holders


def _name(pid: int) -> str:
    try:
        return (PROC / str(pid) / "comm").read_text().strip() or "?"
    except OSError:
        return "?"
