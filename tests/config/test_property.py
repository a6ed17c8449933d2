"""Any TOML-shaped input gives a Config or a ConfigError with located issues, never a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwend.config.model import Config
from qwend.config.parse import parse_config
from qwend.errors import ConfigError
from tests.support.config_fixtures import valid_lanes, valid_main

LANE_KEYS = [
    "name", "role", "variant", "standby", "npus", "port", "host", "model", "command", "env",
    "cwd", "health", "stop", "restart", "capabilities",
]  # fmt: skip
MAIN_KEYS = {
    "daemon": ["control_socket", "state_dir", "log_dir", "lanes_dir", "drain_timeout_s"],
    "router": [
        "listen",
        "text_policy",
        "long_text_min_tokens",
        "queue_size",
        "retry_budget",
        "allow_unauthenticated",
    ],
    "public": ["console_listen", "endpoints", "api_keys_file", "allow_unauthenticated"],
    "monitor": ["enabled", "npu_smi", "interval_s", "timeout_s"],
}

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["{port}", "{nope}", "SIGTERM", "127.0.0.1:18084", "role:stable", "router"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def tables(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Tables whose keys are mostly the real ones, with a few strangers."""
    key = st.sampled_from(keys) | st.text(max_size=8)
    return st.dictionaries(key, values, max_size=6)


def edited(base: dict[str, Any], edits: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    merged.update(edits)
    return merged


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lane_edits=st.lists(tables(LANE_KEYS), min_size=1, max_size=4),
    main_edits=st.fixed_dictionaries({k: tables(v) for k, v in MAIN_KEYS.items()}),
)
def test_parse_never_crashes(
    lane_edits: list[dict[str, Any]], main_edits: dict[str, dict[str, Any]]
) -> None:
    base_lanes = sorted(valid_lanes().items())
    lanes = [
        (name, {"lane": edited(data["lane"], edits)})
        for (name, data), edits in zip(base_lanes, lane_edits, strict=False)
    ] + base_lanes[len(lane_edits) :]
    main = {k: edited(v, main_edits.get(k, {})) for k, v in valid_main().items()}
    try:
        config = parse_config(main, lanes, main_name="qwend.toml", base_dir=Path("/etc/qwend"))
    except ConfigError as error:
        files = {"qwend.toml", *(name for name, _ in lanes)}
        assert error.issues
        for issue in error.issues:
            assert issue.file in files and issue.message
            assert str(issue).startswith(issue.file + ": ")
    else:
        assert isinstance(config, Config)
        for lane in config.lanes:
            lane.argv()  # every accepted command can be filled in
