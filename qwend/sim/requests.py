"""OpenAI request bodies for the sim (pure): validate and reduce to what the engine needs.

Errors are ``ApiError``s that the app turns into OpenAI-style error bodies
(``{"error": {"message", "type", "param", "code"}}``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from qwend import tokens
from qwend.sim.images import ImageError, inspect_image_url
from qwend.sim.textgen import text_seed

ECHO_PREFIX = "/echo "
"""A chat whose last user message starts with this is answered with the rest of that
message, verbatim (tests make a lane say something exact, HTML or markdown included)."""
DEFAULT_ANSWER_TOKENS = 64
"""Natural answer length of a text request that sets no ``max_tokens``."""
ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})


@dataclass(frozen=True)
class ApiError(Exception):
    """A request the sim refuses, in OpenAI's error shape."""

    status: int
    """HTTP status (400, 404, 500, 503)."""
    message: str
    """What is wrong, for the client."""
    type: str = "invalid_request_error"
    """OpenAI error type."""
    param: str | None = None
    """The offending request field, if one."""
    code: str | None = None
    """A machine-readable code (``model_not_found``)."""

    def body(self) -> dict[str, object]:
        """The JSON error body."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def bad(message: str, param: str | None = None) -> ApiError:
    """A 400 error about ``param``."""
    return ApiError(400, message, param=param)


@dataclass(frozen=True)
class GenerationRequest:
    """A validated chat or completion request."""

    kind: str
    """``chat`` or ``completion``."""
    model: str
    """The model name as requested (checked against the served name)."""
    text_tokens: int
    """Prompt text tokens (chat template included)."""
    image_tokens: int
    """Prompt image tokens."""
    max_tokens: int
    """Most tokens to generate."""
    natural_tokens: int | None
    """Answer length before end-of-sequence when ``max_tokens`` was not given."""
    stream: bool
    """Server-sent events instead of one JSON body."""
    include_usage: bool
    """``stream_options.include_usage``: a final chunk with usage."""
    stop: tuple[str, ...]
    """Stop strings."""
    temperature: float
    """Sampling temperature (only changes the seed of the pseudo-text)."""
    ignore_eos: bool
    """vLLM extension: generate ``max_tokens`` even where the answer would end."""
    seed: int
    """Seed of the deterministic pseudo-text."""
    script: tuple[str, ...] = ()
    """The answer's tokens when it is fixed (``ECHO_PREFIX``); empty: pseudo-text."""

    @property
    def prompt_tokens(self) -> int:
        """Text plus image tokens, as ``usage.prompt_tokens`` reports them."""
        return self.text_tokens + self.image_tokens


def _get(body: Mapping[str, object], key: str, kinds: tuple[type, ...], what: str) -> object:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) and bool not in kinds:
        raise bad(f"'{key}' must be {what}, not a boolean", key)
    if not isinstance(value, kinds):
        raise bad(f"'{key}' must be {what}, not {type(value).__name__}", key)
    return value


def _number(body: Mapping[str, object], key: str, low: float, high: float) -> float | None:
    value = _get(body, key, (int, float), "a number")
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    if not low <= number <= high:
        raise bad(f"'{key}' must be between {low} and {high}, got {number}", key)
    return number


def _max_tokens(body: Mapping[str, object]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = _get(body, key, (int,), "an integer")
        if value is not None:
            if value < 1:  # type: ignore[operator]
                raise bad(f"'{key}' must be at least 1, got {value}", key)
            return value  # type: ignore[return-value]
    return None


def _stop(body: Mapping[str, object]) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return tuple(s for s in value if s)
    raise bad("'stop' must be a string or a list of strings", "stop")


def _include_usage(body: Mapping[str, object], stream: bool) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, Mapping):
        raise bad("'stream_options' must be an object", "stream_options")
    if not stream:
        raise bad("'stream_options' is only allowed when 'stream' is true", "stream_options")
    flag = options.get("include_usage", False)
    if not isinstance(flag, bool):
        raise bad("'stream_options.include_usage' must be a boolean", "stream_options")
    return flag


def _image_part(part: Mapping[str, object], where: str) -> int:
    spec = part.get("image_url")
    url = spec.get("url") if isinstance(spec, Mapping) else spec
    if not isinstance(url, str):
        raise bad(f"{where}.image_url.url must be a string", "messages")
    try:
        info = inspect_image_url(url)
    except ImageError as exc:
        raise bad(f"{where}: {exc}", "messages") from None
    return tokens.image_tokens(info.width, info.height)


def _message_images(message: Mapping[str, object], index: int) -> int:
    content = message.get("content")
    if content is None or isinstance(content, str):
        return 0
    if not isinstance(content, list):
        raise bad(f"messages[{index}].content must be a string or a list of parts", "messages")
    total = 0
    for n, part in enumerate(content):
        where = f"messages[{index}].content[{n}]"
        if not isinstance(part, Mapping):
            raise bad(f"{where} must be an object", "messages")
        kind = part.get("type")
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise bad(f"{where}.text must be a string", "messages")
        elif kind == "image_url":
            total += _image_part(part, where)
        else:
            raise bad(f"{where}.type {kind!r} is not supported (text, image_url)", "messages")
    return total


