"""Client JSON bodies: decoded with a nesting bound, every failure a JsonBodyError."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwend.jsonbody import MAX_DEPTH, NotJson, TooDeep, depth_exceeds, loads


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def reference_depth(doc: object) -> int:
    if isinstance(doc, dict):
        return 1 + max((reference_depth(v) for v in doc.values()), default=0)
    if isinstance(doc, list):
        return 1 + max((reference_depth(v) for v in doc), default=0)
    return 0


def test_the_bound_itself_is_accepted_and_one_more_level_is_not() -> None:
    assert depth_exceeds(json.loads(nested(MAX_DEPTH)), MAX_DEPTH) is False
    assert loads(nested(MAX_DEPTH)) is not None
    with pytest.raises(TooDeep, match=f"more than {MAX_DEPTH} levels deep"):
        loads(nested(MAX_DEPTH + 1))


@pytest.mark.parametrize("depth", [10_000, 1_000_000])
def test_nesting_beyond_the_interpreter_s_recursion_limit_is_a_json_body_error(
    depth: int,
) -> None:
    # json.loads raises RecursionError here: no "except ValueError" caught it before.
    with pytest.raises(TooDeep):
        loads(b'{"a":' * depth + b"1" + b"}" * depth)
    with pytest.raises(TooDeep):
        loads(nested(depth))


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b"{'a': 1}", b"[1,]", b"NaN-"])
def test_not_json_is_a_json_body_error_saying_so(body: bytes) -> None:
    with pytest.raises(NotJson, match="not valid JSON"):
        loads(body)


def test_both_errors_are_value_errors() -> None:
    assert issubclass(NotJson, ValueError) and issubclass(TooDeep, ValueError)


json_docs = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=30,
)


@settings(max_examples=300, derandomize=True)
@given(json_docs, st.integers(min_value=0, max_value=8))
def test_depth_exceeds_agrees_with_a_recursive_definition(doc: object, bound: int) -> None:
    assert depth_exceeds(doc, bound) == (reference_depth(doc) > bound)


@settings(max_examples=200, derandomize=True)
@given(json_docs)
def test_documents_within_the_bound_round_trip(doc: object) -> None:
    assert loads(json.dumps(doc).encode()) == doc
