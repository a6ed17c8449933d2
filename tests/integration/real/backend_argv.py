"""Parse lane argvs with a backend's own command-line parser (run by the backend's Python).

Reads ``{"backend": "transformers", "argvs": [[...], ...]}`` as JSON on stdin and prints
one ``{"ok": bool, "error": str}`` per argv as a JSON list. The argv is the lane's
command with its placeholders filled, program name first; the program is not started:
the parser of the real installed backend decides, exactly as at start.

- transformers: its ``transformers`` CLI is a click group (huggingface_hub's Typer
  factory); ``make_context`` parses and validates ``serve ARGS`` without invoking.
- vllm: ``FlexibleArgumentParser`` with ``vllm serve``'s subcommand parser, then its
  ``validate``, as ``vllm.entrypoints.cli.main`` does before serving.

This file runs under the backend's virtualenv, not the project's: it imports only the
standard library and the backend.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any


def _transformers() -> Callable[[Sequence[str]], None]:
    # Imported here: each backend's parser is loaded only when asked for (vLLM's is slow).
    import click
    from transformers.cli.transformers import app

    group = app if isinstance(app, click.Group) else None
    if group is None:  # a plain Typer app (other transformers releases)
        import typer.main  # only older releases need it

        group = typer.main.get_command(app)

    def parse(argv: Sequence[str]) -> None:
        name, rest = argv[1], list(argv[2:])
        with click.Context(group, info_name="transformers") as ctx:
            command = group.get_command(ctx, name)
            if command is None:
                raise click.UsageError(f"no command {name!r}")
            command.make_context(name, rest, parent=ctx)

    return parse


def _vllm() -> Callable[[Sequence[str]], None]:
    # Imported here: only the vLLM virtualenv has vLLM.
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    def parse(argv: Sequence[str]) -> None:
        # As vllm.entrypoints.cli.main builds it: the top parser, `serve` as a subcommand.
        parser = FlexibleArgumentParser(prog="vllm")
        subparsers = parser.add_subparsers(required=False, dest="subparser")
        serve = ServeSubcommand()
        serve.subparser_init(subparsers)
        args = parser.parse_args(list(argv[1:]))
        if args.subparser != "serve":
            raise ValueError(f"not a `vllm serve` command: {list(argv[:2])}")
        serve.validate(args)

    return parse


def main() -> int:
    request: dict[str, Any] = json.load(sys.stdin)
    parse = {"transformers": _transformers, "vllm": _vllm}[request["backend"]]()
    results = []
    for argv in request["argvs"]:
        usage = io.StringIO()
        try:
            with contextlib.redirect_stderr(usage):
                parse(argv)
        except SystemExit as exit_:  # argparse printed the usage error: quote its last line
            lines = usage.getvalue().strip().splitlines() or [f"exit {exit_.code}"]
            results.append({"ok": False, "error": lines[-1]})
        except Exception as error:  # each argv's verdict is reported, not raised
            results.append({"ok": False, "error": f"{type(error).__name__}: {error}"})
        else:
            results.append({"ok": True, "error": ""})
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
