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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "delivery_int.h"
#include "log.h"

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
	switch (cfg->delivery) {
	case CONFIG_DELIVERY_CAPTURE:
		d->be = &delivery_capture;
		if (capture_setup(d, err, errlen) != 0)
			goto fail;
		break;
	case CONFIG_DELIVERY_MAILDIR:
		d->be = &delivery_maildir;
		if (maildir_setup(d, err, errlen) != 0)
			goto fail;
		break;
	case CONFIG_DELIVERY_LMTP:
		d->be = &delivery_lmtp;
		if (lmtp_setup(d, err, errlen) != 0)
			goto fail;
		break;
	case CONFIG_DELIVERY_DISCARD:
		d->be = &delivery_discard;
		snprintf(d->describe, sizeof(d->describe),
		    "discard (not stored)");
		break;
	case CONFIG_DELIVERY_CALLBACK:
		d->be = &delivery_callback;
		snprintf(d->describe, sizeof(d->describe), "callback");
		break;
	}
	return d;
fail:
	free(d);
	return NULL;
}

void
delivery_destroy(struct delivery *d)
{
	struct logline l;

	if (d == NULL)
		return;
	if (d->be->destroy != NULL)
		d->be->destroy(d);
	if (d->batches > 0) {
		/* How well group commit grouped (docs/performance.md). */
		log_begin(&l, LOG_INFO, NULL, "group_commit");
		log_uint(&l, "batches", d->batches);
		log_uint(&l, "messages", d->batched);
		log_end(&l);
	}
	free(d->ready);
	free(d->batch.v);
	free(d->batch.pub);
	free(d);
}

const char *
delivery_describe(const struct delivery *d)
{
	return d->describe;
}

struct delivery_txn *
delivery_txn_create(struct delivery *d, const char *id,
    const struct smtp_event *mail)
{
	struct delivery_txn *t;

	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->d = d;
	t->fd = -1;
	snprintf(t->id, sizeof(t->id), "%s", id);
	t->smtputf8 = mail->smtputf8;
	t->requiretls = mail->requiretls;
	t->ret = mail->ret;
	t->size_param = mail->size;
	t->body = mail->body;
	t->sender = strndup(mail->path.addr, mail->path.addr_len);
	if (mail->envid != NULL)
		t->envid = strndup(mail->envid, mail->envid_len);
	if (t->sender == NULL || (mail->envid != NULL && t->envid == NULL)) {
		free(t->sender);
		free(t->envid);
		free(t);
		return NULL;
	}
	return t;
}

const char *
delivery_protocol(const struct delivery_trace *tr, bool smtputf8)
{
	if (smtputf8)
		return tr->tls_active ? "UTF8SMTPS" : "UTF8SMTP";
	if (!tr->esmtp)
		return "SMTP";
	return tr->tls_active ? "ESMTPS" : "ESMTP";
}

static void
txn_free(struct delivery_txn *t)
{
	unsigned i;

	for (i = 0; i < t->nrcpt; i++) {
		free(t->rcpts[i].addr);
		free(t->rcpts[i].orcpt);
	}
	free(t->rcpts);
	free(t->sender);
	free(t->envid);
	free(t->buf);
	free(t->tmp_path);
	free(t->name);
	for (i = 0; i < t->ntargets; i++)
		free(t->targets[i]);
	free(t->targets);
	free(t->meta);
	free(t->meta_tmp);
	free(t);
}

