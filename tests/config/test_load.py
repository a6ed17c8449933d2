"""load_config and parse_config on valid input: shipped configs, defaults, paths, placeholders."""

from __future__ import annotations

import signal
import tomllib
from pathlib import Path

import pytest

from qwend.config.load import load_config
from qwend.config.model import (
    Config,
    ConnectionsConfig,
    DaemonConfig,
    HealthConfig,
    ListenAddress,
    MonitorConfig,
    RestartConfig,
    RouterConfig,
    StopConfig,
    TextPolicy,
)
from qwend.config.parse import parse_config
from qwend.daemon.demo import demo_path
from qwend.errors import ConfigError
from tests.support.config_fixtures import lane, set_key, valid_lanes, valid_main, write_config
from tests.support.paths import REPO

SHIPPED = REPO / "etc" / "qwend" / "qwend.toml"
DEMO = REPO / "etc" / "qwend" / "demo" / "qwend.toml"
PACKAGED_DEMO = REPO / "qwend" / "demo" / "qwend.toml"


def seed_topology(config: Config) -> None:
    """The seed's 910A three-lane deployment with its two candidates."""
    rows = {(ln.name, ln.role, ln.variant, ln.standby, ln.npus, ln.port) for ln in config.lanes}
    assert rows == {
        ("mm", "multimodal", "baseline", False, (7,), 18083),
        ("stable", "stable", "baseline", False, (4,), 18084),
        ("throughput", "throughput", "v3", False, (3,), 18087),
        ("recurrent_v2", "stable", "recurrent_v2", True, (4,), 18084),
        ("chunk_v2", "throughput", "chunk_v2", True, (5,), 18085),
    }
    assert config.default_active() == {
        "multimodal": "mm",
        "stable": "stable",
        "throughput": "throughput",
    }
    assert config.lane("mm").capabilities.image
    assert not config.lane("stable").capabilities.image
    assert config.router.listen.port == 18088
    assert config.router.text_policy is TextPolicy.BALANCED_LONG_TEXT
    assert config.router.long_text_min_tokens == 32
    assert config.public.console_listen is not None
    assert config.public.console_listen.port == 9105
    assert [(e.listen.port, e.target) for e in config.public.endpoints] == [
        (9101, "router"),
        (9102, "role:multimodal"),
        (9111, "role:throughput"),
    ]


def test_shipped_config_is_the_seed_topology() -> None:
    config = load_config(SHIPPED)
    seed_topology(config)
    assert config.daemon.control_socket == Path("/run/qwend/control.sock")
    assert config.daemon.state_dir == Path("/var/lib/qwend")
    assert config.daemon.log_dir == Path("/var/log/qwend")
    assert config.daemon.lanes_dir == SHIPPED.parent / "lanes.d"
    for ln in config.lanes:
        assert ln.env["PYTORCH_NPU_ALLOC_CONF"] == "expandable_segments:True"
        assert ln.env["TASK_QUEUE_ENABLE"] == "1"
        argv = ln.argv()
        assert argv[1] == "serve" and argv[0].endswith("/transformers")
        assert str(ln.port) in argv and ln.model in argv
        assert f"/venvs/{ln.variant}/" in argv[0]


def test_demo_config_is_the_seed_topology_on_sim_lanes() -> None:
    config = load_config(DEMO)
    seed_topology(config)
    assert config.monitor.npu_smi == "qwend-sim npu-smi"
    for ln in config.lanes:
        argv = ln.argv()
        assert argv[:2] == ["qwend-sim", "serve"]
        assert argv[argv.index("--variant") + 1] == ln.variant
        assert argv[argv.index("--port") + 1] == str(ln.port)
        assert argv[argv.index("--lane-name") + 1] == ln.name
        assert ln.health.interval_s <= 2 and ln.health.startup_timeout_s <= 60


def test_demo_symlink_points_at_the_packaged_demo() -> None:
    link = REPO / "etc" / "qwend" / "demo"
    assert link.is_symlink()
    assert DEMO.resolve() == PACKAGED_DEMO.resolve() == demo_path().resolve()


def test_commented_vllm_alternative_is_valid() -> None:
    # The vLLM command shown in a comment of stable.toml parses once uncommented.
    text = (SHIPPED.parent / "lanes.d" / "stable.toml").read_text()
    start = text.index("# command = [")
    block = text[start : text.index("# ]", start) + 3]
    command = tomllib.loads("\n".join(line[2:] for line in block.splitlines()))["command"]
    data = lane("stable", "baseline", [4], 18084, command=command, model="/m")
    config = parse_config({}, [("lanes.d/s.toml", data)], main_name="q", base_dir=Path("/"))
    argv = config.lanes[0].argv()
    assert argv[:3] == ["vllm", "serve", "/m"]
    assert '{"cudagraph_mode":"FULL_DECODE_ONLY"}' in argv


