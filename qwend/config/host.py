"""check-config's warnings about this host: lanes pinned to NPUs it does not have (pure).

Lane ``npus`` are device numbers as ``ASCEND_RT_VISIBLE_DEVICES`` counts them: 0 to the
number of chips npu-smi lists minus one (an A3 card has two). A lane naming a device past
that cannot start here, but the configuration may be meant for another host (written on
a workstation, or a preset for a bigger machine), so it is a warning, not an error.
"""

from __future__ import annotations

from qwend.config.model import Config


def npus_beyond_host(config: Config, devices: int) -> list[str]:
    """One warning per lane with NPUs numbered ``devices`` or more."""
    warnings = []
    for lane in config.lanes:
        missing = sorted(n for n in lane.npus if n >= devices)
        if missing:
            shown = ", ".join(str(n) for n in missing)
            where = lane.source.name if lane.source is not None else lane.name
            warnings.append(
                f"lane {lane.name} ({where}): NPU {shown} not on this host: npu-smi lists"
                f" {devices} device{'s' if devices != 1 else ''} (0-{devices - 1})"
                if devices
                else f"lane {lane.name} ({where}): npu-smi lists no NPU on this host"
            )
    return warnings
