# bash completion for qwenctl                                   -*- shell-script -*-
# Install: qwenctl completion bash > /etc/bash_completion.d/qwenctl
# (the Debian package puts it in /usr/share/bash-completion/completions/qwenctl).

_qwenctl_names() {
    # Lane names (or roles) from the running daemon; silent when it is unreachable.
    local what=$1
    qwenctl ${_qwenctl_socket:+--socket "$_qwenctl_socket"} lanes --json 2>/dev/null |
        python3 -c '
import json, sys
data = json.load(sys.stdin)
key = sys.argv[1]
print("\n".join(sorted({lane[key] for lane in data["lanes"]})))' "$what" 2>/dev/null
}

_qwenctl() {
    local cur prev words cword
    _init_completion || return

    local commands="status lanes npus promote rollback start stop restart drain reset logs reload events check-config completion bench verify"
    local common="--json --socket --help"
    local _qwenctl_socket="" command="" i
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            --socket) _qwenctl_socket=${words[i + 1]} ;;
            -*) ;;
            *) if [[ -z $command && ${words[i - 1]} != --socket ]]; then command=${words[i]}; fi ;;
        esac
    done

    case $prev in
        --socket) _filedir sock; return ;;
        --parse) _filedir; return ;;
        --timeout | --stats | -n | --lines) return ;;
    esac

    if [[ -z $command ]]; then
        COMPREPLY=($(compgen -W "$commands $common --version" -- "$cur"))
        return
    fi

    case $command in
        promote | start | stop | restart | drain | reset)
            if [[ $prev == "$command" ]]; then
                COMPREPLY=($(compgen -W "lane" -- "$cur"))
            elif [[ $prev == lane ]]; then
                COMPREPLY=($(compgen -W "$(_qwenctl_names name)" -- "$cur"))
            elif [[ $command == promote ]]; then
                COMPREPLY=($(compgen -W "--wait --timeout $common" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "$common" -- "$cur"))
            fi
            ;;
        rollback)
            if [[ $prev == rollback ]]; then
                COMPREPLY=($(compgen -W "role" -- "$cur"))
            elif [[ $prev == role ]]; then
                COMPREPLY=($(compgen -W "$(_qwenctl_names role)" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "--wait --timeout $common" -- "$cur"))
            fi
            ;;
        logs)
            if [[ $prev == logs ]]; then
                COMPREPLY=($(compgen -W "$(_qwenctl_names name)" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "-f --follow -n --lines --previous $common" -- "$cur"))
            fi
            ;;
        npus) COMPREPLY=($(compgen -W "--parse $common" -- "$cur")) ;;
        events) COMPREPLY=($(compgen -W "--stats $common" -- "$cur")) ;;
        check-config) _filedir toml ;;
        completion) COMPREPLY=($(compgen -W "bash" -- "$cur")) ;;
        *) COMPREPLY=($(compgen -W "$common" -- "$cur")) ;;
    esac
} &&
    complete -F _qwenctl qwenctl

# ex: filetype=sh
