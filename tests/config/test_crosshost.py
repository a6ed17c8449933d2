"""Multi-host presets and the cross-host check: the shipped layouts are consistent on every
host and across hosts, and each inconsistency an operator can make by hand is caught with
a message naming the host, the file, the key and what was expected."""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from qwend.cli.exit import ExitStatus as CliStatus
from qwend.cli.main import main as qwenctl
from qwend.config.check import render_cluster_check
from qwend.config.crosshost import check_hosts
from qwend.config.load import check_cluster, check_config, load_config
from qwend.config.parallel import vllm_layout
from qwend.config.presets import ClusterPreset, install_cluster_preset, list_cluster_presets
from qwend.config.presetvalues import PresetValueError, fill, preset_values
from qwend.daemon.check_config import main as check_main
from qwend.daemon.exit import ExitStatus

DP = "qwen3.5-397b-a17b-dp-2node"
PD = "qwen3.5-397b-a17b-1p2d"
RAY = "qwen3.5-397b-a17b-ray-2node"
ADDRESSES = {
    DP: ["node0=10.0.0.1", "node1=10.0.0.2"],
    RAY: ["node0=10.0.0.1", "node1=10.0.0.2"],
    PD: ["prefill=10.0.0.1", "decode0=10.0.0.2", "decode1=10.0.0.3"],
}


def _preset(name: str) -> ClusterPreset:
    return next(p for p in list_cluster_presets() if p.name == name)


def _render(name: str, target: Path) -> list[Path]:
    """Every host's files of preset ``name`` under ``target/HOST``; the host directories."""
    preset = _preset(name)
    values = preset_values(preset.hosts, ADDRESSES[name], ["eth0"])
    install_cluster_preset(preset, values, target)
    return [target / host for host in preset.hosts]


def test_the_multi_host_presets_are_the_recipes_layouts() -> None:
    presets = {p.name: p for p in list_cluster_presets()}
    assert sorted(presets) == [PD, DP, RAY]
    assert presets[DP].hosts == presets[RAY].hosts == ("node0", "node1")
    assert presets[PD].hosts == ("prefill", "decode0", "decode1")
    assert all(p.summary for p in presets.values())


@pytest.mark.parametrize("name", [DP, PD, RAY])
def test_each_host_and_the_cluster_pass_check_config(name: str, tmp_path: Path) -> None:
    dirs = _render(name, tmp_path)
    for directory in dirs:
        check = check_config(directory)
        assert check.ok, check.issues
        assert check.config is not None and check.config.cluster.name == directory.name
    cluster = check_cluster(dirs)
    assert cluster.ok, cluster.cross
    assert cluster.cross is not None and cluster.cross.warnings == ()


@pytest.mark.parametrize("name", [DP, PD, RAY])
def test_no_placeholder_or_invented_address_is_left(name: str, tmp_path: Path) -> None:
    dirs = _render(name, tmp_path)
    texts = [f.read_text() for d in dirs for f in [d / "qwend.toml", *d.glob("lanes.d/*")]]
    assert not any("@address:" in t or "@nic:" in t for t in texts)
    # Every non-loopback address in the files is one the operator gave.
    given = {a.split("=")[1] for a in ADDRESSES[name]}
    for directory in dirs:
        config = load_config(directory / "qwend.toml")
        assert config.cluster.listen is not None and config.cluster.listen.host in given
        assert {p.host for p in config.peers} <= given
        for lane in config.lanes:
            assert lane.env["HCCL_IF_IP"] in given if not lane.is_remote else True


@pytest.mark.parametrize("name", [DP, PD])
def test_the_vllm_lanes_keep_the_recipes_flags(name: str, tmp_path: Path) -> None:
    for directory in _render(name, tmp_path):
        for lane in load_config(directory / "qwend.toml").lanes:
            if lane.is_remote:
                continue
            argv = lane.argv()
            layout, problems = vllm_layout(argv)
            assert layout is not None and not problems
            assert layout.npus == len(lane.npus) == 16
            assert argv[argv.index("--served-model-name") + 1] == lane.backend_model
            assert argv[argv.index("--max-model-len") + 1] == str(lane.max_model_len)
            assert "--quantization" in argv and "--enable-expert-parallel" in argv
            spec = json.loads(argv[argv.index("--speculative-config") + 1])
            assert spec["method"] == "qwen3_5_mtp"
            for key in ("GLOO_SOCKET_IFNAME", "TP_SOCKET_IFNAME", "HCCL_SOCKET_IFNAME"):
                assert lane.env[key] == "eth0"


