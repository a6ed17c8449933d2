"""The control API: JSON over HTTP on the daemon's Unix socket (qwenctl, qwen-tui).

``make_control_app`` builds the aiohttp application; the daemon serves it on
the socket made by ``create_control_socket`` (``web.SockSite``). Every
endpoint lives under ``/v1``; bodies are ``qwend.api.messages`` messages; errors
are ``ErrorResponse`` bodies with a matching HTTP status. Mutating calls are
logged with the caller's uid and pid (SO_PEERCRED).

With ``[[peers]]``, ``/v1/cluster`` shows every host and ``/v1/hosts/NAME/...`` forwards to
peer NAME (``qwend.control.forward``). ``make_peer_app`` serves the same API to peers on
``[cluster] listen``, behind ``qwend.control.peerauth`` and without those two.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware

from qwend import jsonbody
from qwend.api.client import FORWARD_PREFIX
from qwend.api.messages import (
    API_PREFIX,
    Caller,
    ErrorCode,
    ErrorResponse,
    LaneAction,
    LaneActionResult,
    LanesResponse,
    LogsResponse,
    Message,
    NpusResponse,
    PromoteRequest,
    PromotionsResponse,
    ProtocolError,
    RollbackRequest,
    StatusResponse,
    error_http_status,
)
from qwend.cluster.peers import Peers, UnknownPeer
from qwend.cluster.view import cluster_view
from qwend.control.context import (
    ControlContext,
    ControlSupervisor,
    MonitorView,
    NpuRenderer,
    ReloadCallback,
    RouterStats,
)
from qwend.control.forward import FORWARDED_BY, forward
from qwend.control.safety import GUARDED, ActionRefused, refusal
from qwend.control.stats import StatsHub, hub_for, interval_from, stream_stats
from qwend.control.streams import stream_events, stream_log, stream_promotion
from qwend.control.unix_socket import create_control_socket, peer_caller, remove_control_socket
from qwend.control.views import router_dict
from qwend.errors import LaneError, PromotionConflict, PromotionError, QwendError
from qwend.jsonbody import NotJson, TooDeep
from qwend.logs import get_logger
from qwend.npu.render import render_view, view_to_dict
from qwend.promotion.plan import UnknownLane
from qwend.promotion.promoter import Promoter, Promotion
from qwend.supervisor.reload import KEPT_DOWN
from qwend.supervisor.remote import RemoteLaneAction, refuse_process_action
from qwend.supervisor.states import LaneState

__all__ = [
    "CONTROL_KEY",
    "ControlContext",
    "create_control_socket",
    "make_control_app",
    "make_peer_app",
    "remove_control_socket",
]

log = get_logger("control")
CONTROL_KEY: web.AppKey[ControlContext] = web.AppKey("control", ControlContext)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=Message)


def _json(message: Message, status: int = 200) -> web.Response:
    return web.json_response(message.to_dict(), status=status)


def _error(code: ErrorCode, message: str) -> web.Response:
    return _json(ErrorResponse(code, message), status=error_http_status(code))


def _classify(exc: QwendError) -> ErrorCode:
    if isinstance(exc, UnknownLane | UnknownPeer):
        return ErrorCode.NOT_FOUND
    if isinstance(exc, PromotionConflict | ActionRefused | RemoteLaneAction):
        return ErrorCode.CONFLICT
    if isinstance(exc, PromotionError):
        return ErrorCode.PROMOTION_FAILED
    if isinstance(exc, LaneError):
        return ErrorCode.LANE_ERROR
    if isinstance(exc, ProtocolError):
        return ErrorCode.BAD_REQUEST
    return ErrorCode.INTERNAL


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """QwendError -> ErrorResponse; anything else -> logged 500 (never a traceback page)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = ErrorCode.NOT_FOUND if exc.status == 404 else ErrorCode.BAD_REQUEST
        return _error(code, exc.text or exc.reason)
    except QwendError as exc:
        return _error(_classify(exc), str(exc))
    except Exception as exc:
        log.exception("control request failed", path=request.path)
        return _error(ErrorCode.INTERNAL, f"internal error: {exc}; see the daemon log")


def _ctx(request: web.Request) -> ControlContext:
    return request.app[CONTROL_KEY]


