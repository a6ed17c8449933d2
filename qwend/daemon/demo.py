"""Where the daemon's configuration comes from, and the embedded demo's runtime setup.

``qwend --demo`` runs the package's demo config with its [daemon] paths moved
to ``$XDG_RUNTIME_DIR/qwend`` (or a new temporary directory), ``qwend-sim``
found through the interpreter's scripts directory, and the sim's shared state
kept beside them.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from qwend.config.load import load_config
from qwend.config.model import Config


@dataclass(frozen=True)
class Source:
    """Where the configuration comes from (reloads read it again)."""

    path: Path
    demo_runtime: Path | None = None
    """Set in ``--demo``: the runtime directory replacing the [daemon] paths."""

    def load(self) -> Config:
        """Read and validate; ConfigError with every issue."""
        config = load_config(self.path)
        if self.demo_runtime is None:
            return config
        run = self.demo_runtime
        daemon = replace(
            config.daemon,
            control_socket=run / "control.sock",
            state_dir=run / "state",
            log_dir=run / "logs",
        )
        return replace(config, daemon=daemon)


def demo_path() -> Path:
    """The embedded demo's qwend.toml (package data)."""
    return Path(str(resources.files("qwend") / "demo" / "qwend.toml"))


def demo_runtime_dir(env: Mapping[str, str]) -> Path:
    """``$XDG_RUNTIME_DIR/qwend`` when usable, else a new temporary directory."""
    xdg = env.get("XDG_RUNTIME_DIR")
    if xdg and os.access(xdg, os.W_OK):
        path = Path(xdg) / "qwend"
        path.mkdir(mode=0o700, exist_ok=True)
        return path
    return Path(tempfile.mkdtemp(prefix="qwend-demo-"))


def demo_environment(runtime: Path) -> dict[str, str]:
    """What ``--demo`` adds to qwend's and the lanes' environment."""
    scripts = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    return {
        "PATH": f"{scripts}{os.pathsep}{path}" if path else scripts,
        "QWEND_SIM_STATE_DIR": str(runtime / "sim"),
    }


def demo_addresses(config: Config) -> str:
    """What ``qwend --demo`` prints once ready: the URLs and the ``QWEND_SOCKET`` to export."""
    lines = [f"qwend demo: router   {config.router.listen.url}/v1"]
    console = config.public.console_listen
    if console is not None:
        lines.append(f"qwend demo: console  {console.url}/")
    for endpoint in config.public.endpoints:
        lines.append(f"qwend demo: public   {endpoint.listen.url}/v1  -> {endpoint.target}")
    lines.append(f"qwend demo: logs     {config.daemon.log_dir}")
    lines.append(f"export QWEND_SOCKET={config.daemon.control_socket}")
    return "\n".join(lines) + "\n"
