"""Real TLS clients against mxd's STARTTLS: Python's smtplib and ssl,
swaks, openssl s_client, Postfix's posttls-finger and msmtp.  Each one
verifies the certificate mxd prints (--print-cert-path) for the name set
with -H, and each delivered message must say "with ESMTPS" and name the
cipher in its Received header (RFC 3848).

Also here, with Python's ssl as the client: certificate choice by SNI,
SIGHUP reloading the certificate files, and tls_ask_client_cert.
"""

import os
import re
import signal
import smtplib
import ssl
import subprocess
import time

import pytest

from tlsutil import (TLS_TOP, HOST, cert_der, ehlo_lines, make_cert, send_txn,
                     start_tls_mxd, stored, tls_context, to_starttls, wrap)

assert start_tls_mxd  # the fixture, for pytest

# OpenSSL's names of the suites mxd offers, and mbedTLS's (mxd's log and
# Received header).
SUITES = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384": "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305":
        "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256": "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384": "TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305":
        "TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256",
    # TLS 1.3 (mbedTLS 3.x builds): OpenSSL's names and mbedTLS's.
    "TLS_AES_128_GCM_SHA256": "TLS1-3-AES-128-GCM-SHA256",
    "TLS_AES_256_GCM_SHA384": "TLS1-3-AES-256-GCM-SHA384",
    "TLS_CHACHA20_POLY1305_SHA256": "TLS1-3-CHACHA20-POLY1305-SHA256",
}

RECEIVED_TLS = re.compile(
    rb"Received: from (\S+) \(\[127\.0\.0\.1\]\)\n"
    rb"\tby mx\.test \(mxd\) with ESMTPS id (\S+)\n"
    rb"\t\(using (TLSv1\.[23]) with cipher (TLS1?-[A-Z0-9-]+)\)")


def received_tls(data):
    """(helo, id, version, cipher) from the Received header."""
    m = RECEIVED_TLS.search(data)
    assert m, "no ESMTPS Received header:\n%s" % data.decode(
        errors="replace")[:600]
    return tuple(g.decode() for g in m.groups())


def run(argv, timeout=60, **kw):
    r = subprocess.run(argv, capture_output=True, text=True,
                       timeout=timeout, **kw)
    return r


# ---- real clients deliver over STARTTLS ------------------------------------


def test_smtplib_starttls_verified(start_tls_mxd):
    m = start_tls_mxd()
    ctx = tls_context(m.cert)		# verifies chain and host name
    s = smtplib.SMTP(local_hostname="client.test", timeout=20)
    s.connect("127.0.0.1", m.port)
    # smtplib checks the certificate against the host it connected
    # to; the name mxd's certificate carries is the -H name.
    s._host = HOST
    s.ehlo()
    assert s.has_extn("starttls")
    code, msg = s.starttls(context=ctx)
    assert (code, msg) == (220, b"2.0.0 Ready to start TLS")
    version, cipher = s.sock.version(), s.sock.cipher()[0]
    s.ehlo()
    assert not s.has_extn("starttls")
    s.sendmail("sender@client.test", ["rcpt@dest.test"],
               "Subject: smtplib-tls\r\n\r\nover TLS\r\n")
    s.quit()
    data = stored(m, "smtplib-tls")
    helo, qid, v, c = received_tls(data)
    assert (helo, v, c) == ("client.test", version, SUITES[cipher])
    m.wait_log(r" tls version=%s cipher=%s sni=mx\.test " % (
        re.escape(version), re.escape(SUITES[cipher])))


