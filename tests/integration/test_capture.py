"""The capture backend (docs/harness.md, "Capture"): --capture DIR.

Each accepted message is DIR/ID.eml, the message exactly as the client
sent it, and DIR/ID.json, its envelope, client, TLS and connection
details.  These tests deliver with smtplib and with raw DATA and BDAT,
and check the .eml byte for byte and every documented field of the
.json; that a reader polling the directory during 200 quick deliveries
never finds a .json without its whole .eml; that a read-only or full
file system gives 4xx and leaves nothing behind (the tmpfs-in-a-
namespace technique of test_durability.py); and that mxd --capture is
listening well within 100 ms of its start.
"""

import calendar
import json
import os
import pathlib
import random
import re
import signal
import smtplib
import socket
import statistics
import subprocess
import threading
import time
import types

import pytest

from conftest import BINARY, WRAPPER
from conftest import RawClient
from test_durability import TmpfsMxd, _trace_events, stop_traced
from tlsutil import (HOST, TLS_TOP, ehlo_lines, logfields, start_tls_mxd,
                     tls_context, to_starttls, wrap)

assert start_tls_mxd  # the fixture, for pytest

SENDER = "alice@client.example"
RCPT = "bob@example.test"
QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as (\S+)$")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# docs/harness.md's table, in the order mxd writes them.
FIELDS = ["id", "reply", "mail_from", "rcpt_to", "mail_params",
          "rcpt_params", "client", "helo", "esmtp", "tls", "connection",
          "received", "stored", "size"]


# ---- helpers ---------------------------------------------------------------


def start(start_mxd, tmp_path, *args):
    cap = tmp_path / "capture"
    m = start_mxd("-H", HOST, "--capture", str(cap), *args)
    m.capture = cap
    return m


def listing(d):
    """Every name in the capture directory, dot files too."""
    return sorted(os.listdir(d))


def captured(m, qid):
    """(the .eml's bytes, the parsed .json) of one message; both must be
    there already: the 250 comes only after they are."""
    eml = (m.capture / (qid + ".eml")).read_bytes()
    raw = (m.capture / (qid + ".json")).read_bytes()
    meta = json.loads(raw.decode("utf-8"))
    assert list(meta) == FIELDS, list(meta)
    assert raw.endswith(b"}\n") and raw.count(b"\n") == 1, raw
    assert meta["id"] == qid
    assert meta["reply"] == "250 2.0.0 Ok: queued as " + qid
    assert meta["size"] == len(eml)
    return eml, meta


def utc(s):
    """An RFC 3339 UTC time with milliseconds -> seconds since the epoch."""
    assert STAMP.match(s), s
    return calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) + \
        int(s[20:23]) / 1000


def check_times(meta, before, after):
    """received (end of data) <= stored, both within [before, after]
    (to the millisecond)."""
    rec, sto = utc(meta["received"]), utc(meta["stored"])
    assert before - 0.002 <= rec <= sto <= after + 0.002, (
        before, meta["received"], meta["stored"], after)


def session_of(m, port):
    """The session id of the connection from this client port."""
    text = m.wait_log(r" connect client=127\.0\.0\.1:%d " % port)
    sid = re.search(r"^\S+ (\S+) connect client=127\.0\.0\.1:%d " % port,
                    text, re.M)
    return sid.group(1)


def greet(m, name="client.example", esmtp=True):
    c = m.client()
    c.expect(220)
    c.cmd(("EHLO " if esmtp else "HELO ") + name)
    return c


def stuff(lines):
    """DATA on the wire: each line dot-stuffed, CRLF, then the end mark."""
    return b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n"
                    for l in lines) + b".\r\n"


def send_data(c, wire, sender=SENDER, rcpts=(RCPT,), mail_params=""):
    assert c.cmd("MAIL FROM:<%s>%s" % (sender, mail_params))[0] == 250
    for r in rcpts:
        # "addr PARAMS": the address in brackets, the parameters after.
        addr, _, params = r.partition(" ")
        code, lines = c.cmd("RCPT TO:<%s>%s" % (addr, " " + params
                                                 if params else ""))
        assert code == 250, lines
    assert c.cmd("DATA")[0] == 354
    c.send(wire)
    code, lines = c.reply()
    q = QUEUED.match(lines[0])
    assert q, lines
    return q.group(1)


