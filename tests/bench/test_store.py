"""Saved results: where, by id or prefix, the latest of a target."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwend.bench import store
from tests.bench.helpers import result


def test_results_dir_precedence() -> None:
    assert store.results_dir({"HOME": "/h"}) == Path("/h/.local/state/qwend/bench")
    assert store.results_dir({"HOME": "/h", "XDG_STATE_HOME": "/s"}) == Path("/s/qwend/bench")
    env = {"HOME": "/h", "QWEND_BENCH_DIR": "/b"}
    assert store.results_dir(env) == Path("/b")
    assert store.results_dir(env, "/x") == Path("/x")


def test_save_load_by_id_prefix_path_and_latest(tmp_path: Path) -> None:
    old = result("20260101T000000000Z-router", {"text_8": [[1.0]]}, started=1.0)
    new = result("20260102T000000000Z-router", {"text_8": [[0.9]]}, started=2.0)
    lane = result("20260103T000000000Z-lane-a", {"c8": [[0.9]]}, target="lane:a", started=3.0)
    paths = [store.save(tmp_path, r) for r in (old, new, lane)]
    assert store.load(tmp_path, old.id) == old
    assert store.load(tmp_path, "20260102") == new
    assert store.load(tmp_path, str(paths[2])) == lane
    assert store.latest(tmp_path, "router", "text_8") == new
    assert store.latest(tmp_path, "router", "c8") is None
    assert [r.id for r in store.listing(tmp_path)] == [old.id, new.id, lane.id]
    with pytest.raises(store.ResultNotFound, match="matches 3 results"):
        store.load(tmp_path, "2026")
    with pytest.raises(store.ResultNotFound, match="no saved result 'nope'"):
        store.load(tmp_path, "nope")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(store.ResultNotFound, match="is not a qwenctl bench result"):
        store.load(tmp_path, "broken")
    assert len(store.listing(tmp_path)) == 3  # the broken file is skipped
