"""The Ray preset across hosts: it agrees as shipped, and each inconsistency an operator
can make by hand in a Ray cluster's files is one error naming host, file and key."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from qwend.config.crossbase import Host, Report
from qwend.config.crossray import check_ray
from qwend.config.load import check_cluster, check_config, load_config
from qwend.config.parallel import option
from qwend.config.presets import install_cluster_preset, list_cluster_presets
from qwend.config.presetvalues import preset_values
from qwend.config.rayargs import parse_ray_start
from qwend.daemon.check_config import main as check_main
from qwend.daemon.exit import ExitStatus

RAY = "qwen3.5-397b-a17b-ray-2node"
ADDRESSES = ["node0=10.0.0.1", "node1=10.0.0.2"]


def _render(target: Path) -> list[Path]:
    preset = next(p for p in list_cluster_presets() if p.name == RAY)
    install_cluster_preset(preset, preset_values(preset.hosts, ADDRESSES, ["eth0"]), target)
    return [target / host for host in preset.hosts]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def test_the_ray_preset_is_the_recipes_layout(tmp_path: Path) -> None:
    node0, node1 = (load_config(d / "qwend.toml") for d in _render(tmp_path))
    head, engine = node0.lane("ray"), node0.lane("stable")
    worker = node1.lane("ray")
    head_node, worker_node = parse_ray_start(head.argv()), parse_ray_start(worker.argv())
    assert head_node is not None and head_node.head and head_node.block
    assert head_node.node_ip == "10.0.0.1" and head_node.port == 6379
    assert worker_node is not None and not worker_node.head and worker_node.block
    assert worker_node.address == "10.0.0.1:6379" and worker_node.node_ip == "10.0.0.2"
    for member in (head, worker):
        assert member.is_headless and len(member.npus) == 16
        assert member.env["RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES"] == "1"
        assert member.env["GLOO_SOCKET_IFNAME"] == member.env["TP_SOCKET_IFNAME"] == "eth0"
    assert head.env["HCCL_IF_IP"] == "10.0.0.1" and worker.env["HCCL_IF_IP"] == "10.0.0.2"
    argv = engine.argv()
    assert engine.runs_on == "ray" and engine.npus == () and engine.port == 18084
    assert option(argv, ("--distributed-executor-backend",)) == "ray"
    assert option(argv, ("--tensor-parallel-size",)) == "16"
    assert option(argv, ("--pipeline-parallel-size",)) == "2"
    assert argv[argv.index("--served-model-name") + 1] == engine.backend_model
    assert engine.env["VLLM_HOST_IP"] == "10.0.0.1"
    assert engine.env["RAY_ADDRESS"] == "10.0.0.1:6379"


def test_each_host_says_what_it_cannot_check_alone(tmp_path: Path) -> None:
    node0, node1 = (check_config(d) for d in _render(tmp_path))
    assert node0.ok and node1.ok and node0.warnings == node1.warnings == ()
    (note,) = node0.notes
    assert "lane stable runs tensor 16 x pipeline 2" in note and "checked with --cluster" in note


# (file relative to the render, old text, new text, file of the issue, key, words)
SEEDED = [
    pytest.param(
        "node1/lanes.d/ray.toml",
        '"--address", "10.0.0.1:6379"',
        '"--address", "10.0.0.7:6379"',
        "node1/lanes.d/ray.toml",
        "lane.command --address",
        ["[node1]", "--address 10.0.0.7", "head's address 10.0.0.1", "join 10.0.0.1:6379"],
        id="worker-joins-another-address",
    ),
    pytest.param(
        "node1/lanes.d/ray.toml",
        '"--address", "10.0.0.1:6379"',
        '"--address", "10.0.0.1:6380"',
        "node1/lanes.d/ray.toml",
        "lane.command --address",
        ["[node1]", "10.0.0.1:6380", "listens on port 6379 (its --port)"],
        id="worker-joins-another-port",
    ),
    pytest.param(
        "node1/lanes.d/ray.toml",
        '"--address", "10.0.0.1:6379"',
        '"--address", "10.0.0.1"',
        "node1/lanes.d/ray.toml",
        "lane.command --address",
        ["[node1]", "names no port", "join 10.0.0.1:6379"],
        id="worker-address-without-port",
    ),
    pytest.param(
        "node1/lanes.d/ray.toml",
        '"--node-ip-address", "10.0.0.2"',
        '"--node-ip-address", "10.0.0.9"',
        "node1/lanes.d/ray.toml",
        "lane.command --node-ip-address",
        ["[node1]", "10.0.0.9 is not this host's address 10.0.0.2"],
        id="worker-node-ip",
    ),
    pytest.param(
        "node0/lanes.d/stable.toml",
        '"--pipeline-parallel-size", "2"',
        '"--pipeline-parallel-size", "3"',
        "node0/lanes.d/stable.toml",
        "lane.command --tensor-parallel-size",
        [
            "[node0]",
            "tensor-parallel-size 16 x pipeline-parallel-size 3 = 48 NPUs",
            "16 (node0) + 16 (node1) = 32",
        ],
        id="engine-asks-more-npus-than-ray-has",
    ),
    pytest.param(
        "node1/lanes.d/ray.toml",
        "npus = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]",
        "npus = [0, 1, 2, 3, 4, 5, 6, 7]",
        "node0/lanes.d/stable.toml",
        "lane.command --tensor-parallel-size",
        ["16 (node0) + 8 (node1) = 24"],
        id="a-member-gives-ray-fewer-npus",
    ),
    pytest.param(
        "node0/lanes.d/stable.toml",
        'RAY_ADDRESS = "10.0.0.1:6379"',
        'RAY_ADDRESS = "10.0.0.2:6379"',
        "node0/lanes.d/stable.toml",
        "lane.env.RAY_ADDRESS",
        ["[node0]", "RAY_ADDRESS 10.0.0.2:6379", "(10.0.0.1:6379)"],
        id="engine-ray-address",
    ),
    pytest.param(
        "node0/lanes.d/stable.toml",
        'VLLM_HOST_IP = "10.0.0.1"',
        'VLLM_HOST_IP = "10.0.0.2"',
        "node0/lanes.d/stable.toml",
        "lane.env.VLLM_HOST_IP",
        ["[node0]", "VLLM_HOST_IP 10.0.0.2 is not the Ray head's address 10.0.0.1"],
        id="engine-vllm-host-ip",
    ),
    pytest.param(
        "node0/lanes.d/stable.toml",
        'HCCL_IF_IP = "10.0.0.1"',
        'HCCL_IF_IP = "10.0.0.2"',
        "node0/lanes.d/stable.toml",
        "lane.env.HCCL_IF_IP",
        ["[node0]", "HCCL_IF_IP 10.0.0.2"],
        id="engine-hccl-if-ip",
    ),
    pytest.param(
        "node1/lanes.d/ray.toml",
        '"ray", "start", "--block",',
        '"qwend-sim", "serve", "--headless",',
        "node1/lanes.d/ray.toml",
        "lane.command",
        ["[node1]", "the other members run ray start, this one 'qwend-sim'"],
        id="a-member-that-is-no-ray-node",
    ),
]


@pytest.mark.parametrize(("edit", "old", "new", "file", "key", "words"), SEEDED)
def test_each_seeded_inconsistency_is_caught_precisely(
    tmp_path: Path, edit: str, old: str, new: str, file: str, key: str, words: list[str]
) -> None:
    dirs = _render(tmp_path)
    _edit(tmp_path / edit, old, new)
    check = check_cluster(dirs)
    assert all(h.ok for h in check.hosts), [h.issues for h in check.hosts]
    assert check.cross is not None and not check.ok
    (issue,) = check.cross.issues
    assert issue.file == str(tmp_path / file)
    assert issue.key == key
    for word in words:
        assert word in issue.message, (word, issue.message)


def test_the_head_address_comes_from_the_cluster_address_without_node_ip(tmp_path: Path) -> None:
    """Without --node-ip-address the head is known by its host's cluster address."""
    dirs = _render(tmp_path)
    _edit(tmp_path / "node0/lanes.d/ray.toml", '"--node-ip-address", "10.0.0.1",', "")
    assert check_cluster(dirs).ok
    _edit(tmp_path / "node1/lanes.d/ray.toml", "10.0.0.1:6379", "10.0.0.3:6379")
    cross = check_cluster(dirs).cross
    assert cross is not None
    (issue,) = cross.issues
    assert "the [cluster] listen and peers' urls of node0" in issue.message