# ---- what is stored --------------------------------------------------------


def test_smtplib_message_is_stored_as_sent(start_mxd, tmp_path):
    m = start(start_mxd, tmp_path)
    msg = (b"From: Alice <alice@client.example>\r\n"
           b"Subject: smtplib\r\n"
           b"\r\n"
           b".a line that smtplib stuffs\r\n"
           b".\r\n"
           b"caf\xc3\xa9 8-bit\r\n")
    s = smtplib.SMTP("127.0.0.1", m.port, local_hostname="client.example",
                     timeout=10)
    s.ehlo()
    before = time.time()
    assert s.mail(SENDER, ["BODY=8BITMIME", "SIZE=%d" % len(msg)])[0] == 250
    assert s.rcpt(RCPT)[0] == 250
    code, text = s.data(msg)
    after = time.time()
    port = s.sock.getsockname()[1]
    s.quit()
    assert code == 250
    qid = QUEUED.match("250 " + text.decode()).group(1)
    eml, meta = captured(m, qid)
    assert eml == msg
    sid = session_of(m, port)
    assert qid == sid + "-1"
    assert meta == {
        "id": qid,
        "reply": "250 " + text.decode(),
        "mail_from": SENDER,
        "rcpt_to": [RCPT],
        "mail_params": {"size": len(msg), "body": "8BITMIME"},
        "rcpt_params": [{}],
        "client": {"ip": "127.0.0.1", "port": port},
        "helo": "client.example",
        "esmtp": True,
        "tls": None,
        "connection": {"number": 1, "session": sid},
        "received": meta["received"],
        "stored": meta["stored"],
        "size": len(msg),
    }
    check_times(meta, before, after)
    # Nothing else: no temporary left, no Maildir made.
    assert listing(m.capture) == [qid + ".eml", qid + ".json"]
    assert not m.maildir.exists()
    m.wait_log(r" start .*delivery=capture:%s " % re.escape(str(m.capture)))


def test_data_is_unstuffed_and_otherwise_untouched(start_mxd, tmp_path):
    m = start(start_mxd, tmp_path)
    lines = [b"Subject: raw data", b"X-Empty:", b"",
             b".one leading dot", b"..two leading dots", b".", b"",
             b"8-bit: \xc3\xa9\xe2\x82\xac \x80\xff\xfe (not UTF-8 either)",
             b"tab\there, trailing blanks  \t", b"\x01\x02 controls \x7f",
             b"x" * 998, b"last line"]
    c = greet(m)
    wire = stuff(lines)
    # Fed in awkward pieces: the end mark split, a CRLF split.
    qid = None
    assert c.cmd("MAIL FROM:<%s> BODY=8BITMIME" % SENDER)[0] == 250
    assert c.cmd("RCPT TO:<%s>" % RCPT)[0] == 250
    assert c.cmd("DATA")[0] == 354
    for i in range(0, len(wire), 7):
        c.send(wire[i:i + 7])
    code, reply = c.reply()
    qid = QUEUED.match(reply[0]).group(1)
    eml, meta = captured(m, qid)
    assert eml == b"".join(l + b"\r\n" for l in lines)
    assert meta["mail_params"] == {"body": "8BITMIME"}

    # An empty message body: an empty file, size 0.
    qid = send_data(c, b".\r\n")
    eml, meta = captured(m, qid)
    assert eml == b"" and meta["size"] == 0
    assert c.cmd("QUIT")[0] == 221


def test_bdat_chunks_are_stored_byte_exact(start_mxd, tmp_path):
    """Chunks are octets: no dot handling, no line-end change, a CRLF
    split between two chunks, bare CR and LF, NUL, 8-bit."""
    m = start(start_mxd, tmp_path)
    c = greet(m)
    chunks = [b"Subject: chunked\r\n\r\nfirst\r\n.\r\n",
              b"..two leading dots\r\n.\r\nMAIL FROM:<x@y.example>\r\n",
              b".\r\n\r\n.\r",
              b"\nbare LF\nand bare CR\rhere\r\n",
              b"8-bit \x80\xff\xc3\xa9 NUL \x00 end\r\n..\r"]
    assert c.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
    assert c.cmd("RCPT TO:<%s>" % RCPT)[0] == 250
    for i, ch in enumerate(chunks):
        last = i == len(chunks) - 1
        c.send(b"BDAT %d%s\r\n" % (len(ch), b" LAST" if last else b"") + ch)
        code, lines = c.reply()
    qid = QUEUED.match(lines[0]).group(1)
    eml, meta = captured(m, qid)
    assert eml == b"".join(chunks)
    # BDAT 0 LAST: an empty message.
    assert c.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
    assert c.cmd("RCPT TO:<%s>" % RCPT)[0] == 250
    code, lines = c.cmd("BDAT 0 LAST")
    qid2 = QUEUED.match(lines[0]).group(1)
    assert captured(m, qid2)[0] == b""
    assert qid2 != qid and listing(m.capture) == sorted(
        [qid + ".eml", qid + ".json", qid2 + ".eml", qid2 + ".json"])


