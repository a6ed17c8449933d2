"""The sim's engine: one loop per process stepping a continuous batch.

Like a serving engine, the loop runs one step at a time: a prefill step for the
oldest waiting sequence when there is room in the batch (prefill first), else a
decode step that gives every running sequence one token. Step durations come
from the pure latency model and are slept with ``asyncio.sleep`` against a
virtual clock, so a long run does not drift. Concurrency behaviour (queueing,
slower steps as the batch grows) emerges from this loop, not from per-request
formulas. Handlers read each sequence's tokens from its own queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from qwend.sim import textgen
from qwend.sim.latency import IMAGE_ANSWER_TOKENS, VariantProfile

MAX_LAG_S = 0.25
"""When the loop falls this far behind its virtual clock, it resets instead of bursting."""


class SeqState(Enum):
    """Where a sequence is in the engine."""

    WAITING = "waiting"
    """Queued for its prefill step."""
    RUNNING = "running"
    """In the decode batch."""
    STALLED = "stalled"
    """Fault injection: stopped getting tokens mid-stream, still holds its slot."""
    FINISHED = "finished"
    """Produced its last token (length or stop)."""
    ABORTED = "aborted"
    """Removed because its client went away."""


@dataclass(frozen=True)
class TokenEvent:
    """One token handed to a request handler."""

    text: str
    """The token's text (may be empty when a stop string cut it)."""
    finish_reason: str | None
    """``"length"`` or ``"stop"`` on the last token, else None."""


@dataclass(eq=False)
class SimSequence:
    """One request inside the engine."""

    request_id: str
    text_tokens: int
    image_tokens: int
    max_tokens: int
    seed: int
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    natural_tokens: int | None = None
    stall_after: int | None = None
    script: tuple[str, ...] = ()
    """A fixed answer (``/echo``): its tokens instead of pseudo-text."""
    prefilled: bool = False
    """Its KV came from a prefill lane: no prefill step; the first token comes with the
    next decode step, as on a decode engine."""
    state: SeqState = SeqState.WAITING
    generated: int = 0
    text: str = ""
    finish_reason: str | None = None
    arrival: float = 0.0
    first_token_at: float | None = None
    last_token_at: float | None = None
    prefill_s: float = 0.0
    """Seconds its prefill step took here (0 when ``prefilled``)."""
    events: asyncio.Queue[TokenEvent] = field(default_factory=asyncio.Queue)

    @property
    def done(self) -> bool:
        """Whether the engine is finished with this sequence."""
        return self.state in (SeqState.FINISHED, SeqState.ABORTED)

    @property
    def context_tokens(self) -> int:
        """Tokens this sequence holds in the KV cache."""
        return self.text_tokens + self.image_tokens + self.generated

    def natural_length(self) -> int:
        """How many tokens the answer has before end-of-sequence (at most ``max_tokens``)."""
        if self.ignore_eos:
            return self.max_tokens
        limit = self.max_tokens
        if self.script:
            return min(limit, len(self.script))
        if self.image_tokens:
            limit = min(limit, IMAGE_ANSWER_TOKENS)
        if self.natural_tokens is not None:
            limit = min(limit, self.natural_tokens)
        return limit


class EngineListener(Protocol):
    """What the engine reports (metrics, the NPU state file)."""

    def on_prefill(self, seq: SimSequence) -> None:
        """A prefill step for ``seq`` finished."""

    def on_token(self, seq: SimSequence, gap_s: float | None) -> None:
        """``seq`` got a token; ``gap_s`` is the time since its previous one (None: first)."""

    def on_finish(self, seq: SimSequence) -> None:
        """``seq`` finished or was aborted."""

    def on_load_change(self) -> None:
        """The number of waiting/running sequences or the step kind changed."""


