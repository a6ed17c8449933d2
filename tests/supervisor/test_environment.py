"""Ascend environment defaults for lanes, by chip family."""

from __future__ import annotations

import pytest

from qwend.npu.parse import parse_info
from qwend.supervisor.environment import FAMILIES, family_of, lane_env_defaults, merged_lane_env
from tests.support.paths import NPU_SMI_FIXTURES

FIXTURES = NPU_SMI_FIXTURES


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("910A", "910A"),
        ("Ascend 910A", "910A"),
        ("910", "910A"),
        ("910PremiumA", "910A"),
        ("910ProB", "910A"),
        ("910B", "910B"),  # the family name, though some 24.x drivers print it for the old 910
        ("910B1", "910B"),
        ("910B4", "910B"),
        ("910B2C", "910B"),
        ("A2", "910B"),
        ("Ascend910", "A3"),
        ("Ascend910_93", "A3"),
        ("910C", "A3"),
        ("Ascend950DT", "A5"),
        ("310P3", "310P"),
        ("Ascend 310P", "310P"),
        ("310B1", "310B"),
        ("310", "310"),
        ("MiniD", None),
        ("xxx", None),
        ("", None),
        (None, None),
    ],
)
def test_family_of(name: str | None, family: str | None) -> None:
    assert family_of(name) == family
    if family is not None:
        assert family in FAMILIES
        assert family_of(family) == family


def test_single_npu_910a_lane() -> None:
    env = lane_env_defaults([3], "910A")
    assert env == {
        "PYTORCH_NPU_ALLOC_CONF": "expandable_segments:True",
        "TASK_QUEUE_ENABLE": "1",
        "OMP_PROC_BIND": "false",
        "OMP_NUM_THREADS": "1",
    }


def test_multi_npu_lanes_get_hccl_settings() -> None:
    a2 = lane_env_defaults([0, 1, 2, 3], "910B")
    assert a2["HCCL_BUFFSIZE"] == "512"
    assert a2["HCCL_OP_EXPANSION_MODE"] == "AIV"
    assert a2["HCCL_CONNECT_TIMEOUT"] == "1200"
    a3 = lane_env_defaults(range(16), "Ascend910")  # a chip name works too
    assert a3["HCCL_OP_EXPANSION_MODE"] == "AIV"
    old = lane_env_defaults([0, 1], "910A")
    assert old["HCCL_BUFFSIZE"] == "512"
    assert "HCCL_OP_EXPANSION_MODE" not in old  # AIV expansion is A2/A3 only
    single = lane_env_defaults([5], "910B")
    assert not any(k.startswith("HCCL_") for k in single)


def test_inference_cards_and_unknown_get_only_thread_settings() -> None:
    for family in ("310P", "310", "310B", None, "something"):
        assert lane_env_defaults([0, 1], family) == {
            "OMP_PROC_BIND": "false",
            "OMP_NUM_THREADS": "1",
        }


def test_defaults_do_not_set_visible_devices() -> None:
    assert "ASCEND_RT_VISIBLE_DEVICES" not in lane_env_defaults([0, 1], "910B")


def test_merge_order_inherited_defaults_lane() -> None:
    env = merged_lane_env(
        {"PATH": "/usr/bin", "OMP_NUM_THREADS": "64", "TASK_QUEUE_ENABLE": "2"},
        [0, 1],
        "910B",
        {"HCCL_BUFFSIZE": "1024", "TASK_QUEUE_ENABLE": "0"},
    )
    assert env["PATH"] == "/usr/bin"
    assert env["OMP_NUM_THREADS"] == "1"  # default beats inherited
    assert env["HCCL_BUFFSIZE"] == "1024"  # lane beats default
    assert env["TASK_QUEUE_ENABLE"] == "0"


def test_family_from_every_fixture_table() -> None:
    expected = {
        "910a-info-8npu-npu22.0.3.1-huaweidoc.txt": "910A",
        "910a-info-8npu-name910B-npu24.1.0.txt": "910B",  # ambiguous name; see family_of
        "910b3-info-8npu-1proc-noname-npu25.2.0.txt": "910B",
        "910b2c-info-16npu-npu24.1.0-noproctable.txt": "910B",
        "a3-ascend910-info-8npu-16chip-idle-npu24.1.rc3.7.txt": "A3",
        "a5-ascend950dt-info-8npu-warning-idle-npu26.2.0.b007.txt": "A5",
        "310p3-info-1chip-idle-npu25.3.rc1.txt": "310P",
        "310b1-info-1chip-busid-NA-npu23.0.rc3.txt": "310B",
        "310-info-1chip-idle-npu23.0.0.txt": "310",
    }
    for name, family in expected.items():
        reading = parse_info((FIXTURES / name).read_text())
        assert family_of(reading.npus[0].name) == family, name
