"""The calibration benchmark itself, on one variant (slow: about 15 s of simulated load)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.paths import REPO

BENCHMARK = REPO / "benchmarks" / "sim_calibration.py"


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sim_calibration", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sim_calibration"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
async def test_v3_lane_reproduces_the_seed_within_10_percent(tmp_path: Path) -> None:
    bench = load_benchmark()
    rows = await bench.measure_variant("v3", 2.0, 1, str(tmp_path))
    required = [r for r in rows if r.required]
    assert {r.case for r in required} == set(bench.REQUIRED)
    misses = [(r.case, round(r.error, 3)) for r in required if abs(r.error) > bench.TOLERANCE]
    assert misses == []
