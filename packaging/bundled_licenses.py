#!/usr/bin/env python3
"""List the Python distributions bundled in the package's venv with their licences.

VENV/bin/python -B packaging/bundled_licenses.py SITE_PACKAGES > bundled-licenses.txt
"""

from __future__ import annotations

import sys
from importlib.metadata import Distribution, distributions
from pathlib import Path


def licence_of(dist: Distribution) -> str:
    """The licence a distribution declares: License-Expression, License, or classifiers."""
    meta = dist.metadata
    expression = meta["License-Expression"]
    if expression:
        return str(expression)
    declared = (meta["License"] or "").strip()
    if declared and "\n" not in declared and len(declared) < 80:
        return declared
    classifiers = [
        c.removeprefix("License :: ").removeprefix("OSI Approved :: ")
        for c in meta.get_all("Classifier") or []
        if c.startswith("License ::")
    ]
    return "; ".join(classifiers) or "see its dist-info directory"


def main(argv: list[str]) -> int:
    """Print one 'name version: licence' line per distribution in SITE_PACKAGES."""
    site = Path(argv[1])
    dists = sorted(distributions(path=[str(site)]), key=lambda d: d.metadata["Name"].lower())
    print("Python distributions bundled in /usr/lib/qwend/venv")
    print("(licence texts: /usr/lib/qwend/venv/lib/python3.11/site-packages/*.dist-info/)")
    print()
    for dist in dists:
        print(f"{dist.metadata['Name']} {dist.version}: {licence_of(dist)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
