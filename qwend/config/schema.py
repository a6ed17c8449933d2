"""Typed reading of TOML tables that collects every problem instead of stopping at the first.

A ``Table`` hands out values through small converters (``Int``, ``Num``, ``Listen`` ...).
A converter raises ``Bad`` on a wrong value; the table turns that into a ``ConfigIssue``
naming the file, the dotted key path and the bad value, records it and returns a default,
so reading goes on and the operator sees every mistake in one run. Keys that were never
asked for are reported at the end with a "did you mean" hint. Pure: no I/O.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from qwend.config.model import ListenAddress
from qwend.errors import ConfigIssue

T = TypeVar("T")

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
HOSTNAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")

# Signals that do not end a process: sending one as the stop signal would only ever time out.
NON_TERMINATING = frozenset(
    {
        signal.SIGSTOP,
        signal.SIGTSTP,
        signal.SIGCONT,
        signal.SIGTTIN,
        signal.SIGTTOU,
        signal.SIGCHLD,
        signal.SIGWINCH,
        signal.SIGURG,
    }
)


def show(value: object) -> str:
    """A value as the operator wrote it in TOML (strings quoted), shortened."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class Bad(Exception):
    """A value does not fit: ``expected`` says what would, ``suffix`` refines the key path."""

    def __init__(self, expected: str, got: object, suffix: str = "", *, raw: bool = False) -> None:
        super().__init__(expected)
        self.suffix = suffix
        self.message = expected if raw else f"expected {expected}, got {show(got)}"


