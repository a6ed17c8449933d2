"""A small valid configuration as TOML-shaped dicts, and helpers to break it (config tests)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import tomli_w

Data = dict[str, Any]

DELETE = object()
"""Value that removes a key in ``set_key``."""


def sim_command(variant: str) -> list[str]:
    """A demo-style lane command."""
    return [
        "qwend-sim", "serve", "--host", "127.0.0.1", "--port", "{port}",
        "--served-model-name", "{model}", "--variant", variant, "--lane-name", "{name}",
    ]  # fmt: skip


def lane(role: str, variant: str, npus: list[int], port: int, **extra: Any) -> Data:
    """A lane file's data."""
    table: Data = {
        "role": role,
        "variant": variant,
        "npus": npus,
        "port": port,
        "model": "Qwen3.5-9B",
        "command": sim_command(variant),
    }
    table.update(extra)
    return {"lane": table}


def valid_main() -> Data:
    """qwend.toml of the seed topology (loopback ports)."""
    return {
        "daemon": {"lanes_dir": "lanes.d"},
        "router": {"listen": "127.0.0.1:18088", "text_policy": "balanced_long_text"},
        "public": {
            "console_listen": "127.0.0.1:9105",
            "endpoints": [
                {"listen": "127.0.0.1:9101", "target": "router"},
                {"listen": "127.0.0.1:9102", "target": "role:multimodal"},
            ],
        },
        "monitor": {"npu_smi": "qwend-sim npu-smi", "interval_s": 2},
    }


def valid_lanes() -> dict[str, Data]:
    """Lane files by name, in the order load_config reads them (sorted)."""
    return {
        "lanes.d/mm.toml": lane(
            "multimodal", "baseline", [7], 18083, capabilities={"text": False, "image": True}
        ),
        "lanes.d/recurrent_v2.toml": lane("stable", "recurrent_v2", [4], 18084, standby=True),
        "lanes.d/stable.toml": lane("stable", "baseline", [4], 18084),
        "lanes.d/throughput.toml": lane("throughput", "v3", [3], 18087),
    }


def set_key(data: Data, dotted: str, value: object) -> None:
    """Set (or with DELETE remove) ``a.b.c`` in nested dicts; ``a.b[1].c`` indexes lists."""
    parts = dotted.split(".")
    node: Any = data
    for part in parts[:-1]:
        node = _step(node, part)
    last = parts[-1]
    if value is DELETE:
        del node[last]
    else:
        node[last] = copy.deepcopy(value)


def _step(node: Any, part: str) -> Any:
    if "[" in part:
        name, index = part[:-1].split("[")
        return node[name][int(index)]
    return node.setdefault(part, {})


def write_config(root: Path, main: Data, lanes: dict[str, Data]) -> Path:
    """Write qwend.toml and the lane files under ``root``; return qwend.toml's path."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "qwend.toml"
    path.write_text(tomli_w.dumps(main))
    (root / "lanes.d").mkdir(exist_ok=True)
    for name, data in lanes.items():
        (root / name).write_text(tomli_w.dumps(data))
    return path
