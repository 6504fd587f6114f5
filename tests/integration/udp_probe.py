#!/usr/bin/env python3
"""UDP probe for test_udp.sh: sends COUNT numbered datagrams from each of
FLOWS local sockets (one flow each) to 127.0.0.1:PORT at RATE datagrams a
second in all, collects what an echo server sends back, and prints
"sent S received R lost L reordered O duplicated D flows_answered F".
Waits up to WAIT seconds after the last send for stragglers.
With --warmup, each flow first sends one datagram (sequence 0, not
counted) and waits up to WAIT seconds for its echo, so that the counted
ones measure open flows, not their opening.
With --serve, it is instead an echo server on 127.0.0.1:PORT (one socket,
every source answered from it; prints "ready" once bound)."""
import argparse
import select
import socket
import struct
import time

ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("--flows", type=int, default=1)
ap.add_argument("--count", type=int, default=100)
ap.add_argument("--rate", type=float, default=200.0)
ap.add_argument("--size", type=int, default=200)
ap.add_argument("--wait", type=float, default=5.0)
ap.add_argument("--serve", action="store_true")
ap.add_argument("--warmup", action="store_true")
a = ap.parse_args()

if a.serve:
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    srv.bind(("127.0.0.1", a.port))
    print("ready", flush=True)
    while True:
        data, src = srv.recvfrom(65535)
        srv.sendto(data, src)

socks = []
for _ in range(a.flows):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    socks.append(s)
fileno = {s.fileno(): i for i, s in enumerate(socks)}
seen = [set() for _ in socks]
last = [-1] * len(socks)
reordered = duplicated = 0
pad = b"x" * max(0, a.size - 8)


def drain(timeout):
    global reordered, duplicated
    r, _, _ = select.select(socks, [], [], timeout)
    for s in r:
        i = fileno[s.fileno()]
        while True:
            try:
                data = s.recv(65535)
            except BlockingIOError:
                break
            # socat's PIPE is a byte stream: it may echo two datagrams as
            # one, so a reply holds one or more records of SIZE bytes.
            for off in range(0, len(data) - 7, max(8, a.size)):
                flow, seq = struct.unpack("!II", data[off:off + 8])
                if flow != i:
                    continue  # a reply for another flow: never expected
                if seq in seen[i]:
                    duplicated += 1
                    continue
                if seq < last[i]:
                    reordered += 1
                last[i] = max(last[i], seq)
                seen[i].add(seq)


if a.warmup:
    for i, s in enumerate(socks):
        s.sendto(struct.pack("!II", i, 0) + pad, ("127.0.0.1", a.port))
    deadline = time.monotonic() + a.wait
    while time.monotonic() < deadline and not all(0 in x for x in seen):
        drain(0.05)
    for x in seen:
        x.discard(0)
    last = [-1] * len(socks)

interval = 1.0 / a.rate
start = time.monotonic()
n = 0
first = 1 if a.warmup else 0
for seq in range(first, first + a.count):
    for i, s in enumerate(socks):
        due = start + n * interval
        while True:
            now = time.monotonic()
            if now >= due:
                break
            drain(due - now)
        s.sendto(struct.pack("!II", i, seq) + pad, ("127.0.0.1", a.port))
        n += 1
deadline = time.monotonic() + a.wait
total = a.flows * a.count
while time.monotonic() < deadline:
    drain(0.05)
    if sum(len(x) for x in seen) == total:
        break
received = sum(len(x) for x in seen)
print("sent %d received %d lost %d reordered %d duplicated %d flows_answered %d"
      % (total, received, total - received, reordered, duplicated,
         sum(1 for x in seen if x)))
