"""One client request on its way through the router: admit, attempt, retry, relay.

An ``Exchange`` lives as long as its handler (the router's or a public
endpoint's, which create it with the router's ``Forwarding``: it never sees
the ``Router`` itself). Each attempt claims a lane slot (directly, or through
the admission queue), sends the body, and either returns a response for the
client or a ``Failure``; failures that happened before any byte reached the
client are retried on another eligible lane, never the same one twice, within
the per-request retry limit, the router-wide retry budget and the deadline.
Deadlines cost no timer per request: the router's watchdog compares
``expires_at`` with the clock every 50 ms and cancels the handler; the
exchange turns that cancellation into a timeout failure (``expired``). While a
stream is relayed, ``expires_at`` is the inter-token idle deadline
(``stream_idle_timeout_s``) whenever the relay waits for the lane.

A request the policy gives to a prefill/decode pair (``Decision.decode``) takes two
hops in one attempt: the prefill lane answers one token and the KV transfer
parameters (``qwend.router.pdhop``), then the decode lane gets the client's request with them
and its answer is relayed like any other. A failure on either hop, a prefill answer
without parameters or a decode lane that cannot pull the KV, is a failed attempt:
retried on another pair (never the lane to blame) while nothing reached the client.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import ClientResponse, web

from qwend.logs import get_logger
from qwend.router.admission import QueueFull, QueueTimeout
from qwend.router.lanes import LaneRuntime
from qwend.router.pdhop import prefill_hop, pull_failure
from qwend.router.proxy import (
    ATTEMPTS_HEADER,
    LANE_HEADER,
    PREFILL_LANE_HEADER,
    REMOTE_ERRORS,
    RETRYABLE_STATUSES,
    Failure,
    connection_failure,
    error_response,
    read_failure,
    relay_stream,
    settle_response,
    usage_counts,
)
from qwend.router.recording import record_stream, record_whole
from qwend.router.router import Forwarding
from qwend.router.tracing import TRACE_KEY
from qwend.routing.classify import RequestSummary
from qwend.routing.errorbody import openai_error
from qwend.routing.histograms import Measure
from qwend.routing.lanetable import RoutableLane
from qwend.routing.names import MODEL_NOT_FOUND
from qwend.routing.pd import decode_request, without_client_params
from qwend.routing.policy import Decision
from qwend.routing.rewrite import StreamEditor, request_for_backend, response_with_model
from qwend.routing.tracing import REQUEST_ID_HEADER
from qwend.supervisor.remote import access_for

log = get_logger("router")
_NEVER = float("inf")
_FIRST_BYTE = "no answer within first_byte_timeout_s"
_DEADLINE = "the request deadline passed"
_IDLE = "no data from the lane within stream_idle_timeout_s"
_FORWARD_HEADERS = ("Authorization", "X-Request-Id")
_JSON_HEADERS = {"Content-Type": "application/json"}


class Exchange:
    """The state of one proxied request."""

    __slots__ = (
        "body",
        "deadline",
        "expired",
        "expires_at",
        "failed",
        "fwd",
        "idle_s",
        "klass",
        "lane",
        "others",
        "path",
        "public",
        "request",
        "start",
        "summary",
        "task",
        "timer",
        "trace",
        "tried",
        "work",
    )

    def __init__(
        self, fwd: Forwarding, request: web.Request, path: str, body: bytes, summary: RequestSummary
    ) -> None:
        cfg = fwd.config
        self.fwd = fwd
        self.request = request
        self.path = path
        self.body = body
        self.summary = summary
        self.start = time.monotonic()
        self.deadline = self.start + cfg.request_timeout_s
        self.idle_s = cfg.stream_idle_timeout_s
        self.expires_at = _NEVER
        """When the watchdog cancels this exchange (first-byte or overall deadline)."""
        self.expired: str | None = None
        """Set by the watchdog right before it cancels the handler for a deadline."""
        self.timer = _FIRST_BYTE
        """What ``expires_at`` stands for (the message when it fires)."""
        self.lane: LaneRuntime | None = None
        """The lane of the current attempt (its progress is recorded while relaying)."""
        self.klass = fwd.classes[summary.request_class(cfg.long_text_min_tokens)]
        self.work = float(summary.expected_output)
        self.tried: list[str] = []
        """Each attempt's lane (``P>D`` for a pair), in order."""
        self.failed: set[str] = set()
        """Lanes of pairs that failed an attempt (never tried again for this request)."""
        self.public: str | None = None
        """The model name the client asked for, when a lane serves it (answers carry it)."""
        self.others: frozenset[str] = frozenset()
        """Lanes that do not serve the requested model (never tried)."""
        self.trace = request.get(TRACE_KEY)
        """The access-log record of the request (None outside the tracing middleware)."""
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.klass.requests += 1
        fwd.counters.requests += 1
        fwd.retry_budget.on_request(self.start)

    def take_expiry(self) -> str | None:
        """After a CancelledError: the timer that fired (then the cancel is swallowed), or
        None when it was not ours (the client left)."""
        if self.expired is None:
            return None
        self.expired = None
        self.expires_at = _NEVER  # one expiry per attempt: finishing up must not be cut again
        self.task.uncancel()
        return self.timer

    @property
    def awaiting_lane(self) -> LaneRuntime | None:
        """The lane whose first answer this exchange waits for (``Watched``)."""
        return self.lane if self.timer is _FIRST_BYTE else None

    def reading(self) -> None:
        """The relay waits for the lane: the idle timer runs (``StreamWatch``)."""
        idle_at = time.monotonic() + self.idle_s
        if idle_at < self.deadline:
            self.expires_at, self.timer = idle_at, _IDLE
        else:
            self.expires_at, self.timer = self.deadline, _DEADLINE

    def writing(self) -> None:
        """The lane sent a chunk: progress; only the deadline runs (``StreamWatch``)."""
        lane = self.lane
        if lane is not None:
            lane.progress_at = time.monotonic()
        self.expires_at, self.timer = self.deadline, _DEADLINE

    async def run(self) -> web.StreamResponse:
        """Admit, attempt (with retries) and answer; the handler's only frame below it."""
        fwd = self.fwd
        fwd.watchdog.watch(self.task, self)
        try:
            response = await self._run()
        except asyncio.CancelledError:
            fwd.counters.client_disconnects += 1
            raise
        finally:
            fwd.watchdog.unwatch(self.task)
            trace = self.trace
            if trace is not None and self.tried:
                trace.lane, trace.attempts = self.tried[-1], len(self.tried)
        if response.status >= 400:
            self.klass.errors += 1
        return response

    async def _run(self) -> web.StreamResponse:
        fwd = self.fwd
        slots, counters = fwd.slots, fwd.counters
        refused = self._resolve_model()
        if refused is not None:
            return refused
        self.body = without_client_params(self.body)
        last: Failure | None = None
        while True:
            exclude = self.others.union(self.tried, self.failed)
            decision = slots.claim(self.summary, exclude, self.work)  # fast: a free slot now
            if decision.lane is None and decision.wait:
                queued = await self._queue(exclude)
                if not isinstance(queued, Decision):
                    return queued
                decision = queued
            if decision.lane is None:
                if last is not None:
                    return last.response(len(self.tried))
                counters.rejected_no_lane += 1
                return error_response(
                    503, decision.message, code="no_lane_available", retry_after=5
                )
            lane = slots.runtime(decision.lane)
            if not self.tried:  # the first slot: how long admission kept the request waiting
                self.klass.observe(lane, Measure.QUEUE_WAIT, time.monotonic() - self.start)
            if decision.spilled:
                counters.spills += 1
                lane.counters.spills += 1
            if decision.decode is None:
                self.tried.append(lane.name)
                outcome = await self._attempt(lane)
            else:
                decode = slots.runtime(decision.decode)
                self.tried.append(f"{lane.name}>{decode.name}")
                outcome = await self._attempt_pair(lane, decode)
                if isinstance(outcome, Failure) and outcome.lane == decode.name:
                    lane = decode
            if not isinstance(outcome, Failure):
                return outcome
            last = outcome
            now = time.monotonic()
            if len(self.tried) > fwd.config.retry_budget or now >= self.deadline:
                return outcome.response(len(self.tried))
            if not fwd.retry_budget.try_spend(now):
                counters.retries_refused += 1
                return outcome.response(len(self.tried))
            lane.counters.retried_away += 1
            counters.retries += 1

    def _resolve_model(self) -> web.Response | None:
        """Look the requested model up: the lanes that serve it, or a 404 listing the
        served names (an empty catalog, no lanes yet, leaves it to the 503 that follows)."""
        requested = self.summary.model
        if not requested:
            return None
        catalog = self.fwd.slots.catalog_for(self.summary.role)
        if not catalog.models:
            return None
        if catalog.get(requested) is None:
            self.fwd.counters.bad_requests += 1
            message = catalog.not_found_message(requested)
            return error_response(404, message, param="model", code=MODEL_NOT_FOUND)
        self.public = requested
        self.others = catalog.others(requested)
        return None

    def _body_for(self, lane: RoutableLane) -> bytes:
        """The request body with the model name ``lane``'s backend expects."""
        requested, backend = self.summary.model, lane.backend_model
        if not requested or not backend:
            return self.body
        return request_for_backend(self.body, requested, backend)

    async def _queue(self, exclude: frozenset[str]) -> Decision | web.Response:
        """Wait in the admission queue for a slot (or learn that no lane is left)."""
        fwd = self.fwd
        try:
            return await fwd.slots.wait_for_slot(
                self.summary, exclude, self.work, self.deadline - time.monotonic()
            )
        except QueueFull:
            fwd.counters.rejected_queue_full += 1
            size = fwd.slots.queue_size
            return error_response(
                429,
                f"the router's queue is full ({size} requests waiting); retry later",
                code="queue_full",
                retry_after=1,
            )
        except QueueTimeout:
            fwd.counters.rejected_queue_full += 1
            return error_response(
                429,
                "no lane slot became free within the queue timeout; retry later",
                code="queue_timeout",
                retry_after=1,
            )

    def _upstream_headers(self) -> dict[str, str]:
        incoming = self.request.headers
        trace = self.trace
        if trace is None and not any(name in incoming for name in _FORWARD_HEADERS):
            return _JSON_HEADERS
        headers = dict(_JSON_HEADERS)
        for name in _FORWARD_HEADERS:
            value = incoming.get(name)
            if value is not None:
                headers[name] = value
        if trace is not None:  # the validated or generated ID, the one the client gets back
            headers[REQUEST_ID_HEADER] = trace.request_id
        return headers

    async def _attempt_pair(
        self, prefill: LaneRuntime, decode: LaneRuntime
    ) -> web.StreamResponse | Failure:
        """One try on a prefill/decode pair; both slots are claimed and released here.

        A failure names the lane to blame (``Failure.lane``), which joins ``failed``.
        """
        fwd = self.fwd
        fwd.counters.pd_requests += 1
        try:
            params = await prefill_hop(
                self,
                prefill,
                self._body_for(prefill.lane),
                self._upstream_headers(),
                float(self.summary.prompt_tokens),
            )
        except BaseException:
            self._unused(decode)
            raise
        if not isinstance(params, dict):
            self._unused(decode)
            if isinstance(params, Failure):
                self.failed.add(prefill.name)
            return params
        body = decode_request(self._body_for(decode.lane), params)
        decode.send_held(time.monotonic())
        outcome = await self._attempt(decode, body=body, prefill=prefill)
        if isinstance(outcome, Failure):
            # A decode lane that could not pull the KV blames the prefill lane that
            # holds it (gone, or dropped it); any other failure is the decode lane's.
            self.failed.add(prefill.name if outcome.kv_transfer else decode.name)
        return outcome

    def _unused(self, decode: LaneRuntime) -> None:
        """Give back a decode slot the prefill hop never got to use (not an attempt)."""
        decode.unhold()
        self.fwd.slots.release(decode, None, self.work)

    def arm_first_byte(self, began: float) -> None:
        """An attempt (or a hop) was sent at ``began``: its first-byte timer runs."""
        first_byte_at = began + self.fwd.config.first_byte_timeout_s
        if first_byte_at < self.deadline:
            self.expires_at, self.timer = first_byte_at, _FIRST_BYTE
        else:
            self.expires_at, self.timer = self.deadline, _DEADLINE

    async def _attempt(
        self, lane: LaneRuntime, *, body: bytes | None = None, prefill: LaneRuntime | None = None
    ) -> web.StreamResponse | Failure:
        """One try on one lane; its slot is already claimed and is released here.

        ``body`` and ``prefill`` are set for a pair's decode hop: the request with the
        transfer parameters, and the lane that prefilled it (named in the headers).
        """
        fwd = self.fwd
        began = time.monotonic()
        integral0 = lane.integral_now(began)
        self.arm_first_byte(began)
        self.lane = lane
        resp: ClientResponse | None = None
        verdict: bool | None = None  # True: lane did well; False: lane failed; None: no verdict
        try:
            try:
                acc = access_for(lane.name, lane.lane.remote)
                resp = await fwd.upstream.session.post(
                    lane.lane.base_url + self.path,
                    data=self._body_for(lane.lane) if body is None else body,
                    headers=acc.with_headers(self._upstream_headers()),
                    timeout=acc.adjust(fwd.upstream.timeout),
                    ssl=acc.ssl,
                )
                status = resp.status
                lane.progress_at = time.monotonic()
                if status in RETRYABLE_STATUSES:
                    failure = await read_failure(lane.name, resp)
                    verdict = False if failure.breaker_failure else None
                    return failure
                headers = {LANE_HEADER: self.tried[-1], ATTEMPTS_HEADER: str(len(self.tried))}
                if prefill is not None:
                    self.klass.observe(lane, Measure.PD_DECODE_START, time.monotonic() - began)
                    headers[PREFILL_LANE_HEADER] = prefill.name
                    if status == 400:
                        failed = pull_failure(lane.name, prefill.name, await resp.read())
                        if failed is not None:
                            fwd.counters.pd_transfer_failures += 1
                            return failed
                stream = self.summary.stream and status == 200
                if stream and resp.content_type == "text/event-stream":
                    first = await resp.content.readany()
                    if not first:
                        verdict = False
                        return connection_failure(lane.name, EOFError("empty stream"), "at once")
                    self.writing()
                    verdict, out = await self._relay(lane, resp, first, headers, began, integral0)
                    return out
                self.expires_at, self.timer = self.deadline, _DEADLINE
                data = await resp.read()
            except REMOTE_ERRORS as exc:  # LaneError: its key file is unusable
                verdict = False
                return connection_failure(lane.name, exc, "to connect or answer")
            except asyncio.CancelledError:
                expiry = self.take_expiry()
                if expiry is None:
                    raise
                verdict = False
                return connection_failure(lane.name, TimeoutError(expiry), "within the timeout")
            verdict = status < 500
            ctype = resp.headers.get("Content-Type", "application/json")
            if status == 200:
                tokens = record_whole(
                    lane, self.klass, self.summary, self.start, began, integral0, data
                )
                if self.trace is not None:
                    self.trace.prompt_tokens, self.trace.completion_tokens = tokens
                    self.trace.usage_from_lane = usage_counts(data) != (0, 0)
                public = self.public or lane.lane.model
                if public and ctype.startswith("application/json"):
                    data = response_with_model(data, public)
            elif status >= 400:
                wrapped = openai_error(status, data, lane.name)
                if wrapped is not None:
                    data, ctype = wrapped, "application/json"
            headers["Content-Type"] = ctype
            return web.Response(status=status, body=data, headers=headers)
        except asyncio.CancelledError:
            lane.counters.disconnects += 1
            verdict = None
            raise
        finally:
            self.expires_at = _NEVER
            self.lane = None
            settle_response(resp, verdict)
            fwd.slots.release(lane, verdict, self.work)

    async def _relay(
        self,
        lane: LaneRuntime,
        resp: ClientResponse,
        first: bytes,
        headers: dict[str, str],
        began: float,
        integral0: float,
    ) -> tuple[bool | None, web.StreamResponse]:
        headers["Cache-Control"] = "no-cache"
        headers["X-Accel-Buffering"] = "no"
        editor = StreamEditor(
            self.public or lane.lane.model or None,
            want_usage=self.summary.include_usage,
            prompt_tokens=self.summary.prompt_tokens,
        )
        out, result = await relay_stream(self.request, resp, first, headers, self, editor)
        counters = self.fwd.counters
        if result.client_gone:
            lane.counters.disconnects += 1
            counters.client_disconnects += 1
            return None, out
        if result.upstream_error is not None:
            lane.counters.mid_stream_errors += 1
            counters.mid_stream_errors += 1
            self.klass.errors += 1
            log.warning("mid-stream failure", lane=lane.name, error=result.upstream_error)
            return False, out
        recorded = record_stream(
            lane, self.klass, self.summary, self.start, began, integral0, result
        )
        if recorded is not None and self.trace is not None:
            trace = self.trace
            trace.ttft_s, trace.prompt_tokens, trace.completion_tokens = recorded
            trace.usage_from_lane = result.usage != (0, 0)
        return True, out
