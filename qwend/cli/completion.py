"""Shell completion for qwenctl, generated from its argparse parser (bash, zsh, fish).

``spec(parser)`` reads the commands, options and positionals off the parser, so a new
command or option is completed without anyone editing a script; ``render(shell, spec)``
writes the script. Lane, role and peer names are live: the scripts ask the running daemon
through ``qwenctl completion --names lanes|roles|hosts`` (silent and quick when it is
down); ``--host`` completes the daemon's peers.
Pure: argparse only.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PROG = "qwenctl"
FILES = "files"
LANES = "lanes"
ROLES = "roles"
HOSTS = "hosts"
NAME_KINDS = (LANES, ROLES, HOSTS)
"""What ``qwenctl completion --names KIND`` lists."""


@dataclass(frozen=True)
class Option:
    """One option of a command."""

    flags: tuple[str, ...]
    help: str
    takes_value: bool
    values: tuple[str, ...] = ()
    """Fixed choices of the value."""
    complete: str = ""
    """``files`` when the value is a path; else nothing to complete but ``values``."""


@dataclass(frozen=True)
class Positional:
    """One positional argument: fixed choices, a live name, a file or free text."""

    name: str
    values: tuple[str, ...] = ()
    complete: str = ""
    """``files``, ``lanes``, ``roles`` or empty."""


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    options: tuple[Option, ...]
    positionals: tuple[Positional, ...]


@dataclass(frozen=True)
class Spec:
    """What there is to complete."""

    top_options: tuple[Option, ...]
    commands: tuple[Command, ...]

    @property
    def value_flags(self) -> tuple[str, ...]:
        """Every flag that consumes the next word, over all commands (sorted)."""
        flags = {
            flag
            for option in (*self.top_options, *(o for c in self.commands for o in c.options))
            if option.takes_value
            for flag in option.flags
        }
        return tuple(sorted(flags))


PATH_OPTIONS = frozenset({"--socket", "--parse"})
"""Options whose value is a file."""
HOST_OPTION = "--host"
"""The peer to act on (``[[peers]]`` names, live); ``init --host`` names a preset's host."""


def _option(action: argparse.Action, command: str = "") -> Option | None:
    if not action.option_strings or action.help == argparse.SUPPRESS:
        return None
    takes_value = action.nargs != 0
    complete = ""
    if any(flag in PATH_OPTIONS for flag in action.option_strings):
        complete = FILES
    elif HOST_OPTION in action.option_strings and command != "init":
        complete = HOSTS
    return Option(
        flags=tuple(action.option_strings),
        help=_first_line(action.help or ""),
        takes_value=takes_value,
        values=tuple(str(c) for c in action.choices or ()),
        complete=complete,
    )


def _positional(action: argparse.Action) -> Positional:
    metavar = str(action.metavar or action.dest)
    if action.choices:
        return Positional(metavar, values=tuple(str(c) for c in action.choices))
    kind = {"NAME": LANES, "ROLE": ROLES, "path": FILES}.get(metavar, "")
    return Positional(metavar, complete=kind)


def _first_line(text: str) -> str:
    return " ".join(text.split()).replace("%%", "%")


def spec(parser: argparse.ArgumentParser) -> Spec:
    """The completion spec of ``parser`` (qwenctl's ``build_parser()``)."""
    top = tuple(o for a in parser._actions if (o := _option(a)) is not None)
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: str(choice.help or "") for choice in subs._choices_actions}
    commands = []
    for name, sub in subs.choices.items():
        options = tuple(o for a in sub._actions if (o := _option(a, name)) is not None)
        positionals = tuple(
            _positional(a) for a in sub._actions if not a.option_strings and a.nargs != 0
        )
        commands.append(Command(name, _first_line(helps.get(name, "")), options, positionals))
    return Spec(top, tuple(commands))


def render(shell: str, completion: Spec) -> str:
    """The completion script for ``shell`` (bash, zsh or fish)."""
    return {"bash": bash, "zsh": zsh, "fish": fish}[shell](completion)


# --- bash -------------------------------------------------------------------------------


def _words(items: Iterable[str]) -> str:
    return " ".join(items)


