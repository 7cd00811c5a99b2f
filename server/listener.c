/*
 * listener.c - listening sockets and accept().
 *
 * Under pressure the accept watchers stop rather than spin: at
 * max_connections (new clients wait in the kernel's backlog until a
 * session ends), and on EMFILE/ENFILE (a rate-limited log line, a retry
 * after a short pause; never exit).  libev's ev.pod, "accept()ing when
 * you can't".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "sd.h"
#include "server.h"
#include "shared.h"

/* The kernel caps it at net.core.somaxconn. */
#define LISTEN_BACKLOG	1024
/* Accepts per readiness event, so one busy listener cannot starve. */
#define ACCEPT_BATCH	64
#define EMFILE_RETRY	0.1
/* At max_connections: how often to look whether a session ended. */
#define CAP_RETRY	0.05

static void
on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct listener *l = (struct listener *)w;
	struct server *srv = l->srv;
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, i;

	for (i = 0; i < ACCEPT_BATCH; i++) {
		/*
		 * max_connections counts the sessions of every worker: at
		 * the cap, pause and look again shortly (the session that
		 * ends may be another worker's).
		 */
		if (!server_conn_reserve(srv)) {
			listeners_pause(srv);
			ev_timer_set(&srv->accept_retry, CAP_RETRY, 0.);
			ev_timer_start(loop, &srv->accept_retry);
			return;
		}
		sl = sizeof(ss);
		fd = accept4(l->fd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			/* Not counted (out of memory): give it back. */
			if (!conn_accept(l, fd, (struct sockaddr *)&ss, sl))
				server_conn_release(srv);
			continue;
		}
		server_conn_release(srv);
		switch (errno) {
		case EAGAIN:
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
			return;
		case EINVAL:
			/* No longer listening: the supervisor's shutdown(2)
			 * at SIGTERM, before ours arrives. */
			listeners_pause(srv);
			return;
		case EMFILE:
		case ENFILE:
		case ENOBUFS:
		case ENOMEM:
			if (ev_now(loop) - srv->emfile_logged > 60) {
				srv->emfile_logged = ev_now(loop);
				log_msg(LOG_ERROR, "accept_failed",
				    "%s; pausing accept (logged once a minute)",
				    strerror(errno));
			}
			listeners_pause(srv);
			ev_timer_set(&srv->accept_retry, EMFILE_RETRY, 0.);
			ev_timer_start(loop, &srv->accept_retry);
			return;
		default:
			log_msg(LOG_ERROR, "accept_failed", "%s",
			    strerror(errno));
			return;
		}
	}
}

