#!/usr/bin/env python3
"""Write the seed inputs of fuzz_session and fuzz_path.

  tests/fuzz/make_seeds.py [--check]

fuzz_session: one input per tests/unit/transcripts/*.t, named t-<name>: the
6-octet header of fuzz_session.c (the transcript's settings, a chunking
seed from its name) and the client's bytes (C: lines with CRLF, R: bytes,
!repeat).  At a T: (the TLS handshake), what the client sent after its
STARTTLS line is left out: fuzz_session resumes right after that line, so
those octets would run as if sent inside TLS.  Settings with no place in
the header (!deny, !store, !hostname) are dropped.

fuzz_path: p-NN inputs from PATHS below (paths, parameter strings, domains
and address literals).

Inputs found by the fuzzer are merged in beside these (see README.md);
this script only rewrites its own t-* and p-* files.  --check compares
instead of writing, and fails when a file would change.
"""
import glob
import hashlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TRANSCRIPTS = os.path.join(HERE, "..", "unit", "transcripts")

# The tables of fuzz_session.c, by value.
MSG_SIZES = [25 * 1024 * 1024, 0, 1, 24, 40, 100, 1000, 1024]
TEXT_LINES = [1000, 0, 1, 3, 12, 80, 998, 1001]
RCPT_MAXES = [100, 0, 1, 2, 3, 5, 8, 1000]
ERRORS_MAXES = [10, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15]
MSGS_MAXES = [1000, 0, 1, 2]
GREET_NOW, GREET_HELD, GREET_PREGREET, GREET_REFUSE = range(4)


def unescape(s):
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode("latin-1")
            i += 1
            continue
        e = s[i + 1]
        if e == "x":
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
            continue
        out += {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0",
                "\\": b"\\"}[e]
        i += 2
    return bytes(out)


def cut_after_starttls(seg):
    i = seg.upper().rfind(b"STARTTLS\r\n")
    return seg if i < 0 else seg[:i + len(b"STARTTLS\r\n")]


def convert(path):
    name = os.path.splitext(os.path.basename(path))[0]
    opts = {"tls": 0, "require_tls": 0, "normalize": 0, "msg": 0,
            "text": 0, "rcpt": 0, "errors": 0, "dsn": 0, "msgs": 0,
            "greet": GREET_NOW}
    segs = [b""]
    with open(path, encoding="latin-1") as f:
        for line in f.read().split("\n"):
            if not line or line.startswith("#"):
                continue
            if line.startswith("!"):
                key, _, val = line[1:].partition(" ")
                if key == "tls":
                    opts["tls"] = int(val) != 0
                elif key == "require_tls":
                    opts["require_tls"] = int(val) != 0
                elif key == "bare_newline":
                    opts["normalize"] = val == "normalize"
                elif key == "max_message_size":
                    opts["msg"] = MSG_SIZES.index(int(val))
                elif key == "max_text_line":
                    opts["text"] = TEXT_LINES.index(int(val))
                elif key == "max_recipients":
                    opts["rcpt"] = RCPT_MAXES.index(int(val))
                elif key == "max_errors":
                    n = int(val)
                    # Above the table: no limit, which the table spells 0.
                    opts["errors"] = (ERRORS_MAXES.index(n)
                                      if n in ERRORS_MAXES else 1)
                elif key == "dsn":
                    opts["dsn"] = int(val) != 0
                elif key == "max_messages":
                    opts["msgs"] = MSGS_MAXES.index(int(val))
                elif key == "pregreet":
                    opts["greet"] = GREET_PREGREET
                elif key == "repeat":
                    count, _, text = val.partition(" ")
                    segs[-1] += unescape(text) * int(count)
                elif key in ("deny", "store", "hostname", "nogreet"):
                    pass
                else:
                    raise SystemExit("%s: unknown setting %s" % (path, key))
                continue
            kind, text = line[0], line[2:]
            if text.startswith(" "):
                text = text[1:]
            if kind == "C":
                segs[-1] += unescape(text) + b"\r\n"
            elif kind == "R":
                segs[-1] += unescape(text)
            elif kind == "T":
                segs[-1] = cut_after_starttls(segs[-1])
                segs.append(b"")
    h = hashlib.sha256(name.encode()).digest()
    hdr = bytes([
        opts["tls"] | opts["require_tls"] << 1 | opts["normalize"] << 2 |
        opts["dsn"] << 4 | opts["greet"] << 6,
        opts["msg"] | opts["text"] << 3,
        opts["rcpt"] | opts["errors"] << 3,
        7 | (h[0] & 0xf8),          # mixed chunk sizes, a seed
        h[1],                       # drain policy and seed
        opts["msgs"] << 3,
    ])
    return "t-" + name, hdr + b"".join(segs)