def test_the_pd_preset_pairs_one_prefill_lane_with_two_decode_hosts(tmp_path: Path) -> None:
    prefill, decode0, decode1 = (load_config(d / "qwend.toml") for d in _render(PD, tmp_path))
    roles = {lane.name: (lane.kv_role, lane.is_remote) for lane in prefill.lanes}
    assert {
        name: (role.value if role else None, remote) for name, (role, remote) in roles.items()
    } == {
        "prefill": ("prefill", False),
        "decode0": ("decode", True),
        "decode1": ("decode", True),
    }
    assert prefill.lane("decode0").base_url == "http://10.0.0.2:30050"
    for config, address in ((decode0, "10.0.0.2"), (decode1, "10.0.0.3")):
        (lane,) = config.lanes
        assert lane.host == address and lane.port == 30050
        kv = json.loads(lane.argv()[lane.argv().index("--kv-transfer-config") + 1])
        assert kv["kv_role"] == "kv_consumer" and kv["kv_connector"] == "MooncakeLayerwiseConnector"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


# (preset, file relative to the render, old text, new text, file of the issue, key, words)
SEEDED = [
    pytest.param(
        DP,
        "node1/lanes.d/stable.toml",
        '"--data-parallel-address", "10.0.0.1"',
        '"--data-parallel-address", "10.0.0.7"',
        "node1/lanes.d/stable.toml",
        "lane.command --data-parallel-address",
        ["[node1]", "10.0.0.7", "node0's address 10.0.0.1"],
        id="follower-dp-address",
    ),
    pytest.param(
        DP,
        "node1/lanes.d/stable.toml",
        '"--data-parallel-rpc-port", "13389"',
        '"--data-parallel-rpc-port", "13390"',
        "node1/lanes.d/stable.toml",
        "lane.command --data-parallel-rpc-port",
        ["[node1]", "13390", "uses 13389"],
        id="rpc-port",
    ),
    pytest.param(
        DP,
        "node1/lanes.d/stable.toml",
        '"--data-parallel-size", "2"',
        '"--data-parallel-size", "3"',
        "node1/lanes.d/stable.toml",
        "lane.command --data-parallel-size",
        ["[node1]", "--data-parallel-size 3", "leader node0's is 2"],
        id="dp-size-differs",
    ),
    pytest.param(
        DP,
        "node1/lanes.d/stable.toml",
        '"--data-parallel-start-rank", "1"',
        '"--data-parallel-start-rank", "0"',
        "node1/lanes.d/stable.toml",
        "lane.command --data-parallel-start-rank",
        ["[node1]", "start-rank 0", "start at 1"],
        id="overlapping-start-rank",
    ),
    pytest.param(
        DP,
        "node1/lanes.d/stable.toml",
        '    "--data-parallel-start-rank", "1",\n',
        "",
        "node1/lanes.d/stable.toml",
        "lane.command --data-parallel-start-rank",
        ["[node1]", "no --data-parallel-start-rank (0)", "start at 1"],
        id="missing-start-rank",
    ),
    pytest.param(
        DP,
        "node1/lanes.d/stable.toml",
        '    "--headless",\n',
        "",
        "node1/lanes.d/stable.toml",
        "lane.command --headless",
        ["[node1]", "add --headless"],
        id="follower-not-headless",
    ),
    pytest.param(
        DP,
        "node1/lanes.d/stable.toml",
        '"num_speculative_tokens": 3',
        '"num_speculative_tokens": 2',
        "node1/lanes.d/stable.toml",
        "lane.command --speculative-config",
        ["[node1]", 'num_speculative_tokens": 2', "on the leader node0"],
        id="model-flags-differ",
    ),
    pytest.param(
        DP,
        "node1/lanes.d/stable.toml",
        'HCCL_IF_IP = "10.0.0.2"',
        'HCCL_IF_IP = "10.0.0.1"',
        "node1/lanes.d/stable.toml",
        "lane.env.HCCL_IF_IP",
        ["[node1]", "HCCL_IF_IP 10.0.0.1", "this host's address 10.0.0.2"],
        id="hccl-if-ip",
    ),
    pytest.param(
        DP,
        "node0/lanes.d/stable.toml",
        'TP_SOCKET_IFNAME = "eth0"',
        'TP_SOCKET_IFNAME = "eth1"',
        "node0/lanes.d/stable.toml",
        "lane.env.GLOO_SOCKET_IFNAME",
        ["[node0]", "TP_SOCKET_IFNAME=eth1", "name one interface"],
        id="ifnames-differ",
    ),
    pytest.param(
        DP,
        "node1/lanes.d/stable.toml",
        'GLOO_SOCKET_IFNAME = "eth0"\n',
        "",
        "node1/lanes.d/stable.toml",
        "lane.env.GLOO_SOCKET_IFNAME",
        ["[node1]", "GLOO_SOCKET_IFNAME set on other members but not here"],
        id="ifname-missing-on-a-member",
    ),
    pytest.param(
        DP,
        "node1/lanes.d/stable.toml",
        'start_order = "leader_first"',
        'start_order = "followers_first"',
        "node1/lanes.d/stable.toml",
        "lane.group.members",
        ["[node1]", "'followers_first'", "same [lane.group] on every member"],
        id="group-differs",
    ),
    pytest.param(
        DP,
        "node1/qwend.toml",
        'tls_cert = "/etc/qwend/tls/node1.pem"\ntls_key = "/etc/qwend/tls/node1.key"\n',
        "",
        "node0/qwend.toml",
        "peers[0].url",
        ["[node0]", "(plain HTTP)", "expected url http://10.0.0.2:7710"],
        id="peer-url-scheme",
    ),
    pytest.param(
        DP,
        "node1/qwend.toml",
        'listen = "10.0.0.2:7710"',
        'listen = "10.0.0.2:7711"',
        "node0/qwend.toml",
        "peers[0].url",
        ["[node0]", "listen is 10.0.0.2:7711", "got https://10.0.0.2:7710"],
        id="peer-url-port",
    ),
    pytest.param(
        PD,
        "decode0/lanes.d/decode.toml",
        '"kv_port": "36010"',
        '"kv_port": "6880"',
        "decode0/lanes.d/decode.toml",
        "lane.command --kv-transfer-config",
        ["[decode0]", "6880-6895", "--data-parallel-rpc-port uses 6884"],
        id="kv-port-range-clash",
    ),
    pytest.param(
        PD,
        "prefill/lanes.d/prefill.toml",
        '"kv_port": "23010"',
        '"kv_port": "30050"',
        "prefill/lanes.d/prefill.toml",
        "lane.command --kv-transfer-config",
        ["[prefill]", "30050-30065", "lane prefill port uses 30060"],
        id="kv-port-on-lane-port",
    ),
    pytest.param(
        PD,
        "decode1/lanes.d/decode.toml",
        '"decode": {"dp_size": 8, "tp_size": 2}',
        '"decode": {"dp_size": 16, "tp_size": 2}',
        "decode1/lanes.d/decode.toml",
        "lane.command --kv-transfer-config",
        ["[decode1]", "decode says dp_size 16", "--data-parallel-size 8"],
        id="mooncake-layout",
    ),
    pytest.param(
        PD,
        "prefill/lanes.d/decode1.toml",
        'kv_role = "decode"',
        'kv_role = "prefill"',
        "prefill/lanes.d/decode1.toml",
        "lane.kv_role",
        ["[prefill]", "remote lane 'decode1'", "decode1's lane 'decode'"],
        id="remote-kv-role",
    ),
    pytest.param(
        PD,
        "prefill/lanes.d/decode0.toml",
        'url = "http://10.0.0.2:30050"',
        'url = "http://10.0.0.2:30051"',
        "prefill/lanes.d/decode0.toml",
        "lane.url",
        ["[prefill]", "no lane of decode0", "port 30051"],
        id="remote-url-port",
    ),
    pytest.param(
        PD,
        "decode1/lanes.d/decode.toml",
        'host = "10.0.0.3"',
        'host = "127.0.0.1"',
        "prefill/lanes.d/decode1.toml",
        "lane.url",
        ["[prefill]", "listens on 127.0.0.1", "unreachable from prefill"],
        id="remote-lane-on-loopback",
    ),
]


