"""How qwend reaches a remote lane: key file checks, the Bearer header, TLS, timeouts."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest

from qwend.config.model import LaneConfig, RemoteConfig
from qwend.errors import LaneError
from qwend.supervisor.remote import (
    LOCAL,
    RemoteLaneAction,
    access,
    refuse_process_action,
    tls_problem,
    tls_warning,
)

KEY = "sk-upstream-0123"


def remote_lane(**remote: object) -> LaneConfig:
    settings = RemoteConfig(url=str(remote.pop("url", "http://10.0.0.12:8000")), **remote)  # type: ignore[arg-type]
    return LaneConfig("far", "stable", "v3", (), 8000, "m", (), remote=settings)


def key_file(
    tmp_path: Path, text: str = f"# rotated monthly\n\n{KEY}\n", mode: int = 0o640
) -> Path:
    path = tmp_path / "far.key"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_local_lane_gets_no_key_and_no_tls() -> None:
    local = LaneConfig("near", "stable", "v3", (0,), 18084, "m", ("x",))
    assert access(local) is LOCAL and LOCAL.headers == {} and LOCAL.ssl is True
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5.0)
    assert LOCAL.adjust(timeout) is timeout


def test_the_key_is_sent_as_bearer_and_kept_out_of_reprs(tmp_path: Path) -> None:
    acc = access(remote_lane(api_key_file=key_file(tmp_path), connect_timeout_s=1.5))
    assert acc.headers == {"Authorization": f"Bearer {KEY}"}
    assert KEY not in repr(acc)
    merged = acc.with_headers({"Authorization": "Bearer client-key", "X-Request-Id": "r1"})
    assert merged == {"Authorization": f"Bearer {KEY}", "X-Request-Id": "r1"}
    adjusted = acc.adjust(aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=9.0))
    assert (adjusted.sock_connect, adjusted.sock_read, adjusted.total) == (1.5, 9.0, None)


def test_a_rotated_key_is_picked_up(tmp_path: Path) -> None:
    path = key_file(tmp_path)
    lane = remote_lane(api_key_file=path)
    assert access(lane).headers["Authorization"] == f"Bearer {KEY}"
    path.write_text("sk-next-key-4567-longer\n")
    assert access(lane).headers["Authorization"] == "Bearer sk-next-key-4567-longer"


@pytest.mark.parametrize(
    ("text", "mode", "fragment"),
    [
        (KEY, 0o644, "readable by every user (mode 0644); chmod o-rwx"),
        ("# nothing\n\n", 0o600, "holds no key"),
        ("sk one two\n", 0o600, "spaces"),
    ],
)
def test_an_unusable_key_file_says_what_to_do(
    tmp_path: Path, text: str, mode: int, fragment: str
) -> None:
    with pytest.raises(LaneError, match="lane far: api_key_file") as info:
        access(remote_lane(api_key_file=key_file(tmp_path, text, mode)))
    assert fragment in str(info.value)


def test_a_missing_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(LaneError, match=r"cannot read api_key_file .*nope\.key"):
        access(remote_lane(api_key_file=tmp_path / "nope.key"))


def test_https_verifies_by_default_and_tls_verify_false_turns_it_off() -> None:
    strict = access(remote_lane(url="https://gpu-b:8443")).ssl
    assert isinstance(strict, ssl.SSLContext)
    assert strict.verify_mode is ssl.CERT_REQUIRED and strict.check_hostname
    loose = access(remote_lane(url="https://gpu-b:8443", tls_verify=False)).ssl
    assert isinstance(loose, ssl.SSLContext)
    assert loose.verify_mode is ssl.CERT_NONE and not loose.check_hostname


def test_an_unreadable_ca_bundle_is_a_lane_error(tmp_path: Path) -> None:
    with pytest.raises(LaneError, match="TLS settings unusable"):
        access(remote_lane(url="https://gpu-b:8443", tls_ca=tmp_path / "missing-ca.pem"))


def test_process_actions_on_a_remote_lane_are_refused_with_what_works() -> None:
    with pytest.raises(RemoteLaneAction) as info:
        refuse_process_action(remote_lane(), "stop")
    message = str(info.value)
    assert "remote lane (http://10.0.0.12:8000)" in message and "cannot stop" in message
    assert "drain" in message
    refuse_process_action(LaneConfig("near", "stable", "v3", (0,), 1, "m", ("x",)), "stop")


HTTPS = "https://10.0.0.12:8443"


def test_a_failed_certificate_check_names_tls_ca() -> None:
    lane = remote_lane(url=HTTPS)
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed")
    key = type("Key", (), {"host": "10.0.0.12", "port": 8443, "ssl": True})()
    exc = aiohttp.ClientConnectorCertificateError(key, verify)
    problem = tls_problem(lane.remote, exc)
    assert problem is not None
    assert HTTPS in problem and "self-signed" in problem and "set tls_ca" in problem


def test_a_hang_up_without_a_client_certificate_suggests_mutual_tls(tmp_path: Path) -> None:
    hang_up = aiohttp.ServerDisconnectedError()
    problem = tls_problem(remote_lane(url=HTTPS).remote, hang_up)
    assert problem is not None and "tls_cert and tls_key" in problem
    cert = tmp_path / "client.pem"
    with_cert = remote_lane(url=HTTPS, tls_cert=cert, tls_key=cert)
    assert tls_problem(with_cert.remote, hang_up) is None  # the hint would mislead
    assert tls_problem(remote_lane().remote, hang_up) is None  # plain http: not about TLS
    refused = aiohttp.ClientConnectionError("connection refused")
    assert tls_problem(remote_lane(url=HTTPS).remote, refused) is None


def test_only_an_unverified_https_lane_is_warned_about() -> None:
    warning = tls_warning(remote_lane(url=HTTPS, tls_verify=False))
    assert warning is not None and "tls_verify = false" in warning and "impersonate" in warning
    assert tls_warning(remote_lane(url=HTTPS)) is None
    assert tls_warning(LaneConfig("near", "stable", "v3", (0,), 18084, "m", ("x",))) is None
