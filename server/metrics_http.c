/*
 * metrics_http.c - the metrics_listen socket: a minimal HTTP/1.0-1.1
 * responder on the event loop for Prometheus scrapes.
 *
 * One request per connection, then close: GET (or HEAD) /metrics gets
 * 200 with the exposition of metrics.c; another path 404, another
 * method on /metrics 405, a malformed request 400, a request head over
 * METRICS_REQUEST_MAX octets 431, a request not complete within
 * METRICS_TIMEOUT 408, and a connection beyond METRICS_MAX_CONNS at
 * once 503.  Every response says Connection: close and has a
 * Content-Length.  Nothing here blocks: reads and writes are
 * non-blocking, a response that does not fit in the socket buffer is
 * finished by a write watcher, and METRICS_TIMEOUT bounds the whole
 * exchange, so a scraper that reads slowly or not at all costs one fd
 * and a few KiB until then, never the loop's time.  After the response
 * the write side is shut and what the client still sends (a POST body)
 * is read and dropped for a moment, so that close(2) does not answer
 * unread input with a reset that would destroy the response in flight.
 *
 * Processes: the socket is opened like the SMTP listeners (non-blocking,
 * close-on-exec, so a forked worker inherits it), before any fork.
 * Every process that has it watches it; whichever accept()s a scrape
 * serves it, from the region of counters all processes share, so any
 * one answers with the totals of all.  A process that loses the race
 * gets EAGAIN and goes on.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "server.h"

/* The request line and headers; a scrape's are some 200 octets. */
#define METRICS_REQUEST_MAX	4096
/* From accept to the last octet of the response. */
#define METRICS_TIMEOUT		10.0
/* Scrapes served at once by this process; Prometheus makes one. */
#define METRICS_MAX_CONNS	16
/* After the response: how long, and how much, to drain. */
#define METRICS_LINGER		2.0
#define METRICS_LINGER_BYTES	(64 * 1024)
#define ACCEPT_BATCH		16
#define ACCEPT_RETRY		0.1	/* s, after EMFILE */

enum mphase {
	MP_READ,		/* the request */
	MP_WRITE,		/* the response */
	MP_LINGER,		/* write side shut: draining */
};

struct mconn {
	ev_io			 io;
	ev_timer		 timer;
	struct metrics_http	*h;
	struct mconn		*prev, *next;
	int			 fd;
	char			 peer[INET6_ADDRSTRLEN + 8];	/* for logs */
	enum mphase		 phase;
	char			 req[METRICS_REQUEST_MAX];
	size_t			 rlen;
	char			*out;		/* head and body, malloc'd */
	size_t			 olen, off;
	size_t			 drained;
};

struct metrics_http {
	ev_io			 io;
	ev_timer		 retry;		/* after EMFILE and the like */
	int			 fd;
	struct server		*srv;
	char			 bound[80];
	struct mconn		*conns;
	unsigned		 nconns;
};

static const struct {
	int		 code;
	const char	*text;
} statuses[MH_COUNT] = {
	[MH_200] = { 200, "OK" },
	[MH_400] = { 400, "Bad Request" },
	[MH_404] = { 404, "Not Found" },
	[MH_405] = { 405, "Method Not Allowed" },
	[MH_408] = { 408, "Request Timeout" },
	[MH_431] = { 431, "Request Header Fields Too Large" },
	[MH_503] = { 503, "Service Unavailable" },
};

static void
mconn_close(struct mconn *m)
{
	struct metrics_http *h = m->h;
	struct ev_loop *loop = h->srv->loop;

	ev_io_stop(loop, &m->io);
	ev_timer_stop(loop, &m->timer);
	close(m->fd);
	if (m->prev != NULL)
		m->prev->next = m->next;
	else
		h->conns = m->next;
	if (m->next != NULL)
		m->next->prev = m->prev;
	h->nconns--;
	free(m->out);
	free(m);
}

static void
mconn_watch(struct mconn *m, int events)
{
	struct ev_loop *loop = m->h->srv->loop;

	ev_io_stop(loop, &m->io);
	ev_io_set(&m->io, m->fd, events);
	ev_io_start(loop, &m->io);
}

