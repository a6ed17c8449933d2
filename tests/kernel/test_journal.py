"""Native journal entries: what arrives on a datagram socket the test binds, parsed back."""

from __future__ import annotations

import array
import io
import logging
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from qwend.journal import JournalSender, encode, field_name, stderr_is_journal
from qwend.logs import LogFormat, configure_logging, get_logger, lane_logger, resolve_format


@pytest.fixture(autouse=True)
def restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture
def journal() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing in for /run/systemd/journal/socket."""
    path = f"/tmp/qwd-journal-{os.getpid()}-{id(object())}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    try:
        yield sock, path
    finally:
        sock.close()
        Path(path).unlink(missing_ok=True)


@pytest.fixture
def senders() -> Iterator[list[JournalSender]]:
    """Senders the test made, closed after it."""
    made: list[JournalSender] = []
    yield made
    for sender in made:
        sender.close()


def sender_to(path: str, made: list[JournalSender]) -> JournalSender:
    sender = JournalSender(path)
    made.append(sender)
    return sender


def parse(data: bytes) -> dict[str, str]:
    """Decode one native-protocol entry (both the ``K=v`` and the binary-length form)."""
    fields: dict[str, str] = {}
    at = 0
    while at < len(data):
        newline = data.index(b"\n", at)
        line = data[at:newline]
        if b"=" in line:
            name, _, value = line.partition(b"=")
            at = newline + 1
        else:
            name = line
            (size,) = struct.unpack("<Q", data[newline + 1 : newline + 9])
            value = data[newline + 9 : newline + 9 + size]
            assert data[newline + 9 + size : newline + 10 + size] == b"\n"
            at = newline + 10 + size
        fields[name.decode()] = value.decode()
    return fields


def receive(sock: socket.socket) -> dict[str, str]:
    """One entry, inline or in a passed memfd."""
    fds = array.array("i")
    data, ancdata, _flags, _addr = sock.recvmsg(1 << 20, socket.CMSG_SPACE(fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: fds.itemsize])
    if fds:
        with os.fdopen(fds[0], "rb") as memfd:
            memfd.seek(0)
            data = memfd.read()
    return parse(data)


def test_field_names_follow_the_journal_rules() -> None:
    assert field_name("request_id") == "REQUEST_ID"
    assert field_name("in-flight") == "IN_FLIGHT"
    assert field_name("_private") == "PRIVATE"
    assert field_name("9lives") is None
    assert field_name("x" * 65) is None


def test_values_with_newlines_use_the_length_form() -> None:
    data = encode([("MESSAGE", "a\nb"), ("LANE", "stable")])
    assert data == b"MESSAGE\n" + struct.pack("<Q", 3) + b"a\nb\nLANE=stable\n"
    assert parse(data) == {"MESSAGE": "a\nb", "LANE": "stable"}


def test_entries_carry_priority_lane_component_request_id_and_code(
    journal: tuple[socket.socket, str], senders: list[JournalSender]
) -> None:
    sock, path = journal
    out = io.StringIO()
    configure_logging(LogFormat.JOURNAL, stream=out, env={}, sender=sender_to(path, senders))
    with structlog.contextvars.bound_contextvars(request_id="req-1"):
        lane_logger("stable", component="supervisor").warning("lane unhealthy", failures=3)
    entry = receive(sock)
    assert entry["PRIORITY"] == "4"
    assert entry["LANE"] == "stable"
    assert entry["COMPONENT"] == "supervisor"
    assert entry["REQUEST_ID"] == "req-1"
    assert entry["QWEND_FAILURES"] == "3"
    assert entry["MESSAGE"].startswith("lane unhealthy")
    assert "failures=3" in entry["MESSAGE"]
    assert entry["CODE_FILE"] == __file__
    assert entry["CODE_FUNC"] == "test_entries_carry_priority_lane_component_request_id_and_code"
    assert int(entry["CODE_LINE"]) > 0
    assert entry["SYSLOG_IDENTIFIER"].startswith("qwend")
    assert out.getvalue() == ""  # nothing doubled on stderr


def test_an_exception_arrives_as_one_entry_at_error(
    journal: tuple[socket.socket, str], senders: list[JournalSender]
) -> None:
    sock, path = journal
    sender = sender_to(path, senders)
    configure_logging(LogFormat.JOURNAL, stream=io.StringIO(), env={}, sender=sender)
    try:
        raise ValueError("bad value")
    except ValueError:
        get_logger("router").exception("router internal error")
    entry = receive(sock)
    assert entry["PRIORITY"] == "3"
    assert entry["MESSAGE"].startswith("router internal error")
    assert "ValueError: bad value" in entry["MESSAGE"]


def test_an_entry_too_large_for_a_datagram_goes_in_a_memfd(
    journal: tuple[socket.socket, str], senders: list[JournalSender]
) -> None:
    sock, path = journal
    sender = sender_to(path, senders)
    big = "x" * (4 << 20)
    assert sender.send([("MESSAGE", big), ("PRIORITY", "6")])
    entry = receive(sock)
    assert entry["MESSAGE"] == big and entry["PRIORITY"] == "6"


def test_without_a_journal_socket_lines_get_sd_daemon_prefixes(
    tmp_path: Path, senders: list[JournalSender]
) -> None:
    out = io.StringIO()
    sender = sender_to(str(tmp_path / "absent.sock"), senders)
    configure_logging(LogFormat.JOURNAL, stream=out, env={}, sender=sender)
    get_logger("daemon").warning("startup warning", warning="state file corrupt")
    get_logger("daemon").info("ready")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("<4>startup warning") and "warning=state file corrupt" in lines[0]
    assert lines[1].startswith("<6>ready")


def test_auto_picks_the_journal_when_stderr_is_the_journal_stream(tmp_path: Path) -> None:
    with (tmp_path / "stderr").open("w") as stream:
        info = os.fstat(stream.fileno())
        env = {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        assert stderr_is_journal(env, stream)
        assert resolve_format(LogFormat.AUTO, stream, env) is LogFormat.JOURNAL
        assert not stderr_is_journal({"JOURNAL_STREAM": f"{info.st_dev}:1"}, stream)
        # Under a unit, a regular file the operator chose stays a file.
        assert not stderr_is_journal({"INVOCATION_ID": "abc"}, stream)


def test_standard_logging_records_arrive_with_their_own_call_site(
    journal: tuple[socket.socket, str], senders: list[JournalSender]
) -> None:
    sock, path = journal
    sender = sender_to(path, senders)
    configure_logging(LogFormat.JOURNAL, stream=io.StringIO(), env={}, sender=sender)
    logging.getLogger("aiohttp.server").error("Error handling request")
    entry = receive(sock)
    assert entry["PRIORITY"] == "3" and entry["COMPONENT"] == "aiohttp.server"
    assert entry["CODE_FILE"] == __file__
    assert entry["CODE_FUNC"] == "test_standard_logging_records_arrive_with_their_own_call_site"
