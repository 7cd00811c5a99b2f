/*
 * delivery_lmtp.c - hand each message to an LMTP server (RFC 2033),
 * streamed as it arrives, and answer the client with what that server
 * said about every recipient.
 *
 * A transaction's first job (the first flush, or the commit of a small
 * message) takes a connection (an idle one from the pool, else a new
 * one: greeting, LHLO) and sends MAIL, then every RCPT and DATA
 * pipelined (RFC 2033 4.2 requires PIPELINING of the server).  Each
 * later flush sends its part of the body, dot-stuffed (RFC 5321
 * 4.5.2); the commit sends the final ".", and reads one reply per
 * recipient the server accepted (RFC 2033 4.2).  The connection belongs
 * to the transaction between its jobs, so the body is never held whole.
 *
 * The outcome (documented in mxd.conf(5)): 250 only when every
 * recipient was accepted at the end; 5xx for all of them (at RCPT, at
 * MAIL, at DATA or after the body) gives the client the downstream's
 * code and enhanced code when they all agree, else 550 5.1.1; anything
 * else (a 4xx, or some accepted and some not) gives 451 4.3.0 for the
 * whole message: the sender retries, and a duplicate for those that got
 * it is better than a loss.  A server that cannot be reached, closes,
 * or does not answer within lmtp_timeout gives 451 4.4.1.
 *
 * Every socket is non-blocking and every wait is a poll() with a
 * deadline of lmtp_timeout (renewed by progress), so a worker thread
 * is never held longer than that by one step.  An idle pooled
 * connection may have been closed by the server meanwhile: one that is
 * readable when taken is dropped, and one that fails at MAIL is retried
 * once on a new connection (nothing of the transaction was accepted
 * yet, so nothing can be duplicated).  The pool is shared by the worker
 * threads under one mutex; at most lmtp_connections idle ones are kept.
 *
 * Everything here except lmtp_setup() and lmtp_destroy() runs in a
 * worker thread; discard may also run in the loop thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "delivery_int.h"

/* A reply line: RFC 5321 4.5.3.1.5 says 512; be lenient. */
#define LMTP_LINE_MAX	2048
/* Dot-stuffed body octets gathered before a send(). */
#define LMTP_OUT_MAX	(64u * 1024)
/* RCPTs sent before their replies are read (start()). */
#define LMTP_RCPT_WINDOW	100u

struct lmtp_conn {
	int			 fd;
	bool			 reused;	/* taken from the pool */
	bool			 has_size, has_8bitmime, has_smtputf8;
	char			 in[LMTP_LINE_MAX];
	size_t			 in_len;
	struct lmtp_conn	*next;		/* in the idle list */
};

struct lmtp {
	const struct config	*cfg;
	double			 timeout;	/* seconds */
	pthread_mutex_t		 mu;		/* guards idle, nidle */
	struct lmtp_conn	*idle;		/* most recently used first */
	unsigned		 nidle;
};

struct lmtp_reply {
	int			 code;
	char			 enh[16];	/* "" when none */
	char			 text[160];
};

/* One transaction's downstream session, between its jobs. */
struct lmtp_txn {
	struct lmtp_conn	*c;
	bool			*accepted;	/* per recipient, at RCPT */
	unsigned		 naccepted;
	unsigned		 nperm, ntemp;	/* recipients refused */
	int			 perm_code;	/* the first 5xx, and */
	char			 perm_enh[16];
	bool			 perm_differ;	/* whether others differ */
	struct lmtp_reply	 last;		/* the last refusal, for the log */
	bool			 bol;		/* the body is at a line start */
	char			*out;
	size_t			 out_len;
};

/* ---- sockets with deadlines ------------------------------------------- */

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 0 when fd is ready for ev before the deadline, else an errno value. */
static int
wait_fd(int fd, short ev, double deadline)
{
	struct pollfd p;
	double left;
	int r;

	for (;;) {
		left = deadline - now();
		if (left <= 0)
			return ETIMEDOUT;
		p.fd = fd;
		p.events = ev;
		p.revents = 0;
		r = poll(&p, 1, (int)(left * 1000) + 1);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return errno;
	}
}

