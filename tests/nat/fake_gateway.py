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
  short    as honest, but grants 60 s whatever is asked (renewals), and
           answers no PCP request of a client from 20 s to 40 s after its
           first mapping (so the renewal at 30 s goes unanswered and must
           be tried again, answered, before the 60 s run out)
  pmp-only answers PCP with NAT-PMP's "unsupported version" (RFC 6887
           section 9), NAT-PMP as honest
  upnp     a UPnP IGD only (no PCP or NAT-PMP: port 5351 is closed): SSDP
           on 239.255.255.250:1900, the description and the SOAP control
           on HTTP port 5000 (--http-port); AddPortMapping maps as honest
           does, but answers ConflictInMappingEntry (718) to a client's
           first request and OnlyPermanentLeasesSupported (725) to any
           lease but 0; DeletePortMapping removes the rule
  upnp-garbage   as upnp, but garbage where --garbage-at says: the
           description (truncated, tags unclosed, huge) or every SOAP
           answer (random bytes, a lying Content-Length, bad XML)
  upnp-elsewhere the SSDP answer's LOCATION names the router's WAN
           address (another host than the gateway the client knows), where
           the same HTTP server answers: a client that follows it maps

Every request and answer is logged on stdout, one line each.
"""
import argparse
import http.server
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time


def log(*a):
    print("gateway:", *a, flush=True)


class Gateway:
    def __init__(self, args):
        self.args = args
        self.wan = socket.inet_aton(args.wan_ip)
        self.rules = {}  # external port -> (client ip, internal port)
        self.started = time.monotonic()
        self.first_grant = {}  # client ip -> when it was first mapped

    @property
    def epoch(self):
        """Seconds since a pretended boot 100 s before this start, as a
        gateway's epoch runs (PCP section 8.5)."""
        return 100 + int(time.monotonic() - self.started)

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
            since = time.monotonic() - self.first_grant.setdefault(src[0], time.monotonic())
            if 20 <= since < 40:
                log("PCP MAP from %s:%d port %d lifetime %d -> muted" %
                    (src[0], src[1], port, lifetime))
                return None
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


DESCRIPTION = """<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
<specVersion><major>1</major><minor>0</minor></specVersion>
<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<friendlyName>natter lab IGD</friendlyName>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType>
<controlURL>/ctl/L3F</controlURL></service></serviceList>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
<serviceList><service>
  <serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
  <serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
  <controlURL>/ctl/IPConn</controlURL>
</service></serviceList></device></deviceList></device></deviceList>
</device></root>
"""

SOAP_OK = """<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" \
s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>\
<u:%sResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">%s\
</u:%sResponse></s:Body></s:Envelope>
"""

SOAP_ERR = """<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" \
s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault>\
<faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>\
<UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>%d</errorCode>\
<errorDescription>%s</errorDescription></UPnPError></detail></s:Fault>\
</s:Body></s:Envelope>
"""