/*
 * The response: status line, headers, and the body unless HEAD.  An
 * error's body is its status line's text.  On out of memory, the
 * connection is just closed.
 */
static bool
respond(struct mconn *m, enum metrics_http_status st, const char *body,
    size_t blen, bool head_only, const char *extra)
{
	char hdr[256];
	int n;

	metrics_inc(m->h->srv->metrics, (enum metrics_idx)(MI_SCRAPES + st));
	n = snprintf(hdr, sizeof(hdr), "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "%s"
	    "Connection: close\r\n\r\n",
	    statuses[st].code, statuses[st].text, st == MH_200 ?
	    "text/plain; version=0.0.4; charset=utf-8" : "text/plain",
	    blen, extra != NULL ? extra : "");
	if (n < 0 || (size_t)n >= sizeof(hdr))
		return false;
	m->olen = (size_t)n + (head_only ? 0 : blen);
	m->out = malloc(m->olen);
	if (m->out == NULL)
		return false;
	memcpy(m->out, hdr, (size_t)n);
	if (!head_only)
		memcpy(m->out + n, body, blen);
	m->off = 0;
	m->phase = MP_WRITE;
	return true;
}

static bool
respond_error(struct mconn *m, enum metrics_http_status st, const char *why,
    const char *extra)
{
	char body[64];
	struct logline l;
	int n;

	log_begin(&l, LOG_INFO, NULL, "metrics_refused");
	log_str(&l, "client", m->peer);
	log_str(&l, "listener", m->h->bound);
	log_int(&l, "status", statuses[st].code);
	log_str(&l, "reason", why);
	log_end(&l);
	n = snprintf(body, sizeof(body), "%d %s\n", statuses[st].code,
	    statuses[st].text);
	return respond(m, st, body, (size_t)n, false, extra);
}

/* RFC 9110 5.6.2: a token's characters. */
static bool
is_token(const char *p, size_t n)
{
	size_t i;

	if (n == 0)
		return false;
	for (i = 0; i < n; i++)
		if ((p[i] == 0 || strchr("!#$%&'*+-.^_`|~", p[i]) == NULL) &&
		    !(p[i] >= '0' && p[i] <= '9') &&
		    !(p[i] >= 'A' && p[i] <= 'Z') &&
		    !(p[i] >= 'a' && p[i] <= 'z'))
			return false;
	return true;
}

/*
 * The request line, "METHOD SP TARGET SP HTTP/1.x" (RFC 9112 3);
 * headers are read past and ignored.  The target is an origin-form path
 * with an optional query, which is ignored too.
 */
static bool
handle_request(struct mconn *m, size_t line_len)
{
	const char *line = m->req, *sp1, *sp2, *target;
	size_t mlen, tlen, plen, len;
	char *text;
	bool head, ok;

	if (line_len > 0 && line[line_len - 1] == '\r')
		line_len--;
	sp1 = memchr(line, ' ', line_len);
	sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', line_len -
	    (size_t)(sp1 + 1 - line)) : NULL;
	if (sp1 == NULL || sp2 == NULL)
		return respond_error(m, MH_400, "request_line", NULL);
	mlen = (size_t)(sp1 - line);
	target = sp1 + 1;
	tlen = (size_t)(sp2 - target);
	if (!is_token(line, mlen) || tlen == 0 || target[0] != '/' ||
	    memchr(target, ' ', tlen) != NULL ||
	    (size_t)(line + line_len - (sp2 + 1)) != 8 ||
	    (memcmp(sp2 + 1, "HTTP/1.0", 8) != 0 &&
	    memcmp(sp2 + 1, "HTTP/1.1", 8) != 0))
		return respond_error(m, MH_400, "request_line", NULL);
	for (plen = 0; plen < tlen && target[plen] != '?'; plen++)
		;
	if (plen != 8 || memcmp(target, "/metrics", 8) != 0)
		return respond_error(m, MH_404, "path", NULL);
	head = mlen == 4 && memcmp(line, "HEAD", 4) == 0;
	if (!head && !(mlen == 3 && memcmp(line, "GET", 3) == 0))
		return respond_error(m, MH_405, "method",
		    "Allow: GET, HEAD\r\n");
	if (metrics_render(m->h->srv->metrics_region, &text, &len) != 0)
		return false;
	ok = respond(m, MH_200, text, len, head, NULL);
	free(text);
	if (log_enabled(LOG_DEBUG)) {
		struct logline l;

		log_begin(&l, LOG_DEBUG, NULL, "metrics_scrape");
		log_uint(&l, "bytes", len);
		log_end(&l);
	}
	return ok;
}