@pytest.mark.parametrize(("name", "edit", "old", "new", "file", "key", "words"), SEEDED)
def test_each_seeded_inconsistency_is_caught_precisely(
    tmp_path: Path,
    name: str,
    edit: str,
    old: str,
    new: str,
    file: str,
    key: str,
    words: list[str],
) -> None:
    dirs = _render(name, tmp_path)
    _edit(tmp_path / edit, old, new)
    check = check_cluster(dirs)
    assert all(h.ok for h in check.hosts), [h.issues for h in check.hosts]
    assert check.cross is not None and not check.ok
    (issue,) = check.cross.issues
    assert issue.file == str(tmp_path / file)
    assert issue.key == key
    for word in words:
        assert word in issue.message, (word, issue.message)


def test_a_kv_role_against_the_transfer_config_is_caught_by_the_hosts_own_check(
    tmp_path: Path,
) -> None:
    """Every host's check-config compares a lane's kv_role with its --kv-transfer-config
    (``qwend.config.kvconfig``), so the host's own check names it, before any cross check."""
    dirs = _render(PD, tmp_path)
    _edit(
        tmp_path / "decode0/lanes.d/decode.toml",
        '"kv_role": "kv_consumer"',
        '"kv_role": "kv_producer"',
    )
    check = check_cluster(dirs)
    assert not check.ok and check.cross is None
    (issue,) = [i for h in check.hosts for i in h.issues]
    assert issue.file == "lanes.d/decode.toml" and issue.key == "lane.kv_role"
    assert "'kv_producer'" in issue.message and 'kv_role = "decode"' in issue.message


