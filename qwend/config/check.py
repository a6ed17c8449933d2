"""What ``check-config`` found, and how it is told (pure).

One check for two programs: ``qwend check-config`` and ``qwenctl check-config`` both run
``qwend.config.load.check_config`` and print ``render_check``; each maps the outcome to
its own exit status (the qwend program's in ``qwend.daemon.exit``, qwenctl's in
``qwend.cli``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qwend.config.model import Config
from qwend.config.summary import render_summary
from qwend.errors import ConfigError, ConfigIssue

PROG = "qwend check-config"


@dataclass(frozen=True)
class ConfigCheck:
    """The outcome of checking one configuration."""

    path: Path
    """The qwend.toml that was checked (a directory stands for the qwend.toml in it)."""
    config: Config | None = None
    """The configuration when it is valid; None otherwise."""
    issues: tuple[ConfigIssue, ...] = ()
    """Every problem found, file by file; empty when valid."""
    missing: str | None = None
    """Why ``path`` is no file to read ("does not exist", "is not a file"); None if it is one."""
    warnings: tuple[str, ...] = ()
    """What may be wrong on this host but does not make the configuration invalid."""
    notes: tuple[str, ...] = ()
    """Checks that could not run here, and why (no npu-smi)."""

    @property
    def ok(self) -> bool:
        """Whether the configuration is valid."""
        return self.config is not None


def render_check(check: ConfigCheck) -> str:
    """What check-config prints: the summary (stdout) when valid, else the problems (stderr)."""
    if check.config is not None:
        extra = [f"warning: {w}" for w in check.warnings] + [f"note: {n}" for n in check.notes]
        return "\n".join([render_summary(check.config), *extra])
    if check.missing is not None:
        return f"{PROG}: {check.path} {check.missing}; pass the path of qwend.toml"
    return f"{PROG}: {check.path}: invalid\n{ConfigError(check.issues)}"
