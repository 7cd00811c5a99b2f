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
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
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
		unsigned long long before = srv->stats.connections;

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
			conn_accept(l, fd, (struct sockaddr *)&ss, sl);
			/* Not counted (out of memory): give it back. */
			if (srv->stats.connections == before)
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

/* "ADDR:PORT" of a bound socket, with the real port. */
static int
sock_name(int fd, char *out, size_t outlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		return -1;
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(out, outlen, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(out, outlen, "%s:%u", host, ntohs(s4->sin_port));
	}
	return 0;
}

int
listener_bind(const struct listen_conf *lc, int *fdp, char *bound,
    size_t boundlen, char *err, size_t errlen)
{
	int fd, one = 1;

	fd = socket(lc->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lc->addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&lc->addr, lc->addrlen) != 0 ||
	    listen(fd, LISTEN_BACKLOG) != 0 ||
	    sock_name(fd, bound, boundlen) != 0)
		goto fail;
	*fdp = fd;
	return 0;

fail:
	snprintf(err, errlen, "listen %s: %s", lc->text, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

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
	if (listener_bind(lc, &fd, bound, sizeof(bound), err, errlen) != 0)
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
