/*
 * conn.c - one SMTP connection: socket, watchers, timer, transaction.
 *
 * Moves bytes between the transport and proto, answers proto's events
 * (policy for RCPT, delivery for the body), and writes proto's replies.
 * The byte transport is a small table of functions so that TLS can take
 * over a live session after STARTTLS without proto noticing.
 *
 * STARTTLS (RFC 3207): after proto's 220 has left, the handshake runs
 * with its own timeout.  On success TLS becomes the transport and proto
 * is reset.  On failure there is no SMTP reply at all: exactly one fatal
 * alert (tls_conn_send_alert()), one log line, then a half-close and a
 * short drain before close(2), so that unread input does not make the
 * kernel answer with a reset that destroys the alert in flight.
 *
 * One exit: conn_close() stops the watchers, closes the transport and
 * the fd, drops any transaction, logs the disconnect line and frees.  A
 * callback returns at once after anything that may have closed the
 * connection; the helpers that can (pump, flush_output, tls_begin,
 * hs_step, tls_up) say so by returning false.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "delivery.h"
#include "fault.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "server.h"
#include "shared.h"
#include "tls.h"

/* Transport results besides a byte count. */
enum {
	IO_EOF = 0,
	IO_ERR = -1,
	IO_WANT_READ = -2,
	IO_WANT_WRITE = -3,
};

struct transport {
	const char	*name;
	ssize_t		(*read)(struct conn *c, void *buf, size_t len);
	ssize_t		(*write)(struct conn *c, const void *buf, size_t len);
};

/* After a 421 or QUIT, how long the last reply may take to leave. */
#define CONN_LINGER	10.0
/* After a failed handshake's alert: how long to drain before close. */
#define TLS_LINGER	2.0
#define TLS_LINGER_BYTES (64 * 1024)

/* What a fault's delay holds back (docs/harness.md, "delay"). */
enum fault_resume {
	FR_NONE = 0,
	FR_GREETING,
	FR_COMMAND,
	FR_EOM,
};

enum phase {
	PH_PROXY,		/* reading the PROXY header; no proto yet */
	PH_SMTP,		/* plaintext or TLS, proto drives */
	PH_TLS_START,		/* STARTTLS accepted: flushing the 220 */
	PH_HANDSHAKE,
	PH_ALERT,		/* failed: sending the one alert */
	PH_LINGER,		/* alert out, write side shut: draining */
};

struct conn {
	ev_io			 rio;
	ev_io			 wio;
	ev_timer		 timer;
	struct server		*srv;
	struct conn		*prev, *next;
	int			 fd;
	const struct transport	*tr;
	struct listener		*lst;
	enum phase		 phase;
	struct tls_conn		*tls;
	ev_tstamp		 tls_start;
	size_t			 lingered;
	struct smtp_session	*smtp;
	struct delivery_txn	*txn;

	char			 sid[16];
	unsigned long long	 conn_no;	/* connections since start */
	char			 ip[INET6_ADDRSTRLEN];
	unsigned		 port;
	bool			 v6;
	unsigned char		 ipkey[16];
	bool			 ip_counted;
	char			*helo;
	bool			 esmtp;

	bool			 greet_pending;	/* greeting_delay runs */
	char			 dbg_line[4];	/* transcript_len() */
	size_t			 dbg_len;
	bool			 body_active;	/* a message body is coming in */
	uint64_t		 data_bytes;	/* read for this message */
	bool			 busy;		/* delivery job: no input */
	bool			 read_blocked;	/* last read wanted the fd */
	bool			 closing;	/* flush output, then close */
	bool			 drain;		/* 421 after this transaction */
	enum smtp_msg_result	 txn_error;	/* body could not be kept */
	bool			 txn_failed;
	uint64_t		 msg_size;
	unsigned		 nmsg;		/* MAIL commands seen */
	unsigned		 accepted;
	unsigned		 rejected;
	uint64_t		 bytes_in;
	ev_tstamp		 start;
	ev_tstamp		 data_start;
	ev_tstamp		 commit_start;	/* metrics: delivery latency */
	const char		*reason;	/* for the disconnect line */
	void			*user;		/* libmxd: the caller's */
	bool			 reported;	/* session_start's turn came */
	enum fault_resume	 resume;	/* a fault's delay runs */
	bool			 fault_kill;	/* close now, no reply */
	bool			 fault_close_up; /* close once TLS is up */
	struct smtp_proxy	*proxy;		/* PH_PROXY: the header so far */
	char			 proxy_peer[INET6_ADDRSTRLEN + 8]; /* its sender */
	char			 proxy_hdr[16];	/* "v2-TCP4": what it said */
	bool			 health;	/* the proxy's own check */
};

/* ---- plaintext transport --------------------------------------------- */

static ssize_t
plain_read(struct conn *c, void *buf, size_t len)
{
	ssize_t n = recv(c->fd, buf, len, 0);

	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return IO_WANT_READ;
	return IO_ERR;
}

static ssize_t
plain_write(struct conn *c, const void *buf, size_t len)
{
	/* MSG_NOSIGNAL: a closed peer gives EPIPE, never SIGPIPE. */
	ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);

	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return IO_WANT_WRITE;
	return IO_ERR;
}

static const struct transport plain_transport = {
	"plain", plain_read, plain_write,
};

/* ---- TLS transport ---------------------------------------------------- */

static ssize_t
tls_io_result(ssize_t r)
{
	switch (r) {
	case TLS_WANT_READ:	return IO_WANT_READ;
	case TLS_WANT_WRITE:	return IO_WANT_WRITE;
	case TLS_ERR:		return IO_ERR;
	}
	return r;		/* > 0, or 0 for EOF */
}

static ssize_t
tls_read(struct conn *c, void *buf, size_t len)
{
	return tls_io_result(tls_conn_read(c->tls, buf, len));
}

static ssize_t
tls_write(struct conn *c, const void *buf, size_t len)
{
	return tls_io_result(tls_conn_write(c->tls, buf, len));
}

static const struct transport tls_transport = {
	"tls", tls_read, tls_write,
};

/* ---- helpers ---------------------------------------------------------- */

struct conn *
conn_next(struct conn *c)
{
	return c->next;
}

static struct conn *
from_rio(ev_io *w)
{
	return (struct conn *)((char *)w - offsetof(struct conn, rio));
}

static struct conn *
from_wio(ev_io *w)
{
	return (struct conn *)((char *)w - offsetof(struct conn, wio));
}

static struct conn *
from_timer(ev_timer *w)
{
	return (struct conn *)((char *)w - offsetof(struct conn, timer));
}

static const char *
notify_text(unsigned bits, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s",
	    bits & SMTP_NOTIFY_NEVER ? "NEVER," : "",
	    bits & SMTP_NOTIFY_SUCCESS ? "SUCCESS," : "",
	    bits & SMTP_NOTIFY_FAILURE ? "FAILURE," : "",
	    bits & SMTP_NOTIFY_DELAY ? "DELAY," : "");
	if (buf[0] != 0)
		buf[strlen(buf) - 1] = 0;
	return buf;
}

static void
log_path(struct logline *l, const char *key, const struct smtp_path *p)
{
	char buf[SMTP_PATH_MAX + 3];

	snprintf(buf, sizeof(buf), "<%.*s>", (int)p->addr_len, p->addr);
	log_str(l, key, buf);
}

static void
drop_txn(struct conn *c)
{
	delivery_txn_abort(c->txn);
	c->txn = NULL;
	c->txn_failed = false;
	c->body_active = false;
}

/* ---- libmxd's callbacks (mxd.h) --------------------------------------- */

/* A callback's default replies: for TEMPFAIL, for REJECT. */
struct cb_defaults {
	const char	*at;		/* for the log */
	int		 tcode;
	const char	*tenh, *ttext;
	int		 rcode;
	const char	*renh, *rtext;
};

static const struct cb_defaults def_start = { "session_start",
	421, "4.3.2", "Service not available, closing channel",
	554, "5.7.1", "No SMTP service here" };
static const struct cb_defaults def_mail = { "mail",
	451, "4.3.0", "Try again later", 550, "5.7.1", "Sender rejected" };
static const struct cb_defaults def_rcpt = { "rcpt",
	451, "4.3.0", "Try again later", 550, "5.1.1", "Recipient rejected" };
static const struct cb_defaults def_message = { "message",
	451, "4.3.0", "Try again later", 554, "5.7.1", "Message rejected" };

