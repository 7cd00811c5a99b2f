"""Prometheus metrics (metrics_listen): the exposition format, read
strictly; every counter against real traffic (smtplib, STARTTLS, a
handshake that fails, refused recipients and messages), moved by exactly
what was done; the HTTP responder's answers to bad requests, its limits,
and that a slow or idle scraper never holds up SMTP.
"""

import json
import math
import re
import smtplib
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import quiet
from tlsutil import TLS_TOP, client_hello, read_to_end

METRICS = ["--metrics-listen", "127.0.0.1:0"]


def _version():
    import subprocess
    from conftest import BINARY
    out = subprocess.run([BINARY, "--version"], capture_output=True,
                         text=True, timeout=10).stdout
    m = re.fullmatch(r"mxd (\S+) \(mbedTLS (\d+)\.(\d+)\.(\d+)\)\n", out)
    assert m, out
    return m.group(1), tuple(int(x) for x in m.group(2, 3, 4))


VERSION, MBEDTLS_FULL = _version()
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# ---- the exposition, parsed strictly ---------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
SAMPLE = re.compile(r"^(%s)(?:\{(%s(?:,%s)*)?\})? (\S+)$" % (NAME, LABEL,
                                                           LABEL))
HELP = re.compile(r"^# HELP (%s) (.+)$" % NAME)
TYPE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$"
                  % NAME)


def family_of(name, types):
    """The family a sample belongs to: itself, or a histogram's."""
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and types.get(base) == "histogram":
            return base
    return None


def parse(text):
    """{(name, ((label, value), ...)): float}, or an AssertionError that
    names the first line that breaks text format 0.0.4."""
    assert text.endswith("\n"), "no newline at the end"
    types, helps, samples, done = {}, {}, {}, set()
    current = None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d: %r" % (n, line)
        if line.startswith("#"):
            m = HELP.match(line) or TYPE.match(line)
            assert m, "comment is neither HELP nor TYPE: " + where
            name = m.group(1)
            assert name not in done, "family comes back: " + where
            if line.startswith("# HELP"):
                assert name not in helps, "second HELP: " + where
                helps[name] = m.group(2)
            else:
                assert name not in types, "second TYPE: " + where
                assert name in helps, "TYPE before HELP: " + where
                types[name] = m.group(2)
            if current is not None and current != name:
                done.add(current)
            current = name
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample: " + where
        name = m.group(1)
        fam = family_of(name, types)
        assert fam is not None, "sample before its TYPE: " + where
        assert fam == current, "sample outside its family: " + where
        labels = tuple(re.findall(LABEL, m.group(2) or ""))
        assert len({k for k, _ in labels}) == len(labels), where
        value = float(m.group(m.lastindex))
        key = (name, labels)
        assert key not in samples, "series twice: " + where
        samples[key] = value
    for name, t in types.items():
        assert name.startswith("mxd_"), name
        if t == "counter":
            assert name.endswith("_total"), name
        if t == "histogram":
            check_histogram(name, samples)
    return samples


def check_histogram(name, samples):
    buckets = [(dict(k[1])["le"], v) for k, v in samples.items()
               if k[0] == name + "_bucket"]
    assert buckets and buckets[-1][0] == "+Inf", buckets
    les = [float(le) for le, _ in buckets]
    assert les == sorted(les) and len(set(les)) == len(les), les
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), "buckets not cumulative: %r" % buckets
    assert counts[-1] == samples[(name + "_count", ())], buckets
    assert samples[(name + "_sum", ())] >= 0


def url(m, path="/metrics"):
    return "http://%s:%d%s" % (m.metrics[0], m.metrics[1], path)


