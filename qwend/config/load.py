"""Reading the configuration from files: qwend.toml and every ``*.toml`` of its lanes directory.

The top of the config chain (model -> schema -> draft -> checks -> parse -> load) and its
only part that touches the filesystem: it reads TOML and hands the mappings to the pure
``parse_config``. ``check_config`` is the one check behind ``qwend check-config`` and
``qwenctl check-config``.
"""

from __future__ import annotations

import socket
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

from qwend.config.check import ClusterCheck, ConfigCheck
from qwend.config.crosshost import check_hosts
from qwend.config.model import Config
from qwend.config.parse import parse_config
from qwend.config.peering import cluster_warnings
from qwend.config.raycheck import ray_notes, ray_warnings
from qwend.errors import ConfigError, ConfigIssue

DEFAULT_CONFIG_PATH = Path("/etc/qwend/qwend.toml")
"""Where the daemon and check-config look when no path is given."""


def load_config(path: Path) -> Config:
    """Read qwend.toml and every ``*.toml`` in its lanes directory; ``ConfigError`` if invalid."""
    path = Path(path).absolute()  # not resolve(): keep symlinked paths (etc/qwend/demo) as named
    issues: list[ConfigIssue] = []
    main = _read_toml(path, path.name, issues)
    if main is None:
        raise ConfigError(issues)
    base_dir = path.parent
    lane_files: list[tuple[str, Mapping[str, object]]] = []
    lanes_dir = _lanes_dir(main, base_dir)
    if lanes_dir is not None:
        if not lanes_dir.is_dir():
            what = "is not a directory" if lanes_dir.exists() else "does not exist"
            msg = f"lanes directory {lanes_dir} {what}; create it (it may be empty) or fix the path"
            issues.append(ConfigIssue(path.name, "daemon.lanes_dir", msg))
        else:
            for file in sorted(lanes_dir.glob("*.toml")):
                if file.name.startswith(".") or not file.is_file():
                    continue  # editor backups and the like
                name = _display_name(file, base_dir)
                data = _read_toml(file, name, issues)
                if data is not None:
                    lane_files.append((name, data))
    try:
        config = parse_config(
            main,
            lane_files,
            main_name=path.name,
            base_dir=base_dir,
            partial=bool(issues),
            host_name=short_hostname(),
        )
    except ConfigError as error:
        merged = [*issues, *error.issues]
        merged.sort(key=lambda issue: (issue.file != path.name, issue.file))
        raise ConfigError(merged) from None
    if issues:
        raise ConfigError(issues)
    return config


def short_hostname() -> str:
    """This host's name up to the first dot: the default ``[cluster] name``."""
    return socket.gethostname().split(".", 1)[0]


def _read_toml(path: Path, name: str, issues: list[ConfigIssue]) -> dict[str, object] | None:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        issues.append(ConfigIssue(name, "", f"file not found: {path}"))
    except tomllib.TOMLDecodeError as error:
        # tomllib's message carries "(at line L, column C)": keep it as it is.
        issues.append(ConfigIssue(name, "", f"TOML syntax error: {error}"))
    except (OSError, UnicodeDecodeError) as error:
        issues.append(ConfigIssue(name, "", f"cannot read {path}: {error}"))
    return None


def _lanes_dir(main: Mapping[str, object], base_dir: Path) -> Path | None:
    """Where lane files are, or None when daemon.lanes_dir is malformed (parse reports it)."""
    daemon = main.get("daemon", {})
    value = daemon.get("lanes_dir") if isinstance(daemon, Mapping) else None
    if value is None:
        return base_dir / "lanes.d"
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        lanes_dir = Path(value).expanduser()
    except RuntimeError:  # "~name" of an unknown user: parse reports the bad value
        return None
    return lanes_dir if lanes_dir.is_absolute() else base_dir / lanes_dir


def _display_name(file: Path, base_dir: Path) -> str:
    """A lane file's name relative to the config directory when it is inside it."""
    try:
        return str(file.relative_to(base_dir))
    except ValueError:
        return str(file)


def check_config(path: Path) -> ConfigCheck:
    """Validate the configuration at ``path``: qwend.toml, or the directory holding it."""
    path = path / "qwend.toml" if path.is_dir() else path
    missing = None
    if not path.is_file():
        missing = "is not a file" if path.exists() else "does not exist"
    try:
        config = load_config(path)
        warnings = (*cluster_warnings(config), *ray_warnings(config))
        return ConfigCheck(path, config=config, warnings=warnings, notes=tuple(ray_notes(config)))
    except ConfigError as error:
        return ConfigCheck(path, issues=error.issues, missing=missing)
    except OSError as error:
        return ConfigCheck(path, issues=(ConfigIssue(str(path), "", str(error)),), missing=missing)


def check_cluster(paths: Sequence[Path]) -> ClusterCheck:
    """Validate several hosts' configurations (one qwend.toml or directory per host),
    each on its own and then against each other."""
    hosts = tuple(check_config(path) for path in paths)
    configs = [h.config for h in hosts if h.config is not None]
    if len(configs) != len(hosts):
        return ClusterCheck(hosts)
    return ClusterCheck(hosts, check_hosts(configs))
