"""The sim's Ray cluster table, placement, NPU counts and messages (pure, no sockets)."""

from __future__ import annotations

import pytest

from qwend.sim.raycluster import (
    HEAD_KEY,
    Bundle,
    ClusterTable,
    Hosting,
    Message,
    NodeDead,
    NodeInfo,
    Pending,
    Ping,
    Place,
    Placed,
    RayAddress,
    RayProtocolError,
    Register,
    Registered,
    Reject,
    Send,
    decode,
    driver_address,
    encode,
    node_npus,
    parse_address,
)


def node(name: str, npus: int, head: bool = False) -> NodeInfo:
    return NodeInfo(
        node_id=f"id-{name}", name=name, ip=f"10.0.0.{len(name)}", npus=npus, pid=7, head=head
    )


def messages_to(sends: list[Send], key: object) -> list[object]:
    return [s.message for s in sends if s.key is key]


@pytest.fixture
def cluster() -> ClusterTable:
    table = ClusterTable()
    assert table.add_node(HEAD_KEY, node("head", 2, head=True)) == []
    return table


def test_a_worker_is_registered_and_counted(cluster: ClusterTable) -> None:
    worker = object()
    assert cluster.add_node(worker, node("w1", 4)) == [Send(worker, Registered(2, 6))]
    assert [n.name for n in cluster.nodes] == ["head", "w1"]
    assert cluster.total == cluster.free == 6


def test_a_duplicate_node_id_or_a_second_head_is_refused(cluster: ClusterTable) -> None:
    twin, head2 = object(), object()
    [refused] = cluster.add_node(twin, node("head", 2))
    assert isinstance(refused.message, Reject) and "registered already" in refused.message.error
    [refused] = cluster.add_node(head2, node("other", 2, head=True))
    assert isinstance(refused.message, Reject) and "has a head already" in refused.message.error
    assert cluster.total == 2


def test_a_driver_waits_until_enough_npus_join_then_is_placed_head_first(
    cluster: ClusterTable,
) -> None:
    driver, w1, w2 = object(), object(), object()
    assert cluster.place(driver, Place("engine", 6)) == [Send(driver, Pending(2, 2, 1))]
    sends = cluster.add_node(w1, node("w1", 2))
    assert messages_to(sends, driver) == [Pending(free=4, total=4, nodes=2)]
    sends = cluster.add_node(w2, node("w2", 4))
    [placed] = messages_to(sends, driver)
    assert isinstance(placed, Placed)
    assert [(b.node.name, b.npus) for b in placed.bundles] == [("head", 2), ("w1", 2), ("w2", 2)]
    assert messages_to(sends, HEAD_KEY) == [Hosting(2)]
    assert messages_to(sends, w1) == [Hosting(2)]
    assert messages_to(sends, w2)[-1] == Hosting(2)
    assert cluster.free == 2
    assert cluster.placement_of(driver) == {"id-head": 2, "id-w1": 2, "id-w2": 2}


def test_placement_is_all_or_nothing_and_first_come_first_served(cluster: ClusterTable) -> None:
    big, small, w1 = object(), object(), object()
    cluster.place(big, Place("big", 4))
    sends = cluster.place(small, Place("small", 1))
    assert messages_to(sends, small) == [Pending(2, 2, 1)], "a later group overtook the first"
    assert cluster.placement_of(big) is None
    sends = cluster.add_node(w1, node("w1", 3))
    assert isinstance(messages_to(sends, big)[0], Placed)
    assert isinstance(messages_to(sends, small)[0], Placed)
    assert cluster.free == 0


def test_a_dead_node_is_told_to_every_driver_and_its_npus_leave(cluster: ClusterTable) -> None:
    driver, waiting, w1 = object(), object(), object()
    cluster.add_node(w1, node("w1", 2))
    cluster.place(driver, Place("engine", 4))
    cluster.place(waiting, Place("later", 1))
    sends = cluster.remove_node(w1, "no heartbeat for 1s")
    [dead] = messages_to(sends, driver)
    assert dead == NodeDead(node("w1", 2), "no heartbeat for 1s")
    assert messages_to(sends, waiting) == [
        NodeDead(node("w1", 2), "no heartbeat for 1s"),
        Pending(0, 2, 1),
    ]
    assert cluster.total == 2 and cluster.placement_of(driver) == {"id-head": 2}
    assert cluster.remove_node(w1, "again") == []


