"""The SMTP dialogue over real sockets: stored bytes, pipelining, splits,
every command's reply, the bare-newline policy, and the log lines.

Stored messages are compared byte for byte: Return-Path, the Received
header of delivery_txn_begin_data(), then the body as the client sent it
with CRLF turned into LF and dot-stuffing undone.  Only the date in the
Received header is matched by pattern (and checked to be about now).
"""

import datetime
import email.utils
import re
import smtplib
import socket
import subprocess
import time

import pytest

from conftest import quiet

HOST = "mx.test"

GREETING = "220 %s ESMTP mxd" % HOST
# The default configuration offers STARTTLS (a self-signed certificate).
EHLO_LINES = [
    "250-%s" % HOST,
    "250-PIPELINING",
    "250-SIZE 26214400",
    "250-8BITMIME",
    "250-SMTPUTF8",
    "250-CHUNKING",
    "250-STARTTLS",
    "250 ENHANCEDSTATUSCODES",
]
NEXT = len(EHLO_LINES) + 1     # index of the first reply after EHLO
QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as (\S+)$")
DATE = rb"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000"


# ---- helpers ---------------------------------------------------------------


def start(start_mxd, *args):
    return start_mxd("-H", HOST, *args)


def greet(mxd):
    c = mxd.client()
    code, lines = c.reply()
    assert lines == [GREETING]
    return c


def ehlo(c, name="client.example"):
    code, lines = c.cmd("EHLO " + name)
    assert lines == EHLO_LINES
    return lines



def send_message(c, sender, rcpts, body):
    """One transaction, each reply checked; body is the raw DATA octets
    (already dot-stuffed), without the final '.' line.  Returns the id."""
    code, lines = c.cmd("MAIL FROM:<%s>" % sender)
    assert lines == ["250 2.1.0 Ok"]
    for r in rcpts:
        code, lines = c.cmd("RCPT TO:<%s>" % r)
        assert lines == ["250 2.1.5 Ok"]
    code, lines = c.cmd("DATA")
    assert lines == ["354 End data with <CR><LF>.<CR><LF>"]
    c.send(body + b".\r\n")
    code, lines = c.reply()
    m = QUEUED.match(lines[0])
    assert m and len(lines) == 1, lines
    return m.group(1)


