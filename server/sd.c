/*
 * sd.c - socket activation and readiness notification for systemd,
 * without libsystemd (the protocols are small and stable: see
 * sd_listen_fds(3) and sd_notify(3)).
 *
 * Socket activation: systemd (or systemd-socket-activate, or any
 * launcher) binds the sockets, passes them as fds 3..3+LISTEN_FDS-1 and
 * sets LISTEN_PID to the pid it exec'd, so that a child of ours that
 * inherits the environment does not take them for its own.  Each one
 * must be a listening TCP socket: anything else is a broken unit file
 * and stops the start, naming the fd.  Matching to configured listeners
 * is by bound address (getsockname); see server_listen().
 *
 * Readiness: one datagram per state change to the AF_UNIX socket named
 * in NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).
 * The socket is connected once, at start: after the privilege drop a
 * path owned by root could no longer be reached.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "sd.h"
#include "server.h"

#define SD_LISTEN_FDS_START	3

static int notify_fd = -1;

/* A decimal number, all of s; -1 otherwise. */
static long
parse_count(const char *s)
{
	char *end;
	long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != 0)
		return -1;
	return v;
}

static void
unset_listen_env(void)
{
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

/* Is fd a listening TCP socket?  Fill its conf; 0, or -1 with err. */
static int
check_socket(struct sd_socket *s, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char text[sizeof(s->conf.text)];
	int type = 0, acc = 0, flags;
	socklen_t il = sizeof(int);

	flags = fcntl(s->fd, F_GETFD);
	if (flags < 0) {
		snprintf(err, errlen, "LISTEN_FDS: fd %d is not open", s->fd);
		return -1;
	}
	if (fcntl(s->fd, F_SETFD, flags | FD_CLOEXEC) != 0 ||
	    getsockopt(s->fd, SOL_SOCKET, SO_TYPE, &type, &il) != 0 ||
	    getsockname(s->fd, (struct sockaddr *)&ss, &sl) != 0) {
		snprintf(err, errlen, "LISTEN_FDS: fd %d: %s", s->fd,
		    errno == ENOTSOCK ? "not a socket" : strerror(errno));
		return -1;
	}
	il = sizeof(int);
	if (type != SOCK_STREAM || (ss.ss_family != AF_INET &&
	    ss.ss_family != AF_INET6)) {
		snprintf(err, errlen, "LISTEN_FDS: fd %d is not a TCP socket "
		    "(mxd serves ListenStream= on an IP address only)", s->fd);
		return -1;
	}
	if (getsockopt(s->fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &il) != 0 ||
	    acc == 0) {
		snprintf(err, errlen, "LISTEN_FDS: fd %d is a TCP socket but "
		    "not listening (Accept=no is needed in the socket unit)",
		    s->fd);
		return -1;
	}
	/*
	 * A listener as "listen = ADDR:PORT" would make it, every option
	 * the global one; then the exact address (an IPv6 scope too).
	 */
	listener_format_addr(&ss, text, sizeof(text));
	if (config_parse_listen(text, &s->conf) != 0) {
		snprintf(err, errlen, "LISTEN_FDS: fd %d: cannot use its "
		    "address %s", s->fd, text);
		return -1;
	}
	memcpy(&s->conf.addr, &ss, sl);
	s->conf.addrlen = sl;
	return 0;
}

int
sd_listen_collect(struct sd_listen *sl, char *err, size_t errlen)
{
	const char *pid_s = getenv("LISTEN_PID");
	const char *fds_s = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	long pid, n, i;
	size_t len;

	memset(sl, 0, sizeof(*sl));
	if (pid_s == NULL || fds_s == NULL) {
		unset_listen_env();
		return 0;
	}
	pid = parse_count(pid_s);
	if (pid != (long)getpid()) {
		/* Meant for another process (an ancestor's environment). */
		log_msg(LOG_INFO, "listen_fds_ignored", "LISTEN_PID=%s is not "
		    "this process (%ld): not taking LISTEN_FDS=%s", pid_s,
		    (long)getpid(), fds_s);
		unset_listen_env();
		return 0;
	}
	n = parse_count(fds_s);
	if (n < 0 || n > SD_LISTEN_MAX) {
		snprintf(err, errlen, "LISTEN_FDS=%s: expected a count from 0 "
		    "to %d", fds_s, SD_LISTEN_MAX);
		return -1;
	}
	if (n == 0) {
		unset_listen_env();
		return 0;
	}
	sl->socks = calloc((size_t)n, sizeof(*sl->socks));
	if (sl->socks == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		struct sd_socket *s = &sl->socks[i];

		s->fd = SD_LISTEN_FDS_START + (int)i;
		sl->n++;
		if (check_socket(s, err, errlen) != 0)
			return -1;
		/* The i-th name of "a:b:c"; a missing one stays "". */
		if (names != NULL && *names != 0) {
			len = strcspn(names, ":");
			snprintf(s->name, sizeof(s->name), "%.*s", (int)len,
			    names);
			names += len + (names[len] == ':');
		}
	}
	unset_listen_env();
	return 0;
}

static bool
same_address(const struct sockaddr_storage *a,
    const struct sockaddr_storage *b, bool any_port)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)a;
		const struct sockaddr_in *y = (const struct sockaddr_in *)b;

		return x->sin_addr.s_addr == y->sin_addr.s_addr &&
		    (any_port || x->sin_port == y->sin_port);
	} else {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
		const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;

		return memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0 &&
		    (any_port || x->sin6_port == y->sin6_port);
	}
}

