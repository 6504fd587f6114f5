#!/usr/bin/env bash
# Remote commands: `:bob: CMD ARGS...` pipes natter's stdin/stdout into CMD
# run on bob (bob's -allow-command must list it) and exits with CMD's status;
# `PORT:bob: CMD ARGS...` runs CMD on bob for each TCP connection to
# 127.0.0.1:PORT. Checked:
#   - cat echoes stdin; 1 MiB round trip through cat byte for byte
#   - exit statuses: false -> 1, sh -c 'exit 3' -> 3, killed by signal N ->
#     128+N (kill -9 -> 137, kill -TERM -> 143)
#   - the command's stdout goes to alice's stdout, its stderr to alice's
#     stderr, and natter adds nothing to either
#   - arguments arrive as given: no shell splits or expands them
#   - 1 MiB into `sh -c 'cat > FILE'` on bob arrives whole (SHA-256)
#   - the session ends when the command has exited, even while stdin is
#     still open (as with ssh)
#   - PORT:bob: cat: two sequential and two concurrent connections each run
#     their own cat and echo correctly
#   - refusals, non-zero with a message: commands not allowed at all (carol
#     has no -allow-command), a program not in the list (ls), an allowed
#     program that does not exist ("no such program")
#   - killing alice mid-command kills the command on bob: every process the
#     command started (sh -c 'sleep 300' and its sleep) is gone within 5 s
#   - at the end bob has no children left, zombies included
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

# ---- helpers -----------------------------------------------------------

ALICE=() # the command line of a session client; set once the broker runs

# session TAG INPUT ARG...: run `natter ... ARG...` with stdin from the file
# INPUT, with a deadline; stdout to $WORK/TAG.out, stderr to $WORK/TAG.err,
# the exit status in $STATUS (124: timed out), the time taken in ELAPSED_MS.
# The deadline is SESSION_TIMEOUT seconds (default 30).
session() {
  local tag=$1 input=$2 t0
  shift 2
  STATUS=0
  t0=$(_now_ms)
  timeout --kill-after=5 "${SESSION_TIMEOUT:-30}" "${ALICE[@]}" "$@" \
    <"$input" >"$WORK/$tag.out" 2>"$WORK/$tag.err" || STATUS=$?
  ELAPSED_MS=$(($(_now_ms) - t0))
}

describe() {
  echo "status $STATUS; stdout: $(head -c 300 "$WORK/$1.out" | cat -v);" \
    "stderr: $(head -c 1000 "$WORK/$1.err" | cat -v)"
}

# expect_status TAG N: session TAG exited by itself with status N.
expect_status() {
  ((ELAPSED_MS < ${SESSION_TIMEOUT:-30} * 1000)) ||
    fail "$1: natter did not exit within ${SESSION_TIMEOUT:-30} s; $(describe "$1")"
  ((STATUS == $2)) || fail "$1: exit status $STATUS, want $2; $(describe "$1")"
}

# expect_file TAG out|err TEXT: session TAG's stdout or stderr is exactly
# TEXT (plus a newline when TEXT is not empty).
expect_file() {
  local want=$3
  [[ -n $want ]] && want+=$'\n'
  [[ $(cat "$WORK/$1.$2"; echo .) == "$want." ]] ||
    fail "$1: std$2 is not '$3'; $(describe "$1")"
}

# expect_refused TAG REGEX: session TAG exited non-zero by itself, wrote
# nothing on stdout, and its stderr has a natter line matching REGEX.
expect_refused() {
  ((ELAPSED_MS < 30000)) ||
    fail "$1: natter did not exit within 30 s; $(describe "$1")"
  ((STATUS != 0)) || fail "$1: exit status 0, want a failure; $(describe "$1")"
  [[ ! -s $WORK/$1.out ]] || fail "$1: wrote on stdout; $(describe "$1")"
  grep -Eq -- "^${LOG_TS}natter: .*($2)" "$WORK/$1.err" ||
    fail "$1: stderr has no 'natter: ' line matching /$2/; $(describe "$1")"
}

# descendants PID: every process below PID (children, grandchildren, ...).
descendants() {
  ps -e -o pid=,ppid= | awk -v root="$1" '
    { parent[$1] = $2 }
    END {
      below[root] = 1
      do {
        grew = 0
        for (p in parent)
          if (!(p in below) && (parent[p] in below)) { below[p] = 1; grew = 1 }
      } while (grew)
      for (p in below) if (p != root) print p
    }'
}

