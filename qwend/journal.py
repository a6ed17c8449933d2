"""systemd-journald's native protocol, spoken directly (no libsystemd binding needed).

One datagram per entry to ``/run/systemd/journal/socket``: ``KEY=value`` lines,
or ``KEY``, a little-endian 64-bit length and the raw value for values holding
a newline. An entry too large for a datagram goes in a sealed memfd passed with
``SCM_RIGHTS``, as sd_journal_send does. ``stderr_is_journal`` decides whether
this process's stderr is connected to the journal (then entries go here with
their fields, so ``journalctl -p warning`` and ``journalctl LANE=stable`` work).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import stat
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TextIO

JOURNAL_SOCKET = "/run/systemd/journal/socket"
_FIELD = re.compile(r"[A-Z0-9_]{1,64}")
_MEMFD_SEAL = getattr(os, "MFD_ALLOW_SEALING", 2)


def field_name(key: str) -> str | None:
    """``key`` as a journal field name (upper case, ``[A-Z0-9_]``, not leading ``_``)."""
    name = re.sub(r"[^A-Z0-9_]", "_", key.upper()).lstrip("_")
    if not name or name[0].isdigit() or not _FIELD.fullmatch(name):
        return None
    return name


def encode(fields: Iterable[tuple[str, str]]) -> bytes:
    """One journal entry in the native protocol (pure)."""
    out = bytearray()
    for name, value in fields:
        data = value.encode("utf-8", errors="replace")
        if b"\n" in data:
            out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalSender:
    """Sends entries to the journal socket; ``send`` says whether the journal took one."""

    def __init__(self, path: str = JOURNAL_SOCKET) -> None:
        self.path = path
        self._sock: socket.socket | None = None

    def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # journald may be slow; a log call must never stall the event loop for it.
            sock.setblocking(False)
            self._sock = sock
        return self._sock

    def send(self, fields: Iterable[tuple[str, str]]) -> bool:
        """Send one entry; False when the journal cannot take it (caller falls back)."""
        data = encode(fields)
        try:
            self._socket().sendto(data, self.path)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                return False
        return self._send_memfd(data)

    def _send_memfd(self, data: bytes) -> bool:
        """A large entry: the data in a sealed memfd, its descriptor in the datagram."""
        try:
            fd = os.memfd_create("qwend-journal", os.MFD_CLOEXEC | _MEMFD_SEAL)
        except (AttributeError, OSError):
            return False
        try:
            os.write(fd, data)
            # journald accepts only sealed memfds.
            seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals | fcntl.F_SEAL_SEAL)
            self._socket().sendmsg(
                [], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))], 0, self.path
            )
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def close(self) -> None:
        """Close the socket (a later ``send`` opens a new one)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def stderr_is_journal(env: Mapping[str, str], stream: TextIO) -> bool:
    """True when ``stream`` (stderr) is the journal.

    ``JOURNAL_STREAM`` (``DEVICE:INODE``) names the journal stream systemd connected;
    it counts only when ``stream`` is that very file (a child whose stderr went to a
    pipe or file inherits the variable but not the stream). ``INVOCATION_ID`` alone
    (a unit with ``StandardError=null`` or inherited from a socket) counts when the
    stream is neither a terminal, a pipe nor a regular file the operator chose.
    """
    try:
        info = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    value = env.get("JOURNAL_STREAM", "")
    if value:
        device, _, inode = value.partition(":")
        try:
            return (info.st_dev, info.st_ino) == (int(device), int(inode))
        except ValueError:
            return False
    if env.get("INVOCATION_ID") and Path(JOURNAL_SOCKET).exists():
        mode = info.st_mode
        return not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or os.isatty(stream.fileno()))
    return False
