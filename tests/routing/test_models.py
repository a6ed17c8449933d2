"""The one ``/v1/models`` parser: what a lane lists, and the router's union of the lanes."""

from __future__ import annotations

import pytest

from qwend.routing.models import listed_models, model_ids

QWEN = {"id": "Qwen3.5-9B", "object": "model", "owned_by": "vllm", "max_model_len": 32768}


def test_listed_models_keeps_whole_entries_that_have_an_id() -> None:
    doc = {"object": "list", "data": [QWEN, {"object": "model"}, "Qwen3.5-9B", {"id": 7}]}
    assert listed_models(doc) == [QWEN, {"id": 7}]
    assert model_ids(doc) == ["Qwen3.5-9B", "7"]


@pytest.mark.parametrize(
    "doc", [None, [], "x", {}, {"data": None}, {"data": {"id": "m"}}, {"data": []}]
)
def test_anything_else_lists_nothing(doc: object) -> None:
    assert listed_models(doc) == []
    assert model_ids(doc) == []
