"""``qwenctl``: operate a running qwend through its control socket.

``main(argv, env, stdout, stderr)`` is injectable so tests run commands in
process. Data goes to stdout (tables, or JSON with ``--json``), diagnostics
to stderr; the exit status is a documented ``ExitStatus``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from qwend import __version__
from qwend.api.messages import LaneAction
from qwend.cli import bench, verify
from qwend.cli.commands import ACTION_TIMEOUT_S, COMMANDS, READ_TIMEOUT_S, Context
from qwend.cli.completion import NAME_KINDS
from qwend.cli.exit import ExitStatus, error_object, exit_status_for
from qwend.errors import QwendError

PROG = "qwenctl"
SHELLS = ("bash", "zsh", "fish")
EPILOG = """\
exit status:
  0 ok, 1 error, 2 usage (or invalid configuration for check-config),
  3 daemon unreachable, 4 permission denied on the socket,
  5 promotion failed and rolled back, 6 conflict, 7 not found, 8 timeout,
  9 latency gate refused the candidate, 10 a peer did not answer (status),
  130 interrupted (Ctrl-C; an operation already sent goes on in the daemon)

timeout: read-only commands wait 5 s for the daemon, actions
         300 s; --timeout S sets both

socket: --socket, else $QWEND_SOCKET, else /run/qwend/control.sock,
        else $XDG_RUNTIME_DIR/qwend/control.sock
"""


INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT, the shell's convention)."""


def _common(
    parser: argparse.ArgumentParser, *, top: bool = False, timeout: bool = True, peer: bool = True
) -> None:
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
    if peer:  # commands that talk to a daemon may reach a peer's through it
        parser.add_argument(
            "--host",
            metavar="NAME",
            default=None if top else argparse.SUPPRESS,
            help="act on this peer host's lanes ([[peers]] name); the local daemon forwards"
            " the request with its own credentials. A lane may also be given as HOST/LANE",
        )
    if timeout:  # promote and rollback use --timeout for the candidate's deadline
        parser.add_argument(
            "--timeout",
            dest="request_timeout",
            type=_seconds,
            metavar="S",
            default=None if top else argparse.SUPPRESS,
            help="how long to wait for the daemon's answer"
            f" (read-only commands {READ_TIMEOUT_S:g}s, actions {ACTION_TIMEOUT_S:g}s)",
        )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return value


def _sub(
    subs: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    *,
    timeout: bool = True,
    peer: bool = True,
) -> argparse.ArgumentParser:
    parser = subs.add_parser(name, help=help_text, description=help_text)
    _common(parser, timeout=timeout, peer=peer)
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
    status = _sub(
        subs,
        "status",
        "daemon, active lanes, lane table, recent promotions (of every host when the daemon"
        " has [[peers]])",
    )
    status.add_argument(
        "--local", action="store_true", help="this host only, without asking the peers"
    )
    _sub(subs, "lanes", "the lane table with live latency")
    npus = _sub(subs, "npus", "NPU table from the daemon's monitor, or parse a captured npu-smi")
    npus.add_argument(
        "--parse", metavar="FILE", help="parse a saved npu-smi output ('-' for stdin), no daemon"
    )
    promote = _sub(
        subs, "promote", "make a candidate lane the active lane of its role", timeout=False
    )
    promote.add_argument("kind", choices=["lane"], help="what to promote")
    promote.add_argument("name", metavar="NAME", help="the candidate lane")
    _promotion_args(promote)
    bench.add_gate_args(promote)
    rollback = _sub(subs, "rollback", "revert the last promotion of a role", timeout=False)
    rollback.add_argument("kind", choices=["role"], help="what to roll back")
    rollback.add_argument("name", metavar="ROLE", help="the role")
    _promotion_args(rollback)
    for action in LaneAction:
        sub = _sub(subs, action.value, ACTION_HELP[action])
        sub.add_argument("kind", choices=["lane"], help="what to act on")
        sub.add_argument("name", metavar="NAME", help="the lane")
        if action in SAFE_ACTIONS:
            sub.add_argument(
                "--now",
                action="store_true",
                help="do not wait for in-flight requests to finish (no drain)",
            )
            sub.add_argument(
                "--force",
                action="store_true",
                help="even when it is the active lane of its role (the role's port answers"
                " 503 until it is back)",
            )
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
    events.add_argument(
        "--no-reconnect",
        dest="reconnect",
        action="store_false",
        help="exit when the daemon goes away instead of reconnecting",
    )
    check = _sub(subs, "check-config", "validate a configuration without a daemon", peer=False)
    check.add_argument("path", nargs="?", help="qwend.toml or its directory")
    check.add_argument(
        "--cluster",
        nargs="+",
        metavar="PATH",
        help="every host's qwend.toml (or directory): check each, then across hosts",
    )
    init = _sub(
        subs, "init", "write a shipped preset configuration (qwend.toml + lanes.d)", peer=False
    )
    init.add_argument("--preset", metavar="NAME", help="the preset to copy (see --list)")
    init.add_argument("--list", action="store_true", help="list the presets and exit")
    init.add_argument(
        "--dir",
        metavar="DIR",
        default=None,
        help="where to write (/etc/qwend); a multi-host preset without --host: DIR/HOST/",
    )
    init.add_argument(
        "--host", metavar="NAME", help="multi-host preset: write only this host's files"
    )
    init.add_argument(
        "--address",
        action="append",
        metavar="HOST=ADDR",
        help="multi-host preset: a host's address on the cluster network (one per host)",
    )
    init.add_argument(
        "--nic",
        action="append",
        metavar="[HOST=]IFNAME",
        help="multi-host preset: the interface carrying the cluster addresses (HCCL, Gloo)",
    )
    init.add_argument("--force", action="store_true", help="replace existing files")
    completion = _sub(
        subs, "completion", "print a shell completion script (bash, zsh, fish)", peer=False
    )
    completion.add_argument("shell", nargs="?", choices=list(SHELLS))
    completion.add_argument(  # what the scripts call for live lane, role and host names
        "--names", choices=NAME_KINDS, help=argparse.SUPPRESS
    )
    # bench and verify send traffic to a lane's own address: not through a peer link.
    bench.add_parser(lambda name, help_text: _sub(subs, name, help_text, peer=False))
    verify.add_parser(lambda name, help_text: _sub(subs, name, help_text, peer=False))
    return parser


