"""LMTP delivery (delivery = lmtp:..., RFC 2033) to a real Dovecot.

Each test starts its own Dovecot (dovecot -F with a config in a temp
dir: protocols = lmtp, a unix listener and an inet listener on
127.0.0.1, users from a passwd-file, Maildirs under the temp dir, no
SSL, no DNS), and an mxd that delivers to it.  Messages go in with
smtplib and are read back from Dovecot's Maildirs: the body byte for
byte after Dovecot's own header lines.  The result mapping of
mxd.conf(5) is checked recipient by recipient: all accepted -> 250, all
refused -> Dovecot's 5xx, mixed -> 451 4.3.0; a Dovecot that is gone
or silent -> 451 4.4.1 within lmtp_timeout; connections are reused and
a restarted Dovecot is used again.
"""

import os
import pathlib
import pwd
import grp
import re
import shutil
import select
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time

import pytest


DOVECOT = "/usr/sbin/dovecot"
USERS = ["alice", "bob", "carol"]
DOMAIN = "example.org"
SENDER = "sender@client.example"


def free_port():
    """A port that was free a moment ago (Dovecot takes no port 0: in
    its config that disables the listener)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Dovecot:
    """A private Dovecot serving LMTP only, in its own process group."""

    def __init__(self, root):
        self.root = pathlib.Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        # The mail user must reach its Maildirs, and pytest's temp
        # directories are 0700: the Maildirs go in one of their own.
        self.mail = pathlib.Path(tempfile.mkdtemp(prefix="mxd-lmtp-"))
        self.mail.chmod(0o755)
        self.sock = self.root / "lmtp.sock"
        self.logpath = self.root / "dovecot.log"
        self.port = free_port()
        # Dovecot refuses to deliver mail as uid 0: as root, deliver as
        # nobody into a directory nobody owns.
        if os.getuid() == 0:
            uid = gid = 65534
            os.chown(self.mail, uid, gid)
        else:
            uid, gid = os.getuid(), os.getgid()
        me = pwd.getpwuid(os.getuid()).pw_name
        mygroup = grp.getgrgid(os.getgid()).gr_name
        users = self.root / "users"
        users.write_text("".join("%s@%s:{PLAIN}x::::::\n" % (u, DOMAIN)
                                 for u in USERS))
        self.conf = self.root / "dovecot.conf"
        self.conf.write_text(f"""\
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.logpath}
info_log_path = {self.logpath}
protocols = lmtp
listen = 127.0.0.1
ssl = no
hostname = mxd.test
lmtp_proxy = no
default_internal_user = {me}
default_internal_group = {mygroup}
default_login_user = {me}
first_valid_uid = {min(uid, os.getuid())}
mail_location = maildir:{self.mail}/%u/Maildir
passdb {{
  driver = passwd-file
  args = {users}
}}
userdb {{
  driver = passwd-file
  args = {users}
  default_fields = uid={uid} gid={gid} home={self.mail}/%u
}}
service lmtp {{
  unix_listener {self.sock} {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.port}
  }}
}}
service anvil {{
  chroot =
}}
""")
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dovecot exited:\n" + self.log())
            try:
                socket.create_connection(("127.0.0.1", self.port),
                                         timeout=1).close()
                u = socket.socket(socket.AF_UNIX)
                u.connect(str(self.sock))
                u.close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("dovecot did not start:\n" + self.log())

    def kill(self):
        """SIGKILL to every Dovecot process (the master's group, which
        holds its lmtp processes too)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self.proc = None
        # Its children die with the group; let the kernel reap them.
        time.sleep(0.2)

    def stop(self):
        if self.proc is None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def remove(self):
        shutil.rmtree(self.mail, ignore_errors=True)

    def log(self):
        try:
            return self.logpath.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def connections(self):
        """Connections Dovecot accepted, less start()'s probes (which
        close at the greeting, as mxd never does)."""
        log = self.log()
        return (len(re.findall(r"lmtp\(\d+\): Info: Connect from", log)) -
                len(re.findall(r"Connection closed \(state=GREETING\)",
                               log)))

    def messages(self, user):
        new = self.mail / ("%s@%s" % (user, DOMAIN)) / "Maildir" / "new"
        if not new.is_dir():
            return []
        return [p.read_bytes() for p in sorted(
            new.iterdir(), key=lambda p: p.stat().st_mtime_ns)]

    def all_messages(self):
        return sum((self.messages(u) for u in USERS), [])


