"""STARTTLS on the wire: the command, the session reset, pipelined
plaintext, and the failure path of RFC 3207 with RFC 5246 7.2.2 /
RFC 8446 6.2 (DESIGN.md, "The behaviour at the heart of it").

A failed handshake must put exactly one fatal alert record on the wire
(content type 21, body: level 2, the description), no SMTP reply, then
an orderly EOF (a FIN, not a reset), and log one tls_failed line.  The
ClientHellos here are built by hand so that each failure is exact; after
each failure a new plaintext connection must still work (or get 530 where
TLS is required).
"""

import os
import socket
import subprocess
import time

import pytest

from conftest import RawClient
from conftest import BINARY
from tlsutil import (TLS_TOP, TlsMxd, ALERTS, CT_ALERT, CT_HANDSHAKE, ECDHE_ECDSA_GCM,
                     ECDHE_RSA_GCM, HOST, alert_record, client_hello,
                     deliver_plain, ehlo_lines, handshake_types, logfields,
                     make_cert, parse_records, quiet, read_to_end, send_txn,
                     start_tls_mxd, stored, tls_context, tls_failed_line,
                     to_starttls, wrap)

assert start_tls_mxd  # the fixture, for pytest

MUST_STARTTLS = "530 5.7.0 Must issue a STARTTLS command first"


# ---- the command -----------------------------------------------------------


def test_print_cert_path_before_listening(start_tls_mxd):
    m = start_tls_mxd()
    assert m.stdout_lines[0].startswith("certificate "), m.stdout_lines
    assert m.stdout_lines[-1].startswith("listening "), m.stdout_lines
    path = m.cert
    assert os.path.isabs(path), path
    assert path == str((m.workdir / "mxd-selfsigned.crt").resolve())
    key = m.workdir / "mxd-selfsigned.key"
    assert key.exists()
    assert key.stat().st_mode & 0o077 == 0, oct(key.stat().st_mode)
    text = subprocess.run(["openssl", "x509", "-in", path, "-noout",
                           "-text"], capture_output=True, text=True,
                          check=True).stdout
    assert "id-ecPublicKey" in text and "prime256v1" in text, text
    assert "DNS:%s" % HOST in text, text


def test_ehlo_offers_starttls_and_220(start_tls_mxd):
    m = start_tls_mxd()
    c = m.client()
    c.expect(220)
    kw = ehlo_lines(c)
    assert "STARTTLS" in kw, kw
    code, lines = c.cmd("STARTTLS")
    assert lines == ["220 2.0.0 Ready to start TLS"]
    t = wrap(c, tls_context(m.cert))
    assert t.sock.version() == TLS_TOP
    t.close()
    if TLS_TOP == "TLSv1.2":
        m.wait_log(r" tls version=TLSv1\.2 cipher=TLS-ECDHE-ECDSA-WITH-\S+ "
                   r"sni=mx\.test ms=\d+$")
    else:
        m.wait_log(r" tls version=TLSv1\.3 cipher=TLS1-3-\S+ "
                   r"sni=mx\.test ms=\d+$")


def test_starttls_with_argument_is_501_and_session_goes_on(start_tls_mxd):
    m = start_tls_mxd()
    c = m.client()
    c.expect(220)
    ehlo_lines(c)
    code, lines = c.cmd("STARTTLS now")
    assert code == 501 and lines[-1].startswith("501 5.5.4 "), lines
    # Still plaintext, still offered, and STARTTLS still works.
    assert c.cmd("NOOP")[0] == 250
    assert "STARTTLS" in ehlo_lines(c)
    assert c.cmd("STARTTLS")[1] == ["220 2.0.0 Ready to start TLS"]
    t = wrap(c, tls_context(m.cert))
    assert "STARTTLS" not in ehlo_lines(t)
    t.close()


def test_starttls_inside_tls_is_503(start_tls_mxd):
    m = start_tls_mxd()
    t = wrap(to_starttls(m), tls_context(m.cert))
    ehlo_lines(t)
    assert t.cmd("STARTTLS")[1] == ["503 5.5.1 Error: TLS already active"]
    # The session survives the refusal.
    qid = send_txn(t, "after-503")
    assert b"with ESMTPS id %s" % qid.encode() in stored(m, "after-503")
    t.close()


