"""TLS contexts of the peer listener (server side) and of the links to peers (client side)."""

from __future__ import annotations

import ssl

from qwend.cluster.secrets import CredentialError
from qwend.config.model import ClusterConfig, PeerConfig
from qwend.tls import client_context


def listener_context(cluster: ClusterConfig) -> ssl.SSLContext | None:
    """The peer listener's context (None: plain HTTP); CERT_REQUIRED with ``tls_client_ca``.

    A client without a certificate signed by that CA fails the handshake: it never reaches
    the application, so it gets a closed connection rather than an HTTP answer.
    """
    if cluster.tls_cert is None:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(cluster.tls_cert), str(cluster.tls_key or cluster.tls_cert))
        if cluster.tls_client_ca is not None:
            context.load_verify_locations(cafile=str(cluster.tls_client_ca))
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise CredentialError(
            f"[cluster] tls_cert/tls_key/tls_client_ca unusable for the peer listener: {exc}"
        ) from None
    return context


def peer_context(peer: PeerConfig) -> ssl.SSLContext | bool:
    """The client context for an https peer (CA, verification, client certificate)."""
    if not peer.tls:
        return True
    try:
        return client_context(peer.tls_ca, peer.tls_verify, peer.tls_cert, peer.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise CredentialError(f"peer {peer.name}: TLS settings unusable: {exc}") from None