def stored_by_id(mxd, msgid, timeout=10):
    """The file in new/ whose name carries the queue id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in mxd.messages():
            if ("Q%s." % msgid) in p.name:
                return p.read_bytes()
        time.sleep(0.02)
    raise AssertionError("no stored file for id %s in %r" %
                         (msgid, [p.name for p in mxd.messages()]))


def check_stored(data, sender, helo, ip, proto, msgid, rcpts, body,
                 host=HOST):
    """The exact stored form: trace headers, then body with LF endings."""
    head = (b"Return-Path: <%s>\n"
            b"Received: from %s ([%s])\n"
            b"\tby %s (mxd) with %s id %s\n" % (
                sender.encode(), helo.encode(), ip.encode(), host.encode(),
                proto.encode(), msgid.encode()))
    assert data[:len(head)] == head, (data[:len(head) + 80], head)
    rest = data[len(head):]
    if len(rcpts) == 1:
        m = re.match(rb"\tfor <" + re.escape(rcpts[0].encode()) +
                     rb">; (" + DATE + rb")\n", rest)
    else:
        m = re.match(rb"\t; (" + DATE + rb")\n", rest)
    assert m, rest[:120]
    when = email.utils.parsedate_to_datetime(m.group(1).decode())
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - when).total_seconds()) < 120, when
    assert rest[m.end():] == body, (rest[m.end():], body)


def read_all_replies(c, timeout=10):
    """Read until the server closes; returns all reply lines."""
    assert c.closed(timeout), "server did not close"
    text = c.buf.decode("latin-1")
    c.buf = b""
    assert text.endswith("\r\n") or text == "", repr(text)
    return text.split("\r\n")[:-1]


def logfmt(line):
    """Parse one logfmt line: (session, event, {key: raw value})."""
    m = re.match(r"^\S+ (\S+) (\S+)(.*)$", line)
    assert m, line
    kv = {}
    rest = m.group(3)
    pos = 0
    for km in re.finditer(r' (\w+)=("(?:[^"\\]|\\.)*"|[^ "]*)', rest):
        assert km.start() == pos, (line, rest[pos:])
        kv[km.group(1)] = km.group(2)
        pos = km.end()
    assert pos == len(rest), (line, rest[pos:])
    return m.group(1), m.group(2), kv


def unquote(v):
    if v.startswith('"'):
        assert v.endswith('"') and len(v) >= 2, v
        return v[1:-1]
    return v


def session_events(mxd, sid):
    out = []
    for line in mxd.log().splitlines():
        s, ev, kv = logfmt(line)
        if s == sid:
            out.append((ev, kv))
    return out


# ---- stored bytes ----------------------------------------------------------


BODY_IN = (b"Subject: exact\r\n"
           b"\r\n"
           b"first line\r\n"
           b"..starts with one dot\r\n"
           b"...two dots\r\n"
           b".x stuffed x\r\n"
           b". space after dot\r\n"
           b"not .. at start\r\n"
           b"8-bit: \x80\x81\xc3\xa9\xfe\xff end\r\n"
           b"a NUL \x00 inside\r\n"
           b"trailing spaces   \r\n"
           b"\r\n"
           b"..\r\n"
           b"last\r\n")
BODY_OUT = (b"Subject: exact\n"
            b"\n"
            b"first line\n"
            b".starts with one dot\n"
            b"..two dots\n"
            b"x stuffed x\n"
            b" space after dot\n"
            b"not .. at start\n"
            b"8-bit: \x80\x81\xc3\xa9\xfe\xff end\n"
            b"a NUL \x00 inside\n"
            b"trailing spaces   \n"
            b"\n"
            b".\n"
            b"last\n")


def test_stored_bytes_exact_esmtp(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c, "client.example")
    msgid = send_message(c, "alice@client.example", ["bob@example.test"],
                         BODY_IN)
    assert c.cmd("QUIT")[1] == ["221 2.0.0 Bye"]
    data = stored_by_id(mxd, msgid)
    check_stored(data, "alice@client.example", "client.example",
                 "127.0.0.1", "ESMTP", msgid, ["bob@example.test"],
                 BODY_OUT)
    # The queue id names the file and is the one in the log.
    mxd.wait_log(r" accepted id=%s " % re.escape(msgid))


def test_stored_bytes_helo_is_smtp_and_no_for_with_two_rcpts(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    assert c.cmd("HELO old.client.example")[1] == ["250 %s" % HOST]
    msgid = send_message(c, "", ["one@example.test", "two@example.test"],
                         b"plain\r\n")
    data = stored_by_id(mxd, msgid)
    check_stored(data, "", "old.client.example", "127.0.0.1", "SMTP",
                 msgid, ["one@example.test", "two@example.test"],
                 b"plain\n")
    assert b"one@example.test" not in data
    assert b"two@example.test" not in data


def test_helo_address_literal_and_second_transaction_gets_new_id(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c, "[127.0.0.1]")
    id1 = send_message(c, "a@client.example", ["x@example.test"], b"one\r\n")
    id2 = send_message(c, "b@client.example", ["y@example.test"], b"two\r\n")
    assert id1 != id2
    check_stored(stored_by_id(mxd, id1), "a@client.example", "[127.0.0.1]",
                 "127.0.0.1", "ESMTP", id1, ["x@example.test"], b"one\n")
    check_stored(stored_by_id(mxd, id2), "b@client.example", "[127.0.0.1]",
                 "127.0.0.1", "ESMTP", id2, ["y@example.test"], b"two\n")
    assert len(mxd.messages()) == 2


def test_empty_body_is_stored_as_headers_only(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    msgid = send_message(c, "a@client.example", ["x@example.test"], b"")
    check_stored(stored_by_id(mxd, msgid), "a@client.example",
                 "client.example", "127.0.0.1", "ESMTP", msgid,
                 ["x@example.test"], b"")


def test_smtplib_dot_stuffing_round_trip(start_mxd):
    mxd = start(start_mxd)
    msg = (b"Subject: dots\r\n\r\n.\r\n..\r\n.hidden\r\n"
           b"x\r\n.\r\nafter a lone dot\r\n")
    with smtplib.SMTP(mxd.host, mxd.port, local_hostname="lib.example") as s:
        code, resp = s.ehlo("lib.example")
        assert code == 250
        s.mail("lib@client.example")
        s.rcpt("r@example.test")
        code, resp = s.data(msg)
        assert code == 250
        msgid = QUEUED.match("250 " + resp.decode()).group(1)
    check_stored(stored_by_id(mxd, msgid), "lib@client.example",
                 "lib.example", "127.0.0.1", "ESMTP", msgid,
                 ["r@example.test"],
                 b"Subject: dots\n\n.\n..\n.hidden\nx\n.\nafter a lone dot\n")


def test_swaks_pipelined_delivery(start_mxd, tmp_path):
    mxd = start(start_mxd)
    body = tmp_path / "body.txt"
    body.write_bytes(b"Subject: via swaks\n\nline one\n.dot line")
    r = subprocess.run(
        ["swaks", "--pipeline", "--server", "%s:%d" % (mxd.host, mxd.port),
         "--helo", "swaks.example", "--from", "s@client.example",
         "--to", "r1@example.test,r2@example.test", "--data", str(body)],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"^<-  250 2\.0\.0 Ok: queued as (\S+)$", r.stdout, re.M)
    assert m, r.stdout
    msgid = m.group(1)
    check_stored(stored_by_id(mxd, msgid), "s@client.example",
                 "swaks.example", "127.0.0.1", "ESMTP", msgid,
                 ["r1@example.test", "r2@example.test"],
                 b"Subject: via swaks\n\nline one\n.dot line\n")


# ---- pipelining (RFC 2920) --------------------------------------------------


def test_whole_session_in_one_write(start_mxd):
    mxd = start(start_mxd)
    c = mxd.client()
    c.send(b"EHLO pipe.example\r\n"
           b"MAIL FROM:<p@client.example>\r\n"
           b"RCPT TO:<r@example.test>\r\n"
           b"DATA\r\n"
           b"pipelined body\r\n"
           b"..dot\r\n"
           b".\r\n"
           b"QUIT\r\n")
    lines = read_all_replies(c)
    assert lines[0] == GREETING
    assert lines[1:NEXT] == EHLO_LINES
    assert lines[NEXT:NEXT + 3] == ["250 2.1.0 Ok", "250 2.1.5 Ok",
                                    "354 End data with <CR><LF>.<CR><LF>"]
    m = QUEUED.match(lines[NEXT + 3])
    assert m, lines
    assert lines[NEXT + 4:] == ["221 2.0.0 Bye"]
    check_stored(stored_by_id(mxd, m.group(1)), "p@client.example",
                 "pipe.example", "127.0.0.1", "ESMTP", m.group(1),
                 ["r@example.test"], b"pipelined body\n.dot\n")


def test_several_transactions_in_one_write(start_mxd):
    mxd = start(start_mxd)
    c = mxd.client()
    c.send(b"EHLO pipe.example\r\n"
           b"MAIL FROM:<a@client.example>\r\n"
           b"RCPT TO:<one@example.test>\r\n"
           b"DATA\r\n"
           b"first\r\n"
           b".\r\n"
           b"MAIL FROM:<>\r\n"
           b"RCPT TO:<two@example.test>\r\n"
           b"RCPT TO:<three@example.test>\r\n"
           b"DATA\r\n"
           b"second\r\n"
           b".\r\n"
           b"RSET\r\n"
           b"NOOP\r\n"
           b"MAIL FROM:<c@client.example>\r\n"
           b"RCPT TO:<four@example.test>\r\n"
           b"RSET\r\n"
           b"RCPT TO:<five@example.test>\r\n"
           b"MAIL FROM:<d@client.example> BODY=8BITMIME\r\n"
           b"RCPT TO:<six@example.test>\r\n"
           b"DATA\r\n"
           b"third \xe9\r\n"
           b".\r\n"
           b"QUIT\r\n")
    lines = read_all_replies(c)
    ok354 = "354 End data with <CR><LF>.<CR><LF>"
    assert lines[0] == GREETING and lines[1:NEXT] == EHLO_LINES
    got = lines[NEXT:]
    ids = [QUEUED.match(x).group(1) for x in got if QUEUED.match(x)]
    norm = ["QUEUED" if QUEUED.match(x) else x for x in got]
    assert norm == [
        "250 2.1.0 Ok", "250 2.1.5 Ok", ok354, "QUEUED",
        "250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok", ok354, "QUEUED",
        "250 2.0.0 Ok", "250 2.0.0 Ok",
        "250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.0.0 Ok",
        "503 5.5.1 Error: need MAIL command",
        "250 2.1.0 Ok", "250 2.1.5 Ok", ok354, "QUEUED",
        "221 2.0.0 Bye",
    ]
    assert len(set(ids)) == 3
    check_stored(stored_by_id(mxd, ids[0]), "a@client.example",
                 "pipe.example", "127.0.0.1", "ESMTP", ids[0],
                 ["one@example.test"], b"first\n")
    check_stored(stored_by_id(mxd, ids[1]), "", "pipe.example", "127.0.0.1",
                 "ESMTP", ids[1], ["two@example.test", "three@example.test"],
                 b"second\n")
    check_stored(stored_by_id(mxd, ids[2]), "d@client.example",
                 "pipe.example", "127.0.0.1", "ESMTP", ids[2],
                 ["six@example.test"], b"third \xe9\n")
    assert len(mxd.messages()) == 3


@pytest.mark.parametrize("n", [250, 400, 3000])
def test_many_pipelined_commands_replies_in_order(start_mxd, n):
    """One write of n commands whose replies outgrow the server's output
    buffer (about 290 short replies): every command is answered, in
    order, without the client having to send anything more."""
    mxd = start(start_mxd)
    c = greet(mxd)
    c.send(b"".join(b"NOOP %d\r\n" % i for i in range(n)))
    c.sock.settimeout(3)
    got = 0
    try:
        for got in range(n):
            assert c.reply()[1] == ["250 2.0.0 Ok"], got
        got = n
    except socket.timeout:
        pass
    assert got == n, "%d of %d pipelined NOOPs answered, then silence" % (
        got, n)
    c.sock.settimeout(10)
    assert c.cmd("QUIT")[1] == ["221 2.0.0 Bye"]
    assert c.closed()


def big_body(n_lines, seed):
    out = []
    for i in range(n_lines):
        k = (i * 7919 + seed) % 991      # lines stay under 1000 octets
        line = bytes((0x20 + (i + j) % 0x5f) for j in range(k))
        if i % 13 == 0:
            line = b"." + line
        if i % 17 == 0:
            line += b"\x80\xfe\x00"
        out.append(line)
    wire = b"".join((b"." + x if x.startswith(b".") else x) + b"\r\n"
                    for x in out)
    stored = b"".join(x + b"\n" for x in out)
    return wire, stored


def test_large_messages_pipelined_in_one_write(start_mxd):
    """Bodies of several hundred KB (written out in pieces while reading
    stops), back to back with the next commands in the same write."""
    mxd = start(start_mxd)
    c = mxd.client()
    w1, s1 = big_body(1200, 1)
    w2, s2 = big_body(900, 5)
    assert len(w1) > 300000 and len(w2) > 200000
    stream = (b"EHLO big.example\r\n"
              b"MAIL FROM:<a@client.example>\r\nRCPT TO:<x@example.test>\r\n"
              b"DATA\r\n" + w1 + b".\r\n"
              b"MAIL FROM:<b@client.example>\r\nRCPT TO:<y@example.test>\r\n"
              b"DATA\r\n" + w2 + b".\r\n"
              b"QUIT\r\n")
    c.send(stream)
    lines = read_all_replies(c, timeout=30)
    ids = [QUEUED.match(x).group(1) for x in lines if QUEUED.match(x)]
    assert len(ids) == 2, lines
    assert lines[-1] == "221 2.0.0 Bye"
    check_stored(stored_by_id(mxd, ids[0]), "a@client.example",
                 "big.example", "127.0.0.1", "ESMTP", ids[0],
                 ["x@example.test"], s1)
    check_stored(stored_by_id(mxd, ids[1]), "b@client.example",
                 "big.example", "127.0.0.1", "ESMTP", ids[1],
                 ["y@example.test"], s2)
    log = mxd.wait_log(r" disconnect ")
    assert re.search(r" accepted id=%s size=%d " % (re.escape(ids[0]),
                     len(s1) + s1.count(b"\n")), log), log


def test_eof_in_data_stores_nothing(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    w, _ = big_body(1200, 3)
    c.send(w)
    time.sleep(0.2)
    c.close()
    log = mxd.wait_log(r" disconnect ")
    assert re.search(r" disconnect reason=eof accepted=0 ", log), log
    deadline = time.monotonic() + 5
    while list((mxd.maildir / "tmp").iterdir()) and \
            time.monotonic() < deadline:
        time.sleep(0.02)
    assert list((mxd.maildir / "tmp").iterdir()) == []
    assert mxd.messages() == []


SPLIT_SESSION = (b"EHLO split.example\r\n"
                 b"MAIL FROM:<s@client.example>\r\n"
                 b"RCPT TO:<r@example.test>\r\n"
                 b"DATA\r\n"
                 b"..one\r\n"
                 b"\xff\x00two\r\n"
                 b".\r\n"
                 b"NOOP\r\n"
                 b"QUIT\r\n")


def run_split(mxd, chunks, delay):
    c = mxd.client()
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for ch in chunks:
        c.send(ch)
        time.sleep(delay)
    lines = read_all_replies(c)
    m = [QUEUED.match(x) for x in lines]
    ids = [x.group(1) for x in m if x]
    assert len(ids) == 1, lines
    return ["QUEUED" if x else y for x, y in zip(m, lines)], ids[0]


def test_byte_by_byte_equals_one_write(start_mxd):
    mxd = start(start_mxd)
    whole, id_whole = run_split(mxd, [SPLIT_SESSION], 0)
    bytewise, id_bytes = run_split(
        mxd, [SPLIT_SESSION[i:i + 1] for i in range(len(SPLIT_SESSION))],
        0.002)
    assert bytewise == whole
    assert whole[:NEXT] == [GREETING] + EHLO_LINES
    assert whole[-2:] == ["250 2.0.0 Ok", "221 2.0.0 Bye"]
    for msgid in (id_whole, id_bytes):
        check_stored(stored_by_id(mxd, msgid), "s@client.example",
                     "split.example", "127.0.0.1", "ESMTP", msgid,
                     ["r@example.test"], b".one\n\xff\x00two\n")


def test_split_lines_at_odd_places(start_mxd):
    """Cuts inside verbs, inside CRLF, and between '.' and the rest."""
    mxd = start(start_mxd)
    s = SPLIT_SESSION
    cuts = sorted({1, 3, 19, 20, 25, s.index(b"DATA") + 5,
                   s.index(b"..one") + 1, s.index(b"..one") + 2,
                   s.index(b"\xff") - 1, s.index(b"\r\n.\r\n") + 3,
                   len(s) - 3})
    chunks = [s[a:b] for a, b in zip([0] + cuts, cuts + [len(s)])]
    assert b"".join(chunks) == s
    lines, msgid = run_split(mxd, chunks, 0.03)
    whole, _ = run_split(mxd, [s], 0)
    assert lines == whole
    check_stored(stored_by_id(mxd, msgid), "s@client.example",
                 "split.example", "127.0.0.1", "ESMTP", msgid,
                 ["r@example.test"], b".one\n\xff\x00two\n")


@pytest.mark.parametrize("body", [b"text\r\n", b"..\r\n", b"\xe9\r\n", b""],
                         ids=["text", "stuffed-dot", "8bit", "blank"])
def test_data_terminator_split_in_every_position(start_mxd, body):
    """'\\r\\n.\\r\\n' cut at each of its inner positions, and byte by byte:
    no reply before the last octet, then the same stored message."""
    mxd = start(start_mxd)
    c = greet(mxd)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ehlo(c)
    # The last line's CRLF is the first part of the terminator.  An
    # empty body is sent as one blank line, so that all five octets come
    # after the DATA line.
    raw = (body if body else b"\r\n") + b".\r\n"
    expected = (body if body else b"\r\n").replace(b"\r\n", b"\n")
    if expected.startswith(b".."):
        expected = expected[1:]
    term_at = len(raw) - 5
    assert raw[term_at:] == b"\r\n.\r\n"
    splits = [[raw[:term_at + k], raw[term_at + k:]] for k in range(1, 5)]
    splits.append([raw[:term_at]] + [raw[i:i + 1]
                                     for i in range(term_at, len(raw))])
    ids = []
    for parts in splits:
        assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
        assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        for p in parts[:-1]:
            c.send(p)
            assert quiet(c, 0.15), ("reply before the end", parts, c.buf)
        c.send(parts[-1])
        code, lines = c.reply()
        m = QUEUED.match(lines[0])
        assert m, (parts, lines)
        ids.append(m.group(1))
    assert c.cmd("QUIT")[0] == 221
    assert len(set(ids)) == len(splits)
    for msgid in ids:
        check_stored(stored_by_id(mxd, msgid), "a@client.example",
                     "client.example", "127.0.0.1", "ESMTP", msgid,
                     ["b@example.test"], expected)


def test_lookalike_terminators_do_not_end_data(start_mxd):
    """'.' followed by text, and a terminator split after '\\r\\n.', end
    nothing: only the real <CRLF>.<CRLF> does."""
    mxd = start(start_mxd)
    c = greet(mxd)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ehlo(c)
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    for part in (b"a\r\n.", b"x\r\n", b"b\r\n.", b".\r\n", b"c\r\n.",
                 b" \r\n"):
        c.send(part)
        assert quiet(c, 0.15), (part, c.buf)
    c.send(b".\r\n")
    code, lines = c.reply()
    msgid = QUEUED.match(lines[0]).group(1)
    check_stored(stored_by_id(mxd, msgid), "a@client.example",
                 "client.example", "127.0.0.1", "ESMTP", msgid,
                 ["b@example.test"], b"a\nx\nb\n.\nc\n \n")


# ---- commands --------------------------------------------------------------


def test_commands_are_case_insensitive(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    code, lines = c.cmd("eHlO mixed.example")
    assert lines == EHLO_LINES
    assert c.cmd("mail from:<m@client.example> body=8bitmime size=10")[1] \
        == ["250 2.1.0 Ok"]
    assert c.cmd("Rcpt To:<r@example.test>")[1] == ["250 2.1.5 Ok"]
    assert c.cmd("rset")[1] == ["250 2.0.0 Ok"]
    assert c.cmd("MaIl FrOm:<m@client.example>")[1] == ["250 2.1.0 Ok"]
    assert c.cmd("rcpt to:<r@example.test>")[1] == ["250 2.1.5 Ok"]
    assert c.cmd("data")[0] == 354
    c.send(b"ci\r\n.\r\n")
    code, lines = c.reply()
    msgid = QUEUED.match(lines[0]).group(1)
    assert c.cmd("noop")[1] == ["250 2.0.0 Ok"]
    assert c.cmd("vrfy someone")[0] == 252
    assert c.cmd("help")[0] == 214
    assert c.cmd("qUiT")[1] == ["221 2.0.0 Bye"]
    assert c.closed()
    check_stored(stored_by_id(mxd, msgid), "m@client.example",
                 "mixed.example", "127.0.0.1", "ESMTP", msgid,
                 ["r@example.test"], b"ci\n")


def test_rset_noop_vrfy_help_quit(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    assert c.cmd("NOOP")[1] == ["250 2.0.0 Ok"]
    assert c.cmd("NOOP with an ignored argument")[1] == ["250 2.0.0 Ok"]
    assert c.cmd("MAIL FROM:<a@client.example>")[1] == ["250 2.1.0 Ok"]
    assert c.cmd("RCPT TO:<b@example.test>")[1] == ["250 2.1.5 Ok"]
    assert c.cmd("RSET")[1] == ["250 2.0.0 Ok"]
    # The transaction is gone: RCPT and DATA need a new MAIL.
    assert c.cmd("RCPT TO:<b@example.test>")[1] == [
        "503 5.5.1 Error: need MAIL command"]
    assert c.cmd("DATA")[1] == ["503 5.5.1 Error: need MAIL command"]
    # RSET keeps the HELO: MAIL works at once.
    assert c.cmd("MAIL FROM:<a@client.example>")[1] == ["250 2.1.0 Ok"]
    code, lines = c.cmd("VRFY postmaster")
    assert code == 252 and lines[0].startswith("252 2.0.0 ")
    code, lines = c.cmd("HELP")
    assert code == 214 and len(lines) == 1
    assert lines[0].startswith("214 2.0.0 ")
    for verb in ("EHLO", "HELO", "MAIL", "RCPT", "DATA", "RSET", "NOOP",
                 "QUIT"):
        assert verb in lines[0]
    # Still in the transaction opened above.
    assert c.cmd("RCPT TO:<b@example.test>")[1] == ["250 2.1.5 Ok"]
    assert c.cmd("QUIT")[1] == ["221 2.0.0 Bye"]
    assert c.closed(), "server kept the connection open after QUIT"
    assert c.buf == b""
    mxd.wait_log(r" disconnect reason=quit ")
    assert mxd.messages() == []


def test_quit_closes_even_with_pipelined_commands_after_it(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    c.send(b"QUIT\r\nNOOP\r\nNOOP\r\n")
    assert c.reply()[1] == ["221 2.0.0 Bye"]
    assert c.closed()
    assert c.buf == b""


@pytest.mark.parametrize("line,reply", [
    ("FOO", "500 5.5.1 Error: command unrecognized"),
    ("FOO bar baz", "500 5.5.1 Error: command unrecognized"),
    ("MAILFROM:<a@b.example>", "500 5.5.1 Error: command unrecognized"),
    ("EXPN list", "502 5.5.1 Error: command not implemented"),
    ("EHLO", "501 5.5.4 Syntax: EHLO hostname"),
    ("HELO", "501 5.5.4 Syntax: HELO hostname"),
    ("EHLO two words", "501 5.5.4 Syntax: EHLO hostname"),
    ("EHLO bad..name", "501 5.5.4 Invalid domain name"),
    ("VRFY", "501 5.5.4 Syntax: VRFY address"),
    ("QUIT now", "501 5.5.4 Syntax: QUIT"),
    ("RSET x", "501 5.5.4 Syntax: RSET"),
    ("", "500 5.5.2 Error: bad syntax"),
    ("   ", "500 5.5.2 Error: bad syntax"),
    (" NOOP", "500 5.5.1 Error: command unrecognized"),
    ("NOOP\tx", "500 5.5.2 Error: invalid character in command"),
])
def test_command_errors_outside_transaction(start_mxd, line, reply):
    mxd = start(start_mxd)
    c = greet(mxd)
    assert c.cmd(line)[1] == [reply]
    # The session goes on.
    assert c.cmd("NOOP")[1] == ["250 2.0.0 Ok"]
    ehlo(c)
    assert c.cmd("QUIT")[1] == ["221 2.0.0 Bye"]


def test_trailing_whitespace_and_helo_underscore(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    assert c.cmd("EHLO my_host.example \t ")[1] == EHLO_LINES
    assert c.cmd("NOOP   ")[1] == ["250 2.0.0 Ok"]
    assert c.cmd("MAIL FROM:<a@client.example>  ")[1] == ["250 2.1.0 Ok"]
    assert c.cmd("RCPT TO:<b@example.test>\t")[1] == ["250 2.1.5 Ok"]
    assert c.cmd("DATA ")[0] == 354
    c.send(b"ws\r\n.\r\n")
    msgid = QUEUED.match(c.reply()[1][0]).group(1)
    assert c.cmd("HELP MAIL")[0] == 214
    assert c.cmd("QUIT ")[1] == ["221 2.0.0 Bye"]
    check_stored(stored_by_id(mxd, msgid), "a@client.example",
                 "my_host.example", "127.0.0.1", "ESMTP", msgid,
                 ["b@example.test"], b"ws\n")


def test_out_of_sequence_is_503(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    assert c.cmd("MAIL FROM:<a@client.example>")[1] == [
        "503 5.5.1 Error: send HELO/EHLO first"]
    assert c.cmd("RCPT TO:<b@example.test>")[1] == [
        "503 5.5.1 Error: need MAIL command"]
    assert c.cmd("DATA")[1] == ["503 5.5.1 Error: need MAIL command"]
    ehlo(c)
    assert c.cmd("RCPT TO:<b@example.test>")[1] == [
        "503 5.5.1 Error: need MAIL command"]
    assert c.cmd("MAIL FROM:<a@client.example>")[1] == ["250 2.1.0 Ok"]
    assert c.cmd("DATA")[1] == ["503 5.5.1 Error: need RCPT command"]
    assert c.cmd("MAIL FROM:<a@client.example>")[1] == [
        "503 5.5.1 Error: nested MAIL command"]
    assert c.cmd("RCPT TO:<b@example.test>")[1] == ["250 2.1.5 Ok"]
    assert c.cmd("DATA")[0] == 354
    c.send(b"ok\r\n.\r\n")
    assert QUEUED.match(c.reply()[1][0])
    assert c.cmd("QUIT")[0] == 221


@pytest.mark.parametrize("line,reply", [
    ("MAIL FROM:a@client.example", "501 5.5.4 Syntax: MAIL FROM:<address>"),
    ("MAIL TO:<a@client.example>", "501 5.5.4 Syntax: MAIL FROM:<address>"),
    ("MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>"),
    ("MAIL FROM:<a@@client.example>", "501 5.1.7 Bad sender address syntax"),
    ("MAIL FROM:<a@client..example>", "501 5.1.7 Bad sender address syntax"),
    ("MAIL FROM:<a b@client.example>", "501 5.1.7 Bad sender address syntax"),
    ("MAIL FROM:<a@client.example", "501 5.1.7 Bad sender address syntax"),
    ("MAIL FROM:<postmaster>", "501 5.1.7 Bad sender address syntax"),
    ("MAIL FROM:<%s@client.example>" % ("l" * 65),
     "501 5.1.7 Sender address too long"),
    ("MAIL FROM:<a@client.example> FOO=bar",
     "555 5.5.4 Unsupported parameter FOO"),
    ("MAIL FROM:<a@client.example> SMTPUTF8=yes",
     "501 5.5.4 Bad SMTPUTF8 parameter"),
    ("MAIL FROM:<a@client.example> SIZE=abc", "501 5.5.4 Bad SIZE parameter"),
    ("MAIL FROM:<a@client.example> SIZE=1 SIZE=2",
     "501 5.5.4 Duplicate SIZE parameter"),
    ("MAIL FROM:<a@client.example> BODY=9BIT", "501 5.5.4 Bad BODY parameter"),
    ("MAIL FROM:<a@client.example> SIZE=26214401",
     "552 5.3.4 Message size exceeds fixed maximum message size"),
    ("MAIL FROM:<a@client.example> SIZE=99999999999999999999999",
     "501 5.5.4 Bad SIZE parameter"),
])
def test_mail_syntax_and_parameters(start_mxd, line, reply):
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    assert c.cmd(line)[1] == [reply]
    # Refused MAIL opens no transaction; a good one works after it.
    assert c.cmd("RCPT TO:<b@example.test>")[1] == [
        "503 5.5.1 Error: need MAIL command"]
    assert c.cmd("MAIL FROM:<a@client.example>")[1] == ["250 2.1.0 Ok"]


@pytest.mark.parametrize("line,reply", [
    ("RCPT TO:b@example.test", "501 5.5.4 Syntax: RCPT TO:<address>"),
    ("RCPT FROM:<b@example.test>", "501 5.5.4 Syntax: RCPT TO:<address>"),
    ("RCPT TO:<b@>", "501 5.1.3 Bad recipient address syntax"),
    ("RCPT TO:<@example.test>", "501 5.1.3 Bad recipient address syntax"),
    ("RCPT TO:<>", "501 5.1.3 Bad recipient address syntax"),
    ("RCPT TO:<nobody>", "501 5.1.3 Bad recipient address syntax"),
    ("RCPT TO:<b@-bad.example>", "501 5.1.3 Bad recipient address syntax"),
    ("RCPT TO:<b@example.test> NOTIFY=NEVER",
     "555 5.5.4 Unsupported parameter NOTIFY"),
])
def test_rcpt_syntax(start_mxd, line, reply):
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd(line)[1] == [reply]
    # Every RCPT refused: DATA has nothing to deliver to.
    assert c.cmd("DATA")[0] in (503, 554)
    assert c.cmd("RCPT TO:<b@example.test>")[1] == ["250 2.1.5 Ok"]
    assert c.cmd("DATA")[0] == 354


def test_parameters_after_helo_are_refused(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    assert c.cmd("HELO h.example")[0] == 250
    assert c.cmd("MAIL FROM:<a@client.example> SIZE=10")[1] == [
        "555 5.5.4 Parameters are not allowed after HELO"]
    assert c.cmd("MAIL FROM:<a@client.example>")[1] == ["250 2.1.0 Ok"]


def test_size_body_postmaster_null_sender_source_route(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    assert c.cmd("MAIL FROM:<> SIZE=26214400 BODY=8BITMIME")[1] == [
        "250 2.1.0 Ok"]
    assert c.cmd("RCPT TO:<postmaster>")[1] == ["250 2.1.5 Ok"]
    assert c.cmd("RCPT TO:<PostMaster>")[1] == ["250 2.1.5 Ok"]
    assert c.cmd("RCPT TO:<@relay.example:routed@example.test>")[1] == [
        "250 2.1.5 Ok"]
    assert c.cmd("RCPT TO: <spaced@example.test>")[1] == ["250 2.1.5 Ok"]
    assert c.cmd("RCPT TO:<\"quoted local\"@example.test>")[1] == [
        "250 2.1.5 Ok"]
    assert c.cmd("RCPT TO:<lit@[192.0.2.1]>")[1] == ["250 2.1.5 Ok"]
    assert c.cmd("DATA")[0] == 354
    c.send(b"8bit \xc3\xa9\r\n.\r\n")
    msgid = QUEUED.match(c.reply()[1][0]).group(1)
    # Six recipients: the Received header names none of them.
    check_stored(stored_by_id(mxd, msgid), "", "client.example",
                 "127.0.0.1", "ESMTP", msgid, ["(six)"] * 6,
                 b"8bit \xc3\xa9\n")
    ev = session_events(mxd, msgid.rsplit("-", 1)[0])
    mail = [kv for e, kv in ev if e == "mail"]
    assert mail == [{"from": "<>", "size": "26214400", "body": "8bitmime"}]
    rcpts = [unquote(kv["to"]) for e, kv in ev if e == "rcpt"]
    assert rcpts == ["<postmaster>", "<PostMaster>",
                     "<routed@example.test>", "<spaced@example.test>",
                     '<\\"quoted local\\"@example.test>',
                     "<lit@[192.0.2.1]>"]


def test_single_postmaster_recipient_in_received(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    msgid = send_message(c, "a@client.example", ["postmaster"], b"pm\r\n")
    check_stored(stored_by_id(mxd, msgid), "a@client.example",
                 "client.example", "127.0.0.1", "ESMTP", msgid,
                 ["postmaster"], b"pm\n")


def test_ehlo_again_resets_transaction(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c, "first.example")
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
    ehlo(c, "second.example")
    assert c.cmd("DATA")[1] == ["503 5.5.1 Error: need MAIL command"]
    msgid = send_message(c, "a@client.example", ["b@example.test"], b"x\r\n")
    check_stored(stored_by_id(mxd, msgid), "a@client.example",
                 "second.example", "127.0.0.1", "ESMTP", msgid,
                 ["b@example.test"], b"x\n")


# ---- bare CR / LF ----------------------------------------------------------


SMUGGLE = (b"a\n.\nMAIL FROM:<evil@attacker.example>\r\n"
           b"RCPT TO:<victim@example.test>\r\nDATA\r\nsmuggled\r\n")


def test_bare_lf_in_body_rejected_at_real_end(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ehlo(c)
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(b"a\n.\nb\r\n")
    assert quiet(c), "'\\n.\\n' ended the data: %r" % c.buf
    c.send(b".\r\n")
    assert c.reply()[1] == ["550 5.5.2 Error: bare <CR> or <LF> in message"]
    # The session is in step: a command works, and nothing was stored.
    assert c.cmd("NOOP")[1] == ["250 2.0.0 Ok"]
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 503
    assert c.cmd("QUIT")[0] == 221
    assert c.closed()
    mxd.wait_log(r" disconnect ")
    assert mxd.messages() == []
    assert list((mxd.maildir / "tmp").iterdir()) == []
    log = mxd.log()
    assert re.search(r' reject cmd=DATA code=550 reply="5\.5\.2 [^"]*" '
                     r'reason=bare_newline size=\d+$', log, re.M), log


@pytest.mark.parametrize("raw", [b"bare\rCR\r\n", b"x\r\n.\r", b"\r"])
def test_bare_cr_in_body_rejected(start_mxd, raw):
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(raw + b"tail\r\n.\r\n")
    assert c.reply()[1] == ["550 5.5.2 Error: bare <CR> or <LF> in message"]
    assert c.cmd("NOOP")[0] == 250
    time.sleep(0.1)
    assert mxd.messages() == []


def test_smuggling_attempt_is_one_rejected_message(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(SMUGGLE + b".\r\nQUIT\r\n")
    lines = read_all_replies(c)
    assert lines == ["550 5.5.2 Error: bare <CR> or <LF> in message",
                     "221 2.0.0 Bye"]
    assert mxd.messages() == []
    assert "attacker" not in mxd.log()


def test_bare_lf_normalize_stores_one_message(start_mxd):
    mxd = start(start_mxd, "-o", "bare_newline=normalize")
    c = greet(mxd)
    ehlo(c)
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(SMUGGLE + b".\r\nQUIT\r\n")
    lines = read_all_replies(c)
    assert len(lines) == 2 and lines[1] == "221 2.0.0 Bye", lines
    msgid = QUEUED.match(lines[0]).group(1)
    (only,) = mxd.wait_messages(1)
    check_stored(stored_by_id(mxd, msgid), "a@client.example",
                 "client.example", "127.0.0.1", "ESMTP", msgid,
                 ["b@example.test"],
                 b"a\n.\nMAIL FROM:<evil@attacker.example>\n"
                 b"RCPT TO:<victim@example.test>\nDATA\nsmuggled\n")
    assert "attacker" not in mxd.log()


def test_bare_lf_command_line(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    c.send(b"NOOP\n")
    assert c.reply()[1] == ["500 5.5.2 Error: bare <LF> received"]
    assert c.cmd("NOOP")[1] == ["250 2.0.0 Ok"]
    mxd2 = start(start_mxd, "-o", "bare_newline=normalize")
    c2 = greet(mxd2)
    c2.send(b"NOOP\nEHLO lf.example\n")
    assert c2.reply()[1] == ["250 2.0.0 Ok"]
    assert c2.reply()[1] == EHLO_LINES


# ---- logs ------------------------------------------------------------------


def test_log_lines_for_one_session(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    local_port = c.sock.getsockname()[1]
    ehlo(c, "log.example")
    assert c.cmd("XYZZY")[0] == 500
    msgid = send_message(c, "from@client.example", ["to@example.test"],
                         b"0123456789\r\n..\r\n")
    assert c.cmd("QUIT")[0] == 221
    sent = (b"EHLO log.example\r\nXYZZY\r\n"
            b"MAIL FROM:<from@client.example>\r\n"
            b"RCPT TO:<to@example.test>\r\nDATA\r\n"
            b"0123456789\r\n..\r\n.\r\nQUIT\r\n")
    assert c.closed()
    mxd.wait_log(r" disconnect ")
    sid = msgid.rsplit("-", 1)[0]
    events = session_events(mxd, sid)
    assert [e for e, kv in events] == [
        "connect", "ehlo", "reject", "mail", "rcpt", "accepted",
        "disconnect"]
    kv = dict(events)
    assert int(kv["connect"].pop("pid")) > 0    # the worker process
    assert kv["connect"] == {"client": "127.0.0.1:%d" % local_port,
                             "listener": "127.0.0.1:%d" % mxd.port}
    assert kv["ehlo"] == {"name": "log.example"}
    assert kv["reject"]["code"] == "500"
    assert unquote(kv["reject"]["reply"]) == \
        "5.5.1 Error: command unrecognized"
    assert kv["mail"] == {"from": "<from@client.example>"}
    assert kv["rcpt"] == {"to": "<to@example.test>", "result": "ok"}
    acc = kv["accepted"]
    assert set(acc) == {"id", "size", "rcpts", "ms"}
    assert acc["id"] == msgid
    assert acc["size"] == str(len(b"0123456789\r\n.\r\n"))
    assert acc["rcpts"] == "1"
    assert 0 <= int(acc["ms"]) < 10000
    d = kv["disconnect"]
    assert d["reason"] == "quit"
    assert d["accepted"] == "1" and d["rejected"] == "1"
    assert d["bytes_in"] == str(len(sent))
    assert 0 <= int(d["ms"]) < 10000


def test_log_helo_and_eof_disconnect(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    assert c.cmd("HELO plain.example")[0] == 250
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    c.close()
    text = mxd.wait_log(r" disconnect ")
    events = [logfmt(x) for x in text.splitlines()]
    events = [(e, kv) for sid, e, kv in events if sid != "-"]
    assert [e for e, kv in events] == ["connect", "helo", "mail",
                                      "disconnect"]
    assert events[1][1] == {"name": "plain.example"}
    assert events[3][1]["reason"] == "eof"
    assert events[3][1]["accepted"] == "0"
    assert events[3][1]["rejected"] == "0"


def test_log_start_line_and_every_line_parses(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    c.send(b"EHLO a.example\r\nMAIL FROM:<x@y.example>\r\nQUIT\r\n")
    read_all_replies(c)
    text = mxd.wait_log(r" disconnect ")
    lines = text.splitlines()
    starts = [logfmt(x)[2] for x in lines if logfmt(x)[:2] == ("-", "start")]
    assert len(starts) == 1, text
    kv = starts[0]
    assert kv["hostname"] == HOST
    assert kv["listen"] == "127.0.0.1:%d" % mxd.port
    assert kv["domains"] == "any"
    for line in lines:
        logfmt(line)
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", line)


def test_client_text_is_escaped_in_log(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    c.send(b'FOO\x01"bar\\ \xff\r\n')
    assert c.reply()[0] == 500
    c.send(b"BAR\rinjected 1=2 event\r\n")
    assert c.reply()[0] == 500
    c.send(b"UNKNOWN x\x7f\x1b[31m\r\n")
    assert c.reply()[0] == 500
    assert c.cmd("QUIT")[0] == 221
    text = mxd.wait_log(r" disconnect ")
    raw = mxd.logpath.read_bytes()
    for b in range(0, 32):
        if b != 10:
            assert bytes([b]) not in raw, "raw control byte %#x in log" % b
    assert b"\x7f" not in raw and b"\xff" not in raw
    lines = text.splitlines()
    rejects = [x for x in lines if " reject " in x]
    assert len(rejects) == 3, text
    # Every line is one whole event: no client text starts a line.
    for line in lines:
        sid, ev, kv = logfmt(line)
        assert sid == "-" or ev in ("connect", "reject", "disconnect"), line
    assert '\\x01\\"bar\\\\ \\xff' in rejects[0]
    assert "\\x0d" in rejects[1] and "injected 1=2 event" in rejects[1]
    assert "\\x7f\\x1b[31m" in rejects[2]


def test_log_reject_line_is_the_client_text(start_mxd):
    """The reject line's line= is the command line the client sent."""
    mxd = start(start_mxd)
    c = greet(mxd)
    assert c.cmd("FOO bar")[0] == 500
    c.send(b'BAZ\x01"q\r\n')
    assert c.reply()[0] == 500
    ehlo(c)
    assert c.cmd("MAIL FROM:<a@client.example> FOO=1")[0] == 555
    assert c.cmd("QUIT")[0] == 221
    text = mxd.wait_log(r" disconnect ")
    rejects = [logfmt(x)[2] for x in text.splitlines() if " reject " in x]
    assert len(rejects) == 3
    assert unquote(rejects[2]["line"]) == \
        "MAIL FROM:<a@client.example> FOO=1"
    assert rejects[2]["cmd"] == "MAIL"
    assert unquote(rejects[0]["line"]) == "FOO bar", rejects[0]
    assert unquote(rejects[1]["line"]) == 'BAZ\\x01\\"q', rejects[1]


