"""Promoter and control API driving the real Supervisor with real lane processes."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from qwend.api.client import ControlClient
from qwend.api.messages import PromotionMode, PromotionOutcome, PromotionRecord
from qwend.config.model import Config, DaemonConfig, LaneConfig
from qwend.control.app import create_control_socket, make_control_app, remove_control_socket
from qwend.promotion.promoter import Promoter
from qwend.promotion.state import StateStore
from qwend.routing.lanetable import LaneTable
from qwend.supervisor.states import LaneState
from qwend.supervisor.supervisor import Supervisor
from tests.support.lanescripts.factory import make_lane

SupFactory = Callable[..., Supervisor]


@pytest.fixture
async def make_sup(tmp_path: Path) -> AsyncIterator[SupFactory]:
    made: list[Supervisor] = []

    def factory(*lanes: LaneConfig) -> Supervisor:
        config = Config(daemon=DaemonConfig(log_dir=tmp_path / "logs"), lanes=lanes)
        sup = Supervisor(config, LaneTable())
        made.append(sup)
        return sup

    yield factory
    for sup in made:
        await sup.shutdown(drain_timeout=0)


async def started(sup: Supervisor) -> Supervisor:
    await sup.start()
    for name in sup.active_lanes().values():
        await sup.wait_ready(name, 30)
    return sup


async def test_in_place_promotion_with_real_lanes(make_sup: SupFactory, tmp_path: Path) -> None:
    sup = await started(
        make_sup(
            make_lane("stable", npus=(0,)),
            make_lane("cand", npus=(0,), role="stable", standby=True),
        )
    )
    promoter = Promoter(sup, None, StateStore(tmp_path / "state"))
    promotion = promoter.start("cand", None)
    assert promotion.accepted.mode is PromotionMode.IN_PLACE
    record = await promotion.result()
    assert record.outcome is PromotionOutcome.PROMOTED, record.reason
    assert sup.active_lanes()["stable"] == "cand"
    assert sup.snapshot("cand").state is LaneState.READY
    assert sup.snapshot("stable").state is LaneState.STOPPED
    assert StateStore(tmp_path / "state").load().active["stable"] == "cand"


async def test_reload_removing_the_promoted_lane_starts_the_configured_one(
    make_sup: SupFactory, tmp_path: Path
) -> None:
    stable = make_lane("stable", npus=(0,))
    sup = await started(make_sup(stable, make_lane("cand", npus=(0,), role="stable", standby=True)))
    record = await Promoter(sup, None, None).start("cand", None).result()
    assert record.outcome is PromotionOutcome.PROMOTED, record.reason
    assert sup.snapshot("stable").state is LaneState.STOPPED
    # The file of the promoted lane is removed: the role goes back to its configured lane.
    config = Config(daemon=sup.config.daemon, lanes=(stable,))
    report = await sup.reload(config)
    assert report.stopped == ("cand",)
    assert report.started == ("stable",)
    assert sup.active_lanes() == {"stable": "stable"}
    await sup.wait_ready("stable", 30)
    assert sup.snapshot("stable").accepting


async def test_blue_green_promotion_with_real_lanes(make_sup: SupFactory) -> None:
    sup = await started(
        make_sup(
            make_lane("stable", npus=(0,)),
            make_lane("green", npus=(1,), role="stable", standby=True),
        )
    )
    record = await Promoter(sup, None, None).start("green", None).result()
    assert record.mode is PromotionMode.BLUE_GREEN
    assert record.outcome is PromotionOutcome.PROMOTED, record.reason
    assert sup.snapshot("green").accepting
    assert sup.snapshot("stable").state is LaneState.STOPPED


async def test_crashing_candidate_is_rolled_back_with_real_lanes(make_sup: SupFactory) -> None:
    sup = await started(
        make_sup(
            make_lane("stable", npus=(0,)),
            make_lane("bad", npus=(0,), role="stable", standby=True, extra=["--crash-on-start"]),
        )
    )
    record = await Promoter(sup, None, None).start("bad", None).result()
    assert record.outcome is PromotionOutcome.ROLLED_BACK
    assert record.reason
    assert sup.active_lanes()["stable"] == "stable"
    assert sup.snapshot("stable").state is LaneState.READY
    assert sup.snapshot("stable").accepting
    assert sup.snapshot("bad").state in (LaneState.STOPPED, LaneState.FAILED)


async def test_control_api_over_the_real_supervisor(make_sup: SupFactory) -> None:
    sup = await started(
        make_sup(
            make_lane("stable", npus=(0,)),
            make_lane("green", npus=(1,), role="stable", standby=True),
        )
    )
    promoter = Promoter(sup, None, None)
    with tempfile.TemporaryDirectory(prefix="qr", dir="/tmp") as tmp:
        path = Path(tmp) / "control.sock"
        app = make_control_app(sup, promoter, control_socket=path, version="test")
        runner = web.AppRunner(app, shutdown_timeout=2.0)
        await runner.setup()
        await web.SockSite(runner, create_control_socket(path)).start()
        try:
            async with ControlClient(path) as client:
                status = await client.status()
                items = [item async for item in client.promote("green")]
                logs = await client.logs("green", n=5)
                lanes = await client.lanes()
        finally:
            await runner.cleanup()
            remove_control_socket(path)
    assert {lane.name: lane.state for lane in status.lanes} == {
        "stable": "ready",
        "green": "stopped",
    }
    record = items[-1]
    assert isinstance(record, PromotionRecord)
    assert record.outcome is PromotionOutcome.PROMOTED
    assert logs.lane == "green"
    by_name = {lane.name: lane for lane in lanes.lanes}
    assert by_name["green"].active and by_name["green"].pid is not None
    assert by_name["stable"].state == "stopped"
