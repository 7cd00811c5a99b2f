"""Load: Postfix's smtp-source sends 20,000 messages over 20 sessions.

Every message must be stored once and whole (20,000 files in new/, each
well formed, each with its own queue id), nothing may be left in tmp/,
and mxd must log no failure.  The wall time is printed (pytest -s) and
must stay under a generous bound, so that a collapse in throughput (a
lock convoy, a lost wake-up that only a timer resolves) fails the test.
"""

import re
import shutil
import subprocess
import time

HOST = "mx.test"
SENDER = "load-sender@client.example"
RCPT = "load-rcpt@example.test"
SESSIONS = 20
MESSAGES = 20000
PAYLOAD = 1024

# smtp-source speaks HELO (so "with SMTP"); -M sets the HELO name.
WELL_FORMED = re.compile(
    rb"Return-Path: <" + re.escape(SENDER.encode()) + rb">\n"
    rb"Received: from localhost \(\[127\.0\.0\.1\]\)\n"
    rb"\tby mx\.test \(mxd\) with SMTP id (?P<id>[0-9a-f]+-\d+)\n"
    rb"\tfor <" + re.escape(RCPT.encode()) + rb">; [A-Z][a-z]{2}, \d\d "
    rb"[A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000\n"
    rb"From: <" + re.escape(SENDER.encode()) + rb">\n"
    rb"To: <" + re.escape(RCPT.encode()) + rb">\n"
    rb"Date: [^\n]+\n"
    rb"Message-Id: <[^>\n]+>\n"
    rb"\n"
    rb"(?P<body>(?:[^\r\n]*\n)+)\Z")

# Generous: about 20 s here on 2 cores with ext4; a collapse is far more.
TIME_LIMIT = 240


def test_smtp_source_20000_messages(start_mxd):
    m = start_mxd("-H", HOST)
    t0 = time.monotonic()
    r = subprocess.run(
        ["smtp-source", "-s", str(SESSIONS), "-m", str(MESSAGES),
         "-l", str(PAYLOAD), "-c", "-M", "localhost", "-f", SENDER,
         "-t", RCPT, "127.0.0.1:%d" % m.port],
        capture_output=True, text=True, timeout=TIME_LIMIT + 60)
    took = time.monotonic() - t0
    print("\nsmtp-source -s %d -m %d -l %d: %.1f s, %.0f messages/s" %
          (SESSIONS, MESSAGES, PAYLOAD, took, MESSAGES / took))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "fatal" not in r.stderr and "warning" not in r.stderr, (
        r.stderr[-2000:])
    # -c prints the running count of completed DATA commands.
    counts = re.findall(r"\d+", r.stdout)
    assert counts and int(counts[-1]) == MESSAGES, r.stdout[-200:]

    new = m.messages("new")
    assert len(new) == MESSAGES
    assert m.messages("tmp") == []
    assert m.messages("cur") == []
    ids = set()
    bodies = set()
    for p in new:
        data = p.read_bytes()
        mm = WELL_FORMED.match(data)
        assert mm, "malformed %s: %r" % (p.name, data[:600])
        qid = mm.group("id").decode()
        assert ("Q%s." % qid) in p.name
        ids.add(qid)
        bodies.add(mm.group("body"))
    assert len(ids) == MESSAGES
    # smtp-source sends the same payload every time: one body, whole.
    # -l 1024 counts the payload with its line ends, CRLF on the wire
    # and LF in the Maildir.
    assert len(bodies) == 1, [b[:100] for b in list(bodies)[:3]]
    (body,) = bodies
    assert PAYLOAD - 40 <= len(body) <= PAYLOAD, len(body)
    assert body.endswith(b"X\n") and b"\r" not in body

    log = m.log()
    assert len(re.findall(r" accepted (?:level=\w+ )?id=", log)) == MESSAGES
    assert " store_failed " not in log
    assert m.stop() == 0
    assert took < TIME_LIMIT, "took %.1f s" % took
    # Passed: do not leave 20,000 files for pytest's tmp retention.
    shutil.rmtree(m.maildir)
