"""SMTP smuggling against the running server, every vector split at
every position.

Each vector of tests/unit/transcripts/smuggling_*.t ends a line of body
text in a way that a lenient receiver might take for the end of DATA;
after it comes a whole smuggled transaction, and then the real end
<CRLF>.<CRLF>.  The input is sent as two writes (TCP_NODELAY and a pause
between them, so that mxd reads them separately) split at each position
of the vector.  For every split:

- under bare_newline = reject the message is refused with 550 5.5.2,
  except <CRLF>.<NUL><CRLF>, which has no bare CR or LF and is one
  message whose body holds the smuggled lines;
- under bare_newline = normalize exactly one message is stored, its body
  holding the smuggled lines as text;
- never a second message, and exactly one reply after the real end: the
  next reply is the one to the NOOP sent after it.
"""

import re
import socket
import time

import pytest

from conftest import quiet

HOST = "mx.test"
GREETING = "220 %s ESMTP mxd" % HOST
QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as (\S+)$")
REFUSED = "550 5.5.2 Error: bare <CR> or <LF> in message"
PAUSE = 0.03

SMUGGLED = (b"MAIL FROM:<evil@attacker.example>\r\n"
            b"RCPT TO:<victim@mx.test>\r\n"
            b"DATA\r\n"
            b"smuggled\r\n")
SMUGGLED_LF = SMUGGLED.replace(b"\r\n", b"\n")

# vector -> the stored body under normalize (LF line ends: the Maildir).
VECTORS = {
    b"\n.\n": b"hello\n.\n" + SMUGGLED_LF,
    b"\r.\r": b"hello\n.\n" + SMUGGLED_LF,
    b"\n.\r\n": b"hello\n.\n" + SMUGGLED_LF,
    b"\r\n.\n": b"hello\n.\n" + SMUGGLED_LF,
    b"\r\n.\r": b"hello\n.\n" + SMUGGLED_LF,
    b"\r\r\n.\r\r\n": b"hello\n\n.\n\n" + SMUGGLED_LF,
    # no bare CR or LF: the leading dot is unstuffed, the NUL stays.
    b"\r\n.\x00\r\n": b"hello\n\x00\n" + SMUGGLED_LF,
}
NUL_VECTOR = b"\r\n.\x00\r\n"


def name(v):
    return v.replace(b"\r", b"<CR>").replace(b"\n", b"<LF>").replace(
        b"\x00", b"<NUL>").decode()


def split_stored(data):
    head, sep, body = data.partition(b" +0000\n")
    assert sep, data[:400]
    return head + sep, body


def new_ids(mxd, seen):
    """Files in new/ not in seen (a set of names, updated)."""
    out = []
    for p in mxd.messages():
        if p.name not in seen:
            seen.add(p.name)
            out.append(p)
    return out


def one_split(mxd, vector, pos, rcpt):
    """Send the vector split at pos; return (reply lines to the real
    end, the connection's session id is not needed)."""
    c = mxd.client()
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert c.reply()[1] == [GREETING]
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd("MAIL FROM:<a@client.example>")[1] == ["250 2.1.0 Ok"]
    assert c.cmd("RCPT TO:<%s>" % rcpt)[1] == ["250 2.1.5 Ok"]
    assert c.cmd("DATA")[1] == ["354 End data with <CR><LF>.<CR><LF>"]
    c.send(b"hello" + vector[:pos])
    time.sleep(PAUSE)
    c.send(vector[pos:] + SMUGGLED)
    # Nothing may end the data before the real end.
    assert quiet(c, PAUSE * 3), (
        "%s split at %d: reply before the real end: %r" % (
            name(vector), pos, c.buf))
    c.send(b".\r\nNOOP\r\n")
    first = c.reply()[1]
    after = c.reply()[1]
    assert after == ["250 2.0.0 Ok"], (
        "%s split at %d: more than one reply after the end: %r, %r" % (
            name(vector), pos, first, after))
    assert c.cmd("QUIT")[1] == ["221 2.0.0 Bye"]
    assert c.closed()
    c.close()
    return first


