"""``GET /v1/stats/stream``: a whole frame, then deltas, built once per tick for every watcher."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from qwend.api.client import ControlClient, RemoteError
from qwend.api.messages import LaneAction
from qwend.api.stats import NpuSample, StatsFrame, StatsUpdate, apply_update
from qwend.control.app import STATS_HUBS
from qwend.control.stats import StatsHub, npu_samples
from qwend.npu.model import Chip, Npu, NpuReading, NpuView
from tests.support.control_fakes import serve_control
from tests.support.polling import until


async def take(stream: AsyncIterator[StatsUpdate], n: int) -> list[StatsUpdate]:
    return [await anext(stream) for _ in range(n)]


async def test_a_watcher_gets_the_frame_then_only_changes() -> None:
    async with serve_control() as served, ControlClient(served.path) as client:
        stream = client.stats_stream(0.2)
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            first = await anext(stream)
            assert first.full
            frame = apply_update(None, first)
            assert [lane.name for lane in frame.lanes][:3] == ["multimodal", "stable", "throughput"]
            assert frame.active["stable"] == "stable"
            assert frame.npu_note == "NPU monitor disabled"
            stable = next(lane for lane in frame.lanes if lane.name == "stable")
            assert stable.stats is not None and stable.stats.ttft_p50_ms == 120.0
            assert stable.uptime_s is None and stable.started_at is not None

            await client.lane_action("throughput", LaneAction.STOP, force=True)
            seen: list[StatsUpdate] = []
            while not any(lane.name == "throughput" for u in seen for lane in u.lanes):
                seen += await take(stream, 1)
            changed = [lane for u in seen for lane in u.lanes]
            assert {lane.name for lane in changed} == {"throughput"}
            assert [u.seq for u in seen] == list(range(first.seq + 1, first.seq + 1 + len(seen)))
            for update in seen:
                frame = apply_update(frame, update)
            assert next(x for x in frame.lanes if x.name == "throughput").state == "stopped"


async def test_watchers_share_one_frame_per_tick_and_it_stops_when_they_leave() -> None:
    async with serve_control() as served:
        hubs: dict[float, StatsHub] = served.app[STATS_HUBS]
        async with ControlClient(served.path) as one, ControlClient(served.path) as two:
            a, b = one.stats_stream(0.2), two.stats_stream(0.2)
            async with contextlib.aclosing(a), contextlib.aclosing(b):  # type: ignore[type-var]
                await anext(a)
                await anext(b)
                assert list(hubs) == [0.2]
                hub = hubs[0.2]
                built = 0
                build = hub.build

                def counting() -> StatsFrame:
                    nonlocal built
                    built += 1
                    return build()

                hub.build = counting
                ticks_a = await take(a, 5)
                ticks_b = await take(b, 5)
                assert hub.watchers == 2
                # Five ticks for two watchers: five frames built (plus at most one in between).
                last = max(ticks_a[-1].seq, ticks_b[-1].seq)
                assert built <= last - min(ticks_a[0].seq, ticks_b[0].seq) + 2
                assert built < 10
        await until(lambda: hub._task is None, what="the hub to stop ticking without watchers")


async def test_a_bad_interval_is_refused_plainly() -> None:
    async with serve_control() as served, ControlClient(served.path) as client:
        with pytest.raises(RemoteError, match="interval must be"):
            await anext(client.stats_stream(-1))


def test_npu_samples_come_from_the_monitor_view() -> None:
    chip = Chip(npu=3, chip=0, device=3, name="910A", health="OK", power_w=120.0, temp_c=44,
                aicore_pct=46, memory_used_mb=None, memory_total_mb=None, hbm_used_mb=18528,
                hbm_total_mb=32768, bus_id=None)  # fmt: skip
    reading = NpuReading(npus=(Npu(3, (chip,)),), processes=())
    view = NpuView(enabled=True, reading=reading, lane_npus={"tp": (3,), "mm": (7,)})
    samples, note = npu_samples(view)
    assert note == ""
    assert samples == (
        NpuSample(npu=3, chip=0, name="910A", health="OK", aicore_pct=46, hbm_used_mb=18528,
                  hbm_total_mb=32768, lanes=("tp",)),
    )  # fmt: skip
    assert npu_samples(NpuView(enabled=True, reading=None, error="npu-smi timed out")) == (
        (),
        "npu-smi timed out",
    )
    stale = NpuView(enabled=True, reading=reading, stale=True)
    assert npu_samples(stale)[1] == "NPU reading is stale"