def parse_messages(body: Mapping[str, object]) -> tuple[list[Mapping[str, object]], int]:
    """Validate ``messages``; returns them and their image tokens."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("'messages' must be a non-empty list", "messages")
    images = 0
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise bad(f"messages[{index}] must be an object", "messages")
        role = message.get("role")
        if role not in ROLES:
            raise bad(f"messages[{index}].role must be one of {sorted(ROLES)}", "messages")
        images += _message_images(message, index)
    return messages, images


def parse_prompt(body: Mapping[str, object]) -> tuple[str, int]:
    """Validate a completion ``prompt``; returns its text (for the seed) and token count."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return prompt, tokens.count_tokens(prompt)
    if (
        isinstance(prompt, list)
        and prompt
        and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt)
    ):
        return ",".join(map(str, prompt)), len(prompt)
    raise bad("'prompt' must be a string or a list of token ids", "prompt")


def parse_generation(
    body: object, kind: str, *, served_model: str, max_model_len: int
) -> GenerationRequest:
    """Validate a ``/v1/chat/completions`` or ``/v1/completions`` body."""
    if not isinstance(body, Mapping):
        raise bad("the request body must be a JSON object")
    model = body.get("model", served_model)
    if not isinstance(model, str):
        raise bad("'model' must be a string", "model")
    if model != served_model:
        raise ApiError(
            404, f"The model `{model}` does not exist.", param="model", code="model_not_found"
        )
    if kind == "chat":
        messages, image_tokens = parse_messages(body)
        text_tokens = tokens.chat_text_tokens(messages)
        seed_text = repr([(m.get("role"), list(tokens.message_texts(m))) for m in messages])
        script = echo_script(messages)
    else:
        seed_text, text_tokens = parse_prompt(body)
        image_tokens = 0
        script = ()
    n = _get(body, "n", (int,), "an integer")
    if n not in (None, 1):
        raise bad("only n=1 is supported", "n")
    stream = _get(body, "stream", (bool,), "a boolean") is True
    temperature = _number(body, "temperature", 0.0, 2.0)
    _number(body, "top_p", 0.0, 1.0)
    seed = _get(body, "seed", (int,), "an integer")
    ignore_eos = _get(body, "ignore_eos", (bool,), "a boolean") is True
    prompt_tokens = text_tokens + image_tokens
    room = max_model_len - prompt_tokens
    requested = _max_tokens(body)
    if room < 1 or (requested is not None and requested > room):
        raise bad(
            f"This model's maximum context length is {max_model_len} tokens. However, you "
            f"requested {prompt_tokens + (requested or 1)} tokens ({prompt_tokens} in the "
            f"messages, {requested or 1} in the completion). Please reduce the length.",
            "max_tokens",
        )
    return GenerationRequest(
        kind=kind,
        model=model,
        text_tokens=text_tokens,
        image_tokens=image_tokens,
        max_tokens=requested if requested is not None else room,
        natural_tokens=None if requested is not None else DEFAULT_ANSWER_TOKENS,
        stream=stream,
        include_usage=_include_usage(body, stream),
        stop=_stop(body),
        temperature=1.0 if temperature is None else temperature,
        ignore_eos=ignore_eos,
        seed=text_seed(seed_text, temperature or 0.0, seed or 0),
        script=script,
    )


def echo_script(messages: Sequence[Mapping[str, object]]) -> tuple[str, ...]:
    """The tokens to answer with when the last user message asks for an echo."""
    users = [m for m in messages if m.get("role") == "user"]
    text = "".join(tokens.message_texts(users[-1])) if users else ""
    if not text.startswith(ECHO_PREFIX):
        return ()
    return tuple(tokens.split_pieces(text.removeprefix(ECHO_PREFIX)))


def tokenize_ids(body: object, *, served_model: str) -> list[int]:
    """Token ids for a vLLM ``/tokenize`` body (``prompt`` or ``messages``)."""
    if not isinstance(body, Mapping):
        raise bad("the request body must be a JSON object")
    model = body.get("model", served_model)
    if model is not None and model != served_model:
        raise ApiError(
            404, f"The model `{model}` does not exist.", param="model", code="model_not_found"
        )
    if "messages" in body:
        messages, image_tokens = parse_messages(body)
        return chat_token_ids(messages, image_tokens)
    text, _count = parse_prompt(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and all(isinstance(t, int) for t in prompt):
        return list(prompt)
    return tokens.token_ids(text)


IM_START, IM_END, IMAGE_PAD, NEWLINE = 151_644, 151_645, 151_655, 198
"""Qwen's chat-template and image placeholder token ids."""


def chat_token_ids(messages: Sequence[Mapping[str, object]], image_tokens: int) -> list[int]:
    """Ids matching ``tokens.chat_text_tokens`` plus one placeholder per image token.

    Each message is ``<|im_start|> role \\n text... <|im_end|>`` (four template
    tokens), and the reply opens with ``<|im_start|> assistant \\n``.
    """
    ids: list[int] = []
    for message in messages:
        role_id = tokens.token_ids(str(message.get("role")))[0]
        text_ids = [i for t in tokens.message_texts(message) for i in tokens.token_ids(t)]
        ids += [IM_START, role_id, NEWLINE, *text_ids, IM_END]
    ids += [IM_START, tokens.token_ids("assistant")[0], NEWLINE]
    return ids + [IMAGE_PAD] * image_tokens
