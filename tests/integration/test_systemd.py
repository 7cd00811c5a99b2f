"""systemd integration and privileges: sockets passed in LISTEN_FDS
(by systemd-socket-activate and by a launcher of our own), readiness on
NOTIFY_SOCKET, and the drop from root to an unprivileged user, with the
rule for running as root at all.

The privilege tests need root (CI runs the suite as root); run as any
other user they are skipped, with the reason.
"""

import os
import pathlib
import pwd
import grp
import re
import select
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from conftest import BINARY, WRAPPER
from tlsutil import cert_der, make_cert

TIMEOUT = 60 if WRAPPER else 15
LISTENING = re.compile(r"listening (\[?[^\]]*\]?):(\d+)$")

as_root = pytest.mark.skipif(os.geteuid() != 0,
                             reason="the privilege drop needs root")


# ---- starting mxd our own ways ----------------------------------------------


class Proc:
    """An mxd (or a launcher around it) started by this file, with its
    stdout on a pipe and stderr in a file."""

    def __init__(self, pid, stdout_fd, logpath):
        self.pid = pid
        self.out = os.fdopen(stdout_fd, "rb")
        self.logpath = logpath
        self.returncode = None
        self.termed = False
        self.buf = b""

    def log(self):
        return pathlib.Path(self.logpath).read_text(errors="replace")

    def listening(self, n=1):
        """The first n "listening ADDR:PORT" lines, as (host, port)."""
        got = []
        deadline = time.monotonic() + TIMEOUT
        while len(got) < n:
            if b"\n" not in self.buf:
                ready, _, _ = select.select([self.out], [], [], max(
                    0, deadline - time.monotonic()))
                assert ready, "mxd printed %d listening lines of %d:\n%s" \
                    % (len(got), n, self.log())
                data = os.read(self.out.fileno(), 4096)
                if not data:
                    raise AssertionError("mxd exited before listening:\n" +
                                         self.log())
                self.buf += data
                continue
            line, self.buf = self.buf.split(b"\n", 1)
            m = LISTENING.match(line.decode().strip())
            if m:
                got.append((m.group(1).strip("[]"), int(m.group(2))))
        return got

    def poll(self):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise AssertionError("mxd did not exit:\n" + self.log())
            time.sleep(0.02)
        return self.returncode

    def term(self):
        os.kill(self.pid, signal.SIGTERM)
        self.termed = True

    def stop(self):
        # One SIGTERM: a second one may end mxd by the default action
        # once its loop is over and its handlers are gone.
        if self.poll() is None and not self.termed:
            self.term()
        rc = self.wait()
        self.out.close()
        return rc


