"""The daemon's services, wired without starting anything (fast, no processes)."""

from __future__ import annotations

from pathlib import Path

from qwend.config.model import Config, DaemonConfig, MonitorConfig
from qwend.daemon.wiring import build_services
from qwend.promotion.state import StateStore
from tests.support.control_fakes import demo_config


def config_in(tmp_path: Path) -> Config:
    daemon = DaemonConfig(state_dir=tmp_path / "state", log_dir=tmp_path / "logs")
    return Config(daemon=daemon, monitor=MonitorConfig(enabled=False), lanes=demo_config().lanes)


async def test_services_share_one_supervisor_router_and_store(tmp_path: Path) -> None:
    services = build_services(config_in(tmp_path), extra_env={}, keys=None)
    assert services.supervisor.traffic is services.router
    assert services.promoter.supervisor is services.supervisor
    assert services.promoter.traffic is services.router
    assert services.promoter.store is services.store
    assert services.promoter.monitor is services.monitor
    assert services.store.path == tmp_path / "state" / "state.toml"
    assert services.warnings == ()
    assert services.supervisor.active_lanes() == demo_config().default_active()


async def test_persisted_active_lanes_are_restored_and_stale_ones_reported(
    tmp_path: Path,
) -> None:
    StateStore(tmp_path / "state").record({"stable": "recurrent_v2", "throughput": "gone"}, None)
    services = build_services(config_in(tmp_path), extra_env={}, keys=None)
    assert services.supervisor.active_lanes()["stable"] == "recurrent_v2"
    assert services.supervisor.active_lanes()["throughput"] == "throughput"
    assert len(services.warnings) == 1
    assert "'gone'" in services.warnings[0] and "no longer configured" in services.warnings[0]


async def test_a_corrupt_state_file_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "state.toml").write_text("active = [")
    services = build_services(config_in(tmp_path), extra_env={}, keys=None)
    assert services.supervisor.active_lanes() == demo_config().default_active()
    assert len(services.warnings) == 1 and "not valid TOML" in services.warnings[0]
