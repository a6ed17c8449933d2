"""The shared token of ``[cluster]`` and ``[[peers]]``: read, checked, compared.

The token file is a secret like ``[public] api_keys_file``: a file every user may read is
refused. The token is the first non-empty, non-comment line; it is never logged. Only its
SHA-256 digest is kept on the listener's side, and a presented token is compared with
``hmac.compare_digest`` on digests, so the time taken says nothing about how much of it
matched, nor about its length.
"""

from __future__ import annotations

import hashlib
import hmac
import stat
from dataclasses import dataclass, field
from pathlib import Path

from qwend.errors import QwendError

BEARER = "bearer "


class CredentialError(QwendError):
    """A token or TLS file of ``[cluster]``/``[[peers]]`` is unusable; the message says why."""


def read_token(path: Path, what: str) -> str:
    """The token in ``path``; CredentialError (naming ``what``, e.g. ``[cluster] token_file``)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise CredentialError(f"{what} {path}: cannot read it: {exc.strerror or exc}") from None
    if st.st_mode & stat.S_IROTH:
        raise CredentialError(
            f"{what} {path} is readable by every user (mode {stat.S_IMODE(st.st_mode):04o});"
            " chmod o-rwx it (e.g. 0640 root:qwend)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialError(f"{what} {path}: cannot read it: {exc}") from None
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            if any(ord(ch) < 33 or ord(ch) == 127 for ch in line):
                raise CredentialError(f"{what} {path}: the token has spaces or controls in it")
            if len(line) < 16:
                raise CredentialError(
                    f"{what} {path}: the token is {len(line)} characters; use at least 16"
                    " (e.g. openssl rand -hex 32)"
                )
            return line
    raise CredentialError(f"{what} {path} holds no token")


def _digest(token: str) -> bytes:
    # Header bytes that are not UTF-8 arrive as surrogate escapes: encode them back.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


@dataclass(frozen=True)
class TokenCheck:
    """The listener's side of the token: a digest and a constant-time comparison."""

    digest: bytes = field(repr=False)

    @classmethod
    def of(cls, token: str) -> TokenCheck:
        return cls(_digest(token))

    def verdict(self, authorization: str | None) -> str | None:
        """None when ``authorization`` carries the token; else ``missing`` or ``wrong``."""
        if not authorization:
            return "missing"
        if authorization[: len(BEARER)].lower() != BEARER:
            return "wrong"
        presented = authorization[len(BEARER) :].strip()
        if hmac.compare_digest(_digest(presented), self.digest):
            return None
        return "wrong"
