"""The pure parts of peering: token check, refusal log, cluster view, its rendering,
HOST/NAME on qwenctl's command line, and the peer listener's gate (no sockets)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from qwend.api.messages import DaemonInfo, LaneInfo, StatusResponse
from qwend.cli.main import _split_host
from qwend.cli.render import render_cluster
from qwend.cluster.refusals import RefusalLog
from qwend.cluster.secrets import CredentialError, TokenCheck, read_token
from qwend.cluster.view import PeerAnswer, cluster_view
from qwend.control.peerauth import peer_gate

TOKEN = "0123456789abcdef0123456789abcdef"


def test_the_token_is_checked_on_its_digest() -> None:
    check = TokenCheck.of(TOKEN)
    assert check.verdict(f"Bearer {TOKEN}") is None
    assert check.verdict(f"bearer {TOKEN}") is None  # the scheme is case-insensitive
    assert check.verdict(None) == "missing"
    assert check.verdict("") == "missing"
    assert check.verdict(f"Basic {TOKEN}") == "wrong"
    assert check.verdict(f"Bearer {TOKEN[:-1]}") == "wrong"
    assert check.verdict(f"Bearer {TOKEN}x") == "wrong"
    assert check.verdict("Bearer \udcff\udcfe") == "wrong"  # bytes that are not UTF-8
    assert TOKEN not in repr(check)


def _token_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "cluster.token"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_token_file_is_read_like_a_secret(tmp_path: Path) -> None:
    assert read_token(_token_file(tmp_path, f"# rotated today\n\n{TOKEN}\n"), "t") == TOKEN
    with pytest.raises(CredentialError, match=r"readable by every user \(mode 0644\)"):
        read_token(_token_file(tmp_path, TOKEN, 0o644), "[cluster] token_file")
    with pytest.raises(CredentialError, match="at least 16"):
        read_token(_token_file(tmp_path, "short"), "t")
    with pytest.raises(CredentialError, match="holds no token"):
        read_token(_token_file(tmp_path, "# nothing\n"), "t")
    with pytest.raises(CredentialError, match="spaces"):
        read_token(_token_file(tmp_path, f"{TOKEN} {TOKEN}"), "t")
    with pytest.raises(CredentialError, match="cannot read"):
        read_token(tmp_path / "missing", "t")


def test_refusals_are_logged_once_per_address_then_summarised() -> None:
    log = RefusalLog(every_s=60.0, max_addresses=2)
    assert log.should_log("10.0.0.2", 0.0) == 0
    assert log.should_log("10.0.0.2", 1.0) is None
    assert log.should_log("10.0.0.2", 2.0) is None
    assert log.should_log("10.0.0.3", 2.0) == 0  # another address: its own first line
    assert log.should_log("10.0.0.2", 61.0) == 2  # the summary counts what was quiet
    assert log.should_log("10.0.0.2", 62.0) is None
    # Bounded: a third address evicts the least recently seen (10.0.0.3).
    assert log.should_log("10.0.0.4", 63.0) == 0
    assert log.should_log("10.0.0.3", 64.0) == 0


def _status(*lanes: str) -> StatusResponse:
    daemon = DaemonInfo(version="1", pid=7, started_at=0.0, uptime_s=65.0, config_path="x")
    infos = tuple(LaneInfo(name, "chat", "v", "ready", True, name == lanes[0]) for name in lanes)
    return StatusResponse(daemon=daemon, active={"chat": lanes[0]}, lanes=infos)


def test_the_cluster_view_puts_this_host_first_and_keeps_peer_order() -> None:
    view = cluster_view(
        "node0",
        _status("a"),
        [
            PeerAnswer("node2", None, "peer node2 (http://x) is unreachable: refused", 0.0031),
            PeerAnswer("node1", _status("b"), "", 0.0123),
        ],
    )
    assert [(h.name, h.local, h.reachable) for h in view.hosts] == [
        ("node0", True, True),
        ("node2", False, False),
        ("node1", False, True),
    ]
    assert view.hosts[1].error.endswith("refused") and view.hosts[1].status is None
    assert view.hosts[2].error == "" and view.hosts[2].elapsed_ms == 12.3
    assert type(view).from_dict(view.to_dict()) == view
    text = render_cluster(view)
    assert "node0 (this host): qwend 1  pid 7" in text
    assert "node2: unreachable: peer node2 (http://x) is unreachable: refused" in text
    assert "node1: qwend 1" in text and "answered in 12ms" in text
    table_rows = [line.split()[:2] for line in text.splitlines() if line.startswith("node")]
    assert ["node0", "a"] in table_rows and ["node1", "b"] in table_rows
    assert text.splitlines()[4].startswith("HOST")


@pytest.mark.parametrize(
    ("command", "name", "host", "want"),
    [
        ("promote", "node1/b2", None, ("node1", "b2")),
        ("stop", "node1/b2", "node1", ("node1", "b2")),
        ("rollback", "node1/chat", None, ("node1", "chat")),
        ("logs", "b2", "node1", ("node1", "b2")),
        ("status", None, None, (None, None)),
    ],
)
def test_host_slash_name(
    command: str, name: str | None, host: str | None, want: tuple[object, ...]
) -> None:
    args = argparse.Namespace(command=command, name=name, host=host)
    _split_host(args)
    assert (args.host, args.name) == want


@pytest.mark.parametrize(
    ("name", "host", "message"),
    [
        ("node1/b2", "node2", "--host says 'node2'"),
        ("/b2", None, "HOST/NAME"),
        ("node1/", None, "HOST/NAME"),
        ("a/b/c", None, "HOST/NAME"),
    ],
)
def test_host_slash_name_mistakes(name: str, host: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        _split_host(argparse.Namespace(command="start", name=name, host=host))


async def _ok(_request: web.Request) -> web.StreamResponse:
    return web.json_response({"ok": True})


@pytest.mark.parametrize(
    ("path", "authorization", "status"),
    [
        ("/v1/status", None, 401),
        ("/v1/status", "Bearer wrong-token-wrong-token", 403),
        ("/v1/status", f"Bearer {TOKEN}", 200),
        ("/v1/hosts/node1/status", f"Bearer {TOKEN}", 403),
        ("/v1/cluster", f"Bearer {TOKEN}", 403),
        ("/v1/hosts/node1/status", None, 401),  # credentials are checked first
    ],
)
async def test_the_peer_gate(path: str, authorization: str | None, status: int) -> None:
    gate = peer_gate(TokenCheck.of(TOKEN), refusals=RefusalLog(), clock=lambda: 0.0)
    headers = {"Authorization": authorization} if authorization else {}
    response = await gate(make_mocked_request("GET", path, headers=headers), _ok)
    assert response.status == status
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    if status != 200:
        assert isinstance(response, web.Response) and response.text is not None
        assert '"code": "bad_request"' in response.text and TOKEN not in response.text


async def test_a_gate_for_client_certificates_only_still_refuses_forwarding() -> None:
    gate = peer_gate(None)
    ok = await gate(make_mocked_request("GET", "/v1/lanes"), _ok)
    assert ok.status == 200
    refused = await gate(make_mocked_request("POST", "/v1/hosts/node2/lanes/a/stop"), _ok)
    assert refused.status == 403
