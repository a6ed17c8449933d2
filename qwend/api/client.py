"""Control-socket client used by qwenctl and qwen-tui, and by qwend to reach its peers.

Finds the socket (``--socket``, ``$QWEND_SOCKET``, ``/run/qwend/control.sock``,
``$XDG_RUNTIME_DIR/qwend/control.sock``), speaks the ``qwend.api.messages``
messages, and turns connection failures into errors a person can act on:
the daemon is not running, or the socket's group must be joined (or sudo used).

The same client speaks to another host's qwend over TCP (``ControlClient.for_peer``: its
``[cluster] listen``, with the shared token and/or client certificate); its failures are
``PeerError`` subclasses naming the peer. ``host=`` asks the local daemon to forward every
request to one of its peers (``/v1/hosts/NAME/...``), so a client never needs the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import grp
import json
import pwd
import ssl
import stat
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp

from qwend.api.messages import (
    API_PREFIX,
    ClusterResponse,
    ErrorCode,
    ErrorResponse,
    Event,
    GateRequest,
    LaneAction,
    LaneActionResult,
    LaneInfo,
    LanesResponse,
    LogLine,
    LogsResponse,
    Message,
    NpusResponse,
    PromoteRequest,
    PromotionAccepted,
    PromotionEvent,
    PromotionRecord,
    PromotionsResponse,
    ProtocolError,
    ReloadResponse,
    RollbackRequest,
    StatusResponse,
)
from qwend.api.stats import StatsUpdate
from qwend.errors import ControlError, QwendError

SYSTEM_SOCKET = Path("/run/qwend/control.sock")
M = TypeVar("M", bound=Message)
PromotionItem = PromotionAccepted | PromotionEvent | PromotionRecord


PEER_CONNECTIONS = 32
"""Connections one peer client may hold at once (forwarded streams, status polls); the
daemon's file-descriptor plan reserves them."""


class DaemonNotRunning(ControlError):
    """Nothing answers on the control socket."""


class SocketPermissionDenied(ControlError):
    """The control socket exists but this user may not connect to it."""


class ControlTimeout(ControlError):
    """The daemon did not answer in time."""


class ConnectionLost(DaemonNotRunning):
    """The connection to the daemon broke during a request or a stream (it exited or closed it).

    Streams (events, log follow, promotion progress) raise this when the daemon goes
    away in the middle; a client that wants to keep following reconnects on it.
    """