/* What a callback sees of the session; the pointers are borrowed. */
static void
session_view(const struct conn *c, struct mxd_session *s)
{
	memset(s, 0, sizeof(*s));
	s->id = c->sid;
	s->number = c->conn_no;
	s->client_ip = c->ip;
	s->client_port = c->port;
	s->helo = c->helo;
	s->esmtp = c->esmtp;
	if (c->tls != NULL && c->tr == &tls_transport) {
		s->tls_version = tls_conn_version(c->tls);
		s->tls_cipher = tls_conn_cipher(c->tls);
		if (tls_conn_sni(c->tls)[0] != 0)
			s->tls_sni = tls_conn_sni(c->tls);
	}
	s->user = c->user;
}

/*
 * A reply of the caller's is taken only if it is one: code in the
 * answer's class (RFC 5321 4.2.1), enhanced code of that class (RFC
 * 3463), printable text that fits a reply line.
 */
static bool
reply_valid(const struct mxd_reply *r, bool temp, bool greeting)
{
	unsigned a, b, d;
	int n = -1;
	size_t len, i;

	if (greeting ? r->code != (temp ? 421 : 554) :
	    r->code / 100 != (temp ? 4 : 5) || (r->code / 10) % 10 > 5)
		return false;
	if (r->enh[0] != 0 && (memchr(r->enh, 0, sizeof(r->enh)) == NULL ||
	    sscanf(r->enh, "%u.%u.%u%n", &a, &b, &d, &n) != 3 ||
	    (size_t)n != strlen(r->enh) || (int)a != r->code / 100 ||
	    b > 999 || d > 999 || !isdigit((unsigned char)r->enh[0])))
		return false;
	if (memchr(r->text, 0, sizeof(r->text)) == NULL)
		return false;
	len = strlen(r->text);
	for (i = 0; i < len; i++)
		if (r->text[i] < 0x20 || r->text[i] > 0x7e)
			return false;
	return len > 0;
}

/*
 * After a callback: false when it accepted; true when it did not, with
 * the reply to send in *r (its own, or the default) and a log line.
 */
static bool
cb_refused(struct conn *c, const struct mxd_session *s, enum mxd_answer a,
    struct mxd_reply *r, const struct cb_defaults *d)
{
	bool temp = a == MXD_TEMPFAIL;
	bool greeting = d == &def_start;
	struct logline l;

	c->user = s->user;
	if (a == MXD_ACCEPT)
		return false;
	if (r->code != 0 && !reply_valid(r, temp, greeting)) {
		log_begin(&l, LOG_WARN, c->sid, "callback_reply_invalid");
		log_str(&l, "at", d->at);
		log_int(&l, "code", r->code);
		log_end(&l);
		r->code = 0;
	}
	if (r->code == 0) {
		r->code = temp ? d->tcode : d->rcode;
		snprintf(r->enh, sizeof(r->enh), "%s", temp ? d->tenh : d->renh);
		snprintf(r->text, sizeof(r->text), "%s",
		    temp ? d->ttext : d->rtext);
	}
	c->rejected++;
	if (d == &def_rcpt || d == &def_message)
		metrics_inc(c->srv->metrics, d == &def_rcpt ? MI_RCPT_REJECTED +
		    RR_POLICY : MI_MSG_REJECTED + MR_POLICY);
	log_begin(&l, LOG_INFO, c->sid, "refused");
	log_str(&l, "by", "callback");
	log_str(&l, "at", d->at);
	log_int(&l, "code", r->code);
	log_str(&l, "reply", r->text);
	log_end(&l);
	return true;
}

/* MAIL or RCPT through the caller's callback: true when refused. */
static bool
cb_path_refused(struct conn *c, const struct smtp_event *ev, bool mail)
{
	const struct mxd_callbacks *cb = &c->srv->cb;
	char addr[SMTP_PATH_MAX + 1];
	struct mxd_session s;
	struct mxd_reply r;
	enum mxd_answer a;

	if (mail ? cb->mail == NULL : cb->rcpt == NULL)
		return false;
	snprintf(addr, sizeof(addr), "%.*s", (int)ev->path.addr_len,
	    ev->path.addr);
	session_view(c, &s);
	memset(&r, 0, sizeof(r));
	a = mail ? cb->mail(cb->arg, &s, addr, &r) :
	    cb->rcpt(cb->arg, &s, addr, &r);
	if (!cb_refused(c, &s, a, &r, mail ? &def_mail : &def_rcpt))
		return false;
	smtp_session_reply_custom(c->smtp, r.code, r.enh, r.text);
	return true;
}

/* ---- teardown --------------------------------------------------------- */

static void
conn_close(struct conn *c, const char *reason)
{
	struct server *srv = c->srv;
	struct logline l;

	ev_io_stop(srv->loop, &c->rio);
	ev_io_stop(srv->loop, &c->wio);
	ev_timer_stop(srv->loop, &c->timer);
	/* libmxd: while the session's TLS details are still there. */
	if (c->reported && srv->cb.session_end != NULL) {
		struct mxd_session s;

		session_view(c, &s);
		srv->cb.session_end(srv->cb.arg, &s, reason != NULL ? reason :
		    c->reason);
	}
	if (c->tls != NULL) {
		/* close_notify, best effort: the session is over anyway. */
		if (c->phase == PH_SMTP)
			tls_conn_close(c->tls);
		tls_conn_destroy(c->tls);
	}
	if (c->fd >= 0)
		close(c->fd);
	drop_txn(c);

	/* Before a PROXY header, the one "proxy" line says it all. */
	if (c->phase != PH_PROXY) {
		log_begin(&l, c->health ? LOG_DEBUG : LOG_INFO, c->sid,
		    "disconnect");
		log_str(&l, "reason", reason != NULL ? reason : c->reason);
		log_uint(&l, "accepted", c->accepted);
		log_uint(&l, "rejected", c->rejected);
		log_uint(&l, "bytes_in", c->bytes_in);
		log_int(&l, "ms", (long long)((ev_now(srv->loop) - c->start) *
		    1000));
		log_end(&l);
	}

	smtp_session_destroy(c->smtp);
	if (c->ip_counted)
		ipcount_add(srv, c->ipkey, -1);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c->helo);
	free(c->proxy);
	free(c);
	server_conn_gone(srv);
}

/* ---- output and watchers ---------------------------------------------- */

/*
 * log_level = debug: the session transcript, replies and command bytes.
 * Never message bodies (STYLE.md 10): reads made in DATA are not shown.
 */
static void
debug_bytes(struct conn *c, const char *what, const char *p, size_t n)
{
	struct logline l;

	if (!log_enabled(LOG_DEBUG))
		return;
	log_begin(&l, LOG_DEBUG, c->sid, what);
	log_uint(&l, "bytes", n);
	log_strn(&l, "data", p, n > 512 ? 512 : n);
	log_end(&l);
}


/*
 * How much of a read is commands: up to the end of a BDAT line, whose
 * chunk (message data) follows in the same read.  DATA's body comes in
 * later reads, after the 354 (RFC 2920 3.1: DATA ends a group).
 */
static bool
is_bdat(const char *head, size_t hn, const char *p, size_t n)
{
	char v[4];
	size_t i;

	for (i = 0; i < 4; i++) {
		if (i < hn)
			v[i] = head[i];
		else if (i - hn < n)
			v[i] = p[i - hn];
		else
			return false;
	}
	return strncasecmp(v, "BDAT", 4) == 0;
}

static size_t
transcript_len(struct conn *c, const char *p, size_t n)
{
	const char *line = p, *lf, *end = p + n;
	size_t len = n;
	bool first = true;

	/* c->dbg_line: how the line begun in earlier reads starts. */
	while (line < end) {
		lf = memchr(line, '\n', (size_t)(end - line));
		if (is_bdat(first ? c->dbg_line : "", first ? c->dbg_len : 0,
		    line, (size_t)(end - line))) {
			len = lf != NULL ? (size_t)(lf + 1 - p) : n;
			break;
		}
		if (lf == NULL)
			break;
		line = lf + 1;
		first = false;
	}
	/* Remember the start of a line this read leaves unfinished. */
	lf = memrchr(p, '\n', n);
	if (lf != NULL)
		c->dbg_len = 0;
	line = lf != NULL ? lf + 1 : p;
	while (line < end && c->dbg_len < sizeof(c->dbg_line))
		c->dbg_line[c->dbg_len++] = *line++;
	return len;
}

