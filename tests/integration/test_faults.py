"""Fault injection (docs/harness.md, "Faults"): real clients meet each
fault and see what they should.

smtplib and swaks get the replies; Python's ssl and openssl s_client
get the alerts, the closes, the garbage and the bad certificates; a
client with opportunistic TLS falls back to plaintext on a second
connection when the first handshake fails.  Every fault is also in the
log, as a "fault" line naming its rule.
"""

import json
import shutil
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import BINARY
from tlsutil import (HOST, MBEDTLS, TlsMxd, logfields, stop_all,
                     tls_failed_line)

MSG = b"Subject: fault test\r\n\r\nhello\r\n"


@pytest.fixture
def harness(tmp_path):
    """harness(*faults, args=()) -> TlsMxd capturing into m.capture."""
    started = []

    def start(*faults, args=()):
        wd = tmp_path / ("mxd%d" % len(started))
        a = ["-H", HOST, "--capture", str(wd / "cap")]
        for f in faults:
            a += ["--fault", f]
        m = TlsMxd(wd, a + list(args))
        m.capture = wd / "cap"
        started.append(m)
        return m

    yield start
    stop_all(started)


def captured(m):
    """The JSON of each captured message, oldest first."""
    if not m.capture.is_dir():
        return []
    out = [json.loads(p.read_text()) for p in m.capture.glob("*.json")]
    return sorted(out, key=lambda j: (j["connection"]["number"], j["id"]))


def fault_lines(m, at=None):
    lines = [logfields(l) for l in m.log().splitlines()
             if l.split(" ")[2:3] == ["fault"]]
    return [f for f in lines if at is None or f["at"] == at]


def smtp(m, timeout=10):
    s = smtplib.SMTP(m.host, m.port, timeout=timeout)
    s._host = HOST          # the name starttls() sends as SNI
    return s


def client_ctx(m, cafile=None, max_tls12=False):
    ctx = ssl.create_default_context(cafile=cafile or m.cert)
    if max_tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


# ---- SMTP replies ------------------------------------------------------------


def test_rcpt_pattern_reply(harness):
    """rcpt ~ PATTERN: only matching addresses (without case) get it."""
    m = harness("rcpt ~ *@bounce.test reply 550 5.1.1 No such user")
    s = smtp(m)
    s.ehlo("client.test")
    s.mail("a@client.test")
    assert s.rcpt("x@BOUNCE.test") == (550, b"5.1.1 No such user")
    assert s.rcpt("y@ok.test")[0] == 250
    s.data(MSG)
    s.quit()
    msgs = captured(m)
    assert [j["rcpt_to"] for j in msgs] == [["y@ok.test"]]
    (f,) = fault_lines(m)
    assert f["at"] == "rcpt" and f["conn"] == "1"
    assert f["rule"] == "rcpt ~ *@bounce.test reply 550 5.1.1 No such user"


def test_mail_first_n_counts_across_connections(harness):
    """Greylisting: the first two MAILs get 451, whichever connection."""
    m = harness("mail first 2 reply 451 4.7.1 Greylisted, try again")
    got = []
    for _ in range(3):
        s = smtp(m)
        s.ehlo("client.test")
        got.append(s.mail("a@client.test"))
        s.quit()
    assert got == [(451, b"4.7.1 Greylisted, try again")] * 2 + \
        [(250, b"2.1.0 Ok")]
    assert [f["conn"] for f in fault_lines(m, "mail")] == ["1", "2"]


def test_eom_every_nth_stores_nothing(harness):
    """eom every 2: the 2nd and 4th messages are refused and not kept."""
    m = harness("eom every 2 reply 452 4.3.1 Insufficient system storage")
    s = smtp(m)
    s.ehlo("client.test")
    replies = []
    for i in range(4):
        s.mail("a@client.test")
        s.rcpt("b@ok.test")
        replies.append(s.data(b"Subject: m%d\r\n\r\nx\r\n" % i)[0])
    s.quit()
    assert replies == [250, 452, 250, 452]
    subjects = [(m.capture / (j["id"] + ".eml")).read_bytes().split(
        b"\r\n")[0] for j in captured(m)]
    assert subjects == [b"Subject: m0", b"Subject: m2"]