def test_json_log_line_stays_valid_when_a_field_is_too_long(start_mxd):
    """A reject whose line escapes to more than a log line holds: the
    field is left out whole and the line says truncated."""
    import json
    mxd = start(start_mxd, "-o", "log_format=json")
    c = greet(mxd)
    c.send(b"NOOP " + b"\x01" * 480 + b"\r\n")	# \u0001 each: 2.9 KB
    assert c.reply()[0] == 500
    c.cmd("QUIT")
    text = mxd.wait_log(r'"event":"disconnect"')
    events = [json.loads(x) for x in text.splitlines()]	# all parse
    rejects = [e for e in events if e["event"] == "reject"]
    assert len(rejects) == 1
    assert rejects[0].get("truncated") is True, rejects[0]
    assert "line" not in rejects[0] and rejects[0]["code"] == 500


def test_debug_log_is_a_transcript_without_bodies(start_mxd):
    mxd = start(start_mxd, "-v")
    c = greet(mxd)
    ehlo(c)
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    assert c.cmd("Subject: secret-subject\r\n\r\nsecret-body\r\n.")[0] == 250
    c.cmd("QUIT")
    text = mxd.wait_log(r" disconnect ")
    assert re.search(r" recv level=debug bytes=\d+ data=\"MAIL FROM:<a@client"
                     r"\.example>\\x0d\\x0a\"", text), text
    assert re.search(r" send level=debug bytes=\d+ data=\"354 ", text), text
    assert "secret" not in text
