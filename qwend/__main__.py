"""``qwend`` entry point: the daemon, ``--demo``, and ``check-config``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from qwend.daemon import check_config


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``qwend check-config`` or run the daemon."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "check-config":
        return check_config.main(args[1:])
    # Deferred for start-up time: check-config needs neither aiohttp nor the daemon's wiring.
    from qwend.daemon.lifecycle import main as daemon_main

    return daemon_main(args)


if __name__ == "__main__":
    sys.exit(main())
