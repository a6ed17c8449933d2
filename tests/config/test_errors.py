"""Broken configurations: each one is rejected with the file, the key path and a useful message."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from qwend.config.parse import parse_config
from qwend.errors import ConfigError, ConfigIssue
from tests.support.config_fixtures import DELETE, Data, lane, set_key, valid_lanes, valid_main

MAIN = "qwend.toml"
MM = "lanes.d/mm.toml"
STABLE = "lanes.d/stable.toml"
RV2 = "lanes.d/recurrent_v2.toml"
TP = "lanes.d/throughput.toml"
EXTRA = "lanes.d/extra.toml"


@dataclass(frozen=True)
class Case:
    """One broken configuration: ``edits`` applied to the valid one."""

    id: str
    edits: tuple[tuple[str, str, object], ...]
    """(file, dotted key, value or DELETE); file EXTRA adds a lane file."""
    file: str
    key: str
    fragment: str
    """Text the message must contain (bad value, expectation or hint)."""


def c(id_: str, file: str, key: str, value: object, fragment: str, at: str | None = None) -> Case:
    """A case with one edit at ``key`` whose issue is reported at ``at`` (default: key)."""
    return Case(id_, ((file, key, value),), file, at or key, fragment)


CASES = [
    # --- lane files: per-key checks
    c(
        "npu-not-integer",
        STABLE,
        "lane.npus",
        ["4a"],
        'expected an integer 0-63, got "4a"',
        "lane.npus[0]",
    ),
    c("npus-empty", STABLE, "lane.npus", [], "non-empty list of NPU ids"),
    c("npus-not-list", STABLE, "lane.npus", 4, "got 4"),
    c("npu-out-of-range", TP, "lane.npus", [3, 64], "got 64", "lane.npus[1]"),
    c("npu-listed-twice", TP, "lane.npus", [3, 3], "NPU 3 is listed twice", "lane.npus[1]"),
    c("command-missing", STABLE, "lane.command", DELETE, "missing required key"),
    c("command-empty", STABLE, "lane.command", [], "non-empty list of strings"),
    c(
        "command-not-strings",
        STABLE,
        "lane.command",
        ["serve", 5],
        "expected a string, got 5",
        "lane.command[1]",
    ),
    c(
        "command-unknown-placeholder",
        STABLE,
        "lane.command",
        ["x", "--port", "{prot}"],
        "unknown placeholder {prot}",
        "lane.command[2]",
    ),
    c(
        "command-empty-program",
        STABLE,
        "lane.command",
        ["", "serve"],
        "program name",
        "lane.command[0]",
    ),
    c("port-missing", TP, "lane.port", DELETE, "expected an integer 1-65535"),
    c("port-out-of-range", TP, "lane.port", 70000, "got 70000"),
    c("port-boolean", TP, "lane.port", True, "got true"),
    c("role-missing", TP, "lane.role", DELETE, "missing required key"),
    c("name-invalid", TP, "lane.name", "bad name", 'got "bad name"'),
    c("variant-empty", TP, "lane.variant", "", 'expected a variant label, got ""'),
    c("model-missing", TP, "lane.model", DELETE, "missing required key"),
    c("aliases-not-list", TP, "lane.aliases", "gpt-x", "expected a list of model names"),
    c("alias-empty", TP, "lane.aliases", ["a", ""], "a non-empty model name", "lane.aliases[1]"),
    c(
        "alias-twice",
        TP,
        "lane.aliases",
        ["a", "a"],
        'the name "a" is listed twice',
        "lane.aliases[1]",
    ),
    c("alias-is-the-model", TP, "lane.aliases", ["Qwen3.5-9B"], "already the lane's model"),
    c("served-model-empty", TP, "lane.served_model", " ", "the model name the backend expects"),
    c("max-model-len-zero", TP, "lane.max_model_len", 0, "expected an integer >= 1, got 0"),
    c("host-invalid", TP, "lane.host", "not a host!", "expected an IP address or hostname"),
    c("lane-table-empty", STABLE, "lane", {}, "missing required key", "lane.command"),
    c("lane-not-a-table", STABLE, "lane", 3, "expected a table [lane], got 3"),
    c("lane-unknown-key", TP, "lane.helth", {}, 'did you mean "health"?'),
    c("lane-file-unknown-table", TP, "lanes", {}, 'did you mean "lane"?'),
    c(
        "health-negative-timeout",
        STABLE,
        "lane.health.timeout_s",
        -1,
        "expected a number > 0, got -1",
    ),
    c(
        "health-zero-startup",
        STABLE,
        "lane.health.startup_timeout_s",
        0,
        "expected a number > 0, got 0",
    ),
    c("health-path-relative", STABLE, "lane.health.path", "health", 'starting with "/"'),
    c("health-threshold-zero", STABLE, "lane.health.failure_threshold", 0, "integer >= 1"),
    c("health-unknown-key", STABLE, "lane.health.interval", 3, 'did you mean "interval_s"?'),
    c("stop-unknown-signal", STABLE, "lane.stop.signal", "SIGFOO", 'got "SIGFOO"'),
    c(
        "stop-non-terminating-signal",
        STABLE,
        "lane.stop.signal",
        "SIGSTOP",
        "signal that ends a process",
    ),
    c("stop-signal-bad-number", STABLE, "lane.stop.signal", 999, "got 999"),
    c("stop-negative-timeout", STABLE, "lane.stop.timeout_s", -5, "expected a number >= 0, got -5"),
    c(
        "restart-backoff-inverted",
        STABLE,
        "lane.restart",
        {"backoff_min_s": 30, "backoff_max_s": 5},
        "larger than backoff_max_s",
        "lane.restart.backoff_min_s",
    ),
    c("restart-crash-loop-zero", STABLE, "lane.restart.crash_loop_limit", 0, "integer >= 1"),
    c(
        "env-value-list",
        STABLE,
        "lane.env",
        {"OMP_NUM_THREADS": [1]},
        "expected a string (or number)",
        "lane.env.OMP_NUM_THREADS",
    ),
    c(
        "env-sets-visible-devices",
        STABLE,
        "lane.env",
        {"ASCEND_RT_VISIBLE_DEVICES": "4"},
        "from lane.npus",
        "lane.env.ASCEND_RT_VISIBLE_DEVICES",
    ),
    c(
        "capabilities-none",
        MM,
        "lane.capabilities",
        {"text": False, "image": False},
        "must serve text or image",
    ),
    c(
        "capabilities-not-bool",
        MM,
        "lane.capabilities.image",
        "yes",
        'expected true or false, got "yes"',
    ),
    c("standby-not-bool", RV2, "lane.standby", "yes", "expected true or false"),
    # --- lane files: checks across lanes
    c(
        "duplicate-lane-name",
        TP,
        "lane.name",
        "stable",
        'lane name "stable" is already used by lanes.d/stable.toml',
    ),
    c("active-lanes-same-port", TP, "lane.port", 18084, "also the port of lane stable"),
    c("active-lanes-overlapping-npus", TP, "lane.npus", [3, 4], "NPU 4 also used by lane stable"),
    Case(
        "role-two-active-lanes",
        ((RV2, "lane.standby", False),),
        STABLE,
        "lane.standby",
        'role "stable" already has an active lane (lanes.d/recurrent_v2.toml)',
    ),
    Case(
        "role-without-active-lane",
        ((STABLE, "lane.standby", True),),
        STABLE,
        "lane.standby",
        'role "stable" has no active lane',
    ),
    Case(
        "standby-role-missing",
        ((EXTRA, "lane", lane("ghost", "v4", [5], 18090, standby=True)["lane"]),),
        EXTRA,
        "lane.standby",
        'role "ghost" has no active lane',
    ),
    Case(
        "standby-on-other-roles-npu",
        ((EXTRA, "lane", lane("throughput", "chunk_v2", [7], 18090, standby=True)["lane"]),),
        EXTRA,
        "lane.npus",
        'standby lane of role "throughput" cannot share',
    ),
    # --- qwend.toml
    c("top-level-unknown-section", MAIN, "deamon", {}, 'did you mean "daemon"?'),
    c("section-not-table", MAIN, "router", "fast", "expected a table [router]"),
    c("router-listen-no-port", MAIN, "router.listen", "localhost", 'got "localhost"'),
    c("router-listen-port-zero", MAIN, "router.listen", "127.0.0.1:0", "port 1-65535"),
    c(
        "router-listen-bad-host",
        MAIN,
        "router.listen",
        "exa mple:18088",
        "not an IP address or hostname",
    ),
    c("router-listen-ipv6-unbracketed", MAIN, "router.listen", "::1:18088", "HOST:PORT"),
    c(
        "router-unknown-policy",
        MAIN,
        "router.text_policy",
        "fastest",
        '"balanced_long_text", "least_work", "round_robin", "least_outstanding"',
    ),
    c("router-long-text-zero", MAIN, "router.long_text_min_tokens", 0, "integer >= 1"),
    c("router-negative-queue-timeout", MAIN, "router.queue_timeout_s", -5, "number >= 0"),
    c("router-unknown-key", MAIN, "router.listne", "x", 'did you mean "listen"?'),
    c("router-retry-budget-float", MAIN, "router.retry_budget", 1.5, "got 1.5"),
    c(
        "router-failure-ratio-above-one",
        MAIN,
        "router.breaker_failure_ratio",
        1.5,
        "expected a number > 0 and <= 1, got 1.5",
    ),
    c("router-idle-timeout-zero", MAIN, "router.stream_idle_timeout_s", 0, "number > 0"),
    c(
        "endpoint-unknown-role",
        MAIN,
        "public.endpoints[1].target",
        "role:nope",
        'role "nope" has no lane',
    ),
    c(
        "endpoint-bad-target",
        MAIN,
        "public.endpoints[0].target",
        "lane:stable",
        'expected "router" or "role:NAME"',
    ),
    c(
        "endpoint-missing-listen",
        MAIN,
        "public.endpoints[0].listen",
        DELETE,
        "missing required key",
    ),
    c("endpoints-not-array", MAIN, "public.endpoints", "9101", "expected an array of tables"),
    c(
        "console-clashes-router",
        MAIN,
        "public.console_listen",
        "0.0.0.0:18088",
        "port 18088 is already used by router.listen",
    ),
    c(
        "endpoints-same-port",
        MAIN,
        "public.endpoints[1].listen",
        "0.0.0.0:9101",
        "already used by public.endpoints[0].listen",
    ),
    Case(
        "endpoint-clashes-lane",
        ((MAIN, "public.endpoints[0].listen", "0.0.0.0:18087"),),
        TP,
        "lane.port",
        "already used by public.endpoints[0].listen in qwend.toml",
    ),
    c("monitor-interval-zero", MAIN, "monitor.interval_s", 0, "number > 0"),
    c("connections-cap-zero", MAIN, "connections.max_per_listener", 0, "integer 1-1000000"),
    c("connections-header-zero", MAIN, "connections.header_timeout_s", 0, "number > 0"),
    c("connections-idle-text", MAIN, "connections.idle_timeout_s", "30s", 'got "30s"'),
    c("connections-body-zero", MAIN, "connections.body_timeout_s", 0, "number > 0"),
    c("connections-body-text", MAIN, "connections.body_timeout_s", "30s", 'got "30s"'),
    c("monitor-npu-smi-empty", MAIN, "monitor.npu_smi", "", "an npu-smi command"),
    c("daemon-negative-drain", MAIN, "daemon.drain_timeout_s", -1, "number >= 0, got -1"),
    c("daemon-log-keep-string", MAIN, "daemon.lane_log_keep", "5", 'got "5"'),
    c("daemon-state-dir-number", MAIN, "daemon.state_dir", 5, "expected a path string, got 5"),
]


def build(case: Case) -> tuple[Data, list[tuple[str, Data]]]:
    """The valid configuration with the case's edits applied."""
    main = valid_main()
    lanes = valid_lanes()
    for file, key, value in case.edits:
        if file == MAIN:
            set_key(main, key, value)
        else:
            set_key(lanes.setdefault(file, {}), key, value)
    return main, sorted(lanes.items())


