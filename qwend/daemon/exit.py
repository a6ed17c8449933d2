"""Exit statuses of the ``qwend`` program: the daemon and ``qwend check-config`` (stable).

They live beside the program's entry points, in the daemon package, because they are
that program's contract with systemd and scripts. ``qwend.config`` sits below the daemon
and may not import it, so it only reports what it found (``ConfigCheck``); each program
maps that to its own statuses (qwenctl's are in ``qwend.cli``).
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """``qwend`` exit statuses."""

    OK = 0
    """The daemon stopped cleanly, or check-config found the configuration valid."""
    ERROR = 1
    """Could not start (listener, socket, state) or failed at run time."""
    CONFIG = 2
    """The configuration is invalid or missing, or the command line is wrong."""