/* "192.0.2.1:25", "[2001:db8::1]:25": how listeners are named. */
void
listener_format_addr(const struct sockaddr_storage *ss, char *out,
    size_t outlen)
{
	char host[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 =
		    (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(out, outlen, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(out, outlen, "%s:%u", host, ntohs(s4->sin_port));
	}
}

/*
 * Bind lc's address ourselves, as every listening socket of mxd is made:
 * non-blocking, close-on-exec (a forked worker inherits it; an exec'd
 * program does not), SO_REUSEADDR, IPv6 only on an IPv6 address.  A
 * socket, or -1 with errno.
 */
static int
bind_socket(const struct listen_conf *lc)
{
	int fd, one = 1;

	fd = socket(lc->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lc->addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&lc->addr, lc->addrlen) != 0 ||
	    listen(fd, LISTEN_BACKLOG) != 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* The bound address of fd, "ADDR:PORT" with the real port. */
static int
sock_name(int fd, char *out, size_t outlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		return -1;
	listener_format_addr(&ss, out, outlen);
	return 0;
}

/*
 * A listening socket of our own for lc (the metrics listener); the
 * address with the port actually bound goes to bound.  The fd, or -1
 * with "WHAT ADDR: why" in err.
 */
int
listener_socket(const struct listen_conf *lc, const char *what, char *bound,
    size_t boundlen, char *err, size_t errlen)
{
	int fd;

	fd = bind_socket(lc);
	if (fd < 0 || sock_name(fd, bound, boundlen) != 0) {
		snprintf(err, errlen, "%s %s: %s", what, lc->text,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/*
 * A socket systemd passed for lc's address (sd.c), or one we bind.  An
 * inherited socket keeps systemd's backlog and options.  The fd and its
 * "ADDR:PORT" in bound, or -1 with err.
 */
int
listener_get(struct sd_listen *inherited, const struct listen_conf *lc,
    char *bound, size_t boundlen, bool *from_sd, char *err, size_t errlen)
{
	const char *name = NULL;
	int fd;

	fd = sd_listen_take(inherited, lc, &name);
	if (from_sd != NULL)
		*from_sd = fd >= 0;
	if (fd < 0)
		return listener_socket(lc, "listen", bound, boundlen, err,
		    errlen);
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 ||
	    sock_name(fd, bound, boundlen) != 0) {
		snprintf(err, errlen, "listen %s: %s", lc->text,
		    strerror(errno));
		close(fd);
		return -1;
	}
	log_msg(LOG_INFO, "listen_inherited", "%s: fd %d (name '%s') from "
	    "systemd, not bound again", bound, fd, name);
	return fd;
}

/* Serve fd, a listening socket for lc (bound here or by the supervisor). */
void
listener_attach(struct server *srv, const struct listen_conf *lc,
    struct listener *l, int fd)
{
	memset(l, 0, sizeof(*l));
	sock_name(fd, l->bound, sizeof(l->bound));
	l->fd = fd;
	l->srv = srv;
	l->conf = lc;
	l->tls = srv->tls != NULL && (lc->tls >= 0 ? lc->tls : srv->cfg->tls);
	l->require_tls = l->tls && (lc->require_tls >= 0 ? lc->require_tls :
	    srv->cfg->require_tls);
	l->proxy = (enum smtp_proxy_mode)(lc->proxy >= 0 ? lc->proxy :
	    srv->cfg->proxy_protocol);
	l->smtp = srv->cfg->smtp;
	l->smtp.tls_available = l->tls;
	l->smtp.tls_required = l->require_tls;
	l->smtp_notls = l->smtp;
	l->smtp_notls.tls_available = false;
	ev_io_init(&l->io, on_accept, fd, EV_READ);
	ev_io_start(srv->loop, &l->io);
}

int
listener_open(struct server *srv, const struct listen_conf *lc,
    struct listener *l, char *err, size_t errlen)
{
	char bound[80];
	int fd;

	memset(l, 0, sizeof(*l));
	l->fd = -1;
	fd = listener_get(srv->inherited, lc, bound, sizeof(bound), NULL, err,
	    errlen);
	if (fd < 0)
		return -1;
	listener_attach(srv, lc, l, fd);
	return 0;
}

void
listener_close(struct listener *l)
{
	if (l->fd < 0)
		return;
	ev_io_stop(l->srv->loop, &l->io);
	close(l->fd);
	l->fd = -1;
}

static void
on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *srv = (struct server *)((char *)w -
	    offsetof(struct server, accept_retry));

	if (shared_conns(srv->sh) < srv->cfg->max_connections) {
		listeners_resume(srv);
	} else if (!srv->shutting_down && !srv->retiring) {
		ev_timer_set(&srv->accept_retry, CAP_RETRY, 0.);
		ev_timer_start(loop, &srv->accept_retry);
	}
}

void
listeners_init(struct server *srv)
{
	ev_init(&srv->accept_retry, on_retry);
}

void
listeners_pause(struct server *srv)
{
	size_t i;

	srv->accept_paused = true;
	for (i = 0; i < srv->nlisteners; i++)
		if (srv->listeners[i].fd >= 0)
			ev_io_stop(srv->loop, &srv->listeners[i].io);
}

void
listeners_resume(struct server *srv)
{
	size_t i;

	if (srv->shutting_down || srv->retiring)
		return;
	srv->accept_paused = false;
	for (i = 0; i < srv->nlisteners; i++)
		if (srv->listeners[i].fd >= 0)
			ev_io_start(srv->loop, &srv->listeners[i].io);
}