/* Write what proto queued; false when the connection was closed. */
static bool
flush_output(struct conn *c)
{
	const char *p;
	size_t len;
	ssize_t n;

	while ((p = smtp_session_output(c->smtp, &len)) != NULL) {
		n = c->tr->write(c, p, len);
		if (n > 0) {
			debug_bytes(c, "send", p, (size_t)n);
			smtp_session_output_done(c->smtp, (size_t)n);
			continue;
		}
		if (n == IO_WANT_WRITE || n == IO_WANT_READ)
			break;
		conn_close(c, "write_error");
		return false;
	}
	if (c->closing && p == NULL) {
		conn_close(c, NULL);
		return false;
	}
	return true;
}

static bool tls_begin(struct conn *c);

static void
update_watchers(struct conn *c)
{
	struct ev_loop *loop = c->srv->loop;
	size_t len;
	bool want_read;

	if (smtp_session_output(c->smtp, &len) != NULL)
		ev_io_start(loop, &c->wio);
	else
		ev_io_stop(loop, &c->wio);
	want_read = !c->closing && !c->busy && c->phase == PH_SMTP &&
	    smtp_session_wants_input(c->smtp);
	if (want_read)
		ev_io_start(loop, &c->rio);
	else
		ev_io_stop(loop, &c->rio);
	/*
	 * Records mbedTLS has already read never make the fd readable
	 * again: read them now (lighttpd's mbedtls_ssl_check_pending loop).
	 */
	if (want_read && c->tls != NULL && !c->read_blocked &&
	    tls_conn_pending(c->tls))
		ev_feed_event(loop, &c->rio, EV_READ);
}

/* ---- faults (docs/harness.md) ---------------------------------------- */

static void set_timer(struct conn *c, ev_tstamp after);
static void idle_timer(struct conn *c);

/* The rule that fires here and now, logged, or NULL. */
static const struct fault_rule *
fault_here(struct conn *c, enum fault_target t, const char *arg,
    size_t arglen)
{
	const struct config *cfg = c->srv->cfg;
	const struct fault_rule *r;
	struct logline l;

	/* A proxy's health check is no client: it gets no fault. */
	if (cfg->nfaults == 0 || c->health)
		return NULL;
	r = fault_match(cfg->faults, cfg->nfaults, c->srv->fault_hits,
	    c->conn_no, t, arg, arglen);
	if (r == NULL)
		return NULL;
	c->srv->stats.faults++;
	metrics_inc(c->srv->metrics, MI_FAULTS);
	log_begin(&l, LOG_INFO, c->sid, "fault");
	log_str(&l, "at", fault_target_name(t));
	log_uint(&l, "conn", c->conn_no);
	log_str(&l, "rule", r->text);
	log_end(&l);
	return r;
}

/* Hold everything (input, events) for d seconds, then go on. */
static void
fault_delay(struct conn *c, enum fault_resume what, double d)
{
	c->resume = what;
	c->busy = true;
	set_timer(c, d);
}

/* Answer proto's pending decision with the rule's reply. */
static void
fault_reply(struct conn *c, const struct fault_rule *r)
{
	if (r->code >= 400)
		c->rejected++;
	smtp_session_reply_custom(c->smtp, r->code, r->enh, r->reply_text);
}

/* ---- events from proto ------------------------------------------------ */

static void on_flushed(void *arg, enum smtp_msg_result r);
static void on_committed(void *arg, enum smtp_msg_result r);
static void finish_message(struct conn *c, enum smtp_msg_result r);
static bool pump(struct conn *c);

static void
ev_rcpt(struct conn *c, const struct smtp_event *ev)
{
	const struct config *cfg = c->srv->cfg;
	enum smtp_rcpt_result r = SMTP_RCPT_RELAY_DENIED;
	struct logline l;
	char notify[40];
	size_t i;

	/*
	 * No open relay: only our domains, or any domain when none is
	 * configured.  <postmaster> without a domain is always ours
	 * (RFC 5321 4.5.1).
	 */
	if (cfg->ndomains == 0 || ev->path.domain_len == 0)
		r = SMTP_RCPT_OK;
	for (i = 0; i < cfg->ndomains && r != SMTP_RCPT_OK; i++)
		if (strlen(cfg->domains[i]) == ev->path.domain_len &&
		    strncasecmp(cfg->domains[i], ev->path.domain,
		    ev->path.domain_len) == 0)
			r = SMTP_RCPT_OK;
	if (r == SMTP_RCPT_OK && c->txn != NULL && cb_path_refused(c, ev,
	    false))
		return;
	if (r == SMTP_RCPT_OK && c->txn != NULL &&
	    delivery_txn_add_rcpt(c->txn, ev) != 0)
		r = SMTP_RCPT_TEMPFAIL;
	if (c->txn == NULL)
		r = SMTP_RCPT_TEMPFAIL;

	log_begin(&l, LOG_INFO, c->sid, "rcpt");
	log_path(&l, "to", &ev->path);
	if (ev->notify != 0)
		log_str(&l, "notify", notify_text(ev->notify, notify,
		    sizeof(notify)));
	if (ev->orcpt != NULL)
		log_strn(&l, "orcpt", ev->orcpt, ev->orcpt_len);
	log_str(&l, "result", r == SMTP_RCPT_OK ? "ok" :
	    r == SMTP_RCPT_RELAY_DENIED ? "relay_denied" : "tempfail");
	log_end(&l);
	if (r != SMTP_RCPT_OK)
		c->rejected++;
	metrics_rcpt(c->srv->metrics, r);
	smtp_session_rcpt_result(c->smtp, r);
}

static void
ev_data(struct conn *c)
{
	struct delivery_trace tr = { 0 };
	char tlsinfo[160];

	c->data_start = ev_now(c->srv->loop);
	c->data_bytes = 0;
	c->body_active = true;
	if (c->txn == NULL)
		return;
	tr.helo = c->helo != NULL ? c->helo : "unknown";
	tr.client_ip = c->ip;
	tr.client_port = c->port;
	tr.client_v6 = c->v6;
	tr.esmtp = c->esmtp;
	tr.tls_active = c->tls != NULL;
	tr.tls = NULL;
	if (c->tls != NULL) {
		snprintf(tlsinfo, sizeof(tlsinfo), "using %s with cipher %s",
		    tls_conn_version(c->tls), tls_conn_cipher(c->tls));
		tr.tls = tlsinfo;
		tr.tls_version = tls_conn_version(c->tls);
		tr.tls_cipher = tls_conn_cipher(c->tls);
		tr.tls_sni = tls_conn_sni(c->tls)[0] != 0 ?
		    tls_conn_sni(c->tls) : NULL;
	}
	tr.sid = c->sid;
	tr.conn_no = c->conn_no;
	/* Until ev_data_end() says when the body ended. */
	tr.received = c->data_start;
	if (delivery_txn_begin_data(c->txn, &tr) != 0) {
		c->txn_failed = true;
		c->txn_error = SMTP_MSG_TEMPFAIL;
	}
}

static void
ev_body(struct conn *c, const struct smtp_event *ev)
{
	int r;

	if (c->txn == NULL || c->txn_failed)
		return;
	r = delivery_txn_write(c->txn, ev->data, ev->data_len);
	if (r < 0) {
		c->txn_failed = true;
		c->txn_error = SMTP_MSG_TEMPFAIL;
	} else if (r > 0) {
		/* Enough buffered: write it out, read no more meanwhile. */
		c->busy = true;
		delivery_txn_flush(c->txn, on_flushed, c);
	}
}

static void
commit_message(struct conn *c)
{
	if (c->txn == NULL || c->txn_failed) {
		/* Answered now; pump()'s loop picks up the reply. */
		finish_message(c, c->txn == NULL ? SMTP_MSG_TEMPFAIL :
		    c->txn_error);
		return;
	}
	if (delivery_discards(c->srv->delivery) && c->srv->cb.message ==
	    NULL) {
		/* Nothing to store: no worker, answered now. */
		finish_message(c, SMTP_MSG_OK);
		return;
	}
	c->busy = true;
	ev_timer_stop(c->srv->loop, &c->timer);
	delivery_txn_received(c->txn, ev_now(c->srv->loop));
	c->commit_start = ev_time();
	delivery_txn_commit(c->txn, on_committed, c);
}