# ---- the metadata ----------------------------------------------------------


def test_envelope_and_dsn_parameters(start_mxd, tmp_path):
    m = start(start_mxd, tmp_path, "-o", "dsn=yes")
    # A quoted local part: the JSON escapes its quote and backslash.
    sender = r'"q\"uo\\te"@client.example'
    c = greet(m, "helo.example")
    port = c.sock.getsockname()[1]
    before = time.time()
    qid = send_data(
        c, b"Subject: dsn\r\n\r\nx\r\n.\r\n", sender=sender,
        rcpts=["b@example.test NOTIFY=SUCCESS,DELAY "
               "ORCPT=rfc822;b+2Btag@example.test",
               "c@example.test",
               "d@example.test NOTIFY=NEVER",
               "e@example.test ORCPT=rfc822;e@example.test"],
        mail_params=" SIZE=300 BODY=7BIT RET=HDRS ENVID=QQ+2B314")
    after = time.time()
    eml, meta = captured(m, qid)
    raw = (m.capture / (qid + ".json")).read_text()
    assert r'"mail_from":"\"q\\\"uo\\\\te\"@client.example"' in raw, raw
    sid = session_of(m, port)
    assert meta["mail_from"] == sender
    assert meta["rcpt_to"] == ["b@example.test", "c@example.test",
                               "d@example.test", "e@example.test"]
    assert meta["mail_params"] == {"size": 300, "body": "7BIT",
                                   "ret": "HDRS", "envid": "QQ+2B314"}
    assert meta["rcpt_params"] == [
        {"notify": ["SUCCESS", "DELAY"], "orcpt": "rfc822;b+2Btag@example.test"},
        {},
        {"notify": ["NEVER"]},
        {"orcpt": "rfc822;e@example.test"}]
    assert meta["client"] == {"ip": "127.0.0.1", "port": port}
    assert meta["helo"] == "helo.example" and meta["esmtp"] is True
    assert meta["tls"] is None
    assert meta["connection"] == {"number": 1, "session": sid}
    assert eml == b"Subject: dsn\r\n\r\nx\r\n"
    check_times(meta, before, after)

    # RET=FULL, and a second transaction of the session: same connection.
    qid2 = send_data(c, b"y\r\n.\r\n", mail_params=" RET=FULL")
    assert qid2 == sid + "-2"
    meta2 = captured(m, qid2)[1]
    assert meta2["mail_params"] == {"ret": "FULL"}
    assert meta2["connection"] == {"number": 1, "session": sid}
    assert utc(meta2["received"]) >= utc(meta["stored"])
    c.cmd("QUIT")

    # HELO (no ESMTP), the null sender, <postmaster> without a domain.
    c = greet(m, "old.example", esmtp=False)
    qid = send_data(c, b"z\r\n.\r\n", sender="", rcpts=["postmaster"])
    meta = captured(m, qid)[1]
    assert meta["helo"] == "old.example" and meta["esmtp"] is False
    assert meta["mail_from"] == "" and meta["rcpt_to"] == ["postmaster"]
    assert meta["mail_params"] == {} and meta["rcpt_params"] == [{}]
    assert meta["connection"]["number"] == 2