class Conv(Generic[T]):
    """A converter: checks a raw TOML value and returns the typed one."""

    expected: str = "a value"

    def __call__(self, value: object) -> T:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Int(Conv[int]):
    """An integer in ``lo..hi`` (booleans are not integers here)."""

    lo: int = 0
    hi: int | None = None

    @property
    def expected(self) -> str:  # type: ignore[override]
        if self.hi is not None:
            return f"an integer {self.lo}-{self.hi}"
        return f"an integer >= {self.lo}"

    def __call__(self, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Bad(self.expected, value)
        if value < self.lo or (self.hi is not None and value > self.hi):
            raise Bad(self.expected, value)
        return value


@dataclass(frozen=True)
class Num(Conv[float]):
    """A number of seconds (or similar): ``>= 0``, or ``> 0`` when ``positive``; at most
    ``most`` when given (a fraction)."""

    positive: bool = False
    most: float | None = None

    @property
    def expected(self) -> str:  # type: ignore[override]
        if self.most is not None:
            return f"a number {'> 0' if self.positive else '>= 0'} and <= {self.most:g}"
        return "a number > 0" if self.positive else "a number >= 0"

    def __call__(self, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Bad(self.expected, value)
        if value != value or value in (float("inf"), float("-inf")):
            raise Bad(self.expected, value)
        if value < 0 or (self.positive and value == 0):
            raise Bad(self.expected, value)
        if self.most is not None and value > self.most:
            raise Bad(self.expected, value)
        return float(value)


@dataclass(frozen=True)
class Bool(Conv[bool]):
    """``true`` or ``false``."""

    expected: str = "true or false"

    def __call__(self, value: object) -> bool:
        if not isinstance(value, bool):
            raise Bad(self.expected, value)
        return value


@dataclass(frozen=True)
class BoolOrAuto(Conv["bool | None"]):
    """``true``, ``false`` or ``"auto"`` (None: decided at run time)."""

    expected: str = 'true, false or "auto"'

    def __call__(self, value: object) -> bool | None:
        if isinstance(value, bool):
            return value
        if value == "auto":
            return None
        raise Bad(self.expected, value)


@dataclass(frozen=True)
class Str(Conv[str]):
    """A non-empty string, optionally matching ``pattern``."""

    expected: str = "a non-empty string"
    pattern: re.Pattern[str] | None = None

    def __call__(self, value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            raise Bad(self.expected, value)
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise Bad(self.expected, value)
        if any(ord(ch) < 32 for ch in value):
            raise Bad(self.expected + " without control characters", value)
        return value


NAME = Str(
    "a name of letters, digits, '_', '.', '-' (at most 64, not starting with '_', '.', '-')",
    NAME_RE,
)


@dataclass(frozen=True)
class PathConv(Conv[Path]):
    """A filesystem path; relative paths resolve against ``base``."""

    base: Path
    expected: str = "a path string"

    def __call__(self, value: object) -> Path:
        if not isinstance(value, str) or not value.strip() or "\0" in value:
            raise Bad(self.expected, value)
        try:
            path = Path(value).expanduser()
        except RuntimeError:  # "~name" of a user this host does not have
            raise Bad("a path whose ~user exists on this host", value) from None
        return path if path.is_absolute() else self.base / path


def parse_host(host: str) -> str | None:
    """The host if it is an IP address or a plain hostname, else None."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host if HOSTNAME_RE.fullmatch(host) else None
    return host


@dataclass(frozen=True)
class Listen(Conv[ListenAddress]):
    """``"HOST:PORT"``; IPv6 hosts in brackets (``"[::1]:9101"``)."""

    expected: str = 'an address "HOST:PORT" (e.g. "127.0.0.1:18088", "[::]:9101")'

    def __call__(self, value: object) -> ListenAddress:
        if not isinstance(value, str):
            raise Bad(self.expected, value)
        match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]]+):(\d{1,5})", value.strip())
        if match is None:
            raise Bad(self.expected, value)
        host = match.group(1) or match.group(3)
        port = int(match.group(2) or match.group(4))
        if parse_host(host) is None:
            raise Bad(f"{self.expected}; {show(host)} is not an IP address or hostname", value)
        if not 1 <= port <= 65535:
            raise Bad(f"{self.expected} with a port 1-65535", value)
        return ListenAddress(host, port)


@dataclass(frozen=True)
class SignalConv(Conv[signal.Signals]):
    """A signal name (``"SIGTERM"``, ``"TERM"``, any case) or number that ends a process."""

    expected: str = 'a signal that ends a process, e.g. "SIGTERM", "SIGINT", "SIGQUIT" or 15'

    def __call__(self, value: object) -> signal.Signals:
        sig: signal.Signals | None = None
        if isinstance(value, str):
            name = value.strip().upper()
            name = name if name.startswith("SIG") else "SIG" + name
            sig = signal.Signals.__members__.get(name)
        elif isinstance(value, int) and not isinstance(value, bool):
            try:
                sig = signal.Signals(value)
            except ValueError:
                sig = None
        if sig is None or sig in NON_TERMINATING:
            raise Bad(self.expected, value)
        return sig


@dataclass(frozen=True)
class Choice(Conv[str]):
    """One of a fixed set of strings (listed in the message)."""

    choices: tuple[str, ...]

    @property
    def expected(self) -> str:  # type: ignore[override]
        return "one of " + ", ".join(f'"{c}"' for c in self.choices)

    def __call__(self, value: object) -> str:
        if value not in self.choices:
            raise Bad(self.expected, value)
        return str(value)


@dataclass(frozen=True)
class HttpUrl(Conv[tuple[str, str, int]]):
    """``http(s)://host:port[/prefix]`` -> (url without trailing slash, host, port)."""

    expected: str = 'an URL "http://HOST:PORT" or "https://HOST:PORT" (e.g. "http://10.0.0.2:8000")'

    def __call__(self, value: object) -> tuple[str, str, int]:
        if not isinstance(value, str):
            raise Bad(self.expected, value)
        match = re.fullmatch(
            r"(https?)://(?:\[([0-9A-Fa-f:.]+)\]|([^:/\[\]@?#\s]+))(?::(\d{1,5}))?(/[^?#\s]*)?",
            value.strip(),
        )
        if match is None:
            raise Bad(self.expected, value)
        scheme, host = match.group(1), match.group(2) or match.group(3)
        if parse_host(host) is None:
            raise Bad(f"{self.expected}; {show(host)} is not an IP address or hostname", value)
        port = int(match.group(4)) if match.group(4) else (443 if scheme == "https" else 80)
        if not 1 <= port <= 65535:
            raise Bad(f"{self.expected} with a port 1-65535", value)
        return value.strip().rstrip("/"), host, port


class Missing:
    """Marks a required key: no default."""


REQUIRED = Missing()


@dataclass
class Table:
    """One TOML table being read; records issues instead of raising."""

    issues: list[ConfigIssue]
    file: str
    path: str
    data: Mapping[str, object]
    seen: set[str] = field(default_factory=set)

    def key(self, name: str) -> str:
        """The dotted key path of ``name`` inside this table."""
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, message: str) -> None:
        """Record a problem with key ``name`` (empty: the table itself)."""
        self.issues.append(ConfigIssue(self.file, self.key(name) if name else self.path, message))

    def get(self, name: str, conv: Callable[[object], T], default: T | Missing) -> T | None:
        """The converted value of ``name``; on a problem, record it and return the default."""
        self.seen.add(name)
        if name not in self.data:
            if isinstance(default, Missing):
                expected = getattr(conv, "expected", "a value")
                self.error(name, f"missing required key; expected {expected}")
                return None
            return default
        try:
            return conv(self.data[name])
        except Bad as bad:
            self.issues.append(ConfigIssue(self.file, self.key(name) + bad.suffix, bad.message))
            return None if isinstance(default, Missing) else default

    def opt(self, name: str, conv: Callable[[object], T]) -> T | None:
        """An optional value: None when absent or wrong (wrong values are recorded)."""
        self.seen.add(name)
        if name not in self.data:
            return None
        try:
            return conv(self.data[name])
        except Bad as bad:
            self.issues.append(ConfigIssue(self.file, self.key(name) + bad.suffix, bad.message))
            return None

    def sub(self, name: str, *, required: bool = False) -> Table:
        """The sub-table ``name`` (empty when absent or not a table; a non-table is recorded)."""
        self.seen.add(name)
        value = self.data.get(name)
        if value is None:
            if required:
                self.error(name, "missing required table")
            return Table(self.issues, self.file, self.key(name), {})
        if not isinstance(value, Mapping):
            self.error(name, f"expected a table [{self.key(name)}], got {show(value)}")
            return Table(self.issues, self.file, self.key(name), {})
        return Table(self.issues, self.file, self.key(name), value)

    def items(self, name: str) -> list[Table]:
        """An array of tables ``[[name]]`` as tables keyed ``name[i]``."""
        self.seen.add(name)
        value = self.data.get(name, [])
        if not isinstance(value, list):
            self.error(name, f"expected an array of tables [[{self.key(name)}]], got {show(value)}")
            return []
        tables = []
        for index, item in enumerate(value):
            key = f"{self.key(name)}[{index}]"
            if isinstance(item, Mapping):
                tables.append(Table(self.issues, self.file, key, item))
            else:
                self.issues.append(
                    ConfigIssue(self.file, key, f"expected a table, got {show(item)}")
                )
        return tables

    def finish(self) -> None:
        """Report every key that was never asked for, with a "did you mean" hint."""
        known = sorted(self.seen)
        for name in self.data:
            if name in self.seen:
                continue
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            where = f"[{self.path}]" if self.path else "the top level"
            valid = ", ".join(known) if known else "none"
            self.error(name, f"unknown key in {where}{hint} (valid keys: {valid})")