def test_data_reply_and_swaks(harness):
    """swaks reports the reply of a refused DATA."""
    if shutil.which("swaks") is None:
        pytest.fail("swaks is not installed (scripts/setup-debian --tests)")
    m = harness("data reply 554 5.7.1 Not today")
    r = subprocess.run(
        ["swaks", "--server", "%s:%d" % (m.host, m.port), "--from",
         "a@client.test", "--to", "b@ok.test", "--helo", "client.test",
         "--timeout", "10"], capture_output=True, text=True, timeout=30)
    assert "<** 554 5.7.1 Not today" in r.stdout, r.stdout
    assert r.returncode != 0
    assert captured(m) == []


def test_bdat_reply_reads_the_chunk(harness):
    """A refused BDAT's chunk is still read: the session goes on."""
    m = harness("bdat reply 552 5.3.4 Too big for a test")
    c = m.client()
    c.expect(220)
    c.cmd("EHLO client.test")
    assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
    assert c.cmd("RCPT TO:<b@ok.test>")[0] == 250
    # The chunk looks like a command: it must be read as data.
    c.send("BDAT 9 LAST\r\nNOOP\r\nabc")
    assert c.reply() == (552, ["552 5.3.4 Too big for a test"])
    assert c.cmd("NOOP") == (250, ["250 2.0.0 Ok"])
    assert c.cmd("QUIT")[0] == 221
    assert captured(m) == []


def test_ehlo_pattern_and_helo(harness):
    m = harness("ehlo ~ *.bad.test reply 550 5.7.1 Go away",
                "helo reply 502 5.5.1 Use EHLO")
    c = m.client()
    c.expect(220)
    assert c.cmd("EHLO x.BAD.test") == (550, ["550 5.7.1 Go away"])
    assert c.cmd("HELO x.ok.test") == (502, ["502 5.5.1 Use EHLO"])
    assert c.cmd("EHLO x.ok.test")[0] == 250
    c.close()


def test_connection_range(harness):
    """conn 2-3: connections 1 and 4 are untouched."""
    m = harness("conn 2-3 noop reply 250 2.0.0 faulted")
    got = []
    for _ in range(4):
        c = m.client()
        c.expect(220)
        got.append(c.cmd("NOOP")[1][0])
        c.close()
    assert got == ["250 2.0.0 Ok", "250 2.0.0 faulted", "250 2.0.0 faulted",
                   "250 2.0.0 Ok"]


def test_rset_vrfy_quit(harness):
    m = harness("rset reply 451 4.3.0 No reset", "vrfy reply 252 2.1.5 "
                "Try it", "quit reply 221 2.0.0 Not really")
    c = m.client()
    c.expect(220)
    assert c.cmd("RSET") == (451, ["451 4.3.0 No reset"])
    assert c.cmd("VRFY someone") == (252, ["252 2.1.5 Try it"])
    # The reply stands in for QUIT: the session is still open.
    assert c.cmd("QUIT") == (221, ["221 2.0.0 Not really"])
    assert c.cmd("NOOP")[0] == 250
    c.close()


def test_greeting_421_closes(harness):
    m = harness("conn 1 greeting reply 421 4.3.2 Not now")
    with pytest.raises(smtplib.SMTPConnectError) as e:
        smtp(m)
    assert e.value.smtp_code == 421
    # Connection 2 is greeted as usual.
    s = smtp(m)
    s.quit()


def test_greeting_554_leaves_only_quit(harness):
    m = harness("greeting reply 554 5.3.2 No service for you")
    c = m.client()
    assert c.reply() == (554, ["554 5.3.2 No service for you"])
    assert c.cmd("EHLO client.test")[0] == 503
    assert c.cmd("MAIL FROM:<a@client.test>")[0] == 503
    assert c.cmd("QUIT")[0] == 221
    assert c.closed()


