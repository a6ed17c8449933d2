"""The control socket file: safe creation, stale-socket recovery, peer credentials.

The socket is mode 0660 and owned by ``socket_group`` so members of that group
(and root) may drive the daemon and nobody else can. A socket file left behind
by a crashed daemon is replaced; one a live daemon still answers on is not (two
daemons on one host would fight over the same NPUs).
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import pwd
import socket
import stat
import struct
from pathlib import Path

from qwend.api.messages import Caller
from qwend.errors import ControlError

SOCKET_MODE = 0o660
DIR_MODE = 0o755


def _socket_in_use(path: Path) -> bool:
    """True when something accepts connections on the Unix socket at ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError as exc:
        # EAGAIN: the backlog is full, so a live daemon is there.
        return exc.errno in (errno.EAGAIN, errno.EACCES)
    finally:
        probe.close()
    return True


def _clear_old(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ControlError(
            f"control socket path {path} exists and is not a socket; move it away or set"
            " [daemon] control_socket to another path"
        )
    if _socket_in_use(path):
        raise ControlError(
            f"another qwend is already running on {path}; stop it first"
            " (systemctl stop qwend) or give this one another [daemon] control_socket"
        )
    path.unlink()


def _group_id(group: str) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ControlError(
            f"[daemon] socket_group {group!r} does not exist; create it (groupadd {group})"
            " or remove socket_group to keep the daemon's group"
        ) from None


def create_control_socket(path: Path, group: str | None = None) -> socket.socket:
    """Bind and listen on ``path`` (0660, group ``group``); ready for ``web.SockSite``.

    Creates the parent directory (0755) if needed, replaces a stale socket,
    refuses a live one. Raises ControlError with what to do.
    """
    gid = _group_id(group) if group else -1
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    except OSError as exc:
        raise ControlError(f"cannot create {path.parent} for the control socket: {exc}") from None
    _clear_old(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # umask around bind so the socket never exists with wider permissions than 0660.
    old_umask = os.umask(0o117)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise ControlError(f"cannot bind the control socket {path}: {exc}") from None
    finally:
        os.umask(old_umask)
    try:
        path.chmod(SOCKET_MODE)
        if gid != -1:
            os.chown(path, -1, gid)
    except OSError as exc:
        sock.close()
        remove_control_socket(path)
        raise ControlError(f"cannot set owner/mode of the control socket {path}: {exc}") from None
    sock.listen(64)
    sock.setblocking(False)
    return sock


def remove_control_socket(path: Path) -> None:
    """Remove our socket file at shutdown (missing is fine)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


_UCRED = struct.Struct("3i")


def peer_caller(sock: object) -> Caller | None:
    """The uid/pid of the process at the other end of a Unix socket (SO_PEERCRED).

    ``sock`` is a socket or asyncio's ``TransportSocket`` wrapper; None when
    it is not a Unix socket or the credentials cannot be read.
    """
    if getattr(sock, "family", None) != socket.AF_UNIX:
        return None
    try:
        raw = sock.getsockopt(  # type: ignore[attr-defined]
            socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size
        )
    except OSError:
        return None
    pid, uid, _gid = _UCRED.unpack(raw)
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = ""
    return Caller(uid=uid, pid=pid, user=user)
