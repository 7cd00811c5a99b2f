"""ESMTP extensions over real sockets: CHUNKING (RFC 3030), SMTPUTF8
(RFC 6531), DSN (RFC 3461) and REQUIRETLS (RFC 8689).

Python's smtplib is the client wherever it speaks the extension
(SMTPUTF8, DSN parameters, REQUIRETLS as a MAIL option, STARTTLS);
it has no BDAT, so CHUNKING is driven with raw sockets.  Stored
messages are checked byte for byte where the bytes matter: the Maildir
stores LF line ends, so a chunk's CRLF becomes LF and nothing else
changes (no dot handling, no end marker).
"""

import re
import smtplib
import socket
import time

from conftest import quiet
from tlsutil import HOST, start_tls_mxd, tls_context

assert start_tls_mxd  # the fixture, for pytest

GREETING = "220 %s ESMTP mxd" % HOST
QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as (\S+)$")
TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
NEED_MAIL = "503 5.5.1 Error: need MAIL command"
UTF8_FROM = "jörg@bücher.example"
UTF8_TO = "用户@例子.mx.test"


# ---- helpers ---------------------------------------------------------------


def start(start_mxd, *args):
    return start_mxd("-H", HOST, *args)


def greet(mxd):
    c = mxd.client()
    assert c.reply()[1] == [GREETING]
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c


def ehlo(c, name="client.example"):
    code, lines = c.cmd("EHLO " + name)
    assert code == 250 and lines[-1] == "250 ENHANCEDSTATUSCODES", lines
    return [l[4:] for l in lines]


def open_txn(c, sender="a@client.example", rcpt="b@example.test"):
    assert c.cmd("MAIL FROM:<%s>" % sender)[1] == ["250 2.1.0 Ok"]
    assert c.cmd("RCPT TO:<%s>" % rcpt)[1] == ["250 2.1.5 Ok"]


def bdat(c, data, last=False):
    """One chunk: the command line and its octets in one write."""
    c.send(b"BDAT %d%s\r\n" % (len(data), b" LAST" if last else b"") + data)
    return c.reply()[1]


def queued(lines):
    m = QUEUED.match(lines[0])
    assert m and len(lines) == 1, lines
    return m.group(1)


