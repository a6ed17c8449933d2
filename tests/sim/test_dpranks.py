"""The sim's DP rank table and join messages (pure, no sockets)."""

from __future__ import annotations

import pytest

from qwend.sim.dpranks import (
    DpLayout,
    DpProtocolError,
    Join,
    Ping,
    RankTable,
    Reject,
    Welcome,
    decode,
    encode,
)


def test_a_leader_alone_waits_for_the_ranks_it_does_not_hold() -> None:
    table = RankTable(DpLayout(size=4, local=2, start_rank=0))
    assert table.missing == (2, 3)
    assert not table.complete


def test_joins_complete_the_table_and_welcome_says_what_is_still_missing() -> None:
    table = RankTable(DpLayout(size=3, local=1, start_rank=0))
    first, second = object(), object()
    assert table.join(first, Join(3, 1, 1, "node1")) == Welcome((2,))
    assert table.join(second, Join(3, 2, 1, "node2")) == Welcome(())
    assert table.complete


def test_a_duplicate_start_rank_is_refused_and_changes_nothing() -> None:
    table = RankTable(DpLayout(size=4, local=2, start_rank=0))
    answer = table.join(object(), Join(4, 1, 2, "node1"))
    assert isinstance(answer, Reject)
    assert "ranks 1 have joined already" in answer.error
    assert "--data-parallel-start-rank" in answer.error
    assert table.missing == (2, 3)


@pytest.mark.parametrize(
    ("join", "expected"),
    [
        (Join(8, 1, 1, "n"), "--data-parallel-size 8 differs from the leader's 2"),
        (Join(2, 1, 2, "n"), "ranks 1..2 do not fit in --data-parallel-size 2"),
        (Join(2, 1, 0, "n"), "must be >= 1"),
    ],
)
def test_a_join_that_does_not_fit_is_refused(join: Join, expected: str) -> None:
    answer = RankTable(DpLayout(2, 1, 0)).join(object(), join)
    assert isinstance(answer, Reject)
    assert expected in answer.error


def test_a_lost_follower_frees_exactly_its_ranks() -> None:
    table = RankTable(DpLayout(size=4, local=1, start_rank=0))
    a, b = object(), object()
    table.join(a, Join(4, 1, 2, "a"))
    table.join(b, Join(4, 3, 1, "b"))
    assert table.leave(a) == (1, 2)
    assert table.missing == (1, 2)
    assert table.leave(a) == ()


@pytest.mark.parametrize(
    "message", [Join(2, 1, 1, "node1"), Welcome((2, 3)), Welcome(()), Reject("no"), Ping()]
)
def test_messages_survive_the_codec(message: Join | Welcome | Reject | Ping) -> None:
    line = encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode(line) == message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"not json\n", "not JSON"),
        (b"[1]\n", "JSON object"),
        (b'{"type":"hello"}\n', "unknown message type 'hello'"),
        (b'{"type":"join","size":"2","start_rank":1,"local":1,"name":"x"}\n', "'size'"),
        (b'{"type":"join","size":true,"start_rank":1,"local":1,"name":"x"}\n', "'size'"),
        (b'{"type":"join","size":2,"start_rank":1,"local":1}\n', "'name'"),
        (b'{"type":"welcome","waiting_for":[1,"2"]}\n', "waiting_for"),
        (b'{"type":"reject"}\n', "'error'"),
        (b"{" + b" " * 5000 + b"}\n", "longer than"),
    ],
)
def test_anything_else_is_a_protocol_error(line: bytes, expected: str) -> None:
    with pytest.raises(DpProtocolError, match=expected):
        decode(line)


@pytest.mark.parametrize(
    ("layout", "problem"),
    [
        (DpLayout(2, 1, 0), None),
        (DpLayout(2, 1, 1), None),
        (DpLayout(2, 2, 1), "do not fit"),
        (DpLayout(2, 1, -1), "do not fit"),
        (DpLayout(0, 1, 0), ">= 1"),
    ],
)
def test_layout_problems(layout: DpLayout, problem: str | None) -> None:
    found = layout.problem()
    assert (found is None) if problem is None else (found is not None and problem in found)