class RemoteError(ControlError):
    """The daemon answered with an ``ErrorResponse``."""

    def __init__(self, code: ErrorCode, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class PeerError(ControlError):
    """A request to a peer qwend failed; the message names the peer."""

    def __init__(self, peer: str, message: str) -> None:
        super().__init__(message)
        self.peer = peer


class PeerUnreachable(PeerError):
    """Nothing answers at the peer's address (refused, no route, link down)."""


class PeerTimeout(PeerError):
    """The peer did not answer within its ``timeout_s``."""


class PeerRefused(PeerError):
    """The peer refused our credentials (wrong token, missing or unknown client certificate)."""


class PeerTlsError(PeerError):
    """The TLS handshake with the peer failed (its certificate, or ours)."""


@dataclass(frozen=True)
class PeerTarget:
    """Where and how to reach a peer's control listener."""

    name: str
    """The peer's ``[cluster] name`` (in every error)."""
    base_url: str
    """``http(s)://host:port`` without a trailing slash."""
    token: str | Callable[[], str] | None = field(default=None, repr=False)
    """Sent as ``Authorization: Bearer``; never logged. A callable is asked before every
    request (a token file read again when it changes); a QwendError from it fails the
    request as a PeerRefused naming the peer."""
    ssl: ssl.SSLContext | bool = True
    """The TLS context of an https peer (CA, verification, client certificate)."""


FORWARD_PREFIX = "/hosts"
"""``/v1/hosts/NAME/<path>``: the local daemon forwards ``/v1/<path>`` to peer NAME."""


def socket_candidates(env: Mapping[str, str]) -> list[Path]:
    """Default socket locations, in discovery order (pure)."""
    candidates = [SYSTEM_SOCKET]
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        candidates.append(Path(runtime) / "qwend" / "control.sock")
    return candidates


def discover_socket(explicit: str | None, env: Mapping[str, str]) -> Path:
    """The socket to use: ``explicit``, ``$QWEND_SOCKET``, else the first default that exists."""
    if explicit:
        return Path(explicit)
    if env.get("QWEND_SOCKET"):
        return Path(env["QWEND_SOCKET"])
    candidates = socket_candidates(env)
    for candidate in candidates:
        try:
            candidate.lstat()
        except PermissionError:
            return candidate  # there is something we may not look at: report that, not ENOENT
        except OSError:
            continue
        return candidate
    return candidates[0]


ADMIN_GROUPS = frozenset({"root", "wheel", "sudo", "admin", "adm"})
"""Groups that grant far more than the control socket: never advise joining them."""


def _owner_text(path: Path) -> tuple[str, str, int | None]:
    """(description of owner/group/mode, group name, gid) of ``path`` for messages."""
    try:
        st = path.stat()
    except OSError:
        return "", "", None
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    return f"owner {owner}, group {group}, mode {stat.S_IMODE(st.st_mode):04o}", group, st.st_gid


def permission_advice(group: str, gid: int) -> str:
    """What to do about a socket of ``group`` this user may not open (pure)."""
    if gid == 0 or group in ADMIN_GROUPS:
        # Joining root (or an admin group) to talk to qwend would hand out far more.
        return (
            "run qwenctl with sudo, or have an admin give the socket a group of its own:"
            ' [daemon] socket_group = "qwend" in qwend.toml (groupadd qwend if it is missing),'
            " restart qwend, then sudo usermod -aG qwend $USER and log in again"
        )
    return (
        f"join its group: sudo usermod -aG {group} $USER, then log in again"
        " (or run qwenctl with sudo)"
    )


def connection_error(path: Path, exc: OSError) -> ControlError:
    """A person-readable error for failing to connect to ``path``."""
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        owner, group, gid = _owner_text(path)
        if gid is not None:
            return SocketPermissionDenied(
                f"permission denied on the qwend control socket {path} ({owner});"
                f" {permission_advice(group, gid)}"
            )
        return SocketPermissionDenied(
            f"permission denied on the qwend control socket {path} (cannot even look at it:"
            f" check the permissions of {path.parent}); run qwenctl with sudo or ask an admin"
        )
    if code == errno.ENOENT:
        return DaemonNotRunning(
            f"qwend is not running: no control socket at {path}. Start it"
            " (systemctl start qwend, or qwend --demo) or point qwenctl at its socket with"
            " --socket PATH or QWEND_SOCKET=PATH"
        )
    if code == errno.ECONNREFUSED:
        return DaemonNotRunning(
            f"qwend is not running: nothing listens on {path} (left over by a daemon that"
            " exited). Start it with systemctl start qwend"
        )
    return DaemonNotRunning(f"cannot connect to the qwend control socket {path}: {exc}")


class ControlClient:
    """Async client for one control socket; use as ``async with ControlClient(path) as c``."""

    def __init__(
        self,
        socket_path: Path,
        *,
        timeout_s: float = 300.0,
        host: str | None = None,
        peer: PeerTarget | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s
        self.host = host
        """Forward every request to this peer of the daemon (None: the daemon itself)."""
        self.peer = peer
        """Speak to a peer's TCP listener directly instead of a Unix socket."""
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_peer(cls, target: PeerTarget, *, timeout_s: float = 5.0) -> ControlClient:
        """A client of a peer's control listener (``[cluster] listen`` on another host)."""
        return cls(Path(), timeout_s=timeout_s, peer=target)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def open(self) -> None:
        """Open the session (``async with`` does it; a long-lived peer client calls it)."""
        if self._session is not None:
            return
        if self.peer is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(self.socket_path)),
                base_url="http://qwend",
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
            return
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.peer.ssl, limit=PEER_CONNECTIONS),
            base_url=self.peer.base_url,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout_s),
        )

    def auth_headers(self) -> dict[str, str]:
        """``Authorization`` for a request to the peer (empty without a token)."""
        peer = self.peer
        if peer is None or peer.token is None:
            return {}
        try:
            token = peer.token() if callable(peer.token) else peer.token
        except QwendError as exc:
            raise PeerRefused(peer.name, f"peer {peer.name}: no token to send: {exc}") from None
        return {"Authorization": f"Bearer {token}"}

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("ControlClient used outside 'async with'")
        return self._session

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Message | None = None,
        params: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> aiohttp.ClientResponse:
        # A stream has no total deadline, but its headers (sent at once by the daemon)
        # must arrive within the timeout: a daemon that accepts and never answers fails.
        timeout = aiohttp.ClientTimeout(
            total=None if stream else self.timeout_s, sock_connect=self.timeout_s
        )
        full = API_PREFIX + path
        if self.host is not None:
            full = f"{API_PREFIX}{FORWARD_PREFIX}/{self.host}{path}"
        with self._transport(method, path):
            async with asyncio.timeout(self.timeout_s):
                response = await self.session.request(
                    method,
                    full,
                    headers=self.auth_headers(),
                    json=body.to_dict() if body is not None else None,
                    params=params,
                    timeout=timeout,
                )
            if response.status >= 400:
                error = await _remote_error(response)
                if self.peer is not None and response.status in (401, 403):
                    raise PeerRefused(self.peer.name, f"peer {self.peer.name}: {error}")
                raise error
        return response

    @contextlib.contextmanager
    def _transport(self, method: str, path: str) -> Iterator[None]:
        """Every transport failure of a request as a ControlError subclass."""
        if self.peer is not None:
            with _peer_transport(self.peer, self.timeout_s, method, path):
                yield
            return
        try:
            yield
        except aiohttp.ClientConnectorError as exc:
            raise connection_error(self.socket_path, exc.os_error) from None
        except TimeoutError:
            raise ControlTimeout(
                f"qwend did not answer {method} {path} within {self.timeout_s:g}s"
                " (is the daemon hung? see systemctl status qwend; raise --timeout)"
            ) from None
        except (aiohttp.ClientError, ConnectionError, asyncio.IncompleteReadError) as exc:
            raise lost_connection(self.socket_path, exc) from None

    async def _get(self, path: str, tp: type[M], params: Mapping[str, str] | None = None) -> M:
        async with await self._request("GET", path, params=params) as response:
            with self._transport("GET", path):
                return tp.from_dict(await _json(response))

    async def _post(
        self,
        path: str,
        tp: type[M],
        body: Message | None = None,
        params: Mapping[str, str] | None = None,
    ) -> M:
        async with await self._request("POST", path, body=body, params=params) as response:
            with self._transport("POST", path):
                return tp.from_dict(await _json(response))

    async def status(self) -> StatusResponse:
        return await self._get("/status", StatusResponse)

    async def cluster(self) -> ClusterResponse:
        """Every host's status: this daemon's and each of its peers' (asked concurrently)."""
        return await self._get("/cluster", ClusterResponse)

    async def lanes(self) -> LanesResponse:
        return await self._get("/lanes", LanesResponse)

    async def lane(self, name: str) -> LaneInfo:
        return await self._get(f"/lanes/{name}", LaneInfo)

    async def lane_action(
        self, name: str, action: LaneAction, *, force: bool = False, now: bool = False
    ) -> LaneActionResult:
        """Run ``action``; stop and restart drain first unless ``now``, and are refused
        (RemoteError, code conflict) on a role's active lane unless ``force``."""
        params = {"force": "1" if force else "0", "now": "1" if now else "0"}
        return await self._post(f"/lanes/{name}/{action.value}", LaneActionResult, params=params)

    async def npus(self) -> NpusResponse:
        return await self._get("/npus", NpusResponse)

    async def logs(self, name: str, n: int = 100, previous: bool = False) -> LogsResponse:
        params = {"n": str(n), "previous": "1" if previous else "0"}
        return await self._get(f"/lanes/{name}/logs", LogsResponse, params)

    async def follow_logs(self, name: str, n: int = 100) -> AsyncIterator[LogLine]:
        params = {"n": str(n), "follow": "1"}
        async with await self._request(
            "GET", f"/lanes/{name}/logs", params=params, stream=True
        ) as r:
            async for data in _ndjson(r):
                yield LogLine.from_dict(data)

    async def promotions(self) -> PromotionsResponse:
        return await self._get("/promotions", PromotionsResponse)

    async def promote_nowait(
        self, lane: str, ready_timeout_s: float | None = None, gate: GateRequest | None = None
    ) -> PromotionAccepted:
        return await self._post(
            "/promotions", PromotionAccepted, PromoteRequest(lane, False, ready_timeout_s, gate)
        )

    async def promote(
        self, lane: str, ready_timeout_s: float | None = None, gate: GateRequest | None = None
    ) -> AsyncIterator[PromotionItem]:
        """Progress of a promotion: accepted, steps, then the record."""
        body = PromoteRequest(lane, True, ready_timeout_s, gate)
        async for item in self._promotion_stream("/promotions", body):
            yield item

    async def rollback_nowait(
        self, role: str, ready_timeout_s: float | None = None
    ) -> PromotionAccepted:
        return await self._post(
            "/rollback", PromotionAccepted, RollbackRequest(role, False, ready_timeout_s)
        )

    async def rollback(
        self, role: str, ready_timeout_s: float | None = None
    ) -> AsyncIterator[PromotionItem]:
        body = RollbackRequest(role, True, ready_timeout_s)
        async for item in self._promotion_stream("/rollback", body):
            yield item

    async def _promotion_stream(self, path: str, body: Message) -> AsyncIterator[PromotionItem]:
        async with await self._request("POST", path, body=body, stream=True) as response:
            async for data in _ndjson(response):
                payload = Event.from_dict(data).payload()
                if not isinstance(payload, PromotionAccepted | PromotionEvent | PromotionRecord):
                    raise ProtocolError(f"unexpected {type(payload).__name__} in promotion stream")
                yield payload

    async def reload(self) -> ReloadResponse:
        return await self._post("/reload", ReloadResponse)

    async def events(self, stats_interval_s: float | None = None) -> AsyncIterator[Event]:
        """The SSE event stream, decoded."""
        params = {} if stats_interval_s is None else {"stats_interval": str(stats_interval_s)}
        async with await self._request("GET", "/events", params=params, stream=True) as response:
            async for data in _sse(response):
                yield Event.from_dict(data)

    async def stats_stream(self, interval_s: float | None = None) -> AsyncIterator[StatsUpdate]:
        """Live stats: the whole frame first, then one delta per tick (``qwend.api.stats``)."""
        params = {} if interval_s is None else {"interval": str(interval_s)}
        async with await self._request(
            "GET", "/stats/stream", params=params, stream=True
        ) as response:
            async for data in _ndjson(response):
                yield StatsUpdate.from_dict(data)


