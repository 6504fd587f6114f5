#!/usr/bin/env bash
# Stdin/stdout sessions (:PEER:PORT and :PEER:HOST:PORT): natter's own stdin
# and stdout are one connection to a port on the peer, as when natter is
# ssh's ProxyCommand. Checked:
#   - `echo hi | natter :bob:ECHO` prints hi, exits 0, says nothing on stderr
#   - 1 MiB of random bytes through stdin -> echo -> stdout, byte for byte,
#     with stdin/stdout as regular files and as pipes
#   - stdin EOF is a half-close: a sink server replies (its SHA-256) only
#     after EOF, and natter prints that reply and exits 0 once the peer's
#     side closes; stdin from a regular file, /dev/null and a pipe
#   - the :bob:HOST:PORT form (127.0.0.1, localhost)
#   - a server that speaks first (like sshd) is heard before any input, and
#     the session is interactive (a reply comes before stdin ends)
#   - ssh with ProxyCommand "natter ... :bob:%p" to a private sshd, when
#     sshd is installed (skipped, and logged, when not)
#   - failures exit non-zero with a message on stderr and nothing on
#     stdout: target refused, peer unknown, peer not listening
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

# ---- helpers -----------------------------------------------------------

ALICE=() # the command line of a session client; set once the broker runs

# session TAG INPUT SPEC...: run `natter ... SPEC...` with stdin from the
# file INPUT, with a deadline; stdout to $WORK/TAG.out, stderr to
# $WORK/TAG.err, the exit status in $STATUS (124: timed out).
session() {
  local tag=$1 input=$2
  shift 2
  STATUS=0
  timeout --kill-after=5 30 "${ALICE[@]}" "$@" <"$input" \
    >"$WORK/$tag.out" 2>"$WORK/$tag.err" || STATUS=$?
}

# describe TAG: the outcome of session TAG, for failure messages.
describe() {
  echo "status $STATUS; stdout: $(head -c 300 "$WORK/$1.out" | cat -v);" \
    "stderr: $(head -c 1000 "$WORK/$1.err")"
}

# expect_ok TAG: session TAG exited 0 and wrote nothing on stderr (a clean
# session keeps stderr quiet: it logs warnings and errors only).
expect_ok() {
  ((STATUS != 124 && STATUS != 137)) ||
    fail "$1: natter did not exit within 30 s; $(describe "$1")"
  ((STATUS == 0)) || fail "$1: exit status $STATUS, want 0; $(describe "$1")"
  [[ ! -s $WORK/$1.err ]] ||
    fail "$1: a clean session wrote on stderr; $(describe "$1")"
}

# expect_failure TAG REGEX: session TAG exited non-zero by itself, printed
# nothing on stdout, and its stderr has a natter line matching REGEX.
expect_failure() {
  ((STATUS != 124 && STATUS != 137)) ||
    fail "$1: natter did not exit within 30 s; $(describe "$1")"
  ((STATUS != 0)) || fail "$1: exit status 0, want a failure; $(describe "$1")"
  [[ ! -s $WORK/$1.out ]] || fail "$1: a failed session wrote on stdout; $(describe "$1")"
  grep -Eq -- "^${LOG_TS}natter: .*($2)" "$WORK/$1.err" ||
    fail "$1: stderr has no 'natter: ' line matching /$2/; $(describe "$1")"
}

# expect_stdout TAG TEXT: session TAG's stdout is exactly TEXT + newline.
expect_stdout() {
  [[ $(cat "$WORK/$1.out") == "$2" && $(tail -c1 "$WORK/$1.out" | od -An -c) == *'\n'* ]] ||
    fail "$1: stdout is not '$2'; $(describe "$1")"
}

# ---- set-up --------------------------------------------------------------

echo_port=$(free_port)
sink_port=$(free_port)
banner_port=$(free_port)
closed_port=$(free_port) # nothing listens there
start_echo_server echo "$echo_port"
start_sink_server sink "$sink_port"
# A server that speaks first, like sshd: a banner, then an echo.
start banner socat "TCP-LISTEN:$banner_port,bind=127.0.0.1,reuseaddr,fork" \
  SYSTEM:'echo SSH-2.0-banner-first; exec cat'
wait_tcp_listen "$banner_port"

start_broker broker
start_client bob -listen -allow-peer alice -allow-peer dave
start_client dave "$(free_port):bob:$echo_port" # forwards; does not listen
ALICE=("$NATTER" -name alice -broker "$BROKER" -identity "$WORK/alice.key")

