"""API keys of the public endpoints: the one key set they share, swapped whole on reload.

``read_api_keys`` reads ``[public] api_keys_file`` (format: ``qwend.public.keyfile``)
as part of loading a configuration: a file that is missing, unreadable, empty or
malformed is a ``ConfigError`` like any other, so startup refuses it and a
reload keeps the previous configuration and keys. ``ApiKeys`` is the single
holder every public endpoint checks against: a reload replaces its ``KeySet``
in one assignment (no request sees half of it), and turning keys on or off is
just a swap to or from None. It also keeps the per-key rate-limit buckets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from qwend.config.model import PublicConfig
from qwend.errors import ConfigError, ConfigIssue
from qwend.logs import get_logger
from qwend.public.keyfile import ApiKey, KeySet, parse_key_file
from qwend.public.limits import Limited, RateLimiter

log = get_logger("public")
KEY_PATH = "public.api_keys_file"


def read_api_keys(public: PublicConfig, main_name: str = "qwend.toml") -> KeySet | None:
    """The keys of ``public.api_keys_file`` (None: not set); ConfigError naming what is wrong.

    ``main_name`` is the configuration file that names the keys file (for messages).
    """
    path = public.api_keys_file
    return None if path is None else read_key_file(path, main_name)


def read_key_file(path: Path, main_name: str = "qwend.toml") -> KeySet:
    """The keys in ``path``; ConfigError: unreadable (filed under ``main_name``), bad lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        msg = (
            f"cannot read the API keys file {path}: {reason};"
            f" create it (one key per line, readable by qwend) or remove {KEY_PATH}"
        )
        raise ConfigError([ConfigIssue(main_name, KEY_PATH, msg)]) from None
    return parse_key_file(text, str(path))


class ApiKeys:
    """The accepted keys (None: requests need no key) and their rate-limit buckets."""

    def __init__(
        self, keys: KeySet | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._keys = keys
        self._limiter = RateLimiter()
        self._clock = clock
        self._held: set[bytes] = set()
        """Keys refused since their last admitted request (logged once per episode)."""

    @property
    def current(self) -> KeySet | None:
        """The key set in force; read it once per request."""
        return self._keys

    @property
    def enabled(self) -> bool:
        """Requests need a key."""
        return self._keys is not None

    def swap(self, keys: KeySet | None) -> None:
        """Put ``keys`` in force for every endpoint at once (startup, reload)."""
        old, self._keys = self._keys, keys
        kept = keys.keys if keys is not None else ()
        self._limiter.retain((key.digest, key.limits) for key in kept)
        self._held &= {key.digest for key in kept}
        if keys is not None:
            log.info("API keys loaded", file=keys.source, keys=keys.count, limited=keys.limited)
        elif old is not None:
            log.warning("API keys turned off: public endpoints accept requests without a key")

    def admit(self, key: ApiKey, tokens: int) -> Limited | None:
        """Charge one request of ``tokens`` estimated tokens to ``key``: None, or why not."""
        limited = self._limiter.admit(key.digest, key.limits, tokens, self._clock())
        if limited is None:
            self._held.discard(key.digest)
        elif key.digest not in self._held:
            # Once until the key gets through again: a client hammering a limit is no flood.
            self._held.add(key.digest)
            log.warning(
                "API key over its rate limit",
                key=key.label,
                limit=limited.limit.value,
                per_minute=limited.per_minute,
                retry_after_s=limited.retry_after_header,
            )
        return limited