def bash(completion: Spec) -> str:
    """A bash script; needs nothing but bash (no bash-completion helpers)."""
    commands = _words(c.name for c in completion.commands)
    top = _words(f for o in completion.top_options for f in o.flags)
    value_flags = "|".join(completion.value_flags)
    option_cases = []
    positional_cases = []
    for command in completion.commands:
        flags = _words(f for o in command.options for f in o.flags)
        option_cases.append(f'        {command.name}) opts="{flags}" ;;')
        for index, positional in enumerate(command.positionals):
            positional_cases.append(
                f"        {command.name}:{index}) {_bash_positional(positional)} ;;"
            )
    file_flags = "|".join(sorted(PATH_OPTIONS))
    return f"""\
# bash completion for {PROG}, generated from its parser: {PROG} completion bash
# Install: {PROG} completion bash > /etc/bash_completion.d/{PROG}
# (the Debian package puts it in /usr/share/bash-completion/completions/{PROG}).

_{PROG}_names() {{
    # Lane, role or peer host names from the running daemon; silent when it is unreachable.
    {PROG} ${{_{PROG}_socket:+--socket "$_{PROG}_socket"}} completion --names "$1" 2>/dev/null
}}

_{PROG}() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD - 1]}}
    local _{PROG}_socket="" command="" npos=0 i word opts=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${{COMP_WORDS[i]}}
        case $word in
            {value_flags})
                [[ $word == --socket ]] && _{PROG}_socket=${{COMP_WORDS[i + 1]}}
                ((i++)) ;;
            -*) ;;
            *) if [[ -z $command ]]; then command=$word; else ((npos++)); fi ;;
        esac
    done
    COMPREPLY=()
    case $prev in
        {file_flags}) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        {HOST_OPTION})
            [[ $command != init ]] && COMPREPLY=($(compgen -W "$(_{PROG}_names {HOSTS})" -- "$cur"))
            return ;;
        {value_flags}) return ;;
    esac
    if [[ -z $command ]]; then
        COMPREPLY=($(compgen -W "{commands} {top}" -- "$cur"))
        return
    fi
    if [[ $cur == -* ]]; then
        case $command in
{chr(10).join(option_cases)}
        esac
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return
    fi
    case $command:$npos in
{chr(10).join(positional_cases)}
    esac
}}
complete -o filenames -F _{PROG} {PROG}
"""


def _bash_positional(positional: Positional) -> str:
    if positional.values:
        return f'COMPREPLY=($(compgen -W "{_words(positional.values)}" -- "$cur"))'
    if positional.complete in NAME_KINDS:
        return f'COMPREPLY=($(compgen -W "$(_{PROG}_names {positional.complete})" -- "$cur"))'
    if positional.complete == FILES:
        return 'COMPREPLY=($(compgen -f -- "$cur"))'
    return ":"


# --- zsh --------------------------------------------------------------------------------


def _zsh_text(text: str) -> str:
    """Text inside a single-quoted _arguments spec: no brackets, colons escaped."""
    return text.replace("'", "'\\''").replace("[", "(").replace("]", ")").replace(":", "\\:")


def _zsh_action(values: Sequence[str], complete: str) -> str:
    if values:
        return f"({' '.join(values)})"
    if complete in NAME_KINDS:
        return f"_{PROG}_{complete}"
    if complete == FILES:
        return "_files"
    return " "


def _zsh_option(option: Option) -> str:
    help_text = _zsh_text(option.help)
    value = ""
    if option.takes_value:
        value = f":{option.flags[-1].lstrip('-')}:{_zsh_action(option.values, option.complete)}"
    if len(option.flags) == 1:
        return f"'{option.flags[0]}[{help_text}]{value}'"
    exclusive = " ".join(option.flags)
    return f"'({exclusive})'{{{','.join(option.flags)}}}'[{help_text}]{value}'"