def issues_of(main: Data, lanes: list[tuple[str, Data]]) -> tuple[ConfigIssue, ...]:
    with pytest.raises(ConfigError) as info:
        parse_config(main, lanes, main_name=MAIN, base_dir=Path("/etc/qwend"))
    return info.value.issues


def test_there_are_at_least_30_distinct_cases() -> None:
    assert len({case.id for case in CASES}) == len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_broken_config_names_file_key_and_problem(case: Case) -> None:
    issues = issues_of(*build(case))
    matching = [i for i in issues if i.file == case.file and i.key == case.key]
    assert matching, f"no issue at {case.file}: {case.key}; got:\n" + "\n".join(map(str, issues))
    assert any(case.fragment in i.message for i in matching), "\n".join(map(str, matching))
    # The rendered line is what the operator reads: "file: key: message".
    assert any(str(i).startswith(f"{case.file}: {case.key}: ") for i in matching)


def test_message_matches_the_documented_example() -> None:
    main, lanes = build(c("x", STABLE, "lane.npus", ["4a"], ""))
    issues = issues_of(main, lanes)
    assert 'lanes.d/stable.toml: lane.npus[0]: expected an integer 0-63, got "4a"' in map(
        str, issues
    )


def test_all_errors_are_reported_in_one_run() -> None:
    main, lanes = build(
        Case(
            "many",
            (
                (MAIN, "router.text_policy", "fastest"),
                (MAIN, "monitor.interval_s", -1),
                (STABLE, "lane.npus", ["4a"]),
                (TP, "lane.command", DELETE),
                (MM, "lane.stop", {"signal": "SIGNOPE"}),
                (RV2, "lane.helth", {}),
            ),
            "",
            "",
            "",
        )
    )
    issues = issues_of(main, lanes)
    where = {(i.file, i.key) for i in issues}
    assert {
        (MAIN, "router.text_policy"),
        (MAIN, "monitor.interval_s"),
        (STABLE, "lane.npus[0]"),
        (TP, "lane.command"),
        (MM, "lane.stop.signal"),
        (RV2, "lane.helth"),
    } <= where
    files = [i.file for i in issues]  # grouped by file, qwend.toml first
    assert files == sorted(files, key=lambda f: (f != MAIN, f))
    error = ConfigError(issues)
    assert str(error).startswith(f"{len(issues)} configuration errors:")


