#!/usr/bin/env python3
"""A small SOCKS5 client for tests/integration/test_socks.sh.

socks_client.py PORT HOST TPORT [--cmd N] [--user U --password P]
    One handshake with the SOCKS server on 127.0.0.1:PORT asking for
    HOST:TPORT (an IPv4 or IPv6 address goes as one, anything else as a
    domain name). Prints the reply code as two hex digits ("00", "05"), or
    "no-method" / "auth-failed" / "closed" when the server ends it before.

socks_client.py PORT HOST TPORT --hold 1
    The same, then keeps the connection open until killed.

socks_client.py PORT --idle N
    Opens N connections that send nothing, then one more; prints "closed"
    when the server closes that one at once (the limit of waiting
    clients), else "open". Then waits until the server closes the N idle
    ones (the handshake timeout) and prints "idle-closed".
"""
import ipaddress
import socket
import sys
import time


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def handshake(port, host, tport, cmd=1, user=None, password=None,
              hold=False):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    method = 2 if user is not None else 0
    s.sendall(bytes([5, 1, method]))
    r = recv_exact(s, 2)
    if r is None:
        return "closed"
    if r[1] != method:
        return "no-method"
    if user is not None:
        u, p = user.encode(), password.encode()
        s.sendall(bytes([1, len(u)]) + u + bytes([len(p)]) + p)
        r = recv_exact(s, 2)
        if r is None or r[1] != 0:
            return "auth-failed"
    try:
        addr = ipaddress.ip_address(host)
        atyp = 1 if addr.version == 4 else 4
        dst = bytes([atyp]) + addr.packed
    except ValueError:
        dst = bytes([3, len(host)]) + host.encode()
    s.sendall(bytes([5, cmd, 0]) + dst + tport.to_bytes(2, "big"))
    r = recv_exact(s, 10)
    if r is None:
        return "closed"
    if hold:
        print("%02x" % r[1], flush=True)
        time.sleep(600)
    s.close()
    return "%02x" % r[1]


def closed_soon(s, timeout):
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def idle(port, n):
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    # The server may take a moment to count them all: try until one more
    # is refused, for a bounded while.
    deadline = time.monotonic() + 30
    result = "open"
    while time.monotonic() < deadline:
        extra = socket.create_connection(("127.0.0.1", port))
        if closed_soon(extra, 1):
            result = "closed"
            break
        conns.append(extra)  # not counted yet: it is one more idle one
    print(result, flush=True)
    for c in conns:
        if not closed_soon(c, 60):
            print("idle-open", flush=True)
            return
    print("idle-closed", flush=True)


def main():
    args = sys.argv[1:]
    port = int(args[0])
    if args[1] == "--idle":
        idle(port, int(args[2]))
        return
    host, tport = args[1], int(args[2])
    opts = dict(zip(args[3::2], args[4::2]))
    print(handshake(port, host, tport, int(opts.get("--cmd", "1")),
                    opts.get("--user"), opts.get("--password"),
                    "--hold" in opts))


main()