@pytest.mark.parametrize("mode", ["reject", "normalize"])
def test_smuggling_vectors_every_split(start_mxd, mode):
    args = ["-H", HOST]
    if mode == "normalize":
        args += ["-o", "bare_newline=normalize"]
    mxd = start_mxd(*args)
    seen = set()
    expected_msgs = 0
    for vector, body in VECTORS.items():
        for pos in range(len(vector) + 1):
            rcpt = "r%d@mx.test" % expected_msgs
            what = "%s split at %d (%s)" % (name(vector), pos, mode)
            first = one_split(mxd, vector, pos, rcpt)
            stored = mode == "normalize" or vector == NUL_VECTOR
            if not stored:
                assert first == [REFUSED], (what, first)
                assert new_ids(mxd, seen) == [], what
                continue
            m = QUEUED.match(first[0])
            assert m and len(first) == 1, (what, first)
            expected_msgs += 1
            files = new_ids(mxd, seen)
            assert len(files) == 1, (what, files)
            assert ("Q%s." % m.group(1)) in files[0].name, (what, files)
            head, got = split_stored(files[0].read_bytes())
            assert head.startswith(b"Return-Path: <a@client.example>\n"), \
                (what, head)
            assert b"\tfor <%s>; " % rcpt.encode() in head, (what, head)
            assert got == body, (what, got, body)
    # Never a second message; nothing left half-written.
    time.sleep(0.1)
    assert len(mxd.messages()) == expected_msgs
    assert list((mxd.maildir / "tmp").iterdir()) == []
    for p in mxd.messages():
        head, _ = split_stored(p.read_bytes())
        assert b"attacker" not in head and b"victim" not in head, head
    log = mxd.log()
    assert "attacker" not in log and "victim" not in log, log
    n_refused = len(re.findall(r" reject cmd=DATA code=550 "
                               r"reply=\"5\.5\.2 [^\"]*\" "
                               r"reason=bare_newline ", log))
    n_splits = sum(len(v) + 1 for v in VECTORS)
    if mode == "reject":
        assert expected_msgs == len(NUL_VECTOR) + 1
        assert n_refused == n_splits - expected_msgs, log
    else:
        assert expected_msgs == n_splits
        assert n_refused == 0, log
    assert len(re.findall(r" accepted id=", log)) == expected_msgs


@pytest.mark.parametrize("mode", ["reject", "normalize"])
def test_smuggling_vectors_pipelined_in_one_write(start_mxd, mode):
    """All vectors in one session, each transaction pipelined whole
    (MAIL, RCPT, DATA, body, end) in one write with QUIT at the end: the
    replies are exactly one set per transaction."""
    args = ["-H", HOST]
    if mode == "normalize":
        args += ["-o", "bare_newline=normalize"]
    mxd = start_mxd(*args)
    c = mxd.client()
    assert c.reply()[1] == [GREETING]
    assert c.cmd("EHLO client.example")[0] == 250
    wire = b""
    for i, vector in enumerate(VECTORS):
        wire += (b"MAIL FROM:<a@client.example>\r\n"
                 b"RCPT TO:<p%d@mx.test>\r\nDATA\r\n" % i +
                 b"hello" + vector + SMUGGLED + b".\r\n")
    c.send(wire + b"QUIT\r\n")
    assert c.closed(), "no close after QUIT"
    lines = c.buf.decode("latin-1").split("\r\n")[:-1]
    want = []
    for vector in VECTORS:
        want += ["250 2.1.0 Ok", "250 2.1.5 Ok",
                 "354 End data with <CR><LF>.<CR><LF>"]
        if mode == "reject" and vector != NUL_VECTOR:
            want.append(REFUSED)
        else:
            want.append("QUEUED")
    want.append("221 2.0.0 Bye")
    got = ["QUEUED" if QUEUED.match(l) else l for l in lines]
    assert got == want, lines
    n = 1 if mode == "reject" else len(VECTORS)
    time.sleep(0.1)
    msgs = mxd.messages()
    assert len(msgs) == n
    bodies = sorted(split_stored(p.read_bytes())[1] for p in msgs)
    if mode == "reject":
        assert bodies == [VECTORS[NUL_VECTOR]]
    else:
        assert bodies == sorted(VECTORS.values())