def test_tls_no_is_454_and_not_advertised(start_tls_mxd):
    m = start_tls_mxd("-o", "tls=no")
    c = m.client()
    c.expect(220)
    assert "STARTTLS" not in ehlo_lines(c)
    assert c.cmd("STARTTLS")[1] == ["454 4.7.0 TLS not available"]
    # The plaintext session goes on.
    qid = send_txn(c, "no-tls")
    assert b"with ESMTP id %s" % qid.encode() in stored(m, "no-tls")
    c.close()


def test_listener_options_tls_no_and_require_tls(start_tls_mxd):
    m = start_tls_mxd("--listen", "127.0.0.1:0 tls=no",
                      "--listen", "127.0.0.1:0 require_tls=yes")
    assert len(m.listening) == 2
    plain = m.client_on(0)
    plain.expect(220)
    assert "STARTTLS" not in ehlo_lines(plain)
    assert plain.cmd("STARTTLS")[0] == 454
    send_txn(plain, "on-tls-no-listener")
    plain.close()

    req = m.client_on(1)
    req.expect(220)
    assert "STARTTLS" in ehlo_lines(req)
    assert req.cmd("MAIL FROM:<a@client.test>")[1] == [MUST_STARTTLS]
    assert req.cmd("STARTTLS")[0] == 220
    t = wrap(req, tls_context(m.cert))
    ehlo_lines(t)
    send_txn(t, "on-require-listener")
    t.close()
    assert b"with ESMTPS" in stored(m, "on-require-listener")
    assert b"with ESMTP id" in stored(m, "on-tls-no-listener")


def test_require_tls_allows_only_the_pre_tls_commands(start_tls_mxd):
    m = start_tls_mxd("-o", "require_tls=yes")
    c = m.client()
    c.expect(220)
    assert c.cmd("HELO client.test")[0] == 250
    assert "STARTTLS" in ehlo_lines(c)
    assert c.cmd("NOOP")[0] == 250
    assert c.cmd("RSET")[0] == 250
    for cmd in ("MAIL FROM:<a@client.test>", "RCPT TO:<b@dest.test>",
                "DATA", "VRFY postmaster", "HELP", "EXPN list"):
        code, lines = c.cmd(cmd)
        assert lines == [MUST_STARTTLS], (cmd, lines)
    assert c.cmd("QUIT")[0] == 221
    assert c.closed()
    c.close()

    # Over TLS the same commands work.
    t = wrap(to_starttls(m), tls_context(m.cert))
    ehlo_lines(t)
    assert t.cmd("VRFY postmaster")[0] == 252
    send_txn(t, "required")
    t.close()
    assert b"with ESMTPS" in stored(m, "required")


# ---- pipelined plaintext and the reset -------------------------------------


@pytest.mark.parametrize("after", [
    b"RSET\r\n",
    b"MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@dest.test>\r\n",
], ids=["rset", "mail-rcpt"])
def test_plaintext_after_starttls_is_discarded(start_tls_mxd, after):
    m = start_tls_mxd()
    c = m.client()
    c.expect(220)
    ehlo_lines(c)
    c.send(b"STARTTLS\r\n" + after)
    assert c.reply()[1] == ["220 2.0.0 Ready to start TLS"]
    # No plaintext reply to the injected commands either.
    assert c.buf == b""
    t = wrap(c, tls_context(m.cert))
    # Nothing arrives inside TLS unasked.
    assert quiet(t), t.buf
    # The first reply inside TLS answers what is sent now: the
    # session was reset (no HELO), and no injected RSET reply comes
    # first.
    assert t.cmd("MAIL FROM:<a@client.test>")[1] == [
        "503 5.5.1 Error: send HELO/EHLO first"]
    ehlo_lines(t)
    # The injected MAIL was not executed: RCPT has no transaction.
    assert t.cmd("RCPT TO:<victim@dest.test>")[1] == [
        "503 5.5.1 Error: need MAIL command"]
    t.close()
    m.wait_log(r" starttls_discarded .*bytes=%d\b" % len(after))


def test_no_discard_line_when_nothing_was_pipelined(start_tls_mxd):
    m = start_tls_mxd()
    t = wrap(to_starttls(m), tls_context(m.cert))
    ehlo_lines(t)
    t.close()
    text = m.wait_log(r" tls version=")
    assert "starttls_discarded" not in text


