"""libmxd from the outside: the example program of docs/harness.md, as
built in the tree and as built by a user from `meson install` (header,
shared and static library, pkg-config file).

The example listens on a free port, refuses recipients at bounce.test,
prints a line per message and per session end, and stops on SIGTERM.
"""

import os
import pathlib
import re
import shutil
import signal
import smtplib
import ssl
import subprocess

import pytest

EXAMPLE = os.environ.get("MXD_EXAMPLE")
BUILD_ROOT = os.environ.get("MXD_BUILD_ROOT")
SOURCE = pathlib.Path(__file__).resolve().parents[2] / "docs" / "examples" \
    / "libmxd" / "example.c"
CC = os.environ.get("MXD_CC", "cc")
CC_ARGS = os.environ.get("MXD_CC_ARGS", "").split()


class Example:
    def __init__(self, argv, workdir, env=None):
        self.proc = subprocess.Popen(
            argv + [str(workdir)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        m = re.match(r"listening 127\.0\.0\.1:(\d+) port (\d+)$", line)
        assert m, "example said %r; stderr %r" % (line, self.proc.stderr.read())
        assert m.group(1) == m.group(2)
        self.port = int(m.group(2))
        self.cert = workdir / "mxd-selfsigned.crt"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, (out, err)
        return out.splitlines()


def converse(ex):
    """A plaintext message with a refused recipient, then one in TLS."""
    s = smtplib.SMTP("127.0.0.1", ex.port, timeout=10)
    s.ehlo("client.test")
    refused = s.sendmail("a@client.test", ["b@ok.test", "c@bounce.test"],
                         b"Subject: one\r\n\r\nbody\r\n")
    assert refused == {"c@bounce.test": (550, b"5.1.1 No such user here")}
    s._host = "mx.test"
    s.starttls(context=ssl.create_default_context(cafile=str(ex.cert)))
    s.ehlo("client.test")
    # smtplib stuffs the dots, mxd unstuffs them: 21 octets arrive.
    assert s.sendmail("", ["d@ok.test"], b"Subject: two\r\n\r\n..x\r\n") == {}
    s.quit()


def check_output(lines):
    assert len(lines) == 4, lines
    m1 = re.match(r"message (\S+) session 1 from <a@client\.test> to "
                  r"<b@ok\.test> size 22 tls none$", lines[0])
    m2 = re.match(r"message (\S+) session 1 from <> to <d@ok\.test> size 21 "
                  r"tls TLSv1\.[23]$", lines[1])
    assert m1 and m2, lines
    assert m1.group(1) != m2.group(1)
    assert lines[2:] == ["session 1 end quit", "stopped after 2 messages"]


def test_example_in_tree(tmp_path):
    assert EXAMPLE, "MXD_EXAMPLE is not set (run through meson test)"
    ex = Example([EXAMPLE], tmp_path)
    converse(ex)
    check_output(ex.stop())


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`meson install` into a DESTDIR: (root, pkg-config env)."""
    assert BUILD_ROOT, "MXD_BUILD_ROOT is not set (run through meson test)"
    root = tmp_path_factory.mktemp("destdir")
    r = subprocess.run(["meson", "install", "-C", BUILD_ROOT, "--no-rebuild",
                        "--quiet", "--destdir", str(root)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    pcs = list(root.rglob("mxd.pc"))
    assert len(pcs) == 1, pcs
    prefix = re.search(r"^prefix=(.*)$", pcs[0].read_text(), re.M).group(1)
    env = dict(os.environ, PKG_CONFIG_PATH=str(pcs[0].parent),
               MXD_PREFIX=str(root) + prefix)
    return root, env


def pkg_config(env, *args):
    """pkg-config for the DESTDIR copy: its prefix moved under it."""
    r = subprocess.run(["pkg-config",
                        "--define-variable=prefix=" + env["MXD_PREFIX"],
                        *args, "mxd"], capture_output=True,
                       text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_installed_files(installed):
    root, env = installed
    assert (root / "usr/local/include/mxd.h").is_file()
    libs = {p.name for p in root.rglob("libmxd*")}
    assert {"libmxd.a", "libmxd.so", "libmxd.so.0"} <= libs, libs
    assert pkg_config(env, "--modversion") == ["0.1.0"]
    # Only the API is exported, by either library.
    for lib, args in (("libmxd.so", ["-D"]), ("libmxd.a", [])):
        path = next(root.rglob(lib))
        out = subprocess.run(["nm", "-g", "--defined-only", *args,
                              str(path)], capture_output=True, text=True,
                             check=True).stdout
        names = {l.split()[-1] for l in out.splitlines()
                 if len(l.split()) == 3}
        assert names and all(n.startswith("mxd_") for n in names), \
            (lib, sorted(n for n in names if not n.startswith("mxd_")))


@pytest.mark.parametrize("link", ["shared", "static"])
def test_example_built_from_install(installed, tmp_path, link):
    """A user's build of the example: pkg-config, then run it."""
    root, env = installed
    if shutil.which(CC) is None:
        pytest.fail("no C compiler %r" % CC)
    cflags = pkg_config(env, "--cflags")
    if link == "shared":
        libs = pkg_config(env, "--libs")
    else:
        # The archive itself, then what it needs (Libs.private).
        static = str(next(root.rglob("libmxd.a")))
        libs = [static if a == "-lmxd" else a
                for a in pkg_config(env, "--static", "--libs")]
    exe = tmp_path / "example"
    r = subprocess.run([CC, *CC_ARGS, *cflags, str(SOURCE), *libs, "-lev",
                        "-o", str(exe)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    ldd = subprocess.run(["ldd", str(exe)], capture_output=True, text=True,
                         check=True).stdout
    assert ("libmxd.so" in ldd) == (link == "shared"), ldd
    # Where the libraries are (libmxd's, and an mbedTLS of its own
    # prefix): what an installed system finds by itself.
    dirs = [a[2:] for a in libs if a.startswith("-L")]
    run_env = dict(os.environ, LD_LIBRARY_PATH=":".join(dirs))
    ex = Example([str(exe)], tmp_path, env=run_env)
    converse(ex)
    check_output(ex.stop())
