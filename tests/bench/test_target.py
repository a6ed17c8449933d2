"""Resolving router, role, lane and URL targets from the daemon's status."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwend.api.messages import DaemonInfo, LaneInfo, StatusResponse
from qwend.bench.target import TargetError, config_digest, from_status


def status(config_path: str = "/nonexistent/qwend.toml") -> StatusResponse:
    def lane(name: str, role: str, variant: str, port: int, pid: int | None) -> LaneInfo:
        return LaneInfo(
            name=name, role=role, variant=variant, state="ready" if pid else "stopped",
            active=name in ("stable", "mm"), standby=name == "recurrent_v2", model="qwen",
            pid=pid, port=port,
        )  # fmt: skip

    return StatusResponse(
        daemon=DaemonInfo(
            version="0.1.0",
            pid=1,
            started_at=0.0,
            uptime_s=1.0,
            config_path=config_path,
            router_url="http://127.0.0.1:18088",
        ),
        active={"stable": "stable", "multimodal": "mm"},
        lanes=(
            lane("stable", "stable", "baseline", 18084, 10),
            lane("mm", "multimodal", "baseline", 18083, 11),
            lane("recurrent_v2", "stable", "recurrent_v2", 18085, None),
        ),
    )


def test_targets_resolve_to_urls_with_lane_variants() -> None:
    router = from_status("router", status())
    assert (router.url, router.via_router, router.model) == ("http://127.0.0.1:18088", True, "qwen")
    assert router.lanes == {"stable": "baseline", "mm": "baseline", "recurrent_v2": "recurrent_v2"}
    role = from_status("role:multimodal", status())
    assert (role.url, role.lane, role.via_router) == ("http://127.0.0.1:18083", "mm", False)
    assert from_status("lane:stable", status()).url == "http://127.0.0.1:18084"
    url = from_status("http://10.0.0.1:8000/", status())
    assert (url.url, url.lane) == ("http://10.0.0.1:8000", "")


def test_unusable_targets_say_what_to_do() -> None:
    with pytest.raises(TargetError, match="not running; start it first"):
        from_status("lane:recurrent_v2", status())
    with pytest.raises(TargetError, match="no lane 'x'; lanes: mm, recurrent_v2, stable"):
        from_status("lane:x", status())
    with pytest.raises(TargetError, match="role 'throughput' has no active lane"):
        from_status("role:throughput", status())
    with pytest.raises(TargetError, match="expected router, role:NAME"):
        from_status("stable", status())


def test_config_digest_covers_the_lane_files(tmp_path: Path) -> None:
    main = tmp_path / "qwend.toml"
    main.write_text('[daemon]\nlanes_dir = "lanes.d"\n')
    (tmp_path / "lanes.d").mkdir()
    (tmp_path / "lanes.d" / "a.toml").write_text("[lane]\n")
    first = config_digest(str(main))
    assert len(first) == 64
    (tmp_path / "lanes.d" / "a.toml").write_text("[lane]\nname = 'a'\n")
    assert config_digest(str(main)) != first
    assert config_digest(str(tmp_path / "missing.toml")) == ""


def test_a_lane_benched_directly_gets_its_backends_model_name() -> None:
    """The router maps public names; a lane's own server knows only its served_model
    (transformers serve: the model's path), so a direct bench must send that."""
    base = status()
    renamed = tuple(
        LaneInfo(**{**vars(lane), "served_model": "/data/models/Qwen3.5-9B"})
        if lane.name == "stable"
        else lane
        for lane in base.lanes
    )
    served = StatusResponse(daemon=base.daemon, active=base.active, lanes=renamed)
    assert from_status("lane:stable", served).model == "/data/models/Qwen3.5-9B"
    assert from_status("role:stable", served).model == "/data/models/Qwen3.5-9B"
    assert from_status("router", served).model == "qwen"  # the router maps the public name
    assert from_status("role:multimodal", served).model == "qwen"


def test_a_remote_lane_is_benched_at_its_url() -> None:
    base = status()
    remote = LaneInfo(
        name="far", role="throughput", variant="baseline", state="ready", active=True,
        standby=False, model="qwen", url="http://10.0.0.2:8000/",
    )  # fmt: skip
    served = StatusResponse(daemon=base.daemon, active=base.active, lanes=(*base.lanes, remote))
    target = from_status("lane:far", served)
    assert (target.url, target.lane) == ("http://10.0.0.2:8000", "far")
