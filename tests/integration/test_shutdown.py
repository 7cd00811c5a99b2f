"""SIGTERM and SIGINT drain mxd (DESIGN.md, server.c).

On the signal mxd stops accepting, says "421 4.3.2" to every session
that is not inside DATA and closes it, lets a message in DATA finish
(250, then the 421), and exits 0 once the last session is gone.  A DATA
session that does not finish within shutdown_grace is cut off; nothing
partial is left in the Maildir.
"""

import random
import re
import signal
import socket
import time

import pytest

HOST = "mx.test"
SENDER = "alice@client.example"
RCPT = "bob@example.test"

TRACE = (rb"Return-Path: <" + re.escape(SENDER.encode()) + rb">\n"
         rb"Received: from client\.example \(\[127\.0\.0\.1\]\)\n"
         rb"\tby mx\.test \(mxd\) with ESMTP id (?P<id>\S+)\n"
         rb"\tfor <" + re.escape(RCPT.encode()) + rb">; [^\n]+\n")


_TO_TEXT = bytes(b"abcdefghijklmnop xyz"[i % 20] for i in range(256))


def make_message(size, seed):
    """(wire, stored): CRLF and dot-stuffed without the final dot line;
    LF and unstuffed as the Maildir must hold it."""
    rng = random.Random(seed)
    lines = ["Subject: drain %d" % seed, ""]
    total = 0
    i = 0
    while total < size:
        i += 1
        line = ("." if i % 7 == 0 else "") + "%d %s" % (
            i, rng.randbytes(rng.randint(0, 300)).translate(_TO_TEXT).decode())
        lines.append(line)
        total += len(line) + 2
    wire = "".join(("." + x if x.startswith(".") else x) + "\r\n"
                   for x in lines)
    return wire.encode(), "".join(x + "\n" for x in lines).encode()


def files(m, sub):
    d = m.maildir / sub
    return sorted(d.iterdir()) if d.is_dir() else []


def ehlo(c):
    c.expect(220)
    c.send("EHLO client.example\r\n")
    c.expect(250)


def into_data(c):
    ehlo(c)
    assert c.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
    assert c.cmd("RCPT TO:<%s>" % RCPT)[0] == 250
    assert c.cmd("DATA")[0] == 354


def idle_sessions(m):
    """Sessions in every state outside DATA: after the greeting, after
    EHLO, inside a transaction (MAIL and RCPT done), and one that has
    sent half a command line."""
    a = m.client()
    a.expect(220)
    b = m.client()
    ehlo(b)
    t = m.client()
    ehlo(t)
    assert t.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
    assert t.cmd("RCPT TO:<%s>" % RCPT)[0] == 250
    h = m.client()
    ehlo(h)
    h.send("NOO")
    return [a, b, t, h]


def expect_421_and_close(c):
    code, lines = c.reply()
    assert code == 421 and lines[-1].startswith("421 4.3.2 "), lines
    assert c.closed(), "still open after the 421"


def wait_exit(m, timeout):
    t0 = time.monotonic()
    rc = m.proc.wait(timeout)
    return rc, time.monotonic() - t0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT],
                         ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("size", [3000, 400 * 1024])
def test_drain_idle_get_421_data_session_finishes(start_mxd, sig, size):
    m = start_mxd("-H", HOST)
    idle = idle_sessions(m)
    d = m.client()
    into_data(d)
    wire, stored = make_message(size, size)
    half = len(wire) // 2
    d.send(wire[:half])
    if size > 256 * 1024:
        # Past the flush threshold: part of it is in tmp/ already.
        deadline = time.monotonic() + 10
        while not files(m, "tmp") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert files(m, "tmp")

    m.signal(sig)
    for c in idle:
        expect_421_and_close(c)
    # The listener is closed: no new sessions.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((m.host, m.port), timeout=5).close()

    # The DATA session is still served, however long it takes (within
    # the 30 s default grace).
    time.sleep(0.5)
    assert m.proc.poll() is None, "mxd exited with a message in DATA"
    d.send(wire[half:] + b".\r\n")
    code, lines = d.reply()
    mm = re.match(r"^250 2\.0\.0 Ok: queued as (\S+)$", lines[-1])
    assert code == 250 and mm, lines
    expect_421_and_close(d)

    rc, _ = wait_exit(m, 10)
    assert rc == 0
    (f,) = files(m, "new")
    data = f.read_bytes()
    tm = re.match(TRACE, data)
    assert tm and tm.group("id").decode() == mm.group(1), data[:300]
    assert data[tm.end():] == stored
    assert files(m, "tmp") == []
    log = m.log()
    assert re.search(r" shutdown (level=\w+ )?msg=\"draining 5 sessions",
                     log), log
    assert re.search(r" stop connections=\d+ ", log), log
    for c in idle + [d]:
        c.close()


