"""The command palette: every qwend action, on every lane it applies to, by name."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from qwen_tui.actions import ACTION_TITLES, Action, lane_actions
from qwen_tui.messages import ActionRequested, DetailRequested
from qwend.api.stats import StatsFrame


class QwendCommands(Provider):
    """``Promote lane X``, ``Stop lane Y``, ``Roll back role Z``, ``Reload configuration``..."""

    def _frame(self) -> StatsFrame | None:
        frame: StatsFrame | None = getattr(self.app, "frame", None)
        return frame

    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        frame = self._frame()
        out: list[tuple[str, Callable[[], object], str]] = []
        post = self.app.post_message
        out.append(
            (
                ACTION_TITLES[Action.RELOAD],
                partial(post, ActionRequested(Action.RELOAD, None)),
                "re-read qwend.toml and lanes.d (asks first)",
            )
        )
        roles_done: set[str] = set()
        for lane in frame.lanes if frame else ():
            for action in lane_actions(lane):
                if action is Action.RELOAD:
                    continue
                if action is Action.ROLLBACK:
                    if lane.role in roles_done:
                        continue
                    roles_done.add(lane.role)
                    name = f"{ACTION_TITLES[action]} {lane.role}"
                else:
                    name = f"{ACTION_TITLES[action]} {lane.name}"
                help_text = f"{lane.role} · {lane.variant} · {lane.state} (asks first)"
                out.append((name, partial(post, ActionRequested(action, lane.name)), help_text))
            out.append(
                (
                    f"Show lane {lane.name}",
                    partial(post, DetailRequested(lane.name)),
                    "config, state, graphs, last promotion and gate verdict, last bench",
                )
            )
        return out

    async def discover(self) -> Hits:
        for name, run, help_text in self._commands():
            yield DiscoveryHit(name, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, run, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), run, help=help_text)
