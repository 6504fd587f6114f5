#!/usr/bin/env bash
# Port mapping in the NAT lab (ctest nat.portmap; issue 26): both NATs
# symmetric, so without a mapping only the relay connects them. Each case
# is `lab.sh portmap` (tests/nat/fake_gateway.py answers PCP and NAT-PMP on
# both routers) and natter -check alice -> bob:
#
#   gateway              broker     expect
#   honest (PCP)         -relay     direct to bob's mapping, not relayed;
#                                   both mappings named; deleted on exit
#   NAT-PMP only         no relay   direct, "(NAT-PMP)"
#   PCP, 60 s granted    no relay   direct; renewed within 45 s; the
#   (silent 20-40 s)                renewal unanswered, tried again later
#   lies (203.0.113.99)  -relay     needs relay; bob says why it offers
#                                   nothing
#   garbage              no relay   needs relay; nothing offered
#   none                 no relay   needs relay
#   PCP, -no-portmap     -relay     needs relay; the gateways hear nothing
#   none, then PCP       no relay   bob gives up, asks again when it
#   (broker restarted)              checks in again: direct
#   UPnP only (718, 725) -relay     direct to bob's mapping (UPnP), which
#                                   is deleted on exit
#   UPnP garbage         no relay   needs relay; bob says why
#   SSDP LOCATION at     no relay   needs relay; the answer is ignored and
#   another host                    LOCATION never fetched
#   real miniupnpd       no relay   needs relay: search, description and
#                                   GetExternalIPAddress work, its empty
#                                   external address is reported
#
# Usage: NATTER=build/natter bash tests/nat/test_portmap.sh [CASE-NUMBER...]
# Needs root (network namespaces); exits 77 (ctest: skipped) without.

set -uo pipefail

RUN_NAME=portmap
CASES=(
  "PCP gateways, symmetric/symmetric: direct to the mapping, not relayed|portmap symmetric symmetric --gateway honest --relay on --expect port-mapped"
  "NAT-PMP-only gateways, symmetric/symmetric: direct|portmap symmetric symmetric --gateway pmp-only --expect port-mapped"
  "gateways granting 60 s: direct, renewed within 45 s, tried again after the gateway's silence|portmap symmetric symmetric --gateway short --expect port-mapped"
  "lying gateways (another external address): nothing changes, relayed|portmap symmetric symmetric --gateway lie --relay on --expect needs-relay"
  "gateways answering garbage: nothing changes|portmap symmetric symmetric --gateway garbage --expect needs-relay"
  "no gateway: nothing changes|portmap symmetric symmetric --gateway none --expect needs-relay"
  "-no-portmap: the gateways are not asked, relayed|portmap symmetric symmetric --gateway honest --no-portmap yes --relay on --expect needs-relay"
  "a gateway that comes up later: asked again at the next check-in, then direct|portmap symmetric symmetric --gateway late --expect port-mapped"
  "UPnP-only gateways: direct to bob's mapping, deleted on exit|portmap symmetric symmetric --gateway upnp --relay on --expect port-mapped"
  "UPnP gateways answering garbage XML and SOAP: relayed, no crash|portmap symmetric symmetric --gateway upnp-garbage --expect needs-relay"
  "an SSDP answer naming another host: ignored|portmap symmetric symmetric --gateway upnp-elsewhere --expect needs-relay"
  "the real miniupnpd on a reserved WAN address: discovery, description and SOAP, then its refusal: relayed|portmap symmetric symmetric --gateway miniupnpd --expect needs-relay"
)
CASE_TIMEOUT=90

# shellcheck source=tests/nat/cases.sh
source "$(dirname "${BASH_SOURCE[0]}")/cases.sh"
nat_run_cases "$@"
