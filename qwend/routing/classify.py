"""Request classification (pure): what the router needs to know about one request.

``classify_chat`` / ``classify_completion`` turn a decoded JSON body into a
``RequestSummary`` (or raise ``InvalidRequest`` with an OpenAI-style message):
whether it carries images, a quick prompt-token estimate, the output it asks
for and whether it streams. ``RequestSummary.request_class`` sorts it into the
traffic classes the statistics and the policies distinguish.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

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
