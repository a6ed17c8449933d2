"""Prefill/decode disaggregation: real prefill and decode sim lanes doing vLLM's handshake."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from qwend.sim.cli import build_parser, settings_from_args
from qwend.sim.kvtransfer import KvStore, blocks_for
from qwend.sim.lane import KvSettings
from qwend.sim.requests import ApiError
from tests.support.simlane import DEFAULT_MODEL as MODEL
from tests.support.simlane import SimLaneProcess, free_port, start_sim_lane, wait_for

LOCAL = ("prefill_s", "prompt_tokens")
"""Keys ``prefill`` adds to the returned parameters for the test's own use."""
LONG_PROMPT = "word " * 4000
"""About 4,000 tokens: a prefill of ~1.8 model seconds, far above one decode step."""


@pytest.fixture(scope="module")
def lanes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SimLaneProcess]]:
    state: Path = tmp_path_factory.mktemp("sim-pd")
    started: dict[str, SimLaneProcess] = {}
    try:
        started["p"] = start_sim_lane(
            state_dir=state, time_scale=10, extra=["--kv-role", "prefill", "--kv-ttl-s", "2"]
        )
        started["d"] = start_sim_lane(state_dir=state, time_scale=10, extra=["--kv-role", "decode"])
        started["strict"] = start_sim_lane(
            state_dir=state,
            time_scale=10,
            extra=["--kv-role", "decode", "--kv-without", "refuse"],
        )
        yield started
    finally:
        for lane in started.values():
            lane.stop()