def test_a_member_whose_configuration_is_missing_is_named(tmp_path: Path) -> None:
    node0, _ = _render(DP, tmp_path)
    check = check_cluster([node0])
    assert check.cross is not None
    messages = [str(i) for i in check.cross.issues]
    assert any("peer 'node1' is none of the hosts checked (node0)" in m for m in messages)
    assert any("member 'node1', whose configuration was not given" in m for m in messages)


def test_a_host_without_its_group_lane_is_named(tmp_path: Path) -> None:
    dirs = _render(DP, tmp_path)
    (tmp_path / "node1/lanes.d/stable.toml").unlink()
    check = check_cluster(dirs)
    assert check.cross is not None
    (issue,) = check.cross.issues
    assert issue.file == str(tmp_path / "node1/qwend.toml") and issue.key == "lane.group"
    assert "no such lane" in issue.message and "lanes.d/stable.toml" in issue.message


def test_two_hosts_with_one_name_are_refused(tmp_path: Path) -> None:
    dirs = _render(DP, tmp_path)
    configs = [load_config(d / "qwend.toml") for d in dirs]
    result = check_hosts([configs[0], configs[0]])
    assert [i.key for i in result.issues][:1] == ["cluster.name"]


def test_a_host_that_is_not_valid_is_not_compared(tmp_path: Path) -> None:
    dirs = _render(DP, tmp_path)
    _edit(tmp_path / "node1/lanes.d/stable.toml", "npus = [0,", "npus = [99,")
    check = check_cluster(dirs)
    assert check.cross is None and not check.ok
    _, err = render_cluster_check(check)
    assert "node1" in err and "not compared" in err


def test_check_config_cluster_command(tmp_path: Path) -> None:
    dirs = [str(d) for d in _render(PD, tmp_path)]
    out, err = io.StringIO(), io.StringIO()
    assert check_main(["--cluster", *dirs], stdout=out, stderr=err) == ExitStatus.OK
    assert "cluster: 3 hosts agree" in out.getvalue() and err.getvalue() == ""
    assert "prefill" in out.getvalue() and "valid, 3 lanes" in out.getvalue()
    _edit(tmp_path / "prefill/lanes.d/decode1.toml", 'kv_role = "decode"', 'kv_role = "prefill"')
    out, err = io.StringIO(), io.StringIO()
    assert check_main(["--cluster", *dirs], stdout=out, stderr=err) == ExitStatus.CONFIG
    assert "the hosts disagree" in err.getvalue()
    assert f"{tmp_path}/prefill/lanes.d/decode1.toml: lane.kv_role: [prefill]" in err.getvalue()