@pytest.fixture
def dovecot(tmp_path):
    d = Dovecot(tmp_path / "dovecot")
    yield d
    d.stop()
    d.remove()


def lmtp_mxd(start_mxd, target, extra=""):
    return start_mxd(config="hostname = mx.test\ndelivery = lmtp:%s\n%s"
                     % (target, extra))


def split_stored(data):
    """(header lines, body) of a message as Dovecot stored it (LF)."""
    head, _, body = data.partition(b"\n\n")
    return head.split(b"\n"), body


def check_delivered(stored, body, rcpt):
    """Dovecot's Return-Path and Received, then mxd's Received (and
    no Return-Path of mxd's), then the message as sent, byte for byte."""
    head, got = split_stored(stored)
    assert got == body.replace(b"\r\n", b"\n"), (len(got), len(body))
    text = b"\n".join(head).decode("utf-8", "replace")
    assert text.count("Return-Path:") == 1, text
    assert "Return-Path: <%s>" % SENDER in text
    # Dovecot's own trace line: for one recipient it names it, for
    # several the envelope sender.
    sender, rcpt = re.escape(SENDER), re.escape(rcpt)
    assert re.search(r"^Received: from mx\.test( \(\[127\.0\.0\.1\]\))?\n"
                     r"\tby mxd\.test with LMTP\n\tid \S+\n"
                     r"\t(\(envelope-from <%s>\)(\n\tfor <%s>)?|for <%s>); "
                     % (sender, rcpt, rcpt), text, re.M), text


def message(body):
    return (b"From: <%s>\r\nTo: <alice@example.org>\r\nSubject: t\r\n\r\n"
            % SENDER.encode()) + body


def send(m, rcpts, msg, **kw):
    s = smtplib.SMTP(m.host, m.port, local_hostname="localhost",
                     timeout=60)
    try:
        return s.sendmail(SENDER, rcpts, msg, **kw)
    finally:
        try:
            s.quit()
        except smtplib.SMTPServerDisconnected:
            pass


def begin_data(m, rcpts):
    """A raw session up to the 354 of DATA."""
    c = m.client(timeout=60)
    c.expect(220)
    c.cmd("EHLO localhost")
    assert c.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
    for r in rcpts:
        assert c.cmd("RCPT TO:<%s>" % r)[0] == 250
    assert c.cmd("DATA")[0] == 354
    return c


def send_expect(m, rcpts, msg):
    """Send over a raw client: (code, last reply line) after the dot."""
    c = begin_data(m, rcpts)
    wire = msg.replace(b"\r\n.", b"\r\n..")
    c.send(wire + b".\r\n")
    code, lines = c.reply()
    c.cmd("QUIT")
    c.close()
    return code, lines[-1]


BODY_8BIT = (b"Plain line\r\n"
             b".leading dot\r\n"
             b"..two dots\r\n"
             b".\r\n"
             b"caf\xc3\xa9 na\xc3\xafve \xe2\x82\xac 8bit\r\n"
             b"\r\n"
             b"last line\r\n")


@pytest.mark.parametrize("form", ["inet", "unix"])
def test_several_recipients_8bit_and_dots_arrive_exactly(
        start_mxd, dovecot, form):
    target = ("127.0.0.1:%d" % dovecot.port if form == "inet"
              else "unix:%s" % dovecot.sock)
    m = lmtp_mxd(start_mxd, target)
    msg = message(BODY_8BIT)
    assert send(m, ["alice@example.org", "bob@example.org"], msg,
                mail_options=["BODY=8BITMIME"]) == {}
    for u in ("alice", "bob"):
        got = dovecot.messages(u)
        assert len(got) == 1, u
        check_delivered(got[0], BODY_8BIT, "%s@%s" % (u, DOMAIN))
    assert dovecot.messages("carol") == []
    m.wait_log(r" accepted id=\S+ size=\d+ rcpts=2")


