"""The HTTP warm-up hook against a real qwend-sim lane."""

from __future__ import annotations

import pytest

from qwend.config.model import LaneConfig
from qwend.errors import LaneError
from qwend.promotion.warmup import http_warmup
from tests.support.simlane import SimLaneFactory, free_port


def lane_at(port: int, model: str = "qwen3.5-9b") -> LaneConfig:
    return LaneConfig(
        name="cand", role="stable", variant="v3", npus=(0,), port=port, model=model, command=("x",)
    )


async def test_warmup_succeeds_on_a_serving_lane(sim_lane: SimLaneFactory) -> None:
    lane = sim_lane(variant="v3", time_scale=50)
    port = int(lane.base_url.rsplit(":", 1)[1])
    await http_warmup(30)(lane_at(port))


async def test_warmup_fails_clearly_when_nothing_listens() -> None:
    port = free_port()
    with pytest.raises(LaneError, match=f"warm-up request to lane cand .*127.0.0.1:{port}"):
        await http_warmup(5)(lane_at(port))
