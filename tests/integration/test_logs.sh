#!/usr/bin/env bash
# Log formats: with -log-format json every stderr line is one JSON object
# with exactly the keys time, level, msg (a quote in a message stays
# inside its string); text lines carry a timestamp when stderr is a file;
# under journald (JOURNAL_STREAM names stderr) lines carry a "<N>" priority
# and no timestamp, in both formats.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

# check_json FILE WANT_TIME: every line of FILE is a JSON object with the
# stable keys; prints the messages.
check_json() {
  python3 - "$1" "$2" <<'PY' || fail "$1 is not JSON lines: $(cat "$1")"
import json, re, sys
want_time = sys.argv[2] == "1"
lines = open(sys.argv[1]).read().splitlines()
assert lines, "no lines"
for line in lines:
    obj = json.loads(line)
    keys = ["time", "level", "msg"] if want_time else ["level", "msg"]
    assert list(obj) == keys, (list(obj), keys)
    assert obj["level"] in ("error", "warn", "info", "debug"), obj
    if want_time:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",
                            obj["time"]), obj
    print(obj["level"], obj["msg"])
PY
}

# start_json_broker NAME [ARG...]: a broker whose lines are JSON.
start_json_broker() {
  local name=$1
  shift
  start "$name" "$NATTER" -server "127.0.0.1:$(free_port)" -identity "" "$@"
  wait_log "$name" '"msg":"broker listening on '
}

# JSON: a broker's lines, and a library error quoting a bad name.
start_json_broker broker -log-format json
stop_expect_clean broker
check_json "$WORK/broker.log" 1 >"$WORK/broker.msgs"
grep -q '^info broker listening on 127\.0\.0\.1:' "$WORK/broker.msgs" ||
  fail "no 'broker listening' message: $(cat "$WORK/broker.msgs")"
grep -q '^info broker traffic: received' "$WORK/broker.msgs" ||
  fail "no 'broker traffic' message: $(cat "$WORK/broker.msgs")"

run_capture 20 "$NATTER" -name 'a"b' -broker "127.0.0.1:$(free_port)" \
  -identity "" -listen -log-format json
((STATUS == 1)) || fail "a bad name: status $STATUS, want 1; output: $OUTPUT"
printf '%s\n' "$OUTPUT" >"$WORK/badname.log"
check_json "$WORK/badname.log" 1 >"$WORK/badname.msgs"
grep -q '^error invalid name "a"b"' "$WORK/badname.msgs" ||
  fail "the bad name is not in an error message: $(cat "$WORK/badname.msgs")"

# The config file sets the format too.
printf 'log-format = json\n' >"$WORK/json.conf"
start_json_broker broker2 -config "$WORK/json.conf"
stop_expect_clean broker2
check_json "$WORK/broker2.log" 1 >/dev/null

# Text to a file: each line starts with a UTC timestamp.
start_broker broker3
stop_expect_clean broker3
while IFS= read -r line; do
  [[ $line =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z\ natter:\  ]] ||
    fail "text line without a timestamp: $line"
done <"$WORK/broker3.log"

# journald: JOURNAL_STREAM names the file stderr is; priorities, no time.
journal_run() {
  local out=$1
  shift
  : >"$out"
  # natter itself in the background (not under timeout(1), whose own
  # exit status would stand for natter's): killed by PID, waited for with
  # a deadline.
  JOURNAL_STREAM=$(stat -c '%d:%i' "$out") "$NATTER" \
    -server "127.0.0.1:$(free_port)" -identity "" "$@" 2>"$out" &
  local p=$! rc=0
  local deadline=$(($(_now_ms) + 10000))
  until grep -q 'broker listening' "$out"; do
    (($(_now_ms) < deadline)) || { kill -KILL "$p"; fail "no start line in $out"; }
    sleep 0.05
  done
  kill -TERM "$p"
  deadline=$(($(_now_ms) + 20000))
  while kill -0 "$p" 2>/dev/null; do
    (($(_now_ms) < deadline)) || { kill -KILL "$p"; fail "broker under JOURNAL_STREAM ignored SIGTERM"; }
    sleep 0.05
  done
  wait "$p" || rc=$?
  ((rc == 0)) || fail "broker under JOURNAL_STREAM exited $rc"
}
journal_run "$WORK/journal.log"
grep -Eq '^<6>natter: broker listening on ' "$WORK/journal.log" ||
  fail "journald text line: $(cat "$WORK/journal.log")"
journal_run "$WORK/journal.json" -log-format json
head -n1 "$WORK/journal.json" | grep -Eq '^<6>\{"level":"info","msg":"broker listening' ||
  fail "journald JSON line: $(cat "$WORK/journal.json")"
# A JOURNAL_STREAM that is not stderr's counts for nothing.
JOURNAL_STREAM=1:1 run_capture 5 "$NATTER" -name 'a"b' \
  -broker "127.0.0.1:$(free_port)" -identity "" -listen
grep -Eq "^${LOG_TS%\?}natter: invalid name" <<<"$OUTPUT" ||
  fail "a foreign JOURNAL_STREAM changed the format: $OUTPUT"

log "ok"
