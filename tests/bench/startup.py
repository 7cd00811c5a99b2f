#!/usr/bin/python3
"""Time from exec to mxd's "listening" line, against a reference program.

    /usr/bin/python3 tests/bench/startup.py MXD_BINARY [COUNT]

What a test harness waits for each time it starts mxd: the wall time
from just before the spawn (subprocess.Popen, stdout a pipe, stderr a
file) to the moment the line "listening 127.0.0.1:PORT" has been read.
Each start is then stopped with SIGTERM and waited for (not timed); any
exit status but 0 stops the benchmark.

Three series of COUNT + 1 starts (COUNT defaults to 50), interleaved, so
that the noise of a shared machine falls on all three alike:

  capture    mxd --listen 127.0.0.1:0 --capture capture
  maildir    mxd --listen 127.0.0.1:0                 (Maildir ./mail)
  reference  /bin/sh -c 'echo listening 127.0.0.1:0'

Each mxd series runs in its own fresh temporary working directory.  The
first start there makes the self-signed certificate (data_dir "."), so
it is reported on its own and left out of the figures; later starts load
that certificate.  The capture directory or the Maildir is removed
between starts, so that every start creates it.  The reference is the
shell alone (fork, exec, dynamic linking, one line through the pipe;
it may be gone or be killed by the SIGTERM): figures are best quoted as
a ratio to it, taken in the same run.
"""

import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REFERENCE = ["/bin/sh", "-c", "echo listening 127.0.0.1:0"]


def start_once(argv, cwd, statuses=(0,)):
    """Milliseconds from spawn to the "listening" line; then stop, and
    check the exit status."""
    with open(os.path.join(cwd, "stderr.log"), "wb") as err:
        t0 = time.perf_counter_ns()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE,
                                stderr=err, bufsize=0)
        line = proc.stdout.readline()
        t1 = time.perf_counter_ns()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=30)
    proc.stdout.close()
    if not line.startswith(b"listening ") or rc not in statuses:
        with open(os.path.join(cwd, "stderr.log"), "rb") as f:
            log = f.read().decode(errors="replace")
        sys.exit("%s: first line %r, exit status %d\n%s" %
                 (argv[0], line, rc, log))
    return (t1 - t0) / 1e6


def summary(ms):
    """median, p90 (nearest rank) and max of a list of milliseconds."""
    s = sorted(ms)
    n = len(s)
    median = (s[(n - 1) // 2] + s[n // 2]) / 2
    return median, s[math.ceil(0.9 * n) - 1], s[-1]


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.split("\n\n")[1])
    mxd = os.path.abspath(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) == 3 else 50
    base = tempfile.mkdtemp(prefix="mxd-startup-")
    series = {
        "capture": ([mxd, "--listen", "127.0.0.1:0", "--capture", "capture"],
                    "capture", (0,)),
        "maildir": ([mxd, "--listen", "127.0.0.1:0"], "mail", (0,)),
        "reference": (REFERENCE, None, (0, -signal.SIGTERM)),
    }
    times = {name: [] for name in series}
    load0 = os.getloadavg()
    try:
        for name in series:
            os.mkdir(os.path.join(base, name))
        for _ in range(count + 1):
            for name, (argv, made, statuses) in series.items():
                cwd = os.path.join(base, name)
                if made:
                    shutil.rmtree(os.path.join(cwd, made),
                                  ignore_errors=True)
                times[name].append(start_once(argv, cwd, statuses))
        for name in ("capture", "maildir"):
            cert = os.path.join(base, name, "mxd-selfsigned.crt")
            assert os.path.exists(cert), "no certificate made in " + name
    finally:
        shutil.rmtree(base)
    load1 = os.getloadavg()

    print("mxd start-up: spawn to the \"listening\" line read, in ms; "
          "%d starts each, interleaved" % count)
    print("mxd:       %s" % mxd)
    print("reference: %s (%s), spawned and read the same way" %
          (shlex.join(REFERENCE),
           os.path.basename(os.path.realpath("/bin/sh"))))
    print("machine:   %d CPUs online, load average %.2f before, %.2f after"
          % (os.cpu_count(), load0[0], load1[0]))
    print()
    print("%-10s %8s %8s %8s %12s %14s" % ("", "median", "p90", "max",
                                          "first run", "median / ref"))
    ref = summary(times["reference"][1:])[0]
    for name in series:
        med, p90, mx = summary(times[name][1:])
        print("%-10s %8.2f %8.2f %8.2f %12.2f %14.2f" %
              (name, med, p90, mx, times[name][0], med / ref))
    print()
    print("The first runs of capture and maildir made the self-signed "
          "certificate;\na harness that starts mxd in a fresh directory "
          "pays that at every start.")


if __name__ == "__main__":
    main()
