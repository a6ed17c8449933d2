"""Public model names (pure): which names clients may ask for, which lanes serve each.

A lane is known to clients by ``lane.model`` and its ``aliases``; its backend may expect
another name (``served_model``). The catalog is built from the active lanes of the lane
table (ready or not: a lane restarting still serves its names, a standby lane serves
none until promoted) whenever the table changes, so a request pays one dict lookup.
A name several lanes share (the normal case: one model in several roles) maps to all
of them; the router chooses among those only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from qwend.routing.lanetable import RoutableLane

OWNED_BY = "qwend"
MODEL_NOT_FOUND = "model_not_found"
"""The error ``code`` of a request naming a model no lane serves."""


@dataclass(frozen=True)
class PublicModel:
    """One public name and what qwend knows of it."""

    name: str
    lanes: frozenset[str]
    """The active lanes serving it."""
    max_model_len: int | None
    """The smallest context length its lanes state (a request may land on any of them)."""

    def entry(self) -> dict[str, object]:
        """The OpenAI model object ``/v1/models`` lists."""
        doc: dict[str, object] = {
            "id": self.name,
            "object": "model",
            "created": 0,
            "owned_by": OWNED_BY,
        }
        if self.max_model_len is not None:
            doc["max_model_len"] = self.max_model_len
        return doc


@dataclass(frozen=True)
class ModelCatalog:
    """The public names of a set of lanes."""

    models: dict[str, PublicModel]
    """Public name -> model, in lane order (each lane's ``model`` before its aliases)."""
    lanes: frozenset[str]
    """Every lane in the catalog."""

    @classmethod
    def of(cls, lanes: Iterable[RoutableLane], role: str | None = None) -> ModelCatalog:
        """The catalog of the active lanes (of ``role`` only, when given)."""
        names: dict[str, set[str]] = {}
        lengths: dict[str, list[int]] = {}
        members: set[str] = set()
        for lane in lanes:
            if not lane.active or (role is not None and lane.role != role):
                continue
            members.add(lane.name)
            for name in lane.public_names:
                names.setdefault(name, set()).add(lane.name)
                if lane.max_model_len is not None:
                    lengths.setdefault(name, []).append(lane.max_model_len)
        models = {
            name: PublicModel(name, frozenset(served), min(lengths.get(name, ()), default=None))
            for name, served in names.items()
        }
        return cls(models, frozenset(members))

    def get(self, name: str) -> PublicModel | None:
        """The public model called ``name``; None when no lane serves it."""
        return self.models.get(name)

    def others(self, name: str) -> frozenset[str]:
        """The lanes that do not serve ``name`` (the router never sends it there)."""
        model = self.models.get(name)
        return self.lanes - model.lanes if model is not None else frozenset()

    def listing(self) -> dict[str, object]:
        """The ``GET /v1/models`` body: every public name, aliases as entries of their own
        (a client picking an id from the list may pick any of them)."""
        return {"object": "list", "data": [m.entry() for m in self.models.values()]}

    def not_found_message(self, name: str) -> str:
        """Why a request for ``name`` is refused, listing what is served."""
        served = ", ".join(repr(n) for n in self.models) or "none (no active lane)"
        return f"the model {name!r} does not exist here; served models: {served}"