@dataclass(frozen=True)
class Reply:
    status_code: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def post(lane: SimLaneProcess, body: dict[str, Any]) -> Reply:
    request = urllib.request.Request(
        f"{lane.base_url}/v1/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return Reply(resp.status, resp.read().decode())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.read().decode())


def prefill(lane: SimLaneProcess, prompt: str = LONG_PROMPT) -> dict[str, Any]:
    """What a PD proxy sends a prefill lane; returns its kv_transfer_params."""
    reply = post(
        lane,
        {
            "model": MODEL,
            "prompt": prompt,
            "max_tokens": 200,
            "stream": False,
            "kv_transfer_params": {"do_remote_decode": True, "do_remote_prefill": False},
        },
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["usage"]["completion_tokens"] == 1  # the prefill answers one token
    assert body["sim_timing"]["kv_from_remote"] is False
    params: dict[str, Any] = body["kv_transfer_params"]
    params["prefill_s"] = body["sim_timing"]["prefill_s"]
    params["prompt_tokens"] = body["usage"]["prompt_tokens"]
    return params


def decode(lane: SimLaneProcess, params: dict[str, Any] | None, **extra: Any) -> Reply:
    body: dict[str, Any] = {"model": MODEL, "prompt": LONG_PROMPT, "max_tokens": 5, **extra}
    if params is not None:
        body["kv_transfer_params"] = {k: v for k, v in params.items() if k not in LOCAL}
    return post(lane, body)


def test_handshake_decode_skips_the_prefill(lanes: dict[str, SimLaneProcess]) -> None:
    params = prefill(lanes["p"])
    assert params["do_remote_prefill"] is True
    assert params["remote_port"] == lanes["p"].port
    assert params["remote_host"] == "127.0.0.1"
    assert len(params["remote_block_ids"]) == blocks_for(params["prompt_tokens"])
    reply = decode(lanes["d"], params)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["usage"]["completion_tokens"] == 5
    timing = body["sim_timing"]
    assert timing["kv_from_remote"] is True
    assert timing["prefill_s"] == 0
    # Prefill of ~4,000 tokens at time scale 10 is ~0.18 s; one decode step ~0.01 s.
    assert params["prefill_s"] > 0.1
    assert timing["ttft_s"] < params["prefill_s"] / 2


def test_streamed_decode_from_remote_kv(lanes: dict[str, SimLaneProcess]) -> None:
    params = prefill(lanes["p"])
    body: dict[str, Any] = {
        "model": MODEL,
        "prompt": LONG_PROMPT,
        "max_tokens": 4,
        "stream": True,
        "kv_transfer_params": {k: v for k, v in params.items() if k not in LOCAL},
    }
    reply = post(lanes["d"], body)
    assert reply.status_code == 200, reply.text
    lines = [line for line in reply.text.splitlines() if line.startswith("data: {")]
    last = json.loads(lines[-1].removeprefix("data: "))
    assert len(lines) == 4
    assert last["sim_timing"]["kv_from_remote"] is True
    assert last["sim_timing"]["ttft_s"] < params["prefill_s"] / 2


def test_kv_is_claimed_once(lanes: dict[str, SimLaneProcess]) -> None:
    params = prefill(lanes["p"])
    assert decode(lanes["d"], params).status_code == 200
    again = decode(lanes["d"], params)
    assert again.status_code == 400
    error = again.json()["error"]
    assert error["param"] == "kv_transfer_params"
    assert "already claimed" in error["message"]


def claim(lane: SimLaneProcess, body: dict[str, Any]) -> Reply:
    """A raw KV claim, as a decode lane sends it."""
    request = urllib.request.Request(
        f"{lane.base_url}/kv/claim",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return Reply(resp.status, resp.read().decode())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.read().decode())


def test_expired_kv_is_refused(lanes: dict[str, SimLaneProcess]) -> None:
    params = prefill(lanes["p"])
    # A claim with the wrong blocks does not take the record: it tells whether it is still
    # kept ("do not match") or gone ("no KV") once --kv-ttl-s 2 has passed.
    probe = {
        "remote_request_id": params["remote_request_id"],
        "remote_engine_id": params["remote_engine_id"],
        "remote_block_ids": [-1],
    }
    assert "do not match" in claim(lanes["p"], probe).text
    wait_for(lambda: "no KV" in claim(lanes["p"], probe).text, timeout=15, what="KV expiry")
    reply = decode(lanes["d"], params)
    assert reply.status_code == 400
    assert "expired" in reply.json()["error"]["message"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"remote_request_id": "123-forged"}, "no KV for remote_request_id"),
        ({"remote_engine_id": "not-the-engine"}, "is not this prefill engine"),
        ({"remote_block_ids": [7, 8]}, "remote_block_ids do not match"),
        ({"remote_block_ids": "x"}, "must be a list of integers"),
        ({"remote_port": 0}, "must be 1-65535"),
    ],
)
def test_forged_params_are_refused(
    lanes: dict[str, SimLaneProcess], change: dict[str, Any], words: str
) -> None:
    params = prefill(lanes["p"], prompt="short prompt for forgery")
    reply = post(
        lanes["d"],
        {
            "model": MODEL,
            "prompt": "short prompt for forgery",
            "max_tokens": 2,
            "kv_transfer_params": {
                **{k: v for k, v in params.items() if k not in LOCAL},
                **change,
            },
        },
    )
    assert reply.status_code == 400, reply.text
    assert words in reply.json()["error"]["message"]


def test_kv_for_another_prompt_is_refused(lanes: dict[str, SimLaneProcess]) -> None:
    params = prefill(lanes["p"], prompt="a different, shorter prompt")
    reply = decode(lanes["d"], params)
    assert reply.status_code == 400
    assert "-token prompt" in reply.json()["error"]["message"]


@pytest.mark.parametrize("target", ["decode lane", "closed port"])
def test_params_pointing_at_no_prefill_lane_are_a_clear_400(
    lanes: dict[str, SimLaneProcess], target: str
) -> None:
    params = prefill(lanes["p"], prompt="x")
    # A decode lane keeps no KV; a closed port is a prefill lane that is gone.
    params["remote_port"] = lanes["strict"].port if target == "decode lane" else free_port()
    body = {k: v for k, v in params.items() if k not in LOCAL}
    reply = post(lanes["d"], {"model": MODEL, "prompt": "x", "kv_transfer_params": body})
    assert reply.status_code == 400
    message = reply.json()["error"]["message"]
    assert ("keeps no KV" if target == "decode lane" else "cannot pull the KV") in message