def stored_by_id(mxd, msgid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in mxd.messages():
            if ("Q%s." % msgid) in p.name:
                return p.read_bytes()
        time.sleep(0.02)
    raise AssertionError("no stored file for id %s in %r" %
                         (msgid, [p.name for p in mxd.messages()]))


def stored_with(mxd, marker, timeout=10):
    """The one stored message that contains marker (bytes)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [p.read_bytes() for p in mxd.messages()
                 if marker in p.read_bytes()]
        if found:
            assert len(found) == 1, found
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError("no stored message with %r" % marker)
        time.sleep(0.02)


def split_stored(data):
    """(trace header block, body) of a stored message: the trace ends
    with the Received header's date line and an optional X-Mxd-Envelope
    line."""
    head, sep, body = data.partition(b" +0000\n")
    assert sep, data[:400]
    head += sep
    if body.startswith(b"X-Mxd-Envelope: "):
        line, nl, body = body.partition(b"\n")
        head += line + nl
    return head, body


def header(data, name):
    """The values of a trace header, unfolded (bytes, decoded UTF-8)."""
    head, _ = split_stored(data)
    text = head.decode("utf-8")
    text = re.sub(r"\n[ \t]+", " ", text)
    return [l.split(": ", 1)[1] for l in text.split("\n")
            if l.startswith(name + ": ")]


def smtp_client(mxd, **kw):
    return smtplib.SMTP(mxd.host, mxd.port, local_hostname="client.example",
                        timeout=20, **kw)


# ---- CHUNKING ----------------------------------------------------------------


def test_chunking_is_advertised(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    assert "CHUNKING" in ehlo(c)


def test_bdat_chunks_are_stored_byte_exact(start_mxd):
    """What would end or unstuff DATA is plain text inside chunks: the
    stored body is the concatenation of the chunks, CRLF -> LF only."""
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    open_txn(c)
    chunks = [b"Subject: chunked\r\n\r\nfirst\r\n.\r\n",
              b"..two leading dots\r\n.\r\nMAIL FROM:<x@y.example>\r\n",
              b".\r\n\r\n.\r",		# the CR of a CRLF ends this chunk
              b"\nbare LF\nand bare CR\rhere\r\n",
              b"8-bit \x80\xff\xc3\xa9 NUL \x00 end\r\n.."]
    for ch in chunks[:-1]:
        assert bdat(c, ch) == ["250 2.0.0 %d octets received" % len(ch)]
    msgid = queued(bdat(c, chunks[-1], last=True))
    data = stored_by_id(mxd, msgid)
    whole = b"".join(chunks)
    head, body = split_stored(data)
    assert body == whole.replace(b"\r\n", b"\n"), body
    assert b"\tby mx.test (mxd) with ESMTP id %s\n" % msgid.encode() in head
    assert head.startswith(b"Return-Path: <a@client.example>\n"), head
    # The session is in step: the chunks' text ran no command.
    assert c.cmd("NOOP")[1] == ["250 2.0.0 Ok"]
    assert c.cmd("RCPT TO:<b@example.test>")[1] == [NEED_MAIL]
    assert len(mxd.messages()) == 1
    mxd.wait_log(r" accepted id=%s size=%d rcpts=1 " % (re.escape(msgid),
                                                         len(whole)))


def test_bdat_0_last_stores_an_empty_message(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    open_txn(c)
    msgid = queued(c.cmd("BDAT 0 LAST")[1])
    head, body = split_stored(stored_by_id(mxd, msgid))
    assert body == b""
    # An empty non-LAST chunk, then the rest.
    open_txn(c)
    assert c.cmd("BDAT 0")[1] == ["250 2.0.0 0 octets received"]
    msgid = queued(bdat(c, b"x\r\n", last=True))
    assert split_stored(stored_by_id(mxd, msgid))[1] == b"x\n"


def test_bdat_refused_without_mail_is_still_read(start_mxd):
    """The chunk's octets are read and dropped before the reply: a
    command inside it is never run."""
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    assert bdat(c, b"QUIT\r\n") == [NEED_MAIL]
    assert c.cmd("NOOP")[1] == ["250 2.0.0 Ok"]
    assert bdat(c, b"RSET\r\n", last=True) == [NEED_MAIL]
    assert c.cmd("NOOP")[1] == ["250 2.0.0 Ok"]
    # MAIL but no RCPT: 503 need RCPT, the chunk read all the same.
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert bdat(c, b"QUIT\r\n", last=True) == [
        "503 5.5.1 Error: need RCPT command"]
    assert c.cmd("NOOP")[1] == ["250 2.0.0 Ok"]
    assert not c.closed(0.2)
    # The session still delivers.
    open_txn(c)
    msgid = queued(bdat(c, b"after\r\n", last=True))
    assert split_stored(stored_by_id(mxd, msgid))[1] == b"after\n"
    assert len(mxd.messages()) == 1


def test_bdat_no_valid_recipients_is_554_and_read(start_mxd):
    mxd = start(start_mxd, "-d", "example.test")
    c = greet(mxd)
    ehlo(c)
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@elsewhere.example>")[1] == [
        "550 5.7.1 Relaying denied"]
    assert bdat(c, b"QUIT\r\n", last=True) == [
        "554 5.5.1 Error: no valid recipients"]
    assert c.cmd("NOOP")[1] == ["250 2.0.0 Ok"]
    assert mxd.messages() == []


def test_data_after_bdat_is_503(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    open_txn(c)
    assert bdat(c, b"abc\r\n") == ["250 2.0.0 5 octets received"]
    assert c.cmd("DATA")[1] == [
        "503 5.5.1 Error: DATA and BDAT cannot be mixed"]
    # The transaction is still open: the last chunk completes it.
    msgid = queued(bdat(c, b"def\r\n", last=True))
    assert split_stored(stored_by_id(mxd, msgid))[1] == b"abc\ndef\n"


def test_bdat_size_limit_across_chunks_then_rset_goes_on(start_mxd):
    mxd = start(start_mxd, "-o", "max_message_size=2000")
    c = greet(mxd)
    assert "SIZE 2000" in ehlo(c)
    open_txn(c)
    assert bdat(c, b"a" * 1200) == ["250 2.0.0 1200 octets received"]
    # 2400 in all: over the limit, under twice it: read, then 552.
    assert bdat(c, b"b" * 1200) == [TOO_BIG]
    # The transaction is over; the session is not.
    assert bdat(c, b"c" * 10, last=True) == [NEED_MAIL]
    assert c.cmd("RSET")[1] == ["250 2.0.0 Ok"]
    open_txn(c)
    assert bdat(c, b"d" * 1000) == ["250 2.0.0 1000 octets received"]
    msgid = queued(bdat(c, b"e" * 1000, last=True))	# exactly the limit
    assert split_stored(stored_by_id(mxd, msgid))[1] == b"d" * 1000 + \
        b"e" * 1000
    assert len(mxd.messages()) == 1
    assert list((mxd.maildir / "tmp").iterdir()) == []
    log = mxd.log()
    assert re.search(r' reject cmd=BDAT code=552 reply="5\.3\.4 [^"]*" '
                     r'reason=too_big ', log), log


def test_pipelined_bdats_after_a_refused_chunk_get_503(start_mxd):
    mxd = start(start_mxd, "-o", "max_message_size=2000")
    c = greet(mxd)
    ehlo(c)
    c.send(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.test>\r\n"
           b"BDAT 1200\r\n" + b"a" * 1200 +
           b"BDAT 1200\r\n" + b"b" * 1200 +
           b"BDAT 300\r\n" + b"QUIT\r\n" + b"c" * 294 +
           b"BDAT 5 LAST\r\nRSET\n" +
           b"NOOP\r\n")
    replies = [c.reply()[1] for _ in range(7)]
    assert replies == [["250 2.1.0 Ok"], ["250 2.1.5 Ok"],
                       ["250 2.0.0 1200 octets received"], [TOO_BIG],
                       [NEED_MAIL], [NEED_MAIL], ["250 2.0.0 Ok"]]
    assert quiet(c, 0.3)
    assert mxd.messages() == []
    # And the session goes on.
    open_txn(c)
    msgid = queued(bdat(c, b"ok\r\n", last=True))
    assert split_stored(stored_by_id(mxd, msgid))[1] == b"ok\n"


def test_message_in_one_octet_chunks(start_mxd):
    """Every octet its own chunk, in lock step: the CRLF pairs split
    across chunks still become LF and nothing else changes."""
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    open_txn(c)
    msg = b"Subject: octets\r\n\r\n.\r\n..x\r\nbare\rCR\r\n"
    for b in msg[:-1]:
        assert bdat(c, bytes([b])) == ["250 2.0.0 1 octets received"]
    msgid = queued(bdat(c, msg[-1:], last=True))
    assert split_stored(stored_by_id(mxd, msgid))[1] == \
        msg.replace(b"\r\n", b"\n")


def test_message_in_one_octet_chunks_pipelined(start_mxd):
    """The same, all chunks in one write: every reply in order."""
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    open_txn(c)
    msg = (b"Subject: pipelined octets\r\n\r\n" +
           b"".join(b"line %d\r\n.\r\n" % i for i in range(40)))
    wire = b"".join(b"BDAT 1\r\n" + bytes([b]) for b in msg[:-1])
    wire += b"BDAT 1 LAST\r\n" + msg[-1:]
    c.send(wire)
    for _ in msg[:-1]:
        assert c.reply()[1] == ["250 2.0.0 1 octets received"]
    msgid = queued(c.reply()[1])
    assert split_stored(stored_by_id(mxd, msgid))[1] == \
        msg.replace(b"\r\n", b"\n")
    assert len(mxd.messages()) == 1


def test_bdat_syntax_errors(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    for bad in ("BDAT", "BDAT x", "BDAT 1 FIRST", "BDAT -1", "BDAT 1 LAST x"):
        assert c.cmd(bad)[1] == ["501 5.5.4 Syntax: BDAT chunk-size [LAST]"]
    assert c.cmd("NOOP")[1] == ["250 2.0.0 Ok"]


# ---- SMTPUTF8 ----------------------------------------------------------------


def test_smtputf8_with_smtplib(start_mxd):
    mxd = start(start_mxd)
    s = smtp_client(mxd)
    s.ehlo()
    assert s.has_extn("smtputf8")
    refused = s.sendmail(UTF8_FROM, [UTF8_TO],
                         "Subject: utf8 ☃\r\n\r\nBody é\r\n".encode(),
                         mail_options=["SMTPUTF8"])
    assert refused == {}
    s.quit()
    data = stored_with(mxd, "Subject: utf8 ☃".encode())
    head, body = split_stored(data)
    assert head.startswith(("Return-Path: <%s>\n" % UTF8_FROM).encode()), head
    assert ("\tby mx.test (mxd) with UTF8SMTP id ".encode()) in head, head
    assert ("\tfor <%s>; " % UTF8_TO).encode() in head, head
    assert header(data, "X-Mxd-Envelope") == ["smtputf8"]
    assert body == "Subject: utf8 ☃\n\nBody é\n".encode()
    log = mxd.log()
    assert re.search(r" mail from=\S+ size=\d+ smtputf8=yes", log), log


def test_smtputf8_over_starttls_is_utf8smtps(start_tls_mxd):
    m = start_tls_mxd()
    s = smtplib.SMTP(local_hostname="client.example", timeout=20)
    s.connect("127.0.0.1", m.port)
    s._host = HOST
    s.ehlo()
    s.starttls(context=tls_context(m.cert))
    s.ehlo()
    assert s.has_extn("smtputf8")
    s.sendmail(UTF8_FROM, [UTF8_TO], b"Subject: utf8 tls\r\n\r\nx\r\n",
               mail_options=["SMTPUTF8"])
    s.quit()
    data = stored_with(m, b"Subject: utf8 tls\n")
    head, body = split_stored(data)
    assert b"\tby mx.test (mxd) with UTF8SMTPS id " in head, head
    assert b"\t(using TLSv1." in head, head
    assert header(data, "X-Mxd-Envelope") == ["smtputf8"]


def test_utf8_mail_550_rcpt_553_without_smtputf8(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    ehlo(c)
    c.send(("MAIL FROM:<%s>\r\n" % UTF8_FROM).encode())
    assert c.reply()[1] == ["550 5.6.7 Non-ASCII address needs SMTPUTF8"]
    assert c.cmd("MAIL FROM:<a@client.example>")[1] == ["250 2.1.0 Ok"]
    c.send(("RCPT TO:<%s>\r\n" % UTF8_TO).encode())
    assert c.reply()[1] == ["553 5.6.7 Non-ASCII address needs SMTPUTF8"]
    # An ASCII recipient in the same transaction is fine, and the
    # message carries no smtputf8 mark.
    assert c.cmd("RCPT TO:<b@example.test>")[1] == ["250 2.1.5 Ok"]
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: ascii\r\n\r\nx\r\n.\r\n")
    msgid = queued(c.reply()[1])
    data = stored_by_id(mxd, msgid)
    assert b"with ESMTP id" in data and b"X-Mxd-Envelope" not in data
    # smtplib: the server refuses, the client sees the 550.
    s = smtp_client(mxd)
    s.ehlo()
    code, _ = s.docmd("MAIL", "FROM:<a@client.example> SMTPUTF8=yes")
    assert code == 501
    s.rset()
    s.quit()


def test_smtputf8_needs_ehlo_parameters(start_mxd):
    """SMTPUTF8 is a MAIL parameter: after HELO there are none."""
    mxd = start(start_mxd)
    c = greet(mxd)
    assert c.cmd("HELO client.example")[1] == ["250 %s" % HOST]
    c.send(("MAIL FROM:<%s> SMTPUTF8\r\n" % UTF8_FROM).encode())
    assert c.reply()[1] == ["555 5.5.4 Parameters are not allowed after HELO"]


# ---- DSN ---------------------------------------------------------------------


def test_dsn_parameters_with_smtplib(start_mxd):
    mxd = start(start_mxd, "-o", "dsn=yes")
    s = smtp_client(mxd)
    s.ehlo()
    assert s.has_extn("dsn")
    s.sendmail("a@client.example", ["b@example.test"],
               b"Subject: dsn one\r\n\r\nx\r\n",
               mail_options=["RET=HDRS", "ENVID=QQ314159+2B+3D"],
               rcpt_options=["NOTIFY=SUCCESS,DELAY",
                             "ORCPT=rfc822;Bob+2BTag@example.test"])
    s.quit()
    data = stored_with(mxd, b"Subject: dsn one\n")
    assert header(data, "Original-Recipient") == [
        "rfc822;Bob+Tag@example.test"]
    assert header(data, "X-Mxd-Envelope") == [
        "ret=HDRS; envid=QQ314159+2B+3D; notify=SUCCESS,DELAY"]
    # Original-Recipient comes after Return-Path, before Received.
    assert re.match(rb"Return-Path: <a@client\.example>\n"
                    rb"Original-Recipient: rfc822;Bob\+Tag@example\.test\n"
                    rb"Received: from client\.example \(\[127\.0\.0\.1\]\)\n",
                    data), data[:300]
    log = mxd.log()
    assert re.search(r" mail from=<a@client\.example> size=\d+ ret=hdrs "
                     r"envid=QQ314159\+2B\+3D", log), log


def test_dsn_two_recipients_no_per_recipient_values(start_mxd):
    mxd = start(start_mxd, "-o", "dsn=yes")
    s = smtp_client(mxd)
    s.ehlo()
    assert s.mail("a@client.example", ["RET=FULL", "ENVID=env-2"])[0] == 250
    assert s.rcpt("b@example.test", ["NOTIFY=NEVER",
                                     "ORCPT=rfc822;b@example.test"])[0] == 250
    assert s.rcpt("c@example.test", ["NOTIFY=FAILURE",
                                     "ORCPT=rfc822;c@example.test"])[0] == 250
    assert s.data(b"Subject: dsn two\r\n\r\nx\r\n")[0] == 250
    s.quit()
    data = stored_with(mxd, b"Subject: dsn two\n")
    assert header(data, "Original-Recipient") == []
    assert header(data, "X-Mxd-Envelope") == ["ret=FULL; envid=env-2"]
    assert b"b@example.test" not in data and b"c@example.test" not in data


def test_dsn_orcpt_is_decoded_only_to_printable_ascii(start_mxd):
    """An xtext that decodes to a control character is kept as given:
    no header can be made through ORCPT."""
    mxd = start(start_mxd, "-o", "dsn=yes")
    s = smtp_client(mxd)
    s.ehlo()
    s.sendmail("a@client.example", ["b@example.test"],
               b"Subject: dsn crlf\r\n\r\nx\r\n",
               rcpt_options=["ORCPT=rfc822;a+0D+0AX-Evil:+20yes@example.test"])
    s.sendmail("a@client.example", ["b@example.test"],
               b"Subject: dsn utf8\r\n\r\nx\r\n",
               mail_options=["SMTPUTF8"],
               rcpt_options=["ORCPT=utf-8;d\xe9@example.test"])
    s.quit()
    data = stored_with(mxd, b"Subject: dsn crlf\n")
    assert header(data, "Original-Recipient") == [
        "rfc822;a+0D+0AX-Evil:+20yes@example.test"]
    assert b"\nX-Evil:" not in data
    assert header(data, "X-Mxd-Envelope") == []
    data = stored_with(mxd, b"Subject: dsn utf8\n")
    assert header(data, "Original-Recipient") == ["utf-8;dé@example.test"]
    assert header(data, "X-Mxd-Envelope") == ["smtputf8"]


def test_dsn_bad_values_501(start_mxd):
    mxd = start(start_mxd, "-o", "dsn=yes", "-o", "max_errors=0")
    c = greet(mxd)
    assert "DSN" in ehlo(c)
    for line, param in [("MAIL FROM:<a@client.example> RET=ALL", "RET"),
                        ("MAIL FROM:<a@client.example> RET", "RET"),
                        ("MAIL FROM:<a@client.example> ENVID=+2b", "ENVID"),
                        ("MAIL FROM:<a@client.example> ENVID=" + "x" * 101,
                         "ENVID")]:
        assert c.cmd(line)[1] == ["501 5.5.4 Bad %s parameter" % param], line
    assert c.cmd("MAIL FROM:<a@client.example> RET=FULL RET=HDRS")[1] == [
        "501 5.5.4 Duplicate RET parameter"]
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    for line, param in [
            ("RCPT TO:<b@example.test> NOTIFY=NEVER,SUCCESS", "NOTIFY"),
            ("RCPT TO:<b@example.test> NOTIFY=SOMETIMES", "NOTIFY"),
            ("RCPT TO:<b@example.test> ORCPT=b@example.test", "ORCPT"),
            ("RCPT TO:<b@example.test> ORCPT=rfc822;b+2b@example.test",
             "ORCPT")]:
        assert c.cmd(line)[1] == ["501 5.5.4 Bad %s parameter" % param], line
    # smtplib sees the same refusal.
    s = smtp_client(mxd)
    s.ehlo()
    try:
        s.sendmail("a@client.example", ["b@example.test"], b"x\r\n",
                   rcpt_options=["NOTIFY=SUCCESS,SUCCESS"])
    except smtplib.SMTPRecipientsRefused as e:
        assert e.recipients == {"b@example.test": (
            501, b"5.5.4 Bad NOTIFY parameter")}
    else:
        raise AssertionError("NOTIFY=SUCCESS,SUCCESS was accepted")
    s.quit()
    assert mxd.messages() == []


def test_dsn_off_by_default(start_mxd):
    mxd = start(start_mxd)
    s = smtp_client(mxd)
    s.ehlo()
    assert not s.has_extn("dsn")
    try:
        s.sendmail("a@client.example", ["b@example.test"], b"x\r\n",
                   rcpt_options=["NOTIFY=SUCCESS"])
    except smtplib.SMTPRecipientsRefused as e:
        assert e.recipients == {"b@example.test": (
            555, b"5.5.4 Unsupported parameter NOTIFY")}
    else:
        raise AssertionError("NOTIFY accepted with dsn off")
    s.quit()
    c = greet(mxd)
    assert "DSN" not in ehlo(c)
    assert c.cmd("MAIL FROM:<a@client.example> RET=HDRS")[1] == [
        "555 5.5.4 Unsupported parameter RET"]
    assert c.cmd("MAIL FROM:<a@client.example> ENVID=x")[1] == [
        "555 5.5.4 Unsupported parameter ENVID"]
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test> NOTIFY=SUCCESS")[1] == [
        "555 5.5.4 Unsupported parameter NOTIFY"]
    assert c.cmd("RCPT TO:<b@example.test> ORCPT=rfc822;b@example.test")[
        1] == ["555 5.5.4 Unsupported parameter ORCPT"]
    assert mxd.messages() == []


# ---- REQUIRETLS --------------------------------------------------------------


def test_requiretls_refused_in_plaintext(start_mxd):
    mxd = start(start_mxd)
    c = greet(mxd)
    kw = ehlo(c)
    assert "STARTTLS" in kw and "REQUIRETLS" not in kw, kw
    assert c.cmd("MAIL FROM:<a@client.example> REQUIRETLS")[1] == [
        "530 5.7.0 Must issue a STARTTLS command first"]
    # smtplib, plaintext: the same refusal.
    s = smtp_client(mxd)
    s.ehlo()
    assert not s.has_extn("requiretls")
    try:
        s.sendmail("a@client.example", ["b@example.test"], b"x\r\n",
                   mail_options=["REQUIRETLS"])
    except smtplib.SMTPSenderRefused as e:
        assert (e.smtp_code, e.smtp_error) == (
            530, b"5.7.0 Must issue a STARTTLS command first")
    else:
        raise AssertionError("REQUIRETLS accepted in plaintext")
    s.quit()
    assert mxd.messages() == []


def test_requiretls_after_starttls_is_stored(start_tls_mxd):
    m = start_tls_mxd()
    s = smtplib.SMTP(local_hostname="client.example", timeout=20)
    s.connect("127.0.0.1", m.port)
    s._host = HOST
    s.ehlo()
    assert not s.has_extn("requiretls")
    s.starttls(context=tls_context(m.cert))
    s.ehlo()
    assert s.has_extn("requiretls")
    assert not s.has_extn("starttls")
    assert s.mail("a@client.example", ["REQUIRETLS=yes"]) == (
        501, b"5.5.4 Bad REQUIRETLS parameter")
    s.rset()
    s.sendmail("a@client.example", ["b@example.test"],
               b"Subject: requiretls\r\n\r\nsecret\r\n",
               mail_options=["REQUIRETLS"])
    s.quit()
    data = stored_with(m, b"Subject: requiretls\n")
    head, body = split_stored(data)
    assert b"\tby mx.test (mxd) with ESMTPS id " in head, head
    assert header(data, "X-Mxd-Envelope") == ["requiretls"]
    assert body == b"Subject: requiretls\n\nsecret\n"
    log = m.log()
    assert re.search(r" mail from=<a@client\.example> size=\d+ "
                     r"requiretls=yes", log), log
