"""``[cluster]``, ``[[peers]]``, ``[lane.group]``, ``kv_role``: parsed, every misuse named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qwend.config.model import Config, KvRole, StartOrder
from qwend.config.parse import parse_config
from qwend.config.peering import cluster_warnings
from qwend.config.summary import render_summary
from qwend.errors import ConfigError
from tests.support.config_fixtures import Data, lane, valid_lanes, valid_main

MAIN = "qwend.toml"
BASE = Path("/etc/qwend")
TOKEN = {"token_file": "cluster.token"}


def main(cluster: Data | None = None, peers: list[Data] | None = None) -> Data:
    data = valid_main()
    if cluster is not None:
        data["cluster"] = cluster
    if peers is not None:
        data["peers"] = peers
    return data


def node1(**extra: Any) -> Data:
    return {"name": "node1", "url": "http://10.0.0.2:7710", **extra}


def parse(data: Data, lanes: dict[str, Data] | None = None, host_name: str = "") -> Config:
    files = valid_lanes() | (lanes or {})
    return parse_config(
        data, list(files.items()), main_name=MAIN, base_dir=BASE, host_name=host_name
    )


def issues(data: Data, lanes: dict[str, Data] | None = None) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as info:
        parse(data, lanes)
    return [(i.file, i.key, i.message) for i in info.value.issues]


def group_lane(members: list[str], **extra: Any) -> Data:
    table = lane("big", "dp", [0, 1], 18090)
    table["lane"]["group"] = {"members": members}
    table["lane"].update(extra)
    return table


def test_a_cluster_with_a_peer() -> None:
    config = parse(main({"name": "node0", "listen": "10.0.0.1:7710", **TOKEN}, [node1()]))
    assert config.cluster.name == "node0"
    assert str(config.cluster.listen) == "10.0.0.1:7710"
    assert config.cluster.token_file == BASE / "cluster.token"
    peer = config.peer("node1")
    assert (peer.host, peer.port, peer.tls, peer.timeout_s) == ("10.0.0.2", 7710, False, 5.0)
    assert peer.token_file == BASE / "cluster.token"  # the cluster's, by default


def test_the_hostname_is_the_default_name_and_a_bad_one_is_named() -> None:
    assert parse(main(), host_name="node7").cluster.name == "node7"
    with pytest.raises(ConfigError) as info:
        parse(main(), host_name="_bad")
    assert [(i.key, "set cluster.name" in i.message) for i in info.value.issues] == [
        ("cluster.name", True)
    ]


def test_the_peer_listener_never_runs_without_a_credential() -> None:
    [(file, key, message)] = issues(main({"name": "node0", "listen": "127.0.0.1:7710"}))
    assert (file, key) == (MAIN, "cluster.listen")
    assert "token_file" in message and "tls_client_ca" in message


def test_client_certificates_need_an_https_listener() -> None:
    found = issues(main({"name": "n0", "listen": "127.0.0.1:7710", "tls_client_ca": "ca.pem"}))
    assert "cluster.tls_client_ca" in [key for _, key, _ in found]


def test_the_peer_listener_needs_a_port_of_its_own() -> None:
    data = main({"name": "node0", "listen": "127.0.0.1:18088", **TOKEN})
    [(file, key, message)] = issues(data)
    assert (file, key) == (MAIN, "cluster.listen") and "already used by router.listen" in message


@pytest.mark.parametrize(
    ("peer", "key", "words"),
    [
        (node1(tls_ca="ca.pem"), "peers[0].tls_ca", "https://"),
        (node1(url="https://n1:7710", tls_cert="c.pem"), "peers[0].tls_key", "both"),
        ({"name": "node1", "url": "ftp://x"}, "peers[0].url", "http://"),
        (node1(name="node0"), "peers[0].name", "this host's"),
        (node1(timeout_s=0), "peers[0].timeout_s", "> 0"),
    ],
)
def test_every_peer_mistake_is_named(peer: Data, key: str, words: str) -> None:
    found = issues(main({"name": "node0", **TOKEN}, [peer]))
    assert [k for _, k, _ in found] == [key]
    assert words in found[0][2]


def test_a_peer_needs_a_credential_and_is_listed_once() -> None:
    found = issues(main({"name": "node0"}, [node1(), node1()]))
    keys = [k for _, k, _ in found]
    assert keys == ["peers[0].token_file", "peers[1].token_file", "peers[1].name"]


def test_a_group_member_on_this_host() -> None:
    lanes = {"lanes.d/big.toml": group_lane(["node0", "node1"])}
    config = parse(main({"name": "node1", **TOKEN}, [node1(name="node0")]), lanes)
    big = config.lane("big")
    assert big.group is not None and big.group.leader == "node0" and big.is_follower
    assert big.group.start_order is StartOrder.LEADER_FIRST
    assert big.group.start_sequence == ("node0", "node1")


def test_a_follower_may_omit_its_port_a_leader_only_when_a_lane_runs_on_it() -> None:
    follower = group_lane(["node0", "node1"])
    del follower["lane"]["port"]
    config = parse(main({"name": "node1", **TOKEN}, [node1(name="node0")]), {"b.toml": follower})
    assert config.lane("b").port == 0
    found = issues(main({"name": "node0", **TOKEN}, [node1()]), {"b.toml": follower})
    assert [(f, k) for f, k, _ in found] == [("b.toml", "lane.port")]


def test_followers_first_starts_the_leader_last() -> None:
    lanes = {"b.toml": group_lane(["node0", "node1"])}
    lanes["b.toml"]["lane"]["group"]["start_order"] = "followers_first"
    config = parse(main({"name": "node0", **TOKEN}, [node1()]), lanes)
    group = config.lane("b").group
    assert group is not None and group.start_sequence == ("node1", "node0") and group.is_leader


@pytest.mark.parametrize(
    ("members", "words"),
    [
        (["node1", "node2"], "is not a member"),
        (["node0", "node9"], '"node9" is not in [[peers]]'),
        (["node0"], "at least two"),
        (["node0", "node0"], "listed twice"),
    ],
)
def test_every_group_mistake_is_named(members: list[str], words: str) -> None:
    found = issues(main({"name": "node0", **TOKEN}, [node1()]), {"b.toml": group_lane(members)})
    assert [(f, k) for f, k, _ in found] == [("b.toml", "lane.group.members")]
    assert words in found[0][2]


def test_a_group_needs_this_hosts_name() -> None:
    found = issues(main(), {"b.toml": group_lane(["node0", "node1"])})
    assert found[0][1:] == ("lane.group.members", found[0][2])
    assert "set [cluster] name" in found[0][2]


def test_kv_role() -> None:
    lanes = {"p.toml": lane("prefill", "p", [0], 18090, kv_role="prefill")}
    assert parse(main(), lanes).lane("p").kv_role is KvRole.PREFILL
    lanes = {"p.toml": lane("prefill", "p", [0], 18090, kv_role="both")}
    [(file, key, message)] = issues(main(), lanes)
    assert (file, key) == ("p.toml", "lane.kv_role") and '"prefill"' in message


def test_the_summary_shows_the_cluster_and_each_member() -> None:
    lanes = {"b.toml": group_lane(["node0", "node1"], kv_role="decode")}
    cluster = {"name": "node0", "listen": "10.0.0.1:7710", **TOKEN}
    text = render_summary(parse(main(cluster, [node1()]), lanes))
    assert "cluster  this host is node0, peers connect to http://10.0.0.1:7710 (token)" in text
    assert "peer     node1 http://10.0.0.2:7710" in text
    [row] = [line for line in text.splitlines() if line.startswith("b ")]
    assert "active, leads node1" in row and "text (decode)" in row
    follower = parse(main({"name": "node1", **TOKEN}, [node1(name="node0")]), lanes)
    assert "member, led by node0" in render_summary(follower)


def test_check_config_warns_of_a_token_in_clear_and_a_host_peers_cannot_reach() -> None:
    cluster = {"name": "node0", "listen": "0.0.0.0:7710", **TOKEN}
    peers = [node1(), {"name": "node2", "url": "https://n2:7710", "tls_verify": False}]
    warnings = cluster_warnings(parse(main(cluster, peers)))
    assert len(warnings) == 3
    assert "0.0.0.0:7710 is reachable from other hosts over plain HTTP" in warnings[0]
    assert "peer node1: http://10.0.0.2:7710 is plain HTTP" in warnings[1]
    assert "peer node2: tls_verify = false" in warnings[2]
    quiet = {"name": "node0", "listen": "127.0.0.1:7710", **TOKEN}
    assert cluster_warnings(parse(main(quiet, [node1(url="http://127.0.0.1:7711")]))) == []
    alone = main({"name": "node0", **TOKEN}, [node1(url="https://10.0.0.2:7710")])
    [unreachable] = cluster_warnings(parse(alone))
    assert "cluster.listen is unset: peers cannot reach this host" in unreachable