def test_data_session_may_send_the_dot_in_pieces_during_drain(start_mxd):
    """The end of DATA split over several reads after the signal."""
    m = start_mxd("-H", HOST)
    d = m.client()
    into_data(d)
    wire, stored = make_message(5000, 5)
    d.send(wire[:100])
    m.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert m.proc.poll() is None
    rest = wire[100:]
    for i in range(0, len(rest) - 1, 997):
        d.send(rest[i:min(i + 997, len(rest) - 1)])
        time.sleep(0.01)
    # ... CR | LF . | CR | LF, each in its own segment.
    for piece in (b"\n.", b"\r", b"\n"):
        time.sleep(0.05)
        assert m.proc.poll() is None
        d.send(piece)
    code, lines = d.reply()
    assert code == 250, lines
    expect_421_and_close(d)
    assert wait_exit(m, 10)[0] == 0
    (f,) = files(m, "new")
    assert f.read_bytes().endswith(stored)
    d.close()


def test_sigterm_without_sessions_exits_0_at_once(start_mxd):
    m = start_mxd()
    m.signal(signal.SIGTERM)
    rc, took = wait_exit(m, 5)
    assert rc == 0
    assert took < 2


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT],
                         ids=["SIGTERM", "SIGINT"])
def test_shutdown_grace_cuts_off_a_data_session_that_never_ends(
        start_mxd, sig):
    m = start_mxd("-H", HOST, "-o", "shutdown_grace=1")
    idle = m.client()
    ehlo(idle)
    d = m.client()
    into_data(d)
    wire, _ = make_message(300 * 1024, 9)
    d.send(wire[:len(wire) - 1000])
    deadline = time.monotonic() + 10
    while not files(m, "tmp") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert files(m, "tmp"), "no partial file in tmp/ to clean up"

    t0 = time.monotonic()
    m.signal(sig)
    expect_421_and_close(idle)
    # Within the grace the session stays open...
    time.sleep(0.5)
    assert m.proc.poll() is None, "exited before shutdown_grace"
    # ...then it is cut off: a 421 (never a 250) and the close.
    d.sock.settimeout(5)
    code, lines = d.reply()
    assert code == 421 and lines[-1].startswith("421 4.3.2 "), lines
    assert d.closed()
    rc = m.proc.wait(5)
    took = time.monotonic() - t0
    assert rc == 0
    assert 0.9 <= took <= 3.0, "exit %.2fs after the signal" % took
    assert files(m, "new") == []
    assert files(m, "cur") == []
    assert files(m, "tmp") == [], "partial file left in tmp/"
    assert re.search(r" shutdown_grace_over ", m.log()), m.log()
    idle.close()
    d.close()


def test_commands_pipelined_after_the_dot_are_not_run_during_drain(
        start_mxd):
    """A client that pipelines its next transaction behind the dot gets
    the 250 for the message, then the 421; the next one is not taken."""
    m = start_mxd("-H", HOST)
    d = m.client()
    into_data(d)
    wire, stored = make_message(2000, 11)
    d.send(wire[:500])
    m.signal(signal.SIGTERM)
    time.sleep(0.3)
    d.send(wire[500:] + b".\r\nMAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n"
           b"Subject: second\r\n\r\nsecond\r\n.\r\nQUIT\r\n" %
           (SENDER.encode(), RCPT.encode()))
    code, lines = d.reply()
    assert code == 250, lines
    expect_421_and_close(d)
    assert d.buf == b"", "more replies after the 421: %r" % d.buf
    assert wait_exit(m, 10)[0] == 0
    (f,) = files(m, "new")
    assert f.read_bytes().endswith(stored)
    d.close()


def test_client_abandoning_data_during_drain_lets_mxd_exit(start_mxd):
    """The last session goes away in DATA: mxd exits at once (not at
    the end of the 30 s grace), stores nothing, and cleans tmp/."""
    m = start_mxd("-H", HOST)
    d = m.client()
    into_data(d)
    wire, _ = make_message(300 * 1024, 12)
    d.send(wire[:250 * 1024])
    deadline = time.monotonic() + 10
    while not files(m, "tmp") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert files(m, "tmp")
    m.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert m.proc.poll() is None
    d.close()
    rc, took = wait_exit(m, 10)
    assert rc == 0
    assert took < 3, "took %.1fs to exit after the last client left" % took
    assert files(m, "new") == []
    assert files(m, "tmp") == []


def test_signal_right_after_the_dot_still_gives_250_then_421(start_mxd):
    """SIGTERM just after the terminator, while mxd reads it or while the
    worker writes and fsyncs 10 MB: the message is still acknowledged
    (its store was under way) and the 421 follows."""
    m = start_mxd("-H", HOST)
    d = m.client()
    into_data(d)
    wire, stored = make_message(10 * 1024 * 1024, 13)
    d.send(wire + b".\r\n")
    m.signal(signal.SIGTERM)
    d.sock.settimeout(30)
    code, lines = d.reply()
    assert code == 250 and "queued as" in lines[-1], lines
    expect_421_and_close(d)
    assert wait_exit(m, 10)[0] == 0
    (f,) = files(m, "new")
    data = f.read_bytes()
    tm = re.match(TRACE, data)
    assert tm and data[tm.end():] == stored
    d.close()
