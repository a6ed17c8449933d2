"""The NPU panel: the daemon's rendering of its npu-smi view."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from qwend.api.messages import NpusResponse


class NpuPanel(Static):
    """NPUs, their processes and lanes, as ``qwenctl npus`` prints them."""

    DEFAULT_CSS = Path(__file__).with_name("npus.tcss").read_text(encoding="utf-8")

    def show(self, npus: NpusResponse) -> None:
        text = npus.table if npus.enabled else "NPU monitor disabled"
        self.update(Text(text.rstrip()))
