"""Request classification and lane choice (pure: no aiohttp, no I/O).

``classify_chat`` / ``classify_completion`` turn a decoded JSON body into a
``RequestSummary`` (or raise ``InvalidRequest`` with an OpenAI-style message).
``choose`` takes a summary, the lanes as the router sees them right now and
the text policy, and returns a ``Decision``: a lane, "wait for a slot", or
"no lane can serve this" with a message a person can act on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from qwend.config.model import TextPolicy
from qwend.routing.stats import LanePerf
from qwend.tokens import DEFAULT_IMAGE_TOKENS, MESSAGE_OVERHEAD_TOKENS


def _estimate_text(text: str) -> int:
    """A quick prompt-token estimate: ~4 ASCII characters or ~1 other character per token.

    Cheaper than ``qwend.tokens.count_tokens`` by an order of magnitude (this runs
    on every request); the lane's own ``usage.prompt_tokens`` is what the
    ``least_work`` model learns from.
    """
    if text.isascii():
        return (len(text) + 3) // 4
    return len(text)


MULTIMODAL_ROLE = "multimodal"
THROUGHPUT_ROLE = "throughput"
STABLE_ROLE = "stable"
DEFAULT_EXPECTED_OUTPUT = 256
"""Output tokens assumed when a request sets no max_tokens."""
IMAGE_TOKENS = DEFAULT_IMAGE_TOKENS
"""Prompt tokens counted per image or video part (size unknown to the router)."""
_MEDIA_PART_TYPES = frozenset({"image_url", "image", "input_image", "video_url", "video"})


class InvalidRequest(ValueError):
    """The request body is not a valid OpenAI request; becomes a 400."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class RequestClass(StrEnum):
    """The traffic class statistics and policies distinguish."""

    MULTIMODAL = "multimodal"
    """Has at least one image or video part."""
    SHORT_TEXT = "short_text"
    """Text asking for fewer than ``long_text_min_tokens`` tokens."""
    LONG_TEXT = "long_text"
    """Text asking for ``long_text_min_tokens`` or more (or not saying)."""


@dataclass(frozen=True, slots=True)
class RequestSummary:
    """What the router needs to know about one request."""

    multimodal: bool
    """Any image/video content part."""
    prompt_tokens: int
    """Estimated prompt tokens (text estimate plus a fixed cost per media part)."""
    max_tokens: int | None
    """``max_completion_tokens`` or ``max_tokens``; None when the client set neither."""
    stream: bool
    """``"stream": true``."""
    model: str | None = None
    """The requested model name, if any."""
    include_usage: bool = False
    """``stream_options.include_usage`` was set by the client."""
    role: str | None = None
    """Pinned to this role's lanes (a ``role:NAME`` public endpoint); None: any lane."""

    @property
    def expected_output(self) -> int:
        """Output tokens to plan for."""
        return self.max_tokens if self.max_tokens is not None else DEFAULT_EXPECTED_OUTPUT

    def request_class(self, long_text_min_tokens: int) -> RequestClass:
        """The traffic class of this request under the given threshold."""
        if self.multimodal:
            return RequestClass.MULTIMODAL
        if self.max_tokens is not None and self.max_tokens < long_text_min_tokens:
            return RequestClass.SHORT_TEXT
        return RequestClass.LONG_TEXT


def _common(body: object) -> tuple[Mapping[str, object], int | None, bool, str | None, bool]:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    max_tokens: int | None = None
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidRequest(f"'{key}' must be a non-negative integer.", key)
        max_tokens = value
        break
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean.", "stream")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidRequest("'model' must be a string.", "model")
    include_usage = False
    options = body.get("stream_options")
    if isinstance(options, dict):
        include_usage = options.get("include_usage") is True
    return body, max_tokens, stream, model, include_usage


def _content_tokens(content: object, index: int) -> tuple[int, bool]:
    """Token estimate and media flag of one message's ``content``."""
    if content is None:
        return 0, False
    if isinstance(content, str):
        return _estimate_text(content), False
    if not isinstance(content, list):
        raise InvalidRequest(
            f"'messages[{index}].content' must be a string or a list of content parts.",
            f"messages[{index}].content",
        )
    tokens = 0
    media = False
    for part in content:
        if not isinstance(part, dict):
            raise InvalidRequest(
                f"'messages[{index}].content' parts must be objects.", f"messages[{index}].content"
            )
        kind = part.get("type")
        if kind in _MEDIA_PART_TYPES:
            media = True
            tokens += IMAGE_TOKENS
        else:
            text = part.get("text")
            if isinstance(text, str):
                tokens += _estimate_text(text)
    return tokens, media