static int
send_all(const struct lmtp *l, struct lmtp_conn *c, const char *p, size_t n)
{
	double deadline = now() + l->timeout;
	ssize_t w;
	int e;

	while (n > 0) {
		w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			deadline = now() + l->timeout;
		} else if (w < 0 && errno == EINTR) {
			continue;
		} else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if ((e = wait_fd(c->fd, POLLOUT, deadline)) != 0)
				return e;
		} else {
			return w < 0 ? errno : EPIPE;
		}
	}
	return 0;
}

/* A keyword of the LHLO reply that we use (RFC 1870, 6152, 6531). */
static void
note_keyword(struct lmtp_conn *c, const char *kw, size_t n)
{
	size_t k = 0;

	while (k < n && kw[k] != ' ')
		k++;
	if (k == 4 && strncasecmp(kw, "SIZE", 4) == 0)
		c->has_size = true;
	else if (k == 8 && strncasecmp(kw, "8BITMIME", 8) == 0)
		c->has_8bitmime = true;
	else if (k == 8 && strncasecmp(kw, "SMTPUTF8", 8) == 0)
		c->has_smtputf8 = true;
}

/*
 * One reply, its lines joined: the code, and the enhanced code and text
 * of its first line (RFC 2034).  With lhlo, each later line's keyword
 * is noted.  0, or an errno value: ETIMEDOUT, ECONNRESET when the server
 * closed, EPROTO for what is not a reply.
 */
static int
read_reply(const struct lmtp *l, struct lmtp_conn *c, struct lmtp_reply *r,
    bool lhlo)
{
	double deadline = now() + l->timeout;
	bool first = true;
	char *nl, *t;
	size_t len, n;
	ssize_t got;
	int code, e;

	for (;;) {
		nl = memchr(c->in, '\n', c->in_len);
		if (nl == NULL) {
			if (c->in_len == sizeof(c->in))
				return EPROTO;
			got = recv(c->fd, c->in + c->in_len,
			    sizeof(c->in) - c->in_len, 0);
			if (got > 0) {
				/* The deadline holds for the whole reply:
				 * a server that trickles it, or sends
				 * continuation lines without end, is cut off
				 * too. */
				c->in_len += (size_t)got;
			} else if (got == 0) {
				return ECONNRESET;
			} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if ((e = wait_fd(c->fd, POLLIN, deadline)) != 0)
					return e;
			} else if (errno != EINTR) {
				return errno;
			}
			continue;
		}
		len = (size_t)(nl - c->in);
		if (len > 0 && c->in[len - 1] == '\r')
			len--;
		if (len < 3 || c->in[0] < '2' || c->in[0] > '5' ||
		    c->in[1] < '0' || c->in[1] > '9' || c->in[2] < '0' ||
		    c->in[2] > '9' || (len > 3 && c->in[3] != ' ' &&
		    c->in[3] != '-'))
			return EPROTO;
		code = (c->in[0] - '0') * 100 + (c->in[1] - '0') * 10 +
		    (c->in[2] - '0');
		t = c->in + (len > 3 ? 4 : 3);
		n = len > 3 ? len - 4 : 0;
		if (first) {
			r->code = code;
			r->enh[0] = 0;
			/* "X.Y.Z " with X the class (RFC 3463 2). */
			if (n > 5 && t[0] == c->in[0] && t[1] == '.') {
				size_t k = 0;

				while (k < n && k < sizeof(r->enh) - 1 &&
				    t[k] != ' ')
					k++;
				if (k < n && t[k] == ' ') {
					memcpy(r->enh, t, k);
					r->enh[k] = 0;
					t += k + 1;
					n -= k + 1;
				}
			}
			snprintf(r->text, sizeof(r->text), "%.*s", (int)n, t);
			first = false;
		} else if (code != r->code) {
			return EPROTO;
		} else if (lhlo) {
			note_keyword(c, t, n);
		}
		n = len > 3 ? (size_t)c->in[3] : ' ';
		len = (size_t)(nl + 1 - c->in);
		memmove(c->in, nl + 1, c->in_len - len);
		c->in_len -= len;
		if (n != '-')
			return 0;
	}
}

/* ---- connections and the pool ----------------------------------------- */

