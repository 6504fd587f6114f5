#!/usr/bin/env python3
"""Interactive echo through a tunnel: one TCP connection, a numbered line
every 50 ms, each echo checked. Runs until the file STOP exists (or
MAX_S), then prints "max_stall_ms=N lines=N" and exits 0, or 1 when an
echo was wrong, missing or the connection broke. Usage:
stallmeter.py PORT STOP MAX_S"""
import os
import socket
import sys
import time

port, stop, max_s = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port), timeout=60)
s.settimeout(0.05)
start = last = time.monotonic()
sent = got = 0
max_gap = 0.0
buf = b""
next_send = start
while True:
    now = time.monotonic()
    if os.path.exists(stop) or now - start > max_s:
        break
    if now >= next_send:
        s.sendall(b"%d\n" % sent)
        sent += 1
        next_send = now + 0.05
    try:
        data = s.recv(65536)
        if not data:
            print("connection closed after %d lines" % got)
            sys.exit(1)
        buf += data
    except socket.timeout:
        pass
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        if line != b"%d" % got:
            print("wrong echo: want %d, got %r" % (got, line))
            sys.exit(1)
        got += 1
        now = time.monotonic()
        max_gap = max(max_gap, now - last)
        last = now
# Everything sent must come back.
deadline = time.monotonic() + 30
s.settimeout(1)
while got < sent and time.monotonic() < deadline:
    try:
        data = s.recv(65536)
    except socket.timeout:
        continue
    if not data:
        break
    buf += data
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        if line != b"%d" % got:
            print("wrong echo: want %d, got %r" % (got, line))
            sys.exit(1)
        got += 1
print("max_stall_ms=%d lines=%d" % (max_gap * 1000, got))
sys.exit(0 if got == sent else 1)
