"""A hanging npu-smi does not serialise lane starts (issue 13, finding 6).

Before a lane starts, the supervisor asks the NPU monitor whether its NPUs are free,
which runs npu-smi. Those checks ran one at a time, so with npu-smi hanging the n-th
lane started n timeouts late. They share runs now: every lane waits for the same one.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.npu.test_monitor import FakeNpuSmi
from tests.support.daemonproc import run_daemon, write_config
from tests.support.lanescripts.factory import make_lane
from tests.support.polling import SLACK_S

pytestmark = pytest.mark.slow

TIMEOUT_S = 3.0
LANES = 6


async def test_lanes_start_together_while_npu_smi_hangs(tmp_path: Path) -> None:
    (tmp_path / "npu-smi").mkdir()
    fake = FakeNpuSmi(tmp_path / "npu-smi")
    fake.mode("hang")
    lanes = [make_lane(f"l{i}", npus=(i,)) for i in range(LANES)]
    monitor = {"npu_smi": str(fake.script), "timeout_s": TIMEOUT_S, "interval_s": 600.0}
    cfg = write_config(tmp_path / "etc", lanes, monitor=monitor)
    started = time.monotonic()
    async with run_daemon(cfg) as d:
        await d.wait_lanes({lane.name: "ready" for lane in lanes}, timeout=LANES * TIMEOUT_S * 3)
        took = time.monotonic() - started
    # The monitor's first run, then one shared by every lane's check (was one per lane).
    assert fake.runs("hang") <= 3
    assert took < 2 * TIMEOUT_S + SLACK_S < LANES * TIMEOUT_S, took
