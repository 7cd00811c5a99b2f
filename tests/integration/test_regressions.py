"""Fixes found by reading the manual against the code; each test failed
before its fix."""

import re
import signal
import time

from conftest import quiet

HOST = "mx.test"


def start(start_mxd, *args):
    return start_mxd("-H", HOST, *args)


def session(m, name="client.example"):
    c = m.client()
    c.expect(220)
    code, lines = c.cmd("EHLO " + name)
    assert code == 250, lines
    return c


def test_refused_chunk_in_a_later_read_is_not_slow_data(start_mxd):
    """A BDAT chunk refused for want of MAIL, its octets in a later read:
    no message body is coming in, so min_data_rate does not apply (it
    used to compute the rate from a stale clock and answer 421)."""
    m = start(start_mxd, "-o", "min_data_rate=500")
    c = session(m)
    c.send("BDAT 5\r\n")
    assert quiet(c, 0.3)
    c.send("hello")
    assert c.reply()[1] == ["503 5.5.1 Error: need MAIL command"]
    assert c.cmd("NOOP")[0] == 250
    assert "slow_data" not in m.log()


def test_cr_ending_a_bdat_message_is_stored(start_mxd):
    m = start(start_mxd)
    c = session(m)
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
    c.send(b"BDAT 5 LAST\r\nab\r\n\r")
    code, lines = c.reply()
    assert code == 250, lines
    (msg,) = m.wait_messages(1)
    assert msg.read_bytes().endswith(b" +0000\nab\n\r"), msg.read_bytes()


def test_rcpt_log_names_notify_keywords(start_mxd):
    m = start(start_mxd, "-o", "dsn=yes")
    c = session(m)
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test> NOTIFY=delay,SUCCESS")[0] == 250
    c.cmd("QUIT")
    m.wait_log(r" rcpt to=<b@example\.test> notify=SUCCESS,DELAY result=ok")


def test_flood_reject_line_reports_the_refusal(start_mxd):
    """The reject line of a flood names the 500, not the 421 after it;
    and the flood is no 'bad command': max_errors=1 does not turn it into
    too_many_errors."""
    m = start(start_mxd, "-o", "max_errors=1")
    c = m.client()
    c.expect(220)
    c.send(b"x" * (70 * 1024))
    assert c.reply()[1] == ["500 5.5.2 Error: line too long"]
    assert c.reply()[0] == 421
    assert c.closed()
    text = m.wait_log(r" disconnect reason=flood ")
    assert re.search(r" reject cmd=\"\" code=500 reply=\"5\.5\.2 Error: "
                     r"line too long\"", text), text


def test_rate_limited_disconnect_says_connection_rate(start_mxd):
    m = start(start_mxd, "-o", "max_connection_rate=1")
    c = m.client()
    c.expect(220)
    d = m.client()
    assert d.reply()[0] == 421
    m.wait_log(r" disconnect reason=connection_rate ")
    c.close()


def test_bdat_size_refusal_is_not_a_bad_command(start_mxd):
    m = start(start_mxd, "-o", "max_errors=1",
              "-o", "max_message_size=1024")
    c = session(m)
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
    c.send(b"BDAT 1500 LAST\r\n" + b"y" * 1500)
    assert c.reply()[1] == [
        "552 5.3.4 Message size exceeds fixed maximum message size"]
    assert c.cmd("NOOP")[1] == ["250 2.0.0 Ok"]


def test_debug_log_leaves_out_bdat_chunks(start_mxd):
    m = start(start_mxd, "-v")
    c = session(m)
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
    c.send(b"BDAT 17 LAST\r\nsecret-chunk-body")
    assert c.reply()[0] == 250
    c.cmd("QUIT")
    text = m.wait_log(r" disconnect ")
    assert re.search(r" recv level=debug bytes=\d+ data=\"BDAT 17 LAST"
                     r"\\x0d\\x0a\"", text), text
    assert "secret" not in text


def test_sigterm_after_a_refused_chunk_gets_421_at_once(start_mxd):
    """SIGTERM while a refused chunk is being read: once it is read, the
    421 follows (it used to wait for shutdown_grace)."""
    m = start(start_mxd, "-o", "shutdown_grace=20")
    c = session(m)
    c.send(b"BDAT 10\r\n12345")		# no MAIL: this chunk is refused
    time.sleep(0.2)
    m.signal(signal.SIGTERM)
    time.sleep(0.2)
    t0 = time.monotonic()
    c.send(b"67890")
    assert c.reply()[0] == 503
    code, lines = c.reply()
    assert code == 421 and lines[0].startswith("421 4.3.2 "), lines
    assert time.monotonic() - t0 < 5
    assert m.proc.wait(10) == 0


