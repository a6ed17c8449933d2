"""The QwendError tree: every error carries a message a person can act on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class QwendError(Exception):
    """Base of every error qwend raises on purpose; ``str()`` is the actionable message."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem found in a configuration file."""

    file: str
    """The file, as the operator named it (e.g. ``lanes.d/stable.toml``)."""
    key: str
    """Dotted key path inside the file (``lane.npus[0]``); empty for file-level problems."""
    message: str
    """What is wrong and what was expected."""

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}: " if self.key else f"{self.file}: "
        return where + self.message


class ConfigError(QwendError):
    """The configuration is invalid; carries every issue found, not just the first."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = tuple(issues)
        count = len(self.issues)
        head = f"{count} configuration error{'s' if count != 1 else ''}:"
        super().__init__("\n".join([head, *(f"  {issue}" for issue in self.issues)]))


class LaneError(QwendError):
    """A lane could not be started, stopped or found."""


class PreflightError(LaneError):
    """A lane cannot start: its port is taken or its NPUs are claimed."""


class PromotionError(QwendError):
    """A promotion could not be carried out."""


class PromotionConflict(PromotionError):
    """Another promotion of the same role is already running."""


class NpuSmiError(QwendError):
    """npu-smi output could not be parsed, or npu-smi failed."""


class ControlError(QwendError):
    """The control socket could not be reached or answered with an error."""
