"""Lane identity, pure part: /proc/net/tcp parsing and the verdict on a port's listeners."""

from __future__ import annotations

from qwend.supervisor.listener import (
    Holder,
    Listeners,
    Verdict,
    judge,
    listening_inodes,
    socket_inode,
)

TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:4E21 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1
   1: 00000000:4E21 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1
   2: 0100007F:4E21 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 1003 1
   3: 0100007F:4E22 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1004 1
   4: garbage
"""
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue
   0: 00000000000000000000000001000000:4E21 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1
"""  # noqa: E501 - the kernel's line


def test_listening_inodes_are_the_listen_sockets_of_the_port_on_any_address() -> None:
    assert listening_inodes(TCP, 0x4E21) == {1001, 1002}  # not the established 1003
    assert listening_inodes(TCP, 0x4E22) == {1004}
    assert listening_inodes(TCP6, 0x4E21) == {2001}
    assert listening_inodes(TCP, 1) == frozenset()


def test_socket_inode_reads_socket_links_only() -> None:
    assert socket_inode("socket:[1234]") == 1234
    assert socket_inode("pipe:[1234]") is None
    assert socket_inode("/dev/null") is None
    assert socket_inode("socket:[x]") is None


def test_nobody_listening_is_not_yet_ready() -> None:
    found = judge("a", 20001, 100, frozenset(), frozenset(), {})
    assert found.verdict is Verdict.NONE
    assert found.problem == "nothing listens on port 20001 yet"


def test_every_listener_in_the_lane_group_is_its_own() -> None:
    found = judge("a", 20001, 100, frozenset({1, 2}), frozenset({1, 2}), {})
    assert found == Listeners(Verdict.OWN)


def test_a_stranger_is_named_by_pid_and_name() -> None:
    found = judge("a", 20001, 100, frozenset({1, 2}), frozenset({1}), {2: Holder(4242, "nc")})
    assert found.verdict is Verdict.FOREIGN
    assert found.problem is not None
    assert "port 20001 is answered by PID 4242 (nc), not by lane a's processes" in found.problem
    assert "(group 100)" in found.problem


def test_a_stranger_qwend_cannot_inspect_is_still_foreign() -> None:
    found = judge("a", 20001, 100, frozenset({1, 2}), frozenset(), {1: Holder(7, "x")})
    assert found.verdict is Verdict.FOREIGN
    assert found.problem is not None
    assert "PID 7 (x) and a process qwend cannot inspect" in found.problem