def test_stop_line_counts(start_mxd):
    m = start(start_mxd, "-o", "greeting_delay=0.5")
    s = m.connect()
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    assert s.recv(100) == b""
    s.close()
    m.wait_log(r" disconnect reason=http_request ")
    assert m.stop() == 0
    assert re.search(r" stop connections=1 pregreet=1 http_requests=1 "
                     r"floods=0 ", m.logpath.read_text()), \
        m.logpath.read_text()


def test_requiretls_without_tls_on_the_listener_is_555(start_mxd):
    """Where no STARTTLS is offered, 'issue STARTTLS first' would be a
    lie: REQUIRETLS is an unsupported parameter there."""
    m = start(start_mxd, "-o", "tls=no")
    c = session(m)
    assert c.cmd("MAIL FROM:<a@client.example> REQUIRETLS")[1] == [
        "555 5.5.4 Unsupported parameter REQUIRETLS"]


def test_maildir_template_keeps_utf8_mailboxes_apart(start_mxd, tmp_path):
    """j\u00f6rg and j\u00fcrg, and 'a b' and a_b, are different mailboxes:
    the template must not fold them into one Maildir."""
    base = tmp_path / "md"
    m = start(start_mxd, "-m", str(base) + "/%d/%l")
    c = session(m)
    rcpts = ["j\u00f6rg@example.test", "j\u00fcrg@example.test",
             '"a b"@example.test', "a_b@example.test"]
    assert c.cmd("MAIL FROM:<a@client.example> SMTPUTF8")[0] == 250
    for r in rcpts:
        c.send(("RCPT TO:<%s>\r\n" % r).encode())
        assert c.reply()[0] == 250, r
    assert c.cmd("DATA")[0] == 354
    assert c.cmd("hi\r\n.")[0] == 250
    dirs = sorted(p.name for p in (base / "example.test").iterdir())
    assert len(dirs) == 4, dirs
    for d in dirs:
        assert len(list((base / "example.test" / d / "new").iterdir())) == 1


def test_sigterm_between_bdat_chunks_lets_the_message_finish(start_mxd):
    """A BDAT message is a transaction in progress between its chunks
    too: SIGTERM after its first chunk lets it reach LAST, 250, then
    421 (it used to get the 421 after the first chunk, message lost)."""
    m = start(start_mxd, "-o", "shutdown_grace=20")
    c = session(m)
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
    c.send(b"BDAT 6\r\nfirst\n")
    assert c.reply()[1] == ["250 2.0.0 6 octets received"]
    m.signal(signal.SIGTERM)
    time.sleep(0.3)
    c.send(b"BDAT 7 LAST\r\nsecond\n")
    code, lines = c.reply()
    assert code == 250 and "queued as" in lines[0], lines
    code, lines = c.reply()
    assert code == 421 and lines[0].startswith("421 4.3.2 "), lines
    (msg,) = m.wait_messages(1)
    assert msg.read_bytes().endswith(b"first\nsecond\n")
    assert m.proc.wait(10) == 0


def test_debug_log_leaves_out_a_chunk_after_a_split_bdat_line(start_mxd):
    m = start(start_mxd, "-v")
    c = session(m)
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
    c.send(b"BD")
    time.sleep(0.2)
    c.send(b"AT 17 LAST\r\nsecret-chunk-body")
    assert c.reply()[0] == 250
    c.cmd("QUIT")
    text = m.wait_log(r" disconnect ")
    assert "secret" not in text


def test_long_utf8_domain_in_a_template_is_stored(start_mxd, tmp_path):
    """A 120-octet UTF-8 domain encodes to more than a file name may
    hold: the component is shortened with a hash, not refused (451)."""
    base = tmp_path / "md"
    m = start(start_mxd, "-m", str(base) + "/%d/%l")
    c = session(m)
    label = "\u00e9" * 30			# 60 octets, a legal label
    dom = "%s.%s.example" % (label, label)
    assert c.cmd("MAIL FROM:<a@client.example> SMTPUTF8")[0] == 250
    c.send(("RCPT TO:<u@%s>\r\n" % dom).encode())
    assert c.reply()[0] == 250
    assert c.cmd("DATA")[0] == 354
    code, lines = c.cmd("hi\r\n.")
    assert code == 250, lines
    (d,) = list(base.iterdir())
    assert len(d.name) <= 200 and re.search(r"=[0-9a-f]{16}$", d.name), d
