"""Checks across the configurations of several hosts of one cluster (pure).

Each host's qwend reads only its own files, so ``check-config`` on one host cannot see
that node1's follower joins a coordinator at an address node0 does not have, or that a
decode lane's Mooncake layout disagrees with the prefill lane's: vLLM, HCCL and Mooncake
then hang or fail minutes into loading. Given every host's parsed ``Config`` this module
checks what must agree between them:

- peers: every ``[[peers]] url`` reaches that host's ``[cluster] listen`` (host, port,
  http/https) and the peer is one of the hosts;
- lane groups: every member host has the lane with the same members and start order;
  vLLM's multi-node data parallel flags agree (``--data-parallel-address`` is the
  leader host's address, one ``--data-parallel-rpc-port`` and ``--data-parallel-size``,
  the local sizes add up to it, the start ranks tile ``0..size-1``, followers are
  ``--headless``, the model flags are the leader's);
- the network environment of a member or PD lane: ``HCCL_IF_IP`` is its own host's
  address, ``GLOO_SOCKET_IFNAME``/``TP_SOCKET_IFNAME``/``HCCL_SOCKET_IFNAME`` name one
  interface and are set on every member alike;
- Ray-backed lane groups (``qwend.config.crossray``): the workers join the head's
  address and port, an engine on the group uses every NPU the members give Ray, its
  ``RAY_ADDRESS``/``VLLM_HOST_IP``/``HCCL_IF_IP`` are the head's;
- prefill/decode: ``kv_role`` agrees with the ``--kv-transfer-config`` kv_role, every
  PD lane uses one connector and states the real prefill and decode DP x TP layouts,
  Mooncake's port range (``kv_port`` + rank x TP x PP from the first local DP rank on)
  is distinct from every other port of its host, and a remote PD lane's url is a lane of
  the host it names, listening where the front host can reach it, in the same kv_role.

A host's address is what its peers' urls and its own ``[cluster] listen`` say; a check
that needs an address nobody states is skipped rather than guessed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from qwend.config.crossbase import CrossHostCheck, Host, Report, wildcard
from qwend.config.crossgroups import check_groups, check_network_env
from qwend.config.crosskv import check_kv
from qwend.config.crossray import check_ray
from qwend.config.model import Config, PeerConfig

__all__ = ["CrossHostCheck", "check_hosts"]


def check_hosts(configs: Sequence[Config]) -> CrossHostCheck:
    """Every cross-host inconsistency among ``configs`` (one per host, each valid)."""
    report = Report()
    hosts = _hosts(configs, report)
    addresses = _addresses(hosts, report)
    _check_peers(hosts, report)
    check_groups(hosts, addresses, report)
    check_ray(hosts, addresses, report)
    check_network_env(hosts, addresses, report)
    check_kv(hosts, addresses, report)
    return CrossHostCheck(tuple(report.issues), tuple(report.warnings))


def _hosts(configs: Sequence[Config], report: Report) -> dict[str, Host]:
    hosts: dict[str, Host] = {}
    for config in configs:
        host = Host(config.cluster.name, config)
        if not host.name:
            report.error("?", host.file, "cluster.name", "no host name: set [cluster] name")
        elif host.name in hosts:
            msg = (
                f"{host.name!r} is also the [cluster] name in {hosts[host.name].file};"
                " each host needs a name of its own"
            )
            report.error(host.name, host.file, "cluster.name", msg)
        else:
            hosts[host.name] = host
    return hosts


def _addresses(hosts: Mapping[str, Host], report: Report) -> dict[str, str]:
    """Each host's address on the cluster network: its listener's, else its peers' word."""
    addresses: dict[str, str] = {}
    for name, host in hosts.items():
        listen = host.config.cluster.listen
        if listen is not None and not wildcard(listen.host) and not listen.loopback:
            addresses[name] = listen.host
    for host in hosts.values():
        for peer in host.config.peers:
            if peer.name in hosts and peer.name not in addresses:
                addresses[peer.name] = peer.host
    return addresses


def _check_peers(hosts: Mapping[str, Host], report: Report) -> None:
    for host in hosts.values():
        for index, peer in enumerate(host.config.peers):
            key = f"peers[{index}].url"
            other = hosts.get(peer.name)
            if other is None:
                known = ", ".join(sorted(hosts)) or "none"
                msg = (
                    f"peer {peer.name!r} is none of the hosts checked ({known}); pass its"
                    " configuration too, or remove the peer"
                )
                report.error(host.name, host.file, f"peers[{index}].name", msg)
                continue
            listen = other.config.cluster.listen
            if listen is None:
                msg = (
                    f"{peer.name} has no [cluster] listen ({other.file}): nothing answers at"
                    f" {peer.url}; set its listen"
                )
                report.error(host.name, host.file, key, msg)
                continue
            scheme = "https" if other.config.cluster.tls else "http"
            expected_host = peer.host if wildcard(listen.host) else listen.host
            expected = f"{scheme}://{_url_host(expected_host)}:{listen.port}"
            if (peer.url.split("://")[0], peer.host, peer.port) != (
                scheme,
                expected_host,
                listen.port,
            ):
                msg = (
                    f"peer {peer.name}'s [cluster] listen is {listen}"
                    f"{' with TLS' if other.config.cluster.tls else ' (plain HTTP)'}"
                    f" ({other.file}); expected url {expected}, got {peer.url}"
                )
                report.error(host.name, host.file, key, msg)
            _check_credentials(host, index, peer, other, report)
            if not any(p.name == host.name for p in other.config.peers):
                report.warnings.append(
                    f"{host.name} lists {peer.name} as a peer but {peer.name} does not list"
                    f" {host.name} ({other.file}): {peer.name}'s status misses {host.name}"
                )


def _check_credentials(
    host: Host, index: int, peer: PeerConfig, other: Host, report: Report
) -> None:
    """The peer is given the credential its listener asks for (where only one will do)."""
    cluster = other.config.cluster
    if cluster.tls_client_ca is not None and cluster.token_file is None and peer.tls_cert is None:
        msg = (
            f"{peer.name}'s listener accepts only client certificates signed by its"
            f" tls_client_ca ({other.file}); set tls_cert and tls_key for this peer"
        )
        report.error(host.name, host.file, f"peers[{index}].tls_cert", msg)
    if cluster.token_file is not None and cluster.tls_client_ca is None and peer.token_file is None:
        msg = (
            f"{peer.name}'s listener asks for the cluster token ({other.file}, token_file);"
            " set token_file here or in [cluster]"
        )
        report.error(host.name, host.file, f"peers[{index}].token_file", msg)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
