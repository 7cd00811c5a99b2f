"""PROXY protocol: mxd behind Debian's HAProxy, and raw headers.

HAProxy runs from a config generated here (mode tcp, numeric loopback
addresses, no logging to the network, in the foreground with -db), with
mxd as its one backend server, `send-proxy-v2` (or `send-proxy` for v1)
and `option smtpchk` health checks every 200 ms.  The client connects
from 127.0.0.2 (or ::1), so its address differs from the one HAProxy
connects to mxd from (127.0.0.1): whatever shows 127.0.0.2 learnt it
from the header.

Raw sockets then send each kind of header byte by byte, headers that
are malformed, none at all, one from an untrusted peer, and one
followed at once by SMTP bytes; and check that the per-address limits
count the client named in the header.
"""

import json
import os
import re
import smtplib
import socket
import ssl
import struct
import subprocess
import time

import pytest

from conftest import BINARY, RawClient

TRUSTED = "proxy_trusted = 127.0.0.0/8, ::1\n"
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
MSG = b"From: a@client.example\r\nSubject: proxied\r\n\r\nhello\r\n"


# ---- headers ---------------------------------------------------------------


def v1(proto, src=None, dst=None, sport=0, dport=0):
    if proto == "UNKNOWN":
        return b"PROXY UNKNOWN\r\n"
    return ("PROXY %s %s %s %d %d\r\n" % (proto, src, dst, sport,
                                          dport)).encode()


def v2(cmd, fam, body):
    return SIG + bytes([0x20 | cmd, fam]) + struct.pack(">H", len(body)) + \
        body


def v2_tcp4(src, dst, sport, dport, tlvs=b""):
    body = socket.inet_pton(socket.AF_INET, src) + \
        socket.inet_pton(socket.AF_INET, dst) + struct.pack(">HH", sport,
                                                            dport)
    return v2(1, 0x11, body + tlvs)


def v2_tcp6(src, dst, sport, dport):
    body = socket.inet_pton(socket.AF_INET6, src) + \
        socket.inet_pton(socket.AF_INET6, dst) + struct.pack(">HH", sport,
                                                             dport)
    return v2(1, 0x21, body)


def tlv(t, value):
    return bytes([t]) + struct.pack(">H", len(value)) + value


# ---- helpers ---------------------------------------------------------------


def proxied(start_mxd, extra="", mode="any", args=()):
    return start_mxd(*args, config="listen = 127.0.0.1:0 proxy=%s\n%s%s" %
                     (mode, TRUSTED, extra))


def raw(m, data=b"", bytewise=False):
    """A connection to m that has sent data (one octet per send, with a
    pause so that each is its own read, when bytewise)."""
    s = m.connect()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if bytewise:
        for i in range(len(data)):
            s.sendall(data[i:i + 1])
            time.sleep(0.003)
    elif data:
        s.sendall(data)
    return RawClient(s)


def closed_silently(c, timeout=5):
    """The server closed without sending a single octet."""
    assert c.closed(timeout), "still open"
    assert c.buf == b"", "server sent %r" % c.buf
    return True


def stop_line(m):
    m.stop()
    return re.search(r"^\S+ - stop .*$", m.logpath.read_text(), re.M).group(0)


def proxy_lines(m):
    return [ln for ln in m.log().splitlines() if re.match(r"\S+ \S+ proxy ",
                                                          ln)]


def session_lines(m, sid):
    return [ln for ln in m.log().splitlines() if ln.split(" ")[1:2] == [sid]]


def connect_line(m, client_re):
    pat = r" connect (?:level=debug )?client=%s " % client_re
    text = m.wait_log(pat)
    return re.search(r"^\S+ (\S+)%s.*$" % pat, text, re.M)


def free_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def listening(port, v6=False):
    """Is something listening on the loopback port (from /proc)?"""
    path = "/proc/net/tcp6" if v6 else "/proc/net/tcp"
    with open(path) as f:
        for line in f.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                return True
    return False