static void
ev_data_end(struct conn *c, const struct smtp_event *ev)
{
	const struct fault_rule *r;

	c->msg_size = ev->msg_size;
	if ((r = fault_here(c, FT_EOM, NULL, 0)) == NULL) {
		commit_message(c);
		return;
	}
	switch (r->action) {
	case FA_REPLY:
		/* The client hears this; nothing is kept. */
		drop_txn(c);
		metrics_message_refused(c->srv->metrics, MR_FAULT);
		fault_reply(c, r);
		break;
	case FA_DELAY:
		fault_delay(c, FR_EOM, r->delay);
		break;
	case FA_DISCONNECT:
		c->fault_kill = true;
		break;
	default:
		commit_message(c);
		break;
	}
}

/* A command, before proto runs it: a fault may answer it instead. */
static void
ev_command(struct conn *c, const struct smtp_event *ev)
{
	const struct fault_rule *r = NULL;
	const char *arg;
	size_t alen;
	int t = fault_target_of(ev->cmd);

	if (t >= 0) {
		fault_command_arg(ev->arg, ev->arg_len, &arg, &alen);
		r = fault_here(c, (enum fault_target)t, arg, alen);
	}
	if (r == NULL) {
		smtp_session_command_result(c->smtp, SMTP_CMD_PROCEED);
		return;
	}
	switch (r->action) {
	case FA_REPLY:
		fault_reply(c, r);
		break;
	case FA_DELAY:
		fault_delay(c, FR_COMMAND, r->delay);
		break;
	case FA_DISCONNECT:
		smtp_session_command_result(c->smtp, SMTP_CMD_DISCONNECT);
		break;
	default:
		smtp_session_command_result(c->smtp, SMTP_CMD_PROCEED);
		break;
	}
}

/* The delay is over: do what it held back. */
static void
fault_resume(struct conn *c)
{
	enum fault_resume what = c->resume;

	c->resume = FR_NONE;
	c->busy = false;
	idle_timer(c);
	switch (what) {
	case FR_GREETING:
		smtp_session_greet(c->smtp);
		break;
	case FR_COMMAND:
		smtp_session_command_result(c->smtp, SMTP_CMD_PROCEED);
		break;
	case FR_EOM:
		commit_message(c);
		break;
	case FR_NONE:
		break;
	}
	pump(c);
}

static void
log_reject(struct conn *c, const struct smtp_event *ev)
{
	struct logline l;

	c->rejected++;
	metrics_reject(c->srv->metrics, ev);
	log_begin(&l, LOG_INFO, c->sid, "reject");
	log_str(&l, "cmd", ev->cmd != NULL ? ev->cmd : "");
	log_int(&l, "code", ev->code);
	log_strn(&l, "reply", ev->text, ev->text_len);
	if (ev->type == SMTP_EV_DATA_ABORT) {
		log_str(&l, "reason", smtp_reason_name(ev->reason));
		log_uint(&l, "size", ev->msg_size);
	} else if (ev->arg != NULL) {
		log_strn(&l, "line", ev->arg, ev->arg_len);
	}
	log_end(&l);
}

static void
handle(struct conn *c, const struct smtp_event *ev)
{
	struct logline l;
	char id[40];

	switch (ev->type) {
	case SMTP_EV_NONE:
		break;
	case SMTP_EV_HELO:
		drop_txn(c);
		free(c->helo);
		c->helo = strndup(ev->helo, ev->helo_len);
		c->esmtp = ev->esmtp;
		log_begin(&l, c->health ? LOG_DEBUG : LOG_INFO, c->sid,
		    ev->esmtp ? "ehlo" : "helo");
		log_strn(&l, "name", ev->helo, ev->helo_len);
		log_end(&l);
		break;
	case SMTP_EV_COMMAND:
		ev_command(c, ev);
		break;
	case SMTP_EV_MAIL:
		drop_txn(c);
		if (cb_path_refused(c, ev, true))
			break;
		c->nmsg++;
		snprintf(id, sizeof(id), "%s-%u", c->sid, c->nmsg);
		c->txn = delivery_txn_create(c->srv->delivery, id, ev);
		log_begin(&l, LOG_INFO, c->sid, "mail");
		log_path(&l, "from", &ev->path);
		if (ev->size != 0)
			log_uint(&l, "size", ev->size);
		if (ev->body != SMTP_BODY_NONE)
			log_str(&l, "body", ev->body == SMTP_BODY_7BIT ?
			    "7bit" : "8bitmime");
		if (ev->smtputf8)
			log_str(&l, "smtputf8", "yes");
		if (ev->requiretls)
			log_str(&l, "requiretls", "yes");
		if (ev->ret != SMTP_RET_NONE)
			log_str(&l, "ret", ev->ret == SMTP_RET_FULL ? "full" :
			    "hdrs");
		if (ev->envid != NULL)
			log_strn(&l, "envid", ev->envid, ev->envid_len);
		log_end(&l);
		smtp_session_mail_result(c->smtp, c->txn != NULL ?
		    SMTP_MAIL_OK : SMTP_MAIL_TEMPFAIL);
		break;
	case SMTP_EV_RCPT:
		ev_rcpt(c, ev);
		break;
	case SMTP_EV_DATA:
		ev_data(c);
		break;
	case SMTP_EV_BODY:
		ev_body(c, ev);
		break;
	case SMTP_EV_DATA_END:
		ev_data_end(c, ev);
		break;
	case SMTP_EV_DATA_ABORT:
		log_reject(c, ev);
		drop_txn(c);
		break;
	case SMTP_EV_RSET:
		drop_txn(c);
		break;
	case SMTP_EV_STARTTLS:
		if (ev->discarded > 0) {
			/* RFC 3207 6 / CVE-2011-0411: never run inside TLS. */
			log_begin(&l, LOG_WARN, c->sid, "starttls_discarded");
			log_uint(&l, "bytes", ev->discarded);
			log_end(&l);
		}
		c->phase = PH_TLS_START;
		break;
	case SMTP_EV_REJECT:
		log_reject(c, ev);
		break;
	case SMTP_EV_CLOSE:
		c->closing = true;
		c->reason = smtp_reason_name(ev->reason);
		if (ev->reason == SMTP_REASON_HTTP)
			c->srv->stats.http_requests++;
		else if (ev->reason == SMTP_REASON_FLOOD)
			c->srv->stats.floods++;
		metrics_close(c->srv->metrics, ev->reason);
		/* The last reply gets a bounded time to leave. */
		ev_timer_stop(c->srv->loop, &c->timer);
		ev_timer_set(&c->timer, CONN_LINGER, 0.);
		ev_timer_start(c->srv->loop, &c->timer);
		break;
	}
}

/*
 * SIGTERM came during a message: once it is over, the 421, before any
 * command pipelined after it is run.
 */
static void
drain_check(struct conn *c)
{
	if (c->drain && !c->busy && !c->closing && c->phase == PH_SMTP &&
	    !smtp_session_in_data(c->smtp)) {
		c->drain = false;
		smtp_session_hangup(c->smtp, SMTP_HANGUP_SHUTDOWN);
	}
}

/*
 * Drain proto's events, write its replies, set the watchers.  Returns
 * false when the connection is gone.
 */
static bool
pump(struct conn *c)
{
	struct smtp_event ev;
	size_t len;
	bool had_output;

	for (;;) {
		drain_check(c);
		while (!c->busy &&
		    smtp_session_next(c->smtp, &ev) != SMTP_EV_NONE) {
			handle(c, &ev);
			if (c->fault_kill) {
				conn_close(c, "fault");
				return false;
			}
			drain_check(c);
		}
		if (smtp_session_oom(c->smtp)) {
			conn_close(c, "out_of_memory");
			return false;
		}
		had_output = smtp_session_output(c->smtp, &len) != NULL;
		if (!flush_output(c))
			return false;
		/*
		 * proto stops at its output high-water mark with pipelined
		 * commands still buffered (RFC 2920 3.1); once the replies
		 * have all left, let it go on.
		 */
		if (!had_output || c->busy || c->closing ||
		    smtp_session_output(c->smtp, &len) != NULL)
			break;
	}

	if (c->phase == PH_TLS_START &&
	    smtp_session_output(c->smtp, &(size_t){ 0 }) == NULL)
		return tls_begin(c);
	update_watchers(c);
	return true;
}

static void
on_flushed(void *arg, enum smtp_msg_result r)
{
	struct conn *c = arg;

	c->busy = false;
	if (r != SMTP_MSG_OK) {
		c->txn_failed = true;
		c->txn_error = r;
	}
	pump(c);
}

