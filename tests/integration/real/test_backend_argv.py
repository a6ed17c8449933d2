"""Every shipped lane file's command parses with its real backend's own argument parser.

check-config knows qwend's keys, not the backend's flags: a flag the backend dropped
(transformers 5.x and ``--force-model``) passes check-config and crash-loops the lane.
Here each shipped lane's argv, placeholders filled, goes through the parser of the
installed backend (``backend_argv.py`` in the provisioned virtualenv).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePath

import pytest

from qwend.config.load import load_config
from qwend.config.model import LaneConfig
from qwend.config.presets import install_cluster_preset, list_cluster_presets, list_presets
from tests.integration.real.backend import cache_dir, parse_with_backend, venv_bin
from tests.support.paths import REPO

pytestmark = pytest.mark.real

CONFIGS = [REPO / "etc" / "qwend" / "qwend.toml", *(p.path / "qwend.toml" for p in list_presets())]


def _cluster_configs(root: Path) -> list[Path]:
    """Every host's qwend.toml of the multi-host presets, filled with documentation
    addresses (192.0.2.0/24) under ``root``."""
    configs = []
    for preset in list_cluster_presets():
        values = {f"nic:{host}": "eth0" for host in preset.hosts}
        values |= {f"address:{h}": f"192.0.2.{i + 10}" for i, h in enumerate(preset.hosts)}
        install_cluster_preset(preset, values, root / preset.name)
        configs += [root / preset.name / host / "qwend.toml" for host in preset.hosts]
    return configs


def _lanes(backend: str, extra: Sequence[Path] = ()) -> list[tuple[str, LaneConfig]]:
    found = []
    for config in [*CONFIGS, *extra]:
        for lane in load_config(config).lanes:
            if lane.is_remote:
                continue  # no command: another host runs it
            program = PurePath(lane.command[0]).name
            if program == backend:
                found.append((f"{config.parent.name}/{lane.name}", lane))
    return found


def test_shipped_transformers_lanes_parse_with_transformers_serve() -> None:
    lanes = _lanes("transformers")
    assert len(lanes) >= 10  # the shipped 910A lanes and the 910A preset's
    argvs = [["transformers", *lane.argv()[1:]] for _, lane in lanes]
    results = parse_with_backend(venv_bin("python"), "transformers", argvs)
    bad = {name: r["error"] for (name, _), r in zip(lanes, results, strict=True) if not r["ok"]}
    assert bad == {}


def test_the_vllm_check_rejects_what_vllm_rejects() -> None:
    vllm_python = cache_dir() / "vllm-venv" / "bin" / "python"
    if not vllm_python.exists():
        pytest.skip(f"vLLM for CPU is not provisioned ({vllm_python}): make real-vllm")
    argvs = [
        ["vllm", "serve", "/m", "--tensor-parallel-size", "two"],
        ["vllm", "serve", "/m", "--force-model", "/m"],
        ["vllm", "serve", "/m", "-tp", "2", "--served-model-name", "qwen3.5"],
    ]
    results = parse_with_backend(vllm_python, "vllm", argvs)
    assert [r["ok"] for r in results] == [False, False, True]
    assert "--tensor-parallel-size" in str(results[0]["error"])


def test_the_transformers_check_rejects_what_transformers_rejects() -> None:
    """The check can fail: the old --force-model spelling and a mistyped value are refused."""
    model = "/data/models/Qwen3.5-9B"
    argvs = [
        ["transformers", "serve", "--force-model", model, "--port", "18084"],
        ["transformers", "serve", model, "--port", "eighteen"],
        ["transformers", "serve", model, "--port", "18084", "--device", "npu:0"],
    ]
    results = parse_with_backend(venv_bin("python"), "transformers", argvs)
    assert [r["ok"] for r in results] == [False, False, True]
    assert "--force-model" in str(results[0]["error"])


def test_vllm_lanes_parse_with_vllm_serve(tmp_path: Path) -> None:
    lanes = _lanes("vllm", _cluster_configs(tmp_path))
    # Every lane of the vLLM presets, the multi-host ones' on each host (2 DP, 3 PD).
    assert len(lanes) >= 17
    vllm_python = cache_dir() / "vllm-venv" / "bin" / "python"
    if not vllm_python.exists():  # optional: `make real-vllm` installs it
        pytest.skip(f"vLLM for CPU is not provisioned ({vllm_python}): make real-vllm")
    results = parse_with_backend(vllm_python, "vllm", [lane.argv() for _, lane in lanes])
    bad = {name: r["error"] for (name, _), r in zip(lanes, results, strict=True) if not r["ok"]}
    assert bad == {}