class HAProxy:
    """haproxy -db in front of one mxd, on a free loopback port."""

    def __init__(self, workdir, backend, send="send-proxy-v2",
                 bind="127.0.0.1"):
        self.bind = bind
        self.v6 = ":" in bind
        for attempt in range(5):
            self.port = free_port(bind)
            addr = "%s:%d" % (bind, self.port)
            # No log lines at all (no "log" in global): nothing goes to
            # a network or a syslog socket.
            cfg = workdir / "haproxy.cfg"
            cfg.write_text(
                "global\n"
                "    maxconn 100\n"
                "defaults\n"
                "    mode tcp\n"
                "    timeout connect 2s\n"
                "    timeout client 30s\n"
                "    timeout server 30s\n"
                # A check may take this long (under valgrind too); the
                # default would be inter, 200 ms.
                "    timeout check 5s\n"
                "frontend fe\n"
                "    bind %s\n"
                "    default_backend be\n"
                "backend be\n"
                "    option smtpchk EHLO haproxy.test\n"
                "    server mxd %s:%d %s check inter 200ms\n" %
                (addr, backend[0], backend[1], send))
            self.logpath = workdir / "haproxy.log"
            self.log = open(self.logpath, "wb")
            self.proc = subprocess.Popen(
                ["haproxy", "-db", "-f", str(cfg)], stdout=self.log,
                stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self.proc.poll() is not None or listening(self.port,
                                                             self.v6):
                    break
                time.sleep(0.02)
            if self.proc.poll() is None and listening(self.port, self.v6):
                return
            self.stop()
            # Someone took the port between our close and its bind.
            if "cannot bind" not in self.logpath.read_text(errors="replace"):
                break
        raise RuntimeError("haproxy did not start: %s" %
                           self.logpath.read_text(errors="replace"))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def haproxy(tmp_path):
    started = []

    def start(m, **kw):
        d = tmp_path / ("haproxy%d" % len(started))
        d.mkdir()
        h = HAProxy(d, (m.host, m.port), **kw)
        started.append(h)
        return h

    yield start
    for h in started:
        h.stop()


def send_through(h, source, rcpt="bob@example.test"):
    s = smtplib.SMTP(h.bind, h.port, local_hostname="client.example",
                     source_address=(source, 0), timeout=10)
    try:
        s.sendmail("alice@client.example", [rcpt], MSG)
        return s.sock.getsockname()[1]
    finally:
        s.quit()


def no_warnings(m):
    # Not "root": that one says how the test is run (as root, on
    # loopback), not what mxd made of the traffic.
    bad = [ln for ln in m.log().splitlines()
           if re.search(r" level=(warn|error)\b", ln) and
           not re.search(r" - root level=warn ", ln)]
    assert not bad, bad


# ---- through HAProxy -------------------------------------------------------


def test_haproxy_v2_client_address_everywhere(start_mxd, haproxy, tmp_path):
    """send-proxy-v2: the message's metadata and the log name the client
    (127.0.0.2), not HAProxy (127.0.0.1); the health checks are LOCAL,
    logged at debug only, counted apart, and warn about nothing."""
    cap = tmp_path / "capture"
    m = start_mxd("--capture", str(cap), config="listen = 127.0.0.1:0 "
                  "proxy=v2\n" + TRUSTED + "log_level = debug\n")
    h = haproxy(m)
    t0 = time.monotonic()
    m.wait_log(r"proxy_header=v2-LOCAL")
    port = send_through(h, "127.0.0.2")
    line = connect_line(m, r"127\.0\.0\.2:%d" % port)
    assert re.search(r" proxy=127\.0\.0\.1:\d+ proxy_header=v2-TCP4 pid=\d+$",
                     line.group(0)), line.group(0)
    sid = line.group(1)
    # The capture's metadata: the client from the header.
    metas = [json.loads(p.read_text()) for p in cap.glob("*.json")]
    assert len(metas) == 1
    assert metas[0]["client"] == {"ip": "127.0.0.2", "port": port}
    assert any(" accepted id=" in ln for ln in session_lines(m, sid))
    # ~1.5 s of health checks, then the log: nothing at warn or error.
    time.sleep(max(0, 1.5 - (time.monotonic() - t0)))
    no_warnings(m)
    checks = re.findall(r"^\S+ (\S+) connect level=debug "
                        r"client=127\.0\.0\.1:\d+ .* proxy_header=v2-LOCAL pid=\d+$",
                        m.log(), re.M)
    assert len(checks) >= 3, m.log()
    # Each check: its lines at debug only.
    for ln in session_lines(m, checks[0]):
        assert " level=debug" in ln, ln
    assert h.proc.poll() is None
    stop = stop_line(m)
    assert " connections=1 " in stop, stop
    n = int(re.search(r" proxy_health=(\d+)", stop).group(1))
    assert n >= len(checks), stop
    assert " proxy_missing=0 " in stop and " proxy_bad=0 " in stop, stop


def test_haproxy_v1_received_header(start_mxd, haproxy):
    """send-proxy (v1): Received names the client; HAProxy's v1 checks,
    which name their own source, are taken as the proxy's own."""
    m = proxied(start_mxd, mode="v1", extra="log_level = debug\n")
    h = haproxy(m, send="send-proxy")
    m.wait_log(r" connect level=debug .* proxy_header=v1-TCP4 pid=\d+$")
    port = send_through(h, "127.0.0.2")
    line = connect_line(m, r"127\.0\.0\.2:%d" % port)
    assert "proxy_header=v1-TCP4" in line.group(0)
    msgs = m.wait_messages(1)
    head = msgs[0].read_bytes().split(b"\n\n")[0]
    assert re.search(rb"^Received: from client\.example \(\[127\.0\.0\.2\]\)",
                     head, re.M), head
    time.sleep(1.0)
    no_warnings(m)
    stop = stop_line(m)
    assert " connections=1 " in stop, stop


def test_haproxy_ipv6_client(start_mxd, haproxy):
    """A client on ::1 through HAProxy to mxd on 127.0.0.1: v2 TCP6, and
    Received says IPv6."""
    m = proxied(start_mxd, mode="v2")
    h = haproxy(m, bind="::1")
    port = send_through(h, "::1")
    line = connect_line(m, r"\[::1\]:%d" % port)
    assert "proxy_header=v2-TCP6" in line.group(0)
    assert re.search(r" proxy=127\.0\.0\.1:\d+ ", line.group(0))
    head = m.wait_messages(1)[0].read_bytes().split(b"\n\n")[0]
    assert b"([IPv6:::1])" in head, head


# ---- raw headers, byte by byte ---------------------------------------------


CASES = {
    "v1-TCP4": (v1("TCP4", "192.0.2.7", "127.0.0.1", 40001, 25),
                r"192\.0\.2\.7:40001"),
    "v1-TCP6": (v1("TCP6", "2001:db8::7", "::1", 40002, 25),
                r"\[2001:db8::7\]:40002"),
    "v1-UNKNOWN": (v1("UNKNOWN"), r"127\.0\.0\.1:\d+"),
    "v2-TCP4": (v2_tcp4("192.0.2.8", "127.0.0.1", 40003, 25),
                r"192\.0\.2\.8:40003"),
    "v2-TCP6": (v2_tcp6("2001:db8::8", "::1", 40004, 25),
                r"\[2001:db8::8\]:40004"),
    "v2-LOCAL": (v2(0, 0x00, b""), r"127\.0\.0\.1:\d+"),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_header_byte_by_byte(start_mxd, kind):
    header, client = CASES[kind]
    m = proxied(start_mxd, extra="log_level = debug\n")
    c = raw(m, header, bytewise=True)
    c.expect(220)
    c.cmd("EHLO client.example")
    c.send("QUIT\r\n")
    c.expect(221)
    line = connect_line(m, client)
    # The worker's pid ends the connect line.
    assert re.search(r" proxy_header=%s pid=\d+$" % kind,
                     line.group(0)), line.group(0)
    text = m.wait_log(r" %s disconnect " % line.group(1))
    assert re.search(r" %s disconnect (level=debug )?reason=quit .*"
                     r"bytes_in=%d " %
                     (line.group(1), len(header) + len(
                         b"EHLO client.example\r\nQUIT\r\n")), text), text
    stop = stop_line(m)
    if kind == "v2-LOCAL":
        assert re.search(r" connections=0 .* proxy_health=1$", stop), stop
        assert " level=debug" in line.group(0)
    else:
        assert re.search(r" connections=1 .* proxy_health=0$", stop), stop
        assert " level=debug" not in line.group(0)


def test_v2_tlvs_and_received_ipv6(start_mxd):
    """TLVs (ALPN, authority, a NOOP) are skipped; a message then gets the
    header's IPv6 client in Received."""
    tlvs = tlv(0x01, b"smtp") + tlv(0x02, b"mx.example") + tlv(0x04, b"")
    hdr = v2_tcp4("192.0.2.9", "127.0.0.1", 40005, 25, tlvs)
    m = proxied(start_mxd)
    c = raw(m, hdr, bytewise=True)
    c.expect(220)
    c.cmd("EHLO client.example")
    c.close()
    connect_line(m, r"192\.0\.2\.9:40005")
    c = raw(m, v2_tcp6("2001:db8::9", "::1", 40006, 25))
    c.expect(220)
    c.cmd("EHLO client.example")
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(MSG + b".\r\n")
    c.expect(250)
    head = m.wait_messages(1)[0].read_bytes().split(b"\n\n")[0]
    assert b"Received: from client.example ([IPv6:2001:db8::9])" in head, \
        head


def ehlo_offers_starttls(c):
    code, lines = c.cmd("EHLO client.example")
    assert code == 250, lines
    return any(ln[4:] == "STARTTLS" for ln in lines)


def test_tls_fallback_memory_is_per_real_client(start_mxd):
    """A failed handshake puts the client the header named, not the
    proxy, into tls_fallback_window."""
    m = proxied(start_mxd, extra="tls_fallback_window = 60s\n")
    c = raw(m, v2_tcp4("192.0.2.7", "127.0.0.1", 40030, 25))
    c.expect(220)
    assert ehlo_offers_starttls(c)
    c.cmd("STARTTLS")
    c.send(b"\x16\x03\x01\x00\x04junk" + b"\x00" * 64)
    assert c.closed()
    c.close()
    m.wait_log(r" tls_failed level=warn client=192\.0\.2\.7 ")
    same = raw(m, v2_tcp4("192.0.2.7", "127.0.0.1", 40031, 25))
    same.expect(220)
    assert not ehlo_offers_starttls(same)
    other = raw(m, v2_tcp4("192.0.2.8", "127.0.0.1", 40032, 25))
    other.expect(220)
    assert ehlo_offers_starttls(other)
    line = connect_line(m, r"192\.0\.2\.7:40031")
    assert "tls_fallback=starttls_not_offered" in line.group(0)


def test_haproxy_v2_then_starttls(start_mxd, haproxy):
    """STARTTLS after the header, through HAProxy: the TLS session's
    Received still names the client."""
    m = proxied(start_mxd, mode="v2")
    h = haproxy(m)
    s = smtplib.SMTP(h.bind, h.port, local_hostname="client.example",
                     source_address=("127.0.0.2", 0), timeout=10)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s.starttls(context=ctx)
    s.sendmail("alice@client.example", ["bob@example.test"], MSG)
    s.quit()
    head = m.wait_messages(1)[0].read_bytes().split(b"\n\n")[0]
    # RFC 3848: "with ESMTPS" once TLS is up.
    assert re.search(rb"Received: from client\.example \(\[127\.0\.0\.2\]\)"
                     rb"\n\tby \S+ \(mxd\) with ESMTPS id ", head), head


def test_health_checks_get_no_fault(start_mxd):
    """A LOCAL check neither meets nor uses up a fault rule, nor takes a
    connection number: the first client session does."""
    m = proxied(start_mxd, extra="fault = greeting first 1 reply 421 4.3.2 "
                "Not now\n")
    check = raw(m, v2(0, 0x00, b""))
    check.expect(220)
    check.cmd("QUIT")
    client = raw(m, v2_tcp4("192.0.2.7", "127.0.0.1", 40040, 25))
    client.expect(421, "Not now")
    assert client.closed()
    later = raw(m, v2_tcp4("192.0.2.7", "127.0.0.1", 40041, 25))
    later.expect(220)
    later.cmd("QUIT")
    text = m.log()
    assert re.search(r" fault at=greeting conn=1 rule=", text), text
    stop = stop_line(m)
    assert re.search(r" connections=2 .* proxy_health=1 faults=1$", stop), \
        stop


# ---- refused: untrusted, malformed, missing --------------------------------


def test_untrusted_peer(start_mxd):
    m = start_mxd(config="listen = 127.0.0.1:0 proxy=v2\n"
                  "proxy_trusted = 10.0.0.0/8, 2001:db8::/32\n")
    c = raw(m, v2_tcp4("192.0.2.7", "127.0.0.1", 1, 25))
    closed_silently(c)
    m.wait_log(r" proxy level=warn msg=")
    lines = proxy_lines(m)
    assert len(lines) == 1, lines
    assert re.search(r' proxy level=warn msg="untrusted peer 127\.0\.0\.1 '
                     r'\(not in proxy_trusted\)" peer=127\.0\.0\.1 '
                     r'listener=127\.0\.0\.1:%d$' % m.port, lines[0]), lines[0]
    # That one line and nothing else for the session.
    assert len(session_lines(m, lines[0].split()[1])) == 1
    stop = stop_line(m)
    assert " connections=0 " in stop and " proxy_untrusted=1 " in stop, stop


MALFORMED = [
    (b"PROXY TCP4 192.0.2.7 127.0.0.1 1\r\n", "malformed v1 header: "
     "expected four fields"),
    (b"PROXY TCP4 192.0.2.777 127.0.0.1 1 2\r\n", "malformed v1 header: "
     "bad IPv4 address"),
    (b"PROXY TCP4 192.0.2.7 127.0.0.1 1 2\n", "malformed v1 header: LF "
     "without CR"),
    (b"PROXY " + b"X" * 120, "oversized v1 header"),
    (b"EHLO client.example\r\n", "not a PROXY header"),
    (b"GET / HTTP/1.1\r\n", "not a PROXY header"),
    (SIG + b"\x11\x11\x00\x0c" + bytes(12), "malformed v2 header: version"),
    (SIG + b"\x21\x11\x00\x10" + bytes(12) + b"\x04\x00\x09x",
     "malformed v2 header: a TLV runs past the header"),
    (SIG + b"\x21\x11\x02\x09", "oversized v2 header"),
    (SIG[:5] + b"X", "not a PROXY header (bad v2 signature)"),
]


def test_malformed_headers(start_mxd):
    """Each: closed, no SMTP reply, one proxy line with the reason."""
    m = proxied(start_mxd)
    for i, (data, why) in enumerate(MALFORMED):
        c = raw(m, data)
        closed_silently(c)
        m.wait_log(r"(?s)( proxy level=warn msg=.*){%d}" % (i + 1))
        c.close()
    lines = proxy_lines(m)
    assert len(lines) == len(MALFORMED), lines
    for ln, (data, why) in zip(lines, MALFORMED):
        assert ' proxy level=warn msg="%s' % why in ln, (ln, why)
    text = m.log()
    assert " connect " not in text and " disconnect " not in text, text
    stop = stop_line(m)
    assert " proxy_bad=%d " % len(MALFORMED) in stop, stop


def test_no_header_within_proxy_timeout(start_mxd):
    """Nothing, or half a header: closed after proxy_timeout, silently;
    so is a peer that closes before the header is whole."""
    m = proxied(start_mxd, extra="proxy_timeout = 1s\n")
    t0 = time.monotonic()
    quiet = raw(m)
    half = raw(m, b"PROXY TCP4 192.0.2.7 ")
    closed_silently(quiet, timeout=10)
    closed_silently(half, timeout=10)
    took = time.monotonic() - t0
    assert 0.9 <= took < 8, took
    early = raw(m, SIG[:7])
    early.sock.shutdown(socket.SHUT_WR)
    closed_silently(early)
    m.wait_log(r"(?s)( proxy level=warn msg=.*){3}")
    lines = proxy_lines(m)
    assert len(lines) == 3, lines
    assert sum('msg="no PROXY header within proxy_timeout (1s, 0 octets '
               'read)"' in ln for ln in lines) == 1, lines
    assert sum('msg="no PROXY header within proxy_timeout (1s, 21 octets '
               'read)"' in ln for ln in lines) == 1, lines
    assert sum('msg="no PROXY header: the peer closed after 7 octets"' in ln
               for ln in lines) == 1, lines
    stop = stop_line(m)
    assert " proxy_missing=3 " in stop, stop


# ---- what follows the header -----------------------------------------------


def test_bytes_after_header_are_the_clients(start_mxd):
    """Header and EHLO in one segment: with greeting_delay, the EHLO is
    talk before the greeting on both listeners alike (554, pregreet);
    without, it is the first command after the 220."""
    m = start_mxd(config="listen = 127.0.0.1:0\n"
                  "listen = 127.0.0.1:0 proxy=any\n" + TRUSTED +
                  "greeting_delay = 1s\n")
    direct_port, proxy_port = m.listening[0][1], m.listening[1][1]
    replies = {}
    for name, port, data in (
            ("direct", direct_port, b"EHLO client.example\r\n"),
            ("v1", proxy_port, v1("TCP4", "192.0.2.7", "127.0.0.1", 40007,
                                  25) + b"EHLO client.example\r\n"),
            ("v2", proxy_port, v2_tcp4("192.0.2.8", "127.0.0.1", 40008, 25)
             + b"EHLO client.example\r\n")):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(data)
        c = RawClient(s)
        replies[name] = c.reply()
        assert c.closed()
        c.close()
    assert replies["direct"][0] == 554, replies
    assert replies["v1"] == replies["direct"], replies
    assert replies["v2"] == replies["direct"], replies
    text = m.wait_log(r"(?s)( pregreet bytes=21 .*){3}")
    assert len(re.findall(r' pregreet bytes=21 data="EHLO client\.example',
                          text)) == 3, text
    stop = stop_line(m)
    assert " pregreet=3 " in stop, stop

    m2 = proxied(start_mxd)
    c = raw(m2, v2_tcp4("192.0.2.8", "127.0.0.1", 40009, 25) +
            b"EHLO client.example\r\nNOOP\r\n")
    c.expect(220)
    assert c.reply()[0] == 250
    c.expect(250, "2.0.0")
    connect_line(m2, r"192\.0\.2\.8:40009")


# ---- per-address limits count the client -----------------------------------


def test_per_ip_limit_counts_the_real_client(start_mxd):
    m = start_mxd(config="listen = 127.0.0.1:0\n"
                  "listen = 127.0.0.1:0 proxy=v2\n" + TRUSTED +
                  "max_connections_per_ip = 1\n")
    direct_port, proxy_port = m.listening[0][1], m.listening[1][1]

    def conn(port, header=b""):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(header)
        return RawClient(s)

    # Direct: the second from the same address is refused at connect.
    d1 = conn(direct_port)
    d1.expect(220)
    d2 = conn(direct_port)
    direct_refusal = d2.reply()
    assert direct_refusal[0] == 421 and d2.closed(), direct_refusal
    d1.cmd("QUIT")
    d1.close()
    d2.close()
    m.wait_log(r"(?s)( disconnect .*){2}")

    # Proxied, the same real client twice: refused the same way, though
    # every connection comes from HAProxy's one address.
    hdr = v2_tcp4("192.0.2.7", "127.0.0.1", 40010, 25)
    p1 = conn(proxy_port, hdr)
    p1.expect(220)
    p2 = conn(proxy_port, v2_tcp4("192.0.2.7", "127.0.0.1", 40011, 25))
    assert p2.reply() == direct_refusal
    assert p2.closed()
    p2.close()
    # Two other clients: both welcome, alongside p1.
    p3 = conn(proxy_port, v2_tcp4("192.0.2.8", "127.0.0.1", 40012, 25))
    p4 = conn(proxy_port, v2_tcp6("2001:db8::8", "::1", 40013, 25))
    p3.expect(220)
    p4.expect(220)
    # Refused ones and failed headers leave no count behind: once p1
    # is gone, 192.0.2.7 may come again.
    bad = conn(proxy_port, b"PROXY nonsense\r\n")
    closed_silently(bad)
    p1.cmd("QUIT")
    p1.close()
    m.wait_log(r"(?s)client=192\.0\.2\.7:40010 .* disconnect reason=quit")
    time.sleep(0.2)
    p5 = conn(proxy_port, v2_tcp4("192.0.2.7", "127.0.0.1", 40014, 25))
    p5.expect(220)
    for c in (p3, p4, p5):
        c.cmd("QUIT")
        c.close()
    text = m.log()
    assert re.search(r" connect client=192\.0\.2\.7:40011 .*"
                     r"refused=too_many_connections_ip", text), text
    stop = stop_line(m)
    assert " connections=7 " in stop, stop


def test_connection_rate_counts_the_real_client(start_mxd):
    """max_connection_rate: a client named in headers is refused at its
    third connection in the minute; another through the same proxy is
    not."""
    m = proxied(start_mxd, mode="v1", extra="max_connection_rate = 2\n")
    for port in (40050, 40051):
        c = raw(m, v1("TCP4", "192.0.2.7", "127.0.0.1", port, 25))
        c.expect(220)
        c.cmd("QUIT")
        c.close()
    c = raw(m, v1("TCP4", "192.0.2.7", "127.0.0.1", 40052, 25))
    c.expect(421, "4.7.0")
    assert c.closed()
    c = raw(m, v1("TCP4", "192.0.2.8", "127.0.0.1", 40053, 25))
    c.expect(220)
    c.cmd("QUIT")
    line = connect_line(m, r"192\.0\.2\.7:40052")
    assert "refused=connection_rate" in line.group(0)
    stop = stop_line(m)
    assert " rate_limited=1 " in stop, stop


# ---- configuration ---------------------------------------------------------


@pytest.mark.parametrize("conf,why", [
    ("listen = 127.0.0.1:0 proxy=v2\n",
     "listen 127.0.0.1:0: proxy_protocol v2 needs proxy_trusted"),
    ("proxy_protocol = any\n",
     "listen 127.0.0.1:2525: proxy_protocol any needs proxy_trusted"),
    ("listen = 127.0.0.1:0 proxy=v3\n" + TRUSTED,
     "proxy=v3: expected off, v1, v2 or any"),
    ("proxy_protocol = yes please\n", "proxy_protocol: 'yes please' is "
     "not one of off v1 v2 any"),
    ("proxy_trusted = 10.0.0.1/8\n", "has bits set past the prefix"),
    ("proxy_trusted = 10.0.0.0/33\n", "is not ADDR or ADDR/LEN"),
    ("proxy_trusted = mx.example\n", "is not ADDR or ADDR/LEN"),
    ("proxy_timeout = 0\n", "proxy_timeout: expected a duration from 1s"),
])
def test_config_errors(tmp_path, conf, why):
    path = tmp_path / "mxd.conf"
    path.write_text(conf)
    r = subprocess.run([BINARY, "-c", str(path), "-n"], capture_output=True,
                       text=True, timeout=30, cwd=tmp_path)
    assert r.returncode != 0, r
    assert why in r.stderr + r.stdout, r.stderr + r.stdout


def test_config_global_default_and_listener_off(start_mxd):
    """proxy_protocol is the listeners' default; proxy=off opts one out."""
    m = start_mxd(config="proxy_protocol = v1\n" + TRUSTED +
                  "listen = 127.0.0.1:0\nlisten = 127.0.0.1:0 proxy=off\n")
    c = raw(m, v1("TCP4", "192.0.2.7", "127.0.0.1", 40020, 25))
    c.expect(220)
    c.close()
    connect_line(m, r"192\.0\.2\.7:40020")
    s = socket.create_connection(("127.0.0.1", m.listening[1][1]),
                                 timeout=10)
    d = RawClient(s)
    d.expect(220)
    d.close()
