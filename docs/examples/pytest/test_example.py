"""Examples of tests against mxd with smtplib; conftest.py has the
fixture.  The test suite runs these (tests/integration/meson.build)."""

import smtplib
import ssl

import pytest

MSG = b"Subject: hello\r\n\r\nHello, world.\r\n"


def test_delivery_is_captured_with_its_envelope(mxd):
    with smtplib.SMTP(mxd.host, mxd.port) as s:
        s.sendmail("alice@client.test", ["bob@example.test",
                                         "carol@example.test"], MSG)
    (msg,) = mxd.messages()
    assert msg.meta["mail_from"] == "alice@client.test"
    assert msg.meta["rcpt_to"] == ["bob@example.test", "carol@example.test"]
    assert msg.meta["esmtp"] is True
    assert msg.eml == MSG


@pytest.mark.faults("rcpt ~ *@bounce.test reply 550 5.1.1 No such user")
def test_unknown_recipient_is_refused(mxd):
    with smtplib.SMTP(mxd.host, mxd.port) as s:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            s.sendmail("alice@client.test", ["nobody@bounce.test"], MSG)
        # With one good recipient the message goes through, to it only.
        refused = s.sendmail("alice@client.test",
                             ["nobody@bounce.test", "bob@example.test"], MSG)
    assert e.value.recipients == {
        "nobody@bounce.test": (550, b"5.1.1 No such user")}
    assert refused == {"nobody@bounce.test": (550, b"5.1.1 No such user")}
    (msg,) = mxd.messages()
    assert msg.meta["rcpt_to"] == ["bob@example.test"]


@pytest.mark.faults("conn 1 tls alert handshake_failure")
def test_fallback_to_plaintext(mxd):
    """The first connection's TLS handshake fails with an alert; a
    client that falls back delivers in plaintext on its next one."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False           # mxd's certificate is self-signed
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP(mxd.host, mxd.port) as s:
        with pytest.raises(ssl.SSLError) as e:
            s.starttls(context=ctx)
    assert e.value.reason == "SSLV3_ALERT_HANDSHAKE_FAILURE"

    with smtplib.SMTP(mxd.host, mxd.port) as s:
        s.sendmail("alice@client.test", ["bob@example.test"], MSG)
    (msg,) = mxd.messages()
    assert msg.meta["connection"]["number"] == 2
    assert msg.meta["tls"] is None
