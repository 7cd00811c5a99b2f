"""Configuration and policy: --check, file errors, layering of file and
flags, --help against the key table, the recipient-domain policy, Maildir
templates, and an IPv6 listener."""

import json
import re
import socket
import subprocess
import time

import pytest

from conftest import BINARY, ROOT

HOST = "mx.test"
QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as (\S+)$")


def run_mxd(cwd, *args, timeout=10):
    """mxd in a directory of the test's own: a real start may write
    files (the self-signed certificate) to its working directory."""
    return subprocess.run([BINARY] + list(args), capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


def greet(mxd):
    c = mxd.client()
    code, lines = c.reply()
    assert code == 220, lines
    return c


def ehlo(c):
    code, lines = c.cmd("EHLO client.example")
    assert code == 250, lines
    return lines


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_fields(mxd):
    """The key=value pairs of the one "start" log line."""
    text = mxd.wait_log(r"^\S+ - start ")
    (line,) = [x for x in text.splitlines() if re.match(r"\S+ - start ", x)]
    return dict(re.findall(r' (\w+)=("[^"]*"|\S*)', line))


# ---- --check and file errors -----------------------------------------------


GOOD = """\
; a comment
# another comment
hostname = mx.example.test
listen = 127.0.0.1:2525
listen = [::1]:2525
domain = example.test
domain = Other.Example
maildir = ./mail/%d/%l
max_message_size = 10M
max_recipients = 200
max_command_line = 1024
max_text_line = 0
max_errors = 5
max_connections = 100
max_connections_per_ip = 0
idle_timeout = 5m
shutdown_grace = 10s
bare_newline = normalize
delivery_threads = 2
log_level = debug
log_format = json
data_dir = ./state
tls = yes
tls_min_version = TLSv1.2
"""


def test_check_good_file(tmp_path):
    conf = tmp_path / "good.conf"
    conf.write_text(GOOD)
    r = run_mxd(tmp_path, "--check", "-c", str(conf))
    assert r.returncode == 0, r.stderr
    assert "configuration ok" in r.stdout
    assert r.stderr == ""
    # --check opens and writes nothing: no Maildir, no certificate.
    assert list(tmp_path.iterdir()) == [conf]
    r = run_mxd(tmp_path, "-n", "--config=%s" % conf)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("lines,bad_line,words", [
    (["hostname = a.example", "max_message_size = lots"], 2,
     ["max_message_size", "lots"]),
    (["max_recipients = 10"], 1, ["max_recipients", "10"]),
    (["max_message_size = 5"], 1, ["max_message_size"]),
    (["idle_timeout = 0"], 1, ["idle_timeout"]),
    (["idle_timeout = soon"], 1, ["idle_timeout", "soon"]),
    (["", "", "bare_newline = sometimes"], 3, ["bare_newline", "sometimes"]),
    (["listen = 127.0.0.1"], 1, ["listen", "127.0.0.1"]),
    (["listen = localhost:25"], 1, ["listen", "localhost:25"]),
    (["listen = 127.0.0.1:99999"], 1, ["listen"]),
    (["domain = not_a domain"], 1, ["domain"]),
    (["hostname = -bad-"], 1, ["hostname", "-bad-"]),
    (["log_level = loud"], 1, ["log_level", "loud"]),
    (["max_errors = -1"], 1, ["max_errors"]),
    (["# c", "frobnicate = 1"], 2, ["frobnicate", "unknown key"]),
    (["hostname = a.example", "[server]", "max_errors = 3"], None,
     ["unknown section", "server"]),
    (["hostname = a.example", "this line has no equals sign"], 2,
     ["syntax"]),
])
def test_check_bad_file_names_file_line_key(tmp_path, lines, bad_line,
                                            words):
    conf = tmp_path / "bad.conf"
    conf.write_text("\n".join(lines) + "\n")
    r = run_mxd(tmp_path, "--check", "-c", str(conf))
    assert r.returncode != 0
    assert "configuration ok" not in r.stdout
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1, err
    if bad_line is None:
        # The section header or its first key: either names the place.
        m = re.search(re.escape(str(conf)) + r":(\d+): ", err)
        assert m and int(m.group(1)) in (2, 3), err
    else:
        assert "%s:%d: " % (conf, bad_line) in err, err
    for w in words:
        assert w in err, (w, err)
    # The same file stops a real start, before anything listens.
    r = run_mxd(tmp_path, "-c", str(conf), "--listen", "127.0.0.1:0",
                "-m", str(tmp_path / "m"))
    assert r.returncode != 0
    assert "listening" not in r.stdout
    assert err in r.stderr


def test_check_empty_unknown_section(tmp_path):
    """An unknown section is an error even with no keys under it."""
    conf = tmp_path / "sect.conf"
    conf.write_text("hostname = a.example\n[tls]\n; nothing yet\n")
    r = run_mxd(tmp_path, "--check", "-c", str(conf))
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert "%s:2: " % conf in r.stderr and "tls" in r.stderr, r.stderr


def test_check_missing_file(tmp_path):
    r = run_mxd(tmp_path, "--check", "-c", str(tmp_path / "nope.conf"))
    assert r.returncode != 0
    assert str(tmp_path / "nope.conf") in r.stderr


def test_check_bad_flags(tmp_path):
    r = run_mxd(tmp_path, "--check", "-o", "max_errors=many")
    assert r.returncode != 0 and "max_errors" in r.stderr
    assert "many" in r.stderr
    r = run_mxd(tmp_path, "--check", "-o", "no_such_key=1")
    assert r.returncode != 0 and "no_such_key" in r.stderr
    r = run_mxd(tmp_path, "--check", "-o", "max_errors")
    assert r.returncode != 0 and "KEY=VALUE" in r.stderr
    r = run_mxd(tmp_path, "--check", "--listen", "nowhere")
    assert r.returncode != 0 and "nowhere" in r.stderr
    r = run_mxd(tmp_path, "--check", "--no-such-flag")
    assert r.returncode != 0
    r = run_mxd(tmp_path, "--check", "stray")
    assert r.returncode != 0 and "stray" in r.stderr
    r = run_mxd(tmp_path, "--check", "-o", "max_text_line=999")
    assert r.returncode != 0 and "max_text_line" in r.stderr
    r = run_mxd(tmp_path, "-m", str(tmp_path / "x%q"), "--listen",
                "127.0.0.1:0")
    assert r.returncode != 0 and "%q" in r.stderr
    assert "listening" not in r.stdout


def test_check_refuses_what_start_refuses(tmp_path):
    """--check must not call a configuration good that cannot start:
    a Maildir template with an unknown %-escape is refused at start."""
    tmpl = str(tmp_path / "m" / "%d" / "%q")
    r = run_mxd(tmp_path, "-m", tmpl, "--listen", "127.0.0.1:0")
    assert r.returncode != 0 and "%q" in r.stderr
    r = run_mxd(tmp_path, "--check", "-m", tmpl)
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert "maildir" in r.stderr and "%q" in r.stderr
    conf = tmp_path / "t.conf"
    conf.write_text("hostname = a.example\nmaildir = %s\n" % tmpl)
    r = run_mxd(tmp_path, "--check", "-c", str(conf))
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert "maildir" in r.stderr


# ---- layering: defaults, file, flags ---------------------------------------


def test_flag_overrides_file(start_mxd):
    conf = "max_message_size = 2048\nhostname = file.example\n"
    m1 = start_mxd(config=conf)
    c = greet(m1)
    lines = ehlo(c)
    assert "250-SIZE 2048" in lines
    assert lines[0] == "250-file.example"
    m2 = start_mxd("-o", "max_message_size=4096", "-H", "flag.example",
                   config=conf)
    c = greet(m2)
    lines = ehlo(c)
    assert "250-SIZE 4096" in lines
    assert lines[0] == "250-flag.example"
    # -o hostname= and -H are the same key: the last one wins.
    m3 = start_mxd("-H", "first.example", "-o", "hostname=last.example")
    assert start_fields(m3)["hostname"] == "last.example"


def test_tls_off_by_flag(start_mxd):
    on = start_mxd()
    assert "250-STARTTLS" in ehlo(greet(on))
    assert start_fields(on)["tls"] != "off"
    off = start_mxd("-o", "tls=no")
    lines = ehlo(greet(off))
    assert "250-STARTTLS" not in lines
    assert lines[-1] == "250 ENHANCEDSTATUSCODES"
    assert start_fields(off)["tls"] == "off"


def test_cmdline_listen_replaces_file_listen(start_mxd):
    p1, p2 = free_port(), free_port()
    conf = "listen = 127.0.0.1:%d\nlisten = 127.0.0.1:%d\n" % (p1, p2)
    mxd = start_mxd("--listen", "127.0.0.1:0", config=conf)
    assert mxd.port not in (p1, p2)
    assert start_fields(mxd)["listen"] == "127.0.0.1:%d" % mxd.port
    for p in (p1, p2):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", p), timeout=2)
    greet(mxd)


def test_file_listen_used_without_flag(start_mxd):
    conf = "listen = 127.0.0.1:0\nlisten = 127.0.0.1:0\n"
    mxd = start_mxd(config=conf)
    assert len(mxd.listening) == 2
    assert mxd.listening[0][1] != mxd.listening[1][1]
    for host, port in mxd.listening:
        s = socket.create_connection((host, port), timeout=5)
        assert s.recv(100).startswith(b"220 ")
        s.close()


def test_cmdline_domain_replaces_file_domains(start_mxd):
    conf = "domain = file.example\n"
    mxd = start_mxd("-d", "flag.example", config=conf)
    assert start_fields(mxd)["domains"] == "flag.example"
    c = greet(mxd)
    ehlo(c)
    assert c.cmd("MAIL FROM:<s@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<x@file.example>")[0] == 550
    assert c.cmd("RCPT TO:<x@flag.example>")[0] == 250


def test_log_format_json_from_file(start_mxd):
    mxd = start_mxd(config="log_format = json\n")
    c = greet(mxd)
    c.send(b'EHLO j.example\r\nMAIL FROM:<"q\\"\\\\"@x.example>\r\n'
           b'WHAT\x01"\\\xff\r\nQUIT\r\n')
    assert c.closed()
    text = mxd.wait_log(r'"event":"disconnect"')
    events = [json.loads(x) for x in text.splitlines()]
    assert [e["event"] for e in events if e["session"] == "-"][-1] == \
        "start"
    events = [e for e in events if e["session"] != "-"]
    assert [e["event"] for e in events] == ["connect", "ehlo",
                                           "mail", "reject", "disconnect"]
    assert events[1]["name"] == "j.example"
    assert events[2]["from"] == '<"q\\"\\\\"@x.example>'
    assert events[3]["code"] == 500
    assert events[3]["reply"] == "5.5.2 Error: invalid character in command"
    assert events[3]["line"].endswith('\x01"\\\xff')
    assert all(e["session"] == events[0]["session"] for e in events)


# ---- --help against the source tables --------------------------------------


def source_keys():
    text = (ROOT / "server" / "config.c").read_text()
    table = text[text.index("static const struct key keys[]"):]
    table = table[:table.index("};")]
    keys = re.findall(r'\{\s*"([a-z_]+)",\s*K_', table)
    assert len(keys) >= 10, keys
    return keys


def source_long_flags():
    text = (ROOT / "server" / "main.c").read_text()
    table = text[text.index("struct option longopts[]"):]
    table = table[:table.index("};")]
    flags = re.findall(r'\{\s*"([a-z-]+)",', table)
    assert len(flags) >= 5, flags
    return flags


def test_help_lists_every_flag_and_key(tmp_path):
    r = run_mxd(tmp_path, "--help")
    assert r.returncode == 0
    out = r.stdout
    for f in source_long_flags():
        assert re.search(r"^\s+(-\w, )?--%s\b" % re.escape(f), out, re.M), f
    assert re.search(r"^\s+-o KEY=VALUE", out, re.M)
    listed = re.findall(r"^  ([a-z_]+) {2,}\S", out, re.M)
    assert listed == source_keys()
    r2 = run_mxd(tmp_path, "-h")
    assert r2.returncode == 0 and r2.stdout == out


def test_version(tmp_path):
    r = run_mxd(tmp_path, "--version")
    assert r.returncode == 0
    # The version, and the TLS library it was built on.
    assert re.match(r"^mxd \d+\.\d+\.\d+ \(mbedTLS \d+\.\d+\.\d+\)\n$",
                    r.stdout), r.stdout


# ---- recipient policy ------------------------------------------------------


def test_domains_policy(start_mxd):
    mxd = start_mxd("-H", HOST, "--domain", "example.test",
                    "--domain", "Second.Example")
    f = start_fields(mxd)
    assert f["domains"] == "example.test,second.example"
    assert "note" not in f
    c = greet(mxd)
    ehlo(c)
    assert c.cmd("MAIL FROM:<s@client.example>")[1] == ["250 2.1.0 Ok"]
    answers = [
        ("a@example.test", "250 2.1.5 Ok"),
        ("b@EXAMPLE.Test", "250 2.1.5 Ok"),
        ("c@second.example", "250 2.1.5 Ok"),
        ("d@SECOND.EXAMPLE", "250 2.1.5 Ok"),
        ("x@elsewhere.example", "550 5.7.1 Relaying denied"),
        ("x@sub.example.test", "550 5.7.1 Relaying denied"),
        ("x@example.test.evil.example", "550 5.7.1 Relaying denied"),
        ("x@xexample.test", "550 5.7.1 Relaying denied"),
        ("postmaster@elsewhere.example", "550 5.7.1 Relaying denied"),
        ("x@[127.0.0.1]", "550 5.7.1 Relaying denied"),
        ("postmaster", "250 2.1.5 Ok"),
        ("Postmaster", "250 2.1.5 Ok"),
    ]
    for rcpt, reply in answers:
        assert c.cmd("RCPT TO:<%s>" % rcpt)[1] == [reply], rcpt
    assert c.cmd("DATA")[0] == 354
    c.send(b"policy\r\n.\r\nQUIT\r\n")
    msgid = QUEUED.match(c.reply()[1][0]).group(1)
    assert c.reply()[0] == 221
    log = mxd.wait_log(r" disconnect ")
    results = re.findall(r" rcpt to=(\S+) result=(\S+)$", log, re.M)
    assert results == [
        ("<%s>" % r, "ok" if a.startswith("250") else "relay_denied")
        for r, a in answers]
    assert re.search(r" accepted id=%s size=8 rcpts=6 " % re.escape(msgid),
                     log), log
    (msg,) = mxd.wait_messages(1)
    assert b"elsewhere" not in msg.read_bytes()


def test_only_one_accepted_recipient_is_named(start_mxd):
    mxd = start_mxd("-d", "example.test")
    c = greet(mxd)
    ehlo(c)
    assert c.cmd("MAIL FROM:<s@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<no@elsewhere.example>")[0] == 550
    assert c.cmd("RCPT TO:<yes@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(b"one\r\n.\r\n")
    assert QUEUED.match(c.reply()[1][0])
    (msg,) = mxd.wait_messages(1)
    data = msg.read_bytes()
    assert re.search(rb"\n\tfor <yes@example\.test>; [^\n]+\none\n$", data)


def test_all_recipients_denied_no_data(start_mxd):
    mxd = start_mxd("-d", "example.test")
    c = greet(mxd)
    ehlo(c)
    assert c.cmd("MAIL FROM:<s@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<x@elsewhere.example>")[1] == [
        "550 5.7.1 Relaying denied"]
    assert c.cmd("DATA")[1] == ["554 5.5.1 Error: no valid recipients"]
    time.sleep(0.1)
    assert mxd.messages() == []


def test_no_domain_means_any(start_mxd):
    mxd = start_mxd()
    f = start_fields(mxd)
    assert f["domains"] == "any"
    assert "every recipient domain" in f["note"]
    c = greet(mxd)
    ehlo(c)
    assert c.cmd("MAIL FROM:<s@client.example>")[0] == 250
    for r in ("a@anything.example", "b@[192.0.2.7]", "postmaster"):
        assert c.cmd("RCPT TO:<%s>" % r)[1] == ["250 2.1.5 Ok"], r


def test_domain_from_config_file(start_mxd):
    mxd = start_mxd(config="domain = Conf.Example\n")
    assert start_fields(mxd)["domains"] == "conf.example"
    c = greet(mxd)
    ehlo(c)
    assert c.cmd("MAIL FROM:<s@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<a@conf.EXAMPLE>")[0] == 250
    assert c.cmd("RCPT TO:<a@other.example>")[0] == 550


# ---- Maildir templates -----------------------------------------------------


def test_maildir_template_one_copy_per_mailbox(start_mxd, tmp_path):
    base = tmp_path / "store"
    mxd = start_mxd("-H", HOST, "-m", "%s/%%d/%%l" % base)
    c = greet(mxd)
    ehlo(c)
    rcpts = ["alice@one.example", "Bob@One.Example", "carol@two.example",
             "alice@ONE.example", "postmaster"]
    assert c.cmd("MAIL FROM:<s@client.example>")[0] == 250
    for r in rcpts:
        assert c.cmd("RCPT TO:<%s>" % r)[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: fan out\r\n\r\nsame for all\r\n.\r\n")
    msgid = QUEUED.match(c.reply()[1][0]).group(1)
    assert c.cmd("QUIT")[0] == 221
    assert c.closed()
    boxes = sorted(str(p.parent.parent.relative_to(base))
                   for p in base.glob("*/*/new/*"))
    # alice twice (case differs) is one mailbox; postmaster is ours.
    assert boxes == ["mx.test/postmaster", "one.example/alice",
                     "one.example/bob", "two.example/carol"]
    bodies = set()
    for p in base.glob("*/*/new/*"):
        assert msgid in p.name
        bodies.add(p.read_bytes())
    assert len(bodies) == 1
    (data,) = bodies
    assert data.startswith(b"Return-Path: <s@client.example>\n")
    assert b"\tfor <" not in data
    assert data.endswith(b" +0000\nSubject: fan out\n\nsame for all\n")
    assert list(base.glob("*/*/tmp/*")) == []
    log = mxd.wait_log(r" disconnect ")
    assert re.search(r" accepted id=%s size=\d+ rcpts=5 " %
                     re.escape(msgid), log), log


def test_maildir_template_two_domains_separate_messages(start_mxd,
                                                       tmp_path):
    base = tmp_path / "t"
    mxd = start_mxd("-m", "%s/%%d/%%l" % base, "-d", "a.example",
                    "-d", "b.example")
    c = greet(mxd)
    ehlo(c)
    ids = []
    for rcpt, text in (("u@a.example", b"to a"), ("v@b.example", b"to b")):
        assert c.cmd("MAIL FROM:<s@client.example>")[0] == 250
        assert c.cmd("RCPT TO:<%s>" % rcpt)[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(text + b"\r\n.\r\n")
        ids.append(QUEUED.match(c.reply()[1][0]).group(1))
    (fa,) = list((base / "a.example" / "u" / "new").iterdir())
    (fb,) = list((base / "b.example" / "v" / "new").iterdir())
    assert ids[0] in fa.name and fa.read_bytes().endswith(b"\nto a\n")
    assert ids[1] in fb.name and fb.read_bytes().endswith(b"\nto b\n")
    assert b"\tfor <u@a.example>; " in fa.read_bytes()


def test_maildir_from_config_file(start_mxd, tmp_path):
    box = tmp_path / "confbox"
    mxd = start_mxd(config="maildir = %s\n" % box)
    assert start_fields(mxd)["delivery"] == "maildir:%s" % box
    c = greet(mxd)
    ehlo(c)
    assert c.cmd("MAIL FROM:<s@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<r@x.example>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(b"conf\r\n.\r\n")
    assert QUEUED.match(c.reply()[1][0])
    (f,) = list((box / "new").iterdir())
    assert f.read_bytes().endswith(b"\nconf\n")


# ---- IPv6 ------------------------------------------------------------------


def test_ipv6_listener(start_mxd):
    mxd = start_mxd("-H", HOST, "--listen", "[::1]:0")
    assert mxd.host == "::1"
    assert start_fields(mxd)["listen"] == "[::1]:%d" % mxd.port
    s = socket.create_connection(("::1", mxd.port), timeout=10)
    from conftest import RawClient
    c = RawClient(s)
    assert c.reply()[1] == ["220 %s ESMTP mxd" % HOST]
    local_port = s.getsockname()[1]
    assert c.cmd("EHLO [IPv6:::1]")[0] == 250
    assert c.cmd("MAIL FROM:<s@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<r@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(b"over v6\r\n.\r\n")
    msgid = QUEUED.match(c.reply()[1][0]).group(1)
    (msg,) = mxd.wait_messages(1)
    data = msg.read_bytes()
    assert data.startswith(
        b"Return-Path: <s@client.example>\n"
        b"Received: from [IPv6:::1] ([IPv6:::1])\n"
        b"\tby mx.test (mxd) with ESMTP id %s\n"
        b"\tfor <r@example.test>; " % msgid.encode())
    assert data.endswith(b" +0000\nover v6\n")
    log = mxd.log()
    assert re.search(r" connect client=\[::1\]:%d listener=\[::1\]:%d "
                     r"pid=\d+$" %
                     (local_port, mxd.port), log, re.M), log
    # Not on IPv4.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", mxd.port), timeout=2)


def test_ipv4_and_ipv6_listeners_together(start_mxd):
    mxd = start_mxd("--listen", "127.0.0.1:0", "--listen", "[::1]:0")
    assert [h for h, p in mxd.listening] == ["127.0.0.1", "::1"]
    for host, port in mxd.listening:
        s = socket.create_connection((host, port), timeout=5)
        assert s.recv(100).startswith(b"220 ")
        s.sendall(b"QUIT\r\n")
        assert s.recv(100) == b"221 2.0.0 Bye\r\n"
        s.close()


# ---- fixes from reading the manual against the code -----------------------

def test_first_error_in_the_file_is_the_one_reported(tmp_path):
    """inih goes on after a syntax error; the report is the first one."""
    conf = tmp_path / "first.conf"
    conf.write_text("no equals sign here\nmax_recipients = lots\n")
    r = run_mxd(tmp_path, "--check", "-c", str(conf))
    assert r.returncode != 0
    assert "%s:1: syntax error" % conf in r.stderr, r.stderr
    conf.write_text("max_recipients = lots\nno equals sign here\n")
    r = run_mxd(tmp_path, "--check", "-c", str(conf))
    assert r.returncode != 0
    assert "%s:1: max_recipients" % conf in r.stderr, r.stderr


def test_o_without_equals_is_a_usage_error(tmp_path):
    r = run_mxd(tmp_path, "-o", "max_recipients")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "KEY=VALUE" in r.stderr


def test_bad_enum_value_lists_the_allowed_values(tmp_path):
    r = run_mxd(tmp_path, "--check", "-o", "log_level=loud")
    assert r.returncode != 0
    assert r.stderr.strip() == \
        "mxd: log_level: 'loud' is not one of error warn info debug", \
        r.stderr


def test_double_percent_in_a_plain_maildir_path(start_mxd, tmp_path):
    """'%%' is a '%' in every maildir value, template or not."""
    base = tmp_path / "pct"
    m = start_mxd("-m", str(base) + "/100%%")
    c = greet(m)
    ehlo(c)
    assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    assert c.cmd("x\r\n.")[0] == 250
    c.cmd("QUIT")
    assert len(list((base / "100%" / "new").iterdir())) == 1
    assert not (base / "100%%").exists()
