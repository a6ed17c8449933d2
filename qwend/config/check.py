"""What ``check-config`` found, and how it is told (pure).

One check for two programs: ``qwend check-config`` and ``qwenctl check-config`` both run
``qwend.config.load.check_config`` and print ``render_check``; each maps the outcome to
its own exit status (the qwend program's in ``qwend.daemon.exit``, qwenctl's in
``qwend.cli``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qwend.config.crosshost import CrossHostCheck
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


@dataclass(frozen=True)
class ClusterCheck:
    """The outcome of checking several hosts' configurations together."""

    hosts: tuple[ConfigCheck, ...]
    """Each host's own check, in the order given."""
    cross: CrossHostCheck | None = None
    """The checks across hosts; None when a host's configuration is itself invalid."""

    @property
    def ok(self) -> bool:
        """Whether every host is valid and they agree with each other."""
        return all(h.ok for h in self.hosts) and self.cross is not None and self.cross.ok


def render_cluster_check(check: ClusterCheck) -> tuple[str, str]:
    """(stdout, stderr) of ``check-config --cluster``: one line per host, then the
    cross-host findings; every problem goes to stderr."""
    out: list[str] = []
    err: list[str] = []
    for host in check.hosts:
        if host.config is not None:
            name = host.config.cluster.name or "?"
            lanes = len(host.config.lanes)
            out.append(f"{name:<10} {host.path}: valid, {lanes} lane{'s' if lanes != 1 else ''}")
            out += [f"  warning: {w}" for w in host.warnings]
        else:
            err.append(render_check(host))
    if check.cross is None:
        err.append(f"{PROG} --cluster: fix each host's configuration first; not compared")
        return "\n".join(out), "\n".join(err)
    out += [f"warning: {w}" for w in check.cross.warnings]
    if check.cross.ok:
        out.append(f"cluster: {len(check.hosts)} hosts agree")
    else:
        err.append(f"{PROG} --cluster: the hosts disagree\n{ConfigError(check.cross.issues)}")
    return "\n".join(out), "\n".join(err)