def _caller(request: web.Request) -> Caller | None:
    transport = request.transport
    return peer_caller(transport.get_extra_info("socket") if transport else None)


def _audit(request: web.Request, action: str, **fields: object) -> Caller | None:
    caller = _caller(request)
    if caller is None:
        # A peer's request over TCP: its address, and who asked on the forwarding host.
        peer = {"peer": request.remote, "forwarded_by": request.headers.get(FORWARDED_BY)}
        fields = {**peer, **fields}
    log.info(
        "control action",
        action=action,
        uid=caller.uid if caller else None,
        pid=caller.pid if caller else None,
        user=caller.user if caller else None,
        **fields,
    )
    return caller


async def _body(request: web.Request, tp: type[M]) -> M:
    try:
        data = jsonbody.loads(await request.read())
    except NotJson:
        raise ProtocolError("request body is not JSON") from None
    except TooDeep as exc:
        raise ProtocolError(str(exc)) from None
    return tp.from_dict(data)


def _lane_name(request: web.Request) -> str:
    name = request.match_info["name"]
    ctx = _ctx(request)
    if not ctx.has_lane(name):
        known = ", ".join(lc.name for lc in ctx.supervisor.config.lanes) or "none"
        raise UnknownLane(f"no lane named {name!r} (configured lanes: {known})")
    return name


def _status(ctx: ControlContext) -> StatusResponse:
    snapshot = ctx.router_snapshot()
    return StatusResponse(
        daemon=ctx.daemon_info(),
        active=ctx.supervisor.active_lanes(),
        lanes=ctx.lanes(snapshot),
        router=router_dict(snapshot),
        running_promotions=ctx.promoter.running(),
        last_promotions=ctx.promoter.history()[-5:],
        warnings=tuple(ctx.warnings()),
    )


async def status(request: web.Request) -> web.Response:
    return _json(_status(_ctx(request)))


async def cluster(request: web.Request) -> web.Response:
    """This host's status and every peer's, asked concurrently within a deadline each."""
    ctx = _ctx(request)
    if ctx.peers is None:
        return _json(cluster_view("", _status(ctx), ()))
    answers = await ctx.peers.statuses()
    # The local status is taken after the peers answered: it is the freshest part.
    return _json(cluster_view(ctx.peers.this, _status(ctx), answers))


async def forwarded(request: web.Request) -> web.StreamResponse:
    """``/v1/hosts/NAME/<path>``: ``/v1/<path>`` on peer NAME, over this host's link."""
    ctx = _ctx(request)
    host, tail = request.match_info["host"], request.match_info["tail"]
    if ctx.peers is None:
        raise UnknownPeer(f"no peer named {host!r}: this host has no [[peers]]")
    if ctx.peers.this and host == ctx.peers.this:
        raise ProtocolError(f"{host!r} is this host: leave out --host")
    if tail == "cluster" or tail.startswith(FORWARD_PREFIX.lstrip("/") + "/"):
        # The peer would refuse it (one hop per link): say so here, in the caller's terms.
        raise ProtocolError(
            f"a request crosses one peer link: ask {host} about its own lanes, or ask the"
            " host that owns the lane directly"
        )
    caller = _caller(request)
    who = f"uid={caller.uid} pid={caller.pid}" if caller else ""
    if request.method != "GET":
        _audit(request, "forward", host=host, path=tail)
    return await forward(request, ctx.peers, host, tail, who)