def test_tls_resets_the_session(start_tls_mxd):
    m = start_tls_mxd()
    c = m.client()
    c.expect(220)
    ehlo_lines(c)
    assert c.cmd("MAIL FROM:<before@client.test>")[0] == 250
    assert c.cmd("STARTTLS")[1] == ["220 2.0.0 Ready to start TLS"]
    t = wrap(c, tls_context(m.cert))
    assert t.cmd("MAIL FROM:<a@client.test>")[1] == [
        "503 5.5.1 Error: send HELO/EHLO first"]
    kw = ehlo_lines(t)
    assert "STARTTLS" not in kw, kw
    assert "PIPELINING" in kw and "8BITMIME" in kw, kw
    # The MAIL given before TLS is forgotten.
    assert t.cmd("RCPT TO:<r@dest.test>")[1] == [
        "503 5.5.1 Error: need MAIL command"]
    qid = send_txn(t, "after-reset")
    t.close()
    data = stored(m, "after-reset")
    assert data.startswith(b"Return-Path: <sender@client.test>\n"), data
    assert b"before@client.test" not in data
    assert b"with ESMTPS id %s\n" % qid.encode() in data, data


# ---- the failure path ------------------------------------------------------
#
# Each scenario: what the client sends after the 220 (or does), what must
# come back, and which log fields must say so.


def _send(data):
    def act(sock):
        sock.sendall(data)
    return act


def _junk():
    b = bytearray(os.urandom(512))
    b[0] %= 20		# never a record type (20..24)
    return bytes(b)


def _alert_after_server_flight(desc):
    """A valid ClientHello; after ServerHelloDone, a fatal alert, as a
    client that does not trust the certificate sends."""
    def act(sock):
        sock.sendall(client_hello(ECDHE_ECDSA_GCM, sni=HOST))
        data = b""
        sock.settimeout(10)
        while True:
            chunk = sock.recv(65536)
            assert chunk, "EOF before ServerHelloDone: %r" % data
            data += chunk
            try:
                recs = parse_records(data)
            except AssertionError:
                continue
            assert all(t == CT_HANDSHAKE for t, v, b in recs), recs
            if 14 in handshake_types(recs):
                break
        sock.sendall(alert_record(desc))
    return act


def _half_close(sock):
    sock.shutdown(socket.SHUT_WR)


def _stall(sock):
    pass


# Each scenario: act(sock) is the client's part after the 220; alert is
# the description that must come back (None: no bytes at all);
# only_alert: the alert is the only record; by: who must have sent it
# (as the log says); rsa: mxd serves an RSA-2048 certificate made here;
# window: (min, max) seconds from the act to EOF; log: fields of the
# tls_failed line ("cls" is class).  FAST: "close the connection at
# once", well inside mxd's 2 s linger.
FAST = (0.0, 1.5)

SCENARIOS = {
    "no_shared_cipher": dict(
        act=_send(client_hello([0x002f], sni=HOST)),
        alert=40, only_alert=True,
        log=dict(cls="no_shared_cipher", step="client_hello",
                 offered="TLSv1.0-TLSv1.2", ciphers="1", first="0x002f",
                 groups="29,23,24", sni=HOST)),
    "no_shared_group_rsa": dict(
        rsa=True,
        act=_send(client_hello(ECDHE_RSA_GCM, groups=[25])),
        alert=40, only_alert=False, by="mxd",
        log=dict(cls="no_shared_group", step="server_hello",
                 ciphers="2", first="0xc02f,0xc030", groups="25")),
    "no_shared_group_ecdsa": dict(
        act=_send(client_hello(ECDHE_ECDSA_GCM, groups=[25])),
        alert=40, only_alert=True,
        log=dict(cls="no_shared_group", step="client_hello", groups="25")),
    "tls10_only": dict(
        act=_send(client_hello([0xc009, 0xc013, 0x002f], version=0x0301)),
        alert=70, only_alert=True,
        log=dict(cls="protocol_version", step="client_hello",
                 offered="TLSv1.0-TLSv1.0", ciphers="3",
                 first="0xc009,0xc013,0x002f")),
    "smtp_text": dict(
        act=_send(b"EHLO client.test\r\n"),
        alert=10, only_alert=True, by="mxd",
        log=dict(cls="not_tls")),
    "random_bytes": dict(
        act=lambda sock: sock.sendall(_junk()),
        alert=10, only_alert=True, by="mxd",
        log=dict(cls="not_tls")),
    "truncated_client_hello": dict(
        # A handshake record whose ClientHello ends after the version.
        act=_send(b"\x16\x03\x01\x00\x08\x01\x00\x00\x04\x03\x03\x00\x00"),
        alert=50, only_alert=True,
        log=dict(cls="decode_error", step="client_hello")),
    "timeout_silent": dict(
        act=_stall, alert=40, only_alert=True, by="mxd",
        window=(0.8, 4.0),
        log=dict(cls="timeout", step="before_client_hello")),
    "timeout_half_hello": dict(
        act=lambda sock: sock.sendall(client_hello(ECDHE_ECDSA_GCM)[:40]),
        alert=40, only_alert=True, by="mxd", window=(0.8, 4.0),
        log=dict(cls="timeout", step="client_hello")),
    "client_alert_after_server_hello": dict(
        act=_alert_after_server_flight(48), alert=None,
        log=dict(cls="client_alert", alert_received="unknown_ca(48)",
                 offered="TLSv1.0-TLSv1.2", groups="29,23,24", sni=HOST)),
    "client_alert_first": dict(
        act=_send(alert_record(40)), alert=None,
        log=dict(cls="client_alert", step="client_hello")),
    "client_eof": dict(
        act=_half_close, alert=None,
        log=dict(cls="eof", step="before_client_hello")),
}


