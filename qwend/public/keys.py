"""API keys of the public endpoints: ``[public] api_keys_file``, one key per line.

Blank lines and lines starting with ``#`` are ignored. Only SHA-256 digests of
the keys are kept, and a presented key is compared against every digest with
``hmac.compare_digest``: the time taken says nothing about how much of a key
matched, nor (all digests being the same size) about the keys' lengths. No
key ever appears in a message or a log line.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from qwend.errors import QwendError
from qwend.logs import get_logger

_BEARER = "bearer "


class ApiKeysError(QwendError):
    """The API keys file cannot be used (missing, unreadable, malformed)."""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def read_keys(path: Path) -> frozenset[bytes]:
    """The digests of the keys in ``path``; ApiKeysError naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ApiKeysError(
            f"cannot read the API keys file {path}: {reason};"
            " create it (one key per line) or remove [public] api_keys_file"
        ) from None
    digests: set[bytes] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        key = line.strip()
        if not key or key.startswith("#"):
            continue
        if any(ch.isspace() for ch in key):
            # The key itself is not quoted: the message may end up in a log.
            raise ApiKeysError(
                f"{path}:{number}: an API key may not contain spaces; put one key per line"
            )
        digests.add(_digest(key))
    if not digests:
        raise ApiKeysError(
            f"the API keys file {path} holds no keys; add one per line"
            " or remove [public] api_keys_file to accept unauthenticated requests"
        )
    return frozenset(digests)


class ApiKeys:
    """The accepted keys, shared by every public endpoint and replaced on reload."""

    def __init__(self, path: Path | None = None, digests: frozenset[bytes] = frozenset()) -> None:
        self._path = path
        self._digests = tuple(digests)

    @classmethod
    def load(cls, path: Path | None) -> ApiKeys:
        """Keys from ``path`` (None: authentication off); raises ApiKeysError."""
        return cls(path, read_keys(path) if path is not None else frozenset())

    @property
    def path(self) -> Path | None:
        """The keys file in force; None when requests need no key."""
        return self._path

    @property
    def enabled(self) -> bool:
        """Requests need a key."""
        return self._path is not None

    def __len__(self) -> int:
        return len(self._digests)

    def reload(self, path: Path | None) -> bool:
        """Re-read (a reload, SIGHUP). A broken file keeps the old keys: False, logged."""
        try:
            digests = read_keys(path) if path is not None else frozenset()
        except ApiKeysError as exc:
            get_logger("public").error(
                "API keys not reloaded; keeping the previous keys", error=str(exc)
            )
            return False
        if path is None and self._path is not None:
            get_logger("public").warning("api_keys_file removed: public endpoints need no key now")
        self._path = path
        self._digests = tuple(digests)
        if path is not None:
            get_logger("public").info("API keys loaded", file=str(path), keys=len(digests))
        return True

    def check(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries an accepted key."""
        if self._path is None:
            return True
        if authorization is None or authorization[:7].lower() != _BEARER:
            return False
        presented = _digest(authorization[7:].strip())
        found = False
        for digest in self._digests:  # no early exit: every key costs the same
            found |= hmac.compare_digest(presented, digest)
        return found