def test_unknown_policy_lists_the_valid_ones() -> None:
    main, lanes = build(c("x", MAIN, "router.text_policy", "fast", ""))
    (issue,) = issues_of(main, lanes)
    for policy in ("balanced_long_text", "least_work", "round_robin", "least_outstanding"):
        assert policy in issue.message


def test_in_place_standby_may_share_its_own_roles_npu_and_port() -> None:
    main, lanes = build(Case("ok", (), "", "", ""))
    config = parse_config(main, lanes, main_name=MAIN, base_dir=Path("/etc/qwend"))
    rv2 = config.lane("recurrent_v2")
    assert rv2.standby and rv2.npus == config.lane("stable").npus
    assert rv2.port == config.lane("stable").port


def test_a_bad_lane_does_not_hide_the_others_problems() -> None:
    edits = ((STABLE, "lane.port", "x"), (TP, "lane.npus", [3, 99]))
    issues = issues_of(*build(Case("two", edits, "", "", "")))
    assert {(i.file, i.key) for i in issues} == {(STABLE, "lane.port"), (TP, "lane.npus[1]")}


def test_role_checks_are_skipped_when_a_lane_has_no_valid_role() -> None:
    # stable.toml's role is broken: recurrent_v2 must not be blamed for a missing active lane.
    issues = issues_of(*build(c("x", STABLE, "lane.role", 5, "")))
    assert [(i.file, i.key) for i in issues] == [(STABLE, "lane.role")]


def test_partial_load_skips_role_checks() -> None:
    main, lanes = build(Case("ok", (), "", "", ""))
    without_stable = [(name, data) for name, data in lanes if name != STABLE]
    issues = issues_of(main, without_stable)
    assert any("no active lane" in i.message for i in issues)
    parse_config(main, without_stable, main_name=MAIN, base_dir=Path("/"), partial=True)
