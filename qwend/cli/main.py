"""``qwenctl``: operate a running qwend through its control socket.

``main(argv, env, stdout, stderr)`` is injectable so tests run commands in
process. Data goes to stdout (tables, or JSON with ``--json``), diagnostics
to stderr; the exit status is a documented ``ExitStatus``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from qwend import __version__
from qwend.api.messages import LaneAction
from qwend.cli import bench, verify
from qwend.cli.commands import COMMANDS, Context
from qwend.cli.exit import ExitStatus, exit_status_for
from qwend.errors import QwendError

PROG = "qwenctl"
EPILOG = """\
exit status:
  0 ok, 1 error, 2 usage (or invalid configuration for check-config),
  3 daemon unreachable, 4 permission denied on the socket,
  5 promotion failed and rolled back, 6 conflict, 7 not found, 8 timeout,
  9 latency gate refused the candidate

socket: --socket, else $QWEND_SOCKET, else /run/qwend/control.sock,
        else $XDG_RUNTIME_DIR/qwend/control.sock
"""


def _common(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    # On subcommands the default is SUPPRESS so "qwenctl --json status" keeps the top-level value.
    default: object = False if top else argparse.SUPPRESS
    parser.add_argument(
        "--json", action="store_true", default=default, help="machine-readable JSON on stdout"
    )
    parser.add_argument(
        "--socket",
        metavar="PATH",
        default=None if top else argparse.SUPPRESS,
        help="control socket of the daemon",
    )


def _sub(
    subs: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse.ArgumentParser:
    parser = subs.add_parser(name, help=help_text, description=help_text)
    _common(parser)
    return parser


def _promotion_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait", action="store_true", help="show progress and wait for the outcome"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="candidate readiness deadline; past it the promotion rolls back",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full qwenctl argument parser (also used to generate the man page)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Operate qwend: lanes, promotions, NPUs, logs and events.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _common(parser, top=True)
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _sub(subs, "status", "daemon, active lanes, lane table, recent promotions")
    _sub(subs, "lanes", "the lane table with live latency")
    npus = _sub(subs, "npus", "NPU table from the daemon's monitor, or parse a captured npu-smi")
    npus.add_argument(
        "--parse", metavar="FILE", help="parse a saved npu-smi output ('-' for stdin), no daemon"
    )
    promote = _sub(subs, "promote", "make a candidate lane the active lane of its role")
    promote.add_argument("kind", choices=["lane"], help="what to promote")
    promote.add_argument("name", metavar="NAME", help="the candidate lane")
    _promotion_args(promote)
    bench.add_gate_args(promote)
    rollback = _sub(subs, "rollback", "revert the last promotion of a role")
    rollback.add_argument("kind", choices=["role"], help="what to roll back")
    rollback.add_argument("name", metavar="ROLE", help="the role")
    _promotion_args(rollback)
    for action in LaneAction:
        sub = _sub(subs, action.value, f"{action.value} a lane")
        sub.add_argument("kind", choices=["lane"], help="what to act on")
        sub.add_argument("name", metavar="NAME", help="the lane")
    logs = _sub(subs, "logs", "a lane's log: last lines, follow, or the previous run")
    logs.add_argument("name", metavar="NAME", help="the lane")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("-n", "--lines", type=int, default=50, metavar="N", help="lines (50)")
    logs.add_argument("--previous", action="store_true", help="the log of the previous run")
    _sub(subs, "reload", "re-read the configuration; lists errors and keeps the old one")
    events = _sub(subs, "events", "follow lane changes and promotions (Ctrl-C to stop)")
    events.add_argument(
        "--stats", type=float, default=0.0, metavar="S", help="also print stats every S seconds"
    )
    check = _sub(subs, "check-config", "validate a configuration without a daemon")
    check.add_argument("path", nargs="?", help="qwend.toml or its directory")
    completion = _sub(subs, "completion", "print a shell completion script")
    completion.add_argument("shell", choices=["bash"])
    bench.add_parser(lambda name, help_text: _sub(subs, name, help_text))
    verify.add_parser(lambda name, help_text: _sub(subs, name, help_text))
    return parser


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one qwenctl command; returns the exit status."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help / --version (0) or a usage error (2, printed)
        return ExitStatus.OK if exc.code in (0, None) else ExitStatus.USAGE
    ctx = Context(args, dict(os.environ if env is None else env), out, err)
    try:
        return int(asyncio.run(COMMANDS[args.command](ctx)))
    except KeyboardInterrupt:
        return ExitStatus.OK if args.command in ("events", "logs") else ExitStatus.ERROR
    except (QwendError, OSError, TimeoutError) as exc:
        print(f"{PROG}: {exc}", file=err)
        return exit_status_for(exc)


if __name__ == "__main__":
    sys.exit(main())
