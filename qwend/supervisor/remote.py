"""How qwend reaches a remote lane: TLS context, upstream API key, connect timeout.

A remote lane (``lane.url``) runs on another host; every request qwend sends it (health,
readiness, the router's traffic and probes) carries the options built here. The API key
file is read when it changes (its modification time), so a rotated key is used without a
reload; it must not be readable by every user, like the public API keys file. The key is
never logged: only ``Authorization`` carries it.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import ssl
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from qwend.config.model import LaneConfig, RemoteConfig
from qwend.errors import LaneError
from qwend.tls import client_context


@dataclass(frozen=True)
class Access:
    """Per-request options for one lane: ``ssl`` and ``headers`` for aiohttp."""

    ssl: ssl.SSLContext | bool = True
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    connect_timeout_s: float | None = None

    def timeout(self, total: float | None) -> aiohttp.ClientTimeout:
        """A request timeout: ``total`` and this lane's connect timeout."""
        return aiohttp.ClientTimeout(total=total, sock_connect=self.connect_timeout_s)

    def adjust(self, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
        """``timeout`` with this lane's connect timeout, when it has its own."""
        if self.connect_timeout_s is None:
            return timeout
        return aiohttp.ClientTimeout(
            total=timeout.total,
            connect=timeout.connect,
            sock_read=timeout.sock_read,
            sock_connect=self.connect_timeout_s,
        )

    def with_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """``headers`` plus this lane's ``Authorization`` (a client's own is never passed on
        to a remote lane that has a key)."""
        return {**headers, **self.headers}


LOCAL = Access()
"""A local lane: plain HTTP on loopback, no key."""


def access(lane: LaneConfig) -> Access:
    """The request options for ``lane``; LaneError when its TLS or key files are unusable."""
    return access_for(lane.name, lane.remote)


def access_for(name: str, remote: RemoteConfig | None) -> Access:
    """The request options for lane ``name`` (remote settings or None for a local lane)."""
    if remote is None:
        return LOCAL
    headers: dict[str, str] = {}
    if remote.api_key_file is not None:
        key = _read_key(remote.api_key_file, *_stamp(remote.api_key_file, name))
        headers["Authorization"] = f"Bearer {key}"
    context: ssl.SSLContext | bool = _context(remote) if remote.tls else True
    return Access(context, headers, remote.connect_timeout_s)


def _stamp(path: Path, lane: str) -> tuple[int, int, str]:
    try:
        st = path.stat()
    except OSError as exc:
        raise LaneError(
            f"lane {lane}: cannot read api_key_file {path}: {exc.strerror or exc}"
        ) from None
    if st.st_mode & stat.S_IROTH:
        raise LaneError(
            f"lane {lane}: api_key_file {path} is readable by every user"
            f" (mode {stat.S_IMODE(st.st_mode):04o}); chmod o-rwx it (e.g. 0640 root:qwend)"
        )
    return st.st_mtime_ns, st.st_size, lane


@functools.lru_cache(maxsize=64)
def _read_key(path: Path, mtime_ns: int, size: int, lane: str) -> str:
    """The first non-empty, non-comment line (cached per file version)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LaneError(f"lane {lane}: cannot read api_key_file {path}: {exc}") from None
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            if any(ord(ch) < 33 for ch in line):
                raise LaneError(f"lane {lane}: api_key_file {path}: the key has spaces in it")
            return line
    raise LaneError(f"lane {lane}: api_key_file {path} holds no key")


@functools.lru_cache(maxsize=64)
def _context(remote: RemoteConfig) -> ssl.SSLContext:
    """The TLS context of an https lane (cached: contexts are costly and reusable)."""
    try:
        return client_context(remote.tls_ca, remote.tls_verify, remote.tls_cert, remote.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise LaneError(f"remote lane {remote.url}: TLS settings unusable: {exc}") from None


def tls_problem(remote: RemoteConfig | None, exc: aiohttp.ClientError) -> str | None:
    """What an https lane's connection failure says about its TLS settings, or None.

    A failed certificate check names the setting that decides it. A server that hangs up
    right after the handshake while qwend offered no client certificate is most likely
    one that requires it: with TLS 1.3 its "certificate required" alert arrives after the
    handshake and reaches aiohttp only as a disconnect, so the hint says so.
    """
    if remote is None or not remote.tls:
        return None
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return (
            f"TLS verification of {remote.url} failed ({exc.certificate_error});"
            " set tls_ca to the CA that signed the lane's certificate"
        )
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS handshake with {remote.url} failed ({exc}); check tls_ca, tls_cert, tls_key"
    if isinstance(exc, aiohttp.ServerDisconnectedError) and remote.tls_cert is None:
        return (
            f"{remote.url} closed the TLS connection without answering: if it requires a"
            " client certificate (mutual TLS), set tls_cert and tls_key"
        )
    return None


def tls_warning(lane: LaneConfig) -> str | None:
    """The warning an https lane that skips certificate checks deserves, or None."""
    if lane.remote is None or not lane.remote.tls or lane.remote.tls_verify:
        return None
    return (
        f"lane {lane.name}: tls_verify = false: the certificate of {lane.remote.url} is not"
        " checked, so anyone on the path can impersonate the lane and read its API key"
    )


class RemoteHandle:
    """Stands where a lane process would for a remote lane: nothing to spawn, signal or reap.

    The runner's life task (readiness, liveness, backoff) runs unchanged on it; it never
    "exits", so a remote lane leaves rotation only by failing its health checks.
    """

    pid: int | None = None
    started_at: float | None = None
    exit_description = "remote lane (not a process of this host)"

    def __init__(self) -> None:
        self.exited = asyncio.Event()

    @property
    def running(self) -> bool:
        """Always: the lane's life is its host's business."""
        return True

    async def start(self) -> None:
        """Nothing to spawn."""

    async def stop(self, sig: signal.Signals, timeout: float) -> str | None:
        """Nothing to stop: qwend only stops routing to the lane."""
        del sig, timeout
        return None

    async def finish(self) -> None:
        """Nothing to reap."""


def refuse_process_action(lane: LaneConfig, action: str) -> None:
    """Raise RemoteLaneAction (a conflict) when ``lane`` is remote."""
    if lane.remote is not None:
        raise RemoteLaneAction(
            f"lane {lane.name} is a remote lane ({lane.remote.url}): qwend cannot {action} it"
            " on its host; drain it to stop routing to it, start it to resume a drained lane,"
            " or act on its host"
        )


class RemoteLaneAction(LaneError):
    """An operator asked to start, stop or restart a lane that runs on another host."""
