# bash completion for lorafit — installed as $(datadir)/bash-completion/completions/lorafit.
#
# Commands and their flags are listed here (tests/test_install.c checks them against every
# `lorafit COMMAND --help`); the config keys after --set, and the values each takes, come
# from the installed binary itself (`lorafit --config-keys`, the config schema), so a key
# added to lorafit completes without touching this file.

_lorafit_flags() {
    case "$1" in
    train) echo "--set --resume --help" ;;
    export) echo "--out --format --dtype --model --force --help" ;;
    merge) echo "--model --adapter --out --format --dtype --max-shard-size --force --help" ;;
    plot) echo "--out --help" ;;
    eval) echo "--adapter --precision --set --help" ;;
    prepare) echo "--out --set --help" ;;
    tokenize) echo "--no-special-tokens --decode --skip-special-tokens --help" ;;
    inspect) echo "--help" ;;
    generate) echo "--model --adapter --prompt --prompt-ids --chat --chat-template-kwargs -n --temperature --seed --precision --quantize --help" ;;
    esac
}

# The values of a flag that takes one of a few words; empty when it takes a path or a number.
_lorafit_flag_values() {
    case "$1:$2" in
    export:--format) echo "peft gguf" ;;
    merge:--format) echo "hf gguf" ;;
    export:--dtype) echo "f32 bf16 f16" ;;
    merge:--dtype) echo "f32 f16 bf16 q8_0" ;;
    *:--precision) echo "auto f32 bf16" ;;
    generate:--quantize) echo "none q8_0 q4_0 q4_k q5_k q6_k" ;;
    esac
}

_lorafit() {
    local cur prev cmd i
    COMPREPLY=()
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "train export merge plot eval prepare tokenize inspect generate --version --help --config-keys" -- "$cur"))
        return
    fi
    cmd=${COMP_WORDS[1]}
    local values
    values=$(_lorafit_flag_values "$cmd" "$prev")
    if [ -n "$values" ]; then
        COMPREPLY=($(compgen -W "$values" -- "$cur"))
        return
    fi
    case "$prev" in
    --set)
        local keys
        if [[ "$cur" == *=* ]]; then
            # KEY=VALUE: the values the key takes, when the schema lists them
            local key=${cur%%=*}
            keys=$("${COMP_WORDS[0]}" --config-keys 2>/dev/null |
                awk -F'\t' -v k="$key" '$1 == k && $3 != "" { n = split($3, v, "|"); for (i = 1; i <= n; i++) print k "=" v[i] }')
            COMPREPLY=($(compgen -W "$keys" -- "$cur"))
        else
            keys=$("${COMP_WORDS[0]}" --config-keys 2>/dev/null | cut -f1 | sed 's/$/=/')
            COMPREPLY=($(compgen -W "$keys" -- "$cur"))
            compopt -o nospace 2>/dev/null || true # (outside a completion: no-op)
        fi
        return
        ;;
    --model) # a model directory or a GGUF base
        COMPREPLY=($(compgen -f -X '!*.gguf' -- "$cur") $(compgen -d -- "$cur"))
        return
        ;;
    --adapter | --resume)
        COMPREPLY=($(compgen -d -- "$cur"))
        return
        ;;
    --out)
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    -n | --temperature | --seed | --prompt | --prompt-ids | --max-shard-size | --chat-template-kwargs)
        return
        ;;
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$(_lorafit_flags "$cmd")" -- "$cur"))
        return
    fi
    # the positional argument: a config file, a directory, or a safetensors file
    case "$cmd" in
    train | eval | prepare) COMPREPLY=($(compgen -f -X '!*.@(yaml|yml)' -- "$cur") $(compgen -d -- "$cur")) ;;
    export | plot | tokenize) COMPREPLY=($(compgen -d -- "$cur")) ;;
    *) COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
}
complete -F _lorafit lorafit
