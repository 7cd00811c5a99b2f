"""Shared fixtures: start the built mxd on loopback and talk to it.

Every test gets its own mxd process on a free port (asked for with
--listen 127.0.0.1:0; mxd prints "listening ADDR:PORT" when ready), its
own Maildir under pytest's tmp_path, and its log on disk.  Nothing is
assumed to be running.
"""

import os
import pathlib
import re
import shlex
import signal
import socket
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = os.environ.get("MXD_BINARY", str(ROOT / "build" / "server" / "mxd"))
# The valgrind test setup runs every served mxd under this (meson test
# --setup valgrind); empty otherwise.
WRAPPER = shlex.split(os.environ.get("MXD_WRAPPER", ""))


class Mxd:
    """A running mxd process and what it produced."""

    def __init__(self, workdir, args=(), config=None, env=None):
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.maildir = self.workdir / "mail"
        self.logpath = self.workdir / "mxd.log"
        argv = WRAPPER + [BINARY]
        if config is not None:
            conf = self.workdir / "mxd.conf"
            conf.write_text(config)
            argv += ["-c", str(conf)]
        if not any(a in ("-l", "--listen") for a in args) and not (
                config and re.search(r"^\s*listen\s*=", config, re.M)):
            argv += ["--listen", "127.0.0.1:0"]
        if "-m" not in args and "--maildir" not in args and not (
                config and re.search(r"^\s*maildir\s*=", config, re.M)):
            argv += ["--maildir", str(self.maildir)]
        argv += list(args)
        self.argv = argv
        self._log = open(self.logpath, "wb")
        self.proc = subprocess.Popen(
            argv, cwd=self.workdir, stdout=subprocess.PIPE,
            stderr=self._log, env=env)
        self.listening = []
        self.metrics = None     # (host, port) of metrics_listen
        deadline = time.monotonic() + (60 if WRAPPER else 10)
        while True:
            line = self.proc.stdout.readline().decode()
            if not line:
                self._log.flush()
                raise RuntimeError("mxd exited before listening: %s" %
                                   self.logpath.read_text())
            m = re.match(r"metrics (\[?[^\]]*\]?):(\d+)$", line.strip())
            if m:
                self.metrics = (m.group(1).strip("[]"), int(m.group(2)))
            m = re.match(r"listening (\[?[^\]]*\]?):(\d+)$", line.strip())
            if m:
                self.listening.append((m.group(1).strip("[]"),
                                       int(m.group(2))))
                if len(self.listening) >= self._expected_listeners(args,
                                                                   config):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("mxd did not start")
        self.host, self.port = self.listening[0]

    @staticmethod
    def _expected_listeners(args, config):
        n = sum(1 for a in args if a in ("-l", "--listen"))
        n += sum(1 for a in args if a.startswith("--listen="))
        if n == 0 and config:
            n = len(re.findall(r"^\s*listen\s*=", config, re.M))
        return max(n, 1)

    # -- talking to it -------------------------------------------------

    def connect(self, timeout=10):
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        return s

    def client(self, timeout=10):
        return RawClient(self.connect(timeout))

    # -- what it did ---------------------------------------------------

    def log(self):
        self._log.flush()
        return self.logpath.read_text(errors="replace")

    def wait_log(self, pattern, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if re.search(pattern, text, re.M):
                return text
            time.sleep(0.02)
        raise AssertionError("log never matched %r:\n%s" % (pattern,
                                                             self.log()))

    def messages(self, sub="new"):
        d = self.maildir / sub
        if not d.is_dir():
            return []
        return sorted(d.iterdir(), key=lambda p: p.stat().st_mtime_ns)

    def wait_messages(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msgs = self.messages()
            if len(msgs) >= n:
                return msgs
            time.sleep(0.02)
        raise AssertionError("expected %d messages, have %d" %
                             (n, len(self.messages())))

    def pids(self):
        """The supervisor, then its workers (mxd.conf(5), workers)."""
        p = "/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)
        try:
            with open(p) as f:
                kids = [int(x) for x in f.read().split()]
        except FileNotFoundError:
            kids = []
        return [self.proc.pid] + sorted(kids)

    def rss_kib(self):
        """The memory of the supervisor and its workers together: the
        sum of their proportional set sizes (Pss), so that the pages
        they share (libraries, the shared region, what fork left shared)
        count once."""
        total = 0
        for pid in self.pids():
            try:
                with open("/proc/%d/smaps_rollup" % pid) as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            total += int(line.split()[1])
            except FileNotFoundError:
                pass
        return total

    # -- stopping ------------------------------------------------------

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=60 if WRAPPER else 10):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("mxd did not exit on SIGTERM")
        self._log.close()
        self.proc.stdout.close()
        return self.proc.returncode


def quiet(c, wait=0.5):
    """True when the server sends nothing (and does not close) for wait
    seconds on RawClient c; what does arrive is kept in c.buf."""
    if c.buf:
        return False
    c.sock.settimeout(wait)
    try:
        data = c.sock.recv(65536)
    except socket.timeout:
        return True
    finally:
        c.sock.settimeout(10)
    c.buf += data
    return False


class RawClient:
    """Line-level SMTP over a plain socket, for exact bytes on the wire."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; pending %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def reply(self):
        """One whole reply, possibly multi-line: (code, [lines])."""
        lines = [self.line()]
        while lines[-1][3:4] == "-":
            lines.append(self.line())
        return int(lines[0][:3]), lines

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def expect(self, code, text=None):
        got, lines = self.reply()
        assert got == code, "expected %d, got %r" % (code, lines)
        if text is not None:
            assert text in lines[-1], "expected %r in %r" % (text, lines)
        return lines

    def closed(self, timeout=5):
        """True when the server has closed the connection (EOF)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


@pytest.fixture
def start_mxd(tmp_path):
    """start_mxd(*args, config=None) -> Mxd; all are stopped afterwards."""
    started = []

    def start(*args, config=None, workdir=None, env=None):
        wd = workdir or tmp_path / ("mxd%d" % len(started))
        m = Mxd(wd, args, config=config, env=env)
        started.append(m)
        return m

    yield start
    stop_all(started)


def stop_all(started):
    """Stop what a test started.  A clean stop is part of every test:
    exit 0 after SIGTERM and, in the sanitizer build, no leak or
    undefined-behaviour report in the log."""
    problems = []
    for m in started:
        if m.proc.poll() is None:
            rc = m.stop()
            if rc != 0:
                problems.append("mxd exited %s after SIGTERM" % rc)
        else:
            if not m._log.closed:
                m._log.close()
            if not m.proc.stdout.closed:
                m.proc.stdout.close()
        log = m.logpath.read_text(errors="replace")
        for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:"):
            if mark in log:
                problems.append("%s in %s" % (mark, m.logpath))
    assert not problems, "\n".join(problems)


@pytest.fixture
def mxd(start_mxd):
    """One mxd on its defaults (any domain, Maildir under tmp)."""
    return start_mxd()
