/*
 * delivery.c - transactions, the body buffer, the trace header, and the
 * jobs that carry the backend's blocking steps to the worker pool.
 *
 * The body is copied once, from proto's input buffer into the txn buffer
 * (converting CRLF to LF when the backend stores LF), and written from
 * there.  At most DELIVERY_FLUSH_AT octets (plus one slice) are held per
 * transaction: the connection stops reading while a flush runs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "delivery_int.h"

struct delivery *
delivery_create(const struct config *cfg, struct worker_pool *pool,
    char *err, size_t errlen)
{
	struct delivery *d;

	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->cfg = cfg;
	d->pool = pool;
	d->be = &delivery_maildir;
	if (maildir_setup(d, err, errlen) != 0) {
		free(d);
		return NULL;
	}
	return d;
}

void
delivery_destroy(struct delivery *d)
{
	if (d == NULL)
		return;
	if (d->be->destroy != NULL)
		d->be->destroy(d);
	free(d);
}

const char *
delivery_describe(const struct delivery *d)
{
	return d->describe;
}

struct delivery_txn *
delivery_txn_create(struct delivery *d, const char *id,
    const struct smtp_path *sender)
{
	struct delivery_txn *t;

	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->d = d;
	t->fd = -1;
	snprintf(t->id, sizeof(t->id), "%s", id);
	t->sender = strndup(sender->addr, sender->addr_len);
	if (t->sender == NULL) {
		free(t);
		return NULL;
	}
	return t;
}

static void
txn_free(struct delivery_txn *t)
{
	unsigned i;

	for (i = 0; i < t->nrcpt; i++)
		free(t->rcpts[i].addr);
	free(t->rcpts);
	free(t->sender);
	free(t->buf);
	free(t->tmp_path);
	free(t->name);
	for (i = 0; i < t->ntargets; i++)
		free(t->targets[i]);
	free(t->targets);
	free(t);
}

int
delivery_txn_add_rcpt(struct delivery_txn *t, const struct smtp_path *rcpt)
{
	struct delivery_rcpt *r;

	r = realloc(t->rcpts, (t->nrcpt + 1) * sizeof(*r));
	if (r == NULL)
		return -1;
	t->rcpts = r;
	r = &t->rcpts[t->nrcpt];
	r->addr = strndup(rcpt->addr, rcpt->addr_len);
	if (r->addr == NULL)
		return -1;
	r->local_len = rcpt->local_len;
	t->nrcpt++;
	return 0;
}

unsigned
delivery_txn_rcpt_count(const struct delivery_txn *t)
{
	return t->nrcpt;
}

const char *
delivery_txn_id(const struct delivery_txn *t)
{
	return t->id;
}

uint64_t
delivery_txn_size(const struct delivery_txn *t)
{
	return t->size + t->len;
}

static int
reserve(struct delivery_txn *t, size_t n)
{
	size_t cap;
	char *nb;

	if (t->len + n <= t->cap)
		return 0;
	cap = t->cap ? t->cap : 4096;
	while (cap < t->len + n)
		cap *= 2;
	nb = realloc(t->buf, cap);
	if (nb == NULL)
		return -1;
	t->buf = nb;
	t->cap = cap;
	return 0;
}

static int
put(struct delivery_txn *t, const char *p, size_t n)
{
	if (reserve(t, n) != 0)
		return -1;
	memcpy(t->buf + t->len, p, n);
	t->len += n;
	return 0;
}

/*
 * Return-Path (RFC 5321 4.4, RFC 5322 3.6.7) and Received, in the form
 * of RFC 5321 4.4's Stamp:
 *
 *   Received: from HELO ([IP])
 *           by HOSTNAME (mxd) with ESMTP id ID
 *           for <RCPT>; DATE
 *
 * No DNS: the TCP-info is the address literal alone.  "for" is given
 * only with one recipient (RFC 5321 7.2: do not disclose the others).
 * The HELO name and paths were checked by proto's grammar, which admits
 * neither CR nor LF, so none of it can start a header of its own.
 */
int
delivery_txn_begin_data(struct delivery_txn *t,
    const struct delivery_trace *tr)
{
	const char *nl = t->d->be->lf_only ? "\n" : "\r\n";
	char date[64], line[1400];
	struct tm tm;
	time_t now = time(NULL);
	int n;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	n = snprintf(line, sizeof(line),
	    "Return-Path: <%s>%s"
	    "Received: from %s ([%s%s])%s"
	    "\tby %s (mxd) with %s id %s%s",
	    t->sender, nl,
	    tr->helo, tr->client_v6 ? "IPv6:" : "", tr->client_ip, nl,
	    t->d->cfg->hostname, tr->protocol, t->id, nl);
	if (n < 0 || (size_t)n >= sizeof(line) || put(t, line, (size_t)n))
		return -1;
	if (tr->tls != NULL) {
		n = snprintf(line, sizeof(line), "\t(%s)%s", tr->tls, nl);
		if (n < 0 || (size_t)n >= sizeof(line) ||
		    put(t, line, (size_t)n))
			return -1;
	}
	if (t->nrcpt == 1)
		n = snprintf(line, sizeof(line), "\tfor <%s>; %s%s",
		    t->rcpts[0].addr, date, nl);
	else
		n = snprintf(line, sizeof(line), "\t; %s%s", date, nl);
	if (n < 0 || (size_t)n >= sizeof(line) || put(t, line, (size_t)n))
		return -1;
	return 0;
}

