"""One host's checks of a Ray-backed lane group: each member's part in the Ray cluster,
what it declares to Ray, and the engine lane that runs on it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from qwend.config.check import render_check
from qwend.config.load import check_config
from qwend.config.model import Config
from qwend.config.parse import parse_config
from qwend.config.raycheck import ray_notes, ray_warnings
from qwend.config.summary import render_summary
from qwend.errors import ConfigError
from tests.support.config_fixtures import Data, lane, valid_lanes, valid_main, write_config

NOSET = {"RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES": "1"}


def main(this: str = "node0") -> Data:
    data = valid_main()
    data["cluster"] = {"name": this, "token_file": "cluster.token"}
    data["peers"] = [{"name": "node1" if this == "node0" else "node0", "url": "http://h:7710"}]
    return data


def member(*args: str, env: dict[str, str] | None = None, npus: int = 2) -> Data:
    table = lane("ray", "raycluster", list(range(10, 10 + npus)), 0)
    del table["lane"]["port"]
    table["lane"]["command"] = ["ray", "start", *args]
    table["lane"]["group"] = {"members": ["node0", "node1"]}
    table["lane"]["env"] = NOSET if env is None else env
    table["lane"]["stop"] = {"mode": "main"}
    return table


HEAD = ("--head", "--block", "--num-gpus=2")
WORKER = ("--block", "--address", "10.0.0.1:6379", "--num-gpus", "2")


def engine(*extra: str, **keys: Any) -> Data:
    table = lane("big", "big", [], 18095)
    del table["lane"]["npus"]
    table["lane"]["runs_on"] = "ray"
    table["lane"]["command"] = [
        "vllm", "serve", "m", "--port", "{port}", "--tensor-parallel-size", "2",
        "--pipeline-parallel-size", "2", *extra,
    ]  # fmt: skip
    table["lane"].update(keys)
    return table


RAY = ("--distributed-executor-backend", "ray")


def parse(lanes: dict[str, Data], this: str = "node0") -> Config:
    files = valid_lanes() | lanes
    return parse_config(
        main(this), list(files.items()), main_name="qwend.toml", base_dir=Path("/etc/qwend"),
        host_name="",
    )  # fmt: skip


def issues(lanes: dict[str, Data], this: str = "node0") -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as info:
        parse(lanes, this)
    return [(i.file, i.key, i.message) for i in info.value.issues]


def test_the_recipes_head_and_worker_are_valid_without_warnings() -> None:
    head = parse({"ray.toml": member(*HEAD), "big.toml": engine(*RAY)})
    assert ray_warnings(head) == []
    worker = parse({"ray.toml": member(*WORKER)}, this="node1")
    assert ray_warnings(worker) == [] and ray_notes(worker) == []


def test_the_simulators_ray_mode_is_checked_alike() -> None:
    sim = member("--head", "--block")
    sim["lane"]["command"] = ["qwend-sim", "ray", "start", "--head"]
    found = issues({"ray.toml": sim, "big.toml": engine(*RAY)})
    assert [(f, k) for f, k, _ in found] == [("ray.toml", "lane.command")]
    assert "without --block" in found[0][2]


@pytest.mark.parametrize(
    ("args", "this", "words"),
    [
        (("--head",), "node0", "ray start without --block"),
        (("--block", "--address", "10.0.0.1:6379"), "node0", "add --head"),
        (("--block", "--head"), "node1", "remove --head"),
        (("--block",), "node1", "add --address HOST:PORT of node0's Ray head"),
        (("--block", "--head", "--port", "x"), "node0", "--port must be a whole number"),
    ],
)
def test_a_member_in_the_wrong_part_is_an_error(
    args: tuple[str, ...], this: str, words: str
) -> None:
    lanes = {"ray.toml": member(*args)}
    if this == "node0":
        lanes["big.toml"] = engine(*RAY)
    found = issues(lanes, this)
    assert [(f, k) for f, k, _ in found] == [("ray.toml", "lane.command")], found
    assert words in found[0][2]


def test_a_ray_lane_outside_a_group_still_needs_block() -> None:
    table = lane("raysolo", "r", [9], 18099, command=["ray", "start", "--head"])
    found = issues({"solo.toml": table})
    assert [(f, k) for f, k, _ in found] == [("solo.toml", "lane.command")]


@pytest.mark.parametrize(
    ("flag", "shown"),
    [
        ("--num-gpus=4", "--num-gpus 4 declares 4 NPUs"),
        ('--resources={"NPU": 1}', "declares 1 NPU to"),
    ],
)
def test_npus_declared_to_ray_against_the_lanes_npus_is_a_warning(flag: str, shown: str) -> None:
    config = parse({"ray.toml": member("--head", "--block", flag), "big.toml": engine(*RAY)})
    (warning,) = ray_warnings(config)
    assert "lane ray" in warning and shown in warning and "npus lists 2" in warning


def test_undeclared_npus_are_counted_by_ray_itself() -> None:
    config = parse({"ray.toml": member("--head", "--block"), "big.toml": engine(*RAY)})
    assert ray_warnings(config) == []


def test_a_member_stopped_as_a_whole_group_is_warned() -> None:
    stopped_together = member(*HEAD)
    del stopped_together["lane"]["stop"]
    config = parse({"ray.toml": stopped_together, "big.toml": engine(*RAY)})
    (warning,) = ray_warnings(config)
    assert '[lane.stop] mode = "main"' in warning and "lane ray" in warning


def test_a_member_without_the_noset_variable_is_warned() -> None:
    config = parse({"ray.toml": member(*HEAD, env={}), "big.toml": engine(*RAY)})
    (warning,) = ray_warnings(config)
    assert 'RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES = "1"' in warning


@pytest.mark.parametrize(
    ("extra", "shown"),
    [((), "no executor"), (("--distributed-executor-backend=mp",), "backend mp")],
)
def test_an_engine_on_a_ray_group_without_rays_executor_is_warned(
    extra: tuple[str, ...], shown: str
) -> None:
    config = parse({"ray.toml": member(*HEAD), "big.toml": engine(*extra)})
    (warning,) = ray_warnings(config)
    assert "lane big" in warning and "runs on Ray lane group ray" in warning and shown in warning
    assert "add --distributed-executor-backend ray" in warning


def test_an_engine_on_a_group_that_is_not_ray_is_not_held_to_rays_executor() -> None:
    other = member()
    other["lane"]["command"] = ["qwend-sim", "serve", "--headless"]
    config = parse({"ray.toml": other, "big.toml": engine()})
    assert ray_warnings(config) == []


def test_the_engines_layout_is_a_note_not_a_local_error() -> None:
    config = parse({"ray.toml": member(*HEAD), "big.toml": engine(*RAY)})
    (note,) = ray_notes(config)
    assert note == (
        "lane big runs tensor 2 x pipeline 2 x data 1 = 4 NPUs on the NPUs of lane group"
        " ray's members, 2 of them on this host: their sum over the hosts is checked with"
        " --cluster"
    )


def test_check_config_prints_the_warnings_and_the_note(tmp_path: Path) -> None:
    lanes = valid_lanes() | {
        "lanes.d/ray.toml": member("--head", "--block", "--num-gpus=3"),
        "lanes.d/big.toml": engine(*RAY),
    }
    check = check_config(write_config(tmp_path, main(), lanes))
    assert check.ok, check.issues
    text = render_check(check)
    assert "warning: lane ray (ray.toml): --num-gpus 3 declares 3 NPUs" in text
    assert "note: lane big runs tensor 2 x pipeline 2" in text


def _rows(text: str) -> dict[str, dict[str, str]]:
    """The summary's lane table: lane -> column -> cell (cells are two spaces apart)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("LANE "))
    header = re.split(r"\s{2,}", lines[start].strip())
    rows = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        cells = dict(zip(header, re.split(r"\s{2,}", line.strip()), strict=True))
        rows[cells["LANE"]] = cells
    return rows