def test_delays_hold_one_session_only(harness):
    """greeting, data and eom delays; other sessions are served meanwhile."""
    m = harness("conn 1 greeting delay 1s", "conn 1 data delay 1s",
                "conn 1 eom delay 1s")
    t0 = time.monotonic()
    c = m.client()
    # Connection 2 is served in full while 1 waits for its greeting.
    s = smtp(m)
    s.sendmail("a@client.test", ["b@ok.test"], MSG)
    s.quit()
    assert time.monotonic() - t0 < 0.9
    c.expect(220)
    assert time.monotonic() - t0 >= 0.95
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<a@client.test>")
    c.cmd("RCPT TO:<b@ok.test>")
    t1 = time.monotonic()
    assert c.cmd("DATA")[0] == 354
    t2 = time.monotonic()
    c.send(MSG + b".\r\n")
    assert c.reply()[0] == 250
    t3 = time.monotonic()
    assert t2 - t1 >= 0.95 and t3 - t2 >= 0.95, (t2 - t1, t3 - t2)
    c.close()
    assert len(captured(m)) == 2
    assert sorted(f["at"] for f in fault_lines(m)) == ["data", "eom",
                                                       "greeting"]


def test_disconnects(harness):
    """rcpt disconnect: no reply, closed; eom disconnect: nothing kept."""
    m = harness("rcpt ~ *@drop.test disconnect", "conn 2 eom disconnect",
                "conn 3 greeting disconnect")
    s = smtp(m)
    s.ehlo("client.test")
    s.mail("a@client.test")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        s.rcpt("x@drop.test")
    c = m.client()
    c.expect(220)
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<a@client.test>")
    c.cmd("RCPT TO:<b@ok.test>")
    c.cmd("DATA")
    c.send(MSG + b".\r\n")
    assert c.closed() and c.buf == b""
    c = m.client()
    assert c.closed() and c.buf == b""
    assert captured(m) == []
    m.wait_log(r"disconnect reason=fault .*\n(.*\n)*.*disconnect "
               r"reason=fault .*\n(.*\n)*.*disconnect reason=fault")


# ---- STARTTLS ----------------------------------------------------------------


def test_starttls_hide(harness):
    m = harness("conn 1 starttls hide")
    s = smtp(m)
    s.ehlo("client.test")
    assert not s.has_extn("starttls")
    with pytest.raises(smtplib.SMTPNotSupportedError):
        s.starttls()
    assert s.docmd("STARTTLS")[0] == 454
    s.quit()
    s = smtp(m)
    s.ehlo("client.test")
    assert s.has_extn("starttls")
    s.starttls(context=client_ctx(m))
    s.quit()
    assert [f["at"] for f in fault_lines(m)] == ["starttls"]


@pytest.mark.parametrize("code,text", [
    (454, "4.7.0 TLS not available now"),
    (502, "5.5.1 Not implemented after all"),
])
def test_starttls_refused_while_advertised(harness, code, text):
    m = harness("starttls reply %d %s" % (code, text))
    s = smtp(m)
    s.ehlo("client.test")
    assert s.has_extn("starttls")
    with pytest.raises(smtplib.SMTPResponseException) as e:
        s.starttls(context=client_ctx(m))
    assert (e.value.smtp_code, e.value.smtp_error) == (code, text.encode())
    # Still a plaintext session that delivers.
    s.sendmail("a@client.test", ["b@ok.test"], MSG)
    s.quit()
    assert captured(m)[0]["tls"] is None


# ---- TLS handshake -----------------------------------------------------------

ALERT_REASONS = {
    "handshake_failure": "SSLV3_ALERT_HANDSHAKE_FAILURE",
    "protocol_version": "TLSV1_ALERT_PROTOCOL_VERSION",
    "internal_error": "TLSV1_ALERT_INTERNAL_ERROR",
    "access_denied": "TLSV1_ALERT_ACCESS_DENIED",
    "insufficient_security": "TLSV1_ALERT_INSUFFICIENT_SECURITY",
}


@pytest.mark.parametrize("step", ["", " on client_hello",
                                  " after server_hello"])
@pytest.mark.parametrize("alert", sorted(ALERT_REASONS))
def test_alert_python_ssl(harness, alert, step):
    """Python's ssl raises exactly the alert, at either step.

    After server_hello the client is held to TLS 1.2: mbedTLS 3.6 sends
    a TLS 1.3 alert at that point under keys the client has left behind
    (docs/harness.md, "Limits")."""
    m = harness("tls alert %s%s" % (alert, step))
    s = smtp(m)
    s.ehlo("client.test")
    with pytest.raises(ssl.SSLError) as e:
        s.starttls(context=client_ctx(m, max_tls12=bool(step.strip()
                                                         .startswith("after"))))
    assert e.value.reason == ALERT_REASONS[alert], e.value
    s.close()
    f = logfields(tls_failed_line(m))
    assert f["class"] == "injected"
    assert f["alert_sent"].startswith(alert + "(")
    assert f["step"] == ("server_hello" if "after" in step
                         else "client_hello")


