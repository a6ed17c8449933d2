#!/usr/bin/env python3
"""Write man pages for qwend's commands from their argparse parsers, and qwend.toml(5).

Each command's parser is looked up as a ``build_parser()`` function in a few
modules; a command without one is documented from its ``--help`` output. qwen-tui's
KEYS come from the Textual bindings of its app and screens; qwend.toml(5) is made from
docs/configuration.md (kept in sync with the configuration parser by its tests). Run
with the interpreter of the environment the commands are installed in:

    VENV/bin/python -B packaging/gen_manpages.py --version 0.1.0 --out DIR/man1

Section 5 goes to ``--out5`` (default: ``man5`` beside ``--out``).
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import importlib
import itertools
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Page:
    """One man page to write."""

    command: str
    """Command name, also the page name."""
    summary: str
    """One line for the NAME section."""
    parsers: tuple[str, ...]
    """``module:function`` candidates returning the command's ArgumentParser."""
    extra: tuple[tuple[str, str], ...] = ()
    """Further (SECTION, roff text) pairs."""
    exit_status: str = ""
    """``module:Enum`` of the command's exit statuses (member docstrings describe them)."""
    keys: str = ""
    """``module:function`` returning the interactive keys (``.key``, ``.description``)."""


REPO = Path(__file__).resolve().parent.parent
CONFIG_DOC = REPO / "docs" / "configuration.md"
FILES = (
    "FILES",
    ".TP\n/etc/qwend/qwend.toml\nMain configuration: [daemon], [router], [public], [monitor]"
    " (see \\fBqwend.toml\\fR(5)). The administrator's file: made from the defaults at the"
    " first install, never changed by an upgrade.\n"
    ".TP\n/usr/share/qwend/qwend.toml\nThe package's default configuration.\n"
    ".TP\n/etc/qwend/lanes.d/*.toml\nOne file per lane ([lane] table).\n"
    ".TP\n/usr/share/qwend/examples/\n"
    "Seed topology lane files and the qwend\\-sim demo configuration.\n"
    ".TP\n/run/qwend/control.sock\nControl socket used by qwenctl and qwen\\-tui.\n"
    ".TP\n/var/lib/qwend\nState: active lane per role, promotion history.\n"
    ".TP\n/var/log/qwend/LANE.log\nLane output, rotated by qwend on each lane start and when it"
    " grows past [daemon] lane_log_max_mb.\n",
)
QWEND_SIGNALS = (
    "SIGNALS",
    ".TP\nSIGHUP\nReload the configuration (qwend.toml and lanes.d). Only lanes whose"
    " definition changed restart; a configuration with errors is rejected and the running"
    " one kept (qwenctl reload, which systemctl reload runs, reports the errors and fails).\n"
    ".TP\nSIGTERM, SIGINT\nOrdered shutdown: stop accepting requests, drain in-flight ones"
    " for [daemon] drain_timeout_s, stop every lane. Under systemd a restart (not a stop)"
    " leaves the lanes running for the next qwend to adopt.\n"
    ".TP\nSIGABRT\nSent by systemd's watchdog when the event loop hangs; systemd restarts"
    " qwend and the lanes are adopted again.\n",
)
QWEND_EXAMPLES = (
    "EXAMPLES",
    ".nf\n"
    "qwend check\\-config /etc/qwend/qwend.toml   # validate before a reload\n"
    "systemctl reload qwend                     # apply it; fails if rejected\n"
    "journalctl \\-u qwend \\-p warning             # warnings and errors only\n"
    "qwend \\-\\-demo                               # simulated lanes, no NPU needed\n"
    ".fi\n",
)
QWENCTL_SIGNALS = (
    "SIGNALS",
    ".TP\nSIGINT (Ctrl\\-C)\nStops following (events, logs \\-f: exit 0). During an action"
    " (promote \\-\\-wait, stop, ...) qwenctl says the operation goes on in the daemon and how"
    " to follow it, and exits 130; the action is not undone.\n",
)
QWENCTL_EXAMPLES = (
    "EXAMPLES",
    ".nf\n"
    "qwenctl status\n"
    "qwenctl promote lane recurrent_v2 \\-\\-wait\n"
    "qwenctl rollback role stable \\-\\-wait\n"
    "qwenctl stop lane stable_green            # drains first\n"
    "qwenctl restart lane stable \\-\\-force      # the role's active lane\n"
    "qwenctl logs stable \\-f\n"
    "qwenctl events \\-\\-json | jq .kind\n"
    "qwenctl \\-\\-timeout 2 lanes \\-\\-json\n"
    "qwenctl completion fish > ~/.config/fish/completions/qwenctl.fish\n"
    ".fi\n",
)
TUI_EXAMPLES = (
    "EXAMPLES",
    ".nf\nqwen\\-tui\nqwen\\-tui \\-\\-socket /run/user/1000/qwend/control.sock\n.fi\n",
)
"""Modules whose Textual classes' BINDINGS make the KEYS section of qwen-tui(1)."""
SOCKET_ENV = (
    "ENVIRONMENT",
    ".TP\nQWEND_SOCKET\nControl socket path when \\-\\-socket is not given; then "
    "/run/qwend/control.sock, then $XDG_RUNTIME_DIR/qwend/control.sock.\n",
)
TUI_ENV = (
    "ENVIRONMENT",
    SOCKET_ENV[1] + ".TP\nQWEND_BENCH_DIR\nWhere qwenctl bench saved its results (else "
    "$XDG_STATE_HOME/qwend/bench, ~/.local/state/qwend/bench): the lane detail view "
    "shows the newest one about the lane.\n",
)
PAGES = (
    Page(
        "qwend",
        "Qwen3.5 serving supervisor and adaptive router for Ascend NPUs",
        ("qwend.daemon.lifecycle:build_parser", "qwend.__main__:build_parser"),
        (
            QWEND_SIGNALS,
            FILES,
            QWEND_EXAMPLES,
            (
                "NOTES",
                "qwend runs as the systemd service qwend.service; its log is in the journal "
                "(journalctl \\-u qwend). qwend check\\-config PATH validates a configuration "
                "(exit status 0 or 2).\n",
            ),
        ),
        "qwend.daemon.exit:ExitStatus",
    ),
    Page(
        "qwenctl",
        "control the qwend daemon: lanes, promotion, status, NPUs",
        (
            "qwend.cli.main:build_parser",
            "qwend.cli:build_parser",
            "qwend.cli.parser:build_parser",
        ),
        (SOCKET_ENV, QWENCTL_SIGNALS, FILES, QWENCTL_EXAMPLES),
        "qwend.cli.exit:ExitStatus",
    ),
    Page(
        "qwen-tui",
        "terminal user interface for the qwend daemon",
        ("qwen_tui.app:build_parser", "qwen_tui.cli:build_parser"),
        (TUI_ENV, TUI_EXAMPLES),
        keys="qwen_tui.actions:all_keys",
    ),
    Page(
        "qwend-sim",
        "lane emulator and fake npu-smi for testing qwend without NPUs",
        ("qwend.sim.cli:build_parser",),
    ),
)