/*
 * libmxd: the message, whole, to the caller's callback.  True when it
 * refused it: then answered, and the transaction is over.
 */
static bool
message_refused(struct conn *c)
{
	const struct mxd_callbacks *cb = &c->srv->cb;
	unsigned i, n = delivery_txn_rcpt_count(c->txn);
	const char **rcpts = calloc(n ? n : 1, sizeof(*rcpts));
	struct mxd_message m;
	struct mxd_session s;
	struct mxd_reply r;
	enum mxd_answer a;
	size_t len;

	memset(&r, 0, sizeof(r));
	if (rcpts == NULL) {
		a = MXD_TEMPFAIL;	/* out of memory: try again later */
		s.user = c->user;
	} else {
		for (i = 0; i < n; i++)
			rcpts[i] = delivery_txn_rcpt(c->txn, i);
		memset(&m, 0, sizeof(m));
		m.id = delivery_txn_id(c->txn);
		m.mail_from = delivery_txn_sender(c->txn);
		m.rcpt_to = rcpts;
		m.nrcpt = n;
		m.data = (const unsigned char *)delivery_txn_body(c->txn,
		    &len);
		m.size = len;
		session_view(c, &s);
		a = cb->message(cb->arg, &s, &m, &r);
		free(rcpts);
	}
	if (!cb_refused(c, &s, a, &r, &def_message))
		return false;
	c->busy = false;
	smtp_session_reply_custom(c->smtp, r.code, r.enh, r.text);
	drop_txn(c);
	if (!c->closing)
		ev_timer_again(c->srv->loop, &c->timer);
	return true;
}

/* The message's outcome: log it, answer proto, end the transaction. */
static void
finish_message(struct conn *c, enum smtp_msg_result r)
{
	struct logline l;
	const char *id = c->txn != NULL ? delivery_txn_id(c->txn) : "-";
	unsigned nrcpt = c->txn != NULL ? delivery_txn_rcpt_count(c->txn) : 0;
	long long ms = (long long)((ev_now(c->srv->loop) - c->data_start) *
	    1000);
	bool dropped = delivery_discards(c->srv->delivery);
	char text[64];

	c->busy = false;
	metrics_message(c->srv->metrics, r, c->msg_size);
	if (r == SMTP_MSG_OK) {
		c->accepted++;
		log_begin(&l, LOG_INFO, c->sid, "accepted");
		log_str(&l, "id", id);
		log_uint(&l, "size", c->msg_size);
		log_uint(&l, "rcpts", nrcpt);
		log_int(&l, "ms", ms);
		if (dropped)
			log_str(&l, "stored", "no");
		log_end(&l);
	} else {
		c->rejected++;
		log_begin(&l, LOG_WARN, c->sid, "store_failed");
		log_str(&l, "id", id);
		log_str(&l, "result", r == SMTP_MSG_NOSPACE ? "no_space" :
		    r == SMTP_MSG_UNAVAILABLE ? "unavailable" :
		    r == SMTP_MSG_REJECTED ? "rejected" : "tempfail");
		if (c->txn != NULL && *delivery_txn_detail(c->txn))
			log_str(&l, "detail", delivery_txn_detail(c->txn));
		log_end(&l);
	}
	/* delivery = discard: "250 2.0.0 Ok: queued as ID (discarded)". */
	if (dropped && r == SMTP_MSG_OK) {
		snprintf(text, sizeof(text), "%s (discarded)", id);
		id = text;
	}
	if (r == SMTP_MSG_REJECTED && c->txn != NULL) {
		const char *enh;
		int code = delivery_txn_rejection(c->txn, &enh);

		smtp_session_message_rejected(c->smtp, code, enh);
	} else {
		smtp_session_message_result(c->smtp, r, id);
	}
	drop_txn(c);
	if (!c->closing)
		ev_timer_again(c->srv->loop, &c->timer);
}

static void
on_committed(void *arg, enum smtp_msg_result r)
{
	struct conn *c = arg;

	metrics_latency(c->srv->metrics, ev_time() - c->commit_start);
	if (r == SMTP_MSG_OK && c->srv->cb.message != NULL &&
	    message_refused(c)) {
		pump(c);
		return;
	}
	finish_message(c, r);
	pump(c);
}


/* ---- STARTTLS --------------------------------------------------------- */

static void
set_timer(struct conn *c, ev_tstamp after)
{
	ev_timer_stop(c->srv->loop, &c->timer);
	ev_timer_set(&c->timer, after, 0.);
	ev_timer_start(c->srv->loop, &c->timer);
}

static void
idle_timer(struct conn *c)
{
	ev_timer_stop(c->srv->loop, &c->timer);
	ev_timer_set(&c->timer, 0., c->srv->cfg->idle_timeout);
	ev_timer_again(c->srv->loop, &c->timer);
}

static void
watch(struct conn *c, bool rd, bool wr)
{
	struct ev_loop *loop = c->srv->loop;

	if (rd)
		ev_io_start(loop, &c->rio);
	else
		ev_io_stop(loop, &c->rio);
	if (wr)
		ev_io_start(loop, &c->wio);
	else
		ev_io_stop(loop, &c->wio);
}

static void
log_hello(struct logline *l, const struct tls_hello_info *h)
{
	char a[8], b[8], buf[64];
	unsigned i;
	size_t o = 0;

	if (!h->parsed)
		return;
	snprintf(buf, sizeof(buf), "%s-%s", tls_version_name(h->min_version,
	    a), tls_version_name(h->max_version, b));
	log_str(l, "offered", buf);
	log_uint(l, "ciphers", h->nciphers);
	for (i = 0; i < h->nciphers && i < 4 && o < sizeof(buf); i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s0x%04x",
		    i ? "," : "", h->ciphers[i]);
	if (h->nciphers > 0)
		log_str(l, "first", buf);
	if (h->has_groups) {
		o = 0;
		buf[0] = 0;
		for (i = 0; i < h->ngroups && i < 6 && o < sizeof(buf); i++)
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%u",
			    i ? "," : "", h->groups[i]);
		log_str(l, "groups", buf);
	}
	if (h->sni[0] != 0)
		log_str(l, "sni", h->sni);
}

static void
log_alert(struct logline *l, const char *key, int desc)
{
	char buf[40];

	if (desc == TLS_ALERT_NONE) {
		log_str(l, key, "none");
		return;
	}
	if (desc == TLS_ALERT_ENCRYPTED)
		snprintf(buf, sizeof(buf), "encrypted");
	else
		snprintf(buf, sizeof(buf), "%s(%d)", tls_alert_name(desc),
		    desc);
	log_str(l, key, buf);
}

/* One line per failed handshake: who, why, which alert, what was offered. */
static void
log_tls_failure(struct conn *c)
{
	struct tls_failure f;
	struct logline l;

	tls_conn_failure(c->tls, &f);
	metrics_tls_failed(c->srv->metrics, f.cls);
	log_begin(&l, LOG_WARN, c->sid, "tls_failed");
	log_str(&l, "client", c->ip);
	log_str(&l, "class", f.class_name);
	log_alert(&l, "alert_sent", f.alert_sent);
	if (f.alert_sent != TLS_ALERT_NONE)
		log_str(&l, "alert_by", f.alert_by_us ? "mxd" : "mbedtls");
	if (f.alert_received != TLS_ALERT_NONE)
		log_alert(&l, "alert_received", f.alert_received);
	log_str(&l, "step", f.step);
	log_hello(&l, f.hello);
	if (f.lib_error != 0)
		log_str(&l, "lib", f.lib_text);
	log_int(&l, "ms", (long long)((ev_now(c->srv->loop) - c->tls_start) *
	    1000));
	log_end(&l);
	c->reason = "tls_failed";
}

/* The alert is out: shut the write side, drain a little, then close. */
static void
linger_start(struct conn *c)
{
	log_tls_failure(c);
	shutdown(c->fd, SHUT_WR);
	c->phase = PH_LINGER;
	watch(c, true, false);
	set_timer(c, TLS_LINGER);
}

static void
linger_read(struct conn *c)
{
	char buf[4096];
	ssize_t n;

	n = recv(c->fd, buf, sizeof(buf), 0);
	if (n > 0) {
		c->lingered += (size_t)n;
		if (c->lingered < TLS_LINGER_BYTES)
			return;
	} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		return;
	}
	conn_close(c, NULL);
}

static void
alert_step(struct conn *c)
{
	if (tls_conn_send_alert(c->tls) == TLS_WANT_WRITE) {
		watch(c, false, true);
		return;
	}
	linger_start(c);
}