# cmdline PID: the process's argv joined by spaces (nothing if gone).
cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }

# ---- set-up --------------------------------------------------------------

start_broker broker
# Command rules are whole command lines or fixed prefixes ('sh -c *': sh -c
# with any script, which these tests need; never on a real host).
start_client bob -listen -allow-peer alice -allow-peer dave \
  -allow-command cat -allow-command 'sh -c *' \
  -allow-command false -allow-command nonexistent-prog-xyz \
  -allow-command rsync -allow-command 'echo fixed words'
# accepts forwards, but no commands
start_client carol -listen -allow-peer alice -allow-peer dave
ALICE=("$NATTER" -name alice -broker "$BROKER" -identity "$WORK/alice.key")
bob_pid=$(pid bob)

head -c 1048576 /dev/urandom >"$WORK/random.bin"
want_sum=$(sha256_of "$WORK/random.bin")
printf 'hello through cat\n' >"$WORK/hello.txt"

# ---- stdin/stdout through a command -----------------------------------------

session cat "$WORK/hello.txt" :bob: cat
expect_status cat 0
expect_file cat out 'hello through cat'
expect_file cat err ''

session cat_bulk "$WORK/random.bin" :bob: cat
expect_status cat_bulk 0
[[ $(sha256_of "$WORK/cat_bulk.out") == "$want_sum" ]] ||
  fail "1 MiB through :bob: cat: $(stat -c %s "$WORK/cat_bulk.out") bytes back, SHA-256 differs"
expect_file cat_bulk err ''

session false /dev/null :bob: false
expect_status false 1
expect_file false out ''

session exit3 /dev/null :bob: sh -c 'exit 3'
expect_status exit3 3

# shellcheck disable=SC2016 # $$ is for the remote sh
session kill9 /dev/null :bob: sh -c 'kill -9 $$'
expect_status kill9 137
# shellcheck disable=SC2016
session killterm /dev/null :bob: sh -c 'kill -TERM $$'
expect_status killterm 143

session streams /dev/null :bob: sh -c 'echo err >&2; echo out'
expect_status streams 0
expect_file streams out out
expect_file streams err err

# Arguments arrive as given: no shell on either side splits or expands them.
# shellcheck disable=SC2016 # nothing may expand these
session args /dev/null :bob: sh -c 'printf "[%s]" "$@"; echo' zero \
  'two words' '$HOME' '*' ''
expect_status args 0
# shellcheck disable=SC2016
expect_file args out '[two words][$HOME][*][]'

# 1 MiB into a file on bob's side.
session upload "$WORK/random.bin" :bob: sh -c "cat > '$WORK/uploaded.bin'"
expect_status upload 0
[[ -f $WORK/uploaded.bin ]] || fail "upload: $WORK/uploaded.bin was not created"
[[ $(sha256_of "$WORK/uploaded.bin") == "$want_sum" ]] ||
  fail "upload: $(stat -c %s "$WORK/uploaded.bin") bytes arrived, SHA-256 differs"

# ---- refusals ------------------------------------------------------------------

session not_allowed "$WORK/hello.txt" :carol: cat
expect_refused not_allowed 'not allowed'
session not_listed "$WORK/hello.txt" :bob: ls
expect_refused not_listed 'not allowed'
# A rule is a whole command line: arguments cannot widen it.
session widened "$WORK/hello.txt" :bob: cat /etc/hostname
expect_refused widened 'not allowed'
session sh_without_c "$WORK/hello.txt" :bob: sh -x -c 'echo hi'
expect_refused sh_without_c 'not allowed'
session fixed /dev/null :bob: echo fixed words
expect_status fixed 0
expect_file fixed out 'fixed words'
session fixed_more /dev/null :bob: echo fixed words and more
expect_refused fixed_more 'not allowed'
# The rsync -e trick: "-allow-command rsync" no longer lets a peer choose
# rsync's arguments, so its -e cannot run a command on bob.
session rsync_e /dev/null :bob: rsync -e "sh -c 'id > $WORK/pwned'" x:/y \
  "$WORK/dst"
expect_refused rsync_e 'not allowed'
[[ ! -e $WORK/pwned ]] || fail "rsync -e ran a command on bob: $(cat "$WORK/pwned")"
session no_program "$WORK/hello.txt" :bob: nonexistent-prog-xyz
expect_refused no_program 'nonexistent-prog-xyz.*(no such program|not found|No such file)'
running carol || fail "carol exited after refusing a command"

# ---- PORT:bob: cat, one cat per connection ----------------------------------