def test_smtputf8_addresses_are_utf8_in_the_json(start_mxd, tmp_path):
    m = start(start_mxd, tmp_path)
    frm, to = "jörg@bücher.example", "用户@例子.mx.test"
    s = smtplib.SMTP("127.0.0.1", m.port, local_hostname="client.example",
                     timeout=10)
    s.ehlo()
    assert s.mail(frm, ["SMTPUTF8"])[0] == 250
    assert s.rcpt(to)[0] == 250
    code, text = s.data("Subject: utf8\r\n\r\nhé\r\n".encode())
    s.quit()
    qid = QUEUED.match("250 " + text.decode()).group(1)
    eml, meta = captured(m, qid)
    assert meta["mail_from"] == frm and meta["rcpt_to"] == [to]
    assert meta["mail_params"] == {"smtputf8": True}
    # As UTF-8 in the file, not as \u escapes.
    raw = (m.capture / (qid + ".json")).read_bytes()
    assert frm.encode() in raw and to.encode() in raw
    assert eml == "Subject: utf8\r\n\r\nhé\r\n".encode()


def test_connection_numbers_count_every_connection(start_mxd, tmp_path):
    m = start(start_mxd, tmp_path)
    numbers = []
    for i in range(5):
        c = greet(m)
        if i != 2:          # the third connection only says QUIT
            for _ in range(2 if i == 3 else 1):
                qid = send_data(c, b"n %d\r\n.\r\n" % i)
                numbers.append(captured(m, qid)[1]["connection"]["number"])
        assert c.cmd("QUIT")[0] == 221
        c.close()
    assert numbers == [1, 2, 4, 4, 5]


def tls_session(m, ctx, server_hostname, subject):
    """EHLO, STARTTLS, EHLO in TLS, one message: (qid, client port,
    the TLS socket's version)."""
    c = to_starttls(m)
    port = c.sock.getsockname()[1]
    t = wrap(c, ctx, server_hostname=server_hostname)
    ehlo_lines(t, "after-tls.example")
    qid = send_data(t, b"Subject: %s\r\n\r\nsecret\r\n.\r\n" % subject.encode(),
                    mail_params=" REQUIRETLS")
    version = t.sock.version()
    assert t.cmd("QUIT")[0] == 221
    t.close()
    return qid, port, version


def test_tls_details(start_tls_mxd, tmp_path):
    cap = tmp_path / "capture"
    m = start_tls_mxd("--capture", str(cap))
    m.capture = cap
    for sni in (HOST, None):
        ctx = tls_context(m.cert) if sni else tls_context(verify=False)
        qid, port, version = tls_session(m, ctx, sni, "tls %s" % sni)
        eml, meta = captured(m, qid)
        sid = session_of(m, port)
        line = [l for l in m.wait_log(r"^\S+ %s tls " % sid).splitlines()
                if re.match(r"^\S+ %s tls " % sid, l)][0]
        f = logfields(line)
        assert version == TLS_TOP
        assert meta["tls"] == {"version": TLS_TOP, "cipher": f["cipher"],
                               "sni": sni}, (meta["tls"], line)
        assert f["version"] == TLS_TOP and f["cipher"]
        # The session after TLS: its EHLO, not the one before.
        assert meta["helo"] == "after-tls.example"
        assert meta["mail_params"] == {"requiretls": True}
        assert meta["client"]["port"] == port
        assert eml.startswith(b"Subject: tls ")


# ---- readers see whole files only ------------------------------------------


