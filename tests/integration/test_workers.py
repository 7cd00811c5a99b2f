"""Worker processes, the supervisor, SIGHUP reload and the drain.

mxd runs a supervisor and `workers` processes that accept on the
listeners the supervisor bound (mxd.conf(5), WORKER PROCESSES AND
RELOAD).  What one connection does to the next must not depend on which
worker took it: the connection numbers of fault rules, the TLS fallback
memory, the per-address limits and max_connections live in a region all
workers share.  A worker that dies is restarted and its sessions' counts are
released; SIGHUP starts a new generation of workers with the re-read
configuration while the old one finishes its sessions; SIGTERM drains
every worker.
"""

import contextlib
import os
import re
import select
import signal
import smtplib
import socket
import ssl
import threading
import time
import urllib.request

import pytest

from conftest import RawClient, quiet
from tlsutil import HOST, TlsMxd, stop_all

SENDER = "alice@client.example"


def children(m):
    """The supervisor's child processes (its workers), as pids."""
    p = "/proc/%d/task/%d/children" % (m.proc.pid, m.proc.pid)
    with open(p) as f:
        return sorted(int(x) for x in f.read().split())


def wait_children(m, n, other_than=(), timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = children(m)
        if len(kids) == n and not set(kids) & set(other_than):
            return kids
        time.sleep(0.02)
    raise AssertionError("want %d workers (not %s), have %s\n%s" % (
        n, other_than, children(m), m.log()))


def session_pids(m):
    """sid -> pid of the worker, from the connect lines."""
    return {mm.group(1): int(mm.group(2)) for mm in re.finditer(
        r"^\S+ (\S+) connect client=\S+ listener=\S+ (?:\S+ )*pid=(\d+)$",
        m.log(), re.M)}


def greet(m):
    c = m.client()
    c.expect(220)
    return c


def ehlo(c, name="client.example"):
    c.send("EHLO %s\r\n" % name)
    return c.expect(250)


def into_data(c, rcpt):
    ehlo(c)
    assert c.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
    assert c.cmd("RCPT TO:<%s>" % rcpt)[0] == 250
    assert c.cmd("DATA")[0] == 354


@contextlib.contextmanager
def only(m, pid):
    """Only worker pid accepts meanwhile: the others are stopped
    (SIGSTOP), so that a test decides which worker serves what."""
    others = [k for k in children(m) if k != pid]
    for k in others:
        os.kill(k, signal.SIGSTOP)
    try:
        yield
    finally:
        for k in others:
            os.kill(k, signal.SIGCONT)


def sessions_on(m, kids, n):
    """n greeted sessions, held open, on each worker of kids."""
    held = []
    for pid in kids:
        with only(m, pid):
            held += [greet(m) for _ in range(n)]
    assert sorted(set(session_pids(m).values())) == sorted(kids)
    return held


def session(m):
    """A new session: (client, its first reply)."""
    c = m.client()
    return c, c.reply()


def greeted_soon(attempt, timeout=5):
    """True once attempt(), a new session as (client, first reply), is
    greeted with 220 within timeout: a count released takes a moment to
    be seen."""
    deadline = time.monotonic() + timeout
    while True:
        c, (code, _) = attempt()
        c.close()
        if code == 220:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def spread_sessions(m, n):
    """n sessions opened one by one (each greeted), held open."""
    held = []
    for _ in range(n):
        held.append(greet(m))
        time.sleep(0.01)
    return held


# ---- both workers serve -----------------------------------------------------


def test_sessions_are_served_by_every_worker(start_mxd):
    m = start_mxd("--workers", "2")
    kids = wait_children(m, 2)
    held = spread_sessions(m, 40)
    pids = set(session_pids(m).values())
    assert pids == set(kids), (pids, kids)
    # Every session works, whichever worker has it.
    for i, c in enumerate(held):
        ehlo(c)
        assert c.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
        assert c.cmd("RCPT TO:<r%d@example.test>" % i)[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send("Subject: %d\r\n\r\nbody %d\r\n.\r\n" % (i, i))
        assert c.reply()[0] == 250
        assert c.cmd("QUIT")[0] == 221
        c.close()
    assert len(m.wait_messages(40)) == 40
    # Session ids are unique across workers.
    assert len(session_pids(m)) == 40


def test_default_is_one_worker_per_cpu(start_mxd):
    m = start_mxd()
    assert len(wait_children(m, os.cpu_count())) == os.cpu_count()
    assert re.search(r" supervisor msg=\"pid %d, %d workers\"" % (
        m.proc.pid, os.cpu_count()), m.log()), m.log()


# ---- a worker dies ------------------------------------------------------------


def test_killed_workers_are_restarted_and_release_their_counts(start_mxd):
    m = start_mxd("--workers", "2", "-o", "max_connections_per_ip=2")
    old = wait_children(m, 2)
    held = [greet(m), greet(m)]
    # The limit holds while they live (the third is refused).
    c = m.client()
    assert c.reply()[0] == 421
    c.close()
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    for c in held:
        assert c.closed(), "session of a killed worker still open"
        c.close()
    new = wait_children(m, 2, other_than=old)
    for pid in old:
        assert re.search(r" worker_exit level=warn slot=\d+ pid=%d "
                         r"generation=1 "
                         r"signal=KILL msg=\"restarting in " % pid,
                         m.log()), m.log()
    # Their two sessions no longer count against 127.0.0.1.
    a, b = greet(m), greet(m)
    into_data(a, "r@example.test")
    a.send("Subject: after\r\n\r\nafter the kill\r\n.\r\n")
    assert a.reply()[0] == 250
    assert a.cmd("QUIT")[0] == 221
    assert len(m.wait_messages(1)) == 1
    a.close()
    b.close()
    assert set(children(m)) == set(new)


def test_a_crash_loop_restarts_at_most_once_a_second(start_mxd):
    m = start_mxd("--workers", "1")
    (first,) = wait_children(m, 1)
    os.kill(first, signal.SIGKILL)
    (second,) = wait_children(m, 1, other_than=[first])
    t0 = time.monotonic()
    os.kill(second, signal.SIGKILL)
    (third,) = wait_children(m, 1, other_than=[first, second])
    took = time.monotonic() - t0
    assert took >= 0.7, "restarted %.2fs after the last restart" % took
    c = greet(m)
    c.close()
    assert len(re.findall(r" worker_exit .*signal=KILL", m.log())) == 2


def running(pid):
    """Until it is reaped: a killed worker's zombie leader may still
    have threads that hold its descriptors."""
    return os.path.exists("/proc/%d" % pid)


def test_workers_die_with_the_supervisor(start_mxd):
    m = start_mxd("--workers", "2")
    kids = wait_children(m, 2)
    c = greet(m)
    m.proc.send_signal(signal.SIGKILL)
    assert m.proc.wait(10) == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while any(running(k) for k in kids):
        assert time.monotonic() < deadline, "a worker outlived it"
        time.sleep(0.02)
    assert c.closed()
    c.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((m.host, m.port), timeout=5).close()


# ---- shared state --------------------------------------------------------------


@pytest.fixture
def tls_mxd(tmp_path):
    started = []

    def start(*args):
        wd = tmp_path / ("mxd%d" % len(started))
        m = TlsMxd(wd, ["-H", HOST, "--workers", "2"] + list(args))
        started.append(m)
        return m

    yield start
    stop_all(started)


def smtp(m):
    s = smtplib.SMTP(m.host, m.port, timeout=10)
    s._host = HOST
    return s


def test_connection_number_rule_is_global(tls_mxd):
    """conn 1 fails its handshake, and only conn 1, whichever worker
    takes the later connections (with per-worker numbering each
    worker's first connection would fail)."""
    m = tls_mxd("--fault", "conn 1 tls alert handshake_failure")
    kids = wait_children(m, 2)
    ctx = ssl.create_default_context(cafile=m.cert)
    results = []
    for i in range(12):
        with only(m, kids[i // 2 % 2]):
            s = smtp(m)
            s.ehlo("client.test")
            try:
                s.starttls(context=ctx)
                s.ehlo("client.test")
                s.sendmail("a@client.test", ["b@ok.test"],
                           b"Subject: %d\r\n\r\nx\r\n" % i)
                s.quit()
                results.append("tls")
            except ssl.SSLError as e:
                results.append(e.reason)
                s.close()
    assert results == ["SSLV3_ALERT_HANDSHAKE_FAILURE"] + ["tls"] * 11
    # Connections 1-2 on one worker, 3-4 on the other, and so on.
    pids = [p for _, p in sorted(session_pids(m).items(),
                                 key=lambda kv: int(kv[0], 16))]
    assert pids == [kids[i // 2 % 2] for i in range(12)], (pids, kids)
    assert re.findall(r" fault at=tls conn=(\d+) ", m.log()) == ["1"]


def test_fallback_memory_is_shared(tls_mxd):
    """After conn 1's failed handshake, no worker offers STARTTLS to
    that address for tls_fallback_window."""
    m = tls_mxd("--fault", "conn 1 tls alert handshake_failure",
                "-o", "tls_fallback_window=60")
    kids = wait_children(m, 2)
    with only(m, kids[0]):
        s = smtp(m)
        s.ehlo("client.test")
        with pytest.raises(ssl.SSLError):
            s.starttls(context=ssl.create_default_context(cafile=m.cert))
        s.close()
    for i in range(10):
        with only(m, kids[(i + 1) % 2]):
            s = smtp(m)
            s.ehlo("client.test")
            assert not s.has_extn("starttls")
            s.quit()
    assert sorted(set(session_pids(m).values())) == kids, m.log()


def starttls_session(m, ctx, session=None):
    """A STARTTLS session; (its TLS session, whether it was resumed)."""
    c = greet(m)
    ehlo(c)
    assert c.cmd("STARTTLS")[0] == 220
    t = ctx.wrap_socket(c.sock, server_hostname=HOST, session=session)
    r = RawClient(t)
    r.send("EHLO client.example\r\n")
    r.expect(250)
    assert r.cmd("QUIT")[0] == 221
    out = (t.session, t.session_reused)
    t.close()
    return out


def test_tls_tickets_resume_on_every_worker(tls_mxd):
    """The workers of a generation share their ticket keys: a ticket
    from one resumes on the other."""
    m = tls_mxd()
    kids = wait_children(m, 2)
    ctx = ssl.create_default_context(cafile=m.cert)
    with only(m, kids[0]):
        sess, reused = starttls_session(m, ctx)
    assert not reused
    for i in range(6):
        with only(m, kids[(i + 1) % 2]):
            _, reused = starttls_session(m, ctx, sess)
        assert reused, "a ticket of worker %d on worker %d" % (
            kids[0], kids[(i + 1) % 2])
    assert sorted(set(session_pids(m).values())) == kids, m.log()
    # A reload makes new keys: the old ticket makes a full handshake.
    m.signal(signal.SIGHUP)
    m.wait_log(r" reload msg=")
    _, reused = starttls_session(m, ctx, sess)
    assert not reused


def test_max_connections_per_ip_is_global(start_mxd):
    m = start_mxd("--workers", "2", "-o", "max_connections_per_ip=8")
    held = sessions_on(m, wait_children(m, 2), 4)
    c = m.client()
    code, lines = c.reply()
    assert code == 421 and "4.7.0" in lines[-1], lines
    c.close()
    held.pop().close()
    m.wait_log(r"disconnect reason=\S+ ")
    assert greeted_soon(lambda: session(m))
    for c in held:
        c.close()


def test_max_connections_is_global(start_mxd):
    m = start_mxd("--workers", "2", "-o", "max_connections=6",
                  "-o", "max_connections_per_ip=0")
    held = sessions_on(m, wait_children(m, 2), 3)
    # The seventh waits in the backlog, unanswered...
    w = RawClient(socket.create_connection((m.host, m.port), timeout=10))
    w.sock.settimeout(1)
    with pytest.raises(socket.timeout):
        w.sock.recv(100)
    # ...until a session, of either worker, ends.
    held.pop(0).close()
    w.sock.settimeout(10)
    w.expect(220)
    w.close()
    for c in held:
        c.close()


# ---- SIGHUP ------------------------------------------------------------------


CONF = """hostname = {host}
domain = a.test
workers = 2
{extra}
"""


def write_conf(path, **kw):
    kw.setdefault("extra", "")
    tmp = str(path) + ".new"
    with open(tmp, "w") as f:
        f.write(CONF.format(**kw))
    os.replace(tmp, path)


def test_sighup_new_config_for_new_sessions_old_ones_finish(start_mxd):
    m = start_mxd(config=CONF.format(host="one.test", extra=""))
    conf = m.workdir / "mxd.conf"
    old = wait_children(m, 2)
    # A session mid-DATA, half its body sent, across the reload.
    d = greet(m)
    into_data(d, "x@a.test")
    body = b"".join(b"line %d of a message across a reload\r\n" % i
                    for i in range(2000))
    d.send(b"Subject: across\r\n\r\n" + body[:len(body) // 2])
    # And one between transactions, which must not get a 421.
    idle = greet(m)
    ehlo(idle)

    write_conf(conf, host="two.test", extra="domain = b.test\n"
               "max_recipients = 200")
    m.signal(signal.SIGHUP)
    m.wait_log(r" reload msg=")
    new = wait_children(m, 2 + len(set(old) & set(
        session_pids(m).values())), timeout=5)
    assert set(old) - set(new) or len(new) > 2
    # New sessions: the new name, the new domain.
    c = m.client()
    assert "two.test" in c.expect(220)[0]
    ehlo(c)
    assert c.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
    assert c.cmd("RCPT TO:<y@b.test>")[0] == 250
    assert c.cmd("RCPT TO:<y@a.test>")[0] == 250
    assert c.cmd("QUIT")[0] == 221
    c.close()
    # The old session finishes its message on the old worker.
    time.sleep(0.3)
    d.send(body[len(body) // 2:] + b".\r\n")
    code, lines = d.reply()
    assert code == 250, lines
    assert d.cmd("QUIT")[0] == 221
    d.close()
    # The idle one goes on too: a whole transaction, no 421.
    assert idle.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
    assert idle.cmd("RCPT TO:<z@a.test>")[0] == 250
    assert idle.cmd("QUIT")[0] == 221
    idle.close()
    (f,) = m.wait_messages(1)
    data = f.read_bytes()
    assert data.endswith(body.replace(b"\r\n", b"\n")), data[-200:]
    # The old workers are gone once their sessions are.
    wait_children(m, 2, other_than=old)
    assert len(re.findall(r" reload msg=", m.log())) == 1


def test_old_sessions_are_drained_shutdown_grace_after_a_reload(start_mxd):
    """An old worker's idle session may go on for shutdown_grace after
    the reload, then it is drained as on SIGTERM: 421, and the old
    worker exits."""
    m = start_mxd(config=CONF.format(host="one.test",
                                     extra="shutdown_grace = 2"))
    old = wait_children(m, 2)
    idle = greet(m)
    ehlo(idle)
    t0 = time.monotonic()
    m.signal(signal.SIGHUP)
    m.wait_log(r" reload msg=")
    assert quiet(idle, 1.0), "the old session was cut at once"
    assert idle.cmd("NOOP")[0] == 250
    code, lines = idle.reply()
    took = time.monotonic() - t0
    assert code == 421 and lines[-1].startswith("421 4.3.2"), lines
    assert 1.5 <= took <= 6, took
    assert idle.closed()
    idle.close()
    wait_children(m, 2, other_than=old)
    assert re.search(r" retire_over ", m.log()), m.log()


def test_sighup_with_a_bad_config_keeps_the_running_one(start_mxd):
    m = start_mxd(config=CONF.format(host="one.test", extra=""))
    conf = m.workdir / "mxd.conf"
    old = wait_children(m, 2)
    write_conf(conf, host="two.test", extra="max_recipients = lots")
    m.signal(signal.SIGHUP)
    text = m.wait_log(r" reload_failed ")
    assert re.search(r' reload_failed level=error msg="refused: '
                     r'\S+mxd\.conf:4: '
                     r'max_recipients: [^"]+; keeping the running config"',
                     text), text
    assert children(m) == old
    c = greet(m)
    ehlo(c)
    assert c.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
    assert c.cmd("RCPT TO:<x@a.test>")[0] == 250
    assert c.cmd("QUIT")[0] == 221
    c.close()
    assert " reload msg=" not in m.log()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sighup_adds_and_removes_listeners(start_mxd):
    m = start_mxd(config=CONF.format(host="one.test",
                                     extra="listen = 127.0.0.1:0"))
    conf = m.workdir / "mxd.conf"
    p = m.port
    gen1 = wait_children(m, 2)
    # A listener that cannot be bound: refused, nothing changes.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        write_conf(conf, host="two.test", extra="listen = 127.0.0.1:%d\n"
                   "listen = 127.0.0.1:%d" % (p, busy.getsockname()[1]))
        m.signal(signal.SIGHUP)
        text = m.wait_log(r" reload_failed ")
    assert re.search(r' reload_failed level=error msg="refused: listen '
                     r'127\.0\.0\.1:\d+: Address already in use; keeping '
                     r'the running config"', text), text
    assert children(m) == gen1
    # A new one next to the old: both serve, with the new config.
    q = free_port()
    write_conf(conf, host="two.test", extra="listen = 127.0.0.1:%d\n"
               "listen = 127.0.0.1:%d" % (p, q))
    m.signal(signal.SIGHUP)
    m.wait_log(r" reload msg=")
    gen2 = wait_children(m, 2, other_than=gen1)
    for port in (p, q):
        c = RawClient(socket.create_connection((m.host, port), timeout=10))
        assert "two.test" in c.expect(220)[0]
        c.close()
    # The old one dropped: closed once no generation uses it.
    write_conf(conf, host="three.test", extra="listen = 127.0.0.1:%d" % q)
    m.signal(signal.SIGHUP)
    wait_count = len(re.findall(r" reload msg=", m.log()))
    deadline = time.monotonic() + 10
    while wait_count < 2:
        assert time.monotonic() < deadline, m.log()
        time.sleep(0.02)
        wait_count = len(re.findall(r" reload msg=", m.log()))
    wait_children(m, 2, other_than=gen2)
    m.wait_log(r" listener_closed msg=127\.0\.0\.1:%d$" % p)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((m.host, p), timeout=5).close()
    c = RawClient(socket.create_connection((m.host, q), timeout=10))
    assert "three.test" in c.expect(220)[0]
    c.close()


# ---- SIGTERM drain -------------------------------------------------------------


def slow_sender(m, rcpt, seed, chunks, pause, out):
    """A session that sends a message in chunks, pause apart; out gets
    ("250", id, body) when it was acknowledged (the 421 follows), or
    ("421", None, None) when the drain cut it off."""
    body = b"Subject: drain %d\r\n\r\n" % seed + b"".join(
        b"%d line %d\r\n" % (seed, i) for i in range(chunks * 20))
    step = len(body) // chunks + 1
    acked = None
    try:
        c = greet(m)
        into_data(c, rcpt)
        for i in range(0, len(body) + 1, step):
            # A reply before the end: the drain cut this one off.
            if select.select([c.sock], [], [], 0)[0]:
                break
            last = i + step > len(body)
            c.send(body[i:i + step] + (b".\r\n" if last else b""))
            if not last:
                time.sleep(pause)
        code, lines = c.reply()
        if code == 250:
            acked = ("250", lines[-1].split()[-1], body)
            code, lines = c.reply()
        assert code == 421 and lines[-1].startswith("421 4.3.2"), lines
        assert c.closed()
        out.append(acked or ("421", None, None))
    except (BrokenPipeError, ConnectionResetError, EOFError) as e:
        out.append(("reset", repr(e), None))
    except Exception as e:     # noqa: BLE001 - reported by the test
        out.append(("error", repr(e), None))


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_50_sessions(start_mxd, workers):
    grace = 4
    m = start_mxd("--workers", str(workers), "-o", "shutdown_grace=%d" %
                  grace, "-o", "max_connections_per_ip=0",
                  "-o", "min_data_rate=0")
    wait_children(m, workers)
    idle, between = [], []
    for _ in range(15):
        c = greet(m)
        ehlo(c)
        idle.append(c)
    for i in range(10):
        c = greet(m)
        into_data(c, "b%d@example.test" % i)
        c.send("Subject: before\r\n\r\ndone before\r\n.\r\n")
        assert c.reply()[0] == 250
        between.append(c)
    results = {}
    threads = []
    # 20 that finish within the grace, 5 that cannot.
    for i in range(25):
        slow = i >= 20
        out = results.setdefault(i, [])
        t = threading.Thread(target=slow_sender, args=(
            m, "s%d@example.test" % i, i, 40 if slow else 10,
            0.5 if slow else 0.1, out))
        t.start()
        threads.append(t)
    deadline = time.monotonic() + 10
    while len(re.findall(r" rcpt to=<s\d+@", m.log())) < 25:
        assert time.monotonic() < deadline, m.log()
        time.sleep(0.02)
    time.sleep(0.2)
    t0 = time.monotonic()
    m.signal(signal.SIGTERM)
    for c in idle + between:
        code, lines = c.reply()
        assert code == 421 and lines[-1].startswith("421 4.3.2"), lines
        assert c.closed()
        c.close()
    rc = m.proc.wait(grace + 15)
    took = time.monotonic() - t0
    for t in threads:
        t.join(30)
    assert rc == 0
    assert took < grace + 5, "exit %.1fs after SIGTERM" % took
    acked = {}
    for i, out in results.items():
        assert len(out) == 1 and out[0][0] in ("250", "421"), (i, out)
        if out[0][0] == "250":
            acked[out[0][1]] = out[0][2]
    assert len(acked) >= 20, "only %d of 20 finished" % len(acked)
    stored = {}
    for f in m.messages():
        data = f.read_bytes()
        mm = re.search(rb"with ESMTP id (\S+)", data)
        stored[mm.group(1).decode()] = data
    assert len(stored) == 10 + len(acked)
    for mid, body in acked.items():
        assert stored[mid].endswith(body.replace(b"\r\n", b"\n")), mid
    assert m.messages("tmp") == []
    assert re.search(r" shutdown msg=\"draining 50 sessions", m.log()), \
        m.log()


# ---- with metrics, PROXY ---------------------------------------------------


def metric(m, name):
    """One unlabelled sample of a scrape of metrics_listen."""
    with urllib.request.urlopen("http://%s:%d/metrics" % m.metrics,
                                timeout=10) as r:
        text = r.read().decode()
    found = re.search(r"^%s (\S+)$" % name, text, re.M)
    assert found, text
    return float(found.group(1))


def test_metrics_sum_the_workers_and_the_limit_is_one_cap(start_mxd):
    m = start_mxd("--workers", "2", "--metrics-listen", "127.0.0.1:0",
                  "-o", "max_connections=50",
                  "-o", "max_connections_per_ip=0")
    kids = wait_children(m, 2)
    # Two sessions held open on each worker.
    held = sessions_on(m, kids, 2)
    # Whichever worker answers the scrape, it counts both.
    for pid in kids:
        with only(m, pid):
            assert metric(m, "mxd_sessions_active") == 4
            assert metric(m, "mxd_connections_total") == 4
            # max_connections is one cap for all: once, not per worker.
            assert metric(m, "mxd_sessions_limit") == 50
    # A worker killed: its sessions are gone from the gauge, what it
    # counted stays.
    os.kill(kids[0], signal.SIGKILL)
    wait_children(m, 2, other_than=[kids[0]])
    assert metric(m, "mxd_sessions_active") == 2
    assert metric(m, "mxd_connections_total") == 4
    assert metric(m, "mxd_sessions_limit") == 50
    for c in held:
        c.close()


def proxied_session(m, client):
    """A session behind a PROXY v1 header naming client: (code, reply)."""
    c = m.client()
    c.send("PROXY TCP4 %s 127.0.0.1 40000 25\r\n" % client)
    return c, c.reply()


def test_proxy_per_address_limit_is_global(start_mxd):
    """Behind a proxy every connection comes from the proxy: the limit
    counts the address in the header, over both workers."""
    m = start_mxd("--workers", "2", "-o", "proxy_protocol=v1",
                  "-o", "proxy_trusted=127.0.0.0/8",
                  "-o", "max_connections_per_ip=2")
    kids = wait_children(m, 2)
    held = []
    for pid in kids:
        with only(m, pid):
            c, (code, _) = proxied_session(m, "192.0.2.9")
            assert code == 220
            held.append(c)
    assert sorted(set(session_pids(m).values())) == sorted(kids)
    # The third from 192.0.2.9, on either worker, is one too many.
    for pid in kids:
        with only(m, pid):
            c, (code, lines) = proxied_session(m, "192.0.2.9")
            assert code == 421 and "4.7.0" in lines[-1], lines
            c.close()
    # Another client behind the same proxy is not.
    c, (code, _) = proxied_session(m, "192.0.2.10")
    assert code == 220
    c.close()
    assert len(re.findall(r" connect client=192\.0\.2\.9:40000 .* "
                          r"refused=too_many_connections_ip pid=\d+$",
                          m.log(), re.M)) == 2, m.log()
    # One ends: its count is released once, and one more gets in.
    held.pop().close()
    assert greeted_soon(lambda: proxied_session(m, "192.0.2.9"))
    for c in held:
        c.close()
