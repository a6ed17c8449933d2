"""Shared pytest fixtures (each part adds its own, under its own heading)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.simlane import SimLaneFactory, SimLaneProcess, start_sim_lane

# -- qwend-sim lanes ----------------------------------------------------------------------


@pytest.fixture
def sim_state_dir(tmp_path: Path) -> Path:
    """A private ``QWEND_SIM_STATE_DIR`` for this test's sim lanes and fake npu-smi."""
    path = tmp_path / "sim-state"
    path.mkdir()
    return path


@pytest.fixture
def sim_lane(sim_state_dir: Path, tmp_path: Path) -> Iterator[SimLaneFactory]:
    """Factory: ``sim_lane(variant="v3", time_scale=20, extra=[...])`` starts a serving sim lane.

    Keyword arguments are those of ``simlane.start_sim_lane`` (state and log
    directories default to this test's). Every lane started is stopped at teardown.
    """
    started: list[SimLaneProcess] = []

    def factory(**kwargs: Any) -> SimLaneProcess:
        kwargs.setdefault("state_dir", sim_state_dir)
        kwargs.setdefault("log_dir", tmp_path / "sim-logs")
        lane = start_sim_lane(**kwargs)
        started.append(lane)
        return lane

    yield factory
    for lane in started:
        lane.stop()