def test_one_megabyte_body_in_several_flushes(start_mxd, dovecot):
    m = lmtp_mxd(start_mxd, "unix:%s" % dovecot.sock)
    lines = []
    i = 0
    size = 0
    while size < 1 << 20:
        line = (b"." if i % 7 == 0 else b"") + (b"%06d " % i) + \
            bytes(range(0x41, 0x41 + 26)) * 2 + b"\xc3\xa9\r\n"
        lines.append(line)
        size += len(line)
        i += 1
    body = b"".join(lines)
    assert send(m, ["carol@example.org"], message(body)) == {}
    got = dovecot.messages("carol")
    assert len(got) == 1
    check_delivered(got[0], body, "carol@example.org")


class Listener:
    """A loopback TCP listener that runs handle(sock) in a thread for
    each connection it accepts, and counts them."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                a, _ = self.lsock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.handle, args=(a,),
                             daemon=True).start()

    def handle(self, sock):
        raise NotImplementedError

    def close(self):
        self.lsock.close()


class ByteCounter(Listener):
    """A TCP relay in front of Dovecot that counts what mxd sends: to
    see the body arrive downstream while the client still sends it."""

    def __init__(self, port):
        self.target = port
        self.upstream = 0
        super().__init__()

    def handle(self, a):
        b = socket.create_connection(("127.0.0.1", self.target))
        threading.Thread(target=self.pipe, args=(b, a, False),
                         daemon=True).start()
        self.pipe(a, b, True)

    def pipe(self, src, dst, count):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if count:
                    self.upstream += len(data)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_body_is_streamed_not_buffered_whole(start_mxd, dovecot):
    relay = ByteCounter(dovecot.port)
    try:
        m = lmtp_mxd(start_mxd, "127.0.0.1:%d" % relay.port)
        c = begin_data(m, ["alice@example.org"])
        chunk = (b"x" * 998 + b"\r\n") * 1000          # 1 MB
        c.send(message(chunk))
        # The client has not ended the message: most of it must be
        # downstream already (DELIVERY_FLUSH_AT is 128 KiB).
        deadline = time.monotonic() + 20
        while relay.upstream < 700_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert relay.upstream >= 700_000, relay.upstream
        assert dovecot.messages("alice") == []
        c.send(b".\r\n")
        code, lines = c.reply()
        assert code == 250, lines
        got = dovecot.messages("alice")
        assert len(got) == 1
        check_delivered(got[0], chunk, "alice@example.org")
    finally:
        relay.close()


def test_unknown_recipient_alone_gets_dovecots_5xx(start_mxd, dovecot):
    m = lmtp_mxd(start_mxd, "127.0.0.1:%d" % dovecot.port)
    code, line = send_expect(m, ["nobody@example.org"], message(b"hi\r\n"))
    assert (code, line) == (550, "550 5.1.1 Rejected by the mailbox server")
    assert dovecot.all_messages() == []
    text = m.wait_log(r"store_failed level=warn id=\S+ result=rejected")
    assert re.search(r"detail=\"refused: 550 5\.1\.1 .*nobody@example\.org",
                     text), text
    # The session goes on: the next message is delivered.
    assert send(m, ["alice@example.org"], message(b"next\r\n")) == {}
    assert len(dovecot.messages("alice")) == 1


def test_known_and_unknown_recipient_gets_451_and_known_has_it(
        start_mxd, dovecot):
    """The documented trade-off: a mixed result is 451 4.3.0 for the
    whole message; the accepted recipient has it, and the sender's retry
    will give it a duplicate (better than a loss)."""
    m = lmtp_mxd(start_mxd, "unix:%s" % dovecot.sock)
    code, line = send_expect(m, ["alice@example.org", "nobody@example.org"],
                             message(b"mixed\r\n"))
    assert code == 451 and line.startswith("451 4.3.0 "), line
    got = dovecot.messages("alice")
    assert len(got) == 1
    check_delivered(got[0], b"mixed\r\n", "alice@example.org")
    m.wait_log(r"store_failed level=warn id=\S+ result=tempfail detail=\"1 of 2 "
               r"recipients refused")


def test_five_messages_over_one_downstream_connection(start_mxd, dovecot):
    # The idle connections are each worker process's: one worker.
    m = lmtp_mxd(start_mxd, "127.0.0.1:%d" % dovecot.port, "workers = 1\n")
    for i in range(5):
        assert send(m, ["alice@example.org", "bob@example.org"],
                    message(b"message %d\r\n" % i)) == {}
    assert len(dovecot.messages("alice")) == 5
    assert len(dovecot.messages("bob")) == 5
    assert dovecot.connections() == 1, dovecot.log()


def sockets(m):
    """The sockets open in the (one) worker process."""
    (worker,) = m.pids()[1:]
    fds = pathlib.Path("/proc/%d/fd" % worker)
    n = 0
    for fd in fds.iterdir():
        try:
            n += os.readlink(fd).startswith("socket:")
        except FileNotFoundError:
            pass
    return n


def test_concurrent_senders_share_a_bounded_pool(start_mxd, dovecot):
    m = lmtp_mxd(start_mxd, "unix:%s" % dovecot.sock,
                 "lmtp_connections = 2\nworkers = 1\n")
    errors = []

    def sender(k):
        try:
            for i in range(5):
                send(m, ["bob@example.org"],
                     message(b"sender %d message %d\r\n" % (k, i)))
        except Exception as e:              # noqa: BLE001
            errors.append(e)

    baseline = sockets(m)
    threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = dovecot.messages("bob")
    assert len(got) == 20
    assert sorted(split_stored(g)[1] for g in got) == sorted(
        b"sender %d message %d\n" % (k, i) for k in range(4)
        for i in range(5))
    # mxd keeps at most lmtp_connections idle: its open sockets are
    # its listener, and one or two downstream connections.
    deadline = time.monotonic() + 10
    while (m.log().count(" disconnect reason=") < 20 and
           time.monotonic() < deadline):
        time.sleep(0.05)
    assert 1 <= sockets(m) - baseline <= 2, (sockets(m), baseline)
    assert dovecot.connections() >= 2       # 4 at once, 2 kept


def test_dovecot_killed_gives_451_441_then_restarted_works(start_mxd,
                                                           dovecot):
    m = lmtp_mxd(start_mxd, "127.0.0.1:%d" % dovecot.port,
                 "lmtp_timeout = 5s\n")
    assert send(m, ["alice@example.org"], message(b"one\r\n")) == {}
    dovecot.kill()
    t0 = time.monotonic()
    code, line = send_expect(m, ["alice@example.org"], message(b"two\r\n"))
    elapsed = time.monotonic() - t0
    assert code == 451 and line.startswith("451 4.4.1 "), line
    assert elapsed < 5, elapsed             # refused at once
    m.wait_log(r"store_failed level=warn id=\S+ result=unavailable "
               r"detail=\"connect: Connection refused\"")
    dovecot.start()
    assert send(m, ["alice@example.org"], message(b"three\r\n")) == {}
    bodies = [split_stored(g)[1] for g in dovecot.messages("alice")]
    assert bodies == [b"one\n", b"three\n"]


def test_restarted_dovecot_stale_pooled_connection(start_mxd, dovecot):
    m = lmtp_mxd(start_mxd, "unix:%s" % dovecot.sock)
    assert send(m, ["bob@example.org"], message(b"before\r\n")) == {}
    dovecot.stop()
    dovecot.start()
    # The pooled connection is dead; the message takes a new one.
    assert send(m, ["bob@example.org"], message(b"after\r\n")) == {}
    bodies = [split_stored(g)[1] for g in dovecot.messages("bob")]
    assert bodies == [b"before\n", b"after\n"]


def test_missing_unix_socket_gives_451_441(start_mxd, tmp_path):
    m = lmtp_mxd(start_mxd, "unix:%s" % (tmp_path / "no-such.sock"))
    code, line = send_expect(m, ["alice@example.org"], message(b"x\r\n"))
    assert code == 451 and line.startswith("451 4.4.1 "), line
    m.wait_log(r"result=unavailable detail=\"connect: No such file")


def greeting_times_out(start_mxd, ls):
    """mxd with lmtp_timeout = 2s in front of listener ls: a message gets
    451 4.4.1 after the timeout, logged as the greeting's."""
    m = lmtp_mxd(start_mxd, "127.0.0.1:%d" % ls.port, "lmtp_timeout = 2s\n")
    t0 = time.monotonic()
    code, line = send_expect(m, ["alice@example.org"], message(b"x\r\n"))
    elapsed = time.monotonic() - t0
    assert code == 451 and line.startswith("451 4.4.1 "), line
    assert 1.9 <= elapsed < 10, elapsed
    m.wait_log(r"result=unavailable detail=\"greeting: Connection "
               r"timed out\"")