def test_minimal_config_takes_the_documented_defaults(tmp_path: Path) -> None:
    (tmp_path / "lanes.d").mkdir()
    (tmp_path / "qwend.toml").write_text("")
    config = load_config(tmp_path / "qwend.toml")
    assert config.lanes == ()
    assert config.router == RouterConfig()
    assert config.monitor == MonitorConfig()
    assert config.public.endpoints == () and config.public.console_listen is None
    assert config.daemon == DaemonConfig(lanes_dir=tmp_path / "lanes.d")
    assert config.path == tmp_path / "qwend.toml"


def test_lane_defaults() -> None:
    data = {"lane": {"role": "r", "npus": [0], "port": 8000, "model": "m", "command": ["x"]}}
    config = parse_config(
        {}, [("lanes.d/solo.toml", data)], main_name="q.toml", base_dir=Path("/c")
    )
    (solo,) = config.lanes
    assert solo.name == "solo" and solo.variant == "solo"  # from the file name
    assert not solo.standby and solo.host == "127.0.0.1" and solo.env == {}
    assert solo.health == HealthConfig() and solo.stop == StopConfig()
    assert solo.restart == RestartConfig()
    assert solo.capabilities.text and not solo.capabilities.image
    assert solo.source == Path("/c/lanes.d/solo.toml")


def test_relative_lanes_dir_resolves_against_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    main = valid_main()
    main["daemon"]["lanes_dir"] = "my-lanes"
    root = tmp_path / "etc"
    path = write_config(root, main, {})
    (root / "my-lanes").mkdir()
    (root / "my-lanes" / "a.toml").write_text(
        'lane = { role = "multimodal", npus = [1], port = 18000, model = "m", command = ["x"] }\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(path)
    assert config.daemon.lanes_dir == root / "my-lanes"
    assert [ln.name for ln in config.lanes] == ["a"]
    assert config.lanes[0].source == root / "my-lanes" / "a.toml"


def test_absolute_lanes_dir_and_paths(tmp_path: Path) -> None:
    lanes_dir = tmp_path / "abs-lanes"
    lanes_dir.mkdir()
    main = {"daemon": {"lanes_dir": str(lanes_dir), "state_dir": "state", "log_dir": "/x/log"}}
    path = write_config(tmp_path / "etc", main, {})
    config = load_config(path)
    assert config.daemon.lanes_dir == lanes_dir
    assert config.daemon.state_dir == tmp_path / "etc" / "state"
    assert config.daemon.log_dir == Path("/x/log")


def test_lane_files_are_read_in_name_order_skipping_hidden_and_other_files(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path, valid_main(), valid_lanes())
    (tmp_path / "lanes.d" / ".#stable.toml").write_text("not toml at all [")
    (tmp_path / "lanes.d" / "README").write_text("notes")
    config = load_config(path)
    assert [ln.name for ln in config.lanes] == ["mm", "recurrent_v2", "stable", "throughput"]


def test_placeholders_are_filled_and_other_braces_stay_literal() -> None:
    command = [
        "vllm", "serve", "{model}", "--port", "{port}", "--served-model-name", "{name}",
        "--compilation-config", '{"cudagraph_mode":"FULL_DECODE_ONLY"}', "--devices={npus}",
    ]  # fmt: skip
    data = lane("r", "v3", [5, 2], 8001, command=command, model="/data/Qwen3.5-9B")
    config = parse_config({}, [("lanes.d/x.toml", data)], main_name="q", base_dir=Path("/"))
    assert config.lanes[0].argv() == [
        "vllm", "serve", "/data/Qwen3.5-9B", "--port", "8001", "--served-model-name", "x",
        "--compilation-config", '{"cudagraph_mode":"FULL_DECODE_ONLY"}', "--devices=2,5",
    ]  # fmt: skip


def test_public_names_and_the_served_model() -> None:
    command = ["vllm", "serve", "{model}", "--served-model-name", "{served_model}"]
    data = lane("r", "v3", [1], 8001, command=command, model="/data/Qwen3.5-9B")
    plain = parse_config({}, [("lanes.d/x.toml", data)], main_name="q", base_dir=Path("/"))
    assert plain.lanes[0].argv()[-1] == "/data/Qwen3.5-9B"  # served_model defaults to model
    assert plain.lanes[0].public_names == ("/data/Qwen3.5-9B",)
    data["lane"] = {
        **data["lane"],
        "model": "qwen3.5",
        "aliases": ["gpt-4o-mini"],
        "served_model": "Qwen/Qwen3.5-9B",
        "max_model_len": 32768,
    }
    config = parse_config({}, [("lanes.d/x.toml", data)], main_name="q", base_dir=Path("/"))
    x = config.lanes[0]
    assert x.argv() == ["vllm", "serve", "qwen3.5", "--served-model-name", "Qwen/Qwen3.5-9B"]
    assert x.public_names == ("qwen3.5", "gpt-4o-mini")
    assert (x.backend_model, x.max_model_len) == ("Qwen/Qwen3.5-9B", 32768)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("SIGTERM", signal.SIGTERM),
        ("TERM", signal.SIGTERM),
        ("sigint", signal.SIGINT),
        ("QUIT", signal.SIGQUIT),
        (15, signal.SIGTERM),
        (9, signal.SIGKILL),
    ],
)
def test_stop_signal_forms(value: object, expected: signal.Signals) -> None:
    data = lane("r", "v", [0], 8000, stop={"signal": value})
    config = parse_config({}, [("lanes.d/x.toml", data)], main_name="q", base_dir=Path("/"))
    assert config.lanes[0].stop.signal is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:18088", ListenAddress("127.0.0.1", 18088)),
        ("0.0.0.0:9101", ListenAddress("0.0.0.0", 9101)),
        ("[::1]:9101", ListenAddress("::1", 9101)),
        ("[::]:9101", ListenAddress("::", 9101)),
        ("localhost:9105", ListenAddress("localhost", 9105)),
    ],
)
def test_listen_address_forms(text: str, expected: ListenAddress) -> None:
    router = {"listen": text, "allow_unauthenticated": True}  # wildcards are not loopback
    config = parse_config({"router": router}, [], main_name="q", base_dir=Path("/"))
    assert config.router.listen == expected


