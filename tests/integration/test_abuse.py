"""Abusive clients over real sockets: talking before the greeting, HTTP
requests, connection rate, long sessions, slow bodies, thousands of slow
connections, and floods that never end.

Each test sets small limits with -o.  Memory is read from /proc (VmRSS)
while the abuse goes on: the figures are printed (pytest -s shows them)
and asserted to stay bounded.
"""

import heapq
import random
import re
import resource
import selectors
import smtplib
import socket
import threading
import time

from conftest import quiet

HOST = "mx.test"
GREETING = "220 %s ESMTP mxd" % HOST
QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as (\S+)$")
TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
TIMEOUT = "421 4.4.2 %s Error: timeout exceeded" % HOST
PREGREET = "554 5.5.1 %s Error: talked before the greeting" % HOST


# ---- helpers ---------------------------------------------------------------


def start(start_mxd, *args, **kw):
    return start_mxd("-H", HOST, *args, **kw)


def greet(mxd):
    c = mxd.client()
    assert c.reply()[1] == [GREETING]
    return c


def open_txn(c, rcpt="b@example.test"):
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd("MAIL FROM:<a@client.example>")[1] == ["250 2.1.0 Ok"]
    assert c.cmd("RCPT TO:<%s>" % rcpt)[1] == ["250 2.1.5 Ok"]


def read_to_eof(sock, timeout=10):
    """Everything until the peer closes: (bytes, "eof"|"reset"|"timeout")."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, "timeout"
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return data, "reset"
        except socket.timeout:
            return data, "timeout"
        if not chunk:
            return data, "eof"
        data += chunk


def replies(data):
    text = data.decode("latin-1")
    assert text == "" or text.endswith("\r\n"), repr(text)
    return text.split("\r\n")[:-1]


def sid_of(mxd, sock):
    """The session id of the connection whose local port is sock's."""
    port = sock.getsockname()[1]
    text = mxd.wait_log(r" connect client=127\.0\.0\.\d+:%d " % port)
    m = re.search(r"^\S+ (\S+) connect client=127\.0\.0\.\d+:%d " % port,
                  text, re.M)
    return m.group(1)


def session_lines(mxd, sid):
    return [l for l in mxd.log().splitlines() if l.split(" ")[1:2] == [sid]]


def wait_no_tmp(mxd, timeout=5):
    d = mxd.maildir / "tmp"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not d.is_dir() or not list(d.iterdir()):
            return []
        time.sleep(0.02)
    return list(d.iterdir())


class RssSampler(threading.Thread):
    """mxd's VmRSS every few milliseconds until stopped: .peak (KiB)."""

    def __init__(self, mxd):
        super().__init__(daemon=True)
        self.mxd = mxd
        self.base = mxd.rss_kib()
        self.peak = self.base
        self.halt = threading.Event()
        assert self.base > 0

    def run(self):
        while not self.halt.is_set():
            try:
                self.peak = max(self.peak, self.mxd.rss_kib())
            except OSError:
                return
            time.sleep(0.005)

    def stop(self, what, bound_kib=4096):
        self.halt.set()
        self.join()
        self.peak = max(self.peak, self.mxd.rss_kib())
        print("\nRSS %s: baseline %d KiB, peak %d KiB (+%d KiB)" % (
            what, self.base, self.peak, self.peak - self.base))
        assert self.peak - self.base < bound_kib, (
            "%s: RSS grew from %d to %d KiB" % (what, self.base, self.peak))


class Collector(threading.Thread):
    """Reads a socket until EOF while the main thread writes to it, so
    that replies are kept even when the close turns into a reset."""

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock = sock
        self.data = b""
        self.how = None
        self.when = None
        self.start()

    def run(self):
        self.sock.settimeout(30)
        while True:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                self.how = "reset"
                break
            except socket.timeout:
                self.how = "timeout"
                break
            except OSError:
                self.how = "error"
                break
            if not chunk:
                self.how = "eof"
                break
            self.data += chunk
        self.when = time.monotonic()

    def done(self, timeout=15):
        self.join(timeout)
        assert not self.is_alive(), "the server never closed: %r" % (
            self.data,)
        return replies(self.data)


