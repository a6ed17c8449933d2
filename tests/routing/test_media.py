"""The media URL policy's pure half: where URLs are, how hosts are spelled, which are refused."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwend.config.model import RouterConfig
from qwend.routing.media import (
    Allowed,
    MediaPolicy,
    MediaSource,
    Refused,
    Resolve,
    address_refusal,
    host_key,
    inet_aton,
    judge_source,
    media_sources,
)

POLICY = MediaPolicy.of(RouterConfig())

# The spellings of the issue and more: every one names a host-internal address.
INTERNAL = [
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://127.0.0.1:18088/metrics", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://0x7f000001/", "loopback"),
    ("http://0X7F000001/", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://127.0.1/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://0x7f.0.0.1/", "loopback"),
    ("http://017700000001/", "loopback"),
    ("http://127.0.0.1./", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:7f00:1]/", "loopback"),
    ("http://[::ffff:169.254.169.254]/", "link-local"),
    ("http://[0:0:0:0:0:ffff:a00:1]/", "private"),
    ("http://[2002:7f00:1::]/", "loopback"),
    ("http://localhost/", "loopback"),
    ("http://LocalHost./", "loopback"),
    ("http://metadata.localhost/", "loopback"),
    ("http://0/", "unspecified"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://10.1/", "private"),
    ("http://167772161/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://[fc00::1]/", "private"),
    ("http://[fe80::1]/", "link-local"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://100.64.0.1/", "not globally routable"),
    ("https://[::127.0.0.1]:8443/", "reserved"),
]


@pytest.mark.parametrize(("url", "why"), INTERNAL, ids=[u for u, _ in INTERNAL])
def test_every_spelling_of_an_internal_host_is_refused(url: str, why: str) -> None:
    verdict = judge_source(url, POLICY)
    assert isinstance(verdict, Refused)
    assert why in verdict.message


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("file:///etc/passwd", "scheme file:"),
        ("FILE:///etc/passwd", "scheme file:"),
        ("ftp://example.com/a.png", "scheme ftp:"),
        ("gopher://127.0.0.1:25/", "scheme gopher:"),
        ("dict://127.0.0.1:11211/", "scheme dict:"),
        ("/etc/passwd", "not a URL"),
        ("cat.png", "not a URL"),
        ("iVBORw0KGgo=", "not a URL"),
        (" http://127.0.0.1/", "not a URL"),
        ("http://example.com\\@127.0.0.1/", "backslashes"),
        ("http://exa mple.com/", "spaces"),
        ("http://exa\tmple.com/", "control characters"),
        ("http://bücher.example/", "non-ASCII"),
        ("http://user:pw@example.com/", "user name or password"),
        ("http://example.com@127.0.0.1/", "user name or password"),
        ("http://%31%32%37.0.0.1/", "percent-encoded"),
        ("http://[fe80::1%25eth0]/", "percent-encoded"),
        ("http://[::1/", "unterminated"),
        ("http:///a.png", "no host"),
        ("http:example.com/a.png", "no host"),
        ("http://example.com:99999/", "invalid port"),
        ("http://example.com:8o/", "invalid port"),
        ("http://1.2.3.4.5/", "not a valid address"),
        ("http://08.0.0.1/", "not a valid address"),
        ("http://0x/", "not a valid address"),
        ("http://256.0.0.1/", "not a valid address"),
        ("http://4294967296/", "not a valid address"),
        ("http://a..b/", "invalid host name"),
        ("http://[1::2::3]/", "invalid IPv6"),
        ("data:image/png;base64", "not a valid data: URL"),
    ],
)
def test_other_schemes_and_ambiguous_urls_are_refused(url: str, words: str) -> None:
    verdict = judge_source(url, POLICY)
    assert isinstance(verdict, Refused)
    assert words in verdict.message


@pytest.mark.parametrize(
    "url",
    ["http://93.184.216.34/cat.png", "https://1.1.1.1:8443/a", "http://[2606:4700::1111]/"],
)
def test_a_public_address_is_allowed(url: str) -> None:
    assert judge_source(url, POLICY) == Allowed()


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("https://images.example.com/cat.png", "images.example.com", 443),
        ("HTTP://Images.Example.COM.:8080/x?y#z", "images.example.com", 8080),
        ("http://cdn_1.example.com/", "cdn_1.example.com", 80),
        ("http://example.com:/a", "example.com", 80),
    ],
)
def test_a_name_is_left_to_the_resolver(url: str, host: str, port: int) -> None:
    assert judge_source(url, POLICY) == Resolve(host, port)


def test_data_urls_are_allowed_up_to_the_configured_size() -> None:
    url = "data:image/png;base64," + "A" * 100
    assert judge_source(url, POLICY) == Allowed()
    small = MediaPolicy.of(RouterConfig(media_data_url_max_bytes=len(url)))
    assert judge_source(url, small) == Allowed()
    smaller = MediaPolicy.of(RouterConfig(media_data_url_max_bytes=len(url) - 1))
    verdict = judge_source(url, smaller)
    assert isinstance(verdict, Refused) and f"limit of {len(url) - 1}" in verdict.message
    none = MediaPolicy.of(RouterConfig(media_data_url_max_bytes=0))
    assert judge_source(url, none) == Refused("is a data: URL, which this server does not accept")


def test_allowed_hosts_pass_whatever_their_address_in_any_spelling() -> None:
    config = RouterConfig(media_allowed_hosts=("Images.Internal.", "10.0.0.5", "::1"))
    policy = MediaPolicy.of(config)
    assert judge_source("http://images.internal/cat.png", policy) == Allowed()
    assert judge_source("http://10.0.0.5/cat.png", policy) == Allowed()
    assert judge_source("http://167772165/cat.png", policy) == Allowed()  # 10.0.0.5
    assert judge_source("http://[::1]:9000/cat.png", policy) == Allowed()
    assert isinstance(judge_source("http://10.0.0.6/", policy), Refused)
    assert isinstance(judge_source("file://images.internal/x", policy), Refused)


def test_without_public_hosts_only_the_allow_list_passes() -> None:
    policy = MediaPolicy.of(
        RouterConfig(media_allowed_hosts=("images.example.com",), media_public_hosts=False)
    )
    assert judge_source("https://images.example.com/a.png", policy) == Allowed()
    verdict = judge_source("http://93.184.216.34/a.png", policy)
    assert (
        isinstance(verdict, Refused) and "not one of this server's media hosts" in verdict.message
    )
    assert isinstance(judge_source("https://other.example.com/a.png", policy), Refused)


def test_host_key_spells_addresses_canonically() -> None:
    assert host_key("2130706433") == host_key("127.1") == "127.0.0.1"
    assert host_key("::1") == host_key("[0::1]") == "[::1]"
    assert host_key("Example.COM.") == "example.com"


# ----- where the URLs are -----


def test_media_sources_finds_every_url_like_string_of_every_content_part() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "text only"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "http://not.a.source/"},
                    {"type": "image_url", "image_url": {"url": "http://a/", "detail": "auto"}},
                    {"type": "image_url", "image_url": "http://b/"},
                    {"type": "input_image", "image_url": "http://c/"},
                    {"type": "video_url", "video_url": {"url": "http://d/"}},
                    {"type": "audio_url", "audio_url": {"url": "http://e/"}},
                    {"type": "image", "image": "/etc/passwd"},
                    {"type": "video", "video": ["http://f/", {"url": "http://g/"}]},
                    {"image_url": {"url": "http://h/"}},
                    {"type": "image", "path": "/root/.ssh/id_rsa"},
                ],
            },
        ]
    }
    found = {s.param: s.url for s in media_sources(body)}
    assert found == {
        "messages[1].content[1].image_url.url": "http://a/",
        "messages[1].content[2].image_url": "http://b/",
        "messages[1].content[3].image_url": "http://c/",
        "messages[1].content[4].video_url.url": "http://d/",
        "messages[1].content[5].audio_url.url": "http://e/",
        "messages[1].content[6].image": "/etc/passwd",
        "messages[1].content[7].video[0]": "http://f/",
        "messages[1].content[7].video[1].url": "http://g/",
        "messages[1].content[8].image_url.url": "http://h/",
        "messages[1].content[9].path": "/root/.ssh/id_rsa",
    }


@pytest.mark.parametrize(
    "body",
    [None, [], "x", {}, {"messages": "x"}, {"messages": [1, {"content": 2}]}, {"prompt": "a"}],
)
def test_media_sources_of_odd_bodies_is_empty(body: object) -> None:
    assert list(media_sources(body)) == []


# ----- numeric hosts: the same rules as C's inet_aton -----


@settings(max_examples=2000, derandomize=True)
@given(st.text(alphabet="0123456789abcdefxX.", min_size=1, max_size=20))
def test_inet_aton_agrees_with_the_c_library(text: str) -> None:
    try:
        expected: ipaddress.IPv4Address | None = ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        expected = None
    assert inet_aton(text) == expected


def spellings(address: ipaddress.IPv4Address) -> list[str]:
    """Ways inet_aton reads ``address``: dotted, one number, short forms, hex and octal."""
    n = int(address)
    a, b, c, d = address.packed
    return [
        str(address),
        str(n),
        hex(n),
        "0" + oct(n)[2:],
        f"{a}.{n & 0xFFFFFF}",
        f"{a}.{b}.{n & 0xFFFF}",
        f"{a:#x}.{b:#x}.{c:#x}.{d:#x}",
        f"0{a:o}.0{b:o}.0{c:o}.0{d:o}",
    ]


@settings(max_examples=500, derandomize=True)
@given(st.builds(ipaddress.IPv4Address, st.integers(min_value=0, max_value=2**32 - 1)))
def test_every_spelling_of_an_ipv4_address_gets_the_dotted_form_s_verdict(
    address: ipaddress.IPv4Address,
) -> None:
    dotted = judge_source(f"http://{address}/x.png", POLICY)
    assert dotted == (Allowed() if address_refusal(address) is None else dotted)
    for spelling in spellings(address):
        assert inet_aton(spelling) == address, spelling
        verdict = judge_source(f"http://{spelling}/x.png", POLICY)
        assert type(verdict) is type(dotted), spelling
        mapped = judge_source(f"http://[::ffff:{address}]/x.png", POLICY)
        assert type(mapped) is type(dotted)


@settings(max_examples=500, derandomize=True)
@given(st.builds(ipaddress.IPv4Address, st.integers(min_value=0, max_value=2**32 - 1)))
def test_an_ipv4_address_is_refused_unless_it_is_globally_routable(
    address: ipaddress.IPv4Address,
) -> None:
    public = plainly_public(address)
    assert (address_refusal(address) is None) == public
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    assert (address_refusal(mapped) is None) == public


@settings(max_examples=500, derandomize=True)
@given(st.builds(ipaddress.IPv6Address, st.integers(min_value=0, max_value=2**128 - 1)))
def test_an_ipv6_address_is_refused_unless_it_and_any_ipv4_inside_are_routable(
    address: ipaddress.IPv6Address,
) -> None:
    inside: list[ipaddress.IPv4Address] = [
        a for a in (address.ipv4_mapped, address.sixtofour) if a is not None
    ]
    inside += list(address.teredo or ())
    outer = address.ipv4_mapped or address
    public = plainly_public(outer) and all(plainly_public(a) for a in inside)
    assert (address_refusal(address) is None) == public


def plainly_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Global, and none of the categories the issue names (Python 3.11 calls ::2 global)."""
    return address.is_global and not (
        address.is_multicast
        or address.is_reserved
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
    )


def test_sources_carry_their_param() -> None:
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
        ]
    }
    assert list(media_sources(body)) == [MediaSource("x", "messages[0].content[0].image_url.url")]