def roff(text: str) -> str:
    """Escape plain text for roff: backslashes, dashes, leading dots and quotes."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    lines = []
    for line in text.splitlines():
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def find_parser(candidates: Iterable[str]) -> argparse.ArgumentParser | None:
    """Return the first parser that a candidate ``module:function`` builds."""
    for spec in candidates:
        module_name, func_name = spec.split(":")
        try:
            module = importlib.import_module(module_name)
        except Exception:  # a missing or broken module: try the next candidate
            continue
        func: Callable[[], object] | None = getattr(module, func_name, None)
        if func is None:
            continue
        parser = func()
        if isinstance(parser, argparse.ArgumentParser):
            return parser
    return None


def render_actions(parser: argparse.ArgumentParser) -> list[str]:
    """Options and positionals of one parser as .TP paragraphs."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            metavar = ""
            if action.nargs != 0:
                choices = "{" + ",".join(map(str, action.choices)) + "}" if action.choices else ""
                metavar = " " + str(action.metavar or choices or action.dest.upper())
            names = ", ".join(f"\\fB{roff(o)}\\fR{roff(metavar)}" for o in action.option_strings)
        else:
            choices = "{" + ",".join(map(str, action.choices)) + "}" if action.choices else ""
            names = f"\\fI{roff(str(action.metavar or choices or action.dest))}\\fR"
        help_text = (action.help or "").replace("%(default)s", str(action.default))
        help_text = help_text.replace("%(prog)s", parser.prog)
        out.append(f".TP\n{names}\n{roff(help_text)}" if help_text else f".TP\n{names}")
    return out


