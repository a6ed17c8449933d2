"""Decoding JSON request bodies from clients, with a nesting bound (pure).

``json.loads`` recurses once per nesting level: a body of a few thousand ``[``
makes it raise ``RecursionError``, which no ``except ValueError`` catches, so a
hostile client got a 500 and a traceback in the log. ``loads`` turns that into a
``JsonBodyError`` (a ``ValueError``) and also refuses documents nested deeper
than ``MAX_DEPTH``, well below the interpreter's recursion limit, so nothing that
walks the document afterwards (classification, ``json.dumps``) can hit it
either. Imports nothing of qwend.
"""

from __future__ import annotations

import json
from collections.abc import Collection

MAX_DEPTH = 128
"""Deepest nesting of arrays and objects accepted (an OpenAI request nests about 6
levels; tool schemas a few dozen at most)."""


_CONTAINERS = frozenset({dict, list})
"""The types ``json.loads`` builds that nest (it never builds subclasses)."""


class JsonBodyError(ValueError):
    """The body is not UTF-8 JSON, or nests deeper than the bound; ``str`` says which."""


class NotJson(JsonBodyError):
    """The body is not UTF-8 JSON."""


class TooDeep(JsonBodyError):
    """The body nests arrays and objects deeper than the bound."""


def loads(data: bytes, max_depth: int = MAX_DEPTH) -> object:
    """The decoded document; raises ``JsonBodyError`` with a message for the client."""
    try:
        doc = json.loads(data.decode())  # str: json skips its encoding detection
    except RecursionError:
        raise TooDeep(_too_deep(max_depth)) from None
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise NotJson(f"The request body is not valid JSON: {exc}") from None
    if depth_exceeds(doc, max_depth):
        raise TooDeep(_too_deep(max_depth))
    return doc


def _too_deep(max_depth: int) -> str:
    return f"The request body nests arrays and objects more than {max_depth} levels deep."


def depth_exceeds(doc: object, max_depth: int) -> bool:
    """Whether ``doc`` nests arrays/objects more than ``max_depth`` levels (iterative).

    A scalar has depth 0, ``[]`` and ``{}`` depth 1.
    """
    stack: list[tuple[object, int]] = [(doc, 0)]
    while stack:
        node, depth = stack.pop()
        children: Collection[object]
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth >= max_depth:
            return True
        # set(map(type, ...)) runs in C: a million token ids cost milliseconds, not a loop.
        if not _CONTAINERS.isdisjoint(set(map(type, children))):
            stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False