static void
tls_failed(struct conn *c)
{
	/* tls_fallback_window: the next connection goes without STARTTLS. */
	fallback_note(c->srv, c->ipkey);
	c->phase = PH_ALERT;
	set_timer(c, TLS_LINGER);	/* bound on writing the alert */
	alert_step(c);
}

static bool
tls_up(struct conn *c)
{
	struct logline l;
	char subject[256], verify[256];

	metrics_tls_ok(c->srv->metrics, tls_conn_version(c->tls));
	log_begin(&l, LOG_INFO, c->sid, "tls");
	log_str(&l, "version", tls_conn_version(c->tls));
	log_str(&l, "cipher", tls_conn_cipher(c->tls));
	if (tls_conn_sni(c->tls)[0] != 0)
		log_str(&l, "sni", tls_conn_sni(c->tls));
	if (tls_conn_peer_cert(c->tls, subject, sizeof(subject), verify,
	    sizeof(verify))) {
		log_str(&l, "client_cert", subject);
		log_str(&l, "verify", verify);
	}
	log_int(&l, "ms", (long long)((ev_now(c->srv->loop) - c->tls_start) *
	    1000));
	log_end(&l);
	if (c->fault_close_up) {
		/* "tls close after handshake": not even a close_notify. */
		conn_close(c, "fault");
		return false;
	}
	c->phase = PH_SMTP;
	c->tr = &tls_transport;
	/* RFC 3207 4.2: forget everything; the client starts with EHLO. */
	smtp_session_tls_started(c->smtp);
	idle_timer(c);
	if (c->drain)
		smtp_session_hangup(c->smtp, SMTP_HANGUP_SHUTDOWN);
	return pump(c);
}

static bool
hs_step(struct conn *c)
{
	switch (tls_conn_handshake(c->tls)) {
	case TLS_OK:
		return tls_up(c);
	case TLS_WANT_READ:
		watch(c, true, false);
		return true;
	case TLS_WANT_WRITE:
		watch(c, false, true);
		return true;
	}
	tls_failed(c);
	return true;
}

/* proto's 220 has left: from here the socket speaks TLS. */
static bool
tls_begin(struct conn *c)
{
	const struct fault_rule *r = fault_here(c, FT_TLS, NULL, 0);
	struct tls_server *ts = c->srv->tls;
	struct tls_fault f = { TLS_FAULT_NONE, TLS_STEP_CLIENT_HELLO, 0 };

	if (r != NULL) {
		f.step = (enum tls_fault_step)r->step;
		switch (r->action) {
		case FA_TLS_CERT:
		case FA_TLS_MAX_VERSION:
			ts = c->srv->fault_tls[r - c->srv->cfg->faults];
			break;
		case FA_TLS_ALERT:
			f.kind = TLS_FAULT_ALERT;
			f.alert = r->alert;
			break;
		case FA_TLS_CLOSE:
			if (r->after_handshake)
				c->fault_close_up = true;
			else
				f.kind = TLS_FAULT_CLOSE;
			break;
		case FA_TLS_STALL:
			f.kind = TLS_FAULT_STALL;
			break;
		case FA_TLS_GARBAGE:
			f.kind = TLS_FAULT_GARBAGE;
			break;
		default:
			break;
		}
	}
	c->tls = tls_conn_create(ts, c->fd);
	if (c->tls == NULL) {
		conn_close(c, "out_of_memory");
		return false;
	}
	if (f.kind != TLS_FAULT_NONE)
		tls_conn_set_fault(c->tls, &f);
	c->phase = PH_HANDSHAKE;
	c->tls_start = ev_now(c->srv->loop);
	if (f.kind == TLS_FAULT_STALL)
		ev_timer_stop(c->srv->loop, &c->timer);	/* for ever */
	else
		set_timer(c, c->srv->cfg->tls_handshake_timeout);
	return hs_step(c);
}

/* ---- watchers --------------------------------------------------------- */

/*
 * greeting_delay: the client talked before our 220.  A well-behaved
 * SMTP client waits for the greeting (RFC 5321 3.1); bots that blast
 * their commands do not.  Logged and counted once; proto replies (554,
 * or nothing to an HTTP request) and closes.
 */
static void
pregreet(struct conn *c, const char *p, size_t n)
{
	struct logline l;

	c->greet_pending = false;
	c->srv->stats.pregreet++;
	metrics_inc(c->srv->metrics, MI_PREGREET);
	log_begin(&l, LOG_INFO, c->sid, "pregreet");
	log_uint(&l, "bytes", n);
	log_strn(&l, "data", p, n > 64 ? 64 : n);
	log_end(&l);
	smtp_session_pregreet(c->smtp);
	pump(c);
}

/*
 * min_data_rate: a message body gets idle_timeout plus one second per
 * min_data_rate octets received, in all, so a client trickling a byte
 * now and then cannot hold a session for ever (Postfix's
 * smtpd_min_data_rate).  Past it: 421 4.4.2, as for a timeout.  True
 * when the session was told so (and may be gone).
 */
static bool
too_slow(struct conn *c)
{
	const struct config *cfg = c->srv->cfg;
	ev_tstamp used, allowed;
	struct logline l;

	/* Only a body being received (a dropped BDAT chunk is no body). */
	if (cfg->min_data_rate == 0 || c->busy || !c->body_active)
		return false;
	used = ev_now(c->srv->loop) - c->data_start;
	allowed = cfg->idle_timeout + (double)c->data_bytes /
	    cfg->min_data_rate;
	if (used <= allowed)
		return false;
	c->srv->stats.slow_data++;
	metrics_inc(c->srv->metrics, MI_SLOW_DATA);
	log_begin(&l, LOG_INFO, c->sid, "slow_data");
	log_uint(&l, "bytes", c->data_bytes);
	log_int(&l, "ms", (long long)(used * 1000));
	log_end(&l);
	drop_txn(c);
	smtp_session_hangup(c->smtp, SMTP_HANGUP_TIMEOUT);
	pump(c);
	return true;
}

/* n bytes the client sent are in proto's buffer at p: go on with them. */
static void
got_input(struct conn *c, char *p, size_t n)
{
	if (log_enabled(LOG_DEBUG) && !smtp_session_in_data(c->smtp))
		debug_bytes(c, "recv", p, transcript_len(c, p, n));
	smtp_session_input_commit(c->smtp, n);
	c->bytes_in += (uint64_t)n;
	if (c->greet_pending) {
		pregreet(c, p, n);
		return;
	}
	if (c->body_active)
		c->data_bytes += (uint64_t)n;
	if (too_slow(c))
		return;
	if (!c->closing)
		ev_timer_again(c->srv->loop, &c->timer);
	pump(c);
}

static void proxy_read(struct conn *c);
static void proxy_fail(struct conn *c, unsigned long long *count,
    const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = from_rio(w);
	size_t len;
	char *p;
	ssize_t n;

	switch (c->phase) {
	case PH_PROXY:
		proxy_read(c);
		return;
	case PH_HANDSHAKE:
		hs_step(c);
		return;
	case PH_LINGER:
		linger_read(c);
		return;
	case PH_TLS_START:
	case PH_ALERT:
		ev_io_stop(loop, w);
		return;
	case PH_SMTP:
		break;
	}
	p = smtp_session_input_space(c->smtp, &len);
	if (p == NULL) {
		pump(c);
		return;
	}
	n = c->tr->read(c, p, len);
	c->read_blocked = n <= 0;
	if (n > 0) {
		got_input(c, p, (size_t)n);
		return;
	}
	if (n == IO_WANT_READ) {
		pump(c);
		return;
	}
	if (n == IO_WANT_WRITE) {
		/* TLS must send before it can read on: on_write resumes. */
		if (pump(c))
			ev_io_start(loop, &c->wio);
		return;
	}
	/* EOF or error: a transaction in progress is dropped, unstored. */
	conn_close(c, n == IO_EOF ? (c->closing ? NULL : "eof") : "reset");
}

static void
on_write(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = from_wio(w);

	switch (c->phase) {
	case PH_HANDSHAKE:
		hs_step(c);
		return;
	case PH_ALERT:
		alert_step(c);
		return;
	case PH_LINGER:
	case PH_PROXY:
		ev_io_stop(loop, w);
		return;
	case PH_SMTP:
	case PH_TLS_START:
		break;
	}
	if (!pump(c))
		return;
	/* A TLS read that wanted to write can go on now. */
	if (c->phase == PH_SMTP && c->tls != NULL && ev_is_active(&c->rio))
		ev_feed_event(loop, &c->rio, EV_READ);
}

