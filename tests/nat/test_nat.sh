#!/usr/bin/env bash
# The NAT-lab matrix (ctest nat.lab): each case builds a fresh lab with
# tests/nat/lab.sh (network namespaces, iptables NAT routers), starts a fresh
# broker, bob (-listen) and alice, and checks the outcome:
#
#   alice      bob                      expect
#   none       none                     direct
#   cone       none                     direct
#   cone       cone                     direct (simultaneous open), 50 MB each way
#   cone       cone, 5% UDP loss        direct, 50 MB each way
#              (at bob's router, both directions)
#   symmetric  cone                     direct, found by port prediction
#   symmetric  symmetric                a clear error in 15 s
#   cone       cone, UDP conntrack      the tunnel still works after 60 s idle
#              timeouts 30 s            (same QUIC connection)
#   alice and bob behind the same NAT   direct over the LAN
#   none       symmetric                direct
#   symmetric  none                     direct
#   cone       symmetric                direct, found by port prediction
#              (port-restricted cone: the lab's cone filters by port)
#   cone       cone, while 200 MB go alice -> bob and an interactive echo
#              runs (lab.sh roam): alice's public address changes, bob's
#              changes, bob's mappings are flushed, alice moves to another
#              LAN address: both complete on the same connection (sha256),
#              the longest echo stall is reported and must be < 2 s
#              (ROAM_MAX_STALL_MS); bob SIGKILLed and
#              restarted: alice is told and reaches the new bob in < 5 s
#   symmetric  cone, alice's public address changes on a path found by
#              port prediction (400 MB and the echo as above): predicted
#              again, the same connection moves to the new prediction
#              socket (sha256, one connection, stall < ROAM_MAX_STALL_MS);
#   cone       symmetric, the same with bob's address (the listener's
#              connection changes sockets, alice follows)
#   symmetric  cone, the same, and UDP between the NATs cut: predicted
#              again in vain, alice gives the connection up within 15 s
#   symmetric  symmetric, broker -relay relayed (end-to-end encrypted)
#   cone       cone, UDP between the    relayed; then the same with a relay
#              NATs blocked             that flips bits (data intact), one
#                                       whose -relay-total is exceeded (a
#                                       clear error), and one where UDP is
#                                       unblocked: the same connection
#                                       moves to a direct path
#
# With IPv6 (lab.sh --family: 2001:db8::/32 routed, no NAT66, a stateful
# IPv6 filter on each NAT router; the broker on -server :PORT), each
# asserting the family of alice's path:
#   IPv6 only (no IPv4 on the peers)        direct over IPv6
#   dual stack, IPv4 UDP between the NATs   direct over IPv6, although the
#   blocked                                 peers reached the broker over IPv4
#   dual stack, IPv6 UDP blocked            direct over IPv4 through the NATs
#   dual stack, symmetric/symmetric         direct over IPv6 (no NAT there)
#   dual stack, both behind one NAT         direct over the LAN (either family)
#   dual stack, UDP blocked in both         relayed by the broker
#   natter -check PEER (lab.sh peer-check): cone/cone "direct works" (exit
#   0), symmetric/symmetric "needs relay because both sides are behind
#   symmetric NATs" (3), cone/cone with UDP between the NATs blocked "UDP
#   between alice and bob is blocked" (4), symmetric/symmetric with a relay
#   (3, connected through it); bob's side must have reported
#   cone       cone, UDP blocked, the broker is natter-hostile whose relay
#              is a man in the middle with the broker's key (lab.sh mitm):
#              both peers refuse its key, nothing reaches it
# A broker on -server :PORT (a wildcard socket) on a host with several
# addresses must answer from the address each client sent to, which the
# kernel would not pick (the lab checks that it would not); the NATs'
# filters drop anything else:
#   cone/cone, the peers reach the broker at its second IPv4 address: check
#   in, NAT mapping logged by both, direct; the same relayed (UDP between
#   the NATs blocked); IPv6 only (the kernel prefers the host's other IPv6
#   address; so in every case above with the broker over IPv6), relayed
#
# Before them, a check of the lab itself: each NAT behaviour's mapping and
# filtering, with socat only. Every direct case checks the data by sha256
# and that the broker saw under 1% of the tunnel's bytes. Each case prints
# PASS or FAIL with its timings; a failed case prints its natter -v logs.
# The last line is "N passed, N failed".
#
# Usage: NATTER=build/natter bash tests/nat/test_nat.sh [CASE-NUMBER...]
# Needs root (network namespaces); exits 77 (ctest: skipped) without.
# LAB_BYTES (default 50M) is the bulk size of the big cases.

set -uo pipefail

