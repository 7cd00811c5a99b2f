"""Limits over real sockets: message size, command and text lines, floods,
recipients, bad commands, idle time and connection counts.

Each test sets small limits with -o so that it runs in about a second.
"""

import re
import socket
import threading
import time

import pytest

from conftest import quiet

HOST = "mx.test"
GREETING = "220 %s ESMTP mxd" % HOST
QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as (\S+)$")
TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"


def start(start_mxd, *args):
    return start_mxd("-H", HOST, *args)


def greet(mxd):
    c = mxd.client()
    assert c.reply()[1] == [GREETING]
    return c


def ehlo(c, size=None):
    code, lines = c.cmd("EHLO client.example")
    assert code == 250 and lines[-1] == "250 ENHANCEDSTATUSCODES", lines
    if size is not None:
        assert "250-SIZE %d" % size in lines, lines
    return lines


def open_txn(c, rcpt="r@example.test"):
    assert c.cmd("MAIL FROM:<s@client.example>")[1] == ["250 2.1.0 Ok"]
    assert c.cmd("RCPT TO:<%s>" % rcpt)[1] == ["250 2.1.5 Ok"]
    assert c.cmd("DATA")[0] == 354


def queued(c):
    lines = c.reply()[1]
    m = QUEUED.match(lines[0])
    assert m, lines
    return m.group(1)


