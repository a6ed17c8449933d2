"""The media URL policy (pure): which image, video and audio URLs a request may send a lane.

A ``vllm serve`` lane downloads the ``http(s)`` URLs of a request's media parts
itself, from the NPU host: a client that can name ``http://169.254.169.254/`` or
``http://127.0.0.1:18088/metrics`` makes the lane fetch it (server-side request
forgery). This module decides, without any I/O:

- ``media_sources``: every URL-like string of a chat request's content parts
  (``image_url.url``, ``video_url.url``, ``input_image.image_url``, ``image`` ...);
- ``judge_source``: a ``data:`` URL is allowed up to a size; an ``http(s)`` URL
  naming a host on the allow-list is allowed; one naming an address (in any
  spelling: dotted, decimal ``2130706433``, hex ``0x7f000001``, short ``127.1``,
  octal, bracketed IPv6, IPv4-mapped ``[::ffff:127.0.0.1]``) is judged by that
  address; one naming ``localhost`` is refused; any other name must be resolved
  (``Resolve``) and every resolved address judged with ``address_refusal``;
  every other scheme (``file:``, ``ftp:``, ``gopher:``, a bare path) is refused.

``qwend.router.media`` resolves names (the I/O) and turns a refusal into a 400.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from qwend.config.model import RouterConfig

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_RESOLVED_HOSTS = 16
"""Distinct host names one request may make the router resolve (each is a DNS query)."""

_SOURCE_KEYS = frozenset({"url", "image", "video", "audio", "path", "input_image"})
"""Keys of a content part whose string value a backend may load (besides ``*_url``)."""
# A host name as resolvers take it: letters, digits, "-" and "_" in dot-separated labels.
_NAME = re.compile(
    r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*"
)
# What may appear in a URL the policy accepts: printable ASCII without space or backslash
# (parsers disagree about "\", tabs and newlines; a URL that needs them is refused).
_URL_CHARS = re.compile(r"[!-\[\]-~]*")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")


@dataclass(frozen=True)
class MediaPolicy:
    """What ``[router]`` allows media URLs to be."""

    data_url_max_bytes: int
    """Longest ``data:`` URL accepted; 0 refuses data URLs."""
    allowed_hosts: frozenset[str]
    """``host_key`` of the hosts accepted whatever their addresses."""
    public_hosts: bool
    """Accept other hosts whose every address is public."""

    @classmethod
    def of(cls, config: RouterConfig) -> MediaPolicy:
        """The policy a router configuration sets."""
        return cls(
            data_url_max_bytes=config.media_data_url_max_bytes,
            allowed_hosts=frozenset(host_key(h) for h in config.media_allowed_hosts),
            public_hosts=config.media_public_hosts,
        )


@dataclass(frozen=True)
class MediaSource:
    """One URL-like string of a request, and where it is (an OpenAI ``param``)."""

    url: str
    param: str


@dataclass(frozen=True)
class Refused:
    """The policy refuses a source: a message for the client."""

    message: str


@dataclass(frozen=True)
class Allowed:
    """The policy accepts a source as it is."""


@dataclass(frozen=True)
class Resolve:
    """The source names ``host``: accepted only if every address it resolves to is public."""

    host: str
    port: int


Verdict = Allowed | Refused | Resolve


# ----- where the URLs are -----


def media_sources(body: object) -> Iterator[MediaSource]:
    """Every URL-like string in the content parts of a chat body's messages.

    Any string under a key named ``url``, ``*_url``, ``image``, ``video``, ``audio``,
    ``input_image`` or ``path`` (or in a list under one) at any depth of a content
    part: whatever part type a backend knows (vLLM's ``image_url``/``video_url``/
    ``audio_url``/``input_image``, the Hugging Face ``image``/``video``), nothing it
    may load is missed.
    """
    for param, part in content_parts(body):
        yield from _strings(part, param)


def content_parts(body: object) -> Iterator[tuple[str, object]]:
    """``(param, part)`` of every part of every list-valued message ``content`` of a chat
    body (``param`` as an OpenAI error names it: ``messages[0].content[1]``)."""
    if not isinstance(body, Mapping):
        return
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, Mapping) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            yield f"messages[{i}].content[{j}]", part


def _strings(node: object, param: str) -> Iterator[MediaSource]:
    # (value, where, under a source key): strings in a list under one are sources too
    stack: list[tuple[object, str, bool]] = [(node, param, False)]
    while stack:
        item, where, sourcey = stack.pop()
        if isinstance(item, str) and sourcey:
            yield MediaSource(item, where)
        elif isinstance(item, Mapping):
            for key, value in item.items():
                stack.append((value, f"{where}.{key}", _is_source_key(key)))
        elif isinstance(item, list):
            stack.extend((value, f"{where}[{k}]", sourcey) for k, value in enumerate(item))


def _is_source_key(key: object) -> bool:
    return isinstance(key, str) and (key in _SOURCE_KEYS or key.endswith("_url"))


# ----- one URL -----


def judge_source(url: str, policy: MediaPolicy) -> Verdict:
    """What the policy says about one media URL before any name is resolved."""
    colon = url.find(":", 0, 32)  # bounded: a data: URL may be megabytes long
    scheme = url[:colon].lower()
    if colon < 0 or not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
        return Refused("is not a URL: send a data: URL or an http(s) URL")
    if scheme == "data":
        return _judge_data(url, policy)
    if scheme not in ("http", "https"):
        return Refused(f"uses the scheme {scheme}:, refused here: send a data: or http(s) URL")
    found = _authority(url[colon + 1 :])
    if isinstance(found, Refused):
        return found
    host, port = found
    address = host_address(host)
    if isinstance(address, Refused):
        return address
    if host_key(host) in policy.allowed_hosts:
        return Allowed()
    if not policy.public_hosts:
        return Refused(f"names the host {host}, which is not one of this server's media hosts")
    if address is not None:
        reason = address_refusal(address)
        return Refused(f"names the address {address}, which is {reason}") if reason else Allowed()
    if host == "localhost" or host.endswith(".localhost"):
        return Refused(f"names {host}, which is loopback")
    return Resolve(host, port or (443 if scheme == "https" else 80))


def _judge_data(url: str, policy: MediaPolicy) -> Verdict:
    if policy.data_url_max_bytes == 0:
        return Refused("is a data: URL, which this server does not accept")
    if len(url) > policy.data_url_max_bytes:
        return Refused(
            f"is a data: URL of {len(url)} bytes, more than this server's limit of"
            f" {policy.data_url_max_bytes}"
        )
    if url.find(",", 0, 1024) < 0:  # the comma ends the short header (media type, base64)
        return Refused("is not a valid data: URL (data:[MEDIA-TYPE][;base64],DATA)")
    return Allowed()


def _authority(rest: str) -> tuple[str, int | None] | Refused:
    """Host (normalised) and port of ``//AUTHORITY/...``; ambiguous forms are refused."""
    if not _URL_CHARS.fullmatch(rest):
        return Refused("contains spaces, control characters, backslashes or non-ASCII text")
    if not rest.startswith("//"):
        return Refused("has no host (expected http(s)://HOST/...)")
    authority = re.split(r"[/?#]", rest[2:], maxsplit=1)[0]
    if "@" in authority:
        return Refused("carries a user name or password, which is refused")
    if "%" in authority:
        return Refused("has a percent-encoded host, which is refused")
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            return Refused("has an unterminated [IPv6] host")
        host, tail = authority[: end + 1], authority[end + 1 :]
    else:
        host, colon, digits = authority.partition(":")
        tail = colon + digits
    if host in ("", "[]"):
        return Refused("has no host (expected http(s)://HOST/...)")
    port = tail[1:]
    if tail and (not tail.startswith(":") or (not port.isdigit() and port)):
        return Refused(f"has an invalid port {tail!r}")
    if port and not 0 < int(port) < 65536:
        return Refused(f"has an invalid port {tail!r}")
    return normal_host(host), int(port) if port else None


