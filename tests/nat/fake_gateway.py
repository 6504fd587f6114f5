#!/usr/bin/env python3
"""A port mapping gateway for the NAT lab (tests/nat/test_portmap.sh): it
answers PCP MAP (RFC 6887) and NAT-PMP (RFC 6886) requests on UDP 5351 of
a lab router, inside the router's namespace.

miniupnpd (Debian's 2.3.1) refuses to map anything when the router's WAN
address is a reserved one, and the lab uses only reserved addresses
(203.0.113.0/24), so the lab brings its own gateway.

Modes:
  honest   maps as a home router does: an iptables DNAT rule from the WAN
           port to the client's address and port (removed on lifetime 0
           and when this process ends), and the WAN address as the
           external address
  lie      answers success with a made-up external address (--lie-addr)
           and installs nothing
  garbage  answers every request with random bytes, some of the right
           length and version
  short    as honest, but grants 60 s whatever is asked (renewals)
  pmp-only answers PCP with NAT-PMP's "unsupported version" (RFC 6887
           section 9), NAT-PMP as honest

Every request and answer is logged on stdout, one line each.
"""
import argparse
import os
import socket
import struct
import subprocess
import sys


def log(*a):
    print("gateway:", *a, flush=True)


class Gateway:
    def __init__(self, args):
        self.args = args
        self.wan = socket.inet_aton(args.wan_ip)
        self.rules = {}  # external port -> (client ip, internal port)
        self.epoch = 100

    def iptables(self, op, ext, ip, port):
        chain = ["PREROUTING", "1"] if op == "-I" else ["PREROUTING"]
        cmd = ["iptables", "-t", "nat", op] + chain + [
            "-i", self.args.wan_if, "-p", "udp", "--dport", str(ext),
            "-j", "DNAT", "--to-destination", "%s:%d" % (ip, port)]
        subprocess.run(cmd, check=False)

    def map(self, ip, port, suggested, lifetime):
        """Returns the external port (0 when deleted)."""
        ext = suggested or port
        old = self.rules.get(ext)
        if old:
            self.iptables("-D", ext, *old)
            del self.rules[ext]
        if lifetime == 0:
            return 0
        self.rules[ext] = (ip, port)
        self.iptables("-I", ext, ip, port)
        return ext

    def cleanup(self):
        for ext, (ip, port) in list(self.rules.items()):
            self.iptables("-D", ext, ip, port)
        self.rules.clear()

    def external(self):
        if self.args.mode == "lie":
            return socket.inet_aton(self.args.lie_addr)
        return self.wan

    def pcp(self, data, src):
        if len(data) < 60 or data[1] != 1:
            return None
        lifetime = struct.unpack("!I", data[4:8])[0]
        op = data[24:60]
        nonce, proto = op[0:12], op[12]
        port, suggested = struct.unpack("!HH", op[16:20])
        if self.args.mode == "pmp-only":
            return struct.pack("!BBHI", 0, 0x81, 1, self.epoch)
        ext = port
        if self.args.mode == "short" and lifetime:
            lifetime = 60
        if self.args.mode in ("honest", "short"):
            ext = self.map(src[0], port, suggested, lifetime) or suggested
        log("PCP MAP from %s:%d port %d lifetime %d -> %d" %
            (src[0], src[1], port, lifetime, ext))
        hdr = struct.pack("!BBBBII", 2, 0x81, 0, 0, lifetime, self.epoch) + bytes(12)
        body = nonce + bytes([proto, 0, 0, 0]) + struct.pack("!HH", port, ext)
        body += bytes(10) + b"\xff\xff" + self.external()
        return hdr + body

    def natpmp(self, data, src):
        if len(data) == 2 and data[1] == 0:
            log("NAT-PMP address request from %s:%d" % src)
            return struct.pack("!BBHI", 0, 0x80, 0, self.epoch) + self.external()
        if len(data) == 12 and data[1] == 1:
            port, suggested, lifetime = struct.unpack("!HHI", data[4:12])
            ext = port
            if self.args.mode in ("honest", "pmp-only"):
                ext = self.map(src[0], port, suggested, lifetime) or suggested
            log("NAT-PMP map from %s:%d port %d lifetime %d -> %d" %
                (src[0], src[1], port, lifetime, ext))
            return struct.pack("!BBHIHHI", 0, 0x81, 0, self.epoch, port, ext,
                               lifetime)
        return None

    def answer(self, data, src):
        if self.args.mode == "garbage":
            rnd = os.urandom(60)
            n = [2, 12, 16, 60, 61, 1100][rnd[0] % 6]
            out = bytearray(os.urandom(n))
            out[0] = data[0] if data else 0
            if n > 1:
                out[1] = (data[1] | 0x80) if len(data) > 1 else 0x80
            log("garbage (%d bytes) to %s:%d" % (n, src[0], src[1]))
            return bytes(out)
        if data[:1] == b"\x02":
            return self.pcp(data, src)
        if data[:1] == b"\x00":
            return self.natpmp(data, src)
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True, help="the router's LAN address")
    ap.add_argument("--wan-ip", required=True)
    ap.add_argument("--wan-if", default="wan")
    ap.add_argument("--mode", default="honest",
                    choices=["honest", "short", "lie", "garbage", "pmp-only"])
    ap.add_argument("--lie-addr", default="203.0.113.99")
    args = ap.parse_args()
    gw = Gateway(args)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((args.listen, 5351))
    log("listening on %s:5351 (%s)" % (args.listen, args.mode))
    try:
        while True:
            data, src = s.recvfrom(2048)
            out = gw.answer(data, src)
            if out:
                s.sendto(out, src)
    except KeyboardInterrupt:
        pass
    finally:
        gw.cleanup()


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    main()
