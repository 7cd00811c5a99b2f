"""Group commit and delivery = discard (docs/mxd.conf.5, docs/performance.md).

With group commit, messages whose bodies are written wait for the batch
in flight, then are made durable together.  These tests check what that
must never change: every message that got a 250 is in new/, whole and
byte-exact, with many sessions sending at once; and that batching does
happen (the group_commit line at shutdown counts fewer batches than
messages).  test_durability.py traces the system calls of concurrent
messages to show the order: fsync, rename, directory fsync, then 250.

delivery = discard reads and counts each message and keeps nothing: the
250 says "(discarded)" after the queue id, and nothing is written.
"""

import random
import re
import smtplib
import threading
import time

import pytest

from test_durability import HELO, HOST, QUEUED, SENDER, check_stored, \
    file_for, files, kill9, make_message

RCPT = "bob@example.test"
SMTPLIB_QUEUED = re.compile(r"^2\.0\.0 Ok: queued as (\S+)$")


def send_all(port, msgs, results, errors):
    """One smtplib session sending msgs [(token, wire)] in turn; records
    queue id -> token for each 250."""
    try:
        s = smtplib.SMTP("127.0.0.1", port, local_hostname=HELO,
                         timeout=60)
        s.ehlo()
        for token, wire in msgs:
            s.mail(SENDER)
            code, _ = s.rcpt(RCPT)
            assert code == 250
            # smtplib dot-stuffs and adds the terminator itself: give it
            # the message unstuffed.
            code, text = s.data(wire)
            m = SMTPLIB_QUEUED.match(text.decode())
            assert code == 250 and m, (code, text)
            results[m.group(1)] = token
        s.quit()
    except Exception as e:      # reported by the test's thread
        errors.append(e)


def make_work(rng, prefix, nsessions, per_session, sizes):
    """(stored, work): token -> bytes as the Maildir must hold them, and
    per session a list of (token, message) as smtplib takes it
    (unstuffed, CRLF ends)."""
    stored, work = {}, []
    for k in range(nsessions):
        msgs = []
        for i in range(per_session):
            token = "%s-s%d-m%d" % (prefix, k, i)
            _, body = make_message(rng, rng.choice(sizes), token)
            stored[token] = body
            msgs.append((token, body.replace(b"\n", b"\r\n")))
        work.append(msgs)
    return stored, work


def start_sessions(port, work, results, errors):
    threads = [threading.Thread(target=send_all,
                                args=(port, w, results, errors))
               for w in work]
    for t in threads:
        t.start()
    return threads


@pytest.mark.parametrize("syncfs", ["no", "yes"])
def test_fifty_concurrent_sessions_every_250_is_stored(start_mxd, syncfs):
    m = start_mxd("-H", HOST, "-o", "commit_syncfs=" + syncfs)
    rng = random.Random(50)
    nsessions, per_session = 50, 4
    stored, work = make_work(rng, "gc", nsessions, per_session,
                             [300, 1024, 5000, 100 * 1024])
    results, errors = {}, []
    threads = start_sessions(m.port, work, results, errors)
    for t in threads:
        t.join(300)
        assert not t.is_alive()
    assert not errors, errors[:3]
    assert len(results) == nsessions * per_session
    for qid, token in results.items():
        f = file_for(m.maildir, qid)
        assert f is not None, "acknowledged %s is not in new/" % qid
        check_stored(f.read_bytes(), stored[token], qid)
    assert len(files(m.maildir, "new")) == nsessions * per_session
    assert files(m.maildir, "tmp") == []
    assert m.stop() == 0
    # One line per worker process, at its exit: their sum.
    b = re.findall(r" group_commit batches=(\d+) messages=(\d+)$",
                   m.logpath.read_text(), re.M)
    assert b, m.logpath.read_text()[-2000:]
    batches = sum(int(x) for x, _ in b)
    messages = sum(int(y) for _, y in b)
    assert messages == nsessions * per_session
    # 50 sessions at once: some batch must have held more than one.
    assert batches < messages, (batches, messages)


