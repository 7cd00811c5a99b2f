#!/usr/bin/env python3
"""Capture the seed inputs of fuzz_tls_hello from real TLS stacks.

  tests/fuzz/capture_tls_seeds.py

Writes tests/fuzz/corpus/fuzz_tls_hello/:
  c-*   what a client sends first (its ClientHello record), taken by a
        local listener from openssl s_client and Python's ssl module, and
        hellos built by hand as in tests/integration/tlsutil.py (GREASE,
        TLS 1.3 only, SNI, no extensions, two records);
  s-*   what openssl s_server sends back to a captured hello (ServerHello
        and the rest, in clear for TLS 1.2, behind a ChangeCipherSpec for
        TLS 1.3), and the alert it sends for a malformed hello.
The first octet is fuzz_tls_hello's header: bit 0 set for what a client
sends (the receiving side), and some inputs get split points too.

The captures hold random values and differ from run to run; the script is
committed to show where the seeds came from, not to be rerun by tests.
Needs openssl(1) on PATH.  The certificate is a throwaway made here.
"""
import os
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "fuzz_tls_hello")


def read_record(sock, timeout=5.0):
    """One whole TLS record (or what came before the peer stopped)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while len(data) < 5 or len(data) < 5 + struct.unpack(
                ">H", data[3:5])[0]:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    return data


def read_all(sock, quiet=1.0):
    """Everything until the peer is quiet for a while or closes."""
    sock.settimeout(quiet)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def capture_client(run):
    """Listen, let run(port) connect, return its first record."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    port = lsock.getsockname()[1]
    got = {}

    def serve():
        conn, _ = lsock.accept()
        got["data"] = read_record(conn)
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    try:
        run(port)
    except (OSError, ssl.SSLError, subprocess.TimeoutExpired):
        pass
    t.join(10)
    lsock.close()
    return got.get("data", b"")


def openssl_client(*args):
    def run(port):
        subprocess.run(["openssl", "s_client", "-connect",
                        "127.0.0.1:%d" % port] + list(args),
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=10)
    return run


def python_client(ctx, sni="mx.test"):
    def run(port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname=sni):
                pass
    return run


def _vec(prefix, data):
    return len(data).to_bytes(prefix, "big") + data


def _ext(etype, data):
    return struct.pack(">H", etype) + _vec(2, data)


def built_hello(ciphers, version=0x0303, record_version=0x0301,
                groups=(29, 23, 24), sni=None, versions=None, exts=True):
    """A ClientHello record, as tlsutil.client_hello builds it."""
    e = b""
    if exts:
        if sni is not None:
            e += _ext(0, _vec(2, b"\x00" + _vec(2, sni.encode())))
        if groups is not None:
            e += _ext(10, _vec(2, b"".join(struct.pack(">H", g)
                                           for g in groups)))
        e += _ext(11, _vec(1, b"\x00"))
        e += _ext(13, _vec(2, struct.pack(">4H", 0x0403, 0x0804, 0x0401,
                                          0x0201)))
        if versions is not None:
            e += _ext(43, _vec(1, b"".join(struct.pack(">H", v)
                                           for v in versions)))
        e += _ext(0xff01, b"\x00")
    body = (struct.pack(">H", version) + bytes(range(32)) + b"\x00" +
            _vec(2, b"".join(struct.pack(">H", c) for c in ciphers)) +
            b"\x01\x00" + (_vec(2, e) if exts else b""))
    hs = b"\x01" + _vec(3, body)
    return struct.pack(">BHH", 22, record_version, len(hs)) + hs


def server_reply(cert, key, hello, *args):
    """What openssl s_server sends back to hello."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    srv = subprocess.Popen(["openssl", "s_server", "-accept",
                            "127.0.0.1:%d" % port, "-cert", cert, "-key",
                            key, "-naccept", "1", "-quiet"] + list(args),
                           stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except ConnectionRefusedError:
                time.sleep(0.1)
        else:
            return b""
        s.sendall(hello)
        data = read_all(s)
        s.close()
        return data
    finally:
        srv.kill()
        srv.wait()


def header(keep, cuts=()):
    h = bytes([(1 if keep else 0) | len(cuts) << 2])
    return h + b"".join(struct.pack(">H", c) for c in cuts)


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {}

    seeds["c-openssl"] = capture_client(openssl_client("-servername",
                                                       "mx.test"))
    seeds["c-openssl-tls12"] = capture_client(openssl_client("-tls1_2"))
    seeds["c-openssl-tls13"] = capture_client(openssl_client(
        "-tls1_3", "-groups", "X25519:P-256", "-servername", "mx.test"))
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    seeds["c-python"] = capture_client(python_client(ctx))
    ctx12 = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx12.check_hostname = False
    ctx12.verify_mode = ssl.CERT_NONE
    ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx12.set_ciphers("ECDHE+AESGCM")
    seeds["c-python-tls12"] = capture_client(python_client(ctx12, None))

    seeds["c-built-tls12"] = built_hello([0xc02b, 0xc02f, 0x009c],
                                         sni="mx.test")
    seeds["c-built-tls13only"] = built_hello(
        [0x1301, 0x1302], versions=[0x0a0a, 0x0304], groups=(0x0a0a, 29))
    seeds["c-built-tls10"] = built_hello([0x002f, 0x0035],
                                         version=0x0301, groups=None)
    seeds["c-built-noext"] = built_hello([0x002f], exts=False)
    hello = built_hello([0xc02f] * 40, groups=tuple(range(1, 40)))
    seeds["c-built-split-records"] = (
        hello[:3] + struct.pack(">H", 100) + hello[5:105] +
        hello[:3] + struct.pack(">H", len(hello) - 105) + hello[105:])
    seeds["c-alert"] = struct.pack(">BHHBB", 21, 0x0303, 2, 2, 40)
    seeds["c-http"] = b"GET / HTTP/1.1\r\nHost: mx.test\r\n\r\n"

    with tempfile.TemporaryDirectory() as tmp:
        cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "1",
                        "-subj", "/CN=mx.test"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seeds["s-tls12"] = server_reply(cert, key, seeds["c-openssl-tls12"])
        seeds["s-tls13"] = server_reply(cert, key, seeds["c-openssl-tls13"])
        bad = b"\x01\x00\x00\x28" + b"\xff" * 40
        seeds["s-alert"] = server_reply(cert, key, struct.pack(
            ">BHH", 22, 0x0301, len(bad)) + bad)

    n = 0
    for name, data in sorted(seeds.items()):
        if not data:
            print("nothing captured for %s" % name, file=sys.stderr)
            continue
        keep = name.startswith("c-")
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(header(keep) + data)
        n += 1
        if keep:
            # The same bytes cut inside the header, the lengths and the
            # extensions.
            with open(os.path.join(OUT, name + "-cut"), "wb") as f:
                f.write(header(keep, (1, 4, 5, 9, 44, len(data) - 1)) +
                        data)
            n += 1
    print("wrote %d seeds" % n)


if __name__ == "__main__":
    main()
