"""``--kv-transfer-config`` in a vLLM lane's command agrees with ``lane.kv_role``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwend.config.kvconfig import engine_kv_role, kv_role_problem
from qwend.config.load import check_config
from qwend.config.model import KvRole
from tests.support.config_fixtures import lane, valid_lanes, valid_main, write_config

VLLM = ["vllm", "serve", "/data/m", "--served-model-name", "{model}", "--port", "{port}"]


def connector(role: str) -> str:
    return json.dumps({"kv_connector": "MooncakeConnectorV1", "kv_role": role, "kv_port": "23010"})


@pytest.mark.parametrize(
    ("args", "found"),
    [
        ([], (None, None)),
        (["--kv-transfer-config", connector("kv_producer")], ("kv_producer", None)),
        ([f"--kv_transfer_config={connector('kv_consumer')}"], ("kv_consumer", None)),
        (["--kv-transfer-config", connector("kv_both")], ("kv_both", None)),
    ],
)
def test_engine_role_from_argv(args: list[str], found: tuple[str | None, str | None]) -> None:
    assert engine_kv_role([*VLLM, *args]) == found


def test_non_vllm_commands_are_not_read() -> None:
    argv = ["qwend-sim", "serve", "--kv-role", "prefill", "--kv-transfer-config", "{"]
    assert engine_kv_role(argv) == (None, None)
    assert kv_role_problem(argv, KvRole.DECODE) is None


def test_bad_connector_json_is_named() -> None:
    role, problem = engine_kv_role([*VLLM, "--kv-transfer-config", "{'kv_role': 1}"])
    assert role is None and problem is not None
    assert problem.startswith("--kv-transfer-config is not valid JSON")
    role, problem = engine_kv_role([*VLLM, "--kv-transfer-config", '{"kv_role": "prefill"}'])
    assert problem == (
        "--kv-transfer-config has kv_role 'prefill'; vLLM expects one of "
        "kv_producer, kv_consumer, kv_both"
    )


@pytest.mark.parametrize(
    ("engine", "kv_role", "ok"),
    [
        ("kv_producer", KvRole.PREFILL, True),
        ("kv_consumer", KvRole.DECODE, True),
        ("kv_both", KvRole.PREFILL, True),
        ("kv_both", KvRole.DECODE, True),
        ("kv_both", None, True),
        ("kv_producer", KvRole.DECODE, False),
        ("kv_consumer", KvRole.PREFILL, False),
        ("kv_producer", None, False),
        ("kv_consumer", None, False),
    ],
)
def test_agreement(engine: str, kv_role: KvRole | None, ok: bool) -> None:
    problem = kv_role_problem([*VLLM, "--kv-transfer-config", connector(engine)], kv_role)
    assert (problem is None) is ok
    if problem is not None:
        assert problem[0] == "lane.kv_role" and engine in problem[1]


def test_kv_role_without_a_connector_is_refused_for_vllm() -> None:
    problem = kv_role_problem(VLLM, KvRole.PREFILL)
    assert problem is not None and problem[0] == "lane.kv_role"
    assert "no --kv-transfer-config" in problem[1] and "kv_producer" in problem[1]


def _issues(tmp_path: Path, lanes: dict[str, dict[str, object]]) -> list[tuple[str, str, str]]:
    check = check_config(write_config(tmp_path, valid_main(), lanes))
    return [(i.file, i.key, i.message) for i in check.issues]


def test_check_config_names_file_and_key(tmp_path: Path) -> None:
    lanes = valid_lanes()
    command = [*VLLM, "-tp", "2", "--kv-transfer-config", connector("kv_consumer")]
    lanes["lanes.d/throughput.toml"] = lane(
        "throughput", "v", [2, 3], 18087, command=command, kv_role="prefill"
    )
    assert _issues(tmp_path, lanes) == [
        (
            "lanes.d/throughput.toml",
            "lane.kv_role",
            'kv_role = "prefill" but the command\'s --kv-transfer-config has kv_role '
            "'kv_consumer'; make them agree (kv_role \"decode\", or 'kv_producer' in the "
            "connector's JSON)",
        )
    ]
    lanes["lanes.d/throughput.toml"] = lane(
        "throughput", "v", [2, 3], 18087, command=command, kv_role="decode"
    )
    assert _issues(tmp_path, lanes) == []
