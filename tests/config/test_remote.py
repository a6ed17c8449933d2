"""Remote lanes (``lane.url``): parsed, derived host and port, and every misuse named."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwend.config.model import Config, LaneConfig, promotes_in_place
from qwend.config.parse import parse_config
from qwend.config.summary import render_summary
from qwend.errors import ConfigError
from tests.support.config_fixtures import Data, lane, valid_lanes, valid_main

MAIN = "qwend.toml"
REMOTE = "lanes.d/far.toml"


def remote_lane(**extra: object) -> Data:
    """A remote candidate of role stable (mixed with its local lanes): url, no command,
    no npus, no port."""
    table: Data = {"role": "stable", "variant": "far", "model": "Qwen3.5-9B", "standby": True}
    table["url"] = "http://10.40.0.2:8000"
    table.update(extra)
    return {"lane": table}


def parse(extra: Data) -> Config:
    lanes = valid_lanes() | {REMOTE: extra}
    return parse_config(
        valid_main(), list(lanes.items()), main_name=MAIN, base_dir=Path("/etc/qwend")
    )


def far(config: Config) -> LaneConfig:
    return config.lane("far")


def issues(extra: Data) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as info:
        parse(extra)
    return [(i.file, i.key, i.message) for i in info.value.issues]


def test_a_remote_lane_takes_host_and_port_from_its_url() -> None:
    lane_ = far(parse(remote_lane()))
    assert lane_.is_remote and lane_.remote is not None
    assert (lane_.host, lane_.port, lane_.npus, lane_.command) == ("10.40.0.2", 8000, (), ())
    assert lane_.base_url == "http://10.40.0.2:8000"
    assert lane_.remote.connect_timeout_s == 5.0 and lane_.remote.tls_verify


def test_https_defaults_to_port_443_and_paths_resolve_against_the_config_dir() -> None:
    lane_ = far(
        parse(
            remote_lane(
                url="https://gpu-b.example.com/",
                tls_ca="ca.pem",
                tls_cert="/etc/pki/client.pem",
                tls_key="client.key",
                api_key_file="far.key",
                connect_timeout_s=1.5,
            )
        )
    )
    remote = lane_.remote
    assert remote is not None and remote.tls
    assert (lane_.host, lane_.port, lane_.base_url) == (
        "gpu-b.example.com",
        443,
        "https://gpu-b.example.com",
    )
    assert remote.tls_ca == Path("/etc/qwend/ca.pem")
    assert remote.tls_key == Path("/etc/qwend/client.key")
    assert remote.api_key_file == Path("/etc/qwend/far.key")
    assert remote.connect_timeout_s == 1.5


def test_an_empty_npus_list_is_allowed_on_a_remote_lane() -> None:
    assert far(parse(remote_lane(npus=[]))).npus == ()


def test_a_remote_lane_may_use_a_port_a_local_lane_uses() -> None:
    """The port is the remote host's: no clash with this host's lanes."""
    lane_ = far(parse(remote_lane(url="http://10.40.0.2:18084")))
    stable = parse(remote_lane(url="http://10.40.0.2:18084")).lane("stable")
    assert lane_.port == stable.port
    # ...and promotion between them is blue/green, never in place.
    assert not promotes_in_place(lane_, stable)
    assert not promotes_in_place(stable, lane_)


@pytest.mark.parametrize(
    ("extra", "key", "fragment"),
    [
        ({"command": ["vllm", "serve"]}, "lane.command", "either command"),
        ({"npus": [3]}, "lane.npus", "uses no NPU of this host"),
        ({"port": 8000}, "lane.port", "the url's"),
        ({"url": "10.40.0.2:8000"}, "lane.url", 'expected an URL "http://HOST:PORT"'),
        ({"url": "ftp://10.40.0.2:8000"}, "lane.url", 'got "ftp://'),
        ({"url": "http://10.40.0.2:99999"}, "lane.url", "port 1-65535"),
        ({"url": "http://bad_host!:80"}, "lane.url", "expected an URL"),
        ({"url": 8000}, "lane.url", "got 8000"),
        ({"tls_ca": "ca.pem"}, "lane.tls_ca", "need an https:// url"),
        ({"url": "https://h:1", "tls_cert": "c.pem"}, "lane.tls_key", "both tls_cert and tls_key"),
        ({"connect_timeout_s": 0}, "lane.connect_timeout_s", "a number > 0"),
        ({"tls_verify": "no"}, "lane.tls_verify", "true or false"),
        ({"api_key_file": ""}, "lane.api_key_file", "a path string"),
    ],
)
def test_a_misused_remote_key_is_named(extra: Data, key: str, fragment: str) -> None:
    found = issues(remote_lane(**extra))
    assert any(f == REMOTE and k == key and fragment in m for f, k, m in found), found


@pytest.mark.parametrize(
    "key", ["connect_timeout_s", "tls_ca", "tls_verify", "tls_cert", "tls_key", "api_key_file"]
)
def test_remote_keys_on_a_local_lane_are_refused(key: str) -> None:
    local = lane("stable", "near", [5], 18090, **{key: 1})
    found = issues(local)
    assert (REMOTE, f"lane.{key}", "only a remote lane (lane.url) takes this key;"
            " remove it or set url") in found  # fmt: skip


def test_a_lane_with_neither_command_nor_url_asks_for_command() -> None:
    table = remote_lane()
    del table["lane"]["url"]
    found = issues(table)
    assert any(k == "lane.command" and "missing required key" in m for _, k, m in found)
    assert any(k == "lane.npus" for _, k, _m in found)


def test_a_local_lane_still_needs_npus() -> None:
    table = lane("stable", "near", [5], 18090)
    del table["lane"]["npus"]
    assert any(k == "lane.npus" and "missing required" in m for _, k, m in issues(table))


def test_changing_the_url_restarts_the_remote_lane_on_reload() -> None:
    one = far(parse(remote_lane()))
    two = far(parse(remote_lane(url="http://10.40.0.3:8000")))
    assert one.spawn_key() != two.spawn_key()


def test_check_config_shows_the_url_and_a_blue_green_candidate() -> None:
    text = render_summary(parse(remote_lane(url="https://gpu-b:8443")))
    row = next(line for line in text.splitlines() if line.startswith("far "))
    assert "remote" in row and "https://gpu-b:8443" in row
    assert "far (blue/green)" in text
