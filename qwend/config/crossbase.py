"""What the cross-host checks share: the hosts, the findings and address helpers (pure)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from qwend.config.model import Config
from qwend.errors import ConfigIssue


@dataclass(frozen=True)
class CrossHostCheck:
    """What the cross-host check found."""

    issues: tuple[ConfigIssue, ...] = ()
    """Inconsistencies that break the cluster; empty when none."""
    warnings: tuple[str, ...] = ()
    """What may be wrong though nothing provably is."""

    @property
    def ok(self) -> bool:
        """Whether the hosts' configurations agree."""
        return not self.issues


@dataclass
class Report:
    """Issues and warnings as the checks find them."""

    issues: list[ConfigIssue] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, host: str, file: Path | str | None, key: str, message: str) -> None:
        """An issue in ``file`` at ``key``, its message led by the host's name."""
        self.issues.append(ConfigIssue(str(file or "?"), key, f"[{host}] {message}"))


@dataclass(frozen=True)
class Host:
    """One host's configuration, under its [cluster] name."""

    name: str
    config: Config

    @property
    def file(self) -> str:
        """Its qwend.toml, as given."""
        return str(self.config.path or "qwend.toml")


def wildcard(address: str) -> bool:
    """A listen address that is every interface (no address of its own)."""
    return address in ("", "0.0.0.0", "::")


def is_loopback(address: str) -> bool:
    """An address only this host can reach."""
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