head -c 1048576 /dev/urandom >"$WORK/random.bin"
want_sum=$(sha256_of "$WORK/random.bin")
empty_sum=$(sha256_of /dev/null)
printf 'hi\n' >"$WORK/hi.txt"

# ---- one line, and the HOST:PORT forms -----------------------------------

STATUS=0
printf 'hi\n' | timeout --kill-after=5 30 "${ALICE[@]}" ":bob:$echo_port" \
  >"$WORK/hi.out" 2>"$WORK/hi.err" || STATUS=$?
expect_ok hi
expect_stdout hi hi

session host_ip "$WORK/hi.txt" ":bob:127.0.0.1:$echo_port"
expect_ok host_ip
expect_stdout host_ip hi

session host_name "$WORK/hi.txt" ":bob:localhost:$echo_port"
expect_ok host_name
expect_stdout host_name hi

# ---- 1 MiB byte for byte: files, then pipes --------------------------------

session bulk_file "$WORK/random.bin" ":bob:$echo_port"
expect_ok bulk_file
[[ $(sha256_of "$WORK/bulk_file.out") == "$want_sum" ]] ||
  fail "1 MiB file -> echo -> file: $(stat -c %s "$WORK/bulk_file.out") bytes came back, SHA-256 differs"

STATUS=0
# shellcheck disable=SC2002 # stdin must be a pipe here, not a file
got=$(
  cat "$WORK/random.bin" |
    timeout --kill-after=5 30 "${ALICE[@]}" ":bob:127.0.0.1:$echo_port" \
      2>"$WORK/bulk_pipe.err" | sha256sum) || STATUS=$?
: >"$WORK/bulk_pipe.out"
expect_ok bulk_pipe
[[ ${got%% *} == "$want_sum" ]] ||
  fail "1 MiB pipe -> echo -> pipe: SHA-256 ${got%% *}, want $want_sum"

# ---- half-close: the sink replies only after stdin's EOF ------------------

session sink_file "$WORK/random.bin" ":bob:$sink_port"
expect_ok sink_file
expect_stdout sink_file "$want_sum"

session sink_null /dev/null ":bob:$sink_port"
expect_ok sink_null
expect_stdout sink_null "$empty_sum"

STATUS=0
# shellcheck disable=SC2002 # stdin must be a pipe here, not a file
cat "$WORK/random.bin" |
  timeout --kill-after=5 30 "${ALICE[@]}" ":bob:127.0.0.1:$sink_port" \
    >"$WORK/sink_pipe.out" 2>"$WORK/sink_pipe.err" || STATUS=$?
expect_ok sink_pipe
expect_stdout sink_pipe "$want_sum"

# /dev/null to an echo server: nothing back, exit 0.
session echo_null /dev/null ":bob:$echo_port"
expect_ok echo_null
[[ ! -s $WORK/echo_null.out ]] || fail "echo_null: got data; $(describe echo_null)"

# ---- interactive, server speaks first (what ssh needs) --------------------

# natter's stdin is a pipe the test holds open: the banner must arrive before
# anything is sent, and the echo of a line before stdin ends.
coproc NAT {
  exec timeout --kill-after=5 30 "${ALICE[@]}" ":bob:$banner_port" \
    2>"$WORK/banner.err"
}
# shellcheck disable=SC2153 # NAT_PID is set by coproc
nat_pid=$NAT_PID
nat_in=${NAT[1]}
nat_out=${NAT[0]}
line=""
read -r -t 15 -u "$nat_out" line ||
  fail "banner: no line from a server that speaks first within 15 s; stderr: $(cat "$WORK/banner.err")"
[[ $line == SSH-2.0-banner-first ]] || fail "banner: got '$line'"
printf 'ping\n' >&"$nat_in"
line=""
read -r -t 15 -u "$nat_out" line ||
  fail "banner: no echo of 'ping' while stdin is still open; stderr: $(cat "$WORK/banner.err")"
[[ $line == ping ]] || fail "banner: sent 'ping', got back '$line'"
exec {nat_in}>&- # EOF: socat's cat ends, the server closes, natter exits
STATUS=0
wait "$nat_pid" || STATUS=$?
: >"$WORK/banner.out"
expect_ok banner

# ---- failures ---------------------------------------------------------------

session refused "$WORK/hi.txt" ":bob:$closed_port"
expect_failure refused 'refused'
session refused_host "$WORK/hi.txt" ":bob:127.0.0.1:$closed_port"
expect_failure refused_host 'refused'
session unknown "$WORK/hi.txt" ":nobody:$echo_port"
expect_failure unknown '"?nobody"? is unknown'
session notlistening "$WORK/hi.txt" ":dave:$echo_port"
expect_failure notlistening '"?dave"? is not listening'

