"""Prefill/decode pair choice and the hop bodies (pure)."""

from __future__ import annotations

import json
from dataclasses import replace

from qwend.config.model import KvRole, TextPolicy
from qwend.routing.classify import classify_chat
from qwend.routing.pd import (
    answer_params,
    choose_pair,
    decode_request,
    prefill_request,
    without_client_params,
)
from qwend.routing.policy import Decision, choose
from tests.support.lane_view import LaneView

P, D = KvRole.PREFILL, KvRole.DECODE


def p(name: str, **kw: object) -> LaneView:
    return LaneView(name, name, kv_role=P, **kw)  # type: ignore[arg-type]


def d(name: str, **kw: object) -> LaneView:
    return LaneView(name, name, kv_role=D, **kw)  # type: ignore[arg-type]


def text(**extra: object) -> object:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}


def pick(lanes: list[LaneView], exclude: frozenset[str] = frozenset(), **extra: object) -> Decision:
    summary = classify_chat(text(**extra))
    return choose(
        summary, lanes, TextPolicy.LEAST_OUTSTANDING, long_text_min_tokens=1000, exclude=exclude
    )


def test_pair_by_load_each_half_by_its_own_work() -> None:
    lanes = [
        p("p0", outstanding_work=4000.0),
        p("p1", outstanding_work=100.0, in_flight=3),
        d("d0", outstanding_work=900.0, in_flight=1),
        d("d1", outstanding_work=200.0, in_flight=4),
    ]
    choice = choose_pair(lanes)
    assert (choice.prefill, choice.decode, choice.ready) == ("p1", "d1", True)
    assert pick(lanes) == Decision("p1", decode="d1")


def test_ties_go_to_fewer_in_flight_then_name() -> None:
    lanes = [p("p1"), p("p0"), d("d1", in_flight=1), d("d0", in_flight=2)]
    assert pick(lanes) == Decision("p0", decode="d1")


def test_out_of_rotation_and_full_lanes_are_skipped() -> None:
    lanes = [
        p("p0", eligible=False, why_not="breaker open"),
        p("p1", outstanding_work=9e9),
        d("d0", in_flight=8, limit=8),
        d("d1", outstanding_work=9e9),
    ]
    assert pick(lanes) == Decision("p1", decode="d1")


def test_excluded_lanes_are_not_chosen_again() -> None:
    lanes = [p("p0"), p("p1", outstanding_work=50.0), d("d0"), d("d1", outstanding_work=9.0)]
    assert pick(lanes, frozenset({"p0", "d0"})) == Decision("p1", decode="d1")


def test_a_busy_pair_waits_unless_a_colocated_lane_is_free() -> None:
    busy = [p("p0", in_flight=8, limit=8), d("d0")]
    assert pick(busy).wait and pick(busy).lane is None
    colocated = LaneView("c0", "throughput")
    assert pick([*busy, colocated]) == Decision("c0")


def test_no_complete_pair_falls_back_to_colocated() -> None:
    lanes = [p("p0"), d("d0", eligible=False, why_not="not accepting"), LaneView("c0", "stable")]
    assert pick(lanes) == Decision("c0")


def test_no_pair_and_nothing_colocated_says_why() -> None:
    lanes = [p("p0"), d("d0", eligible=False, why_not="not accepting")]
    decision = pick(lanes)
    assert decision.lane is None and not decision.wait
    assert "no prefill/decode pair is ready" in decision.message
    assert "d0: not accepting" in decision.message and "p0: busy" in decision.message


def test_a_half_replaced_in_place_is_waited_for() -> None:
    lanes = [p("p0"), d("d0", eligible=False, pending=True)]
    choice = choose_pair(lanes)
    assert choice.ready and not choice.chosen
    assert pick(lanes).wait


def test_halves_never_take_whole_requests_except_pinned_to_their_role() -> None:
    lanes = [p("p0"), d("d0", eligible=False)]
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}
    mm = [{"role": "user", "content": [image]}]
    assert pick([*lanes, LaneView("mm", "multimodal", image=True)], messages=mm) == Decision("mm")
    assert pick([p("p0", image=True), d("d0")], messages=mm).lane is None
    pinned = choose(
        replace(classify_chat(text()), role="p0"),
        lanes,
        TextPolicy.LEAST_OUTSTANDING,
        long_text_min_tokens=1000,
    )
    assert pinned == Decision("p0")


def test_colocated_only_lanes_are_unaffected() -> None:
    lanes = [LaneView("a", "stable", in_flight=2), LaneView("b", "throughput")]
    assert pick(lanes) == Decision("b")


def test_prefill_body_asks_for_one_unstreamed_token_and_remote_decode() -> None:
    body = json.dumps(
        text(
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=300,
            max_completion_tokens=300,
            kv_transfer_params={"do_remote_prefill": True, "remote_host": "169.254.169.254"},
        )
    ).encode()
    doc = json.loads(prefill_request(body))
    assert doc["stream"] is False and "stream_options" not in doc
    assert doc["max_tokens"] == 1 and doc["max_completion_tokens"] == 1
    assert doc["kv_transfer_params"]["do_remote_decode"] is True
    assert doc["kv_transfer_params"]["do_remote_prefill"] is False
    assert doc["kv_transfer_params"]["remote_host"] is None  # the client's never pass
    assert doc["messages"] == text()["messages"]  # type: ignore[index]


def test_decode_body_is_the_request_with_the_prefill_lanes_params() -> None:
    body = json.dumps(text(stream=True, max_tokens=300, kv_transfer_params={"x": 1})).encode()
    params: dict[str, object] = {"do_remote_prefill": True, "remote_port": 9}
    doc = json.loads(decode_request(body, params))
    assert doc["kv_transfer_params"] == params
    assert doc["stream"] is True and doc["max_tokens"] == 300


def test_answer_params_only_when_a_remote_prefill_is_handed_out() -> None:
    good = {"do_remote_prefill": True, "remote_host": "10.0.0.1", "remote_port": 7}
    assert answer_params(json.dumps({"kv_transfer_params": good}).encode()) == good
    assert answer_params(b'{"choices": []}') is None
    assert answer_params(b'{"kv_transfer_params": null}') is None
    assert answer_params(b'{"kv_transfer_params": {"do_remote_prefill": false}}') is None
    assert answer_params(b"[1, 2]") is None
    assert answer_params(b"not json") is None


def test_a_clients_transfer_params_are_dropped_from_whole_requests() -> None:
    forged = text(kv_transfer_params={"do_remote_prefill": True, "remote_host": "10.9.9.9"})
    doc = json.loads(without_client_params(json.dumps(forged).encode()))
    assert "kv_transfer_params" not in doc and doc["messages"] == forged["messages"]  # type: ignore[index]
    plain = json.dumps(text(max_tokens=3)).encode()
    assert without_client_params(plain) is plain
    mention = json.dumps(text(messages=[{"role": "user", "content": "kv_transfer_params?"}]))
    assert without_client_params(mention.encode()) == mention.encode()
