"""The zero-config path: swaks and smtplib deliver, the message lands."""

import smtplib
import subprocess


def test_swaks_delivers_to_maildir(mxd):
    r = subprocess.run(
        ["swaks", "--to", "a@example.test", "--server",
         "%s:%d" % (mxd.host, mxd.port), "--body", "hello from swaks"],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "250 2.0.0 Ok: queued as" in r.stdout
    (msg,) = mxd.wait_messages(1)
    data = msg.read_bytes()
    assert data.startswith(b"Return-Path: <")
    assert b"\nhello from swaks\n" in data
    assert b"\r\n" not in data


def test_smtplib_sendmail(mxd):
    with smtplib.SMTP(mxd.host, mxd.port) as s:
        s.ehlo("client.example")
        assert s.has_extn("pipelining")
        assert s.has_extn("8bitmime")
        assert int(s.esmtp_features["size"]) == 25 * 1024 * 1024
        refused = s.sendmail("alice@client.example", ["bob@example.test"],
                             b"Subject: t\r\n\r\nbody\r\n")
        assert refused == {}
    (msg,) = mxd.wait_messages(1)
    data = msg.read_bytes()
    header, body = data.split(b"\n\n", 1)
    assert header.startswith(b"Return-Path: <alice@client.example>\n"
                             b"Received: from client.example ([127.0.0.1])\n")
    assert b"\tfor <bob@example.test>; " in header
    assert header.endswith(b"\nSubject: t")
    assert body == b"body\n"