/* The end of the request head: CRLF CRLF, or LF LF (RFC 9112 2.2). */
static bool
head_complete(const struct mconn *m, size_t *line_len)
{
	const char *lf = memchr(m->req, '\n', m->rlen);
	size_t i;

	if (lf == NULL)
		return false;
	*line_len = (size_t)(lf - m->req);
	for (i = 1; i < m->rlen; i++)
		if (m->req[i] == '\n' && (m->req[i - 1] == '\n' ||
		    (i >= 2 && m->req[i - 1] == '\r' && m->req[i - 2] == '\n')))
			return true;
	return false;
}

/* Write what is left; false when the connection was closed. */
static bool
write_some(struct mconn *m)
{
	ssize_t n;

	while (m->off < m->olen) {
		n = send(m->fd, m->out + m->off, m->olen - m->off,
		    MSG_NOSIGNAL);
		if (n > 0) {
			m->off += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR)) {
			mconn_watch(m, EV_WRITE);
			return true;
		}
		mconn_close(m);
		return false;
	}
	shutdown(m->fd, SHUT_WR);
	m->phase = MP_LINGER;
	mconn_watch(m, EV_READ);
	ev_timer_stop(m->h->srv->loop, &m->timer);
	ev_timer_set(&m->timer, METRICS_LINGER, 0.);
	ev_timer_start(m->h->srv->loop, &m->timer);
	return true;
}

static void
read_request(struct mconn *m)
{
	size_t line_len;
	ssize_t n;

	n = recv(m->fd, m->req + m->rlen, sizeof(m->req) - m->rlen, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n <= 0) {
		mconn_close(m);		/* gone before asking */
		return;
	}
	m->rlen += (size_t)n;
	if (head_complete(m, &line_len)) {
		if (!handle_request(m, line_len)) {
			mconn_close(m);
			return;
		}
	} else if (m->rlen == sizeof(m->req)) {
		if (!respond_error(m, MH_431, "too_long", NULL)) {
			mconn_close(m);
			return;
		}
	} else {
		return;
	}
	write_some(m);
}

static void
on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mconn *m = (struct mconn *)w;
	char buf[4096];
	ssize_t n;

	switch (m->phase) {
	case MP_READ:
		read_request(m);
		return;
	case MP_WRITE:
		write_some(m);
		return;
	case MP_LINGER:
		n = recv(m->fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n > 0 && (m->drained += (size_t)n) < METRICS_LINGER_BYTES)
			return;
		mconn_close(m);
		return;
	}
}

static void
on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mconn *m = (struct mconn *)((char *)w -
	    offsetof(struct mconn, timer));

	if (m->phase == MP_READ) {
		/* Best effort: one send of the 408, then close. */
		if (respond_error(m, MH_408, "timeout", NULL))
			(void)send(m->fd, m->out, m->olen, MSG_NOSIGNAL |
			    MSG_DONTWAIT);
	} else if (m->phase == MP_WRITE) {
		struct logline l;

		log_begin(&l, LOG_INFO, NULL, "metrics_timeout");
		log_str(&l, "listener", m->h->bound);
		log_uint(&l, "sent", m->off);
		log_uint(&l, "bytes", m->olen);
		log_end(&l);
	}
	mconn_close(m);
}

