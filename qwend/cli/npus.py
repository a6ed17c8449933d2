"""``qwenctl npus --parse FILE``: parse a captured npu-smi output without a daemon."""

from __future__ import annotations

from typing import Any

from qwend.npu.parse import parse_any
from qwend.npu.render import parsed_to_dict, render_parsed


def parse_npu_file(text: str) -> tuple[dict[str, Any], str]:
    """(JSON-able dict, human table) of any npu-smi output; NpuSmiError quotes a bad line."""
    parsed = parse_any(text)
    return parsed_to_dict(parsed), render_parsed(parsed)