static void
conn_free(struct lmtp_conn *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

/* Say why in t->detail; returns e. */
static int
fail(struct delivery_txn *t, enum smtp_msg_result v, int e,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
fail(struct delivery_txn *t, enum smtp_msg_result v, int e,
    const char *fmt, ...)
{
	va_list ap;

	t->verdict = v;
	va_start(ap, fmt);
	vsnprintf(t->detail, sizeof(t->detail), fmt, ap);
	va_end(ap);
	return e;
}

/*
 * One step of the greeting or LHLO: 0 when the reply has the code
 * wanted, else the reason in t->detail and an errno value.
 */
static int
expect(struct delivery_txn *t, const struct lmtp *l, struct lmtp_conn *c,
    const char *step, int want)
{
	struct lmtp_reply r;
	int e;

	if ((e = read_reply(l, c, &r, want == 250)) != 0)
		return fail(t, SMTP_MSG_UNAVAILABLE, e, "%s: %s", step,
		    strerror(e));
	if (r.code != want)
		return fail(t, SMTP_MSG_UNAVAILABLE, EPROTO, "%s: %d %s %s",
		    step, r.code, r.enh, r.text);
	return 0;
}

/* Connect, read the greeting, say LHLO.  0 or an errno value. */
static int
conn_open(struct delivery_txn *t, const struct lmtp *l,
    struct lmtp_conn **out)
{
	const struct config *cfg = l->cfg;
	struct lmtp_conn *c;
	char line[300];
	socklen_t sl = sizeof(int);
	int e = 0, n;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return fail(t, SMTP_MSG_TEMPFAIL, ENOMEM, "out of memory");
	c->fd = socket(cfg->lmtp_addr.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		e = fail(t, SMTP_MSG_UNAVAILABLE, errno, "socket: %s",
		    strerror(errno));
		goto out;
	}
	if (connect(c->fd, (const struct sockaddr *)&cfg->lmtp_addr,
	    cfg->lmtp_addrlen) != 0) {
		/* A full unix listen queue says EAGAIN: a refusal, too. */
		if ((e = errno) == EINPROGRESS) {
			e = wait_fd(c->fd, POLLOUT, now() + l->timeout);
			if (e == 0 && getsockopt(c->fd, SOL_SOCKET, SO_ERROR,
			    &e, &sl) != 0)
				e = errno;
		}
		if (e != 0) {
			e = fail(t, SMTP_MSG_UNAVAILABLE, e, "connect: %s",
			    strerror(e));
			goto out;
		}
	}
	if ((e = expect(t, l, c, "greeting", 220)) != 0)
		goto out;
	n = snprintf(line, sizeof(line), "LHLO %s\r\n", cfg->hostname);
	if ((e = send_all(l, c, line, (size_t)n)) != 0) {
		e = fail(t, SMTP_MSG_UNAVAILABLE, e, "LHLO: %s", strerror(e));
		goto out;
	}
	e = expect(t, l, c, "LHLO", 250);
out:
	if (e != 0) {
		conn_free(c);
		return e;
	}
	*out = c;
	return 0;
}

/*
 * An idle connection, or NULL.  One that is readable now was closed by
 * the server (EOF) or says something unasked (a 421 before closing):
 * either way it is done.
 */
static struct lmtp_conn *
pool_get(struct lmtp *l)
{
	struct lmtp_conn *c;
	struct pollfd p;

	for (;;) {
		pthread_mutex_lock(&l->mu);
		c = l->idle;
		if (c != NULL) {
			l->idle = c->next;
			l->nidle--;
		}
		pthread_mutex_unlock(&l->mu);
		if (c == NULL)
			return NULL;
		p.fd = c->fd;
		p.events = POLLIN;
		p.revents = 0;
		if (poll(&p, 1, 0) == 0 && c->in_len == 0) {
			c->reused = true;
			return c;
		}
		conn_free(c);
	}
}

static void
pool_put(struct lmtp *l, struct lmtp_conn *c)
{
	pthread_mutex_lock(&l->mu);
	if (l->nidle < l->cfg->lmtp_connections && c->in_len == 0) {
		c->next = l->idle;
		l->idle = c;
		l->nidle++;
		c = NULL;
	}
	pthread_mutex_unlock(&l->mu);
	conn_free(c);
}

/*
 * A transaction that ended without a delivery: RSET, so that the
 * connection can serve the next one, or close it.
 */
static void
pool_park(struct lmtp *l, struct lmtp_conn *c)
{
	struct lmtp_reply r;

	if (send_all(l, c, "RSET\r\n", 6) != 0 ||
	    read_reply(l, c, &r, false) != 0 || r.code != 250) {
		conn_free(c);
		return;
	}
	pool_put(l, c);
}

/* ---- the transaction -------------------------------------------------- */

static void
note_refusal(struct lmtp_txn *x, const struct lmtp_reply *r)
{
	x->last = *r;
	if (r->code < 500) {
		x->ntemp++;
		return;
	}
	if (x->nperm++ == 0) {
		x->perm_code = r->code;
		snprintf(x->perm_enh, sizeof(x->perm_enh), "%s", r->enh);
	} else if (r->code != x->perm_code || strcmp(r->enh, x->perm_enh)) {
		x->perm_differ = true;
	}
}

/*
 * Nobody (or not everybody) has the message: the verdict, from what
 * each recipient got.  Returns an errno value for the job.
 */
static int
refused(struct delivery_txn *t, struct lmtp_txn *x)
{
	const struct lmtp_reply *last = &x->last;

	if (x->nperm == t->nrcpt) {
		t->reject_code = x->perm_differ ? 550 : x->perm_code;
		snprintf(t->reject_enh, sizeof(t->reject_enh), "%s",
		    x->perm_differ ? "5.1.1" : x->perm_enh);
		return fail(t, SMTP_MSG_REJECTED, EPERM,
		    "refused: %d %s %s", last->code, last->enh, last->text);
	}
	return fail(t, SMTP_MSG_TEMPFAIL, EAGAIN, "%u of %u recipients "
	    "refused (%u for now): %d %s %s", x->nperm + x->ntemp, t->nrcpt,
	    x->ntemp, last->code, last->enh, last->text);
}

/* "MAIL FROM:<s> SIZE=n BODY=8BITMIME SMTPUTF8" as the server allows. */
static int
mail_line(const struct delivery_txn *t, const struct lmtp_conn *c,
    char *buf, size_t len)
{
	uint64_t size = 0;
	int n;

	/* A whole message in hand at the first job has a known size. */
	if (t->kind == JOB_COMMIT && t->size == 0)
		size = t->len;
	else if (t->size_param > 0)
		size = t->size_param;
	n = snprintf(buf, len, "MAIL FROM:<%s>", t->sender);
	if (c->has_size && size > 0)
		n += snprintf(buf + n, len - (size_t)n, " SIZE=%llu",
		    (unsigned long long)size);
	/* mxd takes 8-bit bodies unless BODY=7BIT was declared. */
	if (c->has_8bitmime && t->body != SMTP_BODY_7BIT)
		n += snprintf(buf + n, len - (size_t)n, " BODY=8BITMIME");
	if (c->has_smtputf8 && t->smtputf8)
		n += snprintf(buf + n, len - (size_t)n, " SMTPUTF8");
	n += snprintf(buf + n, len - (size_t)n, "\r\n");
	return (size_t)n < len ? n : -1;
}

/* MAIL on a connection; with a stale pooled one, once more on a new one. */
static int
start_mail(struct delivery_txn *t, struct lmtp *l, struct lmtp_txn *x,
    struct lmtp_reply *r)
{
	char line[SMTP_PATH_MAX + 100];
	int attempt, e, n;

	for (attempt = 0; attempt < 2; attempt++) {
		x->c = attempt == 0 ? pool_get(l) : NULL;
		if (x->c == NULL && (e = conn_open(t, l, &x->c)) != 0)
			return e;
		if ((n = mail_line(t, x->c, line, sizeof(line))) < 0)
			return fail(t, SMTP_MSG_TEMPFAIL, ENAMETOOLONG,
			    "MAIL line too long");
		e = send_all(l, x->c, line, (size_t)n);
		if (e == 0)
			e = read_reply(l, x->c, r, false);
		if (x->c->reused && (e != 0 || r->code == 421)) {
			/* Closed while idle: nothing was accepted yet. */
			conn_free(x->c);
			x->c = NULL;
			continue;
		}
		if (e != 0)
			return fail(t, SMTP_MSG_UNAVAILABLE, e, "MAIL: %s",
			    strerror(e));
		return 0;
	}
	return fail(t, SMTP_MSG_UNAVAILABLE, ECONNRESET, "MAIL: no answer");
}

/* MAIL, RCPT..., DATA up to the 354.  0 or an errno value. */
static int
start(struct delivery_txn *t, struct lmtp *l, struct lmtp_txn *x)
{
	char *buf;
	struct lmtp_reply r;
	size_t len, cap, alen;
	unsigned i, i0, i1;
	int e;

	if ((e = start_mail(t, l, x, &r)) != 0)
		return e;
	if (r.code != 250) {
		for (i = 0; i < t->nrcpt; i++)
			note_refusal(x, &r);
		if (r.code == 421)
			return fail(t, SMTP_MSG_UNAVAILABLE, EPROTO,
			    "MAIL: %d %s %s", r.code, r.enh, r.text);
		pool_park(l, x->c);
		x->c = NULL;
		return refused(t, x);
	}

	/*
	 * RFC 2033 4.2: the server pipelines.  The RCPTs go in windows of
	 * LMTP_RCPT_WINDOW, each one's replies read before the next is
	 * sent, DATA with the last: with thousands of recipients, replies
	 * that nobody reads would fill both socket buffers while we still
	 * write, and both sides would wait for lmtp_timeout.
	 */
	for (i0 = 0;; i0 = i1) {
		i1 = i0 + LMTP_RCPT_WINDOW < t->nrcpt ?
		    i0 + LMTP_RCPT_WINDOW : t->nrcpt;
		cap = 16;
		for (i = i0; i < i1; i++)
			cap += strlen(t->rcpts[i].addr) + 14;
		buf = malloc(cap);
		if (buf == NULL)
			return fail(t, SMTP_MSG_TEMPFAIL, ENOMEM,
			    "out of memory");
		len = 0;
		for (i = i0; i < i1; i++) {
			alen = strlen(t->rcpts[i].addr);
			memcpy(buf + len, "RCPT TO:<", 9);
			memcpy(buf + len + 9, t->rcpts[i].addr, alen);
			memcpy(buf + len + 9 + alen, ">\r\n", 3);
			len += alen + 12;
		}
		if (i1 == t->nrcpt) {
			memcpy(buf + len, "DATA\r\n", 6);
			len += 6;
		}
		e = send_all(l, x->c, buf, len);
		free(buf);
		if (e != 0)
			return fail(t, SMTP_MSG_UNAVAILABLE, e, "RCPT: %s",
			    strerror(e));
		for (i = i0; i < i1; i++) {
			if ((e = read_reply(l, x->c, &r, false)) != 0)
				return fail(t, SMTP_MSG_UNAVAILABLE, e,
				    "RCPT: %s", strerror(e));
			if (r.code >= 200 && r.code < 300) {
				x->accepted[i] = true;
				x->naccepted++;
			} else {
				note_refusal(x, &r);
			}
		}
		if (i1 == t->nrcpt)
			break;
	}
	if ((e = read_reply(l, x->c, &r, false)) != 0)
		return fail(t, SMTP_MSG_UNAVAILABLE, e, "DATA: %s",
		    strerror(e));
	if (x->naccepted == 0) {
		/*
		 * DATA was refused too (RFC 2033 4.2: 503 or 554).  A server
		 * that said 354 anyway now reads a body: the connection is
		 * no good for the next message.
		 */
		if (r.code == 354)
			conn_free(x->c);
		else
			pool_park(l, x->c);
		x->c = NULL;
		return refused(t, x);
	}
	if (r.code != 354) {
		/* The accepted ones get the same answer as DATA. */
		for (i = 0; i < x->naccepted; i++)
			note_refusal(x, &r);
		pool_park(l, x->c);
		x->c = NULL;
		return refused(t, x);
	}
	x->bol = true;
	return 0;
}

static int
out_flush(struct lmtp *l, struct lmtp_txn *x)
{
	int e = send_all(l, x->c, x->out, x->out_len);

	x->out_len = 0;
	return e;
}

/* Body octets, dot-stuffed (RFC 5321 4.5.2), in LMTP_OUT_MAX pieces. */
static int
send_body(struct lmtp *l, struct lmtp_txn *x, const char *p, size_t n)
{
	size_t i;
	int e;

	for (i = 0; i < n; i++) {
		if (x->out_len + 2 > LMTP_OUT_MAX &&
		    (e = out_flush(l, x)) != 0)
			return e;
		if (x->bol && p[i] == '.')
			x->out[x->out_len++] = '.';
		x->out[x->out_len++] = p[i];
		x->bol = p[i] == '\n';
	}
	return 0;
}

static int
lmtp_write(struct delivery_txn *t, const char *p, size_t n)
{
	struct lmtp *l = t->d->be_data;
	struct lmtp_txn *x = t->be_txn;
	int e;

	if (x == NULL) {
		x = calloc(1, sizeof(*x));
		if (x != NULL) {
			x->accepted = calloc(t->nrcpt ? t->nrcpt : 1,
			    sizeof(*x->accepted));
			/* Room for the final ".\r\n" after a full one. */
			x->out = malloc(LMTP_OUT_MAX + 8);
		}
		if (x == NULL || x->accepted == NULL || x->out == NULL) {
			if (x != NULL) {
				free(x->accepted);
				free(x->out);
			}
			free(x);
			return fail(t, SMTP_MSG_TEMPFAIL, ENOMEM,
			    "out of memory");
		}
		t->be_txn = x;
		if ((e = start(t, l, x)) != 0)
			return e;
	}
	e = send_body(l, x, p, n);
	/* A commit's last piece goes out with the final dot. */
	if (e == 0 && t->kind != JOB_COMMIT)
		e = out_flush(l, x);
	if (e != 0)
		return fail(t, SMTP_MSG_UNAVAILABLE, e, "body: %s",
		    strerror(e));
	return 0;
}

static int
lmtp_commit(struct delivery_txn *t)
{
	struct lmtp *l = t->d->be_data;
	struct lmtp_txn *x = t->be_txn;
	struct lmtp_reply r = { 0 };
	unsigned i, ok = 0;
	int e;

	/* A body that does not end in CRLF (BDAT) gets one. */
	if (!x->bol && (e = send_body(l, x, "\r\n", 2)) != 0)
		return fail(t, SMTP_MSG_UNAVAILABLE, e, "body: %s",
		    strerror(e));
	memcpy(x->out + x->out_len, ".\r\n", 3);
	x->out_len += 3;
	if ((e = out_flush(l, x)) != 0)
		return fail(t, SMTP_MSG_UNAVAILABLE, e, "end of data: %s",
		    strerror(e));
	/* RFC 2033 4.2: one reply per accepted recipient, in order. */
	for (i = 0; i < x->naccepted; i++) {
		if ((e = read_reply(l, x->c, &r, false)) != 0)
			return fail(t, SMTP_MSG_UNAVAILABLE, e, "after data, "
			    "%u of %u replies: %s", i, x->naccepted,
			    strerror(e));
		if (r.code >= 200 && r.code < 300)
			ok++;
		else
			note_refusal(x, &r);
	}
	/* The transaction is over either way: the connection serves on. */
	pool_put(l, x->c);
	x->c = NULL;
	if (ok == t->nrcpt) {
		free(x->accepted);
		free(x->out);
		free(x);
		t->be_txn = NULL;
		return 0;
	}
	return refused(t, x);
}

/* A failed or dropped transaction: closing aborts it downstream. */
static void
lmtp_discard(struct delivery_txn *t)
{
	struct lmtp_txn *x = t->be_txn;

	if (x == NULL)
		return;
	conn_free(x->c);
	free(x->accepted);
	free(x->out);
	free(x);
	t->be_txn = NULL;
}

static void
lmtp_destroy(struct delivery *d)
{
	struct lmtp *l = d->be_data;
	struct lmtp_conn *c;

	while ((c = l->idle) != NULL) {
		l->idle = c->next;
		conn_free(c);
	}
	pthread_mutex_destroy(&l->mu);
	free(l);
}

int
lmtp_setup(struct delivery *d, char *err, size_t errlen)
{
	struct lmtp *l;

	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	l->cfg = d->cfg;
	l->timeout = d->cfg->lmtp_timeout;
	pthread_mutex_init(&l->mu, NULL);
	d->be_data = l;
	snprintf(d->describe, sizeof(d->describe), "lmtp:%s",
	    d->cfg->lmtp_text);
	return 0;
}

const struct delivery_backend delivery_lmtp = {
	.name = "lmtp",
	.trace_headers = true,
	.no_return_path = true,
	.write = lmtp_write,
	.commit = lmtp_commit,
	.discard = lmtp_discard,
	.destroy = lmtp_destroy,
};