def zsh(completion: Spec) -> str:
    """A zsh script for ``fpath`` (``_qwenctl``) using ``_arguments``."""
    described = "\n".join(f"        '{c.name}:{_zsh_text(c.help)}'" for c in completion.commands)
    top = " \\\n        ".join(_zsh_option(o) for o in completion.top_options)
    cases = []
    for command in completion.commands:
        specs = [_zsh_option(o) for o in command.options]
        specs += [
            f"'{i + 1}:{p.name}:{_zsh_action(p.values, p.complete)}'"
            for i, p in enumerate(command.positionals)
        ]
        joined = " \\\n                    ".join(specs)
        cases.append(f"                {command.name}) _arguments {joined} ;;")
    name_functions = "\n".join(
        f"_{PROG}_{kind}() {{\n"
        f"    local -a names\n"
        f'    names=(${{(f)"$({PROG} completion --names {kind} 2>/dev/null)"}})\n'
        f"    compadd -a names\n"
        f"}}\n"
        for kind in NAME_KINDS
    )
    return f"""\
#compdef {PROG}
# zsh completion for {PROG}, generated from its parser: {PROG} completion zsh
# Install: {PROG} completion zsh > "${{fpath[1]}}/_{PROG}"
# (the Debian package puts it in /usr/share/zsh/vendor-completions/_{PROG}).

{name_functions}
_{PROG}() {{
    local curcontext="$curcontext" state line
    local -a commands
    commands=(
{described}
    )
    _arguments -C \\
        {top} \\
        '1:command:->command' \\
        '*::argument:->argument'
    case $state in
        command) _describe -t commands '{PROG} command' commands ;;
        argument)
            case $line[1] in
{chr(10).join(cases)}
            esac
            ;;
    esac
}}

_{PROG} "$@"
"""


# --- fish -------------------------------------------------------------------------------


def _fish_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _fish_option(condition: str, option: Option) -> str:
    parts = [f"complete -c {PROG} -n '{condition}'"]
    for flag in option.flags:
        parts.append(f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}")
    if option.takes_value:
        parts.append("-r")
        if option.values:
            parts.append(f"-a '{' '.join(option.values)}'")
        elif option.complete == FILES:
            parts.append("-F")
        elif option.complete in NAME_KINDS:
            parts.append(f"-a '(__{PROG}_names {option.complete})'")
    parts.append(f"-d '{_fish_text(option.help)}'")
    return " ".join(parts)


def fish(completion: Spec) -> str:
    """A fish script (``complete`` lines with a position-aware condition)."""
    value_flags = " ".join(completion.value_flags)
    lines = [
        f"# fish completion for {PROG}, generated from its parser: {PROG} completion fish",
        f"# Install: {PROG} completion fish > ~/.config/fish/completions/{PROG}.fish",
        f"# (the Debian package puts it in /usr/share/fish/vendor_completions.d/{PROG}.fish).",
        "",
        f"function __{PROG}_at --description 'the command line is at COMMAND, positional N'",
        "    set -l words (commandline -opc)",
        "    set -e words[1]",
        "    set -l command ''",
        "    set -l n 0",
        "    set -l skip 0",
        "    for word in $words",
        "        if test $skip = 1",
        "            set skip 0",
        "            continue",
        "        end",
        "        switch $word",
        f"            case {value_flags}",
        "                set skip 1",
        "            case '-*'",
        "            case '*'",
        '                if test -z "$command"',
        "                    set command $word",
        "                else",
        "                    set n (math $n + 1)",
        "                end",
        "        end",
        "    end",
        '    test "$command" = "$argv[1]"; and test "$n" = "$argv[2]"',
        "end",
        "",
        f"function __{PROG}_in --description 'the command line has command COMMAND'",
        "    set -l words (commandline -opc)",
        "    contains -- $argv[1] $words[2..-1]",
        "end",
        "",
        f"function __{PROG}_names --description 'lane, role or host names from the daemon'",
        f"    {PROG} completion --names $argv[1] 2>/dev/null",
        "end",
        "",
        f"complete -c {PROG} -f",
    ]
    for option in completion.top_options:
        lines.append(_fish_option(f"__{PROG}_at '' 0", option))
    for command in completion.commands:
        lines.append(
            f"complete -c {PROG} -n \"__{PROG}_at '' 0\" -a {command.name}"
            f" -d '{_fish_text(command.help)}'"
        )
    for command in completion.commands:
        for option in command.options:
            lines.append(_fish_option(f"__{PROG}_in {command.name}", option))
        for index, positional in enumerate(command.positionals):
            condition = f"__{PROG}_at {command.name} {index}"
            if positional.values:
                lines.append(
                    f"complete -c {PROG} -n '{condition}' -a '{' '.join(positional.values)}'"
                )
            elif positional.complete in NAME_KINDS:
                lines.append(
                    f"complete -c {PROG} -n '{condition}'"
                    f" -a '(__{PROG}_names {positional.complete})'"
                )
            elif positional.complete == FILES:
                lines.append(f"complete -c {PROG} -n '{condition}' -F")
    return "\n".join(lines) + "\n"
