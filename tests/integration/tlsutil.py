"""Helpers for the STARTTLS tests: an mxd that reports its certificate,
throwaway certificates made with openssl(1), a hand-built ClientHello,
and a reader for the TLS records that come back.

Shared by test_starttls.py, test_tls_clients.py and test_testssl.py.
"""

import os
import pathlib
import re
import socket
import ssl
import struct
import subprocess
import time

import pytest

from conftest import BINARY, WRAPPER, Mxd, RawClient, quiet, stop_all

HOST = "mx.test"


def _library():
    """The mbedTLS version the binary under test is built on."""
    out = subprocess.run([BINARY, "--version"], capture_output=True,
                         text=True, timeout=10).stdout
    m = re.search(r"mbedTLS (\d+)\.(\d+)", out)
    assert m, "mxd --version names no mbedTLS: %r" % out
    return int(m.group(1)), int(m.group(2))


# mbedTLS 3.x negotiates TLS 1.3 with clients that offer it; 2.28 caps
# at TLS 1.2.  Expectations follow the build under test.
MBEDTLS = _library()
TLS_TOP = "TLSv1.3" if MBEDTLS[0] >= 3 else "TLSv1.2"

# ---- an mxd that prints its certificate paths ------------------------------


class TlsMxd(Mxd):
    """Mxd started with --print-cert-path: .certs holds the printed paths.

    conftest's Mxd reads stdout up to the "listening" lines and drops
    the rest, so this start-up is the same loop that keeps the
    "certificate PATH" lines (which mxd prints before "listening").
    """

    def __init__(self, workdir, args=(), config=None, env=None):
        args = list(args)
        if "--print-cert-path" not in args:
            args.append("--print-cert-path")
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.maildir = self.workdir / "mail"
        self.logpath = self.workdir / "mxd.log"
        argv = WRAPPER + [BINARY]
        if not any(a in ("-l", "--listen") for a in args):
            argv += ["--listen", "127.0.0.1:0"]
        if "-m" not in args and "--maildir" not in args:
            argv += ["--maildir", str(self.maildir)]
        argv += args
        self.argv = argv
        self.certs = []
        self.stdout_lines = []
        self._log = open(self.logpath, "wb")
        self.proc = subprocess.Popen(
            argv, cwd=self.workdir, stdout=subprocess.PIPE,
            stderr=self._log, env=env)
        self.listening = []
        want = max(1, sum(1 for a in args if a in ("-l", "--listen")))
        deadline = time.monotonic() + (60 if WRAPPER else 10)
        while len(self.listening) < want:
            line = self.proc.stdout.readline().decode()
            if not line:
                self._log.flush()
                raise RuntimeError("mxd exited before listening: %s" %
                                   self.logpath.read_text())
            self.stdout_lines.append(line.rstrip("\n"))
            m = re.match(r"certificate (.+)$", line.rstrip("\n"))
            if m:
                self.certs.append(m.group(1))
            m = re.match(r"listening (\[?[^\]]*\]?):(\d+)$", line.strip())
            if m:
                self.listening.append((m.group(1).strip("[]"),
                                       int(m.group(2))))
            if time.monotonic() > deadline:
                raise RuntimeError("mxd did not start")
        self.host, self.port = self.listening[0]

    @property
    def cert(self):
        assert self.certs, "mxd printed no certificate path: %r" % (
            self.stdout_lines,)
        return self.certs[0]

    def client_on(self, index, timeout=10):
        host, port = self.listening[index]
        return RawClient(socket.create_connection((host, port),
                                                  timeout=timeout))


@pytest.fixture
def start_tls_mxd(tmp_path):
    """start_tls_mxd(*args) -> TlsMxd with -H mx.test; all stopped after."""
    started = []

    def start(*args, workdir=None, env=None, hostname=HOST):
        wd = workdir or tmp_path / ("mxd%d" % len(started))
        a = list(args)
        if hostname is not None and "-H" not in a:
            a = ["-H", hostname] + a
        m = TlsMxd(wd, a, env=env)
        started.append(m)
        return m

    yield start
    stop_all(started)


# ---- certificates ----------------------------------------------------------