@contextlib.contextmanager
def _peer_transport(peer: PeerTarget, timeout_s: float, method: str, path: str) -> Iterator[None]:
    """Every transport failure of a request to ``peer`` as a PeerError naming it."""
    where = f"peer {peer.name} ({peer.base_url})"
    try:
        yield
    except aiohttp.ClientConnectorCertificateError as exc:
        raise PeerTlsError(
            peer.name,
            f"{where}: its certificate failed verification ({exc.certificate_error});"
            " set tls_ca of [[peers]] to the CA that signed it",
        ) from None
    except aiohttp.ClientSSLError as exc:
        raise PeerTlsError(peer.name, f"{where}: TLS handshake failed: {_detail(exc)}") from None
    except aiohttp.ClientConnectorError as exc:
        raise PeerUnreachable(
            peer.name, f"{where} is unreachable: {exc.os_error.strerror or exc.os_error}"
        ) from None
    except TimeoutError:
        raise PeerTimeout(
            peer.name, f"{where} did not answer {method} {path} within {timeout_s:g}s"
        ) from None
    except (aiohttp.ClientError, ConnectionError, asyncio.IncompleteReadError) as exc:
        # A peer that requires a client certificate we lack hangs up after the handshake
        # (TLS 1.3 sends its alert late): it reads as a closed connection.
        raise PeerUnreachable(
            peer.name, f"{where} closed the connection during {method} {path}: {_detail(exc)}"
        ) from None