def check_records(data, sc, name):
    """The bytes after the act: TLS records only, exactly one alert,
    and it is the last record."""
    if sc["alert"] is None:
        # The client ended the session: no alert back, nothing at all
        # after what the handshake had sent already.
        assert data == b"", "bytes after the client's end: %r" % data
        return
    recs = parse_records(data)		# any SMTP text would fail here
    alerts = [r for r in recs if r[0] == CT_ALERT]
    assert len(alerts) == 1, "want exactly one alert record: %r" % recs
    t, v, body = recs[-1]
    assert t == CT_ALERT, "the alert is not the last record: %r" % recs
    assert v >> 8 == 3, "record version %#06x" % v
    assert body == bytes([2, sc["alert"]]), (
        "alert body %r, want fatal %s(%d)" % (body, ALERTS[sc["alert"]],
                                              sc["alert"]))
    if sc["only_alert"]:
        assert len(recs) == 1, recs
    else:
        assert all(r[0] == CT_HANDSHAKE for r in recs[:-1]), recs
        # ServerHello and Certificate went out before the failure.
        assert handshake_types(recs[:-1])[:2] == [2, 11], recs
    if sc.get("by") == "mxd":
        # Ours is written by hand: TLS 1.2 framing (RFC 8446 5.1).
        assert data[-7:] == b"\x15\x03\x03\x00\x02\x02" + bytes(
            [sc["alert"]]), data[-7:]


def check_log(m, sc):
    line = tls_failed_line(m)
    f = logfields(line)
    want = sc["log"]
    assert f.get("client") == "127.0.0.1", line
    assert f.get("class") == want["cls"], line
    if sc["alert"] is None:
        assert f.get("alert_sent") == "none", line
        assert "alert_by" not in f, line
    else:
        assert f.get("alert_sent") == "%s(%d)" % (ALERTS[sc["alert"]],
                                                  sc["alert"]), line
        assert f.get("alert_by") == sc.get("by", f.get("alert_by")), line
        assert f.get("alert_by") in ("mxd", "mbedtls"), line
    for k, v in want.items():
        if k != "cls":
            assert f.get(k) == v, "%s=%r, want %r: %s" % (k, f.get(k), v,
                                                          line)
    m.wait_log(r" disconnect reason=tls_failed ")
    return line


def check_next_connection(m, require_tls):
    """The failure leaves mxd ready: plaintext delivery works (or is
    refused with 530 where TLS is required), and TLS still works."""
    if require_tls:
        c = m.client()
        c.expect(220)
        assert "STARTTLS" in ehlo_lines(c)
        assert c.cmd("MAIL FROM:<sender@client.test>")[1] == [MUST_STARTTLS]
        assert c.cmd("QUIT")[0] == 221
        c.close()
        t = wrap(to_starttls(m), tls_context(m.cert))
        ehlo_lines(t)
        qid = send_txn(t, "tls-after-failure")
        t.close()
        data = stored(m, "tls-after-failure")
        assert b"with ESMTPS id %s" % qid.encode() in data
        assert len(m.messages()) == 1
    else:
        kw, qid = deliver_plain(m, subject="plain-after-failure")
        # No fallback window by default: STARTTLS is still offered.
        assert "STARTTLS" in kw, kw
        data = stored(m, "plain-after-failure")
        assert b"with ESMTP id %s\n" % qid.encode() in data, data
        assert len(m.messages()) == 1, m.messages()