async def lanes(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    return _json(LanesResponse(lanes=ctx.lanes(ctx.router_snapshot())))


async def lane(request: web.Request) -> web.Response:
    return _json(_ctx(request).lane(_lane_name(request)))


def _promoting(ctx: ControlContext, name: str) -> str | None:
    for running in ctx.promoter.running():
        if name in (running.from_lane, running.to_lane):
            return running.id
    return None


async def lane_action(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    name = _lane_name(request)
    try:
        action = LaneAction(request.match_info["action"])
    except ValueError:
        choices = ", ".join(a.value for a in LaneAction)
        raise ProtocolError(f"unknown lane action; use one of {choices}") from None
    busy = _promoting(ctx, name)
    if busy is not None:
        raise PromotionConflict(
            f"lane {name!r} is part of running promotion {busy}; wait for it to finish"
        )
    _refuse_remote(ctx, action, name)
    force, now = _flag(request, "force"), _flag(request, "now")
    if action in GUARDED:
        _guard(ctx, action, name, force)
    _audit(request, f"lane.{action.value}", lane=name, force=force, now=now)
    if action in GUARDED and not now:
        # In-flight requests finish first, bounded by [daemon] drain_timeout_s.
        await ctx.supervisor.drain_wait(name)
    method = {
        LaneAction.START: ctx.supervisor.start_lane,
        LaneAction.STOP: ctx.supervisor.stop_lane,
        LaneAction.RESTART: ctx.supervisor.restart_lane,
        LaneAction.DRAIN: ctx.supervisor.drain_lane,
        LaneAction.RESET: ctx.supervisor.reset_lane,
    }[action]
    await method(name)
    return _json(LaneActionResult(action=action, lane=ctx.lane(name)))


def _refuse_remote(ctx: ControlContext, action: LaneAction, name: str) -> None:
    """Start, stop and restart act on a process of this host: a remote lane has none (a
    conflict). Drain works on it, and start resumes a drained one."""
    if action not in (LaneAction.START, LaneAction.STOP, LaneAction.RESTART):
        return
    snap = ctx.supervisor.snapshot(name)  # LaneError for an unknown lane
    if action is LaneAction.START and snap.state is LaneState.DRAINING:
        return
    refuse_process_action(ctx.supervisor.config.lane(name), action.value)


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "0") in ("1", "true", "yes")


def _guard(ctx: ControlContext, action: LaneAction, name: str, force: bool) -> None:
    """Refuse (ActionRefused, a conflict) to take a role's active lane out without force."""
    snap = ctx.supervisor.snapshot(name)
    others = [
        lane.name
        for lane in ctx.supervisor.config.lanes
        if lane.role == snap.role and lane.name != name
    ]
    running = snap.state not in KEPT_DOWN
    why = refusal(action, name, snap.role, ctx.supervisor.active_lanes(), running, others)
    if why is None:
        return
    if not force:
        raise ActionRefused(why)
    log.warning("forced action on an active lane", action=action.value, lane=name, role=snap.role)


async def logs(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    name = _lane_name(request)
    try:
        n = int(request.query.get("n", "100"))
    except ValueError:
        raise ProtocolError("n must be a whole number of lines") from None
    previous = request.query.get("previous", "0") in ("1", "true", "yes")
    tail = ctx.supervisor.log_tail(name, n, previous=previous) if n > 0 else []
    if request.query.get("follow", "0") in ("1", "true", "yes") and not previous:
        return await stream_log(request, ctx, name, tail)
    return _json(LogsResponse(lane=name, previous=previous, lines=tuple(tail)))


async def npus(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    if ctx.monitor is None:
        return _json(NpusResponse(enabled=False, table="NPU monitoring is disabled\n"))
    view = ctx.monitor_view()
    if view is None:
        return _json(NpusResponse(enabled=True, table="no NPU reading yet\n"))
    renderer = ctx.npu_renderer or default_npu_renderer
    data, table = renderer(view)
    # A monitor configured off (or without npu-smi) still answers with its reason.
    enabled = bool(getattr(view, "enabled", True))
    return _json(NpusResponse(enabled=enabled, view=data, table=table))


def default_npu_renderer(view: Any) -> tuple[dict[str, Any], str]:
    """Render an NpuView with ``qwend.npu.render`` (the same text qwenctl prints)."""
    return view_to_dict(view), render_view(view)


async def _start_promotion(
    request: web.Request, promotion: Promotion, wait: bool
) -> web.StreamResponse:
    if wait:
        return await stream_promotion(request, _ctx(request), promotion)
    return _json(promotion.accepted, status=202)


async def promote(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    body = await _body(request, PromoteRequest)
    caller = _audit(request, "promote", lane=body.lane)
    promotion = ctx.promoter.start(
        body.lane, caller, ready_timeout_s=body.ready_timeout_s, gate=body.gate
    )
    return await _start_promotion(request, promotion, body.wait)


async def rollback(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    body = await _body(request, RollbackRequest)
    if body.role not in ctx.supervisor.config.roles:
        known = ", ".join(ctx.supervisor.config.roles) or "none"
        raise UnknownLane(f"no role named {body.role!r} (configured roles: {known})")
    caller = _audit(request, "rollback", role=body.role)
    promotion = ctx.promoter.rollback(body.role, caller, ready_timeout_s=body.ready_timeout_s)
    return await _start_promotion(request, promotion, body.wait)


async def promotions(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    return _json(PromotionsResponse(running=ctx.promoter.running(), history=ctx.promoter.history()))


async def reload(request: web.Request) -> web.Response:
    _audit(request, "reload")
    return _json(await _ctx(request).reload())


async def events(request: web.Request) -> web.StreamResponse:
    return await stream_events(request, _ctx(request))


STATS_HUBS = web.AppKey("stats_hubs", dict[float, StatsHub])
"""The stats stream's hubs, one per tick interval watchers asked for."""


async def stats_stream(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    interval = interval_from(request.query, ctx.stats_interval_s)
    return await stream_stats(request, ctx, hub_for(ctx, request.app[STATS_HUBS], interval))


async def _on_shutdown(app: web.Application) -> None:
    app[CONTROL_KEY].closing.set()
    for hub in app[STATS_HUBS].values():
        await hub.aclose()


def make_control_app(
    supervisor: ControlSupervisor,
    promoter: Promoter,
    *,
    router: RouterStats | None = None,
    monitor: MonitorView | None = None,
    reload_cb: ReloadCallback | None = None,
    version: str = "",
    config_path: Path | str | None = None,
    control_socket: Path | str | None = None,
    router_url: str = "",
    started_at: float | None = None,
    warnings: Callable[[], Sequence[str]] | None = None,
    npu_renderer: NpuRenderer | None = None,
    stats_interval_s: float = 2.0,
    peers: Peers | None = None,
) -> web.Application:
    """The control API application; its ``ControlContext`` is ``app[CONTROL_KEY]``."""
    ctx = ControlContext(
        supervisor=supervisor,
        promoter=promoter,
        router=router,
        monitor=monitor,
        reload_cb=reload_cb,
        version=version,
        config_path=str(config_path or ""),
        control_socket=str(control_socket or ""),
        router_url=router_url,
        npu_renderer=npu_renderer,
        stats_interval_s=stats_interval_s,
        peers=peers,
    )
    if started_at is not None:
        ctx.started_at = started_at
    if warnings is not None:
        ctx.warnings = warnings
    app = web.Application(middlewares=[_errors])
    _add_routes(app, ctx, peer_listener=False)
    return app


def make_peer_app(ctx: ControlContext, gate: Middleware) -> web.Application:
    """The control API for peers (``[cluster] listen``): ``gate`` checks their credentials;
    no cluster view and no forwarding (one hop per link)."""
    app = web.Application(middlewares=[gate, _errors], client_max_size=1024**2)
    _add_routes(app, ctx, peer_listener=True)
    return app


def _add_routes(app: web.Application, ctx: ControlContext, *, peer_listener: bool) -> None:
    app[CONTROL_KEY] = ctx
    app[STATS_HUBS] = {}
    app.on_shutdown.append(_on_shutdown)
    p = API_PREFIX
    if not peer_listener:
        app.router.add_get(f"{p}/cluster", cluster)
        app.router.add_route("*", f"{p}{FORWARD_PREFIX}/{{host}}/{{tail:.+}}", forwarded)
    app.router.add_get(f"{p}/status", status)
    app.router.add_get(f"{p}/lanes", lanes)
    app.router.add_get(f"{p}/lanes/{{name}}", lane)
    app.router.add_post(f"{p}/lanes/{{name}}/{{action}}", lane_action)
    app.router.add_get(f"{p}/lanes/{{name}}/logs", logs)
    app.router.add_get(f"{p}/npus", npus)
    app.router.add_get(f"{p}/promotions", promotions)
    app.router.add_post(f"{p}/promotions", promote)
    app.router.add_post(f"{p}/rollback", rollback)
    app.router.add_post(f"{p}/reload", reload)
    app.router.add_get(f"{p}/events", events)
    app.router.add_get(f"{p}/stats/stream", stats_stream)
