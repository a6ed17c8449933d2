"""``python -m qwend.sim``: the same as the ``qwend-sim`` console script."""

from __future__ import annotations

import sys

from qwend.sim.cli import main

if __name__ == "__main__":
    sys.exit(main())