def test_preset_values_need_every_address_and_a_nic() -> None:
    hosts = ("node0", "node1")
    values = preset_values(hosts, ["node0=10.0.0.1", "node1=node1.example"], ["eth0", "node1=ib0"])
    assert values == {
        "address:node0": "10.0.0.1",
        "address:node1": "node1.example",
        "nic:node0": "eth0",
        "nic:node1": "ib0",
    }
    bad = {
        "missing --address node1=ADDRESS": (["node0=10.0.0.1"], ["eth0"]),
        "--nic node0=IFNAME, --nic node1=IFNAME": (["node0=10.0.0.1", "node1=10.0.0.2"], []),
        "no host 'node2'": (["node2=10.0.0.1"], ["eth0"]),
        "not a wildcard or loopback": (["node0=127.0.0.1", "node1=10.0.0.2"], ["eth0"]),
        "not an IP address or host name": (["node0=10.0.0.300", "node1=10.0.0.2"], ["eth0"]),
        "expected HOST=ADDRESS": (["10.0.0.1"], ["eth0"]),
        "both have 10.0.0.1": (["node0=10.0.0.1", "node1=10.0.0.1"], ["eth0"]),
        "not a network interface name": (["node0=10.0.0.1", "node1=10.0.0.2"], ["eth 0"]),
    }
    for words, (addresses, nics) in bad.items():
        with pytest.raises(PresetValueError) as caught:
            preset_values(hosts, addresses, nics)
        assert words in str(caught.value), (words, str(caught.value))


def test_fill_refuses_a_placeholder_without_a_value() -> None:
    assert fill('a = "@address:node0@"', {"address:node0": "10.0.0.1"}, "x") == 'a = "10.0.0.1"'
    with pytest.raises(PresetValueError, match="x: no value for @nic:node3@"):
        fill("@nic:node3@", {}, "x")


@pytest.mark.parametrize("name", [DP, PD, RAY])
def test_every_placeholder_names_a_host_of_the_preset(name: str) -> None:
    preset = _preset(name)
    values = {f"{kind}:{host}": "v" for kind in ("address", "nic") for host in preset.hosts}
    for host in preset.hosts:
        for relative in preset.files(host):
            fill((preset.path / host / relative).read_text(), values, f"{host}/{relative}")


