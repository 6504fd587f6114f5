#!/usr/bin/env bash
# The relay across brokers in the NAT lab (ctest nat.xrelay; issue 24):
# two brokers in the "internet" namespace on one PostgreSQL database (the
# test's own, pg.sh, reached through its Unix socket from the namespace),
# alice behind a symmetric NAT at broker 1 (203.0.113.10), bob behind a
# symmetric NAT at broker 2 (203.0.113.30): no direct path, so alice
# connects via bob's broker's relay, 10 MB each way with SHA-256 checked,
# bob's broker reports the relayed bytes and alice's broker none
# (lab.sh run ... --xbroker URI).
#
# Usage: NATTER=build/natter bash tests/nat/test_xrelay.sh
# Needs root (network namespaces, PostgreSQL as the postgres user); exits
# 77 (ctest: skipped) without.
# shellcheck source-path=SCRIPTDIR source=../integration/lib.sh
. "$(dirname "$0")/../integration/lib.sh"
# shellcheck source-path=SCRIPTDIR source=../integration/pg.sh
. "$(dirname "$0")/../integration/pg.sh"

LAB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lab.sh
probe="ntlab-$$-probe"
if ! ip netns add "$probe" 2>/dev/null; then
  log "SKIP: 'ip netns add' is not permitted here; the NAT lab cannot run"
  exit 77
fi
ip netns del "$probe"
NATTER=$(realpath "$NATTER")
export NATTER
bash "$LAB" cleanup

pg_init
# The brokers run in a namespace of their own: the server's Unix socket.
uri="postgresql://natter@/natter?host=$PG_DIR&port=$PG_PORT"
run_capture 240 bash "$LAB" run symmetric symmetric --relay nocap \
  --expect relay --bytes 10M --xbroker "$uri"
((STATUS == 0)) || fail "lab.sh run --xbroker exited $STATUS: $OUTPUT"
grep -E "^RESULT: " <<<"$OUTPUT" >&2
assert_output_contains "^RESULT: .*via relay.*bob's broker relayed [0-9]+ B"
echo "PASS: $TEST_NAME"