def test_silent_downstream_gives_451_441_after_lmtp_timeout(start_mxd):
    """A listener that accepts and never says a word."""
    held = []

    class Silent(Listener):
        def handle(self, sock):
            held.append(sock)

    ls = Silent()
    try:
        greeting_times_out(start_mxd, ls)
        assert ls.connections == 1
    finally:
        ls.close()
        for s in held:
            s.close()


def test_downstream_dies_mid_body_nothing_delivered(start_mxd, dovecot):
    """Dovecot killed while the body streams: 451 4.4.1 at the end of
    data, and no Maildir holds any part of the message."""
    m = lmtp_mxd(start_mxd, "127.0.0.1:%d" % dovecot.port,
                 "lmtp_timeout = 5s\n")
    c = begin_data(m, ["alice@example.org"])
    part = (b"y" * 998 + b"\r\n") * 300
    c.send(message(part))
    deadline = time.monotonic() + 20
    while dovecot.connections() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    dovecot.kill()
    c.send(part + b".\r\n")
    code, lines = c.reply()
    assert code == 451 and lines[-1].startswith("451 4.4.1 "), lines
    assert dovecot.all_messages() == []
    assert list(dovecot.mail.glob("*/Maildir/cur/*")) == []


def test_trickled_endless_reply_gives_451_441_after_lmtp_timeout(start_mxd):
    """A greeting of continuation lines without end, an octet every
    0.1 s: each octet is progress, but the reply never completes; the
    deadline holds for the whole reply, not for each octet."""
    stop = threading.Event()

    class Trickle(Listener):
        def handle(self, sock):
            try:
                while not stop.is_set():
                    for b in b"220-still greeting\r\n":
                        if stop.wait(0.1):
                            break
                        sock.sendall(bytes([b]))
            except OSError:
                pass
            sock.close()

    ls = Trickle()
    try:
        greeting_times_out(start_mxd, ls)
    finally:
        stop.set()
        ls.close()


