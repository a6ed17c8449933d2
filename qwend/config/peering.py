"""``[cluster]``, ``[[peers]]`` and ``[lane.group]``: this host among the others (pure).

Read through ``schema.Table`` like every other section, so a mistake names its file and
key. The rules that keep a cluster safe are checked here: the peer listener never runs
without a credential (a token or client certificates), a peer's TLS keys need an https://
url, and a lane group names this host and otherwise only configured peers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qwend.config.model import (
    ClusterConfig,
    Config,
    GroupConfig,
    ListenAddress,
    PeerConfig,
    StartOrder,
)
from qwend.config.schema import (
    NAME,
    NAME_RE,
    REQUIRED,
    Bad,
    Bool,
    Choice,
    Conv,
    HttpUrl,
    Listen,
    Num,
    PathConv,
    Table,
    show,
)

PEER_TLS_KEYS = ("tls_ca", "tls_cert", "tls_key")


def parse_cluster(t: Table, base: Path, host_name: str) -> ClusterConfig:
    """``[cluster]``; ``host_name`` (the short hostname) is the default ``name``."""
    paths = PathConv(base)
    name = t.get("name", NAME, "") or ""
    if "name" not in t.data and host_name:
        if NAME_RE.fullmatch(host_name):
            name = host_name
        else:
            t.error("name", f"the hostname {show(host_name)} is not a valid name; set cluster.name")
    result = ClusterConfig(
        name=name,
        listen=t.opt("listen", Listen()),
        token_file=t.opt("token_file", paths),
        tls_cert=t.opt("tls_cert", paths),
        tls_key=t.opt("tls_key", paths),
        tls_client_ca=t.opt("tls_client_ca", paths),
    )
    if (result.tls_cert is None) != (result.tls_key is None):
        missing = "tls_key" if result.tls_key is None else "tls_cert"
        t.error(missing, "an HTTPS listener needs both tls_cert and tls_key")
    if result.tls_client_ca is not None and result.tls_cert is None:
        t.error("tls_client_ca", "client certificates need an HTTPS listener: set tls_cert/tls_key")
    if result.listen is not None and result.token_file is None and result.tls_client_ca is None:
        t.error(
            "listen",
            "the peer listener needs a credential: set token_file (a shared secret) or"
            " tls_client_ca with tls_cert/tls_key (client certificates); it never runs"
            " unauthenticated",
        )
    t.finish()
    return result


def parse_peers(tables: Sequence[Table], base: Path, cluster: ClusterConfig) -> list[PeerConfig]:
    """Every ``[[peers]]``; a peer's token defaults to ``[cluster] token_file``."""
    paths = PathConv(base)
    peers: list[PeerConfig] = []
    seen: dict[str, str] = {}
    for t in tables:
        name = t.get("name", NAME, REQUIRED)
        parsed = t.get("url", HttpUrl(), REQUIRED)
        timeout = t.get("timeout_s", Num(positive=True), 5.0)
        verify = t.get("tls_verify", Bool(), True)
        peer = PeerConfig(
            name=name or "?",
            url=parsed[0] if parsed else "http://invalid",
            host=parsed[1] if parsed else "invalid",
            port=parsed[2] if parsed else 1,
            token_file=t.opt("token_file", paths) or cluster.token_file,
            tls_ca=t.opt("tls_ca", paths),
            tls_verify=True if verify is None else verify,
            tls_cert=t.opt("tls_cert", paths),
            tls_key=t.opt("tls_key", paths),
            timeout_s=5.0 if timeout is None else timeout,
        )
        if parsed and not peer.tls:
            for key in PEER_TLS_KEYS:
                if t.data.get(key) is not None:
                    t.error(key, "the url is http://; TLS settings need an https:// url")
        if (peer.tls_cert is None) != (peer.tls_key is None):
            missing = "tls_key" if peer.tls_key is None else "tls_cert"
            t.error(missing, "a client certificate needs both tls_cert and tls_key")
        if parsed and peer.token_file is None and peer.tls_cert is None:
            t.error(
                "token_file",
                "no credential for this peer: set token_file here or in [cluster], or"
                " tls_cert/tls_key for a peer that checks client certificates",
            )
        if name is not None:
            if name == cluster.name:
                msg = f"{show(name)} is this host's [cluster] name; a peer is another host"
                t.error("name", msg)
            elif name in seen:
                msg = f"peer {show(name)} is already listed at {seen[name]}; list it once"
                t.error("name", msg)
            else:
                seen[name] = t.path
        peers.append(peer)
        t.finish()
    return peers