def test_a_head_moved_to_another_port_is_named_where_the_others_join_it(
    tmp_path: Path,
) -> None:
    dirs = _render(tmp_path)
    _edit(tmp_path / "node0/lanes.d/ray.toml", '"--port", "6379",', '"--port", "6380",')
    cross = check_cluster(dirs).cross
    assert cross is not None
    found = {(i.file, i.key): i.message for i in cross.issues}
    assert list(found) == [
        (str(tmp_path / "node1/lanes.d/ray.toml"), "lane.command --address"),
        (str(tmp_path / "node0/lanes.d/stable.toml"), "lane.env.RAY_ADDRESS"),
    ]
    worker, engine = found.values()
    assert "listens on port 6380 (its --port); join 10.0.0.1:6380" in worker
    assert "RAY_ADDRESS 10.0.0.1:6379 is not the Ray head" in engine and "10.0.0.1:6380" in engine


def test_a_head_nobody_states_the_address_of_is_a_warning(tmp_path: Path) -> None:
    dirs = _render(tmp_path)
    _edit(tmp_path / "node0/lanes.d/ray.toml", '"--node-ip-address", "10.0.0.1",', "")
    configs = [load_config(d / "qwend.toml") for d in dirs]
    report = Report()
    # No host address known (no listener, no peer url): compared with nothing, said so.
    check_ray({c.cluster.name: Host(c.cluster.name, c) for c in configs}, {}, report)
    assert report.issues == []
    (warning,) = report.warnings
    assert warning.startswith("node1: lane ray joins the Ray head at 10.0.0.1")
    assert "node0's address is stated nowhere" in warning