ACTION_HELP = {
    LaneAction.START: "start a lane",
    LaneAction.STOP: "drain a lane, then stop it (refused on a role's active lane without --force)",
    LaneAction.RESTART: "drain a lane, then restart it (refused on a role's active lane"
    " without --force)",
    LaneAction.DRAIN: "stop routing new requests to a lane; in-flight ones finish",
    LaneAction.RESET: "clear a failed lane's crash loop and start it again",
}
SAFE_ACTIONS = frozenset({LaneAction.STOP, LaneAction.RESTART})
"""Actions that take a lane out of service: drained first, refused on an active lane."""


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one qwenctl command; returns the exit status."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exc:  # --help / --version (0) or a usage error (2, printed)
        if exc.code in (0, None):
            return ExitStatus.OK
        if "--json" in arguments:
            _json_error(out, {"type": "usage", "message": "bad command line; see qwenctl --help"})
        return ExitStatus.USAGE
    try:
        _split_host(args)
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=err)
        if args.json:
            _json_error(out, {"type": "usage", "message": str(exc)})
        return ExitStatus.USAGE
    ctx = Context(args, dict(os.environ if env is None else env), out, err, parser)
    try:
        return int(asyncio.run(COMMANDS[args.command](ctx)))
    except KeyboardInterrupt:
        return _interrupted(args, err)
    except (QwendError, OSError, TimeoutError) as exc:
        print(f"{PROG}: {exc}", file=err)
        status = exit_status_for(exc)
        if args.json:
            _json_error(out, error_object(exc, status))
        return status


HOST_COMMANDS = frozenset({"promote", "rollback", "logs", *(action.value for action in LaneAction)})
"""Commands whose NAME may be given as HOST/NAME (a lane or role on a peer)."""


def _split_host(args: argparse.Namespace) -> None:
    """``HOST/NAME`` -> ``--host HOST`` and ``NAME`` (names never hold a slash)."""
    name = getattr(args, "name", None)
    if args.command not in HOST_COMMANDS or not isinstance(name, str) or "/" not in name:
        return
    host, _, rest = name.partition("/")
    if not host or not rest or "/" in rest:
        raise ValueError(f"{name!r}: give a lane as NAME or HOST/NAME")
    if args.host is not None and args.host != host:
        raise ValueError(f"{name!r} names host {host!r} but --host says {args.host!r}")
    args.host, args.name = host, rest


def _json_error(out: TextIO, error: Mapping[str, object]) -> None:
    """Under --json a failure is a JSON object on stdout too: ``{"error": {...}}``."""
    out.write(json.dumps({"error": dict(error)}) + "\n")
    out.flush()


CONTINUES = {
    "promote": "the promotion goes on in the daemon",
    "rollback": "the rollback goes on in the daemon",
    "reload": "the reload goes on in the daemon",
    **{action.value: f"the {action.value} goes on in the daemon" for action in LaneAction},
}
"""Commands whose work the daemon finishes when qwenctl is interrupted."""


def _interrupted(args: argparse.Namespace, err: TextIO) -> int:
    """Ctrl-C: following a stream is over (0); anything else says what goes on (130)."""
    if args.command in ("events", "logs"):
        return ExitStatus.OK
    what = CONTINUES.get(args.command)
    if what is not None:
        subject = getattr(args, "name", "")
        err.write(
            f"\n{PROG}: interrupted; {what} ({args.command} {subject})."
            " Follow it with: qwenctl events, or check: qwenctl status\n"
        )
    return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
