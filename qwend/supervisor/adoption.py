"""Lanes that outlive the daemon (pure): the record kept of them, and whether to re-adopt.

With ``[daemon] lanes_survive_restart`` on, lane processes are not tied to qwend's
life (no PDEATHSIG, no orphan guard, output written by the lane to its log file),
so a daemon restart does not cost a model reload. The daemon records each lane
process in ``state_dir/lanes.toml``: PID, start time (field 22 of /proc/PID/stat,
in clock ticks since boot: a recycled PID has another start time), port and a
digest of the settings the process was started with. A restarted daemon takes a
recorded lane back only when the PID still names that very process and the lane
is still configured the same way; a lane it cannot take back it stops, and a
record whose process is gone (or whose PID now names another process) it drops
without touching anything. Whether the port answers is checked by the lane's
runner afterwards, as for any start (``wait_ready``).
"""

from __future__ import annotations

import enum
import hashlib
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import tomli_w

from qwend.config.model import LaneConfig
from qwend.errors import QwendError

LANES_FILE = "lanes.toml"
"""File name of the lane records in the state directory."""


class AdoptionError(QwendError):
    """The lane record file is unreadable or corrupt."""


@dataclass(frozen=True)
class LaneRecord:
    """A lane process as the daemon that started it recorded it."""

    name: str
    pid: int
    """PID of the lane's main process, also its process group."""
    start_ticks: int
    """Start time of ``pid`` (clock ticks since boot, /proc/PID/stat field 22)."""
    port: int
    digest: str
    """``lane_digest`` of the configuration the process was started with."""


@dataclass(frozen=True)
class ProcFacts:
    """What /proc says about a recorded PID now."""

    start_ticks: int | None
    """Start time of the process with that PID; None when there is none (or a zombie)."""
    pgid: int | None = None
    """Its process group."""


class Verdict(enum.Enum):
    """What a restarted daemon does with a recorded lane."""

    ADOPT = "adopt"
    """The very process, configured as now: supervise it again without a restart."""
    STOP = "stop"
    """The very process, but no longer wanted as it is: stop its process group."""
    FORGET = "forget"
    """The process is gone, or the PID now names another process: touch nothing."""


@dataclass(frozen=True)
class Decision:
    """A verdict on one record and why."""

    verdict: Verdict
    reason: str


def lane_digest(lane: LaneConfig) -> str:
    """A digest of the settings a running process embodies (``LaneConfig.spawn_key``)."""
    return hashlib.sha256(repr(lane.spawn_key()).encode()).hexdigest()[:32]


def decide(
    record: LaneRecord, lane: LaneConfig | None, facts: ProcFacts, *, survive: bool = True
) -> Decision:
    """Adopt, stop or forget a recorded lane, given its configuration now and /proc.

    ``survive`` is ``[daemon] lanes_survive_restart`` now: when it was turned off
    while the daemon was down, the lanes it left are stopped, not adopted.
    """
    if facts.start_ticks is None:
        return Decision(Verdict.FORGET, f"process {record.pid} is gone")
    if facts.start_ticks != record.start_ticks:
        return Decision(
            Verdict.FORGET, f"PID {record.pid} now belongs to another process (start time differs)"
        )
    if facts.pgid is not None and facts.pgid != record.pid:
        return Decision(Verdict.FORGET, f"process {record.pid} no longer leads its process group")
    if not survive:
        return Decision(Verdict.STOP, "[daemon] lanes_survive_restart is off")
    if lane is None:
        return Decision(Verdict.STOP, "no longer configured")
    if lane.port != record.port or lane_digest(lane) != record.digest:
        return Decision(Verdict.STOP, "its configuration changed while qwend was down")
    return Decision(Verdict.ADOPT, f"process {record.pid} still runs as configured")


def start_ticks_of(stat: str) -> tuple[int, int] | None:
    """(start ticks, pgid) from the text of /proc/PID/stat; None for a zombie or garbage."""
    # The command (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    # fields[0] is field 3 (state); field N is fields[N - 3].
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    try:
        return int(fields[19]), int(fields[2])
    except ValueError:
        return None


def dumps_records(records: Iterable[LaneRecord]) -> str:
    """The lane record file's text (TOML)."""
    lanes = {
        r.name: {"pid": r.pid, "start_ticks": r.start_ticks, "port": r.port, "digest": r.digest}
        for r in records
    }
    return "# Written by qwend: lane processes that outlive a daemon restart.\n" + tomli_w.dumps(
        {"lanes": lanes}
    )


def loads_records(text: str, where: str) -> tuple[LaneRecord, ...]:
    """Parse the lane record file; AdoptionError naming ``where`` when it is corrupt."""
    try:
        data = tomllib.loads(text)
        lanes = data.get("lanes", {})
        if not isinstance(lanes, Mapping):
            raise TypeError("[lanes] is not a table")
        return tuple(_record(name, value) for name, value in lanes.items())
    except (tomllib.TOMLDecodeError, TypeError, KeyError, ValueError) as exc:
        raise AdoptionError(f"corrupt lane record file {where}: {exc}") from None


def _record(name: str, value: object) -> LaneRecord:
    if not isinstance(value, Mapping):
        raise TypeError(f"lanes.{name} is not a table")
    ints = {key: value[key] for key in ("pid", "start_ticks", "port")}
    for key, item in ints.items():
        least = 0 if key == "start_ticks" else 1
        if not isinstance(item, int) or isinstance(item, bool) or item < least:
            raise ValueError(f"lanes.{name}.{key} is not an integer >= {least}")
    digest = value["digest"]
    if not isinstance(digest, str):
        raise TypeError(f"lanes.{name}.digest is not a string")
    return LaneRecord(name, ints["pid"], ints["start_ticks"], ints["port"], digest)