BIG=${LAB_BYTES:-50M}
RUN_NAME=nat
# NAME|ARGS of `lab.sh` (one line per case).
CASES=(
  "lab: NAT behaviours (cone, symmetric)|check cone symmetric"
  "lab: NAT behaviour (none)|check none none"
  "none/none|run none none --bytes 10M"
  "cone/none|run cone none --bytes 10M"
  "cone/cone|run cone cone --bytes $BIG"
  "cone/cone, 5% loss at bob's router|run cone cone --loss-b 0.05 --bytes $BIG"
  "symmetric/cone: port prediction|run symmetric cone --expect predicted --bytes 10M"
  "symmetric/symmetric|run symmetric symmetric --expect fail"
  "cone/cone keepalive: 60 s idle, UDP timeouts 30 s|run cone cone --udp-timeout 30 --idle 60 --bytes 1M"
  "same NAT: alice and bob behind one cone|run cone cone --bob-at alice2 --bytes 10M"
  "none/symmetric|run none symmetric --expect direct --bytes 10M"
  "roam: alice's public address changes mid-transfer (cone/cone)|roam cone cone rebind-a 200M"
  "roam: bob's public address changes mid-transfer (cone/cone)|roam cone cone rebind-b 200M"
  "roam: the receiving side's mappings are flushed|roam cone cone flush-b 200M"
  "roam: alice moves to another LAN address|roam cone cone move-a 200M"
  "roam: bob SIGKILLed and restarted within 1 s|roam cone cone restart-b 50M"
  "symmetric/symmetric relayed|run symmetric symmetric --relay nocap --expect relay --bytes 10M"
  "cone/cone, UDP between the NATs blocked: relayed|run cone cone --relay nocap --block-udp yes --expect relay --bytes 10M"
  "symmetric/cone relayed, the relay flips bits|run symmetric cone --relay tamper --block-udp yes --expect relay --bytes 10M"
  "cone/cone relayed, relay cap exceeded|run cone cone --relay cap --block-udp yes --expect relay --bytes 10M"
  "cone/cone relayed, then direct when UDP is unblocked|run cone cone --relay on --block-udp until-relayed --expect relay --bytes 20M"
  "port-restricted cone/symmetric: port prediction|run cone symmetric --expect predicted --bytes 10M"
  "symmetric/none|run symmetric none --expect direct --bytes 10M"
  "symmetric/cone, alice has no descriptors to spare for prediction (ulimit -n 700): said, relayed|run symmetric cone --nofile-a 700 --relay on --expect either --bytes 1M"
  "IPv6 only: the peers have no IPv4, broker over IPv6|run cone cone --family v6only --bytes 10M"
  "dual stack, IPv4 UDP between the NATs blocked: direct over IPv6 (broker over IPv4)|run cone cone --family dual --block-udp4 yes --bytes 10M"
  "dual stack, IPv6 UDP blocked: direct over IPv4 through the NATs|run cone cone --family dual --block-udp6 yes --bytes 10M"
  "dual stack, symmetric/symmetric: direct over IPv6 (broker over IPv6)|run symmetric symmetric --family dual --broker-family 6 --path 6 --bytes 10M"
  "dual stack, alice and bob behind one cone: over the LAN|run cone cone --family dual --bob-at alice2 --bytes 10M"
  "dual stack, UDP blocked in both families: relayed (broker on both)|run cone cone --family dual --block-udp4 yes --block-udp6 yes --relay nocap --expect relay --bytes 10M"
  "dual stack, IPv6 UDP blocked, symmetric/cone: port prediction over IPv4 (dual-stack extra sockets)|run symmetric cone --family dual --block-udp6 yes --expect predicted --path 4 --bytes 10M"
  "natter -check cone/cone: direct works|peer-check cone cone --expect direct"
  "natter -check symmetric/symmetric: needs relay|peer-check symmetric symmetric --expect needs-relay"
  "natter -check symmetric/cone: direct works only via prediction|peer-check symmetric cone --expect predicted"
  "natter -check cone/cone, UDP between the NATs blocked|peer-check cone cone --block-udp yes --expect udp-blocked"
  "natter -check symmetric/symmetric, the broker relays|peer-check symmetric symmetric --relay on --expect needs-relay"
  "cone/cone, the relay is a man in the middle with the broker's key: both peers refuse it|mitm cone cone"
  "broker on -server :PORT reached at its second IPv4 address: answers from there (cone/cone)|run cone cone --broker-at second --bytes 1M"
  "broker on -server :PORT reached at its second IPv4 address: relayed (cone/cone, UDP between the NATs blocked)|run cone cone --broker-at second --relay nocap --block-udp yes --expect relay --bytes 1M"
  "IPv6 only, UDP between the LANs blocked: relayed by a broker on -server :PORT|run cone cone --family v6only --block-udp6 yes --relay nocap --expect relay --bytes 1M"
  "roam: a path found by port prediction breaks (symmetric/cone, alice's public address changes): predicted again, the same connection moves there|roam symmetric cone rebind-a 400M"
  "roam: a path found by port prediction breaks on the listener's side (cone/symmetric, bob's public address changes): predicted again, the same connection|roam cone symmetric rebind-b 400M"
  "roam: a path found by port prediction breaks and UDP between the NATs is cut: predicted again in vain, given up in seconds|roam symmetric cone rebind-a-cut 400M"
)
CASE_TIMEOUT=150

# shellcheck source=tests/nat/cases.sh
source "$(dirname "${BASH_SOURCE[0]}")/cases.sh"
nat_run_cases "$@"