def test_smtplib_untrusted_certificate_then_plaintext(start_tls_mxd):
    """A client that does not trust the certificate aborts the handshake
    with its own alert; mxd sends none, logs it, and the client's
    plaintext retry on a new connection delivers."""
    m = start_tls_mxd()
    ctx = ssl.create_default_context()	# the system CAs only
    s = smtplib.SMTP(local_hostname="client.test", timeout=20)
    s.connect("127.0.0.1", m.port)
    s._host = HOST
    s.ehlo()
    with pytest.raises(ssl.SSLCertVerificationError):
        s.starttls(context=ctx)
    s.close()
    line = m.wait_log(r" tls_failed ")
    line = [l for l in line.splitlines() if " tls_failed " in l][0]
    # Python closes the socket with the server's flight partly unread,
    # so its alert may be overtaken by a TCP reset: either way, mxd
    # sends no alert of its own.
    g = re.search(r" class=(\S+) alert_sent=none ", line)
    assert g and g.group(1) in ("client_alert", "reset"), line
    if g.group(1) == "client_alert":
        assert " alert_received=unknown_ca(48) " in line, line

    s = smtplib.SMTP("127.0.0.1", m.port, local_hostname="client.test",
                     timeout=20)
    s.sendmail("sender@client.test", ["rcpt@dest.test"],
               "Subject: smtplib-plain\r\n\r\nplaintext\r\n")
    s.quit()
    assert b"\tby mx.test (mxd) with ESMTP id " in stored(m, "smtplib-plain")


def test_swaks_tls(start_tls_mxd):
    m = start_tls_mxd()
    r = run(["swaks", "--server", "127.0.0.1:%d" % m.port, "--tls",
             "--tls-verify", "--tls-ca-path", m.cert, "--tls-sni", HOST,
             "--helo", "client.test", "--from", "sender@client.test",
             "--to", "rcpt@dest.test", "--header", "Subject: swaks-tls",
             "--timeout", "20"])
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout + r.stderr
    g = re.search(r"=== TLS started with cipher (TLSv1\.[23]):([A-Z0-9_-]+):",
                  out)
    assert g, out
    assert "TLS startup failed" not in out, out
    assert re.search(r"<~  250 2\.0\.0 Ok: queued as ", out), out
    helo, qid, v, c = received_tls(stored(m, "swaks-tls"))
    assert (helo, v, c) == ("client.test", g.group(1), SUITES[g.group(2)])


