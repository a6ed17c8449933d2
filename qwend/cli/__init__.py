"""``qwenctl``: the command-line client of the qwend control socket."""

from __future__ import annotations
