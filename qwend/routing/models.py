"""Reading ``GET /v1/models`` answers (pure): one parser for the router, the public
endpoints and the supervisor's health checks.

A lane's answer is ``{"object": "list", "data": [{"id": ...}, ...]}``; anything
else (not an object, no ``data`` list, entries without an ``id``) lists nothing.
The router answers ``/v1/models`` with the union of what its lanes list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

ModelEntry = dict[str, object]
"""One model object as a lane lists it (kept whole: the router passes it on)."""


def listed_models(doc: object) -> list[ModelEntry]:
    """The model objects (those with an ``id``) of a decoded ``/v1/models`` body."""
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        return []
    return [entry for entry in data if isinstance(entry, dict) and "id" in entry]


def model_ids(doc: object) -> list[str]:
    """The model ids a decoded ``/v1/models`` body lists."""
    return [str(entry["id"]) for entry in listed_models(doc)]


def models_union(answers: Iterable[tuple[Sequence[ModelEntry], str]]) -> dict[str, object]:
    """The ``/v1/models`` body listing every model the lanes serve, each id once.

    ``answers`` holds, per lane, what it listed and the model its configuration
    names; a lane that listed nothing (unreachable, still starting) counts with
    that configured name, so a client sees the model before the lane answers.
    """
    seen: dict[str, ModelEntry] = {}
    for found, configured in answers:
        if not found and configured:
            found = [{"id": configured, "object": "model", "owned_by": "qwend"}]
        for model in found:
            seen.setdefault(str(model["id"]), model)
    return {"object": "list", "data": list(seen.values())}