def test_the_summary_names_the_ray_head_worker_and_engine() -> None:
    rows = _rows(render_summary(parse({"ray.toml": member(*HEAD), "big.toml": engine(*RAY)})))
    assert {k: rows["ray"][k] for k in ("STATE", "NPUS", "PORT", "SERVES")} == {
        "STATE": "Ray head, leads node1",
        "NPUS": "10,11",
        "PORT": "-",
        "SERVES": "-",
    }
    assert {k: rows["big"][k] for k in ("STATE", "NPUS", "PORT", "SERVES")} == {
        "STATE": "active, runs on ray",
        "NPUS": "ray's",
        "PORT": "18095",
        "SERVES": "text",
    }
    worker = _rows(render_summary(parse({"ray.toml": member(*WORKER)}, this="node1")))
    assert worker["ray"]["STATE"] == "Ray worker, joins node0"


def test_the_heads_gcs_port_is_a_port_of_this_host() -> None:
    """The head's GCS port (6379 unless --port) clashes like any side port (filed on the
    later of the two files)."""
    found = issues({"ray.toml": member(*HEAD), "big.toml": engine(*RAY, "--master-port", "6379")})
    assert [(f, k) for f, k, _ in found] == [("big.toml", "lane.command")]
    assert "6379 (--master-port) collides with lane ray (ray.toml)" in found[0][2]
    assert "6379 (ray start --head (Ray's default))" in found[0][2]
    found = issues({"ray.toml": member(*HEAD, "--port=18095"), "big.toml": engine(*RAY)})
    assert [(f, k) for f, k, _ in found] == [("big.toml", "lane.port")]
    assert (
        "port 18095 is a side port of lane ray (ray.toml): 18095 (ray start --port)"
        in (found[0][2])
    )


def test_an_engine_of_its_own_kind_has_no_executor_flag_to_check() -> None:
    """A Ray driver of its own (not vLLM's server nor the simulator's) is left alone; the
    simulator's server, speaking vLLM's flags, is held to them."""
    driver = engine()
    driver["lane"]["command"] = ["python3", "driver.py", "--port", "{port}"]
    config = parse({"ray.toml": member(*HEAD), "big.toml": driver})
    assert ray_warnings(config) == []
    driver["lane"]["command"] = ["qwend-sim", "serve", "--port", "{port}"]
    config = parse({"ray.toml": member(*HEAD), "big.toml": driver})
    (warning,) = ray_warnings(config)
    assert "add --distributed-executor-backend ray" in warning


def test_one_active_engine_runs_on_a_group() -> None:
    second = engine(*RAY, role="other", port=18096)
    found = issues({"ray.toml": member(*HEAD), "big.toml": engine(*RAY), "big2.toml": second})
    assert [(f, k) for f, k, _ in found] == [("big2.toml", "lane.runs_on")]
    assert "lane big (big.toml) already runs on lane group ray" in found[0][2]
    second["lane"]["standby"] = True
    second["lane"]["role"] = "big"
    parse({"ray.toml": member(*HEAD), "big.toml": engine(*RAY), "big2.toml": second})
    second["lane"]["role"] = "other"
    found = issues({"ray.toml": member(*HEAD), "big.toml": engine(*RAY), "big2.toml": second})
    found = [(f, k, m) for f, k, m in found if k == "lane.runs_on"]  # not "no active lane"
    assert [(f, k) for f, k, _ in found] == [("big2.toml", "lane.runs_on")]
    assert "standby lane of role 'other'" in found[0][2] and "lane big of role 'big'" in found[0][2]
