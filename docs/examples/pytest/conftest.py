"""A pytest fixture that runs mxd as a throw-away SMTP server.

Copy this file next to your tests.  Each test that asks for `mxd` gets
its own server on a free loopback port, capturing every message into
tmp_path/capture; it is stopped after the test, which fails unless mxd
exits 0.  Faults come from a marker:

    @pytest.mark.faults("rcpt ~ *@bounce.test reply 550 5.1.1 No such user")
    def test_bounce(mxd):
        ...

The binary is $MXD_BINARY, or mxd on PATH.
"""

import collections
import json
import os
import re
import signal
import subprocess

import pytest

MXD = os.environ.get("MXD_BINARY", "mxd")

# One captured message: the parsed ID.json, and ID.eml's bytes.
Message = collections.namedtuple("Message", "meta eml")


class Server:
    def __init__(self, proc, host, port, capture, log):
        self.proc = proc
        self.host = host
        self.port = port
        self.capture = capture    # the --capture directory
        self.log = log            # mxd's log (its stderr)

    def messages(self):
        """The messages captured so far, oldest first.  mxd writes both
        files before it answers 250, so after smtplib's sendmail()
        returns, the message is here."""
        found = sorted(self.capture.glob("*.json"),
                       key=lambda p: p.stat().st_mtime_ns)
        return [Message(json.loads(p.read_text()),
                        p.with_suffix(".eml").read_bytes()) for p in found]


def pytest_configure(config):
    config.addinivalue_line("markers", "faults(*rules): --fault rules for mxd")


@pytest.fixture
def mxd(request, tmp_path):
    marker = request.node.get_closest_marker("faults")
    argv = [MXD, "--listen", "127.0.0.1:0",
            "--capture", str(tmp_path / "capture")]
    for rule in marker.args if marker else ():
        argv += ["--fault", rule]
    log = tmp_path / "mxd.log"
    with open(log, "wb") as err:
        # cwd: mxd makes its self-signed certificate in its data_dir, "."
        proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=err, text=True)
    # mxd prints "listening 127.0.0.1:PORT" once it accepts connections;
    # if it cannot start, it exits and its stdout ends.
    for line in proc.stdout:
        m = re.fullmatch(r"listening (.*):(\d+)\n", line)
        if m:
            break
    else:
        proc.wait()
        pytest.fail("mxd did not start:\n" + log.read_text())

    yield Server(proc, m.group(1), int(m.group(2)), tmp_path / "capture", log)

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0, log.read_text()
    proc.stdout.close()