def test_reader_never_sees_a_partial_capture(start_mxd, tmp_path):
    """A reader lists the directory in a loop while 200 messages arrive
    on 4 connections.  Each .json it sees must parse, and its .eml must
    be there, whole (the size the .json says, ending in the message's
    own last line); each .eml it sees must be whole too."""
    m = start(start_mxd, tmp_path)
    stop = threading.Event()
    problems = []
    seen_json = set()
    seen_eml = set()
    passes = [0, 0]       # listings; .json files checked while sending

    def whole(data):
        # Every message ends in its own "END OF" line, which no other
        # line resembles: a file cut short ends elsewhere.
        return re.search(rb"\r\nEND OF w\d+-\d+\r\n\Z", data) is not None

    def check(name):
        path = m.capture / name
        if name.endswith(".json") and name not in seen_json:
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                problems.append("%s listed, then gone" % name)
                return
            try:
                meta = json.loads(raw)
            except ValueError:
                problems.append("%s does not parse: %r" % (name, raw[:80]))
                return
            eml = m.capture / (meta["id"] + ".eml")
            try:
                data = eml.read_bytes()
            except FileNotFoundError:
                problems.append("%s without its .eml" % name)
                return
            if len(data) != meta["size"] or not whole(data):
                problems.append("%s: partial .eml (%d of %d octets)" % (
                    name, len(data), meta["size"]))
            seen_json.add(name)
            if not stop.is_set():
                passes[1] += 1
        elif name.endswith(".eml") and name not in seen_eml:
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                problems.append("%s listed, then gone" % name)
                return
            if not whole(data):
                problems.append("%s is partial (%d octets)" % (name,
                                                               len(data)))
            seen_eml.add(name)

    def reader():
        while True:
            done = stop.is_set()
            for name in os.listdir(m.capture):
                check(name)
            passes[0] += 1
            if done:
                return

    rng = random.Random(7)
    results = []

    def writer(k):
        c = greet(m, "writer%d.example" % k)
        for i in range(50):
            # Mostly small; every tenth past DELIVERY_FLUSH_AT, so that
            # the .eml is on disk, growing, long before the end.
            size = 200 * 1024 if i % 10 == 9 else rng.randint(100, 4000)
            body = (b"Subject: %d-%d\r\n\r\n" % (k, i) +
                    (b"y" * 70 + b"\r\n") * (size // 72))
            assert c.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
            assert c.cmd("RCPT TO:<%s>" % RCPT)[0] == 250
            assert c.cmd("DATA")[0] == 354
            # The last line names the message; the qid is not known yet.
            c.send(body + b"END OF w%d-%d\r\n.\r\n" % (k, i))
            code, lines = c.reply()
            results.append((k, i, QUEUED.match(lines[0]).group(1),
                            len(body) + len(b"END OF w%d-%d\r\n" % (k, i))))
        assert c.cmd("QUIT")[0] == 221

    rt = threading.Thread(target=reader)
    rt.start()
    ws = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    try:
        for w in ws:
            w.start()
        for w in ws:
            w.join(120)
    finally:
        stop.set()
        rt.join(60)
    assert len(results) == 200
    assert not problems, problems[:10]
    for k, i, qid, size in results:
        eml, meta = captured(m, qid)
        assert len(eml) == size and eml.endswith(b"END OF w%d-%d\r\n" % (k, i))
    assert len(seen_json) == 200
    assert listing(m.capture) == sorted(
        [q + ".eml" for _, _, q, _ in results] +
        [q + ".json" for _, _, q, _ in results])
    print("reader: %d listings, %d .json checked while mail came in" %
          tuple(passes))


# ---- the order of writes -----------------------------------------------------


def test_order_of_writes_and_the_250(tmp_path):
    """strace: the .eml is fsynced, then the .json; the .eml is renamed,
    then the .json; the directory is fsynced; only then the 250 leaves.
    Needs strace(1) and permission to ptrace a child."""
    cap = tmp_path / "capture"
    trace = tmp_path / "strace.out"
    log = open(tmp_path / "mxd.log", "wb")
    proc = subprocess.Popen(
        ["strace", "-f", "-qq", "-y", "-s", "200", "-o", str(trace),
         "-e", "trace=fsync,fdatasync,rename,renameat,renameat2,sendto,"
         "write", "-e", "signal=none",
         BINARY, "--listen", "127.0.0.1:0", "--capture", str(cap),
         "-H", HOST], cwd=tmp_path, stdout=subprocess.PIPE, stderr=log)
    try:
        line = proc.stdout.readline().decode()
        mm = re.match(r"listening 127\.0\.0\.1:(\d+)$", line.strip())
        assert mm, "mxd under strace did not start: %r" % line
        c = RawClient(socket.create_connection(("127.0.0.1",
                                                int(mm.group(1))), 10))
        c.expect(220)
        c.cmd("EHLO client.example")
        qid = send_data(c, b"Subject: traced\r\n\r\nx\r\n.\r\n")
        c.cmd("QUIT")
        c.close()
    finally:
        stop_traced(proc, log)
    ev = _trace_events(trace)
    d = re.escape(str(cap))
    q = re.escape(qid)

    def index(pattern, what):
        for i, e in enumerate(ev):
            if re.match(pattern, e):
                return i
        raise AssertionError("no %s in the trace:\n%s" % (what,
                                                            "\n".join(ev)))

    order = [
        index(r"f(data)?sync\(\d+<%s/\.%s\.eml\.tmp>\)\s+= 0" % (d, q),
              "fsync of the .eml"),
        index(r"f(data)?sync\(\d+<%s/\.%s\.json\.tmp>\)\s+= 0" % (d, q),
              "fsync of the .json"),
        index(r"rename(at2?)?\(.*\.%s\.eml\.tmp\".*/%s\.eml\".*\)\s+= 0"
              % (q, q), "rename of the .eml"),
        index(r"rename(at2?)?\(.*\.%s\.json\.tmp\".*/%s\.json\".*\)\s+= 0"
              % (q, q), "rename of the .json"),
        index(r"f(data)?sync\(\d+<%s>\)\s+= 0" % d, "fsync of the directory"),
        index(r"(sendto|write)\(\d+<(TCP|socket).*\"250 2\.0\.0 Ok: queued "
              r"as %s" % q, "the 250 reply"),
    ]
    assert order == sorted(order), order
    assert captured(types.SimpleNamespace(capture=cap), qid)[0] == (
        b"Subject: traced\r\n\r\nx\r\n")


# ---- failures: 4xx, nothing left -------------------------------------------


class TmpfsCaptureMxd(TmpfsMxd):
    """mxd --capture on a tmpfs of `size` in its own mount namespace
    (test_durability.TmpfsMxd, with a capture directory)."""

    def __init__(self, workdir, size, args=()):
        super().__init__(workdir, size, args, store=("--capture", "capture"))
        self.capture = self.store


@pytest.fixture
def tmpfs_capture(tmp_path):
    started = []

    def start_(size, *args):
        m = TmpfsCaptureMxd(tmp_path / ("tmpfs%d" % len(started)), size, args)
        started.append(m)
        return m

    yield start_
    for m in started:
        if m.proc.poll() is None:
            m.stop()


def body_of(size, token):
    """(body, wire): a DATA body of exactly `size` octets in lines of
    100 octets (none starts with a dot), and the same with the end mark."""
    head = b"Subject: %s\r\n\r\n" % token.encode()
    k, r = divmod(size - len(head), 100)
    line = b"z" * 98 + b"\r\n"
    if r == 1:
        lines = [b"z" * 99 + b"\r\n"] + [line] * (k - 1)
    else:
        lines = [line] * k + ([b"z" * (r - 2) + b"\r\n"] if r else [])
    body = head + b"".join(lines)
    assert len(body) == size, (len(body), size)
    return body, body + b".\r\n"


def attempt(c, wire):
    assert c.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
    assert c.cmd("RCPT TO:<%s>" % RCPT)[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(wire)
    return c.reply()


@pytest.mark.parametrize("size", [2000, 300 * 1024])
def test_read_only_dir_gives_451_and_leaves_nothing(tmpfs_capture, size):
    m = tmpfs_capture("4m")
    m.set_readonly(True)
    body, wire = body_of(size, "ro")
    c = m.client()
    c.expect(220)
    c.cmd("EHLO client.example")
    code, lines = attempt(c, wire)
    assert lines == ["451 4.3.0 Error: could not store message, try again "
                     "later"], lines
    assert listing(m.capture) == []
    m.wait_log(r" store_failed (?:level=warn )?id=\S+ result=tempfail$")
    # Writable again: the retry on the same session is captured.
    m.set_readonly(False)
    code, lines = attempt(c, wire)
    qid = QUEUED.match(lines[0]).group(1)
    eml, meta = captured(m, qid)
    assert eml == body
    assert listing(m.capture) == [qid + ".eml", qid + ".json"]
    assert c.cmd("QUIT")[0] == 221
    assert m.stop() == 0


# tmpfs size=64k is 16 pages of 4 KiB.  64 KiB exactly: the .eml fits
# and the .json does not (ENOSPC at its write, after the .eml was
# fsynced); 100 KiB: the .eml fails at the commit's write; 1 MiB: in an
# earlier flush.  nr_inodes: the root and the capture directory take 2,
# so 3 leaves room for the .eml but not for the .json, 2 for neither
# (ENOSPC from open(2)).
@pytest.mark.parametrize("fs,size", [
    ("64k", 64 * 1024), ("64k", 100 * 1024), ("64k", 1024 * 1024),
    ("1m,nr_inodes=3", 2000), ("1m,nr_inodes=2", 2000)])
def test_full_dir_gives_452_and_leaves_nothing(tmpfs_capture, fs, size):
    m = tmpfs_capture(fs)
    body, wire = body_of(size, "full")
    c = m.client()
    c.expect(220)
    c.cmd("EHLO client.example")
    code, lines = attempt(c, wire)
    assert lines == ["452 4.3.1 Insufficient system storage"], lines
    assert listing(m.capture) == []
    m.wait_log(r" store_failed (?:level=warn )?id=\S+ result=no_space$")
    assert not re.search(r" accepted id=", m.log())
    if "nr_inodes" not in fs:
        # The space was given back: a small message fits.
        small, wire = body_of(3000, "fits")
        code, lines = attempt(c, wire)
        qid = QUEUED.match(lines[0]).group(1)
        assert captured(m, qid)[0] == small
        assert listing(m.capture) == [qid + ".eml", qid + ".json"]
    assert c.cmd("QUIT")[0] == 221
    assert m.stop() == 0


# ---- configuration and start-up --------------------------------------------


def run(tmp_path, *args):
    return subprocess.run([BINARY, *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=30)


def test_config_keys_and_flag(tmp_path):
    r = run(tmp_path, "-o", "delivery=capture", "--check")
    assert r.returncode == 1
    assert r.stderr == ("mxd: capture_dir: required with delivery = capture "
                        "(or give --capture DIR)\n"), r.stderr
    r = run(tmp_path, "-o", "delivery=mbox", "--check")
    assert r.returncode == 1
    assert r.stderr == ("mxd: delivery: 'mbox' is not one of maildir "
                        "capture discard lmtp:unix:PATH "
                        "lmtp:ADDR:PORT\n"), r.stderr
    r = run(tmp_path, "--capture", str(tmp_path / "c"), "--check")
    assert r.returncode == 0 and r.stdout == "mxd: configuration ok\n"
    conf = tmp_path / "mxd.conf"
    conf.write_text("delivery = capture\ncapture_dir = %s\n" %
                    (tmp_path / "c"))
    r = run(tmp_path, "-c", str(conf), "--check")
    assert r.returncode == 0, r.stderr
    # capture_dir must be a directory (or creatable as one).
    (tmp_path / "file").write_text("x")
    r = run(tmp_path, "--listen", "127.0.0.1:0", "--capture",
            str(tmp_path / "file"))
    assert r.returncode == 1
    assert r.stderr.endswith("mxd: capture_dir: %s is not a directory\n" %
                             (tmp_path / "file")), r.stderr
    r = run(tmp_path, "--help")
    assert re.search(r"^      --capture DIR ", r.stdout, re.M), r.stdout
    assert re.search(r"^  delivery {2,}\S", r.stdout, re.M)
    assert re.search(r"^  capture_dir {2,}\S", r.stdout, re.M)


def test_config_file_capture(start_mxd, tmp_path):
    cap = tmp_path / "made" / "by" / "mxd"
    m = start_mxd("-H", HOST, config="delivery = capture\n"
                  "capture_dir = %s\n" % cap)
    m.capture = cap
    assert cap.is_dir() and oct(cap.stat().st_mode & 0o777) == "0o700"
    c = greet(m)
    qid = send_data(c, b"cfg\r\n.\r\n")
    assert captured(m, qid)[0] == b"cfg\r\n"


@pytest.mark.skipif(bool(WRAPPER), reason="timing is meaningless under "
                    "valgrind")
def test_startup_is_fast(tmp_path):
    """From exec to the "listening" line, with --capture: the first
    start makes the self-signed certificate; the next 20 reuse it and
    their median must be well under 100 ms."""
    cap = tmp_path / "capture"
    times = []
    for i in range(21):
        t0 = time.monotonic()
        p = subprocess.Popen([BINARY, "--listen", "127.0.0.1:0", "--capture",
                              str(cap), "-H", HOST], cwd=tmp_path,
                             stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        line = p.stdout.readline()
        times.append(time.monotonic() - t0)
        assert line.startswith(b"listening 127.0.0.1:"), line
        p.terminate()
        assert p.wait(10) == 0
        p.stdout.close()
    med = statistics.median(times[1:])
    print("start-up to listening: first %.1f ms, median of next 20 %.1f ms,"
          " max %.1f ms" % (times[0] * 1000, med * 1000,
                            max(times[1:]) * 1000))
    assert med < 0.1, times
