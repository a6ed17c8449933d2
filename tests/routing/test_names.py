"""The public model catalog of a lane set (no sockets)."""

from __future__ import annotations

from qwend.routing.lanetable import RoutableLane
from qwend.routing.names import ModelCatalog


def lane(name: str, role: str, model: str, *aliases: str, active: bool = True,
         max_len: int | None = None) -> RoutableLane:  # fmt: skip
    return RoutableLane(name, role, "v", "http://x", True, False, active, True, model,
                        aliases=aliases, max_model_len=max_len)  # fmt: skip


LANES = (
    lane("fast", "throughput", "qwen", "gpt-x", max_len=8192),
    lane("stable", "stable", "qwen", max_len=32768),
    lane("mm", "multimodal", "qwen-vl"),
    lane("green", "stable", "qwen-next", active=False),
)


def test_names_map_to_the_active_lanes_serving_them() -> None:
    catalog = ModelCatalog.of(LANES)
    assert list(catalog.models) == ["qwen", "gpt-x", "qwen-vl"]  # standby lanes: none
    qwen = catalog.get("qwen")
    assert qwen is not None and qwen.lanes == {"fast", "stable"}
    assert qwen.max_model_len == 8192  # the smallest: a request may land on either
    assert catalog.others("gpt-x") == {"stable", "mm"}
    assert catalog.others("nope") == frozenset()
    assert catalog.get("qwen-next") is None


def test_listing_and_not_found_message() -> None:
    catalog = ModelCatalog.of(LANES, "multimodal")
    assert catalog.listing() == {
        "object": "list",
        "data": [{"id": "qwen-vl", "object": "model", "created": 0, "owned_by": "qwend"}],
    }
    assert catalog.not_found_message("gpt-x") == (
        "the model 'gpt-x' does not exist here; served models: 'qwen-vl'"
    )
    assert "none (no active lane)" in ModelCatalog.of(()).not_found_message("x")
