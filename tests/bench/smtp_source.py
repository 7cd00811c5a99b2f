#!/usr/bin/python3
"""Throughput of mxd against Postfix's smtp-sink, under one smtp-source load.

    tests/bench/smtp_source.py [MXD_BINARY] [-s SESSIONS] [-m MESSAGES]
                               [-l LENGTH]

Builds nothing: MXD_BINARY defaults to build/server/mxd in this tree.
Starts mxd (Maildir in a temporary directory, on a free loopback port)
and smtp-sink (which throws mail away) on another free loopback port,
runs the same smtp-source load against each (default -s 20 -m 20000
-l 1024), checks that mxd stored every message, and prints messages/s
for each and the ratio mxd/smtp-sink.  mxd fsyncs every message and its
directory before the 250; smtp-sink keeps nothing, so the ratio is the
price of durability plus any overhead of mxd's own.

Both servers are stopped on the way out, whatever happens.  The
temporary directory is removed unless --keep is given.  Run it on an
otherwise idle machine; the Maildir's file system matters (TMPDIR).
"""

import argparse
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as s:
                s.settimeout(2)
                return s.recv(512).startswith(b"220")
        except OSError:
            time.sleep(0.05)
    return False


def stop(proc, name):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        print("%s did not stop on SIGTERM: killing it" % name,
              file=sys.stderr)
        proc.kill()
        proc.wait()


def start_mxd(binary, workdir):
    log = open(workdir / "mxd.log", "wb")
    proc = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--maildir",
         str(workdir / "mail"), "--hostname", "mx.bench"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=log)
    log.close()
    line = proc.stdout.readline().decode()
    m = re.match(r"listening 127\.0\.0\.1:(\d+)$", line.strip())
    if not m:
        stop(proc, "mxd")
        raise SystemExit("mxd did not start: %r; see %s" %
                         (line, workdir / "mxd.log"))
    return proc, int(m.group(1))


def start_sink(workdir):
    argv = ["smtp-sink"]
    if os.geteuid() == 0:
        argv += ["-u", "nobody"]    # smtp-sink refuses to run as root
    for _ in range(5):
        port = free_port()
        log = open(workdir / "smtp-sink.log", "wb")
        proc = subprocess.Popen(argv + ["127.0.0.1:%d" % port, "256"],
                                cwd=workdir, stdout=log,
                                stderr=subprocess.STDOUT)
        log.close()
        if wait_listening(port, proc):
            return proc, port
        stop(proc, "smtp-sink")     # the port was taken meanwhile
    raise SystemExit("smtp-sink did not start; see %s" %
                     (workdir / "smtp-sink.log"))


def load(port, args):
    argv = ["smtp-source", "-s", str(args.sessions), "-m",
            str(args.messages), "-l", str(args.length), "-M", "localhost",
            "-f", "bench@client.example", "-t", "rcpt@example.test",
            "127.0.0.1:%d" % port]
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True)
    took = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit("%s failed (%d): %s" % (" ".join(argv),
                                                 r.returncode, r.stderr))
    return took


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mxd", nargs="?",
                    default=str(ROOT / "build" / "server" / "mxd"))
    ap.add_argument("-s", "--sessions", type=int, default=20)
    ap.add_argument("-m", "--messages", type=int, default=20000)
    ap.add_argument("-l", "--length", type=int, default=1024)
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory")
    args = ap.parse_args()
    args.mxd = os.path.abspath(args.mxd)    # mxd runs in the temp dir
    if not os.access(args.mxd, os.X_OK):
        raise SystemExit("no mxd binary at %s (build it first)" % args.mxd)
    for tool in ("smtp-source", "smtp-sink"):
        if shutil.which(tool) is None:
            raise SystemExit("%s not found (Debian: postfix)" % tool)

    workdir = pathlib.Path(tempfile.mkdtemp(prefix="mxd-bench-"))
    if os.geteuid() == 0:
        os.chmod(workdir, 0o755)    # smtp-sink runs as nobody
    mxd = sink = None
    try:
        sink, sink_port = start_sink(workdir)
        mxd, mxd_port = start_mxd(args.mxd, workdir)
        print("load: smtp-source -s %d -m %d -l %d on %d CPUs; Maildir %s"
              % (args.sessions, args.messages, args.length,
                 os.cpu_count(), workdir / "mail"))
        t_sink = load(sink_port, args)
        t_mxd = load(mxd_port, args)
        stored = len(os.listdir(workdir / "mail" / "new"))
        if stored != args.messages:
            raise SystemExit("mxd stored %d messages of %d" %
                             (stored, args.messages))
        r_sink = args.messages / t_sink
        r_mxd = args.messages / t_mxd
        print("smtp-sink: %8.0f messages/s (%.2f s)" % (r_sink, t_sink))
        print("mxd:       %8.0f messages/s (%.2f s, %d stored)" %
              (r_mxd, t_mxd, stored))
        print("ratio mxd/smtp-sink: %.2f" % (r_mxd / r_sink))
    finally:
        stop(mxd, "mxd")
        stop(sink, "smtp-sink")
        if mxd is not None:
            mxd.stdout.close()
        if args.keep:
            print("kept %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
