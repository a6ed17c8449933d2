"""check-config runs the configured npu-smi once: warnings for missing NPUs, else a note."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from qwend.config.check import render_check
from qwend.config.load import check_config
from qwend.config.presets import find_preset
from qwend.daemon.check_config import main as qwend_check_config
from qwend.npu.hostcheck import host_devices, with_host_check

pytestmark = pytest.mark.integration

SIM_NPU_SMI = f"{Path(sys.executable).with_name('qwend-sim')} npu-smi"


def _preset_on_sim_host(tmp_path: Path, name: str) -> Path:
    """A preset whose monitor runs the simulator's npu-smi (eight 910A NPUs)."""
    preset = find_preset(name)
    shutil.copytree(preset.path, tmp_path, dirs_exist_ok=True)
    main = tmp_path / "qwend.toml"
    main.write_text(
        main.read_text().replace('"/usr/local/sbin/npu-smi"', f'"{SIM_NPU_SMI}"'), "utf-8"
    )
    return main


def test_sim_host_has_eight_devices() -> None:
    assert host_devices(SIM_NPU_SMI, 10) == (8, "")


def test_a_preset_for_a_bigger_host_warns_but_stays_valid(tmp_path: Path) -> None:
    main = _preset_on_sim_host(tmp_path, "a3-qwen3.5-397b-a17b-w8a8")
    check = with_host_check(check_config(main))
    assert check.ok
    assert check.warnings == (
        "lane stable (stable.toml): NPU 8, 9, 10, 11, 12, 13, 14, 15 not on this host:"
        " npu-smi lists 8 devices (0-7)",
    )
    assert render_check(check).endswith("\nwarning: " + check.warnings[0])
    assert qwend_check_config([str(main)]) == 0


def test_a_preset_that_fits_has_no_warning(tmp_path: Path) -> None:
    main = _preset_on_sim_host(tmp_path, "a2-qwen3.5-27b-w8a8-mtp")
    check = with_host_check(check_config(main))
    assert check.ok and check.warnings == () and check.notes == ()


def test_without_npu_smi_the_check_is_skipped_with_a_note(tmp_path: Path) -> None:
    main = _preset_on_sim_host(tmp_path, "a2-qwen3.5-27b-w8a8-mtp")
    main.write_text(main.read_text().replace(SIM_NPU_SMI, "/nonexistent/npu-smi"), "utf-8")
    check = with_host_check(check_config(main))
    assert check.ok and check.warnings == ()
    assert check.notes == (
        '"/nonexistent/npu-smi" not found: NPU numbers not checked against this host',
    )
