"""Read ``ray start`` argvs with Ray's own command-line parser (run by Ray's Python).

Reads a JSON list of argvs (the words after ``ray start``) on stdin and prints, for each,
``{"ok": true, "params": {...}}`` with what Ray's click command ``start`` made of it, or
``{"ok": false, "error": "..."}``. Nothing is started: ``make_context`` parses and
validates only. This file runs under Ray's virtualenv, not the project's: it imports
only the standard library, click and Ray.
"""

from __future__ import annotations

import importlib
import json
import sys

import click

PARAMS = ("head", "block", "address", "port", "node_ip_address", "num_gpus", "resources")


def main() -> int:
    # Looked up by name: the project's type checker has no stubs for Ray.
    start = importlib.import_module("ray.scripts.scripts").start
    results = []
    for args in json.load(sys.stdin):
        try:
            ctx = start.make_context("start", list(args))
        except click.ClickException as error:
            results.append({"ok": False, "error": error.format_message()})
        else:
            results.append({"ok": True, "params": {k: ctx.params[k] for k in PARAMS}})
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
