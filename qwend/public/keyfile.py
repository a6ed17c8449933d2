"""The API keys file, ``[public] api_keys_file``: parsed and checked (pure).

One key per line; blank lines and lines starting with ``#`` are ignored. After
the key, optional settings of that key, separated by spaces, and an optional
``# comment``::

    sk-ops-0123456789abcdef
    sk-alice-fedcba987654   name=alice requests_per_minute=60 tokens_per_minute=200000

A file of bare keys (the original format) reads as it always did. Only SHA-256
digests of the keys are kept, and a presented key is compared against every
digest with ``hmac.compare_digest``: the time taken says nothing about how much
of a key matched, nor (all digests being the same size) about the keys'
lengths. No key, nor any word that might be part of one, ever appears in a
message.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field

from qwend.errors import ConfigError, ConfigIssue
from qwend.public.limits import KeyLimits

_BEARER = "bearer "
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_OPTION_NAME_RE = re.compile(r"[a-z_]{1,40}")
_COUNT_RE = re.compile(r"[0-9]{1,12}")
OPTIONS = ("name", "requests_per_minute", "tokens_per_minute")
"""The settings a key line may carry after the key."""


def digest(key: str) -> bytes:
    """What is kept of a key; UnicodeEncodeError for a string no bytes could have given.

    aiohttp hands over header bytes that are not UTF-8 as surrogate escapes: they are
    encoded back to the bytes sent, which match no key of the (UTF-8) file.
    """
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


@dataclass(frozen=True)
class ApiKey:
    """One accepted key: its digest, a name for people, its limits."""

    digest: bytes = field(repr=False)
    name: str | None = None
    """``name=`` on its line, if any."""
    limits: KeyLimits = field(default_factory=KeyLimits)
    line: int = 0
    """Its line in the keys file."""

    @property
    def label(self) -> str:
        """How logs refer to the key (never by the key itself): its name, else its line."""
        return self.name if self.name is not None else f"line {self.line}"


@dataclass(frozen=True)
class KeySet:
    """The keys of one keys file, as read at one moment (replaced whole on reload)."""

    source: str
    """The file, for messages."""
    keys: tuple[ApiKey, ...]

    @property
    def count(self) -> int:
        """How many keys are accepted."""
        return len(self.keys)

    @property
    def limited(self) -> int:
        """How many keys carry a rate limit."""
        return sum(1 for key in self.keys if key.limits.rates())

    def find(self, authorization: str | None) -> ApiKey | None:
        """The key an ``Authorization`` header value carries, or None."""
        if authorization is None or authorization[:7].lower() != _BEARER:
            return None
        try:
            presented = digest(authorization[7:].strip())
        except UnicodeEncodeError:
            return None
        found: ApiKey | None = None
        for key in self.keys:  # no early exit: every key costs the same
            if hmac.compare_digest(presented, key.digest):
                found = key
        return found


def parse_key_file(text: str, source: str) -> KeySet:
    """The keys in ``text`` (the file ``source``); ConfigError with every issue, by line."""
    issues: list[ConfigIssue] = []
    keys: dict[bytes, ApiKey] = {}
    names: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        where = f"line {number}"
        try:
            key = _parse_line(number, words)
        except _BadLine as bad:
            issues.append(ConfigIssue(source, where, str(bad)))
            continue
        known = keys.get(key.digest)
        if known is not None:
            if (known.name, known.limits) != (key.name, key.limits):
                msg = f"the same key as line {known.line} with other settings; keep one of them"
                issues.append(ConfigIssue(source, where, msg))
            continue  # an exact repeat is harmless
        if key.name is not None:
            if key.name in names:
                used = names[key.name]
                msg = f"name {key.name!r} is already used on line {used}; names are unique"
                issues.append(ConfigIssue(source, where, msg))
                continue
            names[key.name] = number
        keys[key.digest] = key
    if not keys and not issues:
        msg = (
            "holds no keys; add one per line, or remove [public] api_keys_file"
            " to accept requests without a key"
        )
        issues.append(ConfigIssue(source, "", msg))
    if issues:
        raise ConfigError(issues)
    return KeySet(source, tuple(keys.values()))


class _BadLine(Exception):
    """A key line that cannot be used; the message never quotes the key."""


def _parse_line(number: int, words: list[str]) -> ApiKey:
    """One key line: the key, then ``NAME=VALUE`` settings, then maybe a ``# comment``."""
    settings: dict[str, str] = {}
    for word in words[1:]:
        if word.startswith("#"):
            break  # a comment to the end of the line
        option, sep, value = word.partition("=")
        if not sep:
            # Never quoted: a key with a space in it would show its second half.
            raise _BadLine(
                "expected NAME=VALUE settings after the key (a key may not contain spaces;"
                f" settings: {', '.join(OPTIONS)})"
            )
        if option not in OPTIONS:
            # Shown only when it looks like a setting's name, not like part of a key.
            shown = repr(option) if _OPTION_NAME_RE.fullmatch(option) else "(not shown)"
            raise _BadLine(f"unknown setting {shown}; known: {', '.join(OPTIONS)}")
        if option in settings:
            raise _BadLine(f"{option} is set twice")
        settings[option] = value
    name = settings.get("name")
    if name is not None and not _NAME_RE.fullmatch(name):
        raise _BadLine(f"name={name!r}: expected letters, digits, '_', '.', '@', '-' (at most 64)")
    limits = KeyLimits(
        requests_per_minute=_rate(settings, "requests_per_minute"),
        tokens_per_minute=_rate(settings, "tokens_per_minute"),
    )
    return ApiKey(digest(words[0]), name, limits, number)


def _rate(settings: dict[str, str], option: str) -> int | None:
    value = settings.get(option)
    if value is None:
        return None
    if not _COUNT_RE.fullmatch(value) or int(value) < 1:
        example = f"e.g. {option}=60"
        raise _BadLine(f"{option}={value!r}: expected a whole number of at least 1, {example}")
    return int(value)
