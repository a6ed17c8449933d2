"""``runs_on``: an engine lane on the cluster a lane group forms (Ray), every misuse named."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from qwend.config.model import Config, promotes_in_place
from qwend.config.parse import parse_config
from qwend.errors import ConfigError
from tests.support.config_fixtures import Data, lane, valid_lanes, valid_main

MAIN = "qwend.toml"
BASE = Path("/etc/qwend")
CLUSTER = {"name": "node0", "token_file": "cluster.token"}
PEER = {"name": "node1", "url": "http://10.0.0.2:7710"}


def main(this: str = "node0") -> Data:
    data = valid_main()
    data["cluster"] = {**CLUSTER, "name": this}
    data["peers"] = [{**PEER, "name": "node1" if this == "node0" else "node0"}]
    return data


def ray_member(head: bool = True) -> Data:
    """The Ray node of this host: headless (no port), the NPUs it gives Ray."""
    table = lane("ray", "raycluster", [10, 11], 0)
    del table["lane"]["port"]
    start = ["ray", "start", "--block"] + (["--head"] if head else ["--address", "10.0.0.1:6379"])
    table["lane"]["command"] = start
    table["lane"]["group"] = {"members": ["node0", "node1"]}
    return table


def engine(**extra: Any) -> Data:
    table = lane("big", "big", [], 18095)
    del table["lane"]["npus"]
    table["lane"]["runs_on"] = "ray"
    table["lane"]["command"] = [
        "vllm", "serve", "m", "--distributed-executor-backend", "ray",
        "--tensor-parallel-size", "4", "--port", "{port}",
    ]  # fmt: skip
    table["lane"].update(extra)
    return table


def parse(lanes: dict[str, Data], this: str = "node0") -> Config:
    files = valid_lanes() | lanes
    return parse_config(
        main(this), list(files.items()), main_name=MAIN, base_dir=BASE, host_name=""
    )


def issues(lanes: dict[str, Data], this: str = "node0") -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as info:
        parse(lanes, this)
    return [(i.file, i.key, i.message) for i in info.value.issues]


def test_an_engine_runs_on_a_headless_group_this_host_leads() -> None:
    config = parse({"ray.toml": ray_member(), "big.toml": engine()})
    big, ray = config.lane("big"), config.lane("ray")
    assert big.runs_on == "ray" and big.npus == () and big.port == 18095
    assert ray.port == 0 and ray.is_headless and ray.group is not None and ray.group.is_leader
    assert not big.is_headless


def test_an_engine_may_write_an_empty_npu_list() -> None:
    config = parse({"ray.toml": ray_member(), "big.toml": engine(npus=[])})
    assert config.lane("big").npus == ()


def test_an_engine_with_npus_of_its_own_is_refused() -> None:
    found = issues({"ray.toml": ray_member(), "big.toml": engine(npus=[10])})
    assert [(f, k) for f, k, _ in found] == [("big.toml", "lane.npus")]
    assert "members hold the NPUs" in found[0][2]


@pytest.mark.parametrize(
    ("target", "words"),
    [("nothere", "no lane is called nothere"), ("stable", "is not a lane group")],
)
def test_runs_on_must_name_a_group(target: str, words: str) -> None:
    found = issues({"ray.toml": ray_member(), "big.toml": engine(runs_on=target)})
    keys = [(f, k) for f, k, _ in found]
    assert ("big.toml", "lane.runs_on") in keys
    assert any(words in m for _, _, m in found)


def test_an_engine_runs_on_a_group_only_from_its_leader_host() -> None:
    found = issues({"ray.toml": ray_member(head=False), "big.toml": engine()}, this="node1")
    runs_on = [m for _, k, m in found if k == "lane.runs_on"]
    assert runs_on and "led by node0" in runs_on[0] and "move this lane to node0" in runs_on[0]


def test_a_headless_leader_nothing_runs_on_is_refused() -> None:
    found = issues({"ray.toml": ray_member()})
    assert [(f, k) for f, k, _ in found] == [("ray.toml", "lane.port")]
    assert 'runs_on = "ray"' in found[0][2]


def test_a_group_member_or_a_remote_lane_cannot_run_on_a_group() -> None:
    member = ray_member()
    member["lane"]["runs_on"] = "ray"
    found = issues({"ray.toml": member})
    assert ("ray.toml", "lane.runs_on") in [(f, k) for f, k, _ in found]
    remote = engine(url="http://10.0.0.9:8000")
    del remote["lane"]["command"]
    found = issues({"ray.toml": ray_member(), "big.toml": remote})
    assert ("big.toml", "lane.runs_on") in [(f, k) for f, k, _ in found]


def test_a_runs_on_change_restarts_the_lane() -> None:
    big = parse({"ray.toml": ray_member(), "big.toml": engine()}).lane("big")
    assert big.spawn_key() != replace(big, runs_on=None).spawn_key()


def test_two_engines_on_one_group_promote_in_place() -> None:
    # Each takes every NPU the group's members give: the incumbent must stop first.
    candidate = engine(port=18096, standby=True, variant="v2")
    config = parse({"ray.toml": ray_member(), "big.toml": engine(), "big2.toml": candidate})
    assert promotes_in_place(config.lane("big2"), config.lane("big"))
    assert not promotes_in_place(config.lane("big2"), config.lane("stable"))