PATHS = [
    b"<>",
    b"<postmaster>",
    b"<Postmaster>",
    b"<a@b.example>",
    b"<alice@client.example> SIZE=1000 BODY=8BITMIME",
    b"<a@b.example>  SIZE=1000   body=8BITMIME",
    b"<a@b.example> SIZE=",
    b"<a@b.example> =x",
    b"<a@b.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b.example",
    b"<a@b.example> RET=HDRS ENVID=QQ314159",
    b"<a@b.example> SMTPUTF8 REQUIRETLS AUTH=<>",
    b"<@relay1.example,@relay2.example:bob@mx.test>",
    b"<@[192.0.2.1]:bob@mx.test>",
    b"<\"john doe\"@mx.test>",
    b"<\"quoted\\\"quote>\"@mx.test>",
    b"<\"a\\\\b\"@mx.test>",
    b"<user@[192.0.2.7]>",
    b"<user@[IPv6:::1]>",
    b"<user@[IPv6:2001:db8::ffff:192.0.2.1]>",
    b"<user@[x-tag:any]>",
    b"<user@[IPv6:zz::1]>",
    b"<user@[1.2.3]>",
    b"<o'neil+tag=x@sub.mx.test>",
    b"<a..b@c.example>",
    b"<a@c.example.>",
    b"<a@-c.example>",
    b"<a@c_d.example>",
    b"<a b@c.example>",
    b"<\xc3\xa9@c.example>",
    b"<" + b"a" * 65 + b"@c.example>",
    b"<" + b"a" * 64 + b"@" + b"b" * 63 + b"." + b"c" * 63 + b"." +
    b"d" * 60 + b">",
    b"a@b.example",
    b"<a@b.example",
    b"SIZE=10 BODY=7BIT",
    b" SIZE=99999999999999999999",
    b" KEY-1=v KEY-2 K=a=b",
    b"mx.test",
    b"windows_pc.example",
    b"[192.0.2.1]",
    b"[IPv6:2001:db8::1]",
    b"[tag:dcontent]",
    b"a" * 63 + b"." + b"b" * 64,
    b"<\xc3\xa9l\xc3\xa8ve@\xc3\xa9cole.example> SMTPUTF8",
    b"<user@\xe4\xbe\x8b\xe3\x81\x88.\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88>",
    b"<\"\xf0\x9f\x93\xa7 box\"@mx.test>",
    b"<a@b.example> ORCPT=utf-8;\xc3\xa9@mx.test NOTIFY=NEVER",
    b"<a@\xed\xa0\x80.example>",
    b"<a@\xc0\xaf.example>",
    b"QQ314159+2B+3D",
    b"rfc822;b@mx.test",
    b"+2b+3D",
]


def path_seeds():
    return [("p-%02d" % i, p) for i, p in enumerate(PATHS)]


def main():
    check = "--check" in sys.argv[1:]
    plan = []
    for path in sorted(glob.glob(os.path.join(TRANSCRIPTS, "*.t"))):
        name, data = convert(path)
        plan.append((os.path.join(HERE, "corpus", "fuzz_session", name),
                     data))
    for name, data in path_seeds():
        plan.append((os.path.join(HERE, "corpus", "fuzz_path", name), data))
    stale = 0
    for dest, data in plan:
        if check:
            try:
                with open(dest, "rb") as f:
                    same = f.read() == data
            except FileNotFoundError:
                same = False
            if not same:
                print("stale: %s" % os.path.relpath(dest, HERE))
                stale += 1
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as f:
            f.write(data)
    if not check:
        print("wrote %d seeds" % len(plan))
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
