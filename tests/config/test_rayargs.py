"""``ray start`` command lines read as Ray's click command reads them."""

from __future__ import annotations

import pytest

from qwend.config.rayargs import (
    RAY_HEAD_PORT_DEFAULT,
    RayStart,
    is_ray_start,
    parse_ray_start,
    ray_start_args,
)


def test_the_recipes_head_and_worker() -> None:
    head = parse_ray_start(["ray", "start", "--head", "--num-gpus=8", "--block"])
    assert head == RayStart(head=True, block=True, num_gpus=8)
    assert head.port == RAY_HEAD_PORT_DEFAULT == 6379 and not head.port_given
    assert head.declared_npus == (8, "--num-gpus")
    worker = parse_ray_start(
        [
            "/usr/local/bin/ray", "start", "--block", "--address=10.0.0.1:6379",
            "--num-gpus", "8", "--node-ip-address", "10.0.0.2",
        ]
    )  # fmt: skip
    assert worker is not None and not worker.head and worker.block
    assert worker.address == "10.0.0.1:6379" and worker.node_ip == "10.0.0.2"
    assert worker.join_address() == ("10.0.0.1", 6379)


def test_the_simulators_ray_mode_is_read_alike() -> None:
    argv = ["qwend-sim", "ray", "start", "--head", "--block", "--port", "24601"]
    assert ray_start_args(argv) == ["--head", "--block", "--port", "24601"]
    ray = parse_ray_start(argv)
    assert ray is not None and ray.head and ray.port == 24601 and ray.port_given


@pytest.mark.parametrize(
    "argv",
    [
        ["vllm", "serve", "m"],
        ["ray", "stop"],
        ["qwend-sim", "serve", "--port", "1"],
        ["python", "-m", "ray", "start"],  # an option before "ray": not the ray program
        ["ray"],
        [],
    ],
)
def test_other_commands_are_no_ray_node(argv: list[str]) -> None:
    assert not is_ray_start(argv) and parse_ray_start(argv) is None


def test_the_last_occurrence_wins_and_values_are_taken_whole() -> None:
    ray = parse_ray_start(["ray", "start", "--port=1", "--port", "7000", "--address", "--head"])
    # click gives --address the next word, whatever it looks like: "--head" is its value.
    assert ray is not None and ray.port == 7000 and ray.address == "--head" and not ray.head


def test_npus_declared_as_the_npu_resource() -> None:
    ray = parse_ray_start(["ray", "start", "--resources", '{"NPU": 16, "x": 1}'])
    assert ray is not None and ray.declared_npus == (16, '--resources "NPU"')
    both = parse_ray_start(["ray", "start", '--resources={"NPU": 4}', "--num-gpus=2"])
    assert both is not None and both.declared_npus == (2, "--num-gpus")
    neither = parse_ray_start(["ray", "start", "--resources", '{"CPU": 4}'])
    assert neither is not None and neither.declared_npus is None


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--port", "sixty"], "--port must be a whole number 1-65535, got 'sixty'"),
        (["--port=70000"], "--port must be a whole number 1-65535"),
        (["--num-gpus", "-1"], "--num-gpus must be a whole number >= 0"),
        (["--resources", "NPU=4"], "--resources must be a JSON object"),
        (["--resources", '{"NPU": "four"}'], '--resources "NPU" must be a number'),
        (["--resources", '{"NPU": 1.5}'], "counts whole NPUs"),
        (["--head=true"], "--head is a flag and takes no value"),
        (["--block", "--address"], "--address needs a value"),
    ],
)
def test_values_ray_refuses_are_problems(args: list[str], words: str) -> None:
    ray = parse_ray_start(["ray", "start", *args])
    assert ray is not None, args
    assert any(words in p for p in ray.problems), ray.problems


def test_join_address_forms() -> None:
    def join(address: str) -> tuple[str, int | None] | None:
        ray = parse_ray_start(["ray", "start", "--address", address])
        assert ray is not None
        return ray.join_address()

    assert join("head.example:6380") == ("head.example", 6380)
    assert join("[fd00::1]:6379") == ("fd00::1", 6379)
    assert join("10.0.0.1") == ("10.0.0.1", None)
    assert parse_ray_start(["ray", "start"]) == RayStart()
    assert RayStart().join_address() is None