def test_env_numbers_become_strings() -> None:
    data = lane("r", "v", [0], 8000, env={"TASK_QUEUE_ENABLE": 1, "X": "y"})
    config = parse_config({}, [("lanes.d/x.toml", data)], main_name="q", base_dir=Path("/"))
    assert config.lanes[0].env == {"TASK_QUEUE_ENABLE": "1", "X": "y"}


def test_empty_lanes_dir_is_valid_even_with_role_endpoints(tmp_path: Path) -> None:
    # A fresh install: no lanes yet; the router answers 503 until one is added.
    path = write_config(tmp_path, valid_main(), {})
    config = load_config(path)
    assert config.lanes == () and config.default_active() == {}


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml")
    (issue,) = info.value.issues
    assert issue.file == "nope.toml" and "file not found" in issue.message


def test_missing_lanes_dir_names_the_key(tmp_path: Path) -> None:
    main = valid_main()
    main["daemon"]["lanes_dir"] = "missing.d"
    path = write_config(tmp_path, main, {})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (issue,) = info.value.issues
    assert (issue.file, issue.key) == ("qwend.toml", "daemon.lanes_dir")
    assert "does not exist" in issue.message and str(tmp_path / "missing.d") in issue.message


def test_lanes_dir_that_is_a_file(tmp_path: Path) -> None:
    main = valid_main()
    main["daemon"]["lanes_dir"] = "qwend.toml"
    path = write_config(tmp_path, main, {})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "is not a directory" in str(info.value)


def test_toml_syntax_error_in_main_keeps_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "qwend.toml"
    path.write_text('[router]\nlisten = "127.0.0.1:18088"\ntext_policy = \n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (issue,) = info.value.issues
    assert issue.file == "qwend.toml" and issue.key == ""
    assert "TOML syntax error" in issue.message and "line 3" in issue.message
    assert "column" in issue.message


def test_syntax_error_in_a_lane_file_is_reported_with_other_problems(tmp_path: Path) -> None:
    lanes = valid_lanes()
    set_key(lanes["lanes.d/throughput.toml"], "lane.port", "x")
    path = write_config(tmp_path, valid_main(), lanes)
    (tmp_path / "lanes.d" / "stable.toml").write_text(
        '[lane]\nrole = "stable"\nnpus = [4,,]\nport = 1\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    where = {(i.file, i.key) for i in info.value.issues}
    # recurrent_v2 is not blamed for stable's missing active lane: stable.toml did not load.
    assert where == {("lanes.d/stable.toml", ""), ("lanes.d/throughput.toml", "lane.port")}
    stable_issue = next(i for i in info.value.issues if i.file == "lanes.d/stable.toml")
    assert "(at line 3, column" in stable_issue.message


def test_lane_file_without_lane_table(tmp_path: Path) -> None:
    path = write_config(tmp_path, valid_main(), {})
    (tmp_path / "lanes.d" / "odd.toml").write_text('role = "stable"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    messages = [str(i) for i in info.value.issues]
    assert "lanes.d/odd.toml: lane: missing required table" in messages
    assert any(m.startswith("lanes.d/odd.toml: role: unknown key") for m in messages)


def test_connections_limits_are_read_with_defaults() -> None:
    base = {"connections": {"max_per_listener": 64, "idle_timeout_s": 5}}
    config = parse_config(base, [], main_name="qwend.toml", base_dir=Path("/etc/qwend"))
    assert config.connections == ConnectionsConfig(64, 10.0, 5.0)
    assert parse_config({}, [], main_name="q.toml", base_dir=Path("/")).connections == (
        ConnectionsConfig()
    )


def test_connections_body_timeout_is_read() -> None:
    base = {"connections": {"body_timeout_s": 2.5}}
    config = parse_config(base, [], main_name="qwend.toml", base_dir=Path("/etc/qwend"))
    assert config.connections.body_timeout_s == 2.5
    assert ConnectionsConfig().body_timeout_s == 30.0