int
delivery_txn_write(struct delivery_txn *t, const char *p, size_t n)
{
	const char *end = p + n, *cr;
	char *o;

	if (reserve(t, n + 1) != 0)
		return -1;
	if (!t->d->be->lf_only) {
		memcpy(t->buf + t->len, p, n);
		t->len += n;
	} else {
		/* CRLF -> LF; a lone CR stays (bare_newline = normalize has
		 * made it a CRLF already, reject never gets here). */
		o = t->buf + t->len;
		if (t->cr_pending) {
			t->cr_pending = false;
			if (p == end || *p != '\n')
				*o++ = '\r';
		}
		while (p < end) {
			cr = memchr(p, '\r', (size_t)(end - p));
			if (cr == NULL) {
				memcpy(o, p, (size_t)(end - p));
				o += end - p;
				break;
			}
			memcpy(o, p, (size_t)(cr - p));
			o += cr - p;
			p = cr + 1;
			if (p == end) {
				t->cr_pending = true;
				break;
			}
			if (*p != '\n')
				*o++ = '\r';
		}
		t->len = (size_t)(o - t->buf);
	}
	return t->len >= DELIVERY_FLUSH_AT ? 1 : 0;
}

/* ---- jobs ------------------------------------------------------------- */

static void
job_run(struct job *j)
{
	struct delivery_txn *t = (struct delivery_txn *)j;
	const struct delivery_backend *be = t->d->be;

	t->err = 0;
	switch (t->kind) {
	case JOB_FLUSH:
	case JOB_COMMIT:
		if (t->len > 0 || t->kind == JOB_COMMIT)
			t->err = be->write(t, t->buf, t->len);
		if (t->err == 0) {
			t->size += t->len;
			t->len = 0;
		}
		if (t->err == 0 && t->kind == JOB_COMMIT)
			t->err = be->commit(t);
		if (t->err != 0)
			be->discard(t);
		break;
	case JOB_DISCARD:
		be->discard(t);
		break;
	}
}

static enum smtp_msg_result
result_of(int err)
{
	if (err == 0)
		return SMTP_MSG_OK;
	/* RFC 3463 4.3.1: mail system full. */
	if (err == ENOSPC || err == EDQUOT)
		return SMTP_MSG_NOSPACE;
	return SMTP_MSG_TEMPFAIL;
}

static void
job_done(struct job *j)
{
	struct delivery_txn *t = (struct delivery_txn *)j;

	t->busy = false;
	if (t->orphan) {
		if (t->kind == JOB_FLUSH &&
		    (t->fd >= 0 || t->tmp_path != NULL)) {
			/* Aborted during a flush: remove the partial file. */
			t->kind = JOB_DISCARD;
			t->busy = true;
			worker_submit(t->d->pool, &t->job);
			return;
		}
		txn_free(t);
		return;
	}
	if (t->cb != NULL)
		t->cb(t->cb_arg, result_of(t->err));
}

static void
submit(struct delivery_txn *t, enum job_kind kind, delivery_done_cb *cb,
    void *arg)
{
	if (t->busy)
		abort();
	t->kind = kind;
	t->cb = cb;
	t->cb_arg = arg;
	t->busy = true;
	t->job.run = job_run;
	t->job.done = job_done;
	worker_submit(t->d->pool, &t->job);
}

void
delivery_txn_flush(struct delivery_txn *t, delivery_done_cb *cb, void *arg)
{
	submit(t, JOB_FLUSH, cb, arg);
}

void
delivery_txn_commit(struct delivery_txn *t, delivery_done_cb *cb, void *arg)
{
	submit(t, JOB_COMMIT, cb, arg);
}

void
delivery_txn_abort(struct delivery_txn *t)
{
	if (t == NULL)
		return;
	if (t->busy) {
		t->orphan = true;
		t->cb = NULL;
		return;
	}
	if (t->fd >= 0 || t->tmp_path != NULL) {
		/* A partial file exists: unlinking blocks, so a worker. */
		t->orphan = true;
		submit(t, JOB_DISCARD, NULL, NULL);
		return;
	}
	txn_free(t);
}