def scrape(m):
    with urllib.request.urlopen(url(m), timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == CONTENT_TYPE
        assert r.headers["Connection"] == "close"
        body = r.read()
        assert int(r.headers["Content-Length"]) == len(body)
    return parse(body.decode("utf-8"))


def v(samples, name, **labels):
    return samples[(name, tuple(labels.items()))]


def delta(before, after):
    """The series that moved, but the latency buckets and the
    scrape counter: {(name, labels): change}."""
    assert before.keys() == after.keys()
    return {k: after[k] - before[k] for k in after
            if after[k] != before[k] and
            k[0] != "mxd_delivery_duration_seconds_bucket"}


def series(name, **labels):
    return (name, tuple(labels.items()))


def moved_since(m, before):
    """Once every session has closed: (what moved since before but the
    scrapes' own counter, the scrape)."""
    assert wait_gauge(m, 0) == 0
    after = scrape(m)
    moved = delta(before, after)
    assert moved.pop(series("mxd_metrics_requests_total", code="200")) >= 1
    return moved, after


def wait_gauge(m, want, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        got = v(scrape(m), "mxd_sessions_active")
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def http(m, data, read_timeout=15):
    """Raw bytes to the metrics port: (status, headers, body) of the
    answer, read to EOF."""
    s = socket.create_connection(m.metrics, timeout=read_timeout)
    try:
        if data:
            s.sendall(data)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(l.split(": ", 1) for l in lines[1:])
    return status, headers, body


def greeted(m):
    """A RawClient past the 220 and EHLO."""
    c = m.client()
    c.expect(220)
    assert c.cmd("EHLO client.test")[0] == 250
    return c


def to_data(c, rcpt="b@example.test"):
    """MAIL, RCPT, DATA -> 354 on a greeted client."""
    assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
    assert c.cmd("RCPT TO:<%s>" % rcpt)[0] == 250
    assert c.cmd("DATA")[0] == 354


def trickle(m, request, pause, connected=None):
    """request to the metrics port an octet at a time, pause seconds
    apart; everything that comes back, read to EOF."""
    s = socket.create_connection(m.metrics, timeout=20)
    try:
        if connected is not None:
            connected.set()
        for b in request:
            s.sendall(bytes([b]))
            time.sleep(pause)
        data, how, _ = read_to_end(s, timeout=20)
        assert how == "eof", how
        return data
    finally:
        s.close()


# ---- start-up and configuration --------------------------------------------


def test_off_by_default(start_mxd):
    m = start_mxd()
    assert m.metrics is None
    assert "metrics" not in m.log().split(" start ", 1)[0]


def test_metrics_line_comes_before_listening(tmp_path):
    import subprocess
    from conftest import BINARY
    p = subprocess.Popen([BINARY, "--listen", "127.0.0.1:0", "-o",
                          "metrics_listen=127.0.0.1:0", "-m",
                          str(tmp_path / "mail")], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        first = p.stdout.readline().decode()
        second = p.stdout.readline().decode()
    finally:
        p.terminate()
        p.wait(10)
        p.stdout.close()
    assert re.fullmatch(r"metrics 127\.0\.0\.1:[1-9]\d*\n", first), first
    assert re.fullmatch(r"listening 127\.0\.0\.1:[1-9]\d*\n", second), second
    assert first.split(":")[1] != second.split(":")[1]


@pytest.mark.parametrize("value", ["localhost:9100", "127.0.0.1", "1.2.3:9",
                                   "127.0.0.1:65536", "127.0.0.1:9 tls=no"])
def test_bad_address_stops_start_up(tmp_path, value):
    import subprocess
    from conftest import BINARY
    r = subprocess.run([BINARY, "-o", "metrics_listen=" + value, "--check"],
                       cwd=tmp_path, capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1, r
    assert r.stderr.startswith("mxd: metrics_listen: '%s' is not ADDR:PORT"
                               % value), r.stderr


def test_port_in_use_stops_start_up(tmp_path):
    import subprocess
    from conftest import BINARY
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        r = subprocess.run([BINARY, "--listen", "127.0.0.1:0",
                            "--metrics-listen", "127.0.0.1:%d" % port, "-m",
                            str(tmp_path / "mail")], cwd=tmp_path,
                           capture_output=True, text=True, timeout=10)
    finally:
        busy.close()
    assert r.returncode == 1, r
    assert r.stdout == ""
    assert ("mxd: metrics_listen 127.0.0.1:%d: Address already in use" %
            port) in r.stderr, r.stderr


def test_empty_value_turns_it_off(start_mxd):
    m = start_mxd(config="metrics_listen = 127.0.0.1:0\n",
                  *["-o", "metrics_listen="])
    assert m.metrics is None


# ---- the exposition --------------------------------------------------------


def test_exposition_is_well_formed(start_mxd):
    m = start_mxd(*METRICS)
    s = scrape(m)
    families = {k[0] for k in s}
    for name in ("mxd_connections_total", "mxd_sessions_active",
                 "mxd_tls_handshakes_total",
                 "mxd_tls_handshake_failures_total",
                 "mxd_tls_sessions_total", "mxd_messages_accepted_total",
                 "mxd_messages_rejected_total", "mxd_received_bytes_total",
                 "mxd_recipients_accepted_total",
                 "mxd_recipients_rejected_total", "mxd_tls_fallback_total",
                 "mxd_proxy_errors_total", "mxd_pregreet_total",
                 "mxd_http_requests_total", "mxd_floods_total",
                 "mxd_rate_limited_total", "mxd_slow_data_total",
                 "mxd_faults_total", "mxd_metrics_requests_total",
                 "mxd_delivery_duration_seconds_bucket",
                 "mxd_delivery_duration_seconds_sum",
                 "mxd_delivery_duration_seconds_count", "mxd_build_info"):
        assert name in families, name
    # Nothing has happened: every counter and gauge is 0, but the
    # limit of sessions and the build's.
    assert all(val == 0 for k, val in s.items()
               if k[0] not in ("mxd_build_info", "mxd_sessions_limit")), s
    assert v(s, "mxd_sessions_limit") == 1000
    assert v(s, "mxd_build_info", version=VERSION,
             tls_library="mbedTLS %d.%d.%d" % MBEDTLS_FULL) == 1
    # Every label value is there from the start.
    classes = {dict(k[1])["class"] for k in s
               if k[0] == "mxd_tls_handshake_failures_total"}
    assert {"no_shared_cipher", "protocol_version", "not_tls", "timeout",
            "client_alert", "eof"} <= classes, classes
    reasons = {dict(k[1])["reason"] for k in s
               if k[0] == "mxd_messages_rejected_total"}
    assert {"too_big", "bare_newline", "no_recipients", "policy",
            "delivery_failed", "line_too_long"} <= reasons, reasons
    assert len([k for k in s if k[0] == "mxd_proxy_errors_total"]) >= 5
    les = [dict(k[1])["le"] for k in s
           if k[0] == "mxd_delivery_duration_seconds_bucket"]
    assert les[0] == "0.001" and "10" in les and les[-1] == "+Inf", les


def test_head_has_the_headers_and_no_body(start_mxd):
    m = start_mxd(*METRICS)
    req = urllib.request.Request(url(m), method="HEAD")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == CONTENT_TYPE
        assert int(r.headers["Content-Length"]) > 1000
        assert r.read() == b""
    # HTTP/1.0, a query string and LF-only line ends are fine too.
    status, headers, body = http(m, b"GET /metrics?x=1 HTTP/1.0\n\n")
    assert status == 200 and int(headers["Content-Length"]) == len(body)
    parse(body.decode())


# ---- counters against traffic ----------------------------------------------


def unverified():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


PLAIN = b"Subject: plain\r\n\r\nplaintext body\r\n"
TLSMSG = b"Subject: tls\r\n\r\nbody inside TLS\r\n..leading dot\r\n"


def test_counters_move_by_exactly_the_traffic(start_mxd):
    m = start_mxd(*METRICS, "-d", "example.test", "-o",
                  "max_message_size=2048", "-o", "tls_fallback_window=60")
    before = scrape(m)

    # 1. A plaintext message.
    with smtplib.SMTP(m.host, m.port, timeout=10) as s:
        assert s.sendmail("a@client.test", ["b@example.test"], PLAIN) == {}
    # 2. A message inside STARTTLS.
    with smtplib.SMTP(m.host, m.port, timeout=10) as s:
        s.starttls(context=unverified())
        assert s.sendmail("a@client.test", ["c@example.test",
                                            "d@example.test"], TLSMSG) == {}
    # 3. Refused recipients, then a DATA with none left, a body too
    # big and one with a bare LF, and a MAIL with SIZE= over the limit.
    c = greeted(m)
    assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
    assert c.cmd("RCPT TO:<x@elsewhere.test>")[0] == 550
    assert c.cmd("RCPT TO:<broken")[0] == 501
    assert c.cmd("DATA")[0] == 554
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("MAIL FROM:<a@client.test> SIZE=999999")[0] == 552
    to_data(c, "e@example.test")
    c.send(b"x" * 100 + b"\r\n")
    c.send((b"y" * 998 + b"\r\n") * 3)
    assert c.cmd(".")[0] == 552
    to_data(c, "e@example.test")
    assert c.cmd("bare\nnewline\r\n.")[0] == 550
    assert c.cmd("QUIT")[0] == 221
    c.close()
    # 4. A handshake that fails: the client offers one suite mxd
    # refuses (TLS_RSA_WITH_AES_128_CBC_SHA).
    c = greeted(m)
    assert c.cmd("STARTTLS")[0] == 220
    c.send(client_hello([0x002f]))
    data, how, _ = read_to_end(c.sock, timeout=8)
    assert how == "eof" and data[:1] == b"\x15", (how, data)
    c.close()
    m.wait_log(r" tls_failed .*class=no_shared_cipher")
    # 5. tls_fallback_window: the next connection is not offered
    # STARTTLS, and delivers in plaintext.
    with smtplib.SMTP(m.host, m.port, timeout=10) as s:
        s.ehlo("client.test")
        assert not s.has_extn("starttls")
        assert s.sendmail("a@client.test", ["f@example.test"], PLAIN) == {}

    moved, after = moved_since(m, before)
    assert moved == {
        series("mxd_connections_total"): 5,
        series("mxd_tls_handshakes_total", result="ok"): 1,
        series("mxd_tls_handshakes_total", result="failed"): 1,
        series("mxd_tls_handshake_failures_total",
               **{"class": "no_shared_cipher"}): 1,
        series("mxd_tls_sessions_total", version=TLS_TOP): 1,
        series("mxd_messages_accepted_total"): 3,
        # smtplib stuffs the leading dot, mxd takes it off again.
        series("mxd_received_bytes_total"): 2 * len(PLAIN) + len(TLSMSG),
        series("mxd_recipients_accepted_total"): 6,
        series("mxd_recipients_rejected_total", reason="relay_denied"): 1,
        series("mxd_recipients_rejected_total", reason="protocol"): 1,
        series("mxd_messages_rejected_total", reason="no_recipients"): 1,
        series("mxd_messages_rejected_total", reason="size_declared"): 1,
        series("mxd_messages_rejected_total", reason="too_big"): 1,
        series("mxd_messages_rejected_total", reason="bare_newline"): 1,
        series("mxd_tls_fallback_total", event="noted"): 1,
        series("mxd_tls_fallback_total", event="used"): 1,
        series("mxd_delivery_duration_seconds_count"): 3,
        series("mxd_delivery_duration_seconds_sum"):
            moved[series("mxd_delivery_duration_seconds_sum")],
    }, moved
    lat = moved[series("mxd_delivery_duration_seconds_sum")]
    assert 0 < lat < 10, lat
    inf = series("mxd_delivery_duration_seconds_bucket", le="+Inf")
    assert after[inf] - before[inf] == 3


def test_pregreet_http_and_rate_counters(start_mxd):
    """Counters of the stop line: talk before the greeting, HTTP sent
    to the SMTP port, connections over max_connection_rate."""
    m = start_mxd(*METRICS, "-o", "greeting_delay=1", "-o",
                  "max_connection_rate=2")
    before = scrape(m)
    c = m.client()
    c.send("EHLO early.test\r\n")
    assert c.reply()[0] == 554
    c.close()
    c = m.client()
    c.send("GET / HTTP/1.1\r\n")
    assert c.closed()
    c.close()
    # The third connection in a minute from 127.0.0.1 is over the rate.
    c = m.client()
    assert c.reply()[0] == 421
    c.close()
    m.wait_log(r"refused=connection_rate")
    m.wait_log(r" disconnect reason=http_request ")
    moved, _ = moved_since(m, before)
    assert moved == {
        series("mxd_connections_total"): 3,
        series("mxd_pregreet_total"): 2,
        series("mxd_http_requests_total"): 1,
        series("mxd_rate_limited_total"): 1,
    }, moved


def test_fault_flood_and_slow_data_counters(start_mxd):
    m = start_mxd(*METRICS, "-o", "min_data_rate=1000000", "-o",
                  "idle_timeout=2", "-o", "max_message_size=1024",
                  "--fault", "rcpt ~ *@fault.test reply 451 4.3.0 Not now",
                  "--fault", "eom first 1 reply 554 5.7.1 No thanks")
    before = scrape(m)
    c = greeted(m)
    assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
    assert c.cmd("RCPT TO:<b@fault.test>")[0] == 451
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    assert c.cmd("refused by the eom fault\r\n.")[0] == 554
    # A body far over twice the size limit: a flood, 552, closed.
    to_data(c)
    c.send(b"z" * 500 + b"\r\n")
    c.send((b"z" * 500 + b"\r\n") * 6)
    assert c.reply()[0] == 552
    assert c.closed()
    c.close()
    # A body slower than min_data_rate: 421 once it is over.
    c = greeted(m)
    to_data(c)
    # Each line well within idle_timeout, but 2 s + 1 µs per octet is
    # over in all after two seconds and a bit.
    for _ in range(10):
        c.send(b"slow\r\n")
        if not quiet(c, 0.5):
            break
    assert c.reply()[0] == 421
    c.close()
    m.wait_log(r" slow_data ")
    moved, _ = moved_since(m, before)
    assert moved == {
        series("mxd_connections_total"): 2,
        series("mxd_faults_total"): 2,
        series("mxd_recipients_accepted_total"): 3,
        series("mxd_messages_rejected_total", reason="fault"): 1,
        series("mxd_messages_rejected_total", reason="flood"): 1,
        series("mxd_floods_total"): 1,
        series("mxd_slow_data_total"): 1,
    }, moved


# ---- the sessions gauge ----------------------------------------------------


def test_sessions_active_goes_up_and_down(start_mxd):
    m = start_mxd(*METRICS, "-o", "max_connections=7")
    assert v(scrape(m), "mxd_sessions_active") == 0
    assert v(scrape(m), "mxd_sessions_limit") == 7
    a = m.client()
    a.expect(220)
    b = m.client()
    b.expect(220)
    assert v(scrape(m), "mxd_sessions_active") == 2
    a.cmd("QUIT")
    a.close()
    assert wait_gauge(m, 1) == 1
    b.close()		# no QUIT: EOF
    assert wait_gauge(m, 0) == 0
    assert v(scrape(m), "mxd_connections_total") == 2


# ---- bad requests ----------------------------------------------------------


BAD = [
    # (request, status, extra header check)
    (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
     405, ("Allow", "GET, HEAD")),
    (b"DELETE /metrics HTTP/1.1\r\n\r\n", 405, ("Allow", "GET, HEAD")),
    (b"GET / HTTP/1.1\r\n\r\n", 404, None),
    (b"GET /metricsx HTTP/1.1\r\n\r\n", 404, None),
    (b"GET /metrics/ HTTP/1.1\r\n\r\n", 404, None),
    (b"garbage\r\n\r\n", 400, None),
    (b"GET /metrics HTTP/2.0\r\n\r\n", 400, None),
    (b"GET  /metrics HTTP/1.1\r\n\r\n", 400, None),
    (b"GET metrics HTTP/1.1\r\n\r\n", 400, None),
    (b"G\x00T /metrics HTTP/1.1\r\n\r\n", 400, None),
    (b"\x16\x03\x01\x00\x05hello\r\n\r\n", 400, None),
    (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 5000 + b"\r\n\r\n", 431, None),
]


@pytest.mark.parametrize("req,status,header", BAD,
                         ids=[str(i) for i in range(len(BAD))])
def test_bad_request_gets_its_status_and_serving_goes_on(start_mxd, req,
                                                         status, header):
    m = start_mxd(*METRICS)
    got, headers, body = http(m, req)
    assert got == status, (got, headers, body)
    assert headers["Connection"] == "close"
    assert int(headers["Content-Length"]) == len(body)
    assert body.decode().startswith("%d " % status), body
    if header:
        assert headers[header[0]] == header[1], headers
    m.wait_log(r" metrics_refused client=127\.0\.0\.1:\d+ listener=\S+ "
               r"status=%d reason=\w+$" % status)
    s = scrape(m)
    assert v(s, "mxd_metrics_requests_total", code=str(status)) == 1
    assert v(s, "mxd_metrics_requests_total", code="200") == 0
    # And SMTP is untouched.
    c = m.client()
    c.expect(220)
    c.close()


def test_urllib_sees_the_errors(start_mxd):
    m = start_mxd(*METRICS)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url(m, "/nothing"), timeout=10)
    assert e.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url(m), data=b"x=1", timeout=10)
    assert e.value.code == 405
    scrape(m)


def test_request_timeout_is_408(start_mxd):
    m = start_mxd(*METRICS)
    start = time.monotonic()
    status, headers, body = http(m, b"GET /metrics HTTP/1.1\r\n", 30)
    took = time.monotonic() - start
    assert status == 408, (status, body)
    assert 9 <= took <= 20, took
    m.wait_log(r" metrics_refused .* status=408 reason=timeout$")


# ---- limits, and SMTP goes on ----------------------------------------------


def test_idle_and_slow_scrapers_do_not_block_smtp(start_mxd):
    # The cap is per worker process: one worker, so one cap.
    m = start_mxd(*METRICS, "--workers", "1")
    # Fifteen scrapers that connect and say nothing, and one that
    # trickles its request an octet at a time, fill the cap of 16.
    idle = [socket.create_connection(m.metrics, timeout=10)
            for _ in range(15)]
    done = {}
    started = threading.Event()

    def slow():
        try:
            done["reply"] = trickle(m, b"GET /metrics HTTP/1.1\r\n\r\n",
                                    0.1, started)
        except (OSError, AssertionError) as e:
            done["error"] = e
    t = threading.Thread(target=slow)
    t.start()
    assert started.wait(10)
    m.wait_log(r" start ")
    time.sleep(0.2)	# mxd has accepted the sixteen
    # The seventeenth gets a 503 at once (counted, logged), not a wait.
    status, headers, body = http(m, b"")
    assert status == 503 and headers["Retry-After"] == "1", headers
    assert body == b"503 Service Unavailable\n"
    m.wait_log(r" metrics_refused client=127\.0\.0\.1:\d+ listener=\S+ "
               r"status=503 reason=too_many_connections$")
    # Meanwhile SMTP answers at once, and delivers.
    start = time.monotonic()
    with smtplib.SMTP(m.host, m.port, timeout=10) as s:
        assert s.sendmail("a@client.test", ["b@example.test"], PLAIN) == {}
    # (A loop held up by the scrapers would wait for their 10 s.)
    assert time.monotonic() - start < 5
    t.join(30)
    # The trickled request was served in full.
    assert done.get("reply", b"").startswith(b"HTTP/1.1 200 OK\r\n"), done
    parse(done["reply"].split(b"\r\n\r\n", 1)[1].decode())
    for s in idle:
        s.close()
    # With the idle ones gone, scrapes are served again (once mxd has
    # seen them go: until then, more 503s).
    deadline = time.monotonic() + 10
    busy = 1
    while True:
        try:
            s = scrape(m)
            break
        except urllib.error.HTTPError as e:
            assert e.code == 503 and time.monotonic() < deadline, e
            busy += 1
            time.sleep(0.1)
    assert v(s, "mxd_metrics_requests_total", code="503") == busy
    assert v(s, "mxd_messages_accepted_total") == 1


def test_trickled_request_is_served(start_mxd):
    m = start_mxd(*METRICS)
    got = trickle(m, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 0)
    assert got.startswith(b"HTTP/1.1 200 OK\r\n"), got[:100]
    parse(got.split(b"\r\n\r\n", 1)[1].decode())


def test_scraper_that_never_closes_is_let_go(start_mxd):
    """A scraper that sends its request, then neither reads nor closes:
    mxd writes the response, shuts its side, waits the 2 s linger and
    closes; SMTP is served all the while."""
    m = start_mxd(*METRICS)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.connect(m.metrics)
    s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
    start = time.monotonic()
    with smtplib.SMTP(m.host, m.port, timeout=10) as c:
        assert c.noop()[0] == 250
    assert time.monotonic() - start < 5
    time.sleep(3)
    data, how, _ = read_to_end(s, timeout=5)
    s.close()
    assert how == "eof", how
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    head, body = data.split(b"\r\n\r\n", 1)
    assert b"Content-Length: %d\r\n" % len(body) in head
    parse(body.decode())


# ---- JSON logs -------------------------------------------------------------


def test_json_log_lines_parse_and_have_their_fields(start_mxd):
    m = start_mxd(*METRICS, "-o", "log_format=json")
    with smtplib.SMTP(m.host, m.port, timeout=10) as s:
        s.starttls(context=unverified())
        assert s.sendmail("a@client.test", ["b@example.test"], PLAIN) == {}
    http(m, b"nonsense\r\n\r\n")
    text = m.wait_log(r'"event":"metrics_refused"')
    m.wait_log(r'"event":"disconnect"')
    text = m.log()
    lines = [json.loads(x) for x in text.splitlines()]
    for e in lines:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",
                            e["ts"]), e
        assert e["level"] in ("error", "warn", "info", "debug"), e
        assert isinstance(e["session"], str) and e["event"], e
    by = {e["event"]: e for e in lines}
    assert by["tls"]["version"] == TLS_TOP, by["tls"]
    assert by["accepted"]["size"] == len(PLAIN), by["accepted"]
    assert isinstance(by["accepted"]["ms"], int)
    assert by["metrics_refused"]["status"] == 400
    assert by["metrics_refused"]["session"] == "-"
    assert by["metrics_refused"]["client"].startswith("127.0.0.1:")
    assert not math.isnan(by["disconnect"]["bytes_in"])


# ---- LMTP delivery: the mailbox server's verdicts ---------------------------


def test_lmtp_verdicts_are_counted(start_mxd, tmp_path):
    """A real Dovecot (test_lmtp.py's) refuses an unknown user with its
    5xx: mailbox_rejected; an LMTP socket that is not there:
    mailbox_unavailable.  Both still end with a delivery latency."""
    from test_lmtp import Dovecot, message, send, send_expect
    d = Dovecot(tmp_path / "dovecot")
    try:
        m = start_mxd(*METRICS, config="hostname = mx.test\ndelivery = "
                      "lmtp:127.0.0.1:%d\n" % d.port)
        before = scrape(m)
        code, line = send_expect(m, ["nobody@example.org"],
                                 message(b"hi\r\n"))
        assert code == 550, line
        msg = message(b"for alice\r\n")
        assert send(m, ["alice@example.org"], msg) == {}
        moved, _ = moved_since(m, before)
    finally:
        d.stop()
        d.remove()
    assert moved == {
        series("mxd_connections_total"): 2,
        series("mxd_recipients_accepted_total"): 2,
        series("mxd_messages_rejected_total", reason="mailbox_rejected"): 1,
        series("mxd_messages_accepted_total"): 1,
        series("mxd_received_bytes_total"): len(msg),
        series("mxd_delivery_duration_seconds_count"): 2,
        series("mxd_delivery_duration_seconds_sum"):
            moved[series("mxd_delivery_duration_seconds_sum")],
    }, moved

    m = start_mxd(*METRICS, config="hostname = mx.test\ndelivery = "
                  "lmtp:unix:%s\n" % (tmp_path / "no-such.sock"))
    before = scrape(m)
    code, line = send_expect(m, ["alice@example.org"], message(b"x\r\n"))
    assert code == 451 and line.startswith("451 4.4.1 "), line
    moved, _ = moved_since(m, before)
    assert moved[series("mxd_messages_rejected_total",
                        reason="mailbox_unavailable")] == 1, moved
    assert series("mxd_messages_accepted_total") not in moved


# ---- PROXY protocol: refusals and health checks -----------------------------


def test_proxy_refusals_and_health_checks(start_mxd):
    """The reasons of test_proxy.py's refusals, one of each, and a
    balancer's health check, which is no client connection."""
    from test_proxy import SIG, closed_silently, raw, v1, v2, v2_tcp4
    m = start_mxd(*METRICS, config="listen = 127.0.0.1:0 proxy=any\n"
                  "proxy_trusted = 127.0.0.0/8\nproxy_timeout = 1s\n")
    before = scrape(m)
    closed_silently(raw(m, b"PROXY TCP4 192.0.2.777 127.0.0.1 1 2\r\n"))
    early = raw(m, SIG[:7])
    early.sock.shutdown(socket.SHUT_WR)
    closed_silently(early)
    closed_silently(raw(m), timeout=10)		# proxy_timeout
    check = raw(m, v2(0, 0x00, b""))
    check.expect(220)
    check.cmd("QUIT")
    for header in (v2_tcp4("192.0.2.7", "127.0.0.1", 40040, 25),
                   v1("TCP4", "192.0.2.8", "127.0.0.1", 40041, 25)):
        c = raw(m, header)
        c.expect(220)
        c.cmd("QUIT")
        c.close()
    m.wait_log(r"(?s)( proxy level=warn msg=.*){3}")
    moved, _ = moved_since(m, before)
    assert moved == {
        series("mxd_proxy_errors_total", reason="bad_header"): 1,
        series("mxd_proxy_errors_total", reason="eof"): 1,
        series("mxd_proxy_errors_total", reason="timeout"): 1,
        series("mxd_proxy_health_checks_total"): 1,
        series("mxd_connections_total"): 2,
    }, moved

    m = start_mxd(*METRICS, config="listen = 127.0.0.1:0 proxy=v2\n"
                  "proxy_trusted = 10.0.0.0/8\n")
    closed_silently(raw(m, v2_tcp4("192.0.2.7", "127.0.0.1", 1, 25)))
    m.wait_log(r" proxy level=warn msg=\"untrusted peer")
    s = scrape(m)
    assert v(s, "mxd_proxy_errors_total", reason="untrusted") == 1
    assert v(s, "mxd_connections_total") == 0
