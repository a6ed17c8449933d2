"""A lane's NPU layout and side ports read from its argv, and the checks built on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwend.config.load import check_config
from qwend.config.parallel import ParallelLayout, SidePort, side_ports, vllm_layout
from tests.support.config_fixtures import lane, set_key, valid_lanes, valid_main, write_config

VLLM = ["vllm", "serve", "/data/m", "--served-model-name", "{model}", "--port", "{port}"]


@pytest.mark.parametrize(
    ("args", "layout"),
    [
        ([], ParallelLayout()),
        (["--tensor-parallel-size", "2"], ParallelLayout(tensor=2)),
        (["-tp", "4", "-dp", "2"], ParallelLayout(tensor=4, data=2)),
        (["--tensor_parallel_size=8"], ParallelLayout(tensor=8)),
        # The last occurrence wins, as in argparse.
        (["-tp", "2", "--tensor-parallel-size", "4"], ParallelLayout(tensor=4)),
        (["-pp", "2", "-tp", "2"], ParallelLayout(tensor=2, pipeline=2)),
        (
            ["-dp", "2", "--data-parallel-size-local", "1", "-tp", "8", "--enable-expert-parallel"],
            ParallelLayout(tensor=8, data=2, data_local=1, expert=True),
        ),
        (["--enable-expert-parallel", "--no-enable-expert-parallel"], ParallelLayout()),
        (["-tp", "2", "-pcp", "2"], ParallelLayout(tensor=2, prefill_context=2)),
    ],
)
def test_vllm_layout_from_argv(args: list[str], layout: ParallelLayout) -> None:
    assert vllm_layout([*VLLM, *args]) == (layout, [])


@pytest.mark.parametrize(
    ("layout", "npus", "text"),
    [
        (ParallelLayout(), 1, "tensor 1 x data 1 = 1 NPU"),
        (ParallelLayout(tensor=2, data=2), 4, "tensor 2 x data 2 = 4 NPUs"),
        (
            ParallelLayout(tensor=8, data=2, data_local=1, expert=True),
            8,
            "tensor 8 x data 1 local (of 2) = 8 NPUs (expert parallel over the same ranks)",
        ),
        (ParallelLayout(tensor=2, pipeline=2), 4, "tensor 2 x pipeline 2 x data 1 = 4 NPUs"),
        (
            ParallelLayout(tensor=2, prefill_context=2),
            4,
            "tensor 2 x prefill context 2 x data 1 = 4 NPUs",
        ),
    ],
)
def test_layout_counts_npus_and_says_how(layout: ParallelLayout, npus: int, text: str) -> None:
    assert layout.npus == npus
    assert layout.describe() == text


def test_other_backends_have_no_vllm_layout() -> None:
    for argv in (
        ["transformers", "serve", "/m", "--port", "{port}", "--tensor-parallel-size", "2"],
        ["llama-server", "-m", "/m.gguf", "--port", "{port}"],
    ):
        assert vllm_layout(argv) == (None, [])
    module = ["python", "-m", "vllm.entrypoints.openai.api_server", "-tp", "2"]
    assert vllm_layout(module) == (ParallelLayout(tensor=2), [])


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["-tp", "two"], "--tensor-parallel-size must be a whole number >= 1, got 'two'"),
        (["-dp", "0"], "--data-parallel-size must be a whole number >= 1, got '0'"),
        (
            ["-dp", "2", "-dpl", "4"],
            "--data-parallel-size-local 4 exceeds --data-parallel-size 2",
        ),
    ],
)
def test_bad_sizes_are_named(args: list[str], problem: str) -> None:
    assert vllm_layout([*VLLM, *args])[1] == [problem]


@pytest.mark.parametrize(
    ("args", "env", "ports"),
    [
        ([], {}, []),
        # A DP RPC port is used only with data parallelism; vLLM's default counts then.
        (["-dp", "2"], {}, [SidePort("--data-parallel-rpc-port (vLLM's default)", 29550, 29550)]),
        (
            ["--data-parallel-rpc-port=13389"],
            {},
            [SidePort("--data-parallel-rpc-port", 13389, 13389)],
        ),
        (["--master-port", "29600"], {}, [SidePort("--master-port", 29600, 29600)]),
        ([], {"HCCL_IF_BASE_PORT": "61000"}, [SidePort("env HCCL_IF_BASE_PORT", 61000, 61015)]),
        (
            [],
            {"HCCL_HOST_SOCKET_PORT_RANGE": "60000-60050", "MASTER_PORT": "29500"},
            [
                SidePort("env MASTER_PORT", 29500, 29500),
                SidePort("env HCCL_HOST_SOCKET_PORT_RANGE", 60000, 60050),
            ],
        ),
        ([], {"HCCL_NPU_SOCKET_PORT_RANGE": "auto"}, []),
    ],
)
def test_side_ports(args: list[str], env: dict[str, str], ports: list[SidePort]) -> None:
    assert side_ports([*VLLM, *args], env) == (ports, [])


def test_unreadable_side_ports_are_named() -> None:
    ports, problems = side_ports(["transformers", "serve"], {"HCCL_IF_BASE_PORT": "high"})
    assert ports == []
    assert problems == ["env HCCL_IF_BASE_PORT must be a port or FIRST-LAST, got 'high'"]
    _, problems = side_ports(VLLM, {"MASTER_PORT": "70000"})
    assert problems == ["env MASTER_PORT must name ports in 1-65535, got '70000'"]


def _vllm_lane(
    role: str, npus: list[int], port: int, *args: str, **extra: object
) -> dict[str, object]:
    return lane(role, "v", npus, port, command=[*VLLM, *args], **extra)


def _issues(tmp_path: Path, lanes: dict[str, dict[str, object]]) -> list[tuple[str, str, str]]:
    check = check_config(write_config(tmp_path, valid_main(), lanes))
    return [(i.file, i.key, i.message) for i in check.issues]


def test_parallel_size_must_match_npus(tmp_path: Path) -> None:
    lanes = valid_lanes()
    lanes["lanes.d/throughput.toml"] = _vllm_lane("throughput", [2, 3, 5], 18087, "-tp", "2")
    assert _issues(tmp_path, lanes) == [
        (
            "lanes.d/throughput.toml",
            "lane.npus",
            "the command runs tensor 2 x data 1 = 2 NPUs, but npus lists 3 (2, 3, 5);"
            " list 2 NPUs or change the parallel sizes",
        )
    ]
    lanes["lanes.d/throughput.toml"] = _vllm_lane("throughput", [2, 3], 18087, "-tp", "2")
    assert _issues(tmp_path, lanes) == []


def test_side_ports_of_lanes_running_together_must_not_collide(tmp_path: Path) -> None:
    lanes = valid_lanes()
    lanes["lanes.d/throughput.toml"] = _vllm_lane(
        "throughput", [0, 1], 18087, "-dp", "2", env={"HCCL_IF_BASE_PORT": "61000"}
    )
    lanes["lanes.d/zz.toml"] = _vllm_lane(
        "throughput", [5, 6], 18085, "-dp", "2", standby=True, env={"HCCL_IF_BASE_PORT": "61010"}
    )
    issues = _issues(tmp_path, lanes)
    assert [(f, k) for f, k, _ in issues] == [("lanes.d/zz.toml", "lane.command")] * 2
    assert issues[0][2] == (
        "side port 29550 (--data-parallel-rpc-port (vLLM's default)) collides with lane"
        " throughput (lanes.d/throughput.toml): 29550 (--data-parallel-rpc-port (vLLM's"
        " default)); lanes running at the same time need their own ports on this host"
    )
    assert "61010-61025 (env HCCL_IF_BASE_PORT)" in issues[1][2]
    assert "61000-61015 (env HCCL_IF_BASE_PORT)" in issues[1][2]
    # Own ports for each: valid.
    set_key(lanes["lanes.d/zz.toml"], "lane.command", [*VLLM, "-dp", "2", "-dpp", "13390"])
    set_key(lanes["lanes.d/zz.toml"], "lane.env", {"HCCL_IF_BASE_PORT": "61016"})
    assert _issues(tmp_path, lanes) == []


def test_an_in_place_candidate_may_reuse_its_incumbents_side_ports(tmp_path: Path) -> None:
    lanes = valid_lanes()
    env = {"HCCL_IF_BASE_PORT": "61000"}
    lanes["lanes.d/stable.toml"] = _vllm_lane("stable", [4], 18084, "-dp", "1", env=env)
    lanes["lanes.d/recurrent_v2.toml"] = _vllm_lane("stable", [4], 18084, standby=True, env=env)
    assert _issues(tmp_path, lanes) == []


def test_a_side_port_on_a_lane_port_is_refused(tmp_path: Path) -> None:
    lanes = valid_lanes()
    lanes["lanes.d/throughput.toml"] = _vllm_lane(
        "throughput", [3], 18087, "--master-port", "18083"
    )
    assert _issues(tmp_path, lanes) == [
        (
            "lanes.d/throughput.toml",
            "lane.command",
            "side port 18083 (--master-port) collides with lane mm (lanes.d/mm.toml):"
            " 18083 (its port); lanes running at the same time need their own ports on this host",
        )
    ]
    lanes["lanes.d/throughput.toml"] = _vllm_lane(
        "throughput", [3], 18087, "--master-port", "18087"
    )
    assert _issues(tmp_path, lanes) == [
        (
            "lanes.d/throughput.toml",
            "lane.command",
            "side port 18087 (--master-port) includes the lane's own port 18087; pick another",
        )
    ]