def test_alert_openssl_s_client(harness):
    m = harness("tls alert handshake_failure")
    r = subprocess.run(
        ["openssl", "s_client", "-starttls", "smtp", "-connect",
         "%s:%d" % (m.host, m.port), "-servername", HOST],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=30)
    out = r.stdout + r.stderr
    assert "alert handshake failure" in out and "alert number 40" in out, out
    assert r.returncode != 0


def test_close_on_hello_and_after_server_hello(harness):
    m = harness("conn 1 tls close", "conn 2 tls close after server_hello")
    for _ in range(2):
        s = smtp(m)
        s.ehlo("client.test")
        with pytest.raises((ssl.SSLZeroReturnError, ssl.SSLEOFError,
                            ConnectionResetError)):
            s.starttls(context=client_ctx(m, max_tls12=True))
        s.close()
    m.wait_log(r"conn=2 .*\n(.*\n)*.* tls_failed ")
    failed = [logfields(l) for l in m.log().splitlines()
              if " tls_failed " in l]
    assert [(f["class"], f["alert_sent"], f["step"]) for f in failed] == [
        ("injected", "none", "client_hello"),
        ("injected", "none", "server_hello")]


def test_close_after_handshake(harness):
    m = harness("tls close after handshake")
    s = smtp(m)
    s.ehlo("client.test")
    s.starttls(context=client_ctx(m))     # the handshake itself works
    with pytest.raises(smtplib.SMTPServerDisconnected):
        s.ehlo("client.test")
    m.wait_log(r" tls version=.*\n(.*\n)*.* disconnect reason=fault")


def test_garbage(harness):
    m = harness("tls garbage")
    s = smtp(m)
    s.ehlo("client.test")
    with pytest.raises(ssl.SSLError) as e:
        s.starttls(context=client_ctx(m))
    assert e.value.reason == "WRONG_VERSION_NUMBER", e.value


def test_stall_outlives_the_handshake_timeout(harness):
    """stall: no answer, no timeout, others served; EOF ends it."""
    m = harness("conn 1 tls stall", args=["-o", "tls_handshake_timeout=1s"])
    s = smtp(m, timeout=2.5)
    s.ehlo("client.test")
    t0 = time.monotonic()
    with pytest.raises((socket.timeout, TimeoutError)):
        s.starttls(context=client_ctx(m))
    assert time.monotonic() - t0 >= 2
    other = smtp(m)
    other.sendmail("a@client.test", ["b@ok.test"], MSG)
    other.quit()
    s.close()
    # Failed only when the client gave up (and closed), not at 1 s.
    f = logfields(tls_failed_line(m))
    assert f["class"] == "eof" and int(f["ms"]) >= 2000, f


@pytest.mark.parametrize("kind,complaint", [
    ("expired", "certificate has expired"),
    ("wrong_name", "Hostname mismatch"),
    ("untrusted", "unable to get local issuer certificate"),
])
def test_bad_certificates(harness, kind, complaint):
    """Each made certificate fails verification for its own reason,
    even with itself as the trust anchor; the usual one passes."""
    m = harness("conn 1 tls cert %s" % kind)
    made = m.workdir / ("mxd-fault-%s.crt" % kind)
    s = smtp(m)
    s.ehlo("client.test")
    with pytest.raises(ssl.SSLCertVerificationError) as e:
        s.starttls(context=client_ctx(m, cafile=str(made)))
    assert complaint in e.value.verify_message, e.value.verify_message
    s.close()
    s = smtp(m)         # connection 2: the real certificate
    s.ehlo("client.test")
    s.starttls(context=client_ctx(m))
    s.quit()


