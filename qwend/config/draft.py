"""What parsing could read of a lane file before the whole configuration is judged (pure).

``parse`` fills one ``LaneDraft`` per lane file, with None wherever a value was missing or
invalid, so ``checks`` can compare lanes across files (names, roles, ports, NPUs) even
when some of them are broken, and report every problem in one run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qwend.config.model import Capabilities


@dataclass
class LaneDraft:
    """What could be read of one lane file; None marks a missing or invalid field."""

    file: str
    """The lane file as the operator sees it (``lanes.d/stable.toml``)."""
    name: str | None = None
    role: str | None = None
    standby: bool = False
    npus: tuple[int, ...] | None = None
    port: int | None = None
    capabilities: Capabilities = field(default_factory=Capabilities)
    values: dict[str, object] = field(default_factory=dict)
    """Every field of LaneConfig (None when invalid)."""