def test_one_session_batches_of_one(start_mxd):
    """Alone, each message is its own batch, and nothing waits for a
    timer: twenty messages in a row each get their 250."""
    m = start_mxd("-H", HOST)
    rng = random.Random(1)
    c = m.client()
    c.expect(220)
    c.cmd("EHLO %s" % HELO)
    for i in range(20):
        wire, body = make_message(rng, 2000, "one%d" % i)
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
        assert c.cmd("RCPT TO:<%s>" % RCPT)[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(wire + b".\r\n")
        code, lines = c.reply()
        qm = QUEUED.match(lines[-1])
        assert code == 250 and qm, lines
        check_stored(file_for(m.maildir, qm.group(1)).read_bytes(), body,
                     qm.group(1))
    c.cmd("QUIT")
    assert m.stop() == 0
    assert re.search(r" group_commit batches=20 messages=20$", m.logpath.read_text(),
                     re.M), m.logpath.read_text()[-2000:]


def test_discard_keeps_nothing_and_says_so(start_mxd, tmp_path):
    m = start_mxd("-H", HOST, "-o", "delivery=discard")
    # The start line follows the "listening" line: wait for it.
    m.wait_log(r" start .*delivery=\"discard \(not stored\)\"")
    # And one warning, whatever the number of workers.
    m.wait_log(r" discard level=warn msg=\"delivery = discard: accepted "
               r"messages are dropped, not stored")
    assert m.log().count(" discard level=warn ") == 1, m.log()
    c = m.client()
    c.expect(220)
    c.cmd("EHLO %s" % HELO)
    ids = []
    rng = random.Random(2)
    for i, size in enumerate([10, 5000, 300 * 1024]):
        wire, _ = make_message(rng, size, "drop%d" % i)
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
        assert c.cmd("RCPT TO:<%s>" % RCPT)[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(wire + b".\r\n")
        code, lines = c.reply()
        mm = re.match(r"^250 2\.0\.0 Ok: queued as (\S+) \(discarded\)$",
                      lines[-1])
        assert code == 250 and mm, lines
        ids.append(mm.group(1))
        m.wait_log(r" accepted id=%s size=\d+ rcpts=1 ms=\d+ stored=no$"
                   % re.escape(mm.group(1)))
    assert len(set(ids)) == 3
    # The session goes on as usual after a discarded message.
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("QUIT")[0] == 221
    assert m.stop() == 0
    # Nothing written: not even the Maildir was made.
    assert not m.maildir.exists(), list(m.maildir.rglob("*"))
    assert "group_commit" not in m.logpath.read_text()


def test_discard_with_smtplib_many_sessions(start_mxd):
    """Pipelined clients at once: every message answered, none kept."""
    m = start_mxd("-H", HOST, "-o", "delivery=discard")
    errors, counts = [], []

    def run():
        try:
            s = smtplib.SMTP("127.0.0.1", m.port, local_hostname=HELO,
                             timeout=60)
            s.ehlo()
            n = 0
            for _ in range(10):
                s.mail(SENDER)
                s.rcpt(RCPT)
                code, text = s.data(b"Subject: x\r\n\r\n" + b"y" * 900)
                assert code == 250 and text.endswith(b" (discarded)"), text
                n += 1
            s.quit()
            counts.append(n)
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert sum(counts) == 200
    assert len(re.findall(r" accepted id=\S+ .*stored=no$", m.logpath.read_text(),
                          re.M)) == 200
    assert m.stop() == 0
    assert not m.maildir.exists()


@pytest.mark.parametrize("syncfs", ["no", "yes"])
def test_kill9_mid_batch_loses_no_acknowledged_message(start_mxd, syncfs):
    """50 sessions send back to back, so that batches are in flight all
    the time; SIGKILL at a random moment.  Every message that got its
    250 is in new/ and byte-exact, and nothing partial is in new/."""
    m = start_mxd("-H", HOST, "-o", "commit_syncfs=" + syncfs)
    rng = random.Random(99)
    nsessions, per_session = 50, 40
    stored, work = make_work(rng, "k9", nsessions, per_session,
                             [500, 3000, 20000])
    results, errors = {}, []
    threads = start_sessions(m.port, work, results, errors)
    # Kill once some messages are acknowledged, while batches run.
    deadline = time.monotonic() + 60
    while len(results) < 100 and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(rng.uniform(0, 0.05))
    kill9(m)
    for t in threads:
        t.join(60)
        assert not t.is_alive()
    acked = dict(results)
    assert len(acked) >= 100, len(acked)
    # The kill came mid-run, while sessions were still sending.
    assert len(acked) < nsessions * per_session, len(acked)
    assert errors, "no session saw the kill"
    for qid, token in acked.items():
        f = file_for(m.maildir, qid)
        assert f is not None, "acknowledged %s is not in new/" % qid
        check_stored(f.read_bytes(), stored[token], qid)
    # Unacknowledged messages may be in new/ (the kill came between the
    # directory fsync and the 250), but only whole.
    for p in files(m.maildir, "new"):
        data = p.read_bytes()
        tok = re.search(rb"\nX-Token: (\S+)\n", data)
        assert tok, p.name
        check_stored(data, stored[tok.group(1).decode()])
    assert files(m.maildir, "cur") == []
