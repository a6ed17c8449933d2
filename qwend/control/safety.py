"""Safe lane actions (pure): when ``stop`` and ``restart`` are refused, and why.

Stopping or restarting the active lane of a role leaves that role with nothing to route
to: its requests answer 503 until a lane of the role is ready again (a model load takes
minutes). The control API refuses that unless the caller says ``force``, and the refusal
says what would happen and what to do instead, so every client (qwenctl, qwen-tui, a
script) gets the same guard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from qwend.api.messages import LaneAction
from qwend.errors import QwendError

GUARDED = frozenset({LaneAction.STOP, LaneAction.RESTART})
"""Actions that take a lane out of service: drained first, refused on an active lane."""


class ActionRefused(QwendError):
    """A lane action would take a role out of service; repeat it with force to do it anyway."""


def refusal(
    action: LaneAction,
    lane: str,
    role: str,
    active: Mapping[str, str],
    running: bool,
    others: Sequence[str],
) -> str | None:
    """Why ``action`` on ``lane`` needs ``force``, or None when it is safe.

    ``active``: role -> active lane; ``running``: the lane has a process (so stopping
    it changes something); ``others``: the role's other lanes, to suggest a promotion.
    """
    if action not in GUARDED or not running or active.get(role) != lane:
        return None
    if action is LaneAction.STOP:
        effect = (
            f"stopping it leaves role {role!r} without a lane: its requests answer 503"
            " until a lane of the role is started or promoted"
        )
    else:
        effect = (
            f"while it restarts, requests to role {role!r} answer 503 until it is ready"
            " again (loading a model can take minutes)"
        )
    if others:
        instead = f"promote another lane of the role first (qwenctl promote lane {others[0]})"
    else:
        instead = "add a lane to the role and promote it first"
    return (
        f"refusing to {action.value} lane {lane!r}: it is the active lane of role {role!r};"
        f" {effect}. To keep the role serving, {instead}; to {action.value} it anyway,"
        " repeat with --force"
    )