def classify_chat(body: object) -> RequestSummary:
    """Summarise a ``/v1/chat/completions`` body; raises InvalidRequest."""
    obj, max_tokens, stream, model, include_usage = _common(body)
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array of messages.", "messages")
    tokens = 0
    media = False
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"'messages[{index}]' must be an object.", f"messages[{index}]")
        if not isinstance(message.get("role"), str):
            raise InvalidRequest(
                f"'messages[{index}].role' must be a string.", f"messages[{index}].role"
            )
        part_tokens, part_media = _content_tokens(message.get("content"), index)
        tokens += part_tokens + MESSAGE_OVERHEAD_TOKENS
        media = media or part_media
    return RequestSummary(media, tokens, max_tokens, stream, model, include_usage)


def classify_completion(body: object) -> RequestSummary:
    """Summarise a ``/v1/completions`` body; raises InvalidRequest."""
    obj, max_tokens, stream, model, include_usage = _common(body)
    prompt = obj.get("prompt")
    if isinstance(prompt, str):
        tokens = _estimate_text(prompt)
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        tokens = sum(_estimate_text(str(p)) for p in prompt)
    elif isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
        tokens = len(prompt)
    else:
        raise InvalidRequest(
            "'prompt' must be a string, a list of strings or of token ids.", "prompt"
        )
    if max_tokens is None:
        max_tokens = 16  # the OpenAI default for completions
    return RequestSummary(False, tokens, max_tokens, stream, model, include_usage)


