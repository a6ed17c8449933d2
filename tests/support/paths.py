"""Paths inside the repository that tests read: nothing outside the checkout."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The checkout's root (the folder holding pyproject.toml)."""
NPU_SMI_FIXTURES = REPO / "tests" / "fixtures" / "npu-smi"
"""Captured npu-smi outputs, vendored with their SOURCES.md."""
DEMO_CONFIG = REPO / "qwend" / "demo" / "qwend.toml"
"""The embedded demo configuration (package data)."""