def launch(argv, logpath, cwd, env=None, fds=(), listen_pid="self"):
    """fork; in the child put fds at 3, 4, ..., set LISTEN_FDS and
    LISTEN_PID (its own pid, or what listen_pid says) and exec argv."""
    r, w = os.pipe()
    log = os.open(logpath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    env = dict(os.environ if env is None else env)
    pid = os.fork()
    if pid == 0:  # the child: only async-signal-safe work until exec
        try:
            os.close(r)
            os.dup2(w, 1)
            os.dup2(log, 2)
            # Above every target fd first, so dup2 cannot clobber one.
            high = [os.dup(s.fileno()) for s in fds]
            for i, fd in enumerate(high):
                os.dup2(fd, 3 + i, inheritable=True)
            if fds:
                env["LISTEN_FDS"] = str(len(fds))
                env["LISTEN_PID"] = str(os.getpid() if listen_pid == "self"
                                        else listen_pid)
                env["LISTEN_FDNAMES"] = ":".join(
                    "smtp%d" % i for i in range(len(fds)))
            os.chdir(cwd)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    os.close(w)
    os.close(log)
    return Proc(pid, r, logpath)


def mxd_argv(*args):
    """For execve: the wrapper (valgrind), if any, by its full path."""
    argv = WRAPPER + [BINARY] + list(args)
    argv[0] = shutil.which(argv[0]) or argv[0]
    return argv


def listener(host="127.0.0.1", port=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(16)
    return s


def greets(host, port):
    with socket.create_connection((host, port), timeout=10) as s:
        data = s.recv(200)
        s.sendall(b"QUIT\r\n")
        return data.startswith(b"220 ")


def send_message(host, port, subject, tls_cafile=None):
    with smtplib.SMTP(host, port, timeout=10) as c:
        c.ehlo("client.test")
        if tls_cafile is not None:
            ctx = ssl.create_default_context(cafile=tls_cafile)
            ctx.check_hostname = False
            c.starttls(context=ctx)
            peer = c.sock.getpeercert(binary_form=True)
            c.ehlo("client.test")
        else:
            peer = None
        c.sendmail("a@client.test", ["b@dest.test"],
                   "Subject: %s\r\n\r\nhello\r\n" % subject)
    return peer


def wait_files(d, n=1, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = list(pathlib.Path(d).iterdir()) if d.is_dir() else []
        if len(files) >= n:
            return files
        time.sleep(0.02)
    raise AssertionError("no message in %s" % d)


@pytest.fixture
def procs():
    started = []
    yield started
    problems = []
    for p in started:
        if p.poll() is None:
            try:
                p.stop()
            except AssertionError as e:
                problems.append(str(e))
        # The sanitizer build's reports (conftest.stop_all); LSan after
        # the privilege drop too.
        for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "LeakSanitizer has encountered", "runtime error:"):
            if mark in p.log():
                problems.append("%s in %s" % (mark, p.logpath))
    assert not problems, "\n".join(problems)


def start(tmp_path, procs, *args, fds=(), log="mxd.log", **kw):
    """mxd with args and a Maildir in tmp_path, the sockets fds passed
    (and closed here); stopped at the end of the test."""
    p = launch(mxd_argv(*args, "-m", str(tmp_path / "mail")),
               str(tmp_path / log), str(tmp_path), fds=fds, **kw)
    procs.append(p)
    for sock in fds:
        sock.close()
    return p


# ---- socket activation --------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def socket_activate(tmp_path, procs, *args):
    """mxd under systemd's own tool, which binds a free port, waits for
    the first client, then execs mxd with the socket as fd 3; (p, port)
    once that first client's message went through."""
    tool = shutil.which("systemd-socket-activate")
    assert tool, "systemd-socket-activate (package systemd) is missing"
    for attempt in range(5):
        port = free_port()
        p = launch([tool, "-l", "127.0.0.1:%d" % port, "--fdname=smtp"] +
                   mxd_argv("-m", str(tmp_path / "mail"), *args),
                   str(tmp_path / "mxd.log"), str(tmp_path))
        procs.append(p)
        deadline = time.monotonic() + 10
        while "Listening on" not in p.log() and p.poll() is None and \
                time.monotonic() < deadline:
            time.sleep(0.02)
        if p.poll() is None:
            break
    # The first connection waits in the backlog until mxd runs.
    send_message("127.0.0.1", port, "activated")
    return p, port


def test_systemd_socket_activate_serves_the_passed_socket(tmp_path, procs):
    """mxd binds nothing itself."""
    p, port = socket_activate(tmp_path, procs)
    assert p.listening() == [("127.0.0.1", port)]
    assert wait_files(tmp_path / "mail" / "new")
    log = p.log()
    assert re.search(r" listen_inherited msg=\"127\.0\.0\.1:%d: fd 3 "
                     r"\(name 'smtp'\) from systemd, not bound again\"" %
                     port, log), log
    # With no listen key the passed socket replaces 127.0.0.1:2525.
    assert re.search(r" start .* listen=127\.0\.0\.1:%d " % port, log), log
    assert p.stop() == 0


def fd_flags(pid, fd):
    text = pathlib.Path("/proc/%d/fdinfo/%d" % (pid, fd)).read_text()
    return int(re.search(r"^flags:\s+(\d+)", text, re.M).group(1), 8)


def test_launcher_sockets_are_matched_by_address(tmp_path, procs):
    """Two sockets passed: one named by a listen key, one not; a second
    listen key has no socket and is bound as usual."""
    a, b = listener(), listener()
    pa, pb = a.getsockname()[1], b.getsockname()[1]
    p = start(tmp_path, procs, "--listen", "127.0.0.1:%d" % pa,
              "--listen", "127.0.0.2:0", fds=[a, b])
    got = p.listening(3)
    # Configured order first, then what no key named.
    assert got[0] == ("127.0.0.1", pa)
    assert got[1][0] == "127.0.0.2" and got[1][1] != 0
    assert got[2] == ("127.0.0.1", pb)
    for host, port in got:
        assert greets(host, port), (host, port)
    send_message("127.0.0.1", pa, "inherited")
    assert wait_files(tmp_path / "mail" / "new")
    log = p.log()
    assert "fd 3 (name 'smtp0') from systemd" in log, log
    assert "fd 4 (name 'smtp1') from systemd" in log, log
    assert re.search(r" listen_unconfigured level=warn msg=\"127\.0\.0\.1:%d "
                     r"from systemd matches no listen key" % pb, log), log
    # Our children must not inherit them.
    assert fd_flags(p.pid, 3) & os.O_CLOEXEC
    assert fd_flags(p.pid, 4) & os.O_CLOEXEC
    assert p.stop() == 0


def test_an_unconfigured_passed_socket_gets_the_global_settings(tmp_path,
                                                                 procs):
    """No listen key names it: proxy_protocol (like tls, require_tls)
    is the global one, so the PROXY header is read there."""
    a = listener()
    pa = a.getsockname()[1]
    p = start(tmp_path, procs, "--listen", "127.0.0.2:0",
              "-o", "proxy_protocol=v1", "-o", "proxy_trusted=127.0.0.0/8",
              fds=[a])
    assert p.listening(2)[1] == ("127.0.0.1", pa)
    with socket.create_connection(("127.0.0.1", pa), timeout=10) as s:
        s.sendall(b"PROXY TCP4 192.0.2.9 127.0.0.1 40999 25\r\n")
        assert s.recv(200).startswith(b"220 ")
        s.sendall(b"QUIT\r\n")
        assert s.recv(200).startswith(b"221 ")
    deadline = time.monotonic() + TIMEOUT
    while " connect client=192.0.2.9:40999 " not in p.log():
        assert time.monotonic() < deadline, p.log()
        time.sleep(0.02)
    assert p.stop() == 0


def test_port_zero_takes_a_passed_socket_on_its_address(tmp_path, procs):
    """Port 0 asks for any port: a passed socket on that address is one."""
    a = listener()
    pa = a.getsockname()[1]
    p = start(tmp_path, procs, "--listen", "127.0.0.1:0", fds=[a])
    assert p.listening() == [("127.0.0.1", pa)]
    assert greets("127.0.0.1", pa)
    assert "listen_unconfigured" not in p.log()
    assert p.stop() == 0


def test_listen_pid_of_another_process_is_ignored(tmp_path, procs):
    a = listener()
    pa = a.getsockname()[1]
    p = start(tmp_path, procs, "--listen", "127.0.0.1:0", fds=[a],
              listen_pid=os.getpid())
    (host, port), = p.listening()
    assert port != pa, "took a socket meant for another process"
    assert greets(host, port)
    assert re.search(r" listen_fds_ignored msg=\"LISTEN_PID=%d is not this "
                     r"process \(%d\)" % (os.getpid(), p.pid), p.log())
    assert p.stop() == 0


def test_a_passed_socket_that_does_not_listen_stops_the_start(tmp_path,
                                                               procs):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    unbound = socket.socket()
    for s, why in ((udp, "mxd: LISTEN_FDS: fd 3 is not a TCP socket"),
                   (unbound, "mxd: LISTEN_FDS: fd 3 is a TCP socket but "
                    "not listening")):
        p = start(tmp_path, procs, fds=[s])
        assert p.wait() == 1
        p.out.close()
        assert why in p.log(), p.log()


# ---- readiness -----------------------------------------------------------------


@pytest.mark.parametrize("abstract", [False, True])
def test_ready_reloading_stopping(tmp_path, procs, abstract):
    d = tempfile.mkdtemp(prefix="mxd-notify-")  # short: sun_path is small
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "@mxd-test-%d-%d" % (os.getpid(), time.monotonic_ns())
            sock.bind("\0" + name[1:])
        else:
            name = os.path.join(d, "notify")
            sock.bind(name)
        sock.settimeout(TIMEOUT)
        env = dict(os.environ, NOTIFY_SOCKET=name)
        p = start(tmp_path, procs, "--listen", "127.0.0.1:0", env=env)
        assert sock.recv(4096) == b"READY=1"
        (host, port), = p.listening()
        assert greets(host, port)

        os.kill(p.pid, signal.SIGHUP)
        msg = sock.recv(4096).decode()
        assert re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=\d+", msg), msg
        usec = int(msg.split("=")[-1])
        assert abs(usec / 1e6 - time.clock_gettime(
            time.CLOCK_MONOTONIC)) < 30
        assert sock.recv(4096) == b"READY=1"
        assert greets(host, port)

        p.term()
        assert sock.recv(4096) == b"STOPPING=1"
        assert p.stop() == 0
        sock.close()
    finally:
        shutil.rmtree(d)


# ---- privileges ------------------------------------------------------------------


def serving_pids(pid):
    """The processes that serve clients: mxd's pid if it has no child
    processes, else its children (a supervisor with workers)."""
    children = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            children.append(int(d.name))
    return children or [pid]


def ids(pid):
    """Uid and Gid lines (real, effective, saved, fs) of every thread."""
    out = []
    for t in pathlib.Path("/proc/%d/task" % pid).iterdir():
        status = (t / "status").read_text()
        uid = [int(x) for x in re.search(r"^Uid:\s+(.*)$", status,
                                         re.M).group(1).split()]
        gid = [int(x) for x in re.search(r"^Gid:\s+(.*)$", status,
                                         re.M).group(1).split()]
        # (An empty Groups line, root's: not the next line's text.)
        groups = re.search(r"^Groups:[ \t]*(.*)$", status, re.M).group(1)
        out.append((uid, gid, sorted(int(g) for g in groups.split())))
    return out


@pytest.fixture
def world_dir():
    """A directory another user can reach (pytest's tmp_path is under a
    root-only 0700 directory), removed afterwards."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="mxd-priv-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


def nobody_setup(world_dir, workers="2"):
    """A config for user = nobody with a certificate whose key only root
    may read (a 0700 directory, a 0600 key); (conf, cert, key, mail)."""
    nobody = pwd.getpwnam("nobody")
    keys = world_dir / "keys"
    keys.mkdir(mode=0o700)
    cert, key = make_cert(keys, "mx.test", kind="ec")
    os.chmod(key, 0o600)
    mail = world_dir / "mail"
    mail.mkdir()
    os.chown(mail, nobody.pw_uid, nobody.pw_gid)
    conf = world_dir / "mxd.conf"
    conf.write_text("user = nobody\nlisten = 127.0.0.1:0\n%s"
                    "maildir = %s\ndata_dir = %s\ntls_cert = %s\n"
                    "tls_key = %s\n" % (
                        "workers = %s\n" % workers if workers else "",
                        mail, world_dir / "data", cert, key))
    return conf, cert, key, mail


@as_root
def test_drop_to_nobody_after_reading_a_root_only_key(world_dir, procs):
    nobody = pwd.getpwnam("nobody")
    conf, cert, key, mail = nobody_setup(world_dir, workers=None)
    data = world_dir / "data"
    p = launch(mxd_argv("-c", str(conf)), str(world_dir / "mxd.log"),
               str(world_dir))
    procs.append(p)
    (host, port), = p.listening()

    for pid in serving_pids(p.pid):
        for uid, gid, groups in ids(pid):
            assert uid == [nobody.pw_uid] * 4, (pid, uid)
            assert gid == [nobody.pw_gid] * 4, (pid, gid)
            assert groups == sorted(set(
                [nobody.pw_gid] + [g.gr_gid for g in grp.getgrall()
                                   if "nobody" in g.gr_mem])), groups

    # STARTTLS with the certificate whose key only root could read.
    peer = send_message(host, port, "dropped", tls_cafile=cert)
    assert peer == cert_der(cert)
    msg, = wait_files(mail / "new")
    st = msg.stat()
    assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    # The Maildir's subdirectories and data_dir were made for nobody.
    for d in (mail / "tmp", mail / "new", mail / "cur", data):
        assert d.stat().st_uid == nobody.pw_uid, d
    kst = os.stat(key)
    assert kst.st_uid == 0 and kst.st_mode & 0o777 == 0o600
    assert re.search(r" privileges msg=\"dropped root: now user nobody "
                     r"uid %d gid %d\"" % (nobody.pw_uid, nobody.pw_gid),
                     p.log())
    assert " root level=warn" not in p.log()
    assert p.stop() == 0


@as_root
def test_group_key_sets_the_group(world_dir, procs):
    nobody = pwd.getpwnam("nobody")
    daemon = grp.getgrnam("daemon")
    mail = world_dir / "mail"
    p = launch(mxd_argv("--listen", "127.0.0.1:0", "-m", str(mail),
                        "-o", "user=nobody", "-o", "group=daemon",
                        "-o", "data_dir=%s" % (world_dir / "data")),
               str(world_dir / "mxd.log"), str(world_dir))
    procs.append(p)
    (host, port), = p.listening()
    for pid in serving_pids(p.pid):
        for uid, gid, _ in ids(pid):
            assert uid == [nobody.pw_uid] * 4
            assert gid == [daemon.gr_gid] * 4
    send_message(host, port, "group")
    msg, = wait_files(mail / "new")
    assert (msg.stat().st_uid, msg.stat().st_gid) == (nobody.pw_uid,
                                                      daemon.gr_gid)
    assert p.stop() == 0


@as_root
def test_unwritable_maildir_after_the_drop_stops_the_start(world_dir,
                                                           procs):
    mail = world_dir / "mail"
    for sub in ("tmp", "new", "cur"):
        (mail / sub).mkdir(parents=True, mode=0o755)
    p = launch(mxd_argv("--listen", "127.0.0.1:0", "-m", str(mail),
                        "-o", "user=nobody",
                        "-o", "data_dir=%s" % (world_dir / "data")),
               str(world_dir / "mxd.log"), str(world_dir))
    procs.append(p)
    assert p.wait() == 1
    p.out.close()
    assert ("mxd: maildir: %s/tmp is not writable by user nobody (owner "
            "uid 0, mode 0755): chown it to nobody" % mail) in p.log(), \
        p.log()


def run(cwd, *args):
    return subprocess.run(mxd_argv(*args), capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=cwd)


def test_unknown_user_is_a_clear_error(tmp_path):
    for extra in ([], ["--check"]):
        r = run(tmp_path, "--listen", "127.0.0.1:0", "-m",
                str(tmp_path / "mail"), "-o", "user=no-such-user-mxd",
                *extra)
        assert r.returncode == 1
        assert "mxd: user: no such user 'no-such-user-mxd'" in r.stderr
        assert "listening" not in r.stdout
    r = run(tmp_path, "--check", "-o", "user=nobody",
            "-o", "group=no-such-group-mxd")
    assert r.returncode == 1
    assert "mxd: group: no such group 'no-such-group-mxd'" in r.stderr
    r = run(tmp_path, "--check", "-o", "user=root")
    assert r.returncode == 1
    assert "mxd: user: 'root' is root (uid 0)" in r.stderr


ROOT_REFUSED = ("running as root with a listener open to the network "
                "(%s) and no user: set user = NAME")


@as_root
def test_root_on_a_public_address_needs_user_or_allow_root(tmp_path,
                                                           procs):
    r = run(tmp_path, "--listen", "127.0.0.1:0", "--listen", "0.0.0.0:0",
            "-m", str(tmp_path / "mail"))
    assert r.returncode == 1
    assert ROOT_REFUSED % "0.0.0.0:0" in r.stderr, r.stderr
    assert "listening" not in r.stdout
    # Refused before anything was made: no Maildir, no certificate.
    assert not (tmp_path / "mail").exists()
    assert not (tmp_path / "mxd-selfsigned.key").exists()

    r = run(tmp_path, "--listen", "[::]:0", "-m", str(tmp_path / "mail"),
            "-o", "allow_root=no")
    assert r.returncode == 1
    assert ROOT_REFUSED % "[::]:0" in r.stderr, r.stderr

    # A passed socket counts as well.
    pub = listener("0.0.0.0")
    port = pub.getsockname()[1]
    p = start(tmp_path, procs, fds=[pub])
    assert p.wait() == 1
    p.out.close()
    assert ROOT_REFUSED % ("0.0.0.0:%d" % port) in p.log(), p.log()

    # --allow-root: it starts (on a port nothing outside connects to),
    # with the warning; stopped at once.
    p = start(tmp_path, procs, "--listen", "0.0.0.0:0", "--allow-root",
              log="mxd2.log")
    (host, port), = p.listening()
    assert host == "0.0.0.0"
    assert p.stop() == 0
    assert re.search(r" root level=warn msg=\"serving as root \(allow_root\)",
                     p.log()), p.log()


@as_root
def test_root_on_loopback_starts_with_a_warning(tmp_path, procs):
    p = start(tmp_path, procs, "--listen", "127.0.0.1:0", "--listen",
              "[::1]:0")
    got = p.listening(2)
    assert greets(*got[0])
    assert p.stop() == 0
    log = p.log()
    assert log.count(" root level=warn ") == 1, log
    assert "serving as root (loopback listeners only)" in log


# ---- the unit files in docs/systemd ----------------------------------------------


def test_unit_files_verify(tmp_path):
    """systemd-analyze verify (no running systemd needed) on the units as
    shipped, with ExecStart pointed at the built binary and the User=
    drop-in in place; any warning (an unknown key, a typo) fails."""
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze (package systemd) is missing"
    src = pathlib.Path(__file__).resolve().parents[2] / "docs" / "systemd"
    unit = (src / "mxd.service").read_text()
    assert "ExecStart=/usr/sbin/mxd " in unit
    (tmp_path / "mxd.service").write_text(
        unit.replace("ExecStart=/usr/sbin/mxd ", "ExecStart=%s " % BINARY))
    shutil.copy(src / "mxd.socket", tmp_path)
    for dropin in (False, True):
        if dropin:
            (tmp_path / "mxd.service.d").mkdir()
            shutil.copy(src / "mxd-user.conf", tmp_path / "mxd.service.d")
        r = subprocess.run([tool, "verify", "--man=no",
                            str(tmp_path / "mxd.service"),
                            str(tmp_path / "mxd.socket")],
                           capture_output=True, text=True, timeout=TIMEOUT)
        assert r.returncode == 0 and r.stderr == "" and r.stdout == "", r


# ---- with worker processes ------------------------------------------------------


def connect_pids(log):
    """The worker pid of each connect line, in order."""
    return [int(x) for x in re.findall(r" connect client=\S+ listener=\S+ "
                                       r"(?:\S+ )*pid=(\d+)$", log, re.M)]


def served_by_each(p, host, port, subject="pinned", tls_cafile=None):
    """A message through each worker in turn (the others stopped with
    SIGSTOP meanwhile); the pids that served them, and the peer
    certificates seen."""
    kids = serving_pids(p.pid)
    assert len(kids) == 2 and p.pid not in kids, kids
    peers = []
    for pid in kids:
        others = [k for k in kids if k != pid]
        for k in others:
            os.kill(k, signal.SIGSTOP)
        try:
            peers.append(send_message(host, port, subject, tls_cafile))
        finally:
            for k in others:
                os.kill(k, signal.SIGCONT)
    return kids, connect_pids(p.log())[-2:], peers


def wait_new_workers(p, old, n=2):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        kids = serving_pids(p.pid)
        if len(kids) == n and p.pid not in kids and not set(kids) & set(old):
            return kids
        time.sleep(0.02)
    raise AssertionError("no %d new workers besides %s:\n%s" % (
        n, old, p.log()))


def test_socket_activation_is_served_by_every_worker(tmp_path, procs):
    p, port = socket_activate(tmp_path, procs, "--workers", "2")
    assert p.listening() == [("127.0.0.1", port)]
    kids, pids, _ = served_by_each(p, "127.0.0.1", port)
    assert pids == kids, (pids, kids, p.log())
    assert len(wait_files(tmp_path / "mail" / "new", 3)) == 3
    log = p.log()
    assert "fd 3 (name 'smtp') from systemd, not bound again" in log, log
    assert re.search(r" supervisor msg=\"pid %d, 2 workers\"" % p.pid, log)
    # A reload's generation serves the same inherited socket.
    os.kill(p.pid, signal.SIGHUP)
    deadline = time.monotonic() + TIMEOUT
    while " reload msg=" not in p.log():
        assert time.monotonic() < deadline, p.log()
        time.sleep(0.02)
    wait_new_workers(p, kids)
    send_message("127.0.0.1", port, "after the reload")
    assert len(wait_files(tmp_path / "mail" / "new", 4)) == 4
    assert p.stop() == 0


def start_as_nobody(world_dir, procs):
    """mxd with two workers as nobody (nobody_setup); (p, (host, port),
    cert, key, mail) once it listens."""
    conf, cert, key, mail = nobody_setup(world_dir)
    p = launch(mxd_argv("-c", str(conf)), str(world_dir / "mxd.log"),
               str(world_dir))
    procs.append(p)
    return p, p.listening()[0], cert, key, mail


def assert_nobody(pids):
    nobody = pwd.getpwnam("nobody")
    for pid in pids:
        for uid, gid, _ in ids(pid):
            assert uid == [nobody.pw_uid] * 4, (pid, uid)
            assert gid == [nobody.pw_gid] * 4, (pid, gid)


@as_root
def test_every_worker_drops_root_and_so_does_a_restarted_one(world_dir,
                                                             procs):
    p, (host, port), cert, key, mail = start_as_nobody(world_dir, procs)
    kids = serving_pids(p.pid)
    assert len(kids) == 2 and p.pid not in kids, kids
    assert_nobody(kids)
    # The supervisor stays root, to fork workers that read the key.
    assert ids(p.pid)[0][0] == [0] * 4
    assert len(re.findall(r" privileges msg=\"dropped root: now user "
                          r"nobody ", p.log())) == 2, p.log()
    # Killed: the new worker read the root-only key, then dropped.
    os.kill(kids[0], signal.SIGKILL)
    new = wait_new_workers(p, [kids[0]])
    (fresh,) = set(new) - set(kids)
    # Serving once it logged its own drop (the third).
    deadline = time.monotonic() + TIMEOUT
    while len(re.findall(r" privileges msg=\"dropped root", p.log())) < 3:
        assert time.monotonic() < deadline, p.log()
        time.sleep(0.02)
    assert_nobody([fresh])
    _, pids, peers = served_by_each(p, host, port, tls_cafile=cert)
    assert fresh in pids, (fresh, pids)
    assert peers == [cert_der(cert)] * 2
    assert len(wait_files(mail / "new", 2)) == 2
    assert p.stop() == 0


@as_root
def test_workers_that_dropped_root_die_with_the_supervisor(world_dir, procs):
    """Changing uid clears the parent-death signal: a worker must set it
    again after its drop, or a killed supervisor leaves it serving."""
    p, (host, port), cert, key, mail = start_as_nobody(world_dir, procs)
    kids = serving_pids(p.pid)
    assert len(kids) == 2 and p.pid not in kids, kids
    assert_nobody(kids)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    # Until reaped: a killed worker's zombie leader may still have
    # threads that hold its descriptors (the listening socket).
    while any(os.path.exists("/proc/%d" % k) for k in kids):
        assert time.monotonic() < deadline, "a worker outlived it: %s" % kids
        time.sleep(0.02)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=5).close()


@as_root
def test_sighup_loads_a_new_root_only_key_after_the_drop(world_dir, procs):
    p, (host, port), cert, key, mail = start_as_nobody(world_dir, procs)
    old = serving_pids(p.pid)
    assert_nobody(old)
    first = cert_der(cert)
    assert send_message(host, port, "before", tls_cafile=cert) == first
    # A new pair in place of the old, the key again root's alone.
    cert2, key2 = make_cert(world_dir / "keys", "mx.test", kind="ec",
                            stem="renewed")
    os.chmod(key2, 0o600)
    assert os.stat(key2).st_uid == 0
    os.replace(cert2, cert)
    os.replace(key2, key)
    second = cert_der(cert)
    assert second != first
    os.kill(p.pid, signal.SIGHUP)
    deadline = time.monotonic() + TIMEOUT
    while " reload msg=" not in p.log():
        assert " reload_failed " not in p.log(), p.log()
        assert time.monotonic() < deadline, p.log()
        time.sleep(0.02)
    new = wait_new_workers(p, old)
    assert_nobody(new)
    _, pids, peers = served_by_each(p, host, port, tls_cafile=cert)
    assert sorted(pids) == sorted(new)
    assert peers == [second] * 2, "the old certificate after the reload"
    assert p.stop() == 0
