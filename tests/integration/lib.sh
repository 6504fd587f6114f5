# shellcheck shell=bash
# Shared helpers for the integration tests (tests/integration/test_*.sh).
#
# ctest runs each test as `bash test_X.sh` with NATTER=/path/to/natter; the
# script sources this file first:
#
#   # shellcheck source-path=SCRIPTDIR source=lib.sh
#   . "$(dirname "$0")/lib.sh"
#   echo_port=$(free_port)
#   start_echo_server echo "$echo_port" # tcpcheck echo-server
#   start_broker                        # sets BROKER=127.0.0.1:PORT
#   start_client bob -listen
#   port=$(free_port)
#   start_client alice "$port:bob:$echo_port"
#   expect_exit_zero "$TCPCHECK" echo-check "$port" --conns 10 --bytes 1M
#
# Every process is started with `start`, logged to $WORK/NAME.log and stopped
# by its PID when the script exits, whatever the exit path. Every wait has a
# deadline. $WORK is a fresh temporary directory, removed on exit (kept if
# KEEP_WORK is set); keys live there, and HOME points into it, so a test
# never touches the user's home.

set -euo pipefail

: "${NATTER:?set NATTER to the natter binary (ctest does this)}"
NATTER=$(realpath "$NATTER")
TCPCHECK=${TCPCHECK:-$(dirname "$NATTER")/tests/tools/tcpcheck}
[[ -x $NATTER ]] || {
  echo "lib.sh: $NATTER is not an executable" >&2
  exit 1
}
[[ -x $TCPCHECK ]] || {
  echo "lib.sh: $TCPCHECK is not an executable (build the tcpcheck target)" >&2
  exit 1
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/natter-test.XXXXXX")
TEST_NAME=$(basename "${0%.sh}")
mkdir -p "$WORK/home/.config"
export HOME=$WORK/home XDG_CONFIG_HOME=$WORK/home/.config

declare -A PIDS=()        # NAME -> PID of a process started by `start`
declare -A EXIT_STATUS=() # NAME -> exit status once stopped or reaped
declare -a STARTED=()     # NAMEs in start order
_LOGS_SHOWN=0

log() { printf '%s: %s\n' "$TEST_NAME" "$*" >&2; }

# natter stamps each log line with the time when stderr is not a terminal
# ("2024-05-01T12:00:00.123Z natter: ..."); a regex anchored at a line's
# start puts this before "natter: ".
LOG_TS='([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z )?'

_now_ms() {
  local t=${EPOCHREALTIME/./}
  echo $((t / 1000))
}

# _state PID: the process's state letter (R, S, T, Z, ...), or nothing.
_state() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  echo "${stat%% *}"
}

# _alive PID: true while the process exists and is not a zombie.
_alive() {
  local state
  state=$(_state "$1")
  [[ -n $state && $state != Z ]]
}