def test_max_version(harness):
    """max_version caps the version the server picks."""
    if MBEDTLS[0] >= 3:
        # 3.6 has nothing below 1.2: a 1.2 cap instead of 1.3.
        m = harness("tls max_version 1.2")
        s = smtp(m)
        s.ehlo("client.test")
        s.starttls(context=client_ctx(m))
        assert s.sock.version() == "TLSv1.2"
        s.quit()
        return
    m = harness("conn 1 tls max_version 1.1")
    # A client that speaks 1.2 and up only refuses the 1.1 server.
    s = smtp(m)
    s.ehlo("client.test")
    with pytest.raises(ssl.SSLError):
        s.starttls(context=client_ctx(m))
    s.close()
    m2 = harness("tls max_version 1.1")
    r = subprocess.run(
        ["openssl", "s_client", "-starttls", "smtp", "-connect",
         "%s:%d" % (m2.host, m2.port), "-servername", HOST, "-tls1_1",
         "-cipher", "DEFAULT:@SECLEVEL=0"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=30)
    assert "Protocol  : TLSv1.1" in r.stdout, r.stdout + r.stderr


# ---- the fallback scenario ---------------------------------------------------


def opportunistic_send(m, ctx, msg):
    """An MTA's opportunistic TLS: STARTTLS when offered; when the
    handshake fails, a new connection that stays in plaintext."""
    tried = []
    s = smtp(m)
    try:
        s.ehlo("client.test")
        if s.has_extn("starttls"):
            s.starttls(context=ctx)
            s.ehlo("client.test")
        s.sendmail("a@client.test", ["b@ok.test"], msg)
        s.quit()
        tried.append("tls")
        return tried
    except ssl.SSLError as e:
        tried.append(e.reason)
        s.close()
    s = smtp(m)
    s.ehlo("client.test")
    s.sendmail("a@client.test", ["b@ok.test"], msg)
    s.quit()
    tried.append("plain")
    return tried


def test_fallback_scenario(harness):
    """conn 1's handshake fails with an alert; the client's retry in
    plaintext, connection 2, delivers; a later delivery uses TLS."""
    m = harness("conn 1 tls alert handshake_failure")
    ctx = client_ctx(m)
    assert opportunistic_send(m, ctx, MSG) == [
        "SSLV3_ALERT_HANDSHAKE_FAILURE", "plain"]
    assert opportunistic_send(m, ctx, MSG) == ["tls"]
    msgs = captured(m)
    assert [(j["connection"]["number"], j["tls"] is None) for j in msgs] == [
        (2, True), (3, False)]
    (f,) = fault_lines(m)
    assert f["conn"] == "1" and f["at"] == "tls"


# ---- configuration -----------------------------------------------------------


def test_fault_section_in_file(tmp_path):
    conf = tmp_path / "mxd.conf"
    conf.write_text("hostname = mx.test\n"
                    "[fault]\n"
                    "rule = rcpt ~ *@bounce.test reply 550 5.1.1 No such user\n"
                    "rule = mail first 1 reply 451 4.7.1 Greylisted\n")
    m = TlsMxd(tmp_path / "w", ["-c", str(conf)])
    try:
        s = smtp(m)
        s.ehlo("client.test")
        assert s.mail("a@client.test")[0] == 451
        assert s.mail("a@client.test")[0] == 250
        assert s.rcpt("x@bounce.test")[0] == 550
        s.quit()
    finally:
        stop_all([m])


@pytest.mark.parametrize("how,why", [
    (["--fault", "rcpt reply 354 go ahead"], "expected 2xx, 4xx or 5xx"),
    (["--fault", "tls alert no_such_alert"], "alert: expected"),
    (["--fault", "conn 0 mail disconnect"], "conn:"),
    (["--fault", "tls alert handshake_failure", "-o", "tls=no"],
     "no listener offers STARTTLS"),
    ("[fault]\nrules = mail disconnect\n", "[fault]: unknown key rules"),
    ("[faults]\nrule = mail disconnect\n", "unknown section [faults]"),
])
def test_bad_rules_refused_at_start(tmp_path, how, why):
    args = [BINARY, "--check"]
    if isinstance(how, str):
        conf = tmp_path / "mxd.conf"
        conf.write_text(how)
        args += ["-c", str(conf)]
    else:
        args += how
    r = subprocess.run(args, capture_output=True, text=True, timeout=10,
                       cwd=tmp_path)
    assert r.returncode != 0
    assert why in r.stderr, r.stderr
