"""Run npu-smi once for check-config and warn about lanes on NPUs this host lacks.

check-config is a one-shot command: npu-smi runs synchronously, bounded by the monitor's
timeout. No npu-smi (a workstation, CI) is no error: the check is skipped with a note.
"""

from __future__ import annotations

import dataclasses
import subprocess

from qwend.config.check import ConfigCheck
from qwend.config.host import npus_beyond_host
from qwend.errors import NpuSmiError
from qwend.npu.monitor import resolve_command
from qwend.npu.parse import parse_info


def host_devices(npu_smi: str, timeout_s: float) -> tuple[int | None, str]:
    """(devices npu-smi lists, None and why when it could not tell)."""
    argv = resolve_command(npu_smi)
    if argv is None:
        return None, f'"{npu_smi}" not found: NPU numbers not checked against this host'
    try:
        done = subprocess.run(
            [*argv, "info"], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f'"{npu_smi} info" failed ({error}): NPU numbers not checked'
    if done.returncode != 0:
        return None, f'"{npu_smi} info" exited {done.returncode}: NPU numbers not checked'
    try:
        reading = parse_info(done.stdout)
    except NpuSmiError as error:
        return None, f'"{npu_smi} info" unreadable ({error}): NPU numbers not checked'
    return sum(len(npu.chips) for npu in reading.npus), ""


def with_host_check(check: ConfigCheck) -> ConfigCheck:
    """``check`` plus warnings (or a note) from this host's npu-smi, for a valid config."""
    config = check.config
    if config is None or not config.monitor.enabled:
        return check
    devices, note = host_devices(config.monitor.npu_smi, config.monitor.timeout_s)
    if devices is None:
        return dataclasses.replace(check, notes=(*check.notes, note))
    warnings = npus_beyond_host(config, devices)
    return dataclasses.replace(check, warnings=(*check.warnings, *warnings))