def send_until_closed(sock, chunk, limit, collector):
    """Write chunk after chunk until the server closes (or limit octets
    went): the octets sent."""
    sent = after = 0
    sock.settimeout(10)
    try:
        while sent < limit:
            if collector.how is not None:
                # Closed: the next writes meet a reset.
                after += 1
                if after > 4:
                    break
            sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


# ---- greeting_delay: talking first, HTTP -------------------------------------


def test_pregreet_talker_gets_554_and_eof(start_mxd):
    mxd = start(start_mxd, "-o", "greeting_delay=1")
    c = mxd.client()
    t0 = time.monotonic()
    c.send("EHLO impatient.example\r\n")
    data, how = read_to_eof(c.sock)
    took = time.monotonic() - t0
    assert (replies(data), how) == ([PREGREET], "eof")
    # At once, not after the delay.
    assert took < 0.9, took
    sid = sid_of(mxd, c.sock)
    mxd.wait_log(r"^\S+ %s disconnect reason=pregreet " % sid)
    lines = session_lines(mxd, sid)
    assert len([l for l in lines if " pregreet " in l]) == 1, lines
    assert len([l for l in lines if " disconnect " in l]) == 1, lines
    assert re.search(r" pregreet bytes=24 data=", "\n".join(lines)), lines
    assert "ehlo" not in [l.split(" ")[2] for l in lines], lines


def test_pregreet_without_line_end(start_mxd):
    """Even a partial line before the 220 is talking first."""
    mxd = start(start_mxd, "-o", "greeting_delay=1")
    c = mxd.client()
    c.send("EH")
    data, how = read_to_eof(c.sock)
    assert (replies(data), how) == ([PREGREET], "eof")


def test_http_request_before_greeting_gets_nothing(start_mxd):
    mxd = start(start_mxd, "-o", "greeting_delay=1")
    for req in (b"GET / HTTP/1.1\r\nHost: mx.test\r\n\r\n",
                b"POST /submit HTTP/1.0\r\nContent-Length: 0\r\n\r\n"):
        c = mxd.client()
        t0 = time.monotonic()
        c.send(req)
        data, how = read_to_eof(c.sock)
        assert (data, how) == (b"", "eof"), req
        assert time.monotonic() - t0 < 0.9
        sid = sid_of(mxd, c.sock)
        mxd.wait_log(r"^\S+ %s disconnect reason=http_request " % sid)
        lines = session_lines(mxd, sid)
        assert len([l for l in lines if " pregreet " in l]) == 1, lines
        assert len([l for l in lines if " disconnect " in l]) == 1, lines
        c.close()


