"""Several qwend daemons on loopback that know each other as ``[[peers]]``.

Each host gets its own configuration directory, control socket and peer listener port;
``cluster_config`` adds ``[cluster]`` and ``[[peers]]`` to a ``write_config`` qwend.toml.
"""

from __future__ import annotations

import secrets
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tomli_w

from qwend.config.model import LaneConfig
from tests.support.daemonproc import free_port, write_config


def token_file(directory: Path, name: str = "cluster.token", mode: int = 0o600) -> Path:
    path = directory / name
    path.write_text(secrets.token_hex(32) + "\n")
    path.chmod(mode)
    return path


def add_cluster(
    config: Path,
    cluster: Mapping[str, Any],
    peers: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Give a qwend.toml written by ``write_config`` these ``[cluster]`` and ``[[peers]]``."""
    doc = tomllib.loads(config.read_text())
    doc["cluster"] = dict(cluster)
    if peers:
        doc["peers"] = [dict(p) for p in peers]
    config.write_bytes(tomli_w.dumps(doc).encode())


def host_config(
    base: Path,
    name: str,
    lanes: Sequence[LaneConfig],
    *,
    port: int,
    token: Path | None,
    peers: Mapping[str, int],
    extra_cluster: Mapping[str, Any] | None = None,
    peer_extra: Mapping[str, Any] | None = None,
    scheme: str = "http",
) -> Path:
    """qwend.toml of host ``name`` listening for peers on 127.0.0.1:``port``."""
    cfg = write_config(base / name, lanes, drain_timeout_s=1.0)
    cluster: dict[str, Any] = {"name": name, "listen": f"127.0.0.1:{port}"}
    if token is not None:
        cluster["token_file"] = str(token)
    cluster.update(extra_cluster or {})
    add_cluster(
        cfg,
        cluster,
        [
            {"name": peer, "url": f"{scheme}://127.0.0.1:{peer_port}", "timeout_s": 3.0}
            | dict(peer_extra or {})
            for peer, peer_port in peers.items()
        ],
    )
    return cfg


__all__ = ["add_cluster", "free_port", "host_config", "token_file"]