def make_cert(directory, name, kind="rsa", sans=None, days=30,
              stem=None):
    """A self-signed certificate and key made by openssl; (cert, key)."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = stem or "%s-%s" % (name, kind)
    cert = directory / (stem + ".crt")
    key = directory / (stem + ".key")
    if kind == "rsa":
        newkey = ["-newkey", "rsa:2048"]
    elif kind == "ec":
        newkey = ["-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:prime256v1"]
    else:
        raise ValueError(kind)
    sans = sans if sans is not None else [name]
    argv = ["openssl", "req", "-x509", *newkey, "-nodes", "-sha256",
            "-days", str(days), "-subj", "/CN=%s" % name,
            "-keyout", str(key), "-out", str(cert)]
    if sans:
        argv += ["-addext", "subjectAltName=" +
                 ",".join("DNS:%s" % s for s in sans)]
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


def cert_der(path):
    """The first certificate of a PEM file, as DER."""
    text = pathlib.Path(path).read_text()
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                  text, re.S)
    assert m, "no certificate in %s" % path
    return ssl.PEM_cert_to_DER_cert(m.group(0))


# ---- SMTP helpers ----------------------------------------------------------


def ehlo_lines(c, name="client.test"):
    code, lines = c.cmd("EHLO " + name)
    assert code == 250, lines
    return [l[4:] for l in lines]


def to_starttls(m, client=None):
    """Connect, EHLO, STARTTLS -> 220: the RawClient, its buffer empty."""
    c = client or m.client()
    c.expect(220)
    assert "STARTTLS" in ehlo_lines(c)
    c.send("STARTTLS\r\n")
    lines = c.expect(220)
    assert lines == ["220 2.0.0 Ready to start TLS"], lines
    assert c.buf == b"", "bytes after the 220: %r" % c.buf
    return c


QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as (\S+)$")


def send_txn(c, subject, sender="sender@client.test", rcpt="rcpt@dest.test"):
    """MAIL, RCPT, DATA on a greeted RawClient; returns the queue id."""
    code, lines = c.cmd("MAIL FROM:<%s>" % sender)
    assert lines == ["250 2.1.0 Ok"], lines
    code, lines = c.cmd("RCPT TO:<%s>" % rcpt)
    assert lines == ["250 2.1.5 Ok"], lines
    code, lines = c.cmd("DATA")
    assert code == 354, lines
    c.send("Subject: %s\r\n\r\nbody of %s\r\n.\r\n" % (subject, subject))
    code, lines = c.reply()
    q = QUEUED.match(lines[0])
    assert q, lines
    return q.group(1)


def deliver_plain(m, subject="plain"):
    """A whole plaintext session: (EHLO keywords, queue id)."""
    c = m.client()
    try:
        c.expect(220)
        lines = ehlo_lines(c)
        qid = send_txn(c, subject)
        assert c.cmd("QUIT")[0] == 221
        return lines, qid
    finally:
        c.close()


def stored(m, subject, timeout=10):
    """The stored message (bytes) whose Subject is subject."""
    deadline = time.monotonic() + timeout
    while True:
        for p in m.messages():
            data = p.read_bytes()
            if ("\nSubject: %s\n" % subject).encode() in data:
                return data
        if time.monotonic() > deadline:
            raise AssertionError("no stored message with Subject %r in %r" %
                                 (subject, [p.name for p in m.messages()]))
        time.sleep(0.02)


def tls_context(cafile=None, verify=True):
    ctx = ssl.create_default_context(cafile=cafile)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def wrap(c, ctx, server_hostname=HOST):
    """TLS on a RawClient's socket after its 220: a new RawClient."""
    assert c.buf == b""
    s = ctx.wrap_socket(c.sock, server_hostname=server_hostname)
    return RawClient(s)



# ---- TLS records by hand ---------------------------------------------------

CT_CCS, CT_ALERT, CT_HANDSHAKE, CT_APPDATA = 20, 21, 22, 23

ALERTS = {10: "unexpected_message", 40: "handshake_failure",
          42: "bad_certificate", 50: "decode_error",
          70: "protocol_version", 80: "internal_error",
          109: "missing_extension"}