class Igd:
    """The UPnP side: SSDP and HTTP (description, SOAP), in threads."""

    def __init__(self, gw, args):
        self.gw = gw
        self.args = args
        self.lock = threading.Lock()
        self.seen = set()  # clients that had their first AddPortMapping
        self.nth = 0

    def ssdp(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("", 1900))
        mreq = socket.inet_aton("239.255.255.250") + socket.inet_aton(self.args.listen)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        host = self.args.listen
        if self.args.mode == "upnp-elsewhere":
            host = self.args.wan_ip
        while True:
            data, src = s.recvfrom(2048)
            text = data.decode("latin-1")
            m = re.search(r"^ST:\s*(\S+)", text, re.M | re.I)
            if not text.startswith("M-SEARCH") or not m:
                continue
            st = m.group(1)
            if "InternetGatewayDevice" not in st:
                continue
            log("SSDP M-SEARCH from %s:%d ST %s" % (src[0], src[1], st))
            out = ("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n"
                   "ST: %s\r\nUSN: uuid:lab::%s\r\nEXT:\r\n"
                   "SERVER: lab UPnP/1.0 fake/1\r\n"
                   "LOCATION: http://%s:%d/rootDesc.xml\r\n\r\n" %
                   (st, st, host, self.args.http_port))
            s.sendto(out.encode(), src)

    def garbage(self, what):
        return self.args.mode == "upnp-garbage" and self.args.garbage_at == what

    def soap(self, action, body, client):
        """Returns (status, xml)."""
        def arg(name):
            m = re.search(r"<%s>([^<]*)</%s>" % (name, name), body)
            return m.group(1) if m else ""
        if action == "GetExternalIPAddress":
            return 200, SOAP_OK % (action, "<NewExternalIPAddress>%s</NewExternalIPAddress>"
                                   % self.args.wan_ip, action)
        if action == "AddPortMapping":
            ext, port = int(arg("NewExternalPort")), int(arg("NewInternalPort"))
            lease, ip = int(arg("NewLeaseDuration")), arg("NewInternalClient")
            with self.lock:
                first = ip not in self.seen
                self.seen.add(ip)
            if first:
                code = 718
            elif lease != 0:
                code = 725
            else:
                with self.lock:
                    self.gw.map(ip, port, ext, 1)
                code = 0
            log("UPnP AddPortMapping from %s: %s:%d -> external %d lease %d -> %s" %
                (client, ip, port, ext, lease, code or "ok"))
            if code:
                return 500, SOAP_ERR % (code, "lab")
            return 200, SOAP_OK % (action, "", action)
        if action == "DeletePortMapping":
            ext = int(arg("NewExternalPort"))
            with self.lock:
                old = self.gw.rules.pop(ext, None)
                if old:
                    self.gw.iptables("-D", ext, *old)
            log("UPnP DeletePortMapping from %s: external %d (%s)" %
                (client, ext, "removed" if old else "none"))
            if not old:
                return 500, SOAP_ERR % (714, "NoSuchEntryInArray")
            return 200, SOAP_OK % (action, "", action)
        return 500, SOAP_ERR % (401, "Invalid Action")

    def handler(self):
        igd = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *a):
                pass

            def send(self, status, body, length=None):
                data = body if isinstance(body, bytes) else body.encode()
                self.send_response(status)
                self.send_header("Content-Type", 'text/xml; charset="utf-8"')
                self.send_header("Content-Length", str(len(data) if length is None else length))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                log("UPnP GET %s from %s" % (self.path, self.client_address[0]))
                if igd.garbage("description"):
                    # unclosed tags, a service without controlURL, then junk
                    junk = ("<root><device><serviceList><service><serviceType>"
                            "urn:schemas-upnp-org:service:WANIPConnection:1"
                            "</serviceType><controlURL>http://%s:1/x" % self.client_address[0])
                    self.send(200, junk.encode() + os.urandom(3000))
                    return
                self.send(200, DESCRIPTION)

            def do_POST(self):
                n = min(int(self.headers.get("Content-Length", "0")), 65536)
                body = self.rfile.read(n).decode("latin-1")
                action = self.headers.get("SOAPAction", "").strip('"').split("#")[-1]
                log("UPnP SOAP %s from %s" % (action, self.client_address[0]))
                if igd.garbage("soap"):
                    with igd.lock:
                        igd.nth += 1
                        k = igd.nth % 3
                    if k == 0:
                        self.send(200, os.urandom(500))
                    elif k == 1:  # claims more than it sends
                        self.send(200, "<s:Envelope><u:%sResponse>" % action, 100000)
                    else:
                        self.send(200, SOAP_OK % (action, "<NewExternalIPAddress>"
                                                  + "9" * 300, action))
                    return
                status, xml = igd.soap(action, body, self.client_address[0])
                self.send(status, xml)

        return Handler

    def start(self):
        threading.Thread(target=self.ssdp, daemon=True).start()
        srv = http.server.ThreadingHTTPServer(("", self.args.http_port), self.handler())
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True, help="the router's LAN address")
    ap.add_argument("--wan-ip", required=True)
    ap.add_argument("--wan-if", default="wan")
    ap.add_argument("--mode", default="honest",
                    choices=["honest", "short", "lie", "garbage", "pmp-only",
                             "upnp", "upnp-garbage", "upnp-elsewhere"])
    ap.add_argument("--lie-addr", default="203.0.113.99")
    ap.add_argument("--http-port", type=int, default=5000)
    ap.add_argument("--garbage-at", default="soap", choices=["description", "soap"])
    args = ap.parse_args()
    gw = Gateway(args)
    if args.mode.startswith("upnp"):
        Igd(gw, args).start()
        log("listening on %s:1900 and port %d (%s)" % (args.listen, args.http_port, args.mode))
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            gw.cleanup()
        return
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