/* Over METRICS_MAX_CONNS: a 503 in one try, then close. */
static void
refuse_busy(struct metrics_http *h, int fd, const char *peer)
{
	static const char resp[] = "HTTP/1.1 503 Service Unavailable\r\n"
	    "Content-Type: text/plain\r\nContent-Length: 24\r\n"
	    "Retry-After: 1\r\nConnection: close\r\n\r\n"
	    "503 Service Unavailable\n";
	struct logline l;

	metrics_inc(h->srv->metrics, (enum metrics_idx)(MI_SCRAPES + MH_503));
	log_begin(&l, LOG_INFO, NULL, "metrics_refused");
	log_str(&l, "client", peer);
	log_str(&l, "listener", h->bound);
	log_int(&l, "status", 503);
	log_str(&l, "reason", "too_many_connections");
	log_end(&l);
	(void)send(fd, resp, sizeof(resp) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	shutdown(fd, SHUT_WR);
	close(fd);
}

static void
on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct metrics_http *h = (struct metrics_http *)w;
	struct sockaddr_storage ss;
	socklen_t sl;
	struct mconn *m;
	char peer[INET6_ADDRSTRLEN + 8];
	int fd, i;

	for (i = 0; i < ACCEPT_BATCH; i++) {
		sl = sizeof(ss);
		fd = accept4(h->fd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			/* EAGAIN: none left, or another process took it. */
			if (errno == EAGAIN || errno == EINTR ||
			    errno == ECONNABORTED || errno == EPROTO)
				return;
			/* Out of fds or memory: pause, do not spin. */
			ev_io_stop(loop, &h->io);
			ev_timer_set(&h->retry, ACCEPT_RETRY, 0.);
			ev_timer_start(loop, &h->retry);
			return;
		}
		listener_format_addr(&ss, peer, sizeof(peer));
		if (h->nconns >= METRICS_MAX_CONNS) {
			refuse_busy(h, fd, peer);
			continue;
		}
		m = calloc(1, sizeof(*m));
		if (m == NULL) {
			close(fd);
			continue;
		}
		m->h = h;
		m->fd = fd;
		memcpy(m->peer, peer, sizeof(peer));
		m->phase = MP_READ;
		m->next = h->conns;
		if (m->next != NULL)
			m->next->prev = m;
		h->conns = m;
		h->nconns++;
		ev_io_init(&m->io, on_io, fd, EV_READ);
		ev_io_start(loop, &m->io);
		ev_timer_init(&m->timer, on_timer, METRICS_TIMEOUT, 0.);
		ev_timer_start(loop, &m->timer);
	}
}

static void
on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct metrics_http *h = (struct metrics_http *)((char *)w -
	    offsetof(struct metrics_http, retry));

	ev_io_start(loop, &h->io);
}

/* Serve fd, a listening socket for metrics_listen named bound. */
static int
metrics_http_serve(struct server *srv, int fd, const char *bound, char *err,
    size_t errlen)
{
	struct metrics_http *h;

	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		snprintf(err, errlen, "metrics_listen: out of memory");
		close(fd);
		return -1;
	}
	h->srv = srv;
	h->fd = fd;
	snprintf(h->bound, sizeof(h->bound), "%s", bound);
	ev_io_init(&h->io, on_accept, h->fd, EV_READ);
	ev_io_start(srv->loop, &h->io);
	ev_init(&h->retry, on_retry);
	srv->metrics_http = h;
	return 0;
}

int
metrics_http_open(struct server *srv, char *err, size_t errlen)
{
	char bound[80];
	int fd;

	if (!srv->cfg->metrics_on)
		return 0;
	fd = listener_socket(&srv->cfg->metrics_listen, "metrics_listen",
	    bound, sizeof(bound), err, errlen);
	if (fd < 0)
		return -1;
	return metrics_http_serve(srv, fd, bound, err, errlen);
}

int
metrics_http_adopt(struct server *srv, int fd, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char bound[80];

	if (fd < 0)
		return 0;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
		snprintf(err, errlen, "metrics_listen: %s", strerror(errno));
		close(fd);
		return -1;
	}
	listener_format_addr(&ss, bound, sizeof(bound));
	return metrics_http_serve(srv, fd, bound, err, errlen);
}

const char *
metrics_http_bound(const struct server *srv)
{
	return srv->metrics_http != NULL ? srv->metrics_http->bound : NULL;
}

void
metrics_http_close(struct server *srv)
{
	struct metrics_http *h = srv->metrics_http;

	if (h == NULL)
		return;
	while (h->conns != NULL)
		mconn_close(h->conns);
	ev_io_stop(srv->loop, &h->io);
	ev_timer_stop(srv->loop, &h->retry);
	close(h->fd);
	free(h);
	srv->metrics_http = NULL;
}
