"""``qwend check-config [PATH]``: validate a configuration and summarise it on one screen.

Exit 0 and the summary on stdout when valid; exit 2 and every error on stderr when not
(a missing file included). The check and its rendering are ``qwend.config``'s, shared with
``qwenctl check-config``; this is the qwend program's command line around them.

``qwend check-config --cluster DIR DIR...`` checks several hosts' configurations (one
qwend.toml or its directory per host, e.g. copies gathered on one machine): each on its
own, then what must agree between them (``qwend.config.crosshost``). This host's NPUs
are not compared with any of them: the files describe other machines.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from qwend.config.check import PROG, render_check, render_cluster_check
from qwend.config.load import DEFAULT_CONFIG_PATH, check_cluster, check_config
from qwend.daemon.exit import ExitStatus
from qwend.npu.hostcheck import with_host_check


def build_parser() -> argparse.ArgumentParser:
    """``qwend check-config`` command line."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Validate qwend.toml and its lanes directory; print a summary.",
        epilog="Exit status: 0 valid (and, with --cluster, consistent), 2 invalid or missing.",
    )
    parser.add_argument(
        "--cluster",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="every host's qwend.toml (or its directory): check each, then across hosts",
    )
    parser.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=DEFAULT_CONFIG_PATH,
        help=f"qwend.toml, or the directory holding it (default {DEFAULT_CONFIG_PATH})",
    )
    return parser


def main(argv: Sequence[str], *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Validate the configuration at PATH (default /etc/qwend/qwend.toml)."""
    try:
        args = build_parser().parse_args(list(argv))
    except SystemExit as exit_:  # --help (0) or a usage error (2, already printed)
        return ExitStatus.OK if exit_.code == 0 else ExitStatus.CONFIG
    if args.cluster:
        cluster = check_cluster(args.cluster)
        out_text, err_text = render_cluster_check(cluster)
        if out_text:
            print(out_text, file=stdout or sys.stdout)
        if err_text:
            print(err_text, file=stderr or sys.stderr)
        return ExitStatus.OK if cluster.ok else ExitStatus.CONFIG
    check = with_host_check(check_config(args.path))
    out = (stdout or sys.stdout) if check.ok else (stderr or sys.stderr)
    print(render_check(check), file=out)
    return ExitStatus.OK if check.ok else ExitStatus.CONFIG
