"""The API keys file format: bare keys as before, per-key settings after them (pure)."""

from __future__ import annotations

import pytest

from qwend.errors import ConfigError
from qwend.public.keyfile import KeySet, parse_key_file
from qwend.public.limits import KeyLimits

KEY = "sk-qwend-right-key-0123456789"
OTHER = "sk-qwend-other-key"
SOURCE = "/etc/qwend/api-keys"


def parse(text: str) -> KeySet:
    return parse_key_file(text, SOURCE)


def issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return [str(issue) for issue in caught.value.issues]


def test_bare_keys_read_as_they_always_did() -> None:
    keys = parse(f"# team A\n\n  {KEY}  \n\t\n#{OTHER}\n{OTHER}\n{KEY}\n")
    assert keys.count == 2 and keys.limited == 0
    assert keys.find(f"Bearer {KEY}") is not None
    assert keys.find(f"bearer {OTHER}") is not None  # the scheme is case-insensitive
    assert keys.find("Bearer # team A") is None
    assert keys.find(f"#{OTHER}") is None
    assert [(k.name, k.label) for k in keys.keys] == [(None, "line 3"), (None, "line 6")]


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", f"Basic {KEY}", KEY, f"Bearer {KEY}x", f"Bearer {KEY[:-1]}"],
)
def test_anything_but_the_exact_key_is_refused(header: str | None) -> None:
    assert parse(KEY + "\n").find(header) is None


@pytest.mark.parametrize("junk", ["\udcff\udcfe", "\ud800", "\udced\udca0\udc80"])
def test_a_header_that_was_not_utf8_matches_no_key(junk: str) -> None:
    # aiohttp passes such header bytes on as surrogate escapes.
    assert parse(KEY + "\n").find(f"Bearer {junk}") is None


def test_settings_after_the_key_name_and_limit_it() -> None:
    keys = parse(
        f"{KEY}   name=alice requests_per_minute=60 tokens_per_minute=200000  # the lab\n"
        f"{OTHER} tokens_per_minute=5\n"
    )
    alice = keys.find(f"Bearer {KEY}")
    assert alice is not None and alice.label == "alice" and alice.line == 1
    assert alice.limits == KeyLimits(requests_per_minute=60, tokens_per_minute=200000)
    other = keys.find(f"Bearer {OTHER}")
    assert other is not None and other.name is None and other.label == "line 2"
    assert other.limits == KeyLimits(tokens_per_minute=5)
    assert keys.limited == 2


def test_every_bad_line_is_reported_by_line_without_quoting_a_key() -> None:
    found = issues(
        f"{KEY}\n"
        "secret part two\n"
        f"{OTHER} rpm=60\n"
        "k3 requests_per_minute=fast\n"
        "k4 tokens_per_minute=0\n"
        "k5 name=alice name=bob\n"
        "k6 name=has/slash\n"
        "k7 x+y=1\n"
    )
    assert found[0].startswith(f"{SOURCE}: line 2: expected NAME=VALUE settings after the key")
    assert "'rpm'" in found[1] and found[1].startswith(f"{SOURCE}: line 3: unknown setting")
    assert "requests_per_minute='fast'" in found[2]
    assert "tokens_per_minute='0'" in found[3]
    assert "line 6: name is set twice" in found[4]
    assert "line 7: name='has/slash'" in found[5]
    assert "line 8: unknown setting (not shown)" in found[6] and "x+y" not in found[6]
    assert len(found) == 7
    text = "\n".join(found)
    for secret in ("secret", "part", "two", KEY, OTHER):
        assert secret not in text


def test_an_empty_file_is_an_error() -> None:
    assert issues("# nothing yet\n\n") == [
        f"{SOURCE}: holds no keys; add one per line, or remove [public] api_keys_file"
        " to accept requests without a key"
    ]


def test_a_key_repeated_with_other_settings_or_a_taken_name_is_an_error() -> None:
    assert parse(f"{KEY} name=a\n{KEY} name=a\n").count == 1  # an exact repeat is harmless
    assert parse(f"{KEY}\n{KEY}\n").count == 1  # as in the original format
    found = issues(f"{KEY} name=a\n{KEY} name=a requests_per_minute=1\n{OTHER} name=a\n")
    assert found == [
        f"{SOURCE}: line 2: the same key as line 1 with other settings; keep one of them",
        f"{SOURCE}: line 3: name 'a' is already used on line 1; names are unique",
    ]


def test_digests_never_show_in_a_repr() -> None:
    keys = parse(f"{KEY} name=alice\n")
    digest = keys.keys[0].digest
    assert digest.hex() not in repr(keys) and str(digest) not in repr(keys)
