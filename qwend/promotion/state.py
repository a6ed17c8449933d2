"""Persisted daemon state: the active lane per role and the promotion history.

Lives in ``state_dir/state.toml`` (TOML via tomli-w) and is written
atomically: a temporary file in the same directory, fsync, rename over the
old file, fsync the directory. So a crash or power cut leaves either the old
or the new state, never half of one. A missing file means "no state yet"; a
corrupt one is copied aside and reported, and the daemon keeps the config's
defaults instead of refusing to start.
"""

from __future__ import annotations

import contextlib
import shutil
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from qwend.api.messages import PromotionRecord, ProtocolError
from qwend.config.model import Config
from qwend.errors import QwendError
from qwend.files import atomic_write
from qwend.supervisor.reload import DroppedChoice, resolve_active

STATE_FILE = "state.toml"
STATE_VERSION = 1
HISTORY_KEEP = 200
"""Promotion records kept in the file (oldest dropped first)."""


class StateError(QwendError):
    """The state file could not be read or written."""


@dataclass(frozen=True)
class PersistedState:
    """What survives a daemon restart."""

    active: Mapping[str, str] = field(default_factory=dict)
    """Role -> active lane name."""
    history: tuple[PromotionRecord, ...] = ()
    """Promotions, oldest first."""


def _record_to_toml(record: PromotionRecord) -> dict[str, Any]:
    # TOML has no null: absent keys stand for None.
    return _drop_none(record.to_dict())


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {
        k: _drop_none(v) if isinstance(v, dict) else v for k, v in data.items() if v is not None
    }


def dumps_state(state: PersistedState) -> str:
    """The TOML text for ``state`` (pure)."""
    doc: dict[str, Any] = {
        "version": STATE_VERSION,
        "active": dict(state.active),
        "promotion": [_record_to_toml(r) for r in state.history[-HISTORY_KEEP:]],
    }
    return tomli_w.dumps(doc)


def loads_state(text: str, where: str) -> PersistedState:
    """Parse state TOML (pure); StateError says what is wrong and where."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StateError(f"{where}: not valid TOML ({exc})") from None
    version = doc.get("version", STATE_VERSION)
    if version != STATE_VERSION:
        raise StateError(f"{where}: state version {version!r} is not supported")
    active = doc.get("active", {})
    if not isinstance(active, dict) or not all(isinstance(v, str) for v in active.values()):
        raise StateError(f"{where}: [active] must map role names to lane names")
    records = doc.get("promotion", [])
    if not isinstance(records, list):
        raise StateError(f"{where}: promotion must be an array of tables")
    history: list[PromotionRecord] = []
    for i, raw in enumerate(records):
        try:
            history.append(PromotionRecord.from_dict({"from_lane": None} | raw))
        except (ProtocolError, TypeError) as exc:
            raise StateError(f"{where}: promotion[{i}]: {exc}") from None
    return PersistedState(active=dict(active), history=tuple(history))


def reconcile_active(state: PersistedState, config: Config) -> tuple[dict[str, str], list[str]]:
    """Role -> lane to start with: the config defaults overlaid by valid persisted choices.

    Persisted entries naming a lane that no longer exists, or a lane of another
    role, are dropped with a warning (pure).
    """
    resolved = resolve_active(config, state.active)
    active = dict(resolved.active)
    return active, [_dropped_warning(choice, active) for choice in resolved.dropped]


def _dropped_warning(choice: DroppedChoice, active: Mapping[str, str]) -> str:
    if choice.now_role is None:
        return (
            f"state: active lane {choice.lane!r} of role {choice.role!r} is no longer configured;"
            f" using {active.get(choice.role, 'none')!r}"
        )
    return (
        f"state: lane {choice.lane!r} now has role {choice.now_role!r}, not {choice.role!r};"
        " ignored"
    )


class StateStore:
    """Reads and atomically writes ``state_dir/state.toml``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / STATE_FILE
        self._state = PersistedState()

    @property
    def state(self) -> PersistedState:
        """The last state loaded or saved."""
        return self._state

    def load(self) -> PersistedState:
        """Read the file; empty state when missing; StateError when unreadable or corrupt."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self._state = PersistedState()
            return self._state
        except (OSError, UnicodeDecodeError) as exc:
            raise StateError(f"cannot read state file {self.path}: {exc}") from None
        self._state = loads_state(text, str(self.path))
        return self._state

    def load_or_default(self) -> tuple[PersistedState, str | None]:
        """Like ``load`` but never raises: a corrupt file is copied aside and reported.

        Returns the state and a warning for the operator (None when all is well).
        """
        try:
            return self.load(), None
        except StateError as exc:
            aside = self.path.with_name(f"{STATE_FILE}.corrupt-{int(time.time())}")
            with contextlib.suppress(OSError):
                shutil.copy2(self.path, aside)
            self._state = PersistedState()
            return self._state, (
                f"{exc}; ignoring it and using the configured active lanes"
                f" (a copy was kept as {aside.name}; the next promotion rewrites the file)"
            )

    def save(self, state: PersistedState) -> None:
        """Write ``state`` atomically (temp file, fsync, rename, fsync dir)."""
        text = dumps_state(state)
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
            atomic_write(self.path, text.encode("utf-8"))
        except OSError as exc:
            raise StateError(f"cannot write state file {self.path}: {exc}") from None
        self._state = state

    def record(self, active: Mapping[str, str], record: PromotionRecord | None) -> PersistedState:
        """Save a new active map, appending ``record`` to the history."""
        history = self._state.history + ((record,) if record is not None else ())
        state = PersistedState(active=dict(active), history=history[-HISTORY_KEEP:])
        self.save(state)
        return state