class DroppingLmtp(Listener):
    """A minimal LMTP peer for what Dovecot will not do on demand: on a
    connection that has served a transaction, it closes at the next
    MAIL without a word, as a server that timed the idle connection out
    just then would.  New connections work; bodies are kept."""

    def __init__(self):
        self.bodies = []
        super().__init__()

    def handle(self, sock):
        f = sock.makefile("rb")
        sock.sendall(b"220 fake LMTP\r\n")
        served = 0
        rcpts = 0
        try:
            for line in f:
                verb = line[:4].upper()
                if verb == b"LHLO":
                    sock.sendall(b"250-fake\r\n250 PIPELINING\r\n")
                elif verb == b"MAIL":
                    if served:
                        break
                    rcpts = 0
                    sock.sendall(b"250 2.1.0 Ok\r\n")
                elif verb == b"RCPT":
                    rcpts += 1
                    sock.sendall(b"250 2.1.5 Ok\r\n")
                elif verb == b"DATA":
                    sock.sendall(b"354 go\r\n")
                    body = b""
                    for bl in f:
                        if bl == b".\r\n":
                            break
                        body += bl
                    self.bodies.append(body)
                    served += 1
                    sock.sendall(b"250 2.0.0 Saved\r\n" * rcpts)
                else:
                    sock.sendall(b"250 2.0.0 Ok\r\n")
        except OSError:
            pass
        sock.close()


