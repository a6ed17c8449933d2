"""JSON codec for the control protocol's frozen dataclasses (pure).

Messages are plain frozen dataclasses whose fields are str, int, float, bool,
enums, nested messages, ``X | None``, ``tuple[X, ...]`` and ``Mapping[str, X]``.
``Message.to_dict`` turns one into JSON-able builtins; ``from_dict`` checks and
rebuilds it, naming the offending field on bad input so a version mismatch
between qwenctl and the daemon reads as a message, not a traceback.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any, Self

from qwend.errors import QwendError


class ProtocolError(QwendError):
    """A control message did not have the expected shape."""


class Message:
    """Mixin for protocol dataclasses: ``to_dict`` / ``from_dict`` JSON round-trips."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able builtins (enums by value, tuples as lists)."""
        encoded = encode(self)
        assert isinstance(encoded, dict)
        return encoded

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Rebuild from ``to_dict`` output; ProtocolError names a bad field."""
        return decode(cls, data, cls.__name__)  # type: ignore[no-any-return]


def encode(value: object) -> object:
    """Builtins for ``value`` (dataclasses recursively, enums by value)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [encode(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): encode(item) for key, item in value.items()}
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode(tp: Any, value: object, where: str) -> Any:
    """Check ``value`` against type ``tp`` and rebuild it."""
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return value
    if origin in (typing.Union, types.UnionType):
        return _decode_union(typing.get_args(tp), value, where)
    if origin is tuple:
        return _decode_tuple(typing.get_args(tp), value, where)
    if origin in (dict, Mapping) or tp is dict:
        return _decode_mapping(typing.get_args(tp), value, where)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, value, where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            choices = ", ".join(str(m.value) for m in tp)
            raise ProtocolError(f"{where}: {value!r} is not one of {choices}") from None
    return _decode_scalar(tp, value, where)


def _decode_scalar(tp: Any, value: object, where: str) -> Any:
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, bool):
        raise ProtocolError(f"{where}: expected int, got bool")
    if tp in (str, int, bool) and isinstance(value, tp):
        return value
    if tp is type(None) and value is None:
        return None
    raise ProtocolError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def _decode_union(args: tuple[Any, ...], value: object, where: str) -> Any:
    if value is None and type(None) in args:
        return None
    errors: list[str] = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return decode(arg, value, where)
        except ProtocolError as exc:
            errors.append(str(exc))
    raise ProtocolError(errors[0] if len(errors) == 1 else f"{where}: unexpected {value!r}")


def _decode_tuple(args: tuple[Any, ...], value: object, where: str) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise ProtocolError(f"{where}: expected a list, got {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(decode(args[0], item, f"{where}[{i}]") for i, item in enumerate(value))
    if len(args) != len(value):
        raise ProtocolError(f"{where}: expected {len(args)} items, got {len(value)}")
    pairs = enumerate(zip(args, value, strict=True))
    return tuple(decode(a, item, f"{where}[{i}]") for i, (a, item) in pairs)


def _decode_mapping(args: tuple[Any, ...], value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ProtocolError(f"{where}: expected an object, got {value!r}")
    item_tp = args[1] if len(args) == 2 else Any
    return {str(k): decode(item_tp, v, f"{where}.{k}") for k, v in value.items()}


def _decode_dataclass(cls: type, value: object, where: str) -> Any:
    if not isinstance(value, Mapping):
        raise ProtocolError(f"{where}: expected an object, got {value!r}")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in value:
            kwargs[f.name] = decode(hints[f.name], value[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ProtocolError(f"{where}: missing field {f.name!r}")
    # Unknown keys are ignored: a newer daemon may add fields an older qwenctl does not know.
    return cls(**kwargs)
