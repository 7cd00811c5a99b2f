#!/usr/bin/python3
"""Memory mxd spends per idle session, in plaintext and after STARTTLS.

    tests/bench/idle_memory.py [MXD_BINARY] [-n SESSIONS] [--keep]

For each of two phases, a fresh mxd (its own temporary directory, the
self-signed certificate it makes there, -o log_level=warn,
max_connections=5000, max_connections_per_ip=0, idle_timeout=1h) gets
one warm-up session of the phase's kind, so that one-time allocations
(the first handshake's, libc's arenas) are not charged to the sessions.
Then:

  plain   N sessions that each read the 220, send EHLO, read the 250
          and stay open, idle.
  tls     N sessions that each do EHLO, STARTTLS, a complete TLS
          handshake (Python's ssl, no verification), EHLO again, and
          stay open, idle.

RSS (/proc/PID/status VmRSS), PSS and Anonymous (/proc/PID/smaps_rollup)
and VmData (heap and other private mappings, touched or not: what was
allocated, an upper bound for RSS once every buffer is written) of mxd
are read before the N sessions, with all N open, and after they
are closed again; the difference over N is the cost per session, in KiB.
The kernel's socket buffers are not in these numbers.  The fd limit is
raised for this process and mxd (setrlimit, inherited) as N needs.
"""

import argparse
import pathlib
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


def read_mem(pid):
    """{'rss', 'data', 'pss', 'anon': KiB; 'fds': n} of a process."""
    m = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                m["rss"] = int(line.split()[1])
            elif line.startswith("VmData:"):
                m["data"] = int(line.split()[1])
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k == "Pss":
                m["pss"] = int(v.split()[0])
            elif k == "Anonymous":
                m["anon"] = int(v.split()[0])
    m["fds"] = len(list(pathlib.Path("/proc/%d/fd" % pid).iterdir()))
    return m


class Reader:
    """SMTP replies from a socket (plain or ssl)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def reply(self, code):
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise EOFError("closed; pending %r" % self.buf)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            if not line.startswith(code.encode()):
                raise RuntimeError("expected %s, got %r" % (code, line))
            if line[3:4] != b"-":
                return line


def open_plain(host, port):
    s = socket.create_connection((host, port), timeout=30)
    r = Reader(s)
    r.reply("220")
    s.sendall(b"EHLO idle.example\r\n")
    r.reply("250")
    return s


def open_tls(host, port, ctx):
    s = socket.create_connection((host, port), timeout=30)
    r = Reader(s)
    r.reply("220")
    s.sendall(b"EHLO idle.example\r\n")
    r.reply("250")
    s.sendall(b"STARTTLS\r\n")
    r.reply("220")
    if r.buf:
        raise RuntimeError("plaintext after 220: %r" % r.buf)
    t = ctx.wrap_socket(s, server_hostname=None)   # handshake, blocking
    r = Reader(t)
    t.sendall(b"EHLO idle.example\r\n")
    r.reply("250")
    return t


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def start_mxd(binary, workdir):
    workdir.mkdir(parents=True)
    argv = [binary, "--listen", "127.0.0.1:0",
            "--maildir", str(workdir / "mail"),
            "-o", "log_level=warn",
            "-o", "max_connections=5000",
            "-o", "max_connections_per_ip=0",
            "-o", "idle_timeout=1h"]
    log = open(workdir / "mxd.log", "wb")
    proc = subprocess.Popen(argv, cwd=workdir, stdout=subprocess.PIPE,
                            stderr=log)
    log.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            break
        m = re.match(r"listening (\S+):(\d+)$", line.strip())
        if m:
            return proc, m.group(1), int(m.group(2))
    proc.kill()
    proc.wait()
    raise RuntimeError("mxd did not start: %s" %
                       (workdir / "mxd.log").read_text())


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.stdout.close()


def settle(pid):
    """Read memory once mxd has gone idle (two equal reads)."""
    prev = None
    for _ in range(20):
        time.sleep(0.3)
        cur = read_mem(pid)
        if cur == prev:
            return cur
        prev = cur
    return prev


def phase(name, binary, workdir, n, ctx):
    proc, host, port = start_mxd(binary, workdir)
    socks = []
    try:
        opener = ((lambda: open_plain(host, port)) if name == "plain" else
                  (lambda: open_tls(host, port, ctx)))
        # Warm-up: one session of this kind, then gone.
        w = opener()
        w.sendall(b"QUIT\r\n")
        w.close()
        before = settle(proc.pid)
        t0 = time.monotonic()
        for i in range(n):
            try:
                socks.append(opener())
            except (OSError, RuntimeError, EOFError) as e:
                raise RuntimeError("%s: session %d of %d failed: %s" %
                                   (name, i + 1, n, e))
        opened = time.monotonic() - t0
        during = settle(proc.pid)
        close_all(socks)
        socks = []
        after = settle(proc.pid)
        return before, during, after, opened
    finally:
        close_all(socks)
        stop(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary", nargs="?",
                    default=str(ROOT / "build" / "server" / "mxd"))
    ap.add_argument("-n", "--sessions", type=int, default=1000)
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory")
    args = ap.parse_args()
    n = args.sessions

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(4096, n + 512)
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            sys.exit("idle_memory: needs %d fds, hard limit %d" %
                     (want, hard))
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="idle_memory."))
    rows = []
    try:
        for name in ("plain", "tls"):
            b, d, a, secs = phase(name, args.binary, tmp / name, n, ctx)
            rows.append((name, b, d, a, secs))
    finally:
        if args.keep:
            print("kept %s" % tmp, file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print("mxd %s, %d idle sessions per phase, fresh mxd per phase" %
          (args.binary, n))
    fmt = ("%-6s | %6s | %7s %7s %7s | %7s %7s %7s | %8s %8s %8s %8s "
           "| %5s")
    print(fmt % ("phase", "open", "RSS KiB", "RSS KiB", "RSS KiB",
                 "PSS KiB", "PSS KiB", "PSS KiB", "KiB/sess", "KiB/sess",
                 "KiB/sess", "KiB/sess", "fds"))
    print(fmt % ("", "s", "before", "open", "closed", "before", "open",
                 "closed", "RSS", "PSS", "anon", "VmData", "open"))
    for name, b, d, a, secs in rows:
        print(fmt % (name, "%.1f" % secs, b["rss"], d["rss"], a["rss"],
                     b["pss"], d["pss"], a["pss"],
                     "%.1f" % ((d["rss"] - b["rss"]) / n),
                     "%.1f" % ((d["pss"] - b["pss"]) / n),
                     "%.1f" % ((d["anon"] - b["anon"]) / n),
                     "%.1f" % ((d["data"] - b["data"]) / n), d["fds"]))
    print("  open s = time to open the N sessions; KiB/sess = (open - "
          "before) / N;\n  closed = after all N closed again (what mxd "
          "keeps).")
    for name, b, d, a, secs in rows:
        if d["fds"] - b["fds"] < n:
            print("WARNING: %s: mxd holds %d more fds, expected %d" %
                  (name, d["fds"] - b["fds"], n), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
