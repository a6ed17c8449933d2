"""The values a multi-host preset needs from the operator, and filling them in (pure).

A multi-host preset cannot know the hosts' addresses or the name of the network
interface that carries the cluster traffic, and must not invent them: its files say
``@address:node0@`` and ``@nic:node0@`` where they go, and ``qwenctl init`` fills them
from ``--address node0=10.0.0.1`` and ``--nic eth0`` (every host) or ``--nic node0=eth0``.
Every host's address is needed for any host's files (a follower names its leader's).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence

from qwend.errors import QwendError

PLACEHOLDER_RE = re.compile(r"@(address|nic):([A-Za-z0-9][A-Za-z0-9_-]*)@")
"""``@address:HOST@`` and ``@nic:HOST@`` in a multi-host preset's files."""

_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_IFNAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,15}")
"""Linux interface names: at most 15 bytes, no slash or whitespace."""


class PresetValueError(QwendError):
    """A missing or malformed ``--address`` / ``--nic`` value for a multi-host preset."""


def _address(host: str, text: str) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        if _HOSTNAME_RE.fullmatch(text) and not text.replace(".", "").isdigit():
            return text
        raise PresetValueError(f"--address {host}={text}: not an IP address or host name") from None
    if address.is_unspecified or address.is_loopback:
        raise PresetValueError(
            f"--address {host}={text}: other hosts must reach {host} there; give its address"
            " on the cluster network, not a wildcard or loopback"
        )
    return str(address)


def _pairs(option: str, items: Sequence[str]) -> list[tuple[str | None, str]]:
    pairs: list[tuple[str | None, str]] = []
    for item in items:
        host, sep, value = item.partition("=")
        if sep:
            if not host or not value:
                raise PresetValueError(f"{option} {item}: expected HOST=VALUE")
            pairs.append((host, value))
        else:
            pairs.append((None, item))
    return pairs


def preset_values(
    hosts: Sequence[str], addresses: Sequence[str], nics: Sequence[str]
) -> dict[str, str]:
    """The placeholder values from ``--address HOST=ADDR`` (one per host) and ``--nic``
    (``IFNAME`` for every host, or ``HOST=IFNAME``); ``PresetValueError`` naming what is
    missing or wrong."""
    values: dict[str, str] = {}
    for host, text in _pairs("--address", addresses):
        if host is None:
            raise PresetValueError(f"--address {text}: expected HOST=ADDRESS (e.g. node0={text})")
        if host not in hosts:
            raise PresetValueError(f"--address {host}=...: no host {host!r}; hosts: {_list(hosts)}")
        values[f"address:{host}"] = _address(host, text)
    for host, text in _pairs("--nic", nics):
        if not _IFNAME_RE.fullmatch(text):
            raise PresetValueError(f"--nic {text}: not a network interface name (as ip link shows)")
        if host is not None and host not in hosts:
            raise PresetValueError(f"--nic {host}=...: no host {host!r}; hosts: {_list(hosts)}")
        for name in hosts if host is None else [host]:
            if host is not None or f"nic:{name}" not in values:
                values[f"nic:{name}"] = text
    missing = [f"--address {h}=ADDRESS" for h in hosts if f"address:{h}" not in values]
    missing += [f"--nic {h}=IFNAME" for h in hosts if f"nic:{h}" not in values]
    if missing:
        raise PresetValueError(
            "this preset needs the hosts' cluster addresses and the network interface that"
            " carries them (never guessed): missing "
            + ", ".join(missing)
            + " (--nic IFNAME sets every host's)"
        )
    seen: dict[str, str] = {}
    for host in hosts:
        address = values[f"address:{host}"]
        if address in seen:
            raise PresetValueError(
                f"--address: {host} and {seen[address]} both have {address}; each host has"
                " its own address"
            )
        seen[address] = host
    return values


def fill(text: str, values: Mapping[str, str], where: str) -> str:
    """``text`` with every placeholder replaced; ``PresetValueError`` for an unknown one."""

    def replace(match: re.Match[str]) -> str:
        key = f"{match.group(1)}:{match.group(2)}"
        if key not in values:
            raise PresetValueError(f"{where}: no value for {match.group(0)}")
        return values[key]

    return PLACEHOLDER_RE.sub(replace, text)


def _list(names: Sequence[str]) -> str:
    return ", ".join(names)