async def _json(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json()
    except (aiohttp.ContentTypeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"the daemon answered something that is not JSON: {exc}") from None


def lost_connection(path: Path, exc: BaseException) -> ConnectionLost:
    """The error for a connection to ``path`` that broke (pure)."""
    detail = str(exc).strip() or type(exc).__name__
    return ConnectionLost(
        f"lost the connection to qwend on {path} ({detail}); the daemon exited or closed it:"
        " see systemctl status qwend"
    )


async def _remote_error(response: aiohttp.ClientResponse) -> ControlError:
    async with response:
        text = await response.text()
    try:
        error = ErrorResponse.from_dict(json.loads(text))
    except (ValueError, ProtocolError):
        return RemoteError(
            ErrorCode.INTERNAL, f"HTTP {response.status}: {text[:200]}", response.status
        )
    return RemoteError(error.code, error.message, response.status)


_STREAM_CUT = (
    aiohttp.ClientError,
    ConnectionError,
    asyncio.IncompleteReadError,
)
"""How a stream breaks when the daemon goes away in the middle of it (ClientPayloadError,
ServerDisconnectedError, ClientOSError are ClientErrors; a reset may surface bare)."""


async def _ndjson(response: aiohttp.ClientResponse) -> AsyncIterator[Any]:
    try:
        async for raw in response.content:
            line = raw.strip()
            if line:
                yield _decode(line)
    except _STREAM_CUT as exc:
        raise ConnectionLost(f"the daemon closed the stream: {_detail(exc)}") from None


async def _sse(response: aiohttp.ClientResponse) -> AsyncIterator[Any]:
    data: list[str] = []
    try:
        async for raw in response.content:
            line = raw.decode(errors="replace").rstrip("\r\n")
            if line.startswith("data:"):
                data.append(line[5:].lstrip())
            elif not line and data:
                yield _decode("\n".join(data))
                data = []
    except _STREAM_CUT as exc:
        raise ConnectionLost(f"the daemon closed the event stream: {_detail(exc)}") from None


def _decode(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"the daemon sent a stream line that is not JSON: {exc}") from None


def _detail(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__