def stored(mxd, msgid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in mxd.messages():
            if "Q%s." % msgid in p.name:
                return p.read_bytes()
        time.sleep(0.02)
    raise AssertionError("message %s not stored" % msgid)


def body_of(data):
    """The stored body: what follows the Received header's last line."""
    head, sep, body = data.partition(b" +0000\n")
    assert sep, data[:300]
    return body


def tmp_files(mxd):
    d = mxd.maildir / "tmp"
    return sorted(d.iterdir()) if d.is_dir() else []


def wait_no_tmp(mxd, timeout=5):
    deadline = time.monotonic() + timeout
    while tmp_files(mxd) and time.monotonic() < deadline:
        time.sleep(0.02)
    return tmp_files(mxd)



# ---- message size (RFC 1870) ----------------------------------------------


def test_size_limit_is_advertised_and_enforced_in_mail(start_mxd):
    mxd = start(start_mxd, "-o", "max_message_size=2k")
    c = greet(mxd)
    ehlo(c, size=2048)
    assert c.cmd("MAIL FROM:<s@client.example> SIZE=2049")[1] == [TOO_BIG]
    assert c.cmd("MAIL FROM:<s@client.example> SIZE=2048")[1] == [
        "250 2.1.0 Ok"]


def test_size_boundary_exact_limit_accepted_one_more_refused(start_mxd):
    limit = 2048
    mxd = start(start_mxd, "-o", "max_message_size=%d" % limit)
    c = greet(mxd)
    ehlo(c, size=limit)
    # limit octets after unstuffing, CRLF counted as two.
    line = b"x" * 98 + b"\r\n"
    exact = line * (limit // 100) + b"y" * (limit % 100 - 2) + b"\r\n"
    assert len(exact) == limit
    open_txn(c)
    c.send(exact + b".\r\n")
    msgid = queued(c)
    assert body_of(stored(mxd, msgid)) == exact.replace(b"\r\n", b"\n")
    # A stuffed dot does not count: ".." is one octet stored.
    stuffed = b".." + exact[1:]
    open_txn(c)
    c.send(stuffed + b".\r\n")
    msgid2 = queued(c)
    assert body_of(stored(mxd, msgid2)) == \
        (b"." + exact[1:]).replace(b"\r\n", b"\n")
    over = b"z" + exact
    open_txn(c)
    c.send(over + b".\r\n")
    assert c.reply()[1] == [TOO_BIG]
    assert c.cmd("NOOP")[1] == ["250 2.0.0 Ok"]
    time.sleep(0.2)
    assert len(mxd.messages()) == 2


def test_size_over_limit_in_data_consumed_then_552(start_mxd):
    """A body over max_message_size (large enough to have been flushed to
    tmp/ on the way) but under twice it is read to its end, refused with
    552 5.3.4, leaves nothing in new/ or tmp/, and the session takes the
    next message."""
    mxd = start(start_mxd, "-o", "max_message_size=400k")
    c = greet(mxd)
    ehlo(c, size=400 * 1024)
    open_txn(c)
    line = b"0123456789" * 9 + b"abcdefg\r\n"
    big = line * (600 * 1024 // len(line))
    # A command in the body is body: it must not be executed.
    c.send(big[:300000] + b"MAIL FROM:<inner@x.example>\r\n" +
           big[300000:] + b".\r\n")
    code, lines = c.reply()
    assert lines == [TOO_BIG]
    assert quiet(c, 0.2), c.buf
    assert wait_no_tmp(mxd) == []
    assert mxd.messages() == []
    # The session goes on, and a message in size is accepted.
    assert c.cmd("NOOP")[1] == ["250 2.0.0 Ok"]
    open_txn(c)
    c.send(b"small\r\n.\r\n")
    msgid = queued(c)
    assert body_of(stored(mxd, msgid)) == b"small\n"
    assert c.cmd("QUIT")[0] == 221
    assert len(mxd.messages()) == 1
    assert tmp_files(mxd) == []
    log = mxd.wait_log(r" disconnect ")
    m = re.search(r' reject cmd=DATA code=552 reply="5\.3\.4 [^"]*" '
                  r'reason=too_big size=(\d+)$', log, re.M)
    assert m, log
    assert int(m.group(1)) > 200 * 1024
    assert re.search(r" disconnect reason=quit accepted=1 rejected=1 ",
                     log), log


# ---- command lines ---------------------------------------------------------


def test_command_line_512_octets_ok_513_too_long(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    # "NOOP " + pad + CRLF: exactly 512 octets is the limit.
    ok = "NOOP " + "a" * (512 - 5 - 2)
    assert len(ok) + 2 == 512
    assert c.cmd(ok)[1] == ["250 2.0.0 Ok"]
    assert c.cmd(ok + "b")[1] == ["500 5.5.2 Error: line too long"]
    assert c.cmd("HELO " + "h" * 600)[1] == [
        "500 5.5.2 Error: line too long"]
    assert c.cmd("NOOP " + "a" * 20000)[1] == [
        "500 5.5.2 Error: line too long"]
    # In step after each: the next command is answered normally.
    assert c.cmd("NOOP")[1] == ["250 2.0.0 Ok"]
    log = mxd.log()
    assert log.count(" reject ") == 3
    assert log.count('reply="5.5.2 Error: line too long"') == 3


def test_over_long_unknown_command_is_line_too_long(start_mxd):
    """A line over 512 octets is too long whatever its verb."""
    mxd = start(start_mxd)
    c = greet(mxd)
    assert c.cmd("X" * 600)[1] == ["500 5.5.2 Error: line too long"]
    assert c.cmd("XYZZY " + "a" * 600)[1] == [
        "500 5.5.2 Error: line too long"]


def test_mail_and_rcpt_get_parameter_allowance(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    # 512 + 512 octets of allowance (RFC 1869 4.1.2) for MAIL and RCPT.
    line = "MAIL FROM:<s@client.example>" + " " * 600 + "SIZE=10"
    assert 512 < len(line) + 2 <= 1024
    assert c.cmd(line)[1] == ["250 2.1.0 Ok"]
    line = "RCPT TO:<r@example.test>" + " " * 1100
    assert c.cmd(line + "X=1")[1] == ["500 5.5.2 Error: line too long"]
    assert c.cmd("RCPT TO:<r@example.test>")[1] == ["250 2.1.5 Ok"]


def test_max_command_line_option(start_mxd):
    mxd = start(start_mxd, "-o", "max_command_line=1000")
    c = greet(mxd)
    assert c.cmd("NOOP " + "a" * (1000 - 7))[1] == ["250 2.0.0 Ok"]
    assert c.cmd("NOOP " + "a" * (1000 - 6))[1] == [
        "500 5.5.2 Error: line too long"]


def test_flood_without_crlf_bounded_memory_others_served(start_mxd):
    """A flood without a line end: past SMTP_CMD_FLOOD (64 KiB) the
    session gets 500 5.5.2 and 421 4.7.0 and is closed; memory stays
    flat, and a second client gets a whole transaction done meanwhile."""
    mxd = start(start_mxd)
    c = greet(mxd)		# a session in progress before the flood
    ehlo(c)
    flood = greet(mxd)
    time.sleep(0.1)
    rss0 = mxd.rss_kib()
    assert rss0 > 0
    chunk = b"A" * 4096
    sent = 0
    try:
        while sent < 10 * 1024 * 1024:
            flood.send(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    # The refusal, then the close; the server read no 10 MB for it.
    flood.sock.settimeout(5)
    try:
        got = flood.buf
        while True:
            data = flood.sock.recv(65536)
            if not data:
                break
            got += data
    except ConnectionResetError:
        pass
    assert got.startswith(b"500 5.5.2 Error: line too long\r\n"
                          b"421 4.7.0 mx.test Error: no line end in the "
                          b"command, closing\r\n"), got
    assert sent < 10 * 1024 * 1024, "the flood was read to its end"
    mxd.wait_log(r" disconnect reason=flood ")
    # The other session is served as if nothing happened.
    open_txn(c)
    c.send(b"while flooded\r\n.\r\n")
    msgid = queued(c)
    assert c.cmd("QUIT")[0] == 221
    peak = mxd.rss_kib()
    assert peak - rss0 < 4096, "RSS grew from %d to %d KiB" % (rss0, peak)
    assert body_of(stored(mxd, msgid)) == b"while flooded\n"
    assert len(mxd.messages()) == 1


def test_flood_in_data_without_crlf_bounded_memory(start_mxd):
    """One 8 MB 'line' inside DATA: streamed, not held; refused as a too
    long text line at the end (550 5.6.0)."""
    mxd = start(start_mxd, "-o", "max_message_size=64M")
    c = greet(mxd)
    ehlo(c)
    open_txn(c)
    time.sleep(0.1)
    rss0 = mxd.rss_kib()
    peak = rss0
    chunk = b"B" * 65536
    for i in range(128):
        c.send(chunk)
        if i % 16 == 0:
            peak = max(peak, mxd.rss_kib())
    c.send(b"\r\n.\r\n")
    assert c.reply()[1] == [
        "550 5.6.0 Error: message line longer than 1000 octets"]
    peak = max(peak, mxd.rss_kib())
    assert peak - rss0 < 4096, "RSS grew from %d to %d KiB" % (rss0, peak)
    assert wait_no_tmp(mxd) == []
    assert mxd.messages() == []
    assert c.cmd("NOOP")[0] == 250


@pytest.mark.parametrize("raw", [b"NOOP\x00\r\n", b"\x00\r\n",
                                 b"EHLO a\x00b.example\r\n",
                                 b"MAIL FROM:<a\x00@b.example>\r\n"])
def test_nul_in_command(start_mxd, raw):
    mxd = start(start_mxd)
    c = greet(mxd)
    c.send(raw)
    assert c.reply()[1] == ["500 5.5.2 Error: invalid character in command"]
    assert c.cmd("NOOP")[1] == ["250 2.0.0 Ok"]
    ehlo(c)
    log = mxd.log()
    assert "\x00" not in log
    assert re.search(r' reject cmd="" code=500 '
                     r'reply="5\.5\.2 Error: invalid character in command"',
                     log), log


# ---- text lines in DATA ----------------------------------------------------


def test_text_line_limit(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    ok = b"t" * 998 + b"\r\n"
    open_txn(c)
    c.send(ok + b".\r\n")
    msgid = queued(c)
    assert body_of(stored(mxd, msgid)) == b"t" * 998 + b"\n"
    open_txn(c)
    c.send(b"t" + ok + b".\r\n")
    assert c.reply()[1] == [
        "550 5.6.0 Error: message line longer than 1000 octets"]
    assert c.cmd("NOOP")[0] == 250
    time.sleep(0.1)
    assert len(mxd.messages()) == 1


def test_stuffed_dot_not_counted_in_text_line(start_mxd):
    """RFC 5321 4.5.3.1.6: the limit does not count the dot added for
    transparency: a 1000-octet line sent stuffed (1001 on the wire)."""
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    open_txn(c)
    c.send(b".." + b"d" * 997 + b"\r\n.\r\n")
    msgid = queued(c)
    assert body_of(stored(mxd, msgid)) == b"." + b"d" * 997 + b"\n"


def test_text_line_limit_off(start_mxd):
    mxd = start(start_mxd, "-o", "max_text_line=0")
    c = greet(mxd)
    ehlo(c)
    open_txn(c)
    c.send(b"u" * 5000 + b"\r\n.\r\n")
    msgid = queued(c)
    assert body_of(stored(mxd, msgid)) == b"u" * 5000 + b"\n"


# ---- recipients ------------------------------------------------------------


def test_max_recipients(start_mxd, tmp_path):
    n = 120
    tmpl = tmp_path / "boxes"
    mxd = start(start_mxd, "-o", "max_recipients=%d" % n,
                "-m", "%s/%%l" % tmpl)
    c = greet(mxd)
    ehlo(c)
    cmds = ["MAIL FROM:<s@client.example>"]
    cmds += ["RCPT TO:<r%d@example.test>" % i for i in range(1, n + 3)]
    c.send("".join(x + "\r\n" for x in cmds))
    assert c.reply()[1] == ["250 2.1.0 Ok"]
    for i in range(1, n + 1):
        assert c.reply()[1] == ["250 2.1.5 Ok"], i
    for i in (n + 1, n + 2):
        assert c.reply()[1] == ["452 4.5.3 Error: too many recipients"], i
    assert c.cmd("DATA")[0] == 354
    c.send(b"to many\r\n.\r\n")
    msgid = queued(c)
    assert c.cmd("QUIT")[0] == 221
    boxes = sorted(p.name for p in tmpl.iterdir())
    assert boxes == sorted("r%d" % i for i in range(1, n + 1))
    for b in boxes:
        files = list((tmpl / b / "new").iterdir())
        assert len(files) == 1, b
        assert msgid in files[0].name
        assert files[0].read_bytes().endswith(b" +0000\nto many\n")
    log = mxd.wait_log(r" disconnect ")
    assert re.search(r" accepted id=%s size=9 rcpts=%d " %
                     (re.escape(msgid), n), log), log
    assert log.count(" code=452 ") == 2
    # 452 is not a bad command: the session was not cut off.
    assert "too_many_errors" not in log


def test_many_recipients_pipelined(start_mxd):
    """A configured max_recipients=400, all RCPTs pipelined in one write
    as RFC 2920 allows: each gets its reply without further input."""
    n = 400
    mxd = start(start_mxd, "-o", "max_recipients=%d" % n)
    c = greet(mxd)
    ehlo(c)
    cmds = ["MAIL FROM:<s@client.example>"]
    cmds += ["RCPT TO:<r%d@example.test>" % i for i in range(n)]
    cmds += ["DATA"]
    c.send("".join(x + "\r\n" for x in cmds))
    c.sock.settimeout(3)
    codes = []
    try:
        while len(codes) < len(cmds):
            codes.append(c.reply()[0])
    except socket.timeout:
        pass
    assert len(codes) == len(cmds), "%d of %d replies, then silence" % (
        len(codes), len(cmds))
    assert codes == [250] * (n + 1) + [354]
    c.sock.settimeout(10)
    c.send(b"many\r\n.\r\n")
    msgid = queued(c)
    log = mxd.wait_log(r" accepted ")
    assert re.search(r" accepted id=%s size=6 rcpts=%d " %
                     (re.escape(msgid), n), log), log


def test_default_max_recipients_is_100(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    cmds = ["MAIL FROM:<s@client.example>"]
    cmds += ["RCPT TO:<r%d@example.test>" % i for i in range(101)]
    c.send("".join(x + "\r\n" for x in cmds))
    codes = [c.reply()[0] for _ in cmds]
    assert codes == [250] * 101 + [452]


# ---- bad commands ----------------------------------------------------------


def test_ten_bad_commands_get_421_and_close(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    kinds = ["FOO", "MAIL FROM:<a@b.example>", "RCPT TO:<x@y.example>",
             "EHLO", "DATA", "BAR", "VRFY", "HELO a..b", "BAZ"]
    for k in kinds:
        assert 500 <= c.cmd(k)[0] < 600, k
    # Nine bad commands: still served.
    assert c.cmd("NOOP")[1] == ["250 2.0.0 Ok"]
    assert c.cmd("TENTH")[1] == ["500 5.5.1 Error: command unrecognized"]
    assert c.reply()[1] == ["421 4.7.0 %s Error: too many errors" % HOST]
    assert c.closed(), "still open after 421"
    assert c.buf == b""
    log = mxd.wait_log(r" disconnect ")
    assert re.search(r" disconnect reason=too_many_errors accepted=0 "
                     r"rejected=10 ", log), log


def test_bad_commands_pipelined_stop_at_limit(start_mxd):
    mxd = start(start_mxd, "-o", "max_errors=3")
    c = greet(mxd)
    c.send(b"A\r\nB\r\nNOOP\r\nC\r\nD\r\nNOOP\r\n")
    assert c.closed()
    lines = c.buf.decode().split("\r\n")
    assert lines == ["500 5.5.1 Error: command unrecognized"] * 2 + [
        "250 2.0.0 Ok", "500 5.5.1 Error: command unrecognized",
        "421 4.7.0 %s Error: too many errors" % HOST, ""]


def test_max_errors_zero_means_no_limit(start_mxd):
    mxd = start(start_mxd, "-o", "max_errors=0")
    c = greet(mxd)
    c.send(b"X\r\n" * 50)
    for _ in range(50):
        assert c.reply()[0] == 500
    assert c.cmd("NOOP")[1] == ["250 2.0.0 Ok"]


def test_refused_recipients_count_as_errors(start_mxd):
    mxd = start(start_mxd, "-d", "example.test", "-o", "max_errors=3")
    c = greet(mxd)
    ehlo(c)
    assert c.cmd("MAIL FROM:<s@client.example>")[0] == 250
    for i in range(2):
        assert c.cmd("RCPT TO:<r@elsewhere.example>")[1] == [
            "550 5.7.1 Relaying denied"]
    assert c.cmd("RCPT TO:<r@example.test>")[1] == ["250 2.1.5 Ok"]
    assert c.cmd("RCPT TO:<r@elsewhere.example>")[1] == [
        "550 5.7.1 Relaying denied"]
    assert c.reply()[0] == 421
    assert c.closed()


# ---- idle timeout ----------------------------------------------------------


def test_idle_timeout_421_then_close(start_mxd):
    mxd = start(start_mxd, "-o", "idle_timeout=1")
    c = greet(mxd)
    t0 = time.monotonic()
    c.sock.settimeout(5)
    assert c.reply()[1] == ["421 4.4.2 %s Error: timeout exceeded" % HOST]
    elapsed = time.monotonic() - t0
    assert 0.8 <= elapsed < 3, elapsed
    assert c.closed()
    assert c.buf == b""
    log = mxd.wait_log(r" disconnect ")
    assert re.search(r" disconnect reason=timeout ", log), log


def test_idle_timer_restarts_on_activity(start_mxd):
    mxd = start(start_mxd, "-o", "idle_timeout=1")
    c = greet(mxd)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.2:
        assert c.cmd("NOOP")[1] == ["250 2.0.0 Ok"]
        time.sleep(0.4)
    c.sock.settimeout(5)
    assert c.reply()[0] == 421
    assert c.closed()


def test_idle_timeout_in_data_drops_message(start_mxd):
    mxd = start(start_mxd, "-o", "idle_timeout=1")
    c = greet(mxd)
    ehlo(c)
    open_txn(c)
    c.send(b"partial body\r\n")
    c.sock.settimeout(5)
    assert c.reply()[1] == ["421 4.4.2 %s Error: timeout exceeded" % HOST]
    assert c.closed()
    assert mxd.messages() == []
    assert wait_no_tmp(mxd) == []


# ---- connection counts -----------------------------------------------------


def test_max_connections_per_ip(start_mxd):
    mxd = start(start_mxd, "-o", "max_connections_per_ip=2")
    a = greet(mxd)
    b = greet(mxd)
    c = mxd.client()
    c.sock.settimeout(5)
    assert c.reply()[1] == [
        "421 4.7.0 %s Too many connections from your address" % HOST]
    assert c.closed()
    # The two admitted sessions work.
    assert a.cmd("NOOP")[0] == 250
    assert b.cmd("NOOP")[0] == 250
    log = mxd.wait_log(r"refused=too_many_connections_ip")
    assert re.search(r" disconnect reason=too_many_connections_ip ", log)
    # One leaves: the next one is welcome.
    assert a.cmd("QUIT")[0] == 221
    assert a.closed()
    mxd.wait_log(r" disconnect reason=quit ")
    d = greet(mxd)
    assert d.cmd("NOOP")[0] == 250


def test_max_connections_third_waits_for_a_slot(start_mxd):
    mxd = start(start_mxd, "-o", "max_connections=2")
    a = greet(mxd)
    b = greet(mxd)
    c = mxd.client()
    # Accepted by the kernel (backlog) but not by mxd: no greeting.
    assert quiet(c, 0.7), c.buf
    assert a.cmd("NOOP")[0] == 250 and b.cmd("NOOP")[0] == 250
    assert a.cmd("QUIT")[0] == 221
    c.sock.settimeout(5)
    assert c.reply()[1] == [GREETING]
    assert c.cmd("NOOP")[0] == 250
    # Full again: a fourth waits until the second leaves.
    d = mxd.client()
    assert quiet(d, 0.5), d.buf
    b.close()
    d.sock.settimeout(5)
    assert d.reply()[1] == [GREETING]
