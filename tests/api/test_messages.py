"""Control protocol messages: JSON round-trips and clear errors on bad input."""

from __future__ import annotations

import json

import pytest

from qwend.api.messages import (
    Caller,
    ConfigIssueInfo,
    DaemonInfo,
    ErrorCode,
    ErrorResponse,
    Event,
    EventKind,
    LaneAction,
    LaneActionResult,
    LaneInfo,
    LanesResponse,
    LaneStateChange,
    LaneStats,
    LogLine,
    LogsResponse,
    Message,
    NpusResponse,
    PromoteRequest,
    PromotionAccepted,
    PromotionEvent,
    PromotionMode,
    PromotionOutcome,
    PromotionRecord,
    PromotionsResponse,
    PromotionStep,
    ProtocolError,
    ReloadResponse,
    RollbackRequest,
    StatusResponse,
    error_http_status,
)

DAEMON = DaemonInfo(
    version="0.1.0",
    pid=42,
    started_at=1700000000.5,
    uptime_s=12.0,
    config_path="/etc/qwend/qwend.toml",
    control_socket="/run/qwend/control.sock",
    config_errors=(ConfigIssueInfo("lanes.d/a.toml", "lane.port", "must be 1-65535"),),
)
LANE = LaneInfo(
    name="stable",
    role="stable",
    variant="chunk_v2",
    state="ready",
    active=True,
    standby=False,
    accepting=True,
    pid=1234,
    port=18101,
    npus=(0, 1),
    started_at=1700000001.0,
    uptime_s=11.0,
    restarts=2,
    last_exit="signal SIGKILL",
    warnings=("npu 1 still held by pid 9",),
    stats=LaneStats(in_flight=3, ttft_p50_ms=120.5, tokens_per_s=31.0, breaker="closed"),
)
CALLER = Caller(uid=0, pid=99, user="root")
RECORD = PromotionRecord(
    id="p1",
    role="stable",
    from_lane="stable",
    to_lane="recurrent_v2",
    mode=PromotionMode.IN_PLACE,
    outcome=PromotionOutcome.ROLLED_BACK,
    started_at=1.0,
    finished_at=2.5,
    reason="exit 1",
    requested_by=CALLER,
)
ACCEPTED = PromotionAccepted("p1", "stable", "stable", "recurrent_v2", PromotionMode.IN_PLACE)
PROGRESS = PromotionEvent("p1", "stable", "stable", PromotionStep.DRAINING, "draining", 1.5)

SAMPLES: list[Message] = [
    DAEMON,
    LANE,
    LanesResponse(lanes=(LANE, LaneInfo("b", "r", "v", "stopped", False, True))),
    StatusResponse(
        daemon=DAEMON,
        active={"stable": "stable"},
        lanes=(LANE,),
        router={"policy": "least_work", "lanes": {"stable": {"p50": 1.0}}},
        running_promotions=(ACCEPTED,),
        last_promotions=(RECORD,),
        warnings=("state file corrupt",),
    ),
    ErrorResponse(ErrorCode.CONFLICT, "busy"),
    RECORD,
    PROGRESS,
    ACCEPTED,
    PromoteRequest("recurrent_v2", wait=False, ready_timeout_s=30),
    RollbackRequest("stable"),
    PromotionsResponse(running=(ACCEPTED,), history=(RECORD,)),
    NpusResponse(enabled=True, view={"npus": [{"id": 0}]}, table="NPU ..."),
    LaneActionResult(LaneAction.DRAIN, LANE),
    ReloadResponse(ok=False, errors=DAEMON.config_errors),
    ReloadResponse(ok=True, restarted=("a",), unchanged=("b", "c")),
    LogsResponse("stable", True, ("one", "two")),
    LogLine("stable", "hello"),
    LaneStateChange("stable", "starting", "ready", None, 3.0),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_json_round_trip(message: Message) -> None:
    wire = json.loads(json.dumps(message.to_dict()))
    assert type(message).from_dict(wire) == message


def test_enums_and_tuples_are_plain_json() -> None:
    data = RECORD.to_dict()
    assert data["mode"] == "in_place"
    assert data["outcome"] == "rolled_back"
    assert LANE.to_dict()["npus"] == [0, 1]


def test_ints_are_accepted_for_floats_but_not_bools_for_ints() -> None:
    data = LANE.to_dict() | {"uptime_s": 11}
    assert LaneInfo.from_dict(data).uptime_s == 11.0
    with pytest.raises(ProtocolError, match=r"LaneInfo\.restarts: expected int, got bool"):
        LaneInfo.from_dict(LANE.to_dict() | {"restarts": True})


def test_missing_field_is_named() -> None:
    data = LANE.to_dict()
    del data["role"]
    with pytest.raises(ProtocolError, match="missing field 'role'"):
        LaneInfo.from_dict(data)


def test_bad_nested_value_names_its_path() -> None:
    data = StatusResponse(daemon=DAEMON, active={}, lanes=(LANE,)).to_dict()
    data["lanes"][0]["npus"] = [0, "x"]
    with pytest.raises(ProtocolError, match=r"StatusResponse\.lanes\[0\]\.npus\[1\]"):
        StatusResponse.from_dict(data)


def test_bad_enum_lists_choices() -> None:
    with pytest.raises(ProtocolError, match="not one of in_place, blue_green"):
        PromotionAccepted.from_dict(ACCEPTED.to_dict() | {"mode": "sideways"})


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    assert LogLine.from_dict({"lane": "a", "line": "b", "new_field": 1}) == LogLine("a", "b")


def test_non_object_is_rejected() -> None:
    with pytest.raises(ProtocolError, match="expected an object"):
        LogLine.from_dict(["a", "b"])


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (LaneStateChange("a", "ready", "draining", "promotion", 1.0), EventKind.LANE),
        (PROGRESS, EventKind.PROMOTION),
        (RECORD, EventKind.PROMOTION_RESULT),
        (ACCEPTED, EventKind.PROMOTION_ACCEPTED),
        (LanesResponse(lanes=(LANE,)), EventKind.STATS),
        (DAEMON, EventKind.HELLO),
    ],
)
def test_event_wraps_and_unwraps_payloads(payload: Message, kind: EventKind) -> None:
    event = Event.of(payload)
    assert event.kind is kind
    wire = Event.from_dict(json.loads(json.dumps(event.to_dict())))
    assert wire.payload() == payload


def test_event_of_unknown_payload_fails() -> None:
    with pytest.raises(ProtocolError, match="no event kind carries"):
        Event.of(LogLine("a", "b"))


def test_every_error_code_has_an_http_status() -> None:
    assert {error_http_status(code) for code in ErrorCode} <= {400, 404, 409, 422, 500, 503}
    assert error_http_status(ErrorCode.CONFLICT) == 409