def normal_host(host: str) -> str:
    """A host as written in a URL, compared: lower case, without one trailing dot."""
    host = host.lower()
    return host[:-1] if host.endswith(".") and len(host) > 1 else host


def host_key(host: str) -> str:
    """The allow-list form of a host: an address in its canonical spelling, else the name.

    ``127.1``, ``2130706433`` and ``127.0.0.1`` are one key; IPv6 with brackets
    (``[::1]``), whether or not the operator wrote them.
    """
    host = normal_host(host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    address = host_address(host)
    if isinstance(address, ipaddress.IPv6Address):
        return f"[{address}]"
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    return host


# ----- addresses -----


def host_address(host: str) -> IPAddress | Refused | None:
    """The address a host spells, None for a name to resolve, or why it is refused.

    ``[...]`` is an IPv6 literal. A host whose last label is a number is an IPv4
    address spelled as C's ``inet_aton`` (and the WHATWG URL standard) read it:
    1 to 4 parts, each decimal, octal (leading 0) or hex (``0x``); the last part
    fills the remaining bytes (``127.1`` is 127.0.0.1, ``2130706433`` too).
    """
    if host.startswith("["):
        try:
            return ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return Refused(f"has an invalid IPv6 host {host}")
    labels = host.split(".")
    if _NUMBER.fullmatch(labels[-1]):
        address = inet_aton(host)
        return (
            Refused(f"has a host {host} that is not a valid address")
            if address is None
            else address
        )
    if not _NAME.fullmatch(host):
        return Refused(
            f"has an invalid host name {host!r} (use the xn-- form of an international name)"
        )
    return None


def inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in ``inet_aton``'s spellings, or None when ``text`` is not one."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers: list[int] = []
    for part in parts:
        value = _aton_number(part)
        if value is None:
            return None
        numbers.append(value)
    *head, last = numbers
    if any(n > 0xFF for n in head) or last >= 1 << (8 * (5 - len(numbers))):
        return None
    value = last
    for i, n in enumerate(head):
        value |= n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _aton_number(part: str) -> int | None:
    if part[:2] in ("0x", "0X"):
        digits, base = part[2:], 16
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if not digits or not re.fullmatch(r"[0-9a-fA-F]+", digits):
        return None
    try:
        return int(digits, base)
    except ValueError:  # e.g. "08": 8 is not an octal digit
        return None


def address_refusal(address: IPAddress) -> str | None:
    """Why a lane must not fetch from ``address`` ("loopback", "private" ...), or None.

    An IPv6 address that carries an IPv4 one (IPv4-mapped, 6to4, Teredo) is judged
    by both.
    """
    reason = _category(address)
    if reason is None and isinstance(address, ipaddress.IPv6Address):
        for inner in _embedded_v4(address):
            inner_reason = _category(inner)
            if inner_reason is not None:
                return f"{inner_reason} ({inner} inside an IPv6 address)"
    return reason


def _embedded_v4(address: ipaddress.IPv6Address) -> Iterator[ipaddress.IPv4Address]:
    if address.ipv4_mapped is not None:
        yield address.ipv4_mapped
    if address.sixtofour is not None:
        yield address.sixtofour
    if address.teredo is not None:
        yield from address.teredo


def _category(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _category(address.ipv4_mapped)  # Python < 3.13 does not look inside
    for name, hit in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    ):
        if hit:
            return name
    return None
