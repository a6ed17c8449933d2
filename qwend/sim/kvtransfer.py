"""Prefill/decode disaggregation for the sim (pure): ``kv_transfer_params`` and the KV store.

The sim follows the handshake of vLLM's disaggregated-serving proxies (NIXL and
Mooncake connectors):

1. the proxy sends the request to a **prefill** lane with
   ``kv_transfer_params = {"do_remote_decode": true}`` and ``max_tokens`` 1; the lane
   prefills the prompt, answers one token and returns ``kv_transfer_params`` naming
   where the KV lives (``remote_engine_id``, ``remote_block_ids``, ``remote_host``,
   ``remote_port``, ``remote_request_id``, ``do_remote_prefill: true``);
2. the proxy sends the original request to a **decode** lane with those parameters;
   the decode lane pulls the KV from the prefill lane (the sim's stand-in for an
   RDMA read: an HTTP claim at ``remote_host:remote_port``) and decodes without
   paying the prefill.

This module holds the parsing and the prefill lane's bounded store (LRU with
expiry); the HTTP parts are in ``qwend.sim.app``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from qwend.sim.requests import ApiError, bad

ROLES = ("both", "prefill", "decode")
"""``--kv-role`` values: ``both`` serves whole requests and ignores ``kv_transfer_params``."""
WITHOUT_KV = ("recompute", "refuse")
"""What a decode lane does with a request that brings no transfer parameters."""
BLOCK_TOKENS = 128
"""Tokens per KV block (the block size vLLM-Ascend uses), for ``remote_block_ids``."""
PARAM = "kv_transfer_params"


@dataclass(frozen=True)
class RemoteDecode:
    """The request asks this (prefill) lane to prefill and keep the KV for a decode lane."""


@dataclass(frozen=True)
class RemotePrefill:
    """The request brings KV prefilled elsewhere: where to pull it from."""

    engine_id: str
    host: str
    port: int
    block_ids: tuple[int, ...]
    request_id: str


@dataclass(frozen=True)
class KvRecord:
    """The KV one prefill lane keeps for a decode lane to claim."""

    request_id: str
    engine_id: str
    block_ids: tuple[int, ...]
    model: str
    prompt_tokens: int
    seed: int
    expires_at: float


def transfer_error(message: str, status: int = 400) -> ApiError:
    """An OpenAI-style error about ``kv_transfer_params``."""
    return ApiError(status, message, param=PARAM, code="kv_transfer_failed")


def _field(params: Mapping[str, object], key: str, kind: type, what: str) -> object:
    value = params.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise transfer_error(f"'{PARAM}.{key}' must be {what}, got {value!r}")
    return value


def parse_params(body: object) -> RemoteDecode | RemotePrefill | None:
    """What ``kv_transfer_params`` in a request body asks for (None: absent or neither flag)."""
    if not isinstance(body, Mapping) or body.get(PARAM) is None:
        return None
    params = body[PARAM]
    if not isinstance(params, Mapping):
        raise bad(f"'{PARAM}' must be an object", PARAM)
    decode = params.get("do_remote_decode") is True
    prefill = params.get("do_remote_prefill") is True
    if decode and prefill:
        raise transfer_error(
            f"'{PARAM}' sets both do_remote_decode and do_remote_prefill; a request is "
            "either prefilled for a remote decode or decoded from a remote prefill"
        )
    if decode:
        return RemoteDecode()
    if not prefill:
        return None
    port = _field(params, "remote_port", int, "an integer port")
    if not 0 < port < 65536:  # type: ignore[operator]
        raise transfer_error(f"'{PARAM}.remote_port' must be 1-65535, got {port}")
    return RemotePrefill(
        engine_id=str(_field(params, "remote_engine_id", str, "a string")),
        host=str(_field(params, "remote_host", str, "a host name or address")),
        port=int(port),  # type: ignore[call-overload]
        block_ids=_block_ids(params),
        request_id=str(_field(params, "remote_request_id", str, "a string")),
    )


def _block_ids(params: Mapping[str, object]) -> tuple[int, ...]:
    blocks = params.get("remote_block_ids")
    if not isinstance(blocks, list) or not all(
        isinstance(b, int) and not isinstance(b, bool) for b in blocks
    ):
        raise transfer_error(f"'{PARAM}.remote_block_ids' must be a list of integers")
    return tuple(blocks)


def parse_claim(body: Mapping[str, object]) -> tuple[str, str, tuple[int, ...]]:
    """A decode lane's claim: ``(remote_request_id, remote_engine_id, remote_block_ids)``."""
    return (
        str(_field(body, "remote_request_id", str, "a string")),
        str(_field(body, "remote_engine_id", str, "a string")),
        _block_ids(body),
    )