# Signature algorithms a TLS 1.2 client offers (RFC 5246 7.4.1.4.1,
# RFC 8446 4.2.3): ECDSA and RSA with SHA-256/384/512, and RSA-PSS.
SIGALGS = [0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806,
           0x0401, 0x0501, 0x0601]

# Suites mxd offers at TLS 1.2 (tls_mbedtls.c suites_aead).
ECDHE_ECDSA_GCM = [0xc02b, 0xc02c]
ECDHE_RSA_GCM = [0xc02f, 0xc030]


def _vec(prefix, data):
    n = len(data)
    return n.to_bytes(prefix, "big") + data


def _ext(etype, data):
    return struct.pack(">H", etype) + _vec(2, data)


def client_hello(ciphers, version=0x0303, record_version=0x0301,
                 groups=(29, 23, 24), sigalgs=SIGALGS, sni=None,
                 supported_versions=None, point_formats=True):
    """One handshake record holding a ClientHello (RFC 5246 7.4.1.2)."""
    exts = b""
    if sni is not None:
        name = sni.encode()
        exts += _ext(0, _vec(2, b"\x00" + _vec(2, name)))
    if groups is not None:
        exts += _ext(10, _vec(2, b"".join(struct.pack(">H", g)
                                          for g in groups)))
    if point_formats:
        exts += _ext(11, _vec(1, b"\x00"))
    if sigalgs is not None:
        exts += _ext(13, _vec(2, b"".join(struct.pack(">H", a)
                                          for a in sigalgs)))
    if supported_versions is not None:
        exts += _ext(43, _vec(1, b"".join(struct.pack(">H", v)
                                          for v in supported_versions)))
    exts += _ext(0xff01, b"\x00")		# renegotiation_info, empty
    body = (struct.pack(">H", version) + os.urandom(32) + b"\x00" +
            _vec(2, b"".join(struct.pack(">H", c) for c in ciphers)) +
            b"\x01\x00" + _vec(2, exts))
    hs = b"\x01" + _vec(3, body)
    return struct.pack(">BHH", CT_HANDSHAKE, record_version, len(hs)) + hs


def alert_record(desc, level=2, version=0x0303):
    return struct.pack(">BHHBB", CT_ALERT, version, 2, level, desc)


def read_to_end(sock, timeout=10):
    """Everything the peer sends until it closes: (bytes, how, seconds).

    how is "eof" (recv returned b''), "reset" or "timeout".
    """
    data = b""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, "timeout", time.monotonic() - start
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return data, "reset", time.monotonic() - start
        except socket.timeout:
            return data, "timeout", time.monotonic() - start
        if not chunk:
            return data, "eof", time.monotonic() - start
        data += chunk


def parse_records(data):
    """TLS records: [(type, version, body)]; asserts whole framing."""
    out = []
    off = 0
    while off < len(data):
        assert len(data) - off >= 5, "truncated record header: %r" % (
            data[off:],)
        t, v, n = struct.unpack(">BHH", data[off:off + 5])
        assert 20 <= t <= 24 and v >> 8 == 3, (
            "not a TLS record at offset %d: %r" % (off, data[off:off + 40]))
        assert len(data) - off - 5 >= n, "truncated record body"
        out.append((t, v, data[off + 5:off + 5 + n]))
        off += 5 + n
    return out


def handshake_types(records):
    """The handshake message types in plaintext handshake records."""
    buf = b"".join(b for t, v, b in records if t == CT_HANDSHAKE)
    types = []
    off = 0
    while off + 4 <= len(buf):
        n = int.from_bytes(buf[off + 1:off + 4], "big")
        types.append(buf[off])
        off += 4 + n
    return types


def tls_failed_line(m, sid=None, timeout=10):
    """The one tls_failed log line (waits for it)."""
    text = m.wait_log(r"tls_failed ", timeout=timeout)
    lines = [l for l in text.splitlines() if " tls_failed " in l]
    assert len(lines) == 1, "expected one tls_failed line:\n%s" % text
    return lines[0]


def logfields(line):
    """key=value pairs of one logfmt line (quoted values unquoted)."""
    out = {}
    for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line):
        v = m.group(2)
        if v.startswith('"'):
            v = re.sub(r'\\(.)', r'\1', v[1:-1])
        out[m.group(1)] = v
    return out