static void
on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn *c = from_timer(w);

	switch (c->phase) {
	case PH_PROXY:
		proxy_fail(c, &c->srv->stats.proxy_missing, "proxy_timeout",
		    "no PROXY header within proxy_timeout (%.3gs, %zu octets "
		    "read)", c->srv->cfg->proxy_timeout, c->proxy->len);
		return;
	case PH_HANDSHAKE:
		/* A stalled handshake: fail it, with an alert. */
		tls_conn_timeout(c->tls);
		tls_failed(c);
		return;
	case PH_ALERT:
		/* The client takes not even the alert: give up. */
		log_tls_failure(c);
		conn_close(c, NULL);
		return;
	case PH_LINGER:
		conn_close(c, NULL);
		return;
	case PH_TLS_START:
	case PH_SMTP:
		break;
	}
	if (c->resume != FR_NONE) {
		fault_resume(c);
		return;
	}
	if (c->greet_pending) {
		/* The client waited, as it should: greet it now. */
		c->greet_pending = false;
		smtp_session_greet(c->smtp);
		idle_timer(c);
		pump(c);
		return;
	}
	if (c->closing) {
		/* The client does not take our last reply: give up. */
		conn_close(c, c->reason != NULL ? c->reason : "timeout");
		return;
	}
	if (c->busy) {
		ev_timer_again(loop, &c->timer);
		return;
	}
	/* RFC 5321 4.5.3.2.7: idle past the limit: 421 and close. */
	drop_txn(c);
	smtp_session_hangup(c->smtp, SMTP_HANGUP_TIMEOUT);
	pump(c);
}

/* ---- the session's start -------------------------------------------- */

static void
peer_name(struct conn *c, const struct sockaddr *sa)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0, 0xff, 0xff };

	memset(c->ipkey, 0, sizeof(c->ipkey));
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		memcpy(c->ipkey, &s6->sin6_addr, 16);
		c->port = ntohs(s6->sin6_port);
		if (memcmp(c->ipkey, mapped, 12) == 0) {
			/* ::ffff:a.b.c.d is a v4 client on a v6 socket */
			inet_ntop(AF_INET, c->ipkey + 12, c->ip,
			    sizeof(c->ip));
		} else {
			inet_ntop(AF_INET6, c->ipkey, c->ip, sizeof(c->ip));
			c->v6 = true;
		}
	} else {
		const struct sockaddr_in *s4 = (const void *)sa;

		memcpy(c->ipkey, mapped, 12);
		memcpy(c->ipkey + 12, &s4->sin_addr, 4);
		c->port = ntohs(s4->sin_port);
		inet_ntop(AF_INET, &s4->sin_addr, c->ip, sizeof(c->ip));
	}
}

/* The connect line ends with the worker process that serves it. */
static void
conn_log_end(struct logline *l)
{
	log_int(l, "pid", (long long)getpid());
	log_end(l);
}

/*
 * The session proper: from the client's address (the peer's, or the one
 * a PROXY header named) to the greeting.  False when the connection is
 * gone.
 */
static bool
conn_start(struct conn *c)
{
	struct server *srv = c->srv;
	struct listener *lst = c->lst;
	const struct config *cfg = srv->cfg;
	const struct smtp_config *smtp = &lst->smtp;
	struct logline l;
	unsigned n = 0;
	bool fallback = false;
	char peer[INET6_ADDRSTRLEN + 8];

	/*
	 * tls_fallback_window: this address failed a handshake lately, so
	 * it is not offered STARTTLS now and can deliver in plaintext.
	 * Never where TLS is required.
	 */
	if (lst->tls && !lst->require_tls && fallback_active(srv, c->ipkey)) {
		smtp = &lst->smtp_notls;
		fallback = true;
		metrics_inc(srv->metrics, MI_FALLBACK_USED);
	}
	if ((c->smtp = smtp_session_create(smtp)) == NULL) {
		log_msg(LOG_ERROR, "accept_failed", "out of memory");
		conn_close(c, "out_of_memory");
		return false;
	}
	c->phase = PH_SMTP;
	ev_timer_stop(srv->loop, &c->timer);
	c->timer.repeat = cfg->idle_timeout;
	ev_timer_again(srv->loop, &c->timer);

	snprintf(peer, sizeof(peer), c->v6 ? "[%s]:%u" : "%s:%u", c->ip,
	    c->port);
	log_begin(&l, c->health ? LOG_DEBUG : LOG_INFO, c->sid, "connect");
	log_str(&l, "client", peer);
	log_str(&l, "listener", lst->bound);
	if (c->proxy_hdr[0] != 0) {
		log_str(&l, "proxy", c->proxy_peer);
		log_str(&l, "proxy_header", c->proxy_hdr);
	}
	/*
	 * A health check (v2 LOCAL) is the proxy's own connection: no
	 * client, so no per-address count, rate or session number.
	 */
	if (c->health) {
		srv->stats.proxy_health++;
		metrics_inc(srv->metrics, MI_PROXY_HEALTH);
	} else {
		n = ipcount_add(srv, c->ipkey, 1);
		/* 0: the shared table is full and this one went uncounted;
		 * its close must not take another connection's count. */
		c->ip_counted = n > 0;
		srv->stats.connections++;
		metrics_inc(srv->metrics, MI_CONNECTIONS);
		/* Numbered across all workers, for "conn N" rules and
		 * capture. */
		c->conn_no = shared_next_conn(srv->sh);
	}
	if (cfg->max_connections_per_ip != 0 &&
	    n > cfg->max_connections_per_ip) {
		log_str(&l, "refused", "too_many_connections_ip");
		conn_log_end(&l);
		smtp_session_hangup(c->smtp, SMTP_HANGUP_TOO_MANY_CONN_IP);
	} else if (!c->health && !rate_allow(srv, c->ipkey)) {
		srv->stats.rate_limited++;
		metrics_inc(srv->metrics, MI_RATE_LIMITED);
		log_str(&l, "refused", "connection_rate");
		conn_log_end(&l);
		smtp_session_hangup(c->smtp, SMTP_HANGUP_TOO_FAST);
	} else {
		const struct fault_rule *r;

		if (fallback)
			log_str(&l, "tls_fallback", "starttls_not_offered");
		conn_log_end(&l);
		/* libmxd's callbacks see client sessions, not checks. */
		c->reported = !c->health;
		if (c->reported && srv->cb.session_start != NULL) {
			struct mxd_session s;
			struct mxd_reply rep;
			enum mxd_answer a;

			session_view(c, &s);
			memset(&rep, 0, sizeof(rep));
			a = srv->cb.session_start(srv->cb.arg, &s, &rep);
			if (cb_refused(c, &s, a, &rep, &def_start)) {
				smtp_session_greet_custom(c->smtp, rep.code,
				    rep.enh, rep.text);
				return pump(c);
			}
		}
		r = c->health ? NULL : fault_hides_starttls(cfg->faults,
		    cfg->nfaults, c->conn_no);
		if (r != NULL) {
			log_begin(&l, LOG_INFO, c->sid, "fault");
			log_str(&l, "at", "starttls");
			log_uint(&l, "conn", c->conn_no);
			log_str(&l, "rule", r->text);
			log_end(&l);
			srv->stats.faults++;
			metrics_inc(srv->metrics, MI_FAULTS);
			smtp_session_hide_starttls(c->smtp);
		}
		r = fault_here(c, FT_GREETING, NULL, 0);
		if (r != NULL && r->action == FA_DISCONNECT) {
			conn_close(c, "fault");
			return false;
		}
		if (r != NULL && r->action == FA_DELAY) {
			fault_delay(c, FR_GREETING, r->delay);
			return true;
		}
		if (r != NULL && r->action == FA_REPLY) {
			smtp_session_greet_custom(c->smtp, r->code, r->enh,
			    r->reply_text);
		} else if (cfg->greeting_delay > 0) {
			/* The 220 waits; on_read watches for early talk. */
			c->greet_pending = true;
			set_timer(c, cfg->greeting_delay);
			ev_io_start(srv->loop, &c->rio);
			return true;
		} else {
			smtp_session_greet(c->smtp);
		}
	}
	return pump(c);
}

/* ---- the PROXY header (proxy_protocol; proto/smtp_proxy.h) ------------ */