def blocks_for(prompt_tokens: int) -> int:
    """KV blocks a prompt of ``prompt_tokens`` fills."""
    return max(1, math.ceil(prompt_tokens / BLOCK_TOKENS))


def response_params(record: KvRecord, host: str, port: int) -> dict[str, object]:
    """The ``kv_transfer_params`` a prefill lane returns (what the decode lane is sent)."""
    return {
        "do_remote_prefill": True,
        "do_remote_decode": False,
        "remote_engine_id": record.engine_id,
        "remote_block_ids": list(record.block_ids),
        "remote_host": host,
        "remote_port": port,
        "remote_request_id": record.request_id,
        "tp_size": 1,
    }


class KvStore:
    """A prefill lane's KV kept for decode lanes: at most ``capacity`` records, each for
    ``ttl_s``; the least recently stored goes first when full (its blocks are needed for
    new prefills), as a real KV pool frees unclaimed blocks after a timeout.

    A record is claimed once: the decode lane that pulls it owns it.
    """

    def __init__(self, engine_id: str, *, capacity: int, ttl_s: float) -> None:
        self.engine_id = engine_id
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._records: OrderedDict[str, KvRecord] = OrderedDict()
        self._next_block = 0
        self.evicted = 0
        """Records dropped unclaimed (expired or pushed out)."""

    def __len__(self) -> int:
        return len(self._records)

    def put(
        self, request_id: str, *, model: str, prompt_tokens: int, seed: int, now: float
    ) -> KvRecord:
        """Keep the KV of a finished prefill; returns its record."""
        self.expire(now)
        count = blocks_for(prompt_tokens)
        blocks = tuple(range(self._next_block, self._next_block + count))
        self._next_block += count
        record = KvRecord(
            request_id=request_id,
            engine_id=self.engine_id,
            block_ids=blocks,
            model=model,
            prompt_tokens=prompt_tokens,
            seed=seed,
            expires_at=now + self.ttl_s,
        )
        self._records[request_id] = record
        while len(self._records) > self.capacity:
            self._records.popitem(last=False)
            self.evicted += 1
        return record

    def expire(self, now: float) -> None:
        """Drop records past their time (oldest first, so stop at the first live one)."""
        while self._records:
            oldest = next(iter(self._records.values()))
            if oldest.expires_at > now:
                return
            self._records.popitem(last=False)
            self.evicted += 1

    def claim(
        self, request_id: str, engine_id: str, block_ids: tuple[int, ...], now: float
    ) -> KvRecord:
        """Hand the record over (once); ``ApiError`` naming why it cannot be."""
        if engine_id != self.engine_id:
            raise transfer_error(
                f"remote_engine_id {engine_id!r} is not this prefill engine ({self.engine_id!r})",
                404,
            )
        self.expire(now)
        record = self._records.get(request_id)
        if record is None:
            raise transfer_error(
                f"no KV for remote_request_id {request_id!r}: never prefilled here, "
                f"already claimed, or expired (kept {self.ttl_s:g} s, at most "
                f"{self.capacity} requests)",
                404,
            )
        if record.block_ids != block_ids:
            raise transfer_error(f"remote_block_ids do not match the KV of {request_id!r}", 404)
        del self._records[request_id]
        return record