cat_port=$(free_port)
start dave "$NATTER" -name dave -broker "$BROKER" -identity "$WORK/dave.key" \
  "$cat_port:bob:" cat
wait_log dave "natter: forwarding 127\.0\.0\.1:$cat_port -> bob: cat"
runs_before=$(grep -c 'runs "cat"' "$WORK/bob.log") || true
for msg in "first connection" "second connection"; do
  reply=$(printf '%s\n' "$msg" | timeout 20 socat -t 10 - "TCP:127.0.0.1:$cat_port") ||
    fail "$cat_port:bob: cat: no reply to '$msg'"
  [[ $reply == "$msg" ]] ||
    fail "$cat_port:bob: cat: sent '$msg', got back '$reply'"
done
expect_exit_zero "$TCPCHECK" echo-check "$cat_port" --conns 2 --bytes 256K \
  --timeout 60
assert_output_contains '^2 ok$'
# bob may log the last start a moment after the data flowed.
deadline=$(($(_now_ms) + 5000))
while runs=$(($(grep -c 'runs "cat"' "$WORK/bob.log") - runs_before)); ((runs < 4)); do
  (($(_now_ms) < deadline)) ||
    fail "4 connections to $cat_port:bob: cat ran cat $runs times on bob, want 4"
  sleep 0.05
done
((runs == 4)) || fail "4 connections ran cat $runs times on bob, want 4"
stop_expect_clean dave
assert_log_lacks dave 'error|refused|denied|failed'

# ---- the command's end is the session's end --------------------------------

# The command's exit ends the session even though stdin stays open (a FIFO
# this shell holds open for writing), as `ssh host cmd` does.
mkfifo "$WORK/open_stdin"
exec {hold}<>"$WORK/open_stdin"
SESSION_TIMEOUT=10
session exit_early "$WORK/open_stdin" :bob: sh -c 'echo early; exit 5'
exec {hold}>&-
expect_status exit_early 5
SESSION_TIMEOUT=30
expect_file exit_early out early
((ELAPSED_MS < 5000)) ||
  fail "exit_early: the command exited at once but natter took $ELAPSED_MS ms (it waited for stdin's EOF)"

# ---- killing alice kills the command on bob ----------------------------------

start sleeper "${ALICE[@]}" :bob: sh -c 'sleep 300'
deadline=$(($(_now_ms) + 15000))
sleep_pid=""
while [[ -z $sleep_pid ]]; do
  for p in $(descendants "$bob_pid"); do
    [[ $(cmdline "$p") == "sleep 300 " ]] && sleep_pid=$p
  done
  [[ -n $sleep_pid ]] && break
  running sleeper || fail "sleeper exited before 'sleep 300' started on bob"
  (($(_now_ms) < deadline)) || fail "no 'sleep 300' under bob after 15 s"
  sleep 0.05
done
declare -A victims=() # PID -> command line: sh and its sleep
for p in $(descendants "$bob_pid"); do
  victims[$p]=$(cmdline "$p")
done
log "bob ($bob_pid) runs: $(for p in "${!victims[@]}"; do printf '%s[%s] ' "$p" "${victims[$p]}"; done)"
stop sleeper TERM
deadline=$(($(_now_ms) + 5000))
while :; do
  left=()
  for p in "${!victims[@]}"; do
    _alive "$p" && [[ $(cmdline "$p") == "${victims[$p]}" ]] && left+=("$p")
  done
  ((${#left[@]} == 0)) && break
  if (($(_now_ms) > deadline)); then
    report=$(ps -o pid=,ppid=,args= -p "$(IFS=,; echo "${left[*]}")" | tr -s '\n ' '; ')
    kill -KILL "${left[@]}" 2>/dev/null # this test's leftovers, by PID
    fail "5 s after alice was killed, the command's processes still run (pid ppid args): $report"
  fi
  sleep 0.05
done

# ---- bob keeps serving, and has no children left ----------------------------

session final "$WORK/hello.txt" :bob: cat
expect_status final 0
expect_file final out 'hello through cat'
deadline=$(($(_now_ms) + 5000))
while children=$(ps -o pid=,stat=,args= --ppid "$bob_pid") && [[ -n $children ]]; do
  (($(_now_ms) < deadline)) ||
    fail "bob still has children 5 s after every command ended (Z: zombie): $children"
  sleep 0.05
done
running bob || fail "bob exited"
stop_expect_clean carol
stop_expect_clean bob
stop_expect_clean broker