show_logs() {
  local name
  [[ $_LOGS_SHOWN == 1 ]] && return 0
  _LOGS_SHOWN=1
  for name in "${STARTED[@]}"; do
    [[ -f $WORK/$name.log ]] || continue
    echo "----- $name.log (last 200 lines) -----" >&2
    tail -n 200 "$WORK/$name.log" >&2
  done
  ((${#STARTED[@]} == 0)) || echo "----- end of logs -----" >&2
}

# fail MSG...: print the message and every started process's log, exit 1.
fail() {
  echo "FAIL: $TEST_NAME: $*" >&2
  show_logs
  exit 1
}

# free_port: print a random port in 20000-60999 that no TCP or UDP socket
# uses (per ss: listening, connected or closing, since a connection's local
# port blocks a bind too) and that this test has not handed out before. Used
# as port=$(free_port), i.e. in a subshell, so the ports handed out are kept
# in a file.
free_port() {
  local used port i
  used=$(ss -Htuan | awk '{ n = split($5, a, ":"); print a[n] }')
  touch "$WORK/ports.given"
  for ((i = 0; i < 200; i++)); do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 41000))
    grep -qx "$port" "$WORK/ports.given" && continue
    grep -qx "$port" <<<"$used" && continue
    echo "$port" >>"$WORK/ports.given"
    echo "$port"
    return 0
  done
  echo "$TEST_NAME: free_port: no free port found in 200 tries" >&2
  return 1
}

# start NAME CMD [ARG...]: run CMD in the background, stdin from /dev/null,
# stdout and stderr to $WORK/NAME.log; the PID goes in PIDS[NAME].
start() {
  local name=$1
  shift
  if [[ -n ${PIDS[$name]:-} ]] && _alive "${PIDS[$name]}"; then
    fail "start: $name is already running (pid ${PIDS[$name]})"
  fi
  [[ -f $WORK/$name.log ]] && mv "$WORK/$name.log" "$WORK/$name.log.prev"
  "$@" </dev/null >"$WORK/$name.log" 2>&1 &
  PIDS[$name]=$!
  unset "EXIT_STATUS[$name]"
  [[ " ${STARTED[*]} " == *" $name "* ]] || STARTED+=("$name")
}

# pid NAME: the PID recorded by start.
pid() { echo "${PIDS[$1]:?pid: $1 was never started}"; }

# running NAME: true while NAME's process is alive.
running() { _alive "${PIDS[$1]:?running: $1 was never started}"; }

# _reap NAME: collect the exit status of a process that has exited.
_reap() {
  local name=$1 rc=0
  [[ -n ${EXIT_STATUS[$name]:-} ]] && return 0
  wait "${PIDS[$name]}" 2>/dev/null || rc=$?
  EXIT_STATUS[$name]=$rc
}

# wait_log NAME REGEX [TIMEOUT_S=10]: wait until NAME's log matches the
# extended REGEX; fails the test if the deadline passes or NAME exits first.
wait_log() {
  local name=$1 regex=$2 timeout=${3:-10} deadline
  local logfile=$WORK/$name.log
  [[ -n ${PIDS[$name]:-} ]] || fail "wait_log: $name was never started"
  deadline=$(($(_now_ms) + timeout * 1000))
  while :; do
    grep -Eq -- "$regex" "$logfile" 2>/dev/null && return 0
    if ! running "$name"; then
      # One last look: the line may have been written just before exit.
      grep -Eq -- "$regex" "$logfile" 2>/dev/null && return 0
      _reap "$name"
      fail "$name exited (status ${EXIT_STATUS[$name]}) before logging /$regex/"
    fi
    (($(_now_ms) < deadline)) ||
      fail "$name did not log /$regex/ within ${timeout} s"
    sleep 0.05
  done
}

# established_to PORT: how many TCP connections to local PORT are
# established (counted at the server's end).
established_to() { ss -Htn state established "sport = :$1" | wc -l; }

# wait_established_to PORT N: wait until exactly N connections to local
# PORT are established; fails the test after 20 s.
wait_established_to() {
  local port=$1 want=$2 deadline=$(($(_now_ms) + 20000))
  until (($(established_to "$port") == want)); do
    (($(_now_ms) < deadline)) || fail "want $want connections to port" \
      "$port, have $(established_to "$port")"
    sleep 0.05
  done
}

# open_conns PORT N ARRAY: opens N TCP connections to 127.0.0.1:PORT that
# stay open, their fds (kept by this shell) appended to the array named
# ARRAY; close them with close_conns ARRAY.
open_conns() {
  local port=$1 n=$2 fd i
  local -n _fds=$3
  for ((i = 0; i < n; i++)); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$port" ||
      fail "cannot connect to port $port"
    _fds+=("$fd")
  done
}

# expect_ping_echoed FD: writes "ping" on FD and fails the test unless
# "ping" comes back within 10 s (FD leads to an echo server).
expect_ping_echoed() {
  local reply=""
  printf 'ping' >&"$1"
  read -r -t 10 -N 4 reply <&"$1" || true
  [[ $reply == ping ]] ||
    fail "a connection got '$reply' back, not the ping it sent"
}

# close_conns ARRAY: closes the fds in the array named ARRAY and empties it.
close_conns() {
  local fd
  local -n _fds=$1
  for fd in "${_fds[@]}"; do
    exec {fd}>&-
  done
  _fds=()
}

# wait_exit NAME [TIMEOUT_S=10]: wait for NAME to exit by itself; its status
# goes in EXIT_STATUS[NAME]. Fails the test on timeout. Call it directly,
# not in $(...): only the main shell can collect its children's status.
wait_exit() {
  local name=$1 timeout=${2:-10} deadline
  deadline=$(($(_now_ms) + timeout * 1000))
  while running "$name"; do
    (($(_now_ms) < deadline)) || fail "$name still running after ${timeout} s"
    sleep 0.05
  done
  _reap "$name"
}

# _show_stacks PID: print where a hung process is (every thread's stack),
# if gdb is installed; bounded by a deadline.
_show_stacks() {
  local t
  echo "----- pid $1: $(grep -E '^(State|TracerPid)' "/proc/$1/status" 2>/dev/null | tr '\n\t' '  ')-----" >&2
  for t in /proc/"$1"/task/*; do
    echo "thread ${t##*/}: $(cat "$t/comm" 2>/dev/null) $(awk '{print $3}' "$t/stat" 2>/dev/null) wchan=$(cat "$t/wchan" 2>/dev/null)" >&2
  done
  command -v gdb >/dev/null || return 0
  timeout 30 gdb -p "$1" -batch -ex 'thread apply all bt' </dev/null 2>&1 |
    grep -E '^(#|Thread |ptrace|warning: process)' | head -n 60 >&2 || true
}

