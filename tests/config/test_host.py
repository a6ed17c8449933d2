"""Warnings for lanes on NPUs the host's npu-smi does not list (pure)."""

from __future__ import annotations

import pytest

from qwend.config.host import npus_beyond_host
from qwend.config.model import Config, LaneConfig


def _config(*npus: tuple[int, ...]) -> Config:
    lanes = tuple(
        LaneConfig(f"l{i}", f"r{i}", "v", n, 18000 + i, "m", ("x",)) for i, n in enumerate(npus)
    )
    return Config(lanes=lanes)


@pytest.mark.parametrize(
    ("npus", "devices", "warnings"),
    [
        ([(0,), (7,)], 8, []),
        (
            [(0, 1), (7, 8, 9)],
            8,
            ["lane l1 (l1): NPU 8, 9 not on this host: npu-smi lists 8 devices (0-7)"],
        ),
        ([(1,)], 1, ["lane l0 (l0): NPU 1 not on this host: npu-smi lists 1 device (0-0)"]),
        ([(0,)], 0, ["lane l0 (l0): npu-smi lists no NPU on this host"]),
    ],
)
def test_npus_beyond_host(npus: list[tuple[int, ...]], devices: int, warnings: list[str]) -> None:
    assert npus_beyond_host(_config(*npus), devices) == warnings