class Members(Conv[tuple[str, ...]]):
    """A list of at least two distinct host names."""

    expected = 'a list of at least two host names, the leader first (e.g. ["node0", "node1"])'

    def __call__(self, value: object) -> tuple[str, ...]:
        if not isinstance(value, list) or len(value) < 2:
            raise Bad(self.expected, value)
        names: list[str] = []
        for index, item in enumerate(value):
            try:
                name = NAME(item)
            except Bad as bad:
                raise Bad(NAME.expected, item, f"[{index}]") from bad
            if name in names:
                raise Bad(f"{show(name)} is listed twice; list every host once", value, raw=True)
            names.append(name)
        return tuple(names)


def parse_group(t: Table, cluster: ClusterConfig, peers: Sequence[str]) -> GroupConfig | None:
    """``[lane.group]``; None when the lane has no group table."""
    if not t.data:
        t.finish()
        return None
    members = t.get("members", Members(), REQUIRED)
    order = t.get(
        "start_order", Choice(tuple(o.value for o in StartOrder)), StartOrder.LEADER_FIRST.value
    )
    t.finish()
    if members is None:
        return None
    if not cluster.name:
        t.error("members", "this host has no name: set [cluster] name in qwend.toml")
        return None
    if cluster.name not in members:
        t.error(
            "members",
            f"this host ({show(cluster.name)}, [cluster] name) is not a member; a lane file"
            " describes this host's member, so list this host",
        )
        return None
    unknown = [m for m in members if m != cluster.name and m not in peers]
    if unknown:
        listed = ", ".join(show(m) for m in unknown)
        t.error(
            "members",
            f"{listed} {'is' if len(unknown) == 1 else 'are'} not in [[peers]] of qwend.toml;"
            " every other member host must be a peer",
        )
        return None
    return GroupConfig(
        members=members, this=cluster.name, start_order=StartOrder(order or "leader_first")
    )


def cluster_warnings(config: Config) -> list[str]:
    """What check-config should point out about the cluster settings though they are valid:
    a shared token crossing the network in clear, and a name peers cannot rely on."""
    warnings = []
    cluster = config.cluster
    if cluster.listen is not None and not cluster.listen.loopback and not cluster.tls:
        warnings.append(
            f"cluster.listen {cluster.listen} is reachable from other hosts over plain HTTP:"
            " the token crosses the network in clear; set tls_cert/tls_key (and peers' urls"
            " to https://) unless the network is private to the cluster"
        )
    for peer in config.peers:
        if not peer.tls and peer.token_file is not None and not _loopback_host(peer.host):
            warnings.append(
                f"peer {peer.name}: {peer.url} is plain HTTP: the token is sent in clear;"
                " use https:// unless the network is private to the cluster"
            )
        if peer.tls and not peer.tls_verify:
            warnings.append(
                f"peer {peer.name}: tls_verify = false accepts any certificate at {peer.url}"
            )
    if config.peers and cluster.listen is None:
        warnings.append(
            "[[peers]] are listed but cluster.listen is unset: peers cannot reach this host"
            " (its lanes are missing from their status, and group members here cannot be"
            " driven by their leader)"
        )
    return warnings


def _loopback_host(host: str) -> bool:
    return ListenAddress(host, 1).loopback