# How long a process may take to exit on SIGTERM/SIGINT before stop kills
# it: 5 s, or 20 s when the binary is built with AddressSanitizer, whose
# leak check at exit (LeakSanitizer stops the process under ptrace and scans
# its memory) alone can take several seconds on a loaded machine. A
# slow exit (over 2 s) is logged either way.
if [[ -z ${STOP_TIMEOUT_S:-} ]]; then
  STOP_TIMEOUT_S=5
  [[ $(ldd "$NATTER" 2>/dev/null || true) == *libasan* ]] && STOP_TIMEOUT_S=20
fi

# stop NAME [SIGNAL=TERM]: SIGNAL by recorded PID, up to STOP_TIMEOUT_S to
# exit, then SIGKILL. The exit status goes in EXIT_STATUS[NAME]; stop
# itself always succeeds.
stop() {
  local name=$1 sig=${2:-TERM} p deadline t0
  p=${PIDS[$name]:-}
  [[ -n $p ]] || return 0
  if _alive "$p"; then
    # A test may have SIGSTOPped it. Only then: a SIGCONT that races with
    # the exit can hang LeakSanitizer's stop-the-world in ASan builds.
    [[ $(_state "$p") == T ]] && kill -CONT "$p" 2>/dev/null
    kill "-$sig" "$p" 2>/dev/null || true
    t0=$(_now_ms)
    deadline=$((t0 + STOP_TIMEOUT_S * 1000))
    while _alive "$p" && (($(_now_ms) < deadline)); do
      sleep 0.05
    done
    if (($(_now_ms) - t0 > 2000)); then
      echo "$TEST_NAME: $name (pid $p) took $(($(_now_ms) - t0)) ms to exit on SIG$sig" >&2
    fi
    if _alive "$p"; then
      echo "$TEST_NAME: $name (pid $p) ignored SIG$sig for $STOP_TIMEOUT_S s; killing it" >&2
      _show_stacks "$p"
      kill -KILL "$p" 2>/dev/null || true
    fi
  fi
  _reap "$name"
}

# stop_expect_clean NAME [SIGNAL=TERM]: stop NAME and fail unless it exited
# 0 on SIGNAL, within STOP_TIMEOUT_S.
stop_expect_clean() {
  local sig=${2:-TERM}
  stop "$1" "$sig"
  [[ ${EXIT_STATUS[$1]} == 0 ]] ||
    fail "$1 exited with status ${EXIT_STATUS[$1]} after SIG$sig (want 0)"
}

# assert_log_contains NAME REGEX / assert_log_lacks NAME REGEX
assert_log_contains() {
  grep -Eq -- "$2" "$WORK/$1.log" 2>/dev/null ||
    fail "$1's log does not match /$2/"
}
assert_log_lacks() {
  if grep -Eq -- "$2" "$WORK/$1.log" 2>/dev/null; then
    fail "$1's log unexpectedly matches /$2/: $(grep -Em1 -- "$2" "$WORK/$1.log")"
  fi
}

# run_capture TIMEOUT_S CMD [ARG...]: run CMD in the foreground with a
# deadline; its stdout+stderr go to $OUTPUT (and $WORK/last.out), its exit
# status to $STATUS (124: timed out). Never fails by itself.
OUTPUT=""
STATUS=0
run_capture() {
  local timeout=$1
  shift
  STATUS=0
  timeout --kill-after=5 "$timeout" "$@" </dev/null >"$WORK/last.out" 2>&1 ||
    STATUS=$?
  OUTPUT=$(cat "$WORK/last.out")
}

# expect_exit_nonzero [-t TIMEOUT_S=20] CMD [ARG...]: CMD must exit by itself
# with a non-zero status within the deadline; its output is in $OUTPUT.
expect_exit_nonzero() {
  local timeout=20
  if [[ $1 == -t ]]; then
    timeout=$2
    shift 2
  fi
  run_capture "$timeout" "$@"
  ((STATUS != 124 && STATUS != 137)) ||
    fail "'$*' did not exit within ${timeout} s; output: $OUTPUT"
  ((STATUS != 0)) || fail "'$*' exited 0; expected failure; output: $OUTPUT"
}

# expect_exit_zero [-t TIMEOUT_S=60] CMD [ARG...]: CMD must succeed in time.
expect_exit_zero() {
  local timeout=60
  if [[ $1 == -t ]]; then
    timeout=$2
    shift 2
  fi
  run_capture "$timeout" "$@"
  ((STATUS == 0)) || fail "'$*' exited with status $STATUS; output: $OUTPUT"
}

# assert_output_contains REGEX: the last run_capture/expect_* output matches.
assert_output_contains() {
  grep -Eq -- "$1" <<<"$OUTPUT" ||
    fail "output does not match /$1/; output: $OUTPUT"
}

