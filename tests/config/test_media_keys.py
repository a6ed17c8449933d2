"""The ``[router] media_*`` keys: parsed into RouterConfig, bad values named by key."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwend.config.model import RouterConfig
from qwend.config.parse import parse_config
from tests.config.test_errors import MAIN, Case, build, c, issues_of


def test_the_media_keys_are_read() -> None:
    main, lanes = build(Case("ok", (), MAIN, "", ""))
    main["router"].update(
        media_data_url_max_bytes=1024,
        media_allowed_hosts=["images.example.com", "10.0.0.5", "[::1]", "fd00::5"],
        media_public_hosts=False,
        media_resolve_timeout_s=0.5,
    )
    router = parse_config(main, lanes, main_name=MAIN, base_dir=Path("/etc/qwend")).router
    assert router.media_data_url_max_bytes == 1024
    assert router.media_allowed_hosts == ("images.example.com", "10.0.0.5", "[::1]", "fd00::5")
    assert router.media_public_hosts is False
    assert router.media_resolve_timeout_s == 0.5


def test_the_defaults_allow_public_hosts_and_data_urls() -> None:
    d = RouterConfig()
    assert (d.media_allowed_hosts, d.media_public_hosts) == ((), True)
    assert d.media_data_url_max_bytes == 20 * 1024 * 1024


CASES = [
    c("hosts-not-list", MAIN, "router.media_allowed_hosts", "a.example", "a list of host names"),
    c(
        "host-bad",
        MAIN,
        "router.media_allowed_hosts",
        ["ok.example", "http://a/"],
        "a host name or an IP address",
        "router.media_allowed_hosts[1]",
    ),
    c(
        "host-not-string",
        MAIN,
        "router.media_allowed_hosts",
        [5],
        "got 5",
        "router.media_allowed_hosts[0]",
    ),
    c("data-url-negative", MAIN, "router.media_data_url_max_bytes", -1, "integer >= 0"),
    c("public-hosts-string", MAIN, "router.media_public_hosts", "yes", "true or false"),
    c("resolve-timeout-zero", MAIN, "router.media_resolve_timeout_s", 0, "number > 0"),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_bad_media_key_is_named(case: Case) -> None:
    issues = issues_of(*build(case))
    assert any(
        str(i).startswith(f"{MAIN}: {case.key}: ") and case.fragment in i.message for i in issues
    ), "\n".join(map(str, issues))
