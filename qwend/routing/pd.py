"""Prefill/decode pair choice (pure: no aiohttp, no I/O).

A model served by disaggregated lanes (``lane.kv_role`` ``prefill`` or ``decode``)
takes each request in two hops: a prefill lane computes the prompt's KV and
hands out where it lives, then a decode lane pulls it and generates. ``choose_pair``
picks both lanes at once, each by the load its hop suffers from:

- prefill: the prompt tokens it still has to prefill (the router counts a prefill
  lane's ``outstanding_work`` in prompt tokens), then its in-flight
  count: prefill is compute-bound, its queue is the prompt tokens ahead;
- decode: the output tokens it still has to generate (``outstanding_work``), then
  its in-flight count: a decode step's time grows with the batch.

Lanes out of rotation (not eligible) are skipped. Without an eligible lane of both
kinds the pair is not ``ready`` and the caller falls back to the model's co-located
lanes; with both kinds eligible but every lane of one kind at its limit, the request
waits for a slot like any other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from qwend.config.model import KvRole


class PdCandidate(Protocol):
    """What the pair choice reads of a lane (``routing.policy.LaneCandidate`` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def kv_role(self) -> KvRole | None: ...
    @property
    def text(self) -> bool: ...
    @property
    def eligible(self) -> bool: ...
    @property
    def pending(self) -> bool: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def limit(self) -> int: ...
    @property
    def outstanding_work(self) -> float: ...
    @property
    def why_not(self) -> str: ...


@dataclass(frozen=True, slots=True)
class PairChoice:
    """The outcome of ``choose_pair``."""

    prefill: str | None = None
    """The prefill lane (set together with ``decode``)."""
    decode: str | None = None
    ready: bool = False
    """Both kinds have an eligible lane (or one being replaced in place): the request
    belongs to the pair, now (``prefill``/``decode`` set) or after a wait."""
    message: str = ""
    """Why no pair is ready (for the 503 body when nothing else can serve)."""

    @property
    def chosen(self) -> bool:
        """Both lanes picked."""
        return self.prefill is not None and self.decode is not None


def is_pd(lane: PdCandidate) -> bool:
    """Does ``lane`` serve one half of a disaggregated pair?"""
    return lane.kv_role is not None


def _least_loaded(lanes: Sequence[PdCandidate]) -> PdCandidate | None:
    free = [lane for lane in lanes if lane.in_flight < lane.limit]
    if not free:
        return None
    return min(free, key=lambda c: (c.outstanding_work, c.in_flight, c.name))


def _states(lanes: Sequence[PdCandidate]) -> str:
    return ", ".join(f"{lane.name}: {lane.why_not or 'busy'}" for lane in lanes) or "none"


def choose_pair(lanes: Sequence[PdCandidate]) -> PairChoice:
    """A prefill lane and a decode lane among the text-capable PD lanes of ``lanes``."""
    prefill = [lane for lane in lanes if lane.kv_role is KvRole.PREFILL and lane.text]
    decode = [lane for lane in lanes if lane.kv_role is KvRole.DECODE and lane.text]
    live_p = [lane for lane in prefill if lane.eligible]
    live_d = [lane for lane in decode if lane.eligible]
    if not live_p or not live_d:
        coming_p = live_p or [lane for lane in prefill if lane.pending]
        coming_d = live_d or [lane for lane in decode if lane.pending]
        message = (
            "no prefill/decode pair is ready "
            f"(prefill lanes: {_states(prefill)}; decode lanes: {_states(decode)})"
        )
        return PairChoice(ready=bool(coming_p and coming_d), message=message)
    p, d = _least_loaded(live_p), _least_loaded(live_d)
    if p is None or d is None:
        return PairChoice(ready=True)
    return PairChoice(prefill=p.name, decode=d.name, ready=True)


PARAMS = "kv_transfer_params"
PREFILL_PARAMS: Mapping[str, object] = {
    "do_remote_decode": True,
    "do_remote_prefill": False,
    "remote_engine_id": None,
    "remote_block_ids": None,
    "remote_host": None,
    "remote_port": None,
}
"""What the prefill hop asks for: keep the KV for a remote decode (vLLM's proxies send
exactly this; the prefill lane fills in where the KV lives)."""


def without_client_params(body: bytes) -> bytes:
    """``body`` without a client's ``kv_transfer_params``: they tell a decode lane where
    to pull KV from (a host and port of the client's choosing), so only the router sets
    them. Cheap when absent (a byte search), as for nearly every request."""
    if PARAMS.encode() not in body:
        return body
    doc = json.loads(body)
    if not isinstance(doc, dict) or doc.pop(PARAMS, None) is None:
        return body
    return json.dumps(doc, separators=(",", ":")).encode()


def prefill_request(body: bytes) -> bytes:
    """The prefill hop's body: ``body`` answered with one token, not streamed, its KV kept
    for a decode lane. A client's own ``kv_transfer_params`` never reach a lane."""
    doc = json.loads(body)
    doc[PARAMS] = dict(PREFILL_PARAMS)
    doc["stream"] = False
    doc.pop("stream_options", None)
    doc["max_tokens"] = 1
    if "max_completion_tokens" in doc:
        doc["max_completion_tokens"] = 1
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_request(body: bytes, params: Mapping[str, object]) -> bytes:
    """The decode hop's body: the client's request with the prefill lane's ``params``."""
    doc = json.loads(body)
    doc[PARAMS] = dict(params)
    return json.dumps(doc, separators=(",", ":")).encode()


def answer_params(answer: bytes) -> dict[str, object] | None:
    """The ``kv_transfer_params`` of a prefill lane's answer, when it handed out a remote
    prefill (``do_remote_prefill``); None when the answer has none a decode lane can use."""
    try:
        doc = json.loads(answer)
    except ValueError:
        return None
    params = doc.get(PARAMS) if isinstance(doc, dict) else None
    if not isinstance(params, dict) or params.get("do_remote_prefill") is not True:
        return None
    return params