int
delivery_txn_add_rcpt(struct delivery_txn *t, const struct smtp_event *rcpt)
{
	struct delivery_rcpt *r;

	r = realloc(t->rcpts, (t->nrcpt + 1) * sizeof(*r));
	if (r == NULL)
		return -1;
	t->rcpts = r;
	r = &t->rcpts[t->nrcpt];
	memset(r, 0, sizeof(*r));
	r->addr = strndup(rcpt->path.addr, rcpt->path.addr_len);
	if (rcpt->orcpt != NULL)
		r->orcpt = strndup(rcpt->orcpt, rcpt->orcpt_len);
	if (r->addr == NULL || (rcpt->orcpt != NULL && r->orcpt == NULL)) {
		free(r->addr);
		free(r->orcpt);
		return -1;
	}
	r->local_len = rcpt->path.local_len;
	r->notify = rcpt->notify;
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

const char *
delivery_txn_sender(const struct delivery_txn *t)
{
	return t->sender;
}

const char *
delivery_txn_rcpt(const struct delivery_txn *t, unsigned i)
{
	return i < t->nrcpt ? t->rcpts[i].addr : NULL;
}

int
delivery_txn_rejection(const struct delivery_txn *t, const char **enh)
{
	*enh = t->reject_enh;
	return t->reject_code;
}

const char *
delivery_txn_detail(const struct delivery_txn *t)
{
	return t->detail;
}

const char *
delivery_txn_body(const struct delivery_txn *t, size_t *len)
{
	*len = t->len;
	return t->buf != NULL ? t->buf : "";
}

static void
nothing(struct delivery_txn *t)
{
	(void)t;
}

const struct delivery_backend delivery_callback = {
	.name = "callback",
	.discard = nothing,
};

/*
 * delivery = discard: the body is counted and dropped as it comes, and
 * the commit needs no worker (delivery_discards()).  For benchmarks and
 * harnesses: nothing is kept, and the 250 says so.
 */
const struct delivery_backend delivery_discard = {
	.name = "discard",
	.drop_body = true,
	.discard = nothing,
};

bool
delivery_discards(const struct delivery *d)
{
	return d->be->drop_body;
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

static int
putf(struct delivery_txn *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* One header line (or continuation), formatted; its line end added. */
static int
putf(struct delivery_txn *t, const char *fmt, ...)
{
	const char *nl = t->d->be->lf_only ? "\n" : "\r\n";
	char line[1400];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2)
		return -1;
	memcpy(line + n, nl, strlen(nl));
	return put(t, line, (size_t)n + strlen(nl));
}

/*
 * ORCPT's address for Original-Recipient (RFC 3798 2.3, RFC 8098 2.3):
 * "type;" and the xtext decoded, when what it decodes to is printable
 * ASCII (RFC 3461 4.2 says it must be); otherwise, and for RFC 6533's
 * utf-8 type, as given.  Never a control character: no header can be
 * forged through it.
 */
static void
orcpt_text(const char *orcpt, char *out, size_t outlen)
{
	const char *semi = strchr(orcpt, ';'), *p;
	size_t o;

	snprintf(out, outlen, "%s", orcpt);
	if (semi == NULL || strncasecmp(orcpt, "rfc822;", 7) != 0)
		return;
	o = (size_t)(semi + 1 - orcpt);
	for (p = semi + 1; *p && o + 1 < outlen; p++) {
		unsigned v = (unsigned char)*p;

		if (*p == '+' && sscanf(p + 1, "%2x", &v) == 1)
			p += 2;
		if (v < 32 || v > 126) {
			snprintf(out, outlen, "%s", orcpt);
			return;
		}
		out[o++] = (char)v;
	}
	out[o] = 0;
}

/*
 * The header block written before the body (for a backend that wants
 * it: a capture keeps the message as sent, and the trace in its own
 * file):
 *
 *   Return-Path: <SENDER>                          (RFC 5321 4.4)
 *   Original-Recipient: rfc822;ADDR                (RFC 3798 2.3)
 *   Received: from HELO ([IP])                     (RFC 5321 4.4)
 *           by HOSTNAME (mxd) with ESMTPS id ID
 *           (using TLSv1.3 with cipher ...)
 *           for <RCPT>; DATE
 *   X-Mxd-Envelope: smtputf8; requiretls; ret=HDRS; envid=ID; notify=...
 *
 * No DNS: the TCP-info is the address literal alone.  "for", the
 * Original-Recipient and notify= are given only with one recipient: the
 * file is shared by every recipient's copy (hard links), and RFC 5321
 * 7.2 asks not to disclose the others.  X-Mxd-Envelope records what the
 * envelope said that no standard header carries (RFC 8689 4.1 asks the
 * REQUIRETLS tag to be kept, RFC 3461 the DSN parameters), and is left
 * out when there is nothing to say.  The HELO name, paths and parameter
 * values were checked by proto's grammar, which admits neither CR nor
 * LF, so none of it can start a header of its own.
 */
int
delivery_txn_begin_data(struct delivery_txn *t,
    const struct delivery_trace *tr)
{
	const struct delivery_rcpt *one = t->nrcpt == 1 ? &t->rcpts[0] : NULL;
	char date[64], env[600], orcpt[520];
	struct tm tm;
	time_t now = time(NULL);
	size_t o = 0;

	t->received = tr->received;
	if (t->d->be->begin != NULL && t->d->be->begin(t, tr) != 0)
		return -1;
	if (!t->d->be->trace_headers)
		return 0;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	if (!t->d->be->no_return_path &&
	    putf(t, "Return-Path: <%s>", t->sender) != 0)
		return -1;
	if (one != NULL && one->orcpt != NULL) {
		orcpt_text(one->orcpt, orcpt, sizeof(orcpt));
		if (putf(t, "Original-Recipient: %s", orcpt) != 0)
			return -1;
	}
	if (putf(t, "Received: from %s ([%s%s])", tr->helo,
	    tr->client_v6 ? "IPv6:" : "", tr->client_ip) != 0 ||
	    putf(t, "\tby %s (mxd) with %s id %s", t->d->cfg->hostname,
	    delivery_protocol(tr, t->smtputf8), t->id) != 0 ||
	    (tr->tls != NULL && putf(t, "\t(%s)", tr->tls) != 0))
		return -1;
	if ((one != NULL ? putf(t, "\tfor <%s>; %s", one->addr, date) :
	    putf(t, "\t; %s", date)) != 0)
		return -1;

	env[0] = 0;
#define ENV(...) o += (size_t)snprintf(env + o, o < sizeof(env) ? \
    sizeof(env) - o : 0, __VA_ARGS__)
	if (t->smtputf8)
		ENV("; smtputf8");
	if (t->requiretls)
		ENV("; requiretls");
	if (t->ret != SMTP_RET_NONE)
		ENV("; ret=%s", t->ret == SMTP_RET_FULL ? "FULL" : "HDRS");
	if (t->envid != NULL)
		ENV("; envid=%s", t->envid);
	if (one != NULL && one->notify != 0)
		ENV("; notify=%s%s%s%s",
		    one->notify & SMTP_NOTIFY_NEVER ? "NEVER," : "",
		    one->notify & SMTP_NOTIFY_SUCCESS ? "SUCCESS," : "",
		    one->notify & SMTP_NOTIFY_FAILURE ? "FAILURE," : "",
		    one->notify & SMTP_NOTIFY_DELAY ? "DELAY," : "");
#undef ENV
	if (o >= sizeof(env))
		return -1;
	if (o > 0 && env[o - 1] == ',')
		env[--o] = 0;
	if (o > 0 && putf(t, "X-Mxd-Envelope: %s", env + 2) != 0)
		return -1;
	return 0;
}

void
delivery_txn_received(struct delivery_txn *t, double when)
{
	t->received = when;
}

int
delivery_txn_write(struct delivery_txn *t, const char *p, size_t n)
{
	const char *end = p + n, *cr;
	char *o;

	if (t->d->be->drop_body) {
		t->size += n;
		return 0;
	}
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
	/* Kept in memory, whole: proto's max_message_size bounds it. */
	if (t->d->be->write == NULL)
		return 0;
	return t->len >= DELIVERY_FLUSH_AT ? 1 : 0;
}

/* ---- jobs ------------------------------------------------------------- */

static void
job_run(struct job *j)
{
	struct delivery_txn *t = (struct delivery_txn *)j;
	const struct delivery_backend *be = t->d->be;

	t->err = 0;
	t->verdict = SMTP_MSG_OK;
	if (be->write == NULL)
		return;		/* in memory: the job only hops threads */
	switch (t->kind) {
	case JOB_FLUSH:
	case JOB_COMMIT:
		if (t->len > 0 || t->kind == JOB_COMMIT)
			t->err = be->write(t, t->buf, t->len);
		if (t->err == 0) {
			t->size += t->len;
			t->len = 0;
		}
		/*
		 * With group commit, the batch does the rest (batch_run),
		 * after this job's fsync unless one syncfs does it for all.
		 */
		if (t->err == 0 && t->kind == JOB_COMMIT &&
		    be->commit_batch != NULL && be->sync != NULL &&
		    !t->d->cfg->commit_syncfs)
			t->err = be->sync(t);
		if (t->err == 0 && t->kind == JOB_COMMIT &&
		    be->commit_batch == NULL && be->commit != NULL)
			t->err = be->commit(t);
		if (t->err != 0)
			be->discard(t);
		break;
	case JOB_BATCHED:
		break;		/* never submitted as a job of its own */
	case JOB_DISCARD:
		be->discard(t);
		break;
	}
}

static enum smtp_msg_result
result_of(const struct delivery_txn *t)
{
	int err = t->err;

	if (err == 0)
		return SMTP_MSG_OK;
	if (t->verdict != SMTP_MSG_OK)
		return t->verdict;
	/* RFC 3463 4.3.1: mail system full. */
	if (err == ENOSPC || err == EDQUOT)
		return SMTP_MSG_NOSPACE;
	return SMTP_MSG_TEMPFAIL;
}

/* A partial file, or a downstream session, that discard must end. */
static bool
holds_something(const struct delivery_txn *t)
{
	return t->fd >= 0 || t->tmp_path != NULL || t->be_txn != NULL;
}

static void batch_start(struct delivery *d);

/* The end of a transaction's job (or of its part in a batch). */
static void
txn_done(struct delivery_txn *t)
{
	t->busy = false;
	if (t->orphan) {
		if ((t->kind == JOB_FLUSH || (t->kind == JOB_COMMIT &&
		    t->d->be->commit_batch != NULL)) && holds_something(t)) {
			/* Aborted while its file was written: remove it. */
			t->kind = JOB_DISCARD;
			t->busy = true;
			worker_submit(t->d->pool, &t->job);
			return;
		}
		txn_free(t);
		return;
	}
	if (t->cb != NULL)
		t->cb(t->cb_arg, result_of(t));
}

static void
job_done(struct job *j)
{
	struct delivery_txn *t = (struct delivery_txn *)j;
	struct delivery *d = t->d;
	struct delivery_txn **v;
	unsigned cap;

	if (t->kind == JOB_COMMIT && d->be->commit_batch != NULL &&
	    t->err == 0 && !t->orphan) {
		/* Written: wait for the next batch, still busy. */
		if (d->nready == d->ready_cap) {
			cap = d->ready_cap ? d->ready_cap * 2 : 64;
			v = realloc(d->ready, cap * sizeof(*v));
			if (v == NULL) {
				t->err = ENOMEM;
				d->be->discard(t);	/* unlink: rare */
				txn_done(t);
				return;
			}
			d->ready = v;
			d->ready_cap = cap;
		}
		t->kind = JOB_BATCHED;
		d->ready[d->nready++] = t;
		if (!d->batch_busy)
			batch_start(d);
		return;
	}
	txn_done(t);
}

static void
batch_run(struct job *j)
{
	struct delivery_batch *b = (struct delivery_batch *)j;

	b->d->be->commit_batch(b->v, b->n, b->pub, b->npub);
}

static void
batch_done(struct job *j)
{
	struct delivery_batch *b = (struct delivery_batch *)j;
	struct delivery *d = b->d;
	struct delivery_txn **v;
	unsigned i, k, cap;

	d->batch_busy = false;
	if (b->n > 0)
		d->batches++;
	d->batched += b->n;
	/* Durable now (or failed): their answers. */
	for (i = 0; i < b->npub; i++)
		txn_done(b->pub[i]);
	b->npub = 0;
	/* Published: durable after the next step.  Failed: answered. */
	for (i = k = 0; i < b->n; i++) {
		if (b->v[i]->err != 0)
			txn_done(b->v[i]);
		else
			b->v[k++] = b->v[i];
	}
	v = b->pub;
	cap = b->pubcap;
	b->pub = b->v;
	b->pubcap = b->cap;
	b->npub = k;
	b->v = v;
	b->cap = cap;
	b->n = 0;
	/* Whatever was written while this step ran, and what it published. */
	if (d->nready > 0 || b->npub > 0)
		batch_start(d);
}

/*
 * Everything waiting becomes the batch: the two arrays trade places,
 * so no copy and, once they have grown, no allocation.
 */
static void
batch_start(struct delivery *d)
{
	struct delivery_batch *b = &d->batch;
	struct delivery_txn **v = b->v;
	unsigned cap = b->cap;

	if (b->n != 0)
		abort();
	b->v = d->ready;
	b->cap = d->ready_cap;
	b->n = d->nready;
	d->ready = v;
	d->ready_cap = cap;
	d->nready = 0;
	b->d = d;
	b->job.run = batch_run;
	b->job.done = batch_done;
	d->batch_busy = true;
	worker_submit(d->pool, &b->job);
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
	/* A CR that ended the body was held to see if an LF followed. */
	if (t->cr_pending && reserve(t, 1) == 0) {
		t->buf[t->len++] = '\r';
		t->cr_pending = false;
	}
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
	if (holds_something(t)) {
		/* A partial file (or a downstream session) exists: unlinking blocks, so a worker. */
		t->orphan = true;
		submit(t, JOB_DISCARD, NULL, NULL);
		return;
	}
	txn_free(t);
}
