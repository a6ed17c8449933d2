"""StateStore: atomic TOML persistence of active lanes and promotion history."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from qwend.api.messages import Caller, PromotionMode, PromotionOutcome, PromotionRecord
from qwend.config.model import Config, LaneConfig
from qwend.promotion.state import (
    PersistedState,
    StateError,
    StateStore,
    dumps_state,
    loads_state,
    reconcile_active,
)


def record(n: int, *, from_lane: str | None = "a", reason: str | None = None) -> PromotionRecord:
    return PromotionRecord(
        id=f"p{n}",
        role="stable",
        from_lane=from_lane,
        to_lane="b",
        mode=PromotionMode.BLUE_GREEN,
        outcome=PromotionOutcome.PROMOTED,
        started_at=float(n),
        finished_at=n + 0.5,
        reason=reason,
        requested_by=Caller(uid=1000, pid=77, user="op"),
    )


def lane(name: str, role: str, standby: bool = False) -> LaneConfig:
    return LaneConfig(
        name=name,
        role=role,
        variant="v",
        npus=(0,),
        port=1,
        model="m",
        command=("x",),
        standby=standby,
    )


def test_round_trip_through_toml_keeps_none_fields() -> None:
    state = PersistedState(
        active={"stable": "b", "throughput": "t"},
        history=(record(1), record(2, from_lane=None, reason="exit 1")),
    )
    assert loads_state(dumps_state(state), "x") == state


def test_missing_file_is_empty_state(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "nonexistent")
    assert store.load() == PersistedState()


def test_save_then_load_survives_a_new_store(tmp_path: Path) -> None:
    StateStore(tmp_path).record({"stable": "b"}, record(1))
    again = StateStore(tmp_path)
    state = again.load()
    assert state.active == {"stable": "b"}
    assert state.history == (record(1),)
    again.record({"stable": "a"}, record(2))
    assert [r.id for r in StateStore(tmp_path).load().history] == ["p1", "p2"]


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    for n in range(5):
        store.record({"stable": f"l{n}"}, record(n))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.toml"]
    mode = stat.S_IMODE((tmp_path / "state.toml").stat().st_mode)
    assert mode == 0o640


def test_failed_write_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = StateStore(tmp_path)
    store.record({"stable": "a"}, None)

    def boom(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(StateError, match="No space left on device"):
        store.record({"stable": "b"}, None)
    monkeypatch.undo()
    assert StateStore(tmp_path).load().active == {"stable": "a"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.toml"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("active = [", "not valid TOML"),
        ("version = 9", "version 9 is not supported"),
        ("active = 3", r"\[active\] must map"),
        ("[[promotion]]\nid = 'x'\n", r"promotion\[0\]: .*missing field"),
    ],
)
def test_corrupt_file_raises_clear_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "state.toml").write_text(text)
    with pytest.raises(StateError, match=message):
        StateStore(tmp_path).load()


def test_corrupt_file_is_reported_and_kept_aside_without_raising(tmp_path: Path) -> None:
    (tmp_path / "state.toml").write_text("garbage = = =")
    store = StateStore(tmp_path)
    state, warning = store.load_or_default()
    assert state == PersistedState()
    assert warning is not None
    assert "not valid TOML" in warning and "configured active lanes" in warning
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("state.toml.corrupt-")]
    assert len(aside) == 1
    store.record({"stable": "a"}, None)
    assert StateStore(tmp_path).load().active == {"stable": "a"}


def test_reconcile_overlays_valid_choices_and_warns_on_stale() -> None:
    config = Config(lanes=(lane("a", "stable"), lane("b", "stable", True), lane("t", "throughput")))
    state = PersistedState(active={"stable": "b", "throughput": "gone", "x": "a"})
    active, warnings = reconcile_active(state, config)
    assert active == {"stable": "b", "throughput": "t"}
    assert len(warnings) == 2
    assert "'gone'" in warnings[0] and "no longer configured" in warnings[0]
    assert "now has role 'stable'" in warnings[1]