# ---- ssh -o ProxyCommand="natter ... :bob:%p" -------------------------------

SSHD=$(command -v sshd || echo /usr/sbin/sshd)
CREATED_PRIVSEP=""
# On exit: stop sshd, then remove the directory if this test made it, then
# lib.sh's cleanup (which needs the exit status in $?).
cleanup_ssh() {
  local rc=$?
  set +e
  if [[ -n $CREATED_PRIVSEP ]]; then
    stop sshd
    rmdir "$CREATED_PRIVSEP" 2>/dev/null
  fi
  (exit "$rc")
  _cleanup
}
trap cleanup_ssh EXIT
ssh_skip=""
if [[ ! -x $SSHD ]] || ! command -v ssh >/dev/null; then
  ssh_skip="ssh or sshd not installed"
elif ((EUID == 0)) && [[ ! -d /run/sshd ]]; then
  # As root, sshd wants its privilege separation directory.
  mkdir -m 755 /run/sshd && CREATED_PRIVSEP=/run/sshd
fi
if [[ -z $ssh_skip ]]; then
  d=$WORK/ssh
  mkdir -m 700 "$d"
  ssh-keygen -q -t ed25519 -N '' -f "$d/host_key" </dev/null
  ssh-keygen -q -t ed25519 -N '' -f "$d/id" </dev/null
  cp "$d/id.pub" "$d/authorized_keys"
  ssh_port=$(free_port)
  cat >"$d/sshd_config" <<EOF
Port $ssh_port
ListenAddress 127.0.0.1
HostKey $d/host_key
AuthorizedKeysFile $d/authorized_keys
PidFile none
UsePAM no
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UseDNS no
LogLevel ERROR
EOF
  if ! "$SSHD" -t -f "$d/sshd_config" >"$d/sshd-t.out" 2>&1; then
    ssh_skip="sshd -t: $(head -1 "$d/sshd-t.out")"
  fi
fi
if [[ -n $ssh_skip ]]; then
  log "SKIPPED the ssh ProxyCommand check: $ssh_skip"
else
  start sshd "$SSHD" -D -e -f "$d/sshd_config"
  wait_tcp_listen "$ssh_port"
  proxy="$NATTER -name alice -broker $BROKER -identity $WORK/alice.key :bob:%p"
  ssh_cmd=(ssh -F /dev/null -p "$ssh_port" -i "$d/id" -o IdentitiesOnly=yes
    -o BatchMode=yes -o StrictHostKeyChecking=no
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
    -o ConnectTimeout=20 -o "ProxyCommand=$proxy" "$(id -un)@bob")
  STATUS=0
  # shellcheck disable=SC2016 # expanded by the remote shell
  timeout --kill-after=5 40 "${ssh_cmd[@]}" 'echo "via natter $((6 * 7))"' \
    </dev/null >"$WORK/ssh.out" 2>"$WORK/ssh.err" || STATUS=$?
  ((STATUS == 0)) || fail "ssh via ProxyCommand: $(describe ssh)"
  expect_stdout ssh "via natter 42"
  # 1 MiB up through ssh's channel inside natter's stream, hashed on the far
  # side.
  STATUS=0
  timeout --kill-after=5 40 "${ssh_cmd[@]}" sha256sum <"$WORK/random.bin" \
    >"$WORK/ssh_bulk.out" 2>"$WORK/ssh_bulk.err" || STATUS=$?
  ((STATUS == 0)) || fail "ssh via ProxyCommand, 1 MiB: $(describe ssh_bulk)"
  [[ $(cat "$WORK/ssh_bulk.out") == "$want_sum  -" ]] ||
    fail "ssh via ProxyCommand, 1 MiB: $(describe ssh_bulk)"
  # ssh ends its ProxyCommand (SIGHUP) as it exits; none may linger.
  deadline=$(($(_now_ms) + 5000))
  while left=$(pgrep -f -- "-identity $WORK/alice.key :bob:$ssh_port"); do
    if (($(_now_ms) > deadline)); then
      # shellcheck disable=SC2086 # PIDs, one a word
      kill $left 2>/dev/null
      fail "natter as ProxyCommand still runs 5 s after ssh exited: pid $left"
    fi
    sleep 0.05
  done
  stop sshd
fi

# ---- every session left bob serving ----------------------------------------

running bob || fail "bob exited during the sessions"
session final "$WORK/hi.txt" ":bob:$echo_port"
expect_ok final
expect_stdout final hi
assert_log_lacks bob 'error'
stop_expect_clean dave
stop_expect_clean bob
stop_expect_clean broker