def subcommands(
    parser: argparse.ArgumentParser, prefix: str
) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(full name, help, parser) of every subcommand, depth first."""
    found = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help or "" for a in action._choices_actions}
        for name, sub in action.choices.items():
            full = f"{prefix} {name}".strip()
            found.append((full, helps.get(name, sub.description or ""), sub))
            found.extend(subcommands(sub, full))
    return found


def body_from_parser(parser: argparse.ArgumentParser, command: str) -> str:
    """SYNOPSIS, DESCRIPTION, OPTIONS and COMMANDS sections of a parser."""
    usage = parser.format_usage().removeprefix("usage: ").strip()
    usage = usage.replace(parser.prog, command, 1)
    parts = [f".SH SYNOPSIS\n.nf\n{roff(usage)}\n.fi"]
    if parser.description:
        parts.append(f".SH DESCRIPTION\n{roff(parser.description)}")
    options = render_actions(parser)
    if options:
        parts.append(".SH OPTIONS\n" + "\n".join(options))
    subs = subcommands(parser, "")
    # Options every command shares (--help, --json, --socket ...) are listed once above.
    common = set(options) | {a for a in render_actions(argparse.ArgumentParser()) if a}
    if subs:
        parts.append(".SH COMMANDS")
        for name, help_text, sub in subs:
            parts.append(f".SS {roff(name)}\n{roff(help_text)}")
            parts.extend(a for a in render_actions(sub) if a not in common)
    return "\n".join(parts)


def body_from_help(command: str) -> str:
    """SYNOPSIS from ``COMMAND --help``, verbatim, for commands without a parser hook."""
    exe = Path(sys.executable).parent / command
    try:
        result = subprocess.run(
            [str(exe), "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "80", "PYTHONDONTWRITEBYTECODE": "1"},
            check=False,
        )
        text = result.stdout.strip() if result.returncode == 0 else ""
    except OSError:
        text = ""
    if not text:
        return f".SH SYNOPSIS\n\\fB{roff(command)}\\fR [\\fIoptions\\fR]"
    return f".SH SYNOPSIS\n.nf\n{roff(text)}\n.fi"


def exit_statuses(spec: str) -> str:
    """An EXIT STATUS section from an IntEnum and its member docstrings, or ''."""
    module_name, class_name = spec.split(":")
    try:
        module = importlib.import_module(module_name)
        enum = getattr(module, class_name)
        tree = ast.parse(Path(str(module.__file__)).read_text(encoding="utf-8"))
    except Exception:  # the enum is optional: no section without it
        return ""
    docs: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            body = node.body
            for first, second in itertools.pairwise(body):
                if (
                    isinstance(first, ast.Assign)
                    and isinstance(first.targets[0], ast.Name)
                    and isinstance(second, ast.Expr)
                    and isinstance(second.value, ast.Constant)
                ):
                    docs[first.targets[0].id] = str(second.value.value)
    rows = [
        f".TP\n{int(member)}\n{roff(member.name)}: {roff(docs.get(member.name, ''))}"
        for member in enum
    ]
    return ".SH EXIT STATUS\n" + "\n".join(rows) if rows else ""


def keys_section(spec: str) -> str:
    """A KEYS section from the command's own key table, or ''."""
    module_name, func_name = spec.split(":")
    try:
        keys = getattr(importlib.import_module(module_name), func_name)()
    except Exception:  # the key table is optional: no section without it
        return ""
    rows = [f".TP\n\\fB{roff(k.key)}\\fR\n{roff(k.description)}" for k in keys]
    return ".SH KEYS\n" + "\n".join(rows) if rows else ""


