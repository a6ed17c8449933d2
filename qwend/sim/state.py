"""Shared state between sim lanes and the fake npu-smi: one small JSON file per lane.

Each ``qwend-sim serve`` process writes ``<state dir>/lane-<pid>.json``
atomically (write a temp file, rename) when its load changes, and removes it at
exit, or, with ``--leak-npu-memory-s S``, leaves it marked with the time until
which its HBM stays "leaked". Readers ignore files of dead PIDs unless inside
such a leak window. The directory is ``$QWEND_SIM_STATE_DIR``, else
``$XDG_RUNTIME_DIR/qwend-sim``, else ``/tmp/qwend-sim-<uid>``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from qwend.sim.latency import BATCH_KNEE

HBM_TOTAL_MB = 32_768
"""HBM of one 910A."""
WEIGHTS_MB = 18_432
"""Qwen3.5-9B in bf16 plus the runtime's workspace, resident once loaded."""
SEQUENCE_STATE_MB = 48
"""Per running sequence: the linear-attention recurrent state and activations."""
KV_MB_PER_TOKEN = 0.032
"""Per context token: K and V of the full-attention layers."""


@dataclass(frozen=True)
class LaneRecord:
    """What one sim process publishes about itself."""

    pid: int
    """The sim process (the process a supervisor started)."""
    lane: str
    """``--lane-name`` (or the served model name)."""
    variant: str
    """The variant it emulates."""
    npus: tuple[int, ...]
    """NPU ids from ``ASCEND_RT_VISIBLE_DEVICES`` (empty: NPU 0)."""
    process_name: str
    """Name shown in npu-smi's process table."""
    hbm_mb: int
    """HBM it holds on each of its NPUs."""
    aicore_pct: int
    """AI Core utilisation it causes on each of its NPUs."""
    updated: float
    """Epoch seconds of this record."""
    started: int | None = None
    """Process start time (clock ticks since boot), to tell a reused PID apart."""
    leak_until: float | None = None
    """After exit: epoch seconds until which its HBM still shows (None: not leaking)."""

    def to_json(self) -> str:
        """Serialise for the state file."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> LaneRecord:
        """Parse a state file's content; raises ``ValueError`` on a malformed one."""
        try:
            npus = data["npus"]
            leak = data.get("leak_until")
            started = data.get("started")
            return cls(
                pid=int(data["pid"]),  # type: ignore[call-overload]
                lane=str(data["lane"]),
                variant=str(data["variant"]),
                npus=tuple(int(n) for n in npus),  # type: ignore[attr-defined]
                process_name=str(data["process_name"]),
                hbm_mb=int(data["hbm_mb"]),  # type: ignore[call-overload]
                aicore_pct=int(data["aicore_pct"]),  # type: ignore[call-overload]
                updated=float(data["updated"]),  # type: ignore[arg-type]
                started=None if started is None else int(started),  # type: ignore[call-overload]
                leak_until=None if leak is None else float(leak),  # type: ignore[arg-type]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed sim state record: {exc}") from None


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where sim lanes and the fake npu-smi share state."""
    environ = os.environ if env is None else env
    if environ.get("QWEND_SIM_STATE_DIR"):
        return Path(environ["QWEND_SIM_STATE_DIR"])
    if environ.get("XDG_RUNTIME_DIR"):
        return Path(environ["XDG_RUNTIME_DIR"]) / "qwend-sim"
    return Path(tempfile.gettempdir()) / f"qwend-sim-{os.getuid()}"


def parse_visible_devices(value: str | None) -> tuple[int, ...]:
    """NPU ids from ``ASCEND_RT_VISIBLE_DEVICES`` ("4" or "0,1"); junk entries are skipped."""
    if not value:
        return ()
    return tuple(int(p) for p in value.replace(" ", "").split(",") if p.isdigit())


def hbm_mb(loaded_fraction: float, running: int, context_tokens: int) -> int:
    """HBM a lane holds: weights as they load, then per-sequence state and KV cache."""
    used = WEIGHTS_MB * max(0.0, min(1.0, loaded_fraction))
    used += SEQUENCE_STATE_MB * running + KV_MB_PER_TOKEN * context_tokens
    return int(min(HBM_TOTAL_MB - 512, used))


def aicore_pct(step_kind: str, running: int) -> int:
    """AI Core utilisation for what the engine is doing (idle, prefill, decode)."""
    if step_kind == "prefill":
        return 92
    if step_kind == "decode":
        return min(97, 34 + 6 * min(running, BATCH_KNEE) + 3 * max(0, running - BATCH_KNEE))
    return 0


def record_path(directory: Path, pid: int) -> Path:
    """The state file of process ``pid``."""
    return directory / f"lane-{pid}.json"


def write_record(directory: Path, record: LaneRecord) -> None:
    """Write ``record`` atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    target = record_path(directory, record.pid)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(record.to_json(), encoding="utf-8")
    tmp.replace(target)


def remove_record(directory: Path, pid: int) -> None:
    """Remove the state file of ``pid`` (missing is fine)."""
    with contextlib.suppress(FileNotFoundError):
        record_path(directory, pid).unlink()


def mark_leaking(directory: Path, record: LaneRecord, seconds: float) -> None:
    """Keep ``record`` visible for ``seconds`` after this process exits."""
    write_record(directory, replace(record, leak_until=time.time() + seconds, aicore_pct=0))


def process_start(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (None if unknown)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


def pid_alive(pid: int, started: int | None = None) -> bool:
    """Whether ``pid`` runs and, if ``started`` is given, is the same process (not a reuse).

    Zombies count as gone.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return True
    fields = stat.rpartition(")")[2].split()
    if fields[:1] == ["Z"]:
        return False
    return started is None or process_start(pid) in (None, started)


def _visible(record: LaneRecord, moment: float) -> bool:
    if record.leak_until is not None:
        return record.leak_until > moment
    return pid_alive(record.pid, record.started)


def _load(path: Path) -> LaneRecord | None:
    try:
        return LaneRecord.from_mapping(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def read_records(directory: Path, now: float | None = None) -> list[LaneRecord]:
    """Records of live sim processes and of dead ones still inside their leak window."""
    moment = time.time() if now is None else now
    if not directory.is_dir():
        return []
    loaded = (_load(path) for path in sorted(directory.glob("lane-*.json")))
    return [r for r in loaded if r is not None and _visible(r, moment)]


def prune(directory: Path, now: float | None = None) -> int:
    """Remove records of dead processes (after their leak window); returns how many.

    Sim lanes killed with SIGKILL leave their file behind; each new lane tidies up.
    """
    moment = time.time() if now is None else now
    removed = 0
    for path in directory.glob("lane-*.json") if directory.is_dir() else ():
        record = _load(path)
        if record is not None and not _visible(record, moment):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed
