"""The prefill hop of a prefill/decode pair, and reading a decode lane's failed KV pull.

An ``Exchange`` given a pair (``Decision.decode``) sends the request to the prefill lane
first (``prefill_hop``): one token, not streamed, ``do_remote_decode`` (the body from
``qwend.routing.pd.prefill_request``). The lane's answer carries the
``kv_transfer_params`` the decode lane needs; the exchange then sends the decode hop as
an ordinary attempt. Either hop's failure is a ``Failure`` the exchange retries on
another pair while nothing reached the client.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Protocol

from aiohttp import ClientResponse, web

from qwend.router.lanes import LaneRuntime
from qwend.router.proxy import (
    ATTEMPTS_HEADER,
    KV_TRANSFER_FAILED,
    LANE_HEADER,
    REMOTE_ERRORS,
    RETRYABLE_STATUSES,
    Failure,
    connection_failure,
    read_failure,
    settle_response,
    transfer_failure,
)
from qwend.router.recording import ClassRuntime
from qwend.router.router import Forwarding
from qwend.routing.errorbody import openai_error
from qwend.routing.histograms import Measure
from qwend.routing.pd import answer_params, prefill_request
from qwend.supervisor.remote import access_for

_NEVER = float("inf")
_KV_FAILED = f'"{KV_TRANSFER_FAILED}"'.encode()


class HopOwner(Protocol):
    """What the prefill hop uses of its ``Exchange``: the router, the request's timers
    (the watchdog reads ``lane`` and ``expires_at``) and its traffic class."""

    fwd: Forwarding
    lane: LaneRuntime | None
    expires_at: float
    klass: ClassRuntime
    path: str
    tried: list[str]

    def arm_first_byte(self, began: float) -> None: ...
    def take_expiry(self) -> str | None: ...


async def prefill_hop(
    owner: HopOwner, lane: LaneRuntime, body: bytes, headers: dict[str, str], prompt: float
) -> dict[str, object] | Failure | web.Response:
    """The prefill hop on ``lane`` (its slot claimed with ``prompt`` tokens of work,
    released here): the transfer parameters its answer carries, a Failure, or the
    lane's 4xx for the client (the request itself is refused: too long, a bad field)."""
    fwd = owner.fwd
    began = time.monotonic()
    owner.arm_first_byte(began)
    owner.lane = lane
    resp: ClientResponse | None = None
    verdict: bool | None = None
    try:
        try:
            acc = access_for(lane.name, lane.lane.remote)
            resp = await fwd.upstream.session.post(
                lane.lane.base_url + owner.path,
                data=prefill_request(body),
                headers=acc.with_headers(headers),
                timeout=acc.adjust(fwd.upstream.timeout),
                ssl=acc.ssl,
            )
            lane.progress_at = time.monotonic()
            if resp.status in RETRYABLE_STATUSES:
                failure = await read_failure(lane.name, resp)
                verdict = False if failure.breaker_failure else None
                return failure
            data = await resp.read()
        except REMOTE_ERRORS as exc:
            verdict = False
            return connection_failure(lane.name, exc, "to prefill")
        except asyncio.CancelledError:
            expiry = owner.take_expiry()
            if expiry is None:
                raise
            verdict = False
            return connection_failure(lane.name, TimeoutError(expiry), "to prefill in time")
        if resp.status != 200:
            verdict = resp.status < 500
            wrapped = openai_error(resp.status, data, lane.name)
            return web.Response(
                status=resp.status,
                body=wrapped if wrapped is not None else data,
                content_type="application/json",
                headers={LANE_HEADER: lane.name, ATTEMPTS_HEADER: str(len(owner.tried))},
            )
        params = answer_params(data)
        if params is None:
            verdict = False
            fwd.counters.pd_transfer_failures += 1
            return transfer_failure(
                lane.name,
                f"prefill lane {lane.name!r} answered without kv_transfer_params "
                "(is it started with a KV connector as kv_producer?)",
            )
        verdict = True
        owner.klass.observe(lane, Measure.PD_PREFILL, time.monotonic() - began)
        return params
    except asyncio.CancelledError:
        lane.counters.disconnects += 1
        verdict = None
        raise
    finally:
        owner.expires_at = _NEVER
        owner.lane = None
        settle_response(resp, verdict)
        fwd.slots.release(lane, verdict, prompt)


def pull_failure(decode: str, prefill: str, data: bytes) -> Failure | None:
    """A decode lane's 400 body: a Failure when it could not pull the KV
    (``kv_transfer_failed``: the prefill lane is gone or dropped it), else None."""
    if _KV_FAILED not in data:
        return None
    return transfer_failure(
        decode,
        f"decode lane {decode!r} could not pull the KV prefilled by {prefill!r}: "
        f"{_error_message(data)}",
        kv_transfer=True,
    )


def _error_message(data: bytes) -> str:
    try:
        message = json.loads(data)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return data[:200].decode(errors="replace")
    return str(message)