def _qwenctl(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = qwenctl(list(argv), env={}, stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_init_writes_every_hosts_files_then_one_hosts(tmp_path: Path) -> None:
    addresses = [arg for a in ADDRESSES[DP] for arg in ("--address", a)]
    status, out, err = _qwenctl(
        "init", "--preset", DP, "--dir", str(tmp_path / "all"), *addresses, "--nic", "eth0"
    )
    assert status == CliStatus.OK, err
    assert "qwend check-config --cluster" in out and "not consistent" not in out
    assert check_cluster([tmp_path / "all" / "node0", tmp_path / "all" / "node1"]).ok
    # One host's files straight into its configuration directory.
    target = tmp_path / "etc-qwend"
    status, out, err = _qwenctl(
        "--json", "init", "--preset", DP, "--host", "node1", "--dir", str(target), *addresses,
        "--nic", "node0=eth0", "--nic", "node1=ens3",
    )  # fmt: skip
    assert status == CliStatus.OK, err
    result = json.loads(out)
    assert result["valid"] is True and list(result["hosts"]) == ["node1"]
    config = load_config(target / "qwend.toml")
    assert (
        config.cluster.name == "node1" and config.lane("stable").env["GLOO_SOCKET_IFNAME"] == "ens3"
    )
    assert (target / "lanes.d" / "stable.toml").read_text() == (
        tmp_path / "all" / "node1" / "lanes.d" / "stable.toml"
    ).read_text().replace('"eth0"', '"ens3"')
    # A second run would overwrite: refused, nothing written.
    status, _, err = _qwenctl(
        "init", "--preset", DP, "--host", "node1", "--dir", str(target), *addresses, "--nic", "x0"
    )
    assert status == CliStatus.CONFLICT and "would overwrite" in err
    assert load_config(target / "qwend.toml").lane("stable").env["GLOO_SOCKET_IFNAME"] == "ens3"


def test_init_of_a_multi_host_preset_never_guesses(tmp_path: Path) -> None:
    status, _, err = _qwenctl("init", "--preset", PD, "--host", "decode0", "--dir", str(tmp_path))
    assert status == CliStatus.USAGE
    assert "--address prefill=ADDRESS" in err and "never guessed" in err
    status, _, err = _qwenctl("init", "--preset", PD, "--address", "prefill=10.0.0.1")
    assert status == CliStatus.USAGE and "--host NAME" in err and "--dir DIR" in err
    addresses = [arg for a in ADDRESSES[PD] for arg in ("--address", a)]
    status, _, err = _qwenctl(
        "init", "--preset", PD, "--host", "node9", "--dir", str(tmp_path), *addresses, "--nic", "e0"
    )
    assert status == CliStatus.NOT_FOUND and 'no host "node9"' in err
    status, _, err = _qwenctl(
        "init", "--preset", "a3-qwen3.5-397b-a17b-w8a8", "--dir", str(tmp_path), "--host", "x"
    )
    assert status == CliStatus.USAGE and "single-host preset" in err
    assert list(tmp_path.iterdir()) == []


def test_qwenctl_check_config_cluster(tmp_path: Path) -> None:
    dirs = [str(d) for d in _render(DP, tmp_path)]
    status, out, err = _qwenctl("check-config", "--cluster", *dirs)
    assert status == CliStatus.OK and "cluster: 2 hosts agree" in out and err == ""
    _edit(tmp_path / "node1/lanes.d/stable.toml", '"13389"', '"13390"')
    status, out, _ = _qwenctl("--json", "check-config", "--cluster", *dirs)
    assert status == CliStatus.USAGE
    data = json.loads(out)
    assert data["ok"] is False and data["compared"] is True
    assert [h["name"] for h in data["hosts"]] == ["node0", "node1"]
    (error,) = data["errors"]
    assert error["file"] == str(tmp_path / "node1/lanes.d/stable.toml")
    assert error["key"] == "lane.command --data-parallel-rpc-port"
    status, _, err = _qwenctl("check-config", dirs[0], "--cluster", *dirs)
    assert status == CliStatus.USAGE and "not both" in err


def test_a_pd_lane_of_another_engine_is_not_held_to_vllms_flags(tmp_path: Path) -> None:
    """qwend-sim (or any non-vLLM server) with a kv_role has no --kv-transfer-config."""
    dirs = _render(PD, tmp_path)
    lane = tmp_path / "decode0/lanes.d/decode.toml"
    text = lane.read_text()
    start = text.index("command = [")
    end = text.index("]\n", start) + 2
    lane.write_text(
        text[:start] + 'command = ["qwend-sim", "serve", "--port", "{port}"]\n' + text[end:]
    )
    check = check_cluster(dirs)
    assert check.ok, check.cross


def test_a_peer_without_the_credential_its_listener_asks_for(tmp_path: Path) -> None:
    node0, node1 = (load_config(d / "qwend.toml") for d in _render(DP, tmp_path))
    mtls_only = dataclasses.replace(
        node1.cluster, token_file=None, tls_client_ca=Path("/etc/qwend/tls/ca.pem")
    )
    (issue,) = check_hosts([node0, dataclasses.replace(node1, cluster=mtls_only)]).issues
    assert (issue.file, issue.key) == (str(tmp_path / "node0/qwend.toml"), "peers[0].tls_cert")
    assert "[node0] node1's listener accepts only client certificates" in issue.message
    no_token = dataclasses.replace(node0.peers[0], token_file=None, tls_cert=Path("/c.pem"))
    (issue,) = check_hosts([dataclasses.replace(node0, peers=(no_token,)), node1]).issues
    assert issue.key == "peers[0].token_file" and "asks for the cluster token" in issue.message


def test_a_decode_host_no_router_reaches_is_pointed_out(tmp_path: Path) -> None:
    dirs = _render(PD, tmp_path)
    (tmp_path / "prefill/lanes.d/decode1.toml").unlink()
    check = check_cluster(dirs)
    assert check.ok and check.cross is not None
    (warning,) = check.cross.warnings
    assert warning.startswith("decode1: decode lane decode") and "no router pairs it" in warning


def test_the_installed_programs_write_and_check_a_cluster(tmp_path: Path) -> None:
    """qwenctl init and qwend check-config --cluster as an operator runs them."""
    bin_dir = Path(sys.executable).parent
    addresses = [arg for a in ADDRESSES[PD] for arg in ("--address", a)]
    init = [str(bin_dir / "qwenctl"), "init", "--preset", PD, "--dir", str(tmp_path)]
    done = subprocess.run(
        [*init, *addresses, "--nic", "eth0"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    dirs = [str(tmp_path / host) for host in ("prefill", "decode0", "decode1")]
    check = [str(bin_dir / "qwend"), "check-config", "--cluster", *dirs]
    done = subprocess.run(check, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("cluster: 3 hosts agree\n") and done.stderr == ""
    _edit(
        tmp_path / "decode1/lanes.d/decode.toml",
        'HCCL_IF_IP = "10.0.0.3"',
        'HCCL_IF_IP = "10.0.0.2"',
    )
    done = subprocess.run(check, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "decode1/lanes.d/decode.toml: lane.env.HCCL_IF_IP: [decode1]" in done.stderr
