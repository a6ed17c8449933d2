"""Reading ``GET /v1/models`` answers (pure): one parser for the router, the public
endpoints and the supervisor's health checks.

A lane's answer is ``{"object": "list", "data": [{"id": ...}, ...]}``; anything
else (not an object, no ``data`` list, entries without an ``id``) lists nothing.
The router's own ``/v1/models`` lists the lanes' public names (``qwend.routing.names``);
this reads what a backend lists (readiness, the served-model check).
"""

from __future__ import annotations

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