class Engine:
    """The continuous-batching loop of one sim lane."""

    def __init__(
        self,
        profile: VariantProfile,
        *,
        time_scale: float = 1.0,
        max_num_seqs: int = 32,
        listener: EngineListener | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.profile = profile
        self.time_scale = time_scale
        self.max_num_seqs = max_num_seqs
        self._listener = listener
        self._clock = clock
        self._waiting: deque[SimSequence] = deque()
        self._running: list[SimSequence] = []
        self._stalled: set[SimSequence] = set()
        self._prefilling: SimSequence | None = None
        self._wake = asyncio.Event()
        self._virtual = 0.0
        self._ids = itertools.count(1)
        self.step_kind: str = "idle"
        """``idle``, ``prefill`` or ``decode``: what the loop is doing now."""

    # -- what handlers call ------------------------------------------------------------
    def submit(self, seq: SimSequence) -> SimSequence:
        """Queue ``seq`` for prefill."""
        seq.arrival = self.now()
        self._waiting.append(seq)
        self._wake.set()
        self._changed()
        return seq

    def abort(self, seq: SimSequence) -> bool:
        """Remove ``seq`` (its client went away); True if it was still in progress."""
        if seq.done:
            return False
        seq.state = SeqState.ABORTED
        seq.finish_reason = "abort"
        with contextlib.suppress(ValueError):
            self._waiting.remove(seq)
        with contextlib.suppress(ValueError):
            self._running.remove(seq)
        self._stalled.discard(seq)
        self._notify_finish(seq)
        return True

    def next_id(self) -> int:
        """A process-unique request number."""
        return next(self._ids)

    # -- what metrics and the state file read -------------------------------------------
    @property
    def num_waiting(self) -> int:
        """Sequences queued for prefill."""
        return len(self._waiting)

    @property
    def num_running(self) -> int:
        """Sequences holding a batch slot (in prefill, decoding or stalled)."""
        return len(self._running) + len(self._stalled) + (self._prefilling is not None)

    @property
    def context_tokens(self) -> int:
        """KV-cache tokens held by running sequences."""
        active = itertools.chain(self._running, self._stalled, self._active_prefill())
        return sum(s.context_tokens for s in active)

    def _active_prefill(self) -> tuple[SimSequence, ...]:
        return () if self._prefilling is None else (self._prefilling,)

    def now(self) -> float:
        """The engine's clock (loop time unless injected)."""
        if self._clock is not None:
            return self._clock()
        return asyncio.get_running_loop().time()

    # -- the loop ----------------------------------------------------------------------
    async def run(self) -> None:
        """Step forever (cancel to stop)."""
        while True:
            if not self._waiting and not self._running:
                self._set_kind("idle")
                self._wake.clear()
                await self._wake.wait()
                self._virtual = self.now()
                continue
            if self._waiting and self.num_running < self.max_num_seqs:
                await self._prefill_step(self._waiting.popleft())
            elif self._running:
                await self._decode_step()
            else:
                # Batch full of stalled sequences: wait for an abort or a new arrival.
                self._wake.clear()
                await self._wake.wait()

    async def _prefill_step(self, seq: SimSequence) -> None:
        if seq.prefilled:
            # KV pulled from a prefill lane: straight into the batch, no prefill cost.
            seq.state = SeqState.RUNNING
            self._running.append(seq)
            self._changed()
            return
        started = self.now()
        self._prefilling = seq
        self._set_kind("prefill")
        try:
            await self._sleep(self.profile.prefill_s(seq.text_tokens, seq.image_tokens))
        finally:
            self._prefilling = None
        seq.prefill_s = self.now() - started
        if seq.done:
            return
        if self._listener is not None:
            self._listener.on_prefill(seq)
        seq.state = SeqState.RUNNING
        self._running.append(seq)
        self._emit(seq)
        self._changed()

    async def _decode_step(self) -> None:
        self._set_kind("decode")
        batch = list(self._running)
        await self._sleep(self.profile.decode_s(len(batch)))
        for seq in batch:
            if not seq.done and seq.state is SeqState.RUNNING:
                self._emit(seq)

    async def _sleep(self, model_s: float) -> None:
        now = self.now()
        if now - self._virtual > MAX_LAG_S:
            self._virtual = now
        self._virtual += model_s / self.time_scale
        await asyncio.sleep(max(0.0, self._virtual - now))

    def _emit(self, seq: SimSequence) -> None:
        index = seq.generated
        if seq.script:
            piece = seq.script[index] if index < len(seq.script) else ""
        elif seq.image_tokens:
            piece = textgen.caption_piece(seq.seed, index)
        else:
            piece = textgen.text_piece(seq.seed, index)
        seq.generated += 1
        finish = "length" if seq.generated >= seq.max_tokens else None
        if finish is None and seq.generated >= seq.natural_length():
            finish = "stop"
        piece, stopped = self._apply_stop(seq, piece)
        if stopped:
            finish = "stop"
        seq.text += piece
        now = self.now()
        gap = None if seq.last_token_at is None else now - seq.last_token_at
        if seq.first_token_at is None:
            seq.first_token_at = now
        seq.last_token_at = now
        if self._listener is not None:
            self._listener.on_token(seq, gap)
        seq.events.put_nowait(TokenEvent(piece, finish))
        if finish is not None:
            seq.state = SeqState.FINISHED
            seq.finish_reason = finish
            self._running.remove(seq)
            self._notify_finish(seq)
        elif seq.stall_after is not None and seq.generated >= seq.stall_after:
            seq.state = SeqState.STALLED
            self._running.remove(seq)
            self._stalled.add(seq)

    @staticmethod
    def _apply_stop(seq: SimSequence, piece: str) -> tuple[str, bool]:
        """Cut ``piece`` where a stop string begins; the stop string is not returned.

        A stop string that began in text already sent truncates ``seq.text`` (the
        non-streaming answer) and the piece becomes empty.
        """
        if not seq.stop:
            return piece, False
        sent = len(seq.text)
        combined = seq.text + piece
        hits = [h for s in seq.stop if (h := combined.find(s, max(0, sent - len(s) + 1))) >= 0]
        if not hits:
            return piece, False
        cut = min(hits)
        if cut < sent:
            seq.text = seq.text[:cut]
            return "", True
        return combined[sent:cut], True

    def _notify_finish(self, seq: SimSequence) -> None:
        if self._listener is not None:
            self._listener.on_finish(seq)
        self._wake.set()
        self._changed()

    def _set_kind(self, kind: str) -> None:
        if kind != self.step_kind:
            self.step_kind = kind
            self._changed()

    def _changed(self) -> None:
        if self._listener is not None:
            self._listener.on_load_change()
