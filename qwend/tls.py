"""TLS client contexts from the files a configuration names (a remote lane, a peer).

One place decides what ``tls_ca``, ``tls_verify`` and ``tls_cert``/``tls_key`` mean, so a
lane and a peer with the same settings are reached the same way. Callers wrap the
``OSError``/``ssl.SSLError`` of an unusable file in their own error naming the setting.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def client_context(
    ca: Path | None, verify: bool, cert: Path | None, key: Path | None
) -> ssl.SSLContext:
    """A client context trusting ``ca`` (None: the system's store), checking the server's
    certificate and name unless ``verify`` is false, presenting ``cert`` (and ``key``; a
    PEM holding both may be given as ``cert`` alone) when set."""
    context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(str(cert), str(key or cert))
    return context
