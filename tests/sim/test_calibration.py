"""The calibration benchmark itself, on one variant (slow: about 90 s of real-time load)."""

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
@pytest.mark.timeout(400)  # three real-time passes over the seed's cases: about 90 s
async def test_v3_lane_reproduces_the_seed_within_10_percent(tmp_path: Path) -> None:
    bench = load_benchmark()
    # In real time (scale 1), as the seed was measured: at scale 2 the lane's fixed
    # per-request costs (HTTP, JSON, image decoding), which the scale does not shrink, are
    # multiplied back twice and put the 0.68 s mm_8 case 8-17 % over. The median of three
    # runs, since a case's first request also pays the connection set-up.
    rows = await bench.measure_variant("v3", 1.0, 3, str(tmp_path))
    required = [r for r in rows if r.required]
    assert {r.case for r in required} == set(bench.REQUIRED)
    misses = [(r.case, round(r.error, 3)) for r in required if abs(r.error) > bench.TOLERANCE]
    assert misses == []