def test_http_request_without_delay_gets_nothing_after_220(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    c.send(b"GET / HTTP/1.1\r\nHost: mx.test\r\n\r\n")
    data, how = read_to_eof(c.sock)
    assert (data, how) == (b"", "eof")
    sid = sid_of(mxd, c.sock)
    mxd.wait_log(r"^\S+ %s disconnect reason=http_request " % sid)
    lines = session_lines(mxd, sid)
    assert [l for l in lines if " pregreet " in l] == [], lines
    assert len([l for l in lines if " disconnect " in l]) == 1, lines
    # After EHLO, too (a cross-protocol request mid-session).
    c = greet(mxd)
    assert c.cmd("EHLO client.example")[0] == 250
    c.send(b"CONNECT mx.test:443 HTTP/1.1\r\n\r\n")
    data, how = read_to_eof(c.sock)
    assert (data, how) == (b"", "eof")


def test_patient_client_greeted_after_delay_and_delivers(start_mxd):
    mxd = start(start_mxd, "-o", "greeting_delay=1")
    c = mxd.client()
    t0 = time.monotonic()
    assert c.reply()[1] == [GREETING]
    took = time.monotonic() - t0
    assert 0.9 <= took <= 2.0, took
    open_txn(c)
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: patient\r\n\r\nwaited\r\n.\r\n")
    assert QUEUED.match(c.reply()[1][0])
    assert c.cmd("QUIT")[0] == 221
    # smtplib waits for the greeting as it should.
    t0 = time.monotonic()
    s = smtplib.SMTP(mxd.host, mxd.port, local_hostname="client.example",
                     timeout=20)
    assert 0.9 <= time.monotonic() - t0 <= 2.0
    s.sendmail("a@client.example", ["b@example.test"],
               b"Subject: smtplib patient\r\n\r\nx\r\n")
    s.quit()
    assert len(mxd.wait_messages(2)) == 2
    assert " pregreet " not in mxd.log()


# ---- max_connection_rate -----------------------------------------------------


def connect_from(mxd, source):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((source, 0))
    s.connect((mxd.host, mxd.port))
    return s


def test_connection_rate_fourth_in_a_minute_refused(start_mxd):
    mxd = start(start_mxd, "-o", "max_connection_rate=3")
    for i in range(3):
        c = greet(mxd)
        assert c.cmd("QUIT")[0] == 221
        c.close()
    c = mxd.client()
    data, how = read_to_eof(c.sock)
    assert replies(data) == [
        "421 4.7.0 %s Too many connections from your address, slow down"
        % HOST], data
    assert how == "eof"
    mxd.wait_log(r" connect client=127\.0\.0\.1:\d+ listener=\S+ "
                 r"refused=connection_rate pid=\d+$")
    # Another address has its own bucket.
    s = connect_from(mxd, "127.0.0.2")
    data = s.recv(4096)
    assert data == (GREETING + "\r\n").encode(), data
    s.sendall(b"QUIT\r\n")
    data, how = read_to_eof(s)
    assert (replies(data), how) == (["221 2.0.0 Bye"], "eof")
    # And 127.0.0.1 is still refused.
    c = mxd.client()
    data, how = read_to_eof(c.sock)
    assert replies(data) == [
        "421 4.7.0 %s Too many connections from your address, slow down"
        % HOST], data
    assert len(re.findall(r"refused=connection_rate", mxd.log())) == 2


# ---- max_messages_per_connection ---------------------------------------------


def test_third_mail_gets_421_and_close(start_mxd):
    mxd = start(start_mxd, "-o", "max_messages_per_connection=2")
    c = greet(mxd)
    open_txn(c)
    # A refused message does not count.
    assert c.cmd("DATA")[0] == 354
    c.send(b"bare\nLF\r\n.\r\n")
    assert c.reply()[1] == ["550 5.5.2 Error: bare <CR> or <LF> in message"]
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(b"one\r\n.\r\n")
    assert QUEUED.match(c.reply()[1][0])
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
    c.send(b"BDAT 5 LAST\r\ntwo\r\n")
    assert QUEUED.match(c.reply()[1][0])
    c.send(b"MAIL FROM:<a@client.example>\r\n")
    data, how = read_to_eof(c.sock)
    assert replies(data) == [
        "421 4.7.0 %s Error: too many messages in this session" % HOST]
    assert how == "eof"
    sid = sid_of(mxd, c.sock)
    mxd.wait_log(r"^\S+ %s disconnect reason=too_many_messages "
                 r"accepted=2 " % sid)
    assert len(mxd.messages()) == 2
    # smtplib: two messages, the third refused with 421; a new
    # connection goes on.
    s = smtplib.SMTP(mxd.host, mxd.port, local_hostname="client.example",
                     timeout=20)
    for i in range(2):
        s.sendmail("a@client.example", ["b@example.test"], b"x\r\n")
    try:
        s.sendmail("a@client.example", ["b@example.test"], b"x\r\n")
    except smtplib.SMTPSenderRefused as e:
        assert e.smtp_code == 421, e
    else:
        raise AssertionError("a third message was accepted")
    s = smtplib.SMTP(mxd.host, mxd.port, local_hostname="client.example",
                     timeout=20)
    s.sendmail("a@client.example", ["b@example.test"], b"x\r\n")
    s.quit()
    assert len(mxd.wait_messages(5)) == 5


# ---- min_data_rate -----------------------------------------------------------

RATE_ARGS = ("-o", "idle_timeout=2", "-o", "min_data_rate=1000")


def trickle(c, piece, every, limit):
    """Send piece every so often until the server says something: the
    reply lines (to EOF) and the seconds taken from the first piece."""
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            c.send(piece)
        except (BrokenPipeError, ConnectionResetError):
            break
        if not quiet(c, every):
            break
    took = time.monotonic() - t0
    data, how = read_to_eof(c.sock)
    return replies(c.buf + data), how, took


def test_slow_data_is_cut_off(start_mxd):
    mxd = start(start_mxd, *RATE_ARGS)
    c = greet(mxd)
    open_txn(c)
    assert c.cmd("DATA")[0] == 354
    lines, how, took = trickle(c, b"abc", 0.5, 8)
    # Each piece came well within idle_timeout: only the rate ends it.
    assert lines == [TIMEOUT], (lines, took)
    assert how == "eof"
    assert 1.8 <= took <= 3.5, took
    sid = sid_of(mxd, c.sock)
    mxd.wait_log(r"^\S+ %s disconnect reason=timeout " % sid)
    assert re.search(r"^\S+ %s slow_data bytes=\d+ ms=\d+$" % sid,
                     mxd.log(), re.M), mxd.log()
    assert mxd.messages() == []
    assert wait_no_tmp(mxd) == []


def test_data_above_the_rate_is_not_cut_off(start_mxd):
    """1500 octets every 0.5 s, past idle_timeout: above the rate, so
    the message is accepted; and a fast 1 MB body is fine."""
    mxd = start(start_mxd, *RATE_ARGS)
    c = greet(mxd)
    open_txn(c)
    assert c.cmd("DATA")[0] == 354
    line = b"y" * 73 + b"\r\n"
    piece = line * 20
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3.5:
        c.send(piece)
        assert quiet(c, 0.5), c.buf
    c.send(b".\r\n")
    assert QUEUED.match(c.reply()[1][0])
    # 1 MB at once.
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    body = line * (1024 * 1024 // len(line) + 1)
    t0 = time.monotonic()
    c.send(body + b".\r\n")
    m = QUEUED.match(c.reply()[1][0])
    assert m
    print("\n1 MB body: %.2f s" % (time.monotonic() - t0))
    assert c.cmd("QUIT")[0] == 221
    assert len(mxd.wait_messages(2)) == 2
    assert " slow_data " not in mxd.log()


def test_slow_bdat_chunk_is_cut_off(start_mxd):
    """One big chunk trickled: the same rate holds for BDAT."""
    mxd = start(start_mxd, *RATE_ARGS)
    c = greet(mxd)
    open_txn(c)
    c.send(b"BDAT 100000 LAST\r\n")
    lines, how, took = trickle(c, b"abc", 0.5, 8)
    assert lines == [TIMEOUT], (lines, took)
    assert 1.8 <= took <= 3.5, took
    assert re.search(r" slow_data bytes=\d+ ", mxd.log()), mxd.log()
    assert mxd.messages() == []


def test_slow_body_in_small_bdat_chunks_is_cut_off(start_mxd):
    """A body sent as many small chunks, each well within idle_timeout,
    at 6 octets/s: the body as a whole is far below min_data_rate
    (DESIGN.md: every wait has a limit), so it must be cut off like a
    trickled DATA body, with 421 4.4.2."""
    mxd = start(start_mxd, *RATE_ARGS)
    c = greet(mxd)
    open_txn(c)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t0 = time.monotonic()
    got = []
    while time.monotonic() - t0 < 6:
        try:
            c.send(b"BDAT 3\r\nabc")
        except (BrokenPipeError, ConnectionResetError):
            break
        code, lines = c.reply()
        if lines != ["250 2.0.0 3 octets received"]:
            got = lines
            break
        time.sleep(0.5)
    took = time.monotonic() - t0
    assert got == [TIMEOUT], (
        "a body at 6 octets/s in BDAT chunks was still being taken after "
        "%.1f s (idle_timeout=2, min_data_rate=1000); last reply %r" % (
            took, got))
    assert took <= 4.0, took


# ---- 2,000 slow connections --------------------------------------------------


N_SLOW = 2000


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        want = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft >= need, "RLIMIT_NOFILE %d/%d: need %d" % (soft, hard, need)


def test_2000_slow_connections_do_not_starve_a_client(start_mxd):
    # The test process and mxd (which inherits the limit) each need one
    # descriptor per connection and some.
    raise_nofile(N_SLOW + 500)
    mxd = start(start_mxd, "-o", "max_connections=5000",
                "-o", "max_connections_per_ip=0")
    rss0 = mxd.rss_kib()
    sel = selectors.DefaultSelector()
    socks = []
    bufs = {}
    t0 = time.monotonic()
    try:
        for i in range(N_SLOW):
            s = socket.create_connection((mxd.host, mxd.port), timeout=10)
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            socks.append(s)
            bufs[s.fileno()] = b""
            sel.register(s, selectors.EVENT_READ, s)
        # Every one is greeted.
        greeted = 0
        deadline = time.monotonic() + 20
        while greeted < N_SLOW and time.monotonic() < deadline:
            for key, _ in sel.select(0.5):
                s = key.data
                data = s.recv(4096)
                assert data, "connection %d closed before its greeting" % (
                    s.fileno())
                bufs[s.fileno()] += data
                if bufs[s.fileno()] == (GREETING + "\r\n").encode():
                    greeted += 1
        assert greeted == N_SLOW, "%d of %d greeted" % (greeted, N_SLOW)
        opened = time.monotonic() - t0

        # Trickle: one octet of a long command line per connection
        # every 2-3 s; a normal client delivers meanwhile.
        cmd = b"NOOP " + b"z" * 200 + b"\r\n"
        pos = {s.fileno(): 0 for s in socks}
        heap = [(time.monotonic() + random.uniform(0, 2.5), i)
                for i in range(N_SLOW)]
        heapq.heapify(heap)
        result = {}

        def deliver():
            t = time.monotonic()
            try:
                s = smtplib.SMTP(mxd.host, mxd.port,
                                 local_hostname="client.example", timeout=10)
                s.sendmail("a@client.example", ["b@example.test"],
                           b"Subject: among the slow\r\n\r\nx\r\n")
                s.quit()
                result["ok"] = True
            except Exception as e:		# reported below
                result["error"] = repr(e)
            result["took"] = time.monotonic() - t

        client = None
        sent = 0
        start_trickle = time.monotonic()
        while time.monotonic() - start_trickle < 7:
            now = time.monotonic()
            while heap and heap[0][0] <= now:
                due, i = heapq.heappop(heap)
                s = socks[i]
                p = pos[s.fileno()]
                s.send(cmd[p:p + 1])
                pos[s.fileno()] = p + 1
                sent += 1
                heapq.heappush(heap, (due + random.uniform(2, 3), i))
            if client is None and now - start_trickle > 3:
                rss_open = mxd.rss_kib()
                client = threading.Thread(target=deliver, daemon=True)
                client.start()
            for key, _ in sel.select(0.01):
                s = key.data
                data = s.recv(4096)
                assert data, "mxd closed a slow connection"
                raise AssertionError("unexpected reply to a slow "
                                     "connection: %r" % data)
        client.join(15)
        rss_peak = mxd.rss_kib()
        print("\n%d connections opened and greeted in %.1f s; %d octets "
              "trickled; RSS before %d KiB, with %d open %d KiB, at the "
              "end %d KiB; delivery took %.3f s" % (
                  N_SLOW, opened, sent, rss0, N_SLOW, rss_open, rss_peak,
                  result.get("took", -1)))
        assert result.get("ok"), result
        assert result["took"] < 2.0, result
        assert max(rss_open, rss_peak) < 64 * 1024, (rss_open, rss_peak)
        assert len(mxd.wait_messages(1)) == 1
        # Every slow one is still open and mxd counted them all.
        assert len(re.findall(r" connect client=", mxd.log())) == N_SLOW + 1
        assert len(re.findall(r" disconnect ", mxd.log())) == 1
    finally:
        for s in socks:
            s.close()
        sel.close()
    deadline = time.monotonic() + 10
    while (len(re.findall(r" disconnect ", mxd.log())) < N_SLOW + 1 and
           time.monotonic() < deadline):
        time.sleep(0.05)
    assert len(re.findall(r" disconnect ", mxd.log())) == N_SLOW + 1


# ---- floods ------------------------------------------------------------------


def test_100mb_command_line_without_crlf(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    other = greet(mxd)		# a session that goes on meanwhile
    time.sleep(0.1)
    rss = RssSampler(mxd)
    rss.start()
    col = Collector(c.sock)
    sent = send_until_closed(c.sock, b"A" * 65536, 100 * 1024 * 1024, col)
    lines = col.done()
    rss.stop("100 MB line without CRLF (%d octets sent)" % sent)
    assert lines == ["500 5.5.2 Error: line too long",
                     "421 4.7.0 %s Error: no line end in the command, "
                     "closing" % HOST], lines
    assert col.how in ("eof", "reset"), col.how
    assert sent < 100 * 1024 * 1024, "the whole 100 MB was read"
    mxd.wait_log(r" disconnect reason=flood ")
    assert re.search(r' reject cmd="" code=500 reply="5\.5\.2 Error: line '
                     r'too long"', mxd.log()), mxd.log()
    open_txn(other)
    assert other.cmd("DATA")[0] == 354
    other.send(b"still here\r\n.\r\n")
    assert QUEUED.match(other.reply()[1][0])


def test_never_ending_data(start_mxd):
    """DATA that never ends: at twice the size limit, 552, 421, close;
    nothing kept."""
    mxd = start(start_mxd, "-o", "max_message_size=8M")
    c = greet(mxd)
    open_txn(c)
    assert c.cmd("DATA")[0] == 354
    time.sleep(0.1)
    rss = RssSampler(mxd)
    rss.start()
    col = Collector(c.sock)
    line = b"x" * 78 + b"\r\n"
    sent = send_until_closed(c.sock, line * 800, 1024 * 1024 * 1024, col)
    lines = col.done()
    rss.stop("never-ending DATA (%d octets sent)" % sent)
    assert lines == [TOO_BIG, "421 4.7.0 %s Error: message far over the "
                     "size limit, closing" % HOST], lines
    assert sent < 64 * 1024 * 1024, sent
    mxd.wait_log(r" disconnect reason=flood ")
    # The reject line reports the refusal, not the 421 after it (as for
    # too_many_errors).
    assert re.search(r" reject cmd=DATA code=552 reply=\"5\.3\.4 [^\"]*\" "
                     r"reason=flood size=\d+", mxd.log()), mxd.log()
    assert mxd.messages() == []
    assert wait_no_tmp(mxd) == []


def test_bdat_size_lie_huge_chunk(start_mxd):
    """BDAT 999999999999 LAST: refused and closed at once, before a
    single octet of it is read; and the same when the client sends on."""
    mxd = start(start_mxd)
    c = greet(mxd)
    open_txn(c)
    time.sleep(0.1)
    rss = RssSampler(mxd)
    rss.start()
    t0 = time.monotonic()
    c.send(b"BDAT 999999999999 LAST\r\n")
    data, how = read_to_eof(c.sock, timeout=5)
    took = time.monotonic() - t0
    want = [TOO_BIG, "421 4.7.0 %s Error: chunk far over the size limit, "
            "closing" % HOST]
    assert (replies(data), how) == (want, "eof")
    assert took < 1.0, took
    # A client that sends the chunk's octets anyway.
    c = greet(mxd)
    open_txn(c)
    col = Collector(c.sock)
    c.send(b"BDAT 999999999999 LAST\r\n")
    sent = send_until_closed(c.sock, b"B" * 65536, 1024 * 1024 * 1024, col)
    assert col.done() == want
    rss.stop("BDAT 999999999999 LAST (%d octets sent after it)" % sent)
    assert len(re.findall(r' reject cmd=BDAT code=552 reply="5\.3\.4 [^"]*" '
                          r'line="BDAT 999999999999 LAST"', mxd.log())) == 2, \
        mxd.log()
    assert sent < 64 * 1024 * 1024, sent
    assert mxd.messages() == []


def test_bdat_short_chunk_then_silence(start_mxd):
    """BDAT 1000 with 10 octets, then nothing: idle_timeout ends it."""
    mxd = start(start_mxd, "-o", "idle_timeout=2")
    c = greet(mxd)
    open_txn(c)
    time.sleep(0.1)
    rss = RssSampler(mxd)
    rss.start()
    t0 = time.monotonic()
    c.send(b"BDAT 1000 LAST\r\n0123456789")
    data, how = read_to_eof(c.sock, timeout=6)
    took = time.monotonic() - t0
    rss.stop("BDAT 1000 with 10 octets")
    assert (replies(data), how) == ([TIMEOUT], "eof")
    assert 1.8 <= took <= 3.0, took
    sid = sid_of(mxd, c.sock)
    mxd.wait_log(r"^\S+ %s disconnect reason=timeout " % sid)
    assert mxd.messages() == []
    assert wait_no_tmp(mxd) == []
