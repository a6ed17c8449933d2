"""Paths in the configuration: a ``~user`` that does not exist is a config error."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwend.config.schema import Bad, PathConv


def test_an_unknown_home_directory_is_a_clear_error_not_a_crash() -> None:
    with pytest.raises(Bad, match="~user exists"):
        PathConv(Path("/etc/qwend"))("~no-such-user-qwend/state")