def run_failure(start_tls_mxd, tmp_path, sc, name, require_tls):
    args = ["-o", "tls_handshake_timeout=1"]
    if require_tls:
        args += ["-o", "require_tls=yes"]
    if sc.get("rsa"):
        cert, key = make_cert(tmp_path / "certs", HOST, "rsa")
        args += ["--tls-cert", cert, "--tls-key", key]
    m = start_tls_mxd(*args)
    c = to_starttls(m)
    start = time.monotonic()
    sc["act"](c.sock)
    data, how, _ = read_to_end(c.sock, timeout=8)
    took = time.monotonic() - start
    c.close()
    assert how == "eof", "connection ended by %s after %r" % (how, data)
    lo, hi = sc.get("window", FAST)
    assert lo <= took <= hi, "closed after %.2fs, want %s" % (took, (lo, hi))
    check_records(data, sc, name)
    check_log(m, sc)
    check_next_connection(m, require_tls)
    assert m.proc.poll() is None


@pytest.mark.parametrize("require_tls", [False, True],
                         ids=["opportunistic", "require_tls"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_failed_handshake(start_tls_mxd, tmp_path, name, require_tls):
    run_failure(start_tls_mxd, tmp_path, SCENARIOS[name], name, require_tls)


def test_failed_handshake_tls13_only_client(start_tls_mxd, tmp_path):
    """A client that offers only TLS 1.3 (supported_versions, TLS 1.3
    suites, no key_share).  Against a TLS 1.2 server (mbedTLS 2.28) the
    cause mxd logs is protocol_version, and the one alert must name it
    (DESIGN.md: "the fatal alert that names the cause"), not a
    handshake_failure.  A TLS 1.3 server (3.x) takes the version and
    refuses the missing key_share: missing_extension (RFC 8446 9.2)."""
    hello = _send(client_hello([0x1301, 0x1302, 0x1303],
                               supported_versions=[0x0304]))
    if TLS_TOP == "TLSv1.2":
        sc = dict(act=hello, alert=70, only_alert=True,
                  log=dict(cls="protocol_version", step="client_hello",
                           offered="TLSv1.3-TLSv1.3", ciphers="3",
                           first="0x1301,0x1302,0x1303"))
    else:
        sc = dict(act=hello, alert=109, only_alert=True,
                  log=dict(cls="handshake", step="client_hello",
                           offered="TLSv1.3-TLSv1.3",
                           ciphers="3", first="0x1301,0x1302,0x1303"))
    run_failure(start_tls_mxd, tmp_path, sc, "tls13_only", False)


def test_each_failure_logs_one_line_and_mxd_keeps_serving(start_tls_mxd):
    """Many failures in a row, of every kind, on one mxd: one tls_failed
    line each, and a delivery at the end."""
    m = start_tls_mxd("-o", "tls_handshake_timeout=1")
    names = [n for n in SCENARIOS if not SCENARIOS[n].get("rsa") and
             not n.startswith("timeout")]
    for n in names:
        c = to_starttls(m)
        SCENARIOS[n]["act"](c.sock)
        data, how, _ = read_to_end(c.sock, timeout=5)
        c.close()
        assert how == "eof", (n, how)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if m.log().count(" tls_failed ") >= len(names):
            break
        time.sleep(0.05)
    assert m.log().count(" tls_failed ") == len(names), m.log()
    kw, qid = deliver_plain(m, subject="after-many")
    stored(m, "after-many")


# ---- tls_fallback_window ---------------------------------------------------


def fail_one_handshake(m):
    c = to_starttls(m)
    c.send(b"EHLO client.test\r\n")
    data, how, _ = read_to_end(c.sock)
    c.close()
    assert how == "eof" and data[:1] == b"\x15", (how, data)


def connect_lines(m):
    return [l for l in m.log().splitlines() if " connect " in l]


def test_fallback_window_skips_starttls_after_a_failure(start_tls_mxd):
    m = start_tls_mxd("-o", "tls_fallback_window=60")
    # Before any failure: offered.
    c = m.client()
    c.expect(220)
    assert "STARTTLS" in ehlo_lines(c)
    c.close()
    fail_one_handshake(m)
    m.wait_log(r" tls_failed ")

    c = m.client()
    c.expect(220)
    kw = ehlo_lines(c)
    assert "STARTTLS" not in kw, kw
    assert c.cmd("STARTTLS")[1] == ["454 4.7.0 TLS not available"]
    qid = send_txn(c, "fallback")
    c.close()
    data = stored(m, "fallback")
    assert b"with ESMTP id %s\n" % qid.encode() in data, data
    last = connect_lines(m)[-1]
    assert "tls_fallback=starttls_not_offered" in last, last
    assert all("tls_fallback" not in l for l in connect_lines(m)[:2])

    # Another address has not failed: it is offered STARTTLS.
    other = RawClient(socket.create_connection(
        (m.host, m.port), timeout=10, source_address=("127.0.0.2", 0)))
    other.expect(220)
    assert "STARTTLS" in ehlo_lines(other)
    other.close()
    assert "tls_fallback" not in connect_lines(m)[-1]


def test_fallback_window_expires(start_tls_mxd):
    m = start_tls_mxd("-o", "tls_fallback_window=1")
    fail_one_handshake(m)
    m.wait_log(r" tls_failed ")
    c = m.client()
    c.expect(220)
    assert "STARTTLS" not in ehlo_lines(c)
    c.close()
    time.sleep(1.3)
    c = m.client()
    c.expect(220)
    assert "STARTTLS" in ehlo_lines(c)
    c.close()


def test_fallback_window_not_applied_under_require_tls(start_tls_mxd):
    m = start_tls_mxd("-o", "tls_fallback_window=60", "-o",
                      "require_tls=yes")
    fail_one_handshake(m)
    m.wait_log(r" tls_failed ")
    c = m.client()
    c.expect(220)
    assert "STARTTLS" in ehlo_lines(c)
    assert c.cmd("MAIL FROM:<sender@client.test>")[1] == [MUST_STARTTLS]
    c.close()
    assert "tls_fallback" not in m.log()
    assert m.messages() == []


def test_listener_can_offer_tls_when_the_global_key_is_off(start_tls_mxd):
    """tls = no globally, tls=yes require_tls=yes on one listener: that
    listener must offer STARTTLS and refuse plaintext MAIL (it used to
    drop both silently, taking mail in plaintext)."""
    m = start_tls_mxd("-o", "tls=no",
                      "--listen", "127.0.0.1:0",
                      "--listen", "127.0.0.1:0 tls=yes require_tls=yes")
    plain = m.client_on(0)
    plain.expect(220)
    assert "STARTTLS" not in ehlo_lines(plain)
    plain.close()
    req = m.client_on(1)
    req.expect(220)
    assert "STARTTLS" in ehlo_lines(req)
    assert req.cmd("MAIL FROM:<a@client.test>")[1] == [MUST_STARTTLS]
    assert req.cmd("STARTTLS")[0] == 220
    t = wrap(req, tls_context(m.cert))
    ehlo_lines(t)
    send_txn(t, "tls-on-one-listener")
    t.close()
    assert b"with ESMTPS" in stored(m, "tls-on-one-listener")


def test_tls_min_version_above_the_library_stops_start_up(tmp_path):
    """TLSv1.3 as the floor needs a TLS 1.3 library: on 2.28 mxd refuses
    to start (every handshake would fail), and --check says so without
    starting; on 3.x it serves TLS 1.3."""
    check = subprocess.run([BINARY, "--check", "-o",
                            "tls_min_version=TLSv1.3"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=5)
    if TLS_TOP == "TLSv1.2":
        assert check.returncode != 0 and "tls_min_version" in check.stderr
        r = subprocess.run([BINARY, "--listen", "127.0.0.1:0", "-m",
                            str(tmp_path / "mail"), "-o",
                            "tls_min_version=TLSv1.3"],
                           cwd=tmp_path, capture_output=True, text=True,
                           timeout=5)
        assert r.returncode != 0
        assert "tls_min_version" in r.stderr and "TLSv1.2" in r.stderr, \
            r.stderr
        return
    assert check.returncode == 0, check.stderr
    m = TlsMxd(tmp_path / "m13", ["-H", HOST, "-o",
                                  "tls_min_version=TLSv1.3"])
    try:
        c = m.client()
        c.expect(220)
        ehlo_lines(c)
        assert c.cmd("STARTTLS")[0] == 220
        t = wrap(c, tls_context(m.cert))
        assert t.sock.version() == "TLSv1.3"
        t.close()
    finally:
        m.stop()