/*
 * No header, a bad one, or an untrusted peer: one "proxy" line, a
 * counter, and close, with no SMTP reply to bytes that were never the
 * client's (and no disconnect line: conn_close() knows the phase).
 */
static void
proxy_fail(struct conn *c, unsigned long long *count, const char *reason,
    const char *fmt, ...)
{
	struct logline l;
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	(*count)++;
	metrics_proxy_error_named(c->srv->metrics, reason);
	log_begin(&l, LOG_WARN, c->sid, "proxy");
	log_str(&l, "msg", msg);
	log_str(&l, "peer", c->ip);
	log_str(&l, "listener", c->lst->bound);
	log_end(&l);
	conn_close(c, reason);
}

/* The header named the client: from now on it is the session's peer. */
static void
proxy_client(struct conn *c, const struct smtp_proxy_header *h)
{
	struct sockaddr_in s4;
	struct sockaddr_in6 s6;

	c->v6 = false;
	if (h->kind == SMTP_PROXY_TCP4) {
		memset(&s4, 0, sizeof(s4));
		s4.sin_family = AF_INET;
		memcpy(&s4.sin_addr, h->src, 4);
		s4.sin_port = htons(h->src_port);
		peer_name(c, (const struct sockaddr *)&s4);
	} else {
		memset(&s6, 0, sizeof(s6));
		s6.sin6_family = AF_INET6;
		memcpy(&s6.sin6_addr, h->src, 16);
		s6.sin6_port = htons(h->src_port);
		peer_name(c, (const struct sockaddr *)&s6);
	}
}

static void
proxy_done(struct conn *c)
{
	const struct smtp_proxy_header *h = &c->proxy->hdr;
	unsigned char rest[SMTP_PROXY_MAX];
	const unsigned char *r;
	unsigned char key[16];
	unsigned port;
	size_t rlen, room;
	char *p;

	snprintf(c->proxy_peer, sizeof(c->proxy_peer), c->v6 ? "[%s]:%u" :
	    "%s:%u", c->ip, c->port);
	snprintf(c->proxy_hdr, sizeof(c->proxy_hdr), "v%d-%s", h->version,
	    smtp_proxy_kind_name(h->kind));
	/* UNKNOWN and LOCAL name no client: the peer stays the proxy. */
	c->health = h->kind == SMTP_PROXY_LOCAL;
	if (h->kind == SMTP_PROXY_TCP4 || h->kind == SMTP_PROXY_TCP6) {
		memcpy(key, c->ipkey, sizeof(key));
		port = c->port;
		proxy_client(c, h);
		/*
		 * v1 has no LOCAL: HAProxy's checks (send-proxy) name the
		 * check's own source.  A header naming the very address and
		 * port the connection comes from relays nobody, whatever it
		 * says: the proxy's own connection, as v2 LOCAL.
		 */
		if (h->version == 1 && port == c->port &&
		    memcmp(key, c->ipkey, sizeof(key)) == 0)
			c->health = true;
	}
	c->bytes_in += h->len;
	r = smtp_proxy_rest(c->proxy, &rlen);
	if (rlen > 0)
		memcpy(rest, r, rlen);
	free(c->proxy);
	c->proxy = NULL;
	ev_io_stop(c->srv->loop, &c->rio);
	if (!conn_start(c) || rlen == 0)
		return;
	/*
	 * What followed the header in the same reads is the client's:
	 * hand it on as if read now, so the greeting's rules (pregreet)
	 * see it exactly as from a direct client.  Nothing is lost: proto
	 * has room for SMTP_IN_CAP octets, far more than a header read;
	 * proto takes nothing while closing, and neither would it from
	 * the socket.
	 */
	p = smtp_session_input_space(c->smtp, &room);
	if (p == NULL)
		return;
	if (rlen > room)
		rlen = room;
	memcpy(p, rest, rlen);
	got_input(c, p, rlen);
}

static void
proxy_read(struct conn *c)
{
	unsigned char buf[SMTP_PROXY_MAX];
	ssize_t n;

	n = recv(c->fd, buf, smtp_proxy_room(c->proxy), 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n <= 0) {
		proxy_fail(c, &c->srv->stats.proxy_missing, n == 0 ? "eof" :
		    "reset", "no PROXY header: the peer closed after %zu "
		    "octets", c->proxy->len);
		return;
	}
	smtp_proxy_feed(c->proxy, buf, (size_t)n);
	switch (c->proxy->status) {
	case SMTP_PROXY_NEED_MORE:
		return;
	case SMTP_PROXY_ERROR:
		proxy_fail(c, &c->srv->stats.proxy_bad, "proxy_header",
		    "%s", c->proxy->hdr.error);
		return;
	case SMTP_PROXY_DONE:
		proxy_done(c);
		return;
	}
}

/* Only a trusted peer may speak first; it has proxy_timeout to do so. */
static void
proxy_begin(struct conn *c)
{
	const struct config *cfg = c->srv->cfg;

	c->phase = PH_PROXY;
	if (!proxy_cidr_match(cfg->proxy_trusted, cfg->nproxy_trusted,
	    c->ipkey)) {
		proxy_fail(c, &c->srv->stats.proxy_untrusted, "proxy_untrusted",
		    "untrusted peer %s (not in proxy_trusted)", c->ip);
		return;
	}
	c->proxy = malloc(sizeof(*c->proxy));
	if (c->proxy == NULL) {
		log_msg(LOG_ERROR, "accept_failed", "out of memory");
		conn_close(c, "out_of_memory");
		return;
	}
	smtp_proxy_init(c->proxy, c->lst->proxy);
	set_timer(c, cfg->proxy_timeout);
	ev_io_start(c->srv->loop, &c->rio);
	/* A proxy sends the header with its first segment: often it is
	 * here already, and reading now saves a trip round the loop. */
	proxy_read(c);
}

/* ---- accept ----------------------------------------------------------- */

/*
 * True when the connection is ours: it counts against max_connections
 * until conn_close() (server_conn_gone), even if that already ran.
 * False when it could not be set up (fd closed, nothing counted).
 */
bool
conn_accept(struct listener *lst, int fd, const struct sockaddr *sa,
    socklen_t salen)
{
	struct server *srv = lst->srv;
	struct conn *c;
	int one = 1;

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		log_msg(LOG_ERROR, "accept_failed", "out of memory");
		close(fd);
		return false;
	}
	peer_name(c, sa);
	c->srv = srv;
	c->lst = lst;
	c->fd = fd;
	c->tr = &plain_transport;
	c->phase = PH_SMTP;
	c->start = ev_now(srv->loop);
	snprintf(c->sid, sizeof(c->sid), "%012llx",
	    (unsigned long long)(shared_next_sid(srv->sh) &
	    0xffffffffffffULL));
	/* Replies go out as one batch per read; Nagle would only delay. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	c->next = srv->conns;
	if (c->next != NULL)
		c->next->prev = c;
	srv->conns = c;
	srv->nconns++;
	metrics_set(srv->metrics, MI_SESSIONS_ACTIVE, srv->nconns);

	ev_io_init(&c->rio, on_read, fd, EV_READ);
	ev_io_init(&c->wio, on_write, fd, EV_WRITE);
	ev_init(&c->timer, on_timer);
	/*
	 * Behind a proxy the client's address comes in the header: the
	 * per-address limits, logs and Received wait for it.
	 */
	if (lst->proxy != SMTP_PROXY_OFF)
		proxy_begin(c);
	else
		conn_start(c);
	(void)salen;
	return true;
}

void
conn_shutdown(struct conn *c)
{
	if (c->closing)
		return;
	if (c->phase == PH_PROXY) {
		/* No session yet, so no 421 either: a proxy retries. */
		conn_close(c, "shutdown");
		return;
	}
	/* Mid-handshake there is no SMTP to speak: 421 once TLS is up. */
	if (c->busy || c->phase != PH_SMTP || smtp_session_in_data(c->smtp)) {
		c->drain = true;	/* 421 once this message is done */
		return;
	}
	drop_txn(c);
	smtp_session_hangup(c->smtp, SMTP_HANGUP_SHUTDOWN);
	pump(c);
}

void
conn_abort(struct conn *c)
{
	if (!c->closing && c->phase == PH_SMTP) {
		drop_txn(c);
		smtp_session_hangup(c->smtp, SMTP_HANGUP_SHUTDOWN);
		if (!pump(c))
			return;
	}
	conn_close(c, "shutdown");
}