def test_pooled_connection_closed_at_mail_is_retried_once(start_mxd):
    """The pooled connection looked alive but closes at MAIL: nothing of
    the message was accepted there, so mxd takes a new connection and
    the client gets 250, with the message delivered once."""
    peer = DroppingLmtp()
    try:
        m = lmtp_mxd(start_mxd, "127.0.0.1:%d" % peer.port)
        assert send(m, ["alice@example.org"], message(b"one\r\n")) == {}
        assert send(m, ["alice@example.org"], message(b"two\r\n")) == {}
        assert peer.connections == 2
        assert [b.split(b"\r\n\r\n", 1)[1] for b in peer.bodies] == [
            b"one\r\n", b"two\r\n"]
        assert "store_failed" not in m.log()
    finally:
        peer.close()


class BurstLmtp(Listener):
    """An LMTP peer that answers the RCPTs only once the client has
    paused (0.3 s with nothing more to read), and notes the longest run
    of RCPT lines that arrived before it answered: mxd must send them in
    windows, reading replies between, not all at once."""

    def __init__(self):
        self.bursts = []
        self.rcpts = []
        self.body = None
        super().__init__()

    def handle(self, sock):
        buf = b""
        pending = 0
        sock.sendall(b"220 burst LMTP\r\n")
        try:
            while True:
                r, _, _ = select.select([sock], [], [], 0.3)
                if not r:
                    if pending:
                        self.bursts.append(pending)
                        sock.sendall(b"250 2.1.5 Ok\r\n" * pending)
                        pending = 0
                    continue
                data = sock.recv(65536)
                if not data:
                    break
                buf += data
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    verb = line[:4].upper()
                    if verb == b"LHLO":
                        sock.sendall(b"250-burst\r\n250 PIPELINING\r\n")
                    elif verb == b"MAIL":
                        sock.sendall(b"250 2.1.0 Ok\r\n")
                    elif verb == b"RCPT":
                        pending += 1
                        self.rcpts.append(line[8:])
                    elif verb == b"DATA":
                        if pending:
                            self.bursts.append(pending)
                            sock.sendall(b"250 2.1.5 Ok\r\n" * pending)
                            pending = 0
                        sock.sendall(b"354 go\r\n")
                        while b"\r\n.\r\n" not in buf:
                            more = sock.recv(65536)
                            if not more:
                                return
                            buf += more
                        self.body, buf = buf.split(b"\r\n.\r\n", 1)
                        sock.sendall(b"250 2.0.0 Saved\r\n" *
                                     len(self.rcpts))
                    else:
                        sock.sendall(b"250 2.0.0 Ok\r\n")
        except OSError:
            pass
        finally:
            sock.close()


def test_many_recipients_go_in_windows(start_mxd):
    """250 recipients: three windows of at most 100 RCPTs (the last
    with DATA), every one delivered, the client told 250."""
    peer = BurstLmtp()
    try:
        m = lmtp_mxd(start_mxd, "127.0.0.1:%d" % peer.port,
                     "max_recipients = 1000\n")
        rcpts = ["u%03d@example.org" % i for i in range(250)]
        assert send(m, rcpts, message(b"many\r\n")) == {}
        assert [r.decode() for r in peer.rcpts] == [
            "<%s>" % r for r in rcpts]
        assert peer.bursts == [100, 100, 50], peer.bursts
        assert peer.body.endswith(b"\r\n\r\nmany")
    finally:
        peer.close()


@pytest.mark.parametrize("value", ["lmtp:mail.example.org:24",
                                   "lmtp:unix:relative/path",
                                   "lmtp:127.0.0.1", "lmtp:127.0.0.1:0"])
def test_bad_lmtp_target_stops_start_up(tmp_path, value):
    from conftest import BINARY
    conf = tmp_path / "mxd.conf"
    conf.write_text("delivery = %s\n" % value)
    p = subprocess.run([BINARY, "-c", str(conf), "--listen",
                        "127.0.0.1:0"], cwd=tmp_path, capture_output=True,
                       timeout=10)
    assert p.returncode != 0
    assert re.search(r"mxd\.conf:1: delivery: ", p.stderr.decode()), \
        p.stderr
