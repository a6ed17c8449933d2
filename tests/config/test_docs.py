"""docs/configuration.md documents every key, and its example is a valid lane file."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from qwend.config.model import (
    Capabilities,
    ClusterConfig,
    ConnectionsConfig,
    DaemonConfig,
    GroupConfig,
    HealthConfig,
    LaneConfig,
    MonitorConfig,
    PeerConfig,
    PublicConfig,
    PublicEndpoint,
    RemoteConfig,
    RestartConfig,
    RouterConfig,
    StopConfig,
)
from qwend.config.parse import parse_config
from tests.support.paths import REPO

DOC = REPO / "docs" / "configuration.md"
SECTIONS = [
    DaemonConfig, RouterConfig, PublicConfig, PublicEndpoint, MonitorConfig, ConnectionsConfig,
    LaneConfig,
    HealthConfig, StopConfig, RestartConfig, Capabilities, RemoteConfig,
    ClusterConfig, PeerConfig, GroupConfig,
]  # fmt: skip
NOT_KEYS = {"source"}  # LaneConfig.source is set by the loader, not written by operators
NOT_KEYS |= {"remote"}  # LaneConfig.remote holds the remote lane's keys (url, tls_ca ...)
NOT_KEYS |= {"this"}  # GroupConfig.this is [cluster] name, filled in by the parser
SUB_TABLES = {"health", "stop", "restart", "capabilities", "group"}  # documented as [lane.NAME]


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.__name__)
def test_every_key_is_documented(section: type) -> None:
    text = DOC.read_text()
    names = {f.name for f in dataclasses.fields(section)} - NOT_KEYS
    missing = sorted(
        n
        for n in names
        if f"| `{n}` |" not in text and not (n in SUB_TABLES and f"### `[lane.{n}]`" in text)
    )
    assert not missing, f"undocumented keys of {section.__name__}: {missing}"


def test_the_documented_example_is_valid() -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.S)
    assert blocks
    for block in blocks:
        data = tomllib.loads(block)
        mm = {"lane": {"role": "multimodal", "npus": [7], "port": 18083, "model": "m",
                       "command": ["x"]}}  # fmt: skip
        config = parse_config(
            {},
            [("lanes.d/mm.toml", mm), ("lanes.d/recurrent_v2.toml", data),
             ("lanes.d/stable.toml", {"lane": {**data["lane"], "standby": False}})],
            main_name="qwend.toml",
            base_dir=Path("/etc/qwend"),
        )  # fmt: skip
        assert config.lane("recurrent_v2").standby
