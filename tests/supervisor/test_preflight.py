"""Preflight: busy ports (with the owner's PID) and NPU claims."""

from __future__ import annotations

import os
import socket
from dataclasses import replace

import pytest

from qwend.config.model import RemoteConfig
from qwend.errors import PreflightError
from qwend.supervisor.preflight import check_claims, check_port, port_bind_error, preflight
from tests.support.lanescripts.factory import make_lane


def test_free_port_passes() -> None:
    lane = make_lane("a")
    check_port(lane)
    assert port_bind_error(lane.host, lane.port) is None


def test_taken_port_names_the_owner_pid() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        lane = make_lane("a", port=port)
        with pytest.raises(PreflightError) as info:
            check_port(lane)
    message = str(info.value)
    assert f"lane a: port {port} on 127.0.0.1 is already in use" in message
    assert f"PID {os.getpid()}" in message or "cannot see" in message
    assert "change lane.port" in message


def test_npus_of_a_running_lane_are_refused() -> None:
    a = make_lane("a", npus=(0, 1))
    b = make_lane("b", npus=(1, 2))
    with pytest.raises(PreflightError, match=r"lane b: NPU 1 is claimed by running lane a.*stop a"):
        check_claims(b, [a])
    check_claims(b, [b])  # itself never conflicts
    check_claims(make_lane("c", npus=(3,)), [a, b])


def test_same_port_of_a_running_lane_is_refused() -> None:
    a = make_lane("a", npus=(0,))
    b = make_lane("b", npus=(1,), port=a.port)
    with pytest.raises(PreflightError, match=r"port \d+ is claimed by running lane a"):
        preflight(b, [a])


def test_a_remote_lane_claims_no_port_or_npu_of_this_host() -> None:
    local = make_lane("local", npus=(0,))
    remote = replace(
        make_lane("far", npus=()),
        port=local.port,
        command=(),
        remote=RemoteConfig(url=f"http://10.0.0.12:{local.port}", host="10.0.0.12"),
    )
    check_claims(local, [remote])