class LaneCandidate(Protocol):
    """A lane as a policy reads it (the router's live state or a test's snapshot)."""

    @property
    def name(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def text(self) -> bool: ...
    @property
    def image(self) -> bool: ...
    @property
    def eligible(self) -> bool:
        """Active, accepting and its breaker lets a request through."""
        ...

    @property
    def in_flight(self) -> int: ...
    @property
    def limit(self) -> int: ...
    @property
    def outstanding_work(self) -> float:
        """Expected output tokens still to generate for the requests it serves."""
        ...

    @property
    def perf(self) -> LanePerf: ...
    @property
    def why_not(self) -> str:
        """Why the lane is not eligible (``draining``, ``breaker open`` ...)."""
        ...


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of ``choose``."""

    lane: str | None
    """The lane to send to now; None means wait (``wait``) or refuse."""
    wait: bool = False
    """Eligible lanes exist but all are at their in-flight limit: queue."""
    spilled: bool = False
    """Short text went to another lane than the throughput lane."""
    message: str = ""
    """Why no lane could be chosen (for the 503 body)."""


@dataclass
class PolicyState:
    """The little mutable state policies keep between calls (round-robin cursor)."""

    cursor: int = 0


NO_LANES_MESSAGE = "no lanes configured yet; add one in /etc/qwend/lanes.d"


def _free(lane: LaneCandidate) -> bool:
    return lane.in_flight < lane.limit


def _text_pool(lanes: Sequence[LaneCandidate]) -> list[LaneCandidate]:
    """Eligible text lanes, keeping the multimodal lane for text only as a last resort."""
    text = [lane for lane in lanes if lane.text and lane.eligible]
    dedicated = [lane for lane in text if lane.role != MULTIMODAL_ROLE]
    return dedicated or text


def _no_lane(lanes: Sequence[LaneCandidate], what: str) -> Decision:
    if not lanes:
        return Decision(None, message=NO_LANES_MESSAGE)
    states = ", ".join(f"{lane.name}: {lane.why_not or 'busy'}" for lane in lanes)
    return Decision(None, message=f"no lane can serve {what} right now ({states}); retry later")


def _pick(
    pool: Iterable[LaneCandidate], key: Callable[[LaneCandidate], Any] | None = None
) -> LaneCandidate | None:
    free = [lane for lane in pool if _free(lane)]
    if not free:
        return None
    if key is None:
        return free[0]
    return min(free, key=key)


def _choose_multimodal(lanes: Sequence[LaneCandidate]) -> Decision:
    capable = [lane for lane in lanes if lane.image and lane.eligible]
    pool = [lane for lane in capable if lane.role == MULTIMODAL_ROLE] or capable
    if not pool:
        return _no_lane(lanes, "image input (no accepting lane with the image capability)")
    lane = _pick(pool, key=lambda c: c.in_flight)
    return Decision(lane.name) if lane else Decision(None, wait=True)


def _balanced_long_text(pool: list[LaneCandidate], short: bool) -> Decision:
    by_role = {lane.role: lane for lane in pool if lane.role in (THROUGHPUT_ROLE, STABLE_ROLE)}
    fast, stable = by_role.get(THROUGHPUT_ROLE), by_role.get(STABLE_ROLE)
    if not by_role:
        lane = _pick(pool, key=lambda c: (c.outstanding_work, c.in_flight))
        return Decision(lane.name) if lane else Decision(None, wait=True)
    if short:
        if fast is not None and _free(fast) and fast.in_flight == 0:
            return Decision(fast.name)
        if stable is not None and stable.in_flight == 0 and _free(stable):
            return Decision(stable.name, spilled=fast is not None)
        if fast is not None and _free(fast):
            return Decision(fast.name)
        if stable is not None and _free(stable):
            return Decision(stable.name, spilled=fast is not None)
        return Decision(None, wait=True)
    # Long text: the lane with the least outstanding expected work; ties go to throughput.
    pair = [lane for lane in (fast, stable) if lane is not None]
    lane = _pick(pair, key=lambda c: c.outstanding_work)
    return Decision(lane.name) if lane else Decision(None, wait=True)


def _least_work(pool: list[LaneCandidate], summary: RequestSummary) -> Decision:
    """The lane where the request adds the least predicted latency (``LanePerf.cost``).

    A lane takes requests up to its learned efficient concurrency (where its token
    rate stops rising), not up to its admission limit: past that point another
    request makes everything on the lane slower without the lane serving more, so
    waiting for a slot there or elsewhere finishes sooner. When every lane is at
    that point the request queues (and is placed by this policy again when a slot
    frees).

    ``horizon`` says how much of a request outlives the lane's current batch: a
    request of ``DEFAULT_EXPECTED_OUTPUT`` (256) tokens or more is priced at the
    batch the lane may reach (its efficient concurrency), an 8-token one at the
    batch it finds. Long requests thereby go to the lane that degrades least under
    concurrency, short ones fill the other.
    """
    prompt, out = summary.prompt_tokens, summary.expected_output
    horizon = min(1.0, out / DEFAULT_EXPECTED_OUTPUT)
    best: LaneCandidate | None = None
    best_cost = 0.0
    for lane in pool:
        perf = lane.perf
        reach = perf.efficient_concurrency(lane.limit)
        if lane.in_flight >= reach:
            continue
        cost = perf.cost(prompt, out, lane.in_flight, lane.outstanding_work, horizon, reach)
        if best is None or cost < best_cost:
            best, best_cost = lane, cost
    return Decision(best.name) if best is not None else Decision(None, wait=True)


def _round_robin(pool: list[LaneCandidate], state: PolicyState) -> Decision:
    ordered = sorted(pool, key=lambda c: c.name)
    for step in range(len(ordered)):
        lane = ordered[(state.cursor + step) % len(ordered)]
        if _free(lane):
            state.cursor = (state.cursor + step + 1) % len(ordered)
            return Decision(lane.name)
    return Decision(None, wait=True)


def _choose_pinned(lanes: Sequence[LaneCandidate], role: str) -> Decision:
    """Only the lanes of ``role``; capabilities do not apply (the client chose the lane)."""
    own = [lane for lane in lanes if lane.role == role]
    pool = [lane for lane in own if lane.eligible]
    if not pool:
        if not own:
            return Decision(None, message=f"no lane of role {role!r} is routable; retry later")
        return _no_lane(own, f"requests for role {role!r}")
    lane = _pick(pool, key=lambda c: c.in_flight)
    return Decision(lane.name) if lane else Decision(None, wait=True)


def choose(
    summary: RequestSummary,
    lanes: Sequence[LaneCandidate],
    policy: TextPolicy,
    *,
    long_text_min_tokens: int,
    state: PolicyState | None = None,
    exclude: frozenset[str] = frozenset(),
) -> Decision:
    """Choose a lane for ``summary`` among ``lanes`` minus ``exclude`` (lanes already tried)."""
    candidates = [lane for lane in lanes if lane.name not in exclude] if exclude else lanes
    if summary.role is not None:
        return _choose_pinned(candidates, summary.role)
    if summary.multimodal:
        return _choose_multimodal(candidates)
    pool = _text_pool(candidates)
    if not pool:
        return _no_lane(candidates, "text (no accepting lane with the text capability)")
    if policy is TextPolicy.BALANCED_LONG_TEXT:
        short = summary.request_class(long_text_min_tokens) is RequestClass.SHORT_TEXT
        return _balanced_long_text(pool, short)
    if policy is TextPolicy.LEAST_WORK:
        return _least_work(pool, summary)
    if policy is TextPolicy.ROUND_ROBIN:
        return _round_robin(pool, state if state is not None else PolicyState())
    lane = _pick(pool, key=lambda c: (c.in_flight, c.outstanding_work))
    return Decision(lane.name) if lane else Decision(None, wait=True)