def render(page: Page, version: str, date: str) -> str:
    """The whole man page of one command."""
    parser = find_parser(page.parsers)
    body = body_from_parser(parser, page.command) if parser else body_from_help(page.command)
    see_also = ", ".join(f"\\fB{roff(p.command)}\\fR(1)" for p in PAGES if p is not page)
    sections = [
        part
        for part in [
            f'.TH {roff(page.command.upper())} 1 "{date}" "qwend {version}" "qwend manual"',
            f".SH NAME\n{roff(page.command)} \\- {roff(page.summary)}",
            body,
            exit_statuses(page.exit_status) if page.exit_status else "",
            keys_section(page.keys) if page.keys else "",
            *(f".SH {name}\n{text}" for name, text in page.extra),
            f".SH SEE ALSO\n{see_also}, \\fBqwend.toml\\fR(5), \\fBjournalctl\\fR(1),"
            " \\fBsystemctl\\fR(1)",
        ]
        if part
    ]
    return "\n".join(sections) + "\n"


def _inline(text: str) -> str:
    """Markdown inline markup of one line as roff: `code` bold, *x* italic, links as text."""
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"\\fB{roff(part[1:-1])}\\fR")
        else:
            plain = re.sub(r"\*\*([^*]+)\*\*", r"\1", part)
            out.append(re.sub(r"\*([^*]+)\*", r"\\fI\1\\fR", roff(plain)))
    return "".join(out)


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def config_page(markdown: str, version: str, date: str) -> str:
    """qwend.toml(5) from docs/configuration.md: headings, paragraphs, key tables, examples."""
    out = [
        f'.TH QWEND.TOML 5 "{date}" "qwend {version}" "qwend manual"',
        ".SH NAME\nqwend.toml \\- configuration of qwend and its lanes (lanes.d/*.toml)",
    ]
    lines = markdown.splitlines()
    i = 0
    header: list[str] = []
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            block = []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                block.append(roff(lines[i]))
                i += 1
            out.append(".PP\n.nf\n" + "\n".join(block) + "\n.fi")
        elif line.startswith("# "):
            out.append(".SH DESCRIPTION")
        elif line.startswith("## "):
            out.append(f".SH {_inline(line[3:].upper())}")
        elif line.startswith("###"):
            out.append(f".SS {_inline(line.lstrip('#').strip())}")
        elif line.startswith("|"):
            cells = _cells(line)
            if set("".join(cells)) <= set("-: "):
                pass
            elif not header:
                header = cells
            else:
                rest = "; ".join(
                    f"{_inline(h)}: {_inline(c)}"
                    for h, c in zip(header[1:], cells[1:], strict=False)
                )
                out.append(f".TP\n{_inline(cells[0])}\n{rest}")
        elif not line.strip():
            header = []
            out.append(".PP")
        else:
            text = line.lstrip("-* ").strip() if line.lstrip().startswith(("- ", "* ")) else line
            out.append(_inline(text))
        i += 1
    out.append(
        ".SH SEE ALSO\n\\fBqwend\\fR(1), \\fBqwenctl\\fR(1), \\fBqwen\\-tui\\fR(1),"
        " /usr/share/doc/qwend/configuration.md"
    )
    text = "\n".join(out) + "\n"
    return re.sub(r"(\.PP\n)+", ".PP\n", text).replace(".PP\n.SH", ".SH").replace(".PP\n.SS", ".SS")


def main(argv: list[str] | None = None) -> int:
    """Write one COMMAND.1 per page into --out, and qwend.toml.5 into --out5."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--version", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--out5", type=Path, help="directory of section 5 (default: man5 beside --out)")
    ap.add_argument("--config-doc", type=Path, default=CONFIG_DOC)
    args = ap.parse_args(argv)
    stamp = os.environ.get("SOURCE_DATE_EPOCH")
    when = dt.datetime.fromtimestamp(int(stamp), dt.UTC) if stamp else dt.datetime.now(dt.UTC)
    args.out.mkdir(parents=True, exist_ok=True)
    for page in PAGES:
        text = render(page, args.version, when.strftime("%Y-%m-%d"))
        (args.out / f"{page.command}.1").write_text(text, encoding="utf-8")
    out5 = args.out5 or args.out.parent / "man5"
    out5.mkdir(parents=True, exist_ok=True)
    doc = args.config_doc.read_text(encoding="utf-8")
    date = when.strftime("%Y-%m-%d")
    (out5 / "qwend.toml.5").write_text(config_page(doc, args.version, date), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