def test_a_released_placement_frees_npus_for_the_next_driver(cluster: ClusterTable) -> None:
    first, second = object(), object()
    cluster.place(first, Place("one", 2))
    cluster.place(second, Place("two", 2))
    sends = cluster.release(first)
    assert sends[0] == Send(HEAD_KEY, Hosting(0))
    assert isinstance(messages_to(sends, second)[0], Placed)
    assert messages_to(sends, HEAD_KEY) == [Hosting(0), Hosting(2)]
    assert cluster.release(object()) == []


def test_a_driver_asks_only_once(cluster: ClusterTable) -> None:
    driver = object()
    cluster.place(driver, Place("engine", 1))
    [refused] = cluster.place(driver, Place("engine", 1))
    assert isinstance(refused.message, Reject)


@pytest.mark.parametrize(
    ("num_gpus", "resources", "visible", "expected"),
    [
        (None, None, (4, 5), (4, 5)),
        (2, None, (), (0, 1)),
        (1, None, (4, 5), (4,)),
        (None, '{"NPU": 3}', (), (0, 1, 2)),
        (None, '{"CPU": 3}', (6,), (6,)),
        (2, '{"NPU": 8}', (), (0, 1)),
        (None, None, (), ()),
    ],
)
def test_a_node_gives_ray_its_flagged_or_visible_npus(
    num_gpus: int | None, resources: str | None, visible: tuple[int, ...], expected: tuple[int, ...]
) -> None:
    assert node_npus(num_gpus, resources, visible) == expected


@pytest.mark.parametrize(
    ("num_gpus", "resources", "visible", "expected"),
    [
        (8, None, (0, 1), "ASCEND_RT_VISIBLE_DEVICES lists 2"),
        (None, "{NPU: 8}", (), "--resources is not JSON"),
        (None, "[8]", (), "must be a JSON object"),
        (None, '{"NPU": -1}', (), "must be a number >= 0"),
        (None, '{"NPU": 1.5}', (), "whole number"),
    ],
)
def test_impossible_npu_counts_say_why(
    num_gpus: int | None, resources: str | None, visible: tuple[int, ...], expected: str
) -> None:
    problem = node_npus(num_gpus, resources, visible)
    assert isinstance(problem, str) and expected in problem


def test_addresses_parse_like_rays() -> None:
    assert parse_address("10.0.0.1:6379") == RayAddress("10.0.0.1", 6379)
    assert parse_address("'10.0.0.1:6380'") == RayAddress("10.0.0.1", 6380)
    assert parse_address("[fd00::1]:6379") == RayAddress("fd00::1", 6379)
    assert str(RayAddress("fd00::1", 6379)) == "[fd00::1]:6379"
    for bad in ("10.0.0.1", ":6379", "h:0", "h:x", "ray://h:10001"):
        assert isinstance(parse_address(bad), str), bad


def test_an_engine_finds_its_head_in_ray_address_else_locally() -> None:
    assert driver_address({}) == RayAddress("127.0.0.1", 6379)
    assert driver_address({"RAY_ADDRESS": "auto"}) == RayAddress("127.0.0.1", 6379)
    assert driver_address({"RAY_ADDRESS": "10.1.1.1:7000"}) == RayAddress("10.1.1.1", 7000)
    problem = driver_address({"RAY_ADDRESS": "10.1.1.1"})
    assert isinstance(problem, str) and problem.startswith("RAY_ADDRESS:")


@pytest.mark.parametrize(
    "message",
    [
        Register(node("w1", 8)),
        Registered(2, 16),
        Reject("no"),
        Place("engine", 16),
        Placed((Bundle(node("head", 8, head=True), 8), Bundle(node("w1", 8), 8))),
        Pending(8, 8, 1),
        NodeDead(node("w1", 8), "link closed"),
        Hosting(8),
        Ping(),
    ],
)
def test_every_message_round_trips(message: Message) -> None:
    assert decode(encode(message)) == message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"nope\n", "not JSON"),
        (b"[1]\n", "must be a JSON object"),
        (b'{"type": "shout"}\n', "unknown message type"),
        (b'{"type": "place", "driver": "e", "bundles": 0}\n', "'bundles' must be an integer >= 1"),
        (b'{"type": "hosting", "npus": true}\n', "'npus' must be an integer"),
        (b'{"type": "register", "node": {"node_id": 1}}\n', "'node_id' must be a string"),
        (b'{"type": "placed", "bundles": {}}\n', "'bundles' must be a list"),
        (b'{"type": "reject", "error": "x", "pad": "' + b"x" * 70_000 + b'"}\n', "longer than"),
    ],
)
def test_malformed_lines_are_protocol_errors(line: bytes, expected: str) -> None:
    with pytest.raises(RayProtocolError, match=expected):
        decode(line)
