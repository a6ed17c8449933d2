"""qwend: run Qwen3.5 serving on Huawei Ascend hosts as one product."""

from __future__ import annotations

__version__ = "0.1.0"
