#!/usr/bin/env bash
# The bash completion (doc/natter.bash-completion) in a non-interactive
# bash, driven the way readline drives it (COMP_WORDS split at ':' as with
# the default COMP_WORDBREAKS):
# - "natter -<TAB>" offers exactly the flags `natter -h` lists;
# - "-config <TAB>" and "-identity <TAB>" complete file names;
# - a spec completes the peer names of the config file's forward lines,
#   from -config FILE, and only those;
# - nothing is offered inside a remote command.
#
# Environment: NATTER (the built binary; ctest sets it), NATTER_SOURCE_DIR.
here=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
# shellcheck source=lib.sh
. "$here/lib.sh"

: "${NATTER:?set NATTER to the natter binary (ctest does this)}"
src=$(realpath "${NATTER_SOURCE_DIR:-$here/../..}")
bindir=$(dirname "$(realpath "$NATTER")")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/natter-completion.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/natter.conf" <<'CONF'
name = bob
forward = 8022:alice:22
  forward = :carol: sh -c 'cat > f'
forward = 9000:alice:10.0.0.1:80
# forward = 1:mallory:2
allow = dave:22
CONF
touch "$tmp/key-one" "$tmp/key-two"

# complete LINE: what the completion offers at the end of LINE, sorted, one
# a line. The installed name "natter" must be on PATH: the completion runs
# `natter -h` as the command line names it.
complete_line() {
  PATH=$bindir:$PATH COMPLETION=$src/doc/natter.bash-completion LINE=$1 \
    bash --norc --noprofile -c '
      set -u
      . "$COMPLETION"
      [[ $COMP_WORDBREAKS == *:* ]] || exit 3 # as in readline: split at colons
      COMP_LINE=$LINE
      COMP_POINT=${#LINE}
      read -r -a COMP_WORDS <<<"${LINE//:/ : }"
      [[ $LINE == *" " ]] && COMP_WORDS+=("")
      COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
      spec=$(complete -p natter) || exit 1
      fn=${spec#*-F }; fn=${fn%% *}
      "$fn" natter "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
      printf "%s\n" "${COMPREPLY[@]}"' | sed '/^$/d' | sort -u
}

expect() {
  local line=$1 want got
  want=$(printf '%s\n' "${@:2}" | sed '/^$/d' | sort -u)
  got=$(complete_line "$line")
  [[ $got == "$want" ]] ||
    fail "completing '$line': got [$(echo $got)], expected [$(echo $want)]"
}

flags=$(help_flags "$NATTER")
[[ -n $flags ]] || fail "no flags in 'natter -h'"
got=$(complete_line "natter -")
same_set flags "'natter -h'" "$flags" "the completion of 'natter -'" "$got" ||
  exit 1
say "natter -<TAB>: all $(wc -l <<<"$flags") flags of 'natter -h'"

expect "natter -liste" -listen
expect "natter -allow" -allow -allow-command -allow-peer -allow-udp
expect "natter -config $tmp/key-" "$tmp/key-one" "$tmp/key-two"
expect "natter -name bob -identity $tmp/key-o" "$tmp/key-one"
expect "natter -name " # a name: nothing to offer
# Specs: bash replaces only the text after the last ':'.
expect "natter -config $tmp/natter.conf 8080:" alice: carol:
expect "natter -config $tmp/natter.conf 8080:al" alice:
expect "natter -config $tmp/natter.conf -name x :" alice: carol:
expect "natter -config $tmp/nonexistent 8080:"
expect "natter -config $tmp/natter.conf 8080:alice: ls -"
say "values, specs and peers from $tmp/natter.conf complete as expected"
say "completion: all passed"