class SClient:
    """openssl s_client -starttls smtp, driven a reply at a time."""

    def __init__(self, port, cafile, name=HOST, extra=()):
        self.p = subprocess.Popen(
            ["openssl", "s_client", "-starttls", "smtp",
             "-name", "client.test", "-connect", "127.0.0.1:%d" % port,
             "-servername", name, "-CAfile", cafile,
             "-verify_return_error", "-verify_hostname", name,
             "-crlf", "-quiet", "-nocommands", *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)

    def reply(self):
        lines = []
        while True:
            raw = self.p.stdout.readline()
            if not raw:
                raise EOFError("s_client output ended after %r: %s" % (
                    lines, self.p.stderr.read().decode(errors="replace")))
            lines.append(raw.decode().rstrip("\r\n"))
            if lines[-1][3:4] != "-":
                return lines

    def cmd(self, text):
        self.p.stdin.write(text.encode() + b"\n")
        self.p.stdin.flush()
        return self.reply()

    def close(self):
        if self.p.stdin:
            self.p.stdin.close()
        try:
            rc = self.p.wait(20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise
        err = self.p.stderr.read().decode(errors="replace")
        self.p.stdout.close()
        self.p.stderr.close()
        return rc, err


def test_openssl_s_client_whole_transaction(start_tls_mxd):
    m = start_tls_mxd()
    sc = SClient(m.port, m.cert)
    try:
        kw = sc.cmd("EHLO client.test")
        assert kw[0] == "250-mx.test", kw
        assert not any("STARTTLS" in l for l in kw), kw
        assert sc.cmd("MAIL FROM:<sender@client.test>") == ["250 2.1.0 Ok"]
        assert sc.cmd("RCPT TO:<rcpt@dest.test>") == ["250 2.1.5 Ok"]
        assert sc.cmd("DATA")[0].startswith("354 ")
        done = sc.cmd("Subject: s_client-tls\n\nbody\n..stuffed\n.")
        assert re.match(r"250 2\.0\.0 Ok: queued as \S+$", done[0]), done
        assert sc.cmd("QUIT") == ["221 2.0.0 Bye"]
    finally:
        rc, err = sc.close()
    assert rc == 0, err
    assert "verify return:1" in err and "verify error" not in err, err
    data = stored(m, "s_client-tls")
    helo, qid, v, c = received_tls(data)
    assert helo == "client.test" and v == TLS_TOP, (helo, v)
    assert data.endswith(b"\n\nbody\n.stuffed\n"), data


def test_openssl_s_client_refuses_a_wrong_name(start_tls_mxd):
    """The verification above is real: the same client checking another
    name fails the handshake (and mxd logs the client's alert)."""
    m = start_tls_mxd()
    sc = SClient(m.port, m.cert, name="other.test")
    rc, err = sc.close()
    assert rc != 0, err
    assert "verify error" in err or "hostname mismatch" in err, err
    m.wait_log(r" tls_failed .*class=client_alert alert_sent=none ")


def test_posttls_finger_verified_and_resumed(start_tls_mxd):
    m = start_tls_mxd()
    r = run(["posttls-finger", "-c", "-r", "1", "-l", "secure",
             "-F", m.cert, "-h", "native",
             "[127.0.0.1]:%d" % m.port, HOST])
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "matched peername: mx.test" in out, out
    est = re.findall(r"Verified TLS connection established to "
                     r"127\.0\.0\.1\[127\.0\.0\.1\]:%d: (TLSv1\.[23]) "
                     r"with cipher ([A-Z0-9_-]+) " % m.port, out)
    assert len(est) == 2, out
    assert est[0][1] in SUITES, est
    # Session tickets are on by default: the second connection resumes.
    assert "Reusing old session" in out, out
    wait_count(m, r" tls version=%s " % re.escape(TLS_TOP), 2)


def test_msmtp_starttls(start_tls_mxd, tmp_path):
    m = start_tls_mxd()
    rc = tmp_path / "msmtprc"
    rc.write_text(
        "defaults\n"
        "syslog off\n"
        "account default\n"
        "host 127.0.0.1\n"
        "port %d\n"
        "from sender@client.test\n"
        "domain client.test\n"
        "auth off\n"
        "tls on\n"
        "tls_starttls on\n"
        "tls_trust_file %s\n"
        "tls_host_override %s\n"
        "timeout 20\n" % (m.port, m.cert, HOST))
    os.chmod(rc, 0o600)
    msg = ("From: sender@client.test\nTo: rcpt@dest.test\n"
           "Subject: msmtp-tls\n\nsent by msmtp\n")
    r = run(["msmtp", "-C", str(rc), "-v", "--read-envelope-from", "-t"],
            input=msg, env=dict(os.environ, HOME=str(tmp_path)))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "--> STARTTLS" in out and "<-- 220 2.0.0 Ready to start TLS" in out
    helo, qid, v, c = received_tls(stored(m, "msmtp-tls"))
    assert helo == "client.test" and v == TLS_TOP, (helo, v)


# ---- SNI -------------------------------------------------------------------


def served_cert(m, sni, ctx=None):
    """DER of the certificate mxd presents for this SNI name (or none)."""
    c = to_starttls(m)
    t = wrap(c, ctx or tls_context(verify=False), server_hostname=sni)
    der = t.sock.getpeercert(binary_form=True)
    assert t.cmd("QUIT")[0] == 221
    t.close()
    return der


@pytest.fixture
def three_pairs(tmp_path):
    """Three ECDSA pairs (one key type, so only the name decides)."""
    d = tmp_path / "certs"
    return [
        make_cert(d, "one.test", "ec", sans=["one.test", "mx.one.test"]),
        # No SAN: the subject CN names it (RFC 6125 6.4.4).
        make_cert(d, "two.test", "ec", sans=[]),
        make_cert(d, "three.test", "ec", sans=["*.three.test"]),
    ]


def pair_args(pairs):
    args = []
    for cert, key in pairs:
        args += ["--tls-cert", cert, "--tls-key", key]
    return args


@pytest.mark.parametrize("sni,want", [
    ("one.test", 0),
    ("mx.one.test", 0),
    ("two.test", 1),
    ("mail.three.test", 2),
    ("unknown.test", 0),		# no match: the first pair
    ("three.test", 0),		# a wildcard does not cover its parent
    ("a.b.three.test", 0),	# nor two labels
    (None, 0),			# no SNI at all
])
def test_sni_picks_the_matching_pair(start_tls_mxd, three_pairs, sni, want):
    m = start_tls_mxd(*pair_args(three_pairs))
    assert m.certs == [os.path.realpath(c) for c, k in three_pairs]
    got = served_cert(m, sni)
    ders = [cert_der(c) for c, k in three_pairs]
    assert got in ders, "served a certificate that is none of ours"
    assert ders.index(got) == want, "SNI %r got pair %d, want %d" % (
        sni, ders.index(got), want)
    if sni is not None:
        m.wait_log(r" tls version=\S+ cipher=\S+ sni=%s " % re.escape(sni))


def test_sni_second_pair_verifies_for_its_name(start_tls_mxd, tmp_path):
    """Two RSA pairs: a verifying client asking for name2 gets cert 2 and
    the whole delivery works; one asking for an unknown name gets
    cert 1."""
    d = tmp_path / "certs"
    p1 = make_cert(d, "name1.test", "rsa")
    p2 = make_cert(d, "name2.test", "rsa")
    m = start_tls_mxd(*pair_args([p1, p2]))
    ctx = tls_context(p2[0])
    t = wrap(to_starttls(m), ctx, server_hostname="name2.test")
    assert t.sock.getpeercert(binary_form=True) == cert_der(p2[0])
    ehlo_lines(t)
    send_txn(t, "sni-name2")
    t.close()
    received_tls(stored(m, "sni-name2"))
    assert served_cert(m, "nothere.test") == cert_der(p1[0])
    assert served_cert(m, "name1.test") == cert_der(p1[0])


@pytest.mark.parametrize("sni", ["unknown.test", None])
def test_sni_unknown_name_gets_the_first_pair_of_mixed_types(
        start_tls_mxd, tmp_path, sni):
    """An RSA pair first, an ECDSA pair second: a client that can use
    both (it offers ECDHE-ECDSA and ECDHE-RSA suites) and names neither
    gets the first pair, as configured."""
    d = tmp_path / "certs"
    p1 = make_cert(d, "first.test", "rsa")
    p2 = make_cert(d, "second.test", "ec")
    m = start_tls_mxd(*pair_args([p1, p2]))
    assert served_cert(m, "second.test") == cert_der(p2[0])
    got = served_cert(m, sni)
    assert got == cert_der(p1[0]), (
        "no SNI match served the %s pair, not the first" % (
            "second (ECDSA)" if got == cert_der(p2[0]) else "unknown"))


# ---- SIGHUP reload ---------------------------------------------------------


def wait_count(m, pattern, n, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(re.findall(pattern, m.log(), re.M)) >= n:
            return
        time.sleep(0.02)
    raise AssertionError("want %d of %r in:\n%s" % (n, pattern, m.log()))


def install(src, dst):
    """Replace dst with a copy of src, atomically (as an operator would)."""
    tmp = str(dst) + ".new"
    with open(src, "rb") as f:
        data = f.read()
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, dst)


@pytest.mark.parametrize("broken", ["garbage_cert", "other_key",
                                    "missing_key"])
def test_sighup_reloads_certificates(start_tls_mxd, tmp_path, broken):
    d = tmp_path / "certs"
    a = make_cert(d, HOST, "ec", stem="a")
    b = make_cert(d, HOST, "ec", stem="b")
    c_ = make_cert(d, HOST, "ec", stem="c")
    live_cert, live_key = str(tmp_path / "live.crt"), str(tmp_path /
                                                          "live.key")
    install(a[0], live_cert)
    install(a[1], live_key)
    m = start_tls_mxd("--tls-cert", live_cert, "--tls-key", live_key)
    assert served_cert(m, HOST) == cert_der(a[0])

    # A session in TLS, mid-transaction, across the reload.
    live = wrap(to_starttls(m), tls_context(a[0]))
    assert live.sock.getpeercert(binary_form=True) == cert_der(a[0])
    ehlo_lines(live)
    assert live.cmd("MAIL FROM:<sender@client.test>")[0] == 250

    install(b[0], live_cert)
    install(b[1], live_key)
    m.signal(signal.SIGHUP)
    wait_count(m, r" reload msg=", 1)
    assert served_cert(m, HOST) == cert_der(b[0])
    # The new certificate verifies for a strict client too.
    t = wrap(to_starttls(m), tls_context(b[0]))
    ehlo_lines(t)
    t.close()

    # The live session goes on, on its old keys.
    assert live.cmd("RCPT TO:<rcpt@dest.test>")[0] == 250
    assert live.cmd("DATA")[0] == 354
    live.send("Subject: across-reload\r\n\r\nstill here\r\n.\r\n")
    assert live.reply()[0] == 250
    assert live.cmd("QUIT")[0] == 221
    live.close()
    received_tls(stored(m, "across-reload"))

    # A broken file on reload: the pair in use stays.
    if broken == "garbage_cert":
        with open(live_cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                    "-----END CERTIFICATE-----\n")
    elif broken == "other_key":
        install(c_[1], live_key)	# the key of another certificate
    else:
        os.unlink(live_key)
    m.signal(signal.SIGHUP)
    wait_count(m, r" reload_failed ", 1)
    assert m.proc.poll() is None
    assert served_cert(m, HOST) == cert_der(b[0])
    t = wrap(to_starttls(m), tls_context(b[0]))
    ehlo_lines(t)
    send_txn(t, "after-failed-reload")
    t.close()
    stored(m, "after-failed-reload")
    # Only one successful reload was logged.
    assert len(re.findall(r" reload msg=", m.log())) == 1, m.log()


def test_sighup_reloads_the_self_signed_pair(start_tls_mxd, tmp_path):
    """With no configured pair, SIGHUP rereads the self-signed files."""
    m = start_tls_mxd()
    first = cert_der(m.cert)
    assert served_cert(m, HOST) == first
    new = make_cert(tmp_path / "certs", HOST, "ec", stem="new")
    install(new[0], m.cert)
    install(new[1], str(m.workdir / "mxd-selfsigned.key"))
    m.signal(signal.SIGHUP)
    wait_count(m, r" reload msg=", 1)
    assert served_cert(m, HOST) == cert_der(new[0]) != first


# ---- tls_ask_client_cert ---------------------------------------------------


def client_cert_ctx(m, pair):
    ctx = tls_context(m.cert)
    if pair is not None:
        ctx.load_cert_chain(pair[0], pair[1])
    return ctx


def tls_line(m, n=1):
    wait_count(m, r" tls version=", n)
    return [l for l in m.log().splitlines() if " tls version=" in l][n - 1]


@pytest.mark.parametrize("with_ca", [False, True], ids=["no_ca", "ca"])
def test_ask_client_cert_logs_subject(start_tls_mxd, tmp_path, with_ca):
    client = make_cert(tmp_path / "certs", "client.test", "ec",
                       sans=["client.test"])
    args = ["-o", "tls_ask_client_cert=yes"]
    if with_ca:
        args += ["-o", "tls_client_ca=%s" % client[0]]
    m = start_tls_mxd(*args)
    t = wrap(to_starttls(m), client_cert_ctx(m, client))
    ehlo_lines(t)
    send_txn(t, "with-client-cert")
    t.close()
    line = tls_line(m)
    assert ' client_cert="CN=client.test" ' in line, line
    verify = re.search(r' verify=("[^"]*"|\S+)', line)
    assert verify, line
    if with_ca:
        assert verify.group(1) == "ok", line
    else:
        assert verify.group(1) not in ("ok", '""'), line
    received_tls(stored(m, "with-client-cert"))


def test_ask_client_cert_never_refuses(start_tls_mxd):
    m = start_tls_mxd("-o", "tls_ask_client_cert=yes")
    t = wrap(to_starttls(m), client_cert_ctx(m, None))
    ehlo_lines(t)
    send_txn(t, "without-client-cert")
    t.close()
    line = tls_line(m)
    assert "client_cert" not in line, line
    received_tls(stored(m, "without-client-cert"))


def test_client_cert_not_asked_by_default(start_tls_mxd, tmp_path):
    client = make_cert(tmp_path / "certs", "client.test", "ec")
    m = start_tls_mxd()
    t = wrap(to_starttls(m), client_cert_ctx(m, client))
    ehlo_lines(t)
    t.close()
    assert "client_cert" not in tls_line(m)