def test_check_config_cluster_prints_a_ray_mistake(tmp_path: Path) -> None:
    dirs = [str(d) for d in _render(tmp_path)]
    out, err = io.StringIO(), io.StringIO()
    assert check_main(["--cluster", *dirs], stdout=out, stderr=err) == ExitStatus.OK
    assert "cluster: 2 hosts agree" in out.getvalue() and err.getvalue() == ""
    _edit(tmp_path / "node1/lanes.d/ray.toml", "10.0.0.1:6379", "10.0.0.1:6000")
    out, err = io.StringIO(), io.StringIO()
    assert check_main(["--cluster", *dirs], stdout=out, stderr=err) == ExitStatus.CONFIG
    line = f"{tmp_path}/node1/lanes.d/ray.toml: lane.command --address: [node1]"
    assert line in err.getvalue()


def test_an_engine_of_another_kind_is_not_held_to_vllms_sizes(tmp_path: Path) -> None:
    dirs = _render(tmp_path)
    engine = tmp_path / "node0/lanes.d/stable.toml"
    _edit(engine, '"vllm", "serve",', '"my-engine", "serve",')
    _edit(engine, '"--distributed-executor-backend", "ray",', "")
    _edit(engine, '"--pipeline-parallel-size", "2"', '"--pipeline-parallel-size", "3"')
    assert check_cluster(dirs).ok
    # Its environment still has to point at the head.
    _edit(engine, 'VLLM_HOST_IP = "10.0.0.1"', 'VLLM_HOST_IP = "10.0.0.2"')
    cross = check_cluster(dirs).cross
    assert cross is not None and [i.key for i in cross.issues] == ["lane.env.VLLM_HOST_IP"]


def test_the_simulators_engine_is_held_to_the_sizes(tmp_path: Path) -> None:
    dirs = _render(tmp_path)
    engine = tmp_path / "node0/lanes.d/stable.toml"
    _edit(engine, '"vllm", "serve",', '"qwend-sim", "serve",')
    assert check_cluster(dirs).ok
    _edit(engine, '"--tensor-parallel-size", "16"', '"--tensor-parallel-size", "8"')
    cross = check_cluster(dirs).cross
    assert cross is not None
    (issue,) = cross.issues
    assert "8 x pipeline-parallel-size 2 = 16 NPUs" in issue.message