# sha256_of FILE: the lowercase hex SHA-256 of FILE.
sha256_of() {
  local sum
  sum=$(sha256sum "$1") || fail "sha256sum $1 failed"
  echo "${sum%% *}"
}

# ---- natter processes --------------------------------------------------

# start_broker [NAME=broker] [ARG...]: start a broker on a free loopback port
# with its own identity in $WORK and wait until it listens. Sets BROKER
# (HOST:PORT) and BROKER_PORT.
start_broker() {
  local name=${1:-broker}
  (($# > 0)) && shift
  BROKER_PORT=$(free_port)
  BROKER=127.0.0.1:$BROKER_PORT
  start "$name" "$NATTER" -server "$BROKER" -identity "$WORK/$name.key" "$@"
  wait_log "$name" "natter: broker listening on 127\.0\.0\.1:$BROKER_PORT"
}

# start_client NAME [ARG...]: start client NAME at $BROKER with its own
# identity $WORK/NAME.key; waits for its check-in and for every forward it
# was given (ARGs of the form LOCALPORT:PEER:[HOST:]PORT).
start_client() {
  local name=$1 arg prev="" spec_re='^([0-9]+):([^:]+):(.+)$'
  shift
  [[ -n ${BROKER:-} ]] || fail "start_client $name: start_broker first"
  start "$name" "$NATTER" -name "$name" -broker "$BROKER" \
    -identity "$WORK/$name.key" "$@"
  wait_log "$name" "natter: checked in at broker"
  for arg in "$@"; do
    # A flag's value (e.g. a fingerprint after -broker-key) is not a SPEC.
    if [[ $prev != -name && $prev != -broker && $prev != -identity &&
      $prev != -broker-key && $prev != -allow && $prev != -timeout &&
      $prev != -port && $prev != -allow-peer && $prev != -allow-command &&
      $prev != -token-file &&
      $arg =~ $spec_re ]]; then
      wait_log "$name" "natter: forwarding 127\.0\.0\.1:${BASH_REMATCH[1]} -> "
    fi
    prev=$arg
  done
}

# wait_tcp_listen PORT [TIMEOUT_S=10]: wait until a TCP socket listens on
# 127.0.0.1:PORT (for servers that print no "ready" line, e.g. socat).
wait_tcp_listen() {
  local port=$1 timeout=${2:-10} deadline
  deadline=$(($(_now_ms) + timeout * 1000))
  until ss -Htln "sport = :$port" | grep -q .; do
    (($(_now_ms) < deadline)) ||
      fail "nothing listens on TCP port $port after ${timeout} s"
    sleep 0.05
  done
}

# wait_tcp_busy PORT N [TIMEOUT_S=10]: wait until at least N established
# TCP connections on local port 127.0.0.1:PORT (a server's side) have
# received data, i.e. N clients are connected and sending.
wait_tcp_busy() {
  local port=$1 want=$2 timeout=${3:-10} deadline n=0
  deadline=$(($(_now_ms) + timeout * 1000))
  while :; do
    # ss -i prints bytes_received only once a socket has received a byte.
    n=$(ss -Htni state established "( sport = :$port )" | grep -c 'bytes_received:') || true
    ((n >= want)) && return 0
    (($(_now_ms) < deadline)) ||
      fail "$n of $want connections on TCP port $port have received data after ${timeout} s"
    sleep 0.05
  done
}

# wait_tcp_backlog PORT [TIMEOUT_S=10]: wait until an established TCP socket
# with local port PORT has bytes it cannot send (Send-Q > 0): its peer has
# stopped reading and the receive window is full.
wait_tcp_backlog() {
  local port=$1 timeout=${2:-10} deadline
  deadline=$(($(_now_ms) + timeout * 1000))
  # With a state filter ss prints Recv-Q Send-Q Local Peer.
  until ss -Htn state established "( sport = :$port )" |
    awk '$2 > 0 { found = 1 } END { exit !found }'; do
    (($(_now_ms) < deadline)) ||
      fail "no TCP socket on port $port has a send backlog after ${timeout} s: $(ss -Htn state established "( sport = :$port or dport = :$port )")"
    sleep 0.05
  done
}

# start_echo_server NAME PORT / start_sink_server NAME PORT
start_echo_server() {
  start "$1" "$TCPCHECK" echo-server "$2"
  wait_log "$1" '^ready$'
}
start_sink_server() {
  start "$1" "$TCPCHECK" sink-server "$2"
  wait_log "$1" '^ready$'
}

# ---- cleanup -----------------------------------------------------------

_cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  set +e
  ((rc == 0)) || show_logs
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    stop "${STARTED[i]}"
  done
  if [[ -n ${KEEP_WORK:-} ]]; then
    echo "$TEST_NAME: logs and keys kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap _cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