static bool
port_zero(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_port == 0;
	return ((const struct sockaddr_in6 *)ss)->sin6_port == 0;
}

int
sd_listen_take(struct sd_listen *sl, const struct listen_conf *lc,
    const char **name)
{
	size_t i;
	int fd;

	for (i = 0; sl != NULL && i < sl->n; i++) {
		struct sd_socket *s = &sl->socks[i];

		if (s->fd < 0 || !same_address(&s->conf.addr, &lc->addr,
		    port_zero(&lc->addr)))
			continue;
		fd = s->fd;
		s->fd = -1;
		*name = s->name;
		return fd;
	}
	return -1;
}

bool
sd_listen_replaces_default(const struct sd_listen *sl,
    const struct config *cfg)
{
	return sl != NULL && sl->n > 0 && cfg->listen_src == CONFIG_SRC_DEFAULT;
}

void
sd_listen_finish(struct sd_listen *sl)
{
	size_t i;

	for (i = 0; i < sl->n; i++)
		if (sl->socks[i].fd >= 0)
			close(sl->socks[i].fd);
	free(sl->socks);
	memset(sl, 0, sizeof(*sl));
}

/* ---- readiness -------------------------------------------------------- */

void
sd_notify_init(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;
	size_t n;
	int fd;

	if (path == NULL)
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || n < 2 ||
	    n >= sizeof(sun.sun_path)) {
		log_msg(LOG_WARN, "notify_failed", "NOTIFY_SOCKET=%s: not a "
		    "path or an @abstract name that fits: no readiness "
		    "notification", path);
		unsetenv("NOTIFY_SOCKET");
		return;
	}
	memcpy(sun.sun_path, path, n);
	if (path[0] == '@') {
		sun.sun_path[0] = 0;	/* abstract: no terminating NUL */
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
		    1);
	}
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, len) != 0) {
		log_msg(LOG_WARN, "notify_failed", "NOTIFY_SOCKET=%s: %s: no "
		    "readiness notification", path, strerror(errno));
		if (fd >= 0)
			close(fd);
	} else {
		notify_fd = fd;
	}
	unsetenv("NOTIFY_SOCKET");
}

void
sd_notify(const char *state)
{
	if (notify_fd < 0)
		return;
	if (send(notify_fd, state, strlen(state), MSG_NOSIGNAL) < 0)
		log_msg(LOG_WARN, "notify_failed", "sending %s: %s", state,
		    strerror(errno));
	else
		log_msg(LOG_DEBUG, "notify", "%s", state);
}
