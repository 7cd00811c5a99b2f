"""testssl.sh (Debian's testssl, 3.0.x) against mxd's STARTTLS: protocols
(-p), cipher categories (-s) and vulnerabilities (-U).  Any finding of
severity MEDIUM, HIGH or CRITICAL fails the test (so does a FATAL scan
error); the findings of severity LOW and above are printed.

Nothing leaves loopback: the target is an IP address, --nodns none turns
off testssl's own lookups, and NXCONNECT=127.0.0.1:0 replaces the
"invalid." host that testssl's openssl feature probes would otherwise
look up in the DNS.
"""

import json
import os
import re
import shutil
import subprocess

from tlsutil import (HOST, deliver_plain, make_cert, start_tls_mxd,
                     stored)

assert start_tls_mxd  # the fixture, for pytest

TESTSSL = shutil.which("testssl") or "/usr/bin/testssl"

RANK = {"DEBUG": 0, "INFO": 1, "OK": 2, "LOW": 3, "MEDIUM": 4, "HIGH": 5,
        "CRITICAL": 6}
BAD = ("MEDIUM", "HIGH", "CRITICAL", "FATAL")

# Checks that must have run (and come out as they do for an AEAD-only,
# TLS 1.2 server): a scan that stopped early must not pass.
EXPECTED = {
    "SSLv2": "not offered",
    "SSLv3": "not offered",
    "TLS1": "not offered",
    "TLS1_1": "not offered",
    "TLS1_2": "offered",
    "cipherlist_NULL": "not offered",
    "cipherlist_aNULL": "not offered",
    "cipherlist_EXPORT": "not offered",
    "cipherlist_LOW": "not offered",
    "cipherlist_3DES_IDEA": "not offered",
    "cipherlist_STRONG": "offered",
}
VULNS = ("heartbleed", "CCS", "ROBOT", "secure_renego",
         "secure_client_renego", "CRIME_TLS", "POODLE_SSL", "SWEET32",
         "FREAK", "DROWN", "LOGJAM", "BEAST", "LUCKY13", "RC4",
         "fallback_SCSV")


def run_testssl(m, tmp_path, tag):
    jsonfile = tmp_path / ("testssl-%s.json" % tag)
    argv = [TESTSSL, "--starttls", "smtp", "-p", "-s", "-U",
            "--quiet", "--color", "0", "--warnings", "batch",
            "--nodns", "none", "--connect-timeout", "10",
            "--jsonfile", str(jsonfile), "127.0.0.1:%d" % m.port]
    env = dict(os.environ, NXCONNECT="127.0.0.1:0", TERM="dumb",
               HOME=str(tmp_path))
    r = subprocess.run(argv, capture_output=True, text=True, timeout=280,
                       env=env, cwd=tmp_path)
    assert jsonfile.exists(), "testssl wrote no JSON (rc %d):\n%s%s" % (
        r.returncode, r.stdout[-3000:], r.stderr[-3000:])
    findings = json.loads(jsonfile.read_text())
    return r, findings


def check_findings(r, findings, tag):
    shown = [f for f in findings
             if RANK.get(f["severity"], 0) >= RANK["LOW"] or
             f["severity"] in ("WARN", "FATAL")]
    print("testssl findings (%s), LOW and above:" % tag)
    for f in shown:
        print("  %-8s %-28s %s" % (f["severity"], f["id"], f["finding"]))
    if not shown:
        print("  (none)")
    bad = [f for f in findings if f["severity"] in BAD]
    assert not bad, "testssl findings of MEDIUM or worse (%s):\n%s" % (
        tag, "\n".join("%s %s: %s" % (f["severity"], f["id"], f["finding"])
                       for f in bad))
    by_id = {f["id"]: f for f in findings}
    assert by_id.get("service", {}).get("finding") == "smtp", (
        "testssl did not speak STARTTLS via SMTP:\n" + r.stdout[-3000:])
    for k, want in EXPECTED.items():
        assert k in by_id, "no %s in the scan:\n%s" % (k, r.stdout[-3000:])
        assert by_id[k]["finding"].startswith(want), (k, by_id[k])
    for k in VULNS:
        assert k in by_id, "vulnerability check %s did not run:\n%s" % (
            k, r.stdout[-3000:])
    return by_id


def check_mxd_after(m, subject):
    """mxd survived the scan's hundreds of odd handshakes, each one
    logged, and still delivers."""
    assert m.proc.poll() is None
    log = m.log()
    fails = re.findall(r" tls_failed .*class=(\S+)", log)
    assert fails, "testssl caused no failed handshake?"
    assert "internal" not in fails, log
    deliver_plain(m, subject=subject)
    stored(m, subject)


def test_testssl_default_self_signed_ecdsa(start_tls_mxd, tmp_path):
    m = start_tls_mxd()
    r, findings = run_testssl(m, tmp_path, "ecdsa")
    check_findings(r, findings, "self-signed ECDSA P-256")
    check_mxd_after(m, "after-testssl-ecdsa")


def test_testssl_rsa_2048(start_tls_mxd, tmp_path):
    cert, key = make_cert(tmp_path / "certs", HOST, "rsa")
    m = start_tls_mxd("--tls-cert", cert, "--tls-key", key)
    r, findings = run_testssl(m, tmp_path, "rsa")
    by_id = check_findings(r, findings, "RSA-2048")
    # An RSA certificate, yet no RSA key transport for ROBOT to attack.
    assert by_id["ROBOT"]["severity"] == "OK", by_id["ROBOT"]
    check_mxd_after(m, "after-testssl-rsa")
