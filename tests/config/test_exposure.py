"""Ports that serve the lanes without a key stay on loopback unless the config says otherwise."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from qwend.config.load import load_config
from qwend.config.model import ListenAddress
from qwend.config.parse import parse_config
from qwend.daemon.check_config import main as check_config_main
from qwend.errors import ConfigError, ConfigIssue
from tests.support.config_fixtures import (
    DELETE,
    Data,
    set_key,
    valid_lanes,
    valid_main,
    write_config,
)
from tests.support.paths import REPO

MAIN = "qwend.toml"
SHIPPED = REPO / "etc" / "qwend" / "qwend.toml"
DEMO = REPO / "etc" / "qwend" / "demo" / "qwend.toml"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LocalHost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("::ffff:10.0.0.5", False),
        ("fe80::1", False),
        ("npu-host-1", False),  # a name may resolve to any interface
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert ListenAddress(host, 9101).loopback is loopback


def issues_of(main: Data) -> list[ConfigIssue]:
    try:
        parse_config(main, list(valid_lanes().items()), main_name=MAIN, base_dir=Path("/etc/q"))
    except ConfigError as error:
        return list(error.issues)
    return []


def test_a_public_endpoint_off_loopback_needs_keys_or_an_explicit_allowance() -> None:
    main = valid_main()
    set_key(main, "public.endpoints[1].listen", "0.0.0.0:9102")
    (issue,) = issues_of(main)
    assert (issue.file, issue.key) == (MAIN, "public.endpoints[1].listen")
    assert issue.message.startswith(
        "0.0.0.0:9102 is not a loopback address and no API keys are configured"
    )
    for fix in ("public.api_keys_file", "127.0.0.1", "public.allow_unauthenticated = true"):
        assert fix in issue.message
    set_key(main, "public.api_keys_file", "api-keys")
    assert issues_of(main) == []
    set_key(main, "public.api_keys_file", DELETE)
    set_key(main, "public.allow_unauthenticated", True)
    assert issues_of(main) == []


def test_the_router_off_loopback_needs_its_own_allowance() -> None:
    main = valid_main()
    set_key(main, "router.listen", "[::]:18088")
    set_key(main, "public.api_keys_file", "api-keys")  # the router's port takes no keys
    set_key(main, "public.allow_unauthenticated", True)  # nor the public section's allowance
    (issue,) = issues_of(main)
    assert (issue.file, issue.key) == (MAIN, "router.listen")
    assert "[::]:18088 is not a loopback address" in issue.message
    assert "router.allow_unauthenticated = true" in issue.message
    set_key(main, "router.allow_unauthenticated", True)
    assert issues_of(main) == []


def test_allow_unauthenticated_is_a_boolean() -> None:
    main = valid_main()
    set_key(main, "public.allow_unauthenticated", "yes")
    (issue,) = issues_of(main)
    assert issue.key == "public.allow_unauthenticated" and "expected true or false" in issue.message


@pytest.mark.parametrize("path", [SHIPPED, DEMO], ids=["shipped", "demo"])
def test_the_shipped_configs_listen_on_loopback_only(path: Path) -> None:
    config = load_config(path)
    assert config.public.api_keys_file is None
    assert not config.public.allow_unauthenticated and not config.router.allow_unauthenticated
    listeners = [config.router.listen, *(e.listen for e in config.public.endpoints)]
    if config.public.console_listen is not None:
        listeners.append(config.public.console_listen)
    assert listeners and all(listen.loopback for listen in listeners)


@pytest.mark.integration  # check-config runs the configured npu-smi (the sim's) once
def test_check_config_reports_an_exposed_port(tmp_path: Path) -> None:
    main = valid_main()
    set_key(main, "public.endpoints[0].listen", "0.0.0.0:9101")
    path = write_config(tmp_path, main, valid_lanes())
    out, err = io.StringIO(), io.StringIO()
    assert check_config_main([str(path)], stdout=out, stderr=err) == 2
    expected = "qwend.toml: public.endpoints[0].listen: 0.0.0.0:9101 is not a loopback"
    assert expected in err.getvalue()
    set_key(main, "public.allow_unauthenticated", True)
    path = write_config(tmp_path, main, valid_lanes())
    assert check_config_main([str(path)], stdout=out, stderr=err) == 0
    summary = out.getvalue().splitlines()
    assert "api keys none: public ports need no key (allow_unauthenticated = true)" in summary
