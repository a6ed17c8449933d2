"""Shipped presets: each passes check-config, and ``qwenctl init`` copies one safely."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from qwend.cli.exit import ExitStatus
from qwend.cli.main import main
from qwend.config.load import check_config, load_config
from qwend.config.parallel import vllm_layout
from qwend.config.presets import find_preset, list_presets, presets_root
from tests.support.paths import REPO

PRESETS = list_presets()
NAMES = [p.name for p in PRESETS]


def test_presets_are_the_recipes_and_the_seed() -> None:
    assert NAMES == [
        "910a-qwen3.5-9b",
        "a2-qwen3.5-27b-w8a8-mtp",
        "a2-qwen3.6-27b-w8a8-long",
        "a3-qwen3.5-27b-w8a8-mtp",
        "a3-qwen3.5-397b-a17b-w8a8",
    ]
    # etc/qwend/presets is the package data seen from the config tree.
    assert (REPO / "etc" / "qwend" / "presets").resolve() == presets_root().resolve()
    assert all(p.summary for p in PRESETS)


@pytest.mark.parametrize("name", NAMES)
def test_every_preset_passes_check_config(name: str) -> None:
    check = check_config(find_preset(name).path)
    assert check.ok, check.issues


@pytest.mark.parametrize("name", [n for n in NAMES if not n.startswith("910a")])
def test_vllm_presets_keep_the_recipes_flags_and_environment(name: str) -> None:
    config = load_config(find_preset(name).path / "qwend.toml")
    for lane in config.lanes:
        argv = lane.argv()
        layout, problems = vllm_layout(argv)
        assert layout is not None and not problems
        assert layout.npus == len(lane.npus)
        for flag in ("--quantization", "--speculative-config", "--compilation-config"):
            assert flag in argv, (lane.name, flag)
        assert json.loads(argv[argv.index("--speculative-config") + 1])["method"] == "qwen3_5_mtp"
        # vLLM serves the name the router rewrites requests to, and the context it lists.
        assert argv[argv.index("--served-model-name") + 1] == lane.backend_model
        assert argv[argv.index("--max-model-len") + 1] == str(lane.max_model_len)
        for key in (
            "PYTORCH_NPU_ALLOC_CONF",
            "HCCL_BUFFSIZE",
            "TASK_QUEUE_ENABLE",
            "OMP_NUM_THREADS",
        ):
            assert key in lane.env, (lane.name, key)


def test_the_910a_preset_is_the_shipped_configuration() -> None:
    preset = find_preset("910a-qwen3.5-9b")
    shipped = REPO / "etc" / "qwend" / "lanes.d"
    assert sorted(p.name for p in shipped.glob("*.toml")) == sorted(
        p.name for p in (preset.path / "lanes.d").glob("*.toml")
    )
    for file in shipped.glob("*.toml"):
        assert (preset.path / "lanes.d" / file.name).read_text() == file.read_text(), file.name
    assert check_config(preset.path).config is not None


def _qwenctl(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), env={}, stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_init_lists_the_presets() -> None:
    multi = ["qwen3.5-397b-a17b-1p2d", "qwen3.5-397b-a17b-dp-2node", "qwen3.5-397b-a17b-ray-2node"]
    status, out, _ = _qwenctl("init", "--list")
    assert status == ExitStatus.OK
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [row[0] for row in rows] == [*NAMES, *multi]
    # Single-host presets say 1 host; multi-host ones count and name their hosts.
    assert all(row[1] == "1" for row in rows[: len(NAMES)])
    assert rows[-1][1:4] == ["2:", "node0,", "node1"]
    status, out, _ = _qwenctl("--json", "init", "--list")
    listed = json.loads(out)["presets"]
    assert [p["name"] for p in listed] == [*NAMES, *multi]
    assert listed[-3]["hosts"] == ["prefill", "decode0", "decode1"]


def test_init_copies_a_preset_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "etc-qwend"
    status, out, err = _qwenctl("init", "--preset", "a2-qwen3.5-27b-w8a8-mtp", "--dir", str(target))
    assert status == ExitStatus.OK, err
    assert check_config(target).ok
    preset = find_preset("a2-qwen3.5-27b-w8a8-mtp")
    for relative in preset.files:
        assert (target / relative).read_bytes() == (preset.path / relative).read_bytes()
        assert str(target / relative) in out
    # A second run would overwrite: refused, nothing touched.
    (target / "qwend.toml").write_text("# mine\n")
    status, _, err = _qwenctl("init", "--preset", "a2-qwen3.5-27b-w8a8-mtp", "--dir", str(target))
    assert status == ExitStatus.CONFLICT
    assert "would overwrite" in err and "--force" in err
    assert (target / "qwend.toml").read_text() == "# mine\n"
    # --force replaces; a lane file of another configuration is left and named.
    (target / "lanes.d" / "old.toml").write_text("# old\n")
    status, out, _ = _qwenctl(
        "init", "--preset", "a2-qwen3.5-27b-w8a8-mtp", "--dir", str(target), "--force"
    )
    assert status == ExitStatus.OK
    assert (target / "qwend.toml").read_bytes() == (preset.path / "qwend.toml").read_bytes()
    assert str(target / "lanes.d" / "old.toml") in out and "still loaded" in out


def test_init_of_an_unknown_preset_lists_the_known_ones(tmp_path: Path) -> None:
    status, _, err = _qwenctl("init", "--preset", "nope", "--dir", str(tmp_path))
    assert status == ExitStatus.NOT_FOUND
    assert 'no preset "nope"' in err and "a3-qwen3.5-397b-a17b-w8a8" in err
    assert list(tmp_path.iterdir()) == []
    status, _, err = _qwenctl("init", "--dir", str(tmp_path))
    assert status == ExitStatus.USAGE and "--preset" in err