def test_decode_without_params_recomputes_or_refuses(lanes: dict[str, SimLaneProcess]) -> None:
    recomputed = decode(lanes["d"], None)
    assert recomputed.status_code == 200
    timing = recomputed.json()["sim_timing"]
    assert timing["kv_from_remote"] is False
    assert timing["prefill_s"] > 0.1  # paid the prefill here
    assert timing["ttft_s"] >= timing["prefill_s"]
    refused = decode(lanes["strict"], None)
    assert refused.status_code == 400
    assert "--kv-without refuse" in refused.json()["error"]["message"]


def test_roles_refuse_the_other_half(lanes: dict[str, SimLaneProcess]) -> None:
    wrong = decode(
        lanes["p"],
        {
            "do_remote_prefill": True,
            "remote_engine_id": "e",
            "remote_host": "127.0.0.1",
            "remote_port": 1,
            "remote_block_ids": [],
            "remote_request_id": "r",
        },
    )
    assert wrong.status_code == 400
    assert "prefill lane" in wrong.json()["error"]["message"]
    reply = post(
        lanes["d"],
        {"model": MODEL, "prompt": "x", "kv_transfer_params": {"do_remote_decode": True}},
    )
    assert reply.status_code == 400
    assert "decode lane" in reply.json()["error"]["message"]


# -- the store (pure) -------------------------------------------------------------------
def test_store_evicts_least_recent_and_expires() -> None:
    store = KvStore("e", capacity=2, ttl_s=10)
    a = store.put("a", model="m", prompt_tokens=300, seed=1, now=0)
    assert a.block_ids == (0, 1, 2)
    store.put("b", model="m", prompt_tokens=1, seed=1, now=1)
    store.put("c", model="m", prompt_tokens=1, seed=1, now=2)
    assert len(store) == 2
    with pytest.raises(ApiError, match="no KV"):
        store.claim("a", "e", a.block_ids, now=3)
    with pytest.raises(ApiError, match="no KV"):
        store.claim("b", "e", (3,), now=11.5)  # expired at 11
    assert store.claim("c", "e", (4,), now=5).prompt_tokens == 1
    assert store.evicted == 2


# -- flags ------------------------------------------------------------------------------
def test_kv_flags_reach_the_settings(tmp_path: Path) -> None:
    argv = "serve --host 0.0.0.0 --kv-role prefill --kv-capacity 3 --kv-ttl-s 9"
    argv += " --kv-advertise-host 10.0.0.5 --kv-engine-id p0"
    args = build_parser().parse_args(argv.split())
    kv = settings_from_args(args, {"QWEND_SIM_STATE_DIR": str(tmp_path)}).kv
    assert kv == KvSettings(
        role="prefill", ttl_s=9.0, capacity=3, engine_id="p0", advertise_host="10.0.0.5"
    )


@pytest.mark.parametrize(
    "argv",
    [["--kv-capacity", "0"], ["--kv-ttl-s", "0"], ["--kv-role", "proxy"], ["--kv-without", "x"]],
)
def test_bad_kv_flags_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["serve", *argv])
    assert exc.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_prefill_lane_advertises_the_given_host(tmp_path: Path) -> None:
    lane = start_sim_lane(
        state_dir=tmp_path,
        time_scale=10,
        extra=["--kv-role", "prefill", "--kv-advertise-host", "localhost"],
    )
    try:
        params = prefill(lane, prompt="where am I")
    finally:
        lane.stop()
    assert (params["remote_host"], params["remote_port"]) == ("localhost", lane.port)
