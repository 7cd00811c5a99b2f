/*
 * fuzz_session.c - one SMTP session per input, driven through the public
 * API of proto/smtp.h (smtp_int.h only lends its parsers, to check what
 * the events carry).
 *
 * The input is a 6-octet header, then the client's bytes:
 *
 *   [0] bit 0     tls_available
 *       bit 1     tls_required
 *       bit 2     bare_newline normalize (else reject)
 *       bit 3     run A uses the zero-copy input (input_space/commit)
 *       bit 4     dsn
 *       bit 5     a 253-octet hostname
 *       bits 6-7  the greeting: 0 at once; 1 after a first chunk (which
 *                 proto must hold); 2 none: all input (up to what proto
 *                 holds) is fed, then smtp_session_pregreet() when there
 *                 was any; 3 refused at connect (hangup, see [5] bit 2)
 *   [1] bits 0-2 message_size, 3-5 text_line, 6-7 cmd_line (tables below)
 *   [2] bits 0-2 rcpt_max, 3-6 errors_max, bit 7 refuse some recipients
 *   [3] bits 0-2 chunk sizes of run A (table below), 3-7 seed
 *   [4] bits 0-1 how run A drains output (all, some, only when stuck,
 *       a few octets), 2-7 seed
 *   [5] bits 0-1 at the end of the input: 0, 3 nothing; 1
 *       hangup(TIMEOUT); 2 hangup(SHUTDOWN).  bit 2: refuse at connect
 *       with TOO_FAST (else TOO_MANY_CONN_IP).  bits 3-4 msgs_max
 *
 * Run A feeds the client's bytes in chunks whose sizes come from a PRNG
 * seeded by [3] and [4], and drains output the same way; run B feeds them
 * whole and drains everything.  Decisions are answered at once and only
 * from what the event says: RCPT is refused (550, or 451) when [2] bit 7
 * is set and the domain hashes so; message results cycle OK, NOSPACE,
 * TEMPFAIL, OK without an id.  STARTTLS is answered with
 * smtp_session_tls_started() at once, and feeding resumes right after the
 * STARTTLS line: the client's bytes after that line are what it sends
 * inside TLS (as tests/unit/test_proto.c splits a transcript at T:), so
 * both runs see the same bytes after the handshake whatever the split.
 *
 * Invariants (abort() when broken):
 *   - the reply stream is lines of "ddd" SP/"-" textstring CRLF, the
 *     code 2xx-5xx (RFC 5321 4.2), a multi-line reply keeps one code and
 *     ends with a final line, no line is longer than SMTP_REPLY_MAX; it
 *     starts with 220 (421 when refused at connect, 554 or nothing after
 *     a pregreet); after SMTP_EV_CLOSE no more is written, and the last
 *     line is a 221 or 421 (554 for a pregreet; an HTTP line gets none);
 *   - pending output never exceeds SMTP_OUT_CAP;
 *   - a session that is not closing takes input once its output is
 *     drained and its decisions answered (no stall); it takes none while
 *     STARTTLS is pending or after it closed;
 *   - events keep their promises: HELO names pass smtp_valid_helo; paths
 *     are well formed ("<" addr ">" parses back to the same mailbox) and
 *     hold non-ASCII only under SMTPUTF8; MAIL's SIZE is within the
 *     limit; parameters come only after EHLO, REQUIRETLS only inside TLS,
 *     DSN parameters only with dsn (ENVID as xtext, ORCPT as
 *     type;value, NOTIFY=NEVER alone); RCPT stays under rcpt_max and comes inside a transaction;
 *     MAIL comes after HELO/EHLO (again after TLS), with tls_required
 *     only inside TLS, and never more than msgs_max times after accepted
 *     messages; BODY slices are non-empty and at most SMTP_IN_CAP; at
 *     DATA_END msg_size is the sum of the BODY octets and within
 *     message_size; a DATA (not BDAT) body is CRLF-clean (no bare CR or
 *     LF: the smuggling guard), ends with CRLF, and no line exceeds
 *     text_line; REJECT carries a 4xx/5xx code and a reply text; our
 *     view of the transaction is smtp_session_in_transaction()'s;
 *   - re-chunking: runs A and B write the same reply stream and the same
 *     events (bodies included, BODY slicing excluded).
 *
 * Unknown event types (proto grows) are ignored; if one leaves the
 * session waiting for an answer this driver does not know, the run stops
 * and the runs are not compared.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "smtp.h"
#include "smtp_int.h"	/* smtp_parse_path, smtp_valid_xtext */

#define HDR_LEN		6

static const uint64_t msg_sizes[8] = {
	SMTP_DEF_MESSAGE_SIZE, 0, 1, 24, 40, 100, 1000, 1024
};
static const size_t text_lines[8] = {
	SMTP_DEF_TEXT_LINE, 0, 1, 3, 12, 80, 998, 1001
};
static const size_t cmd_lines[4] = { SMTP_DEF_CMD_LINE, 8, 64, 1000 };
static const unsigned rcpt_maxes[8] = { 100, 0, 1, 2, 3, 5, 8, 1000 };
/* Index 1 is 0: no limit. */
static const unsigned errors_maxes[16] = {
	SMTP_DEF_ERRORS_MAX, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15
};
/* Index 1 is 0: no limit. */
static const unsigned msgs_maxes[4] = { SMTP_DEF_MSGS_PER_SESSION, 0, 1, 2 };
/* Largest chunk of each class; 0 is "whole", 7 mixes the others. */
static const size_t chunk_max[8] = { 1, 3, 7, 64, 512, 4096, 0, 0 };

enum greeting { GREET_NOW, GREET_HELD, GREET_PREGREET, GREET_REFUSE };
enum end_action { END_NONE, END_TIMEOUT, END_SHUTDOWN, END_NONE2 };
enum drain_policy { DRAIN_ALL, DRAIN_SOME, DRAIN_STUCK, DRAIN_FEW };

struct fconf {
	struct smtp_config	 cfg;
	bool			 zero_copy;
	enum greeting		 greeting;
	bool			 too_fast;
	enum end_action		 end;
	bool			 deny_hash;
	unsigned		 chunk_class;
	enum drain_policy	 drain;
	uint64_t		 seed;
};

struct run {
	const struct fconf	*fc;
	struct smtp_session	*s;
	const uint8_t		*in;
	size_t			 len;
	size_t			 pos;		/* next client octet to feed */
	bool			 chunked;	/* run A */
	uint64_t		 rng;
	bool			 greeted;
	bool			 pregreeted;

	struct fuzz_buf		 replies;	/* every octet written */
	struct fuzz_buf		 events;	/* split-independent log */
	struct fuzz_buf		 body;		/* the message being read */

	unsigned		 msgs;		/* DATA_END answered */
	unsigned		 msgs_ok;	/* ... with SMTP_MSG_OK */
	unsigned		 rcpt_ok;	/* accepted since MAIL */
	bool			 in_txn;
	bool			 smtputf8;	/* the MAIL had SMTPUTF8 */
	bool			 bdat;		/* the body came by BDAT */
	bool			 esmtp;
	bool			 helo_seen;	/* since start or TLS */
	bool			 tls_on;
	bool			 rewind;
	size_t			 rewind_to;
	bool			 closed;
	size_t			 close_at;	/* output octets at CLOSE */
	enum smtp_reason	 close_reason;
	bool			 unknown;	/* an event we do not know */
	bool			 stopped;	/* stalled on such an event */
};

static char long_host[254];

static const char *
hostname(bool long_name)
{
	size_t i;

	if (!long_name)
		return "mx.test";
	if (long_host[0] == 0) {
		/* Labels of 63 octets and a last of 61: 253 octets. */
		for (i = 0; i < sizeof(long_host) - 1; i++)
			long_host[i] = (i % 64 == 63) ? '.' : 'a' + i % 26;
		long_host[sizeof(long_host) - 1] = 0;
	}
	return long_host;
}

static uint64_t
rng_next(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* 1..max, uniformly enough. */
static size_t
rng_upto(uint64_t *x, size_t max)
{
	return (size_t)(rng_next(x) % max) + 1;
}

static void
parse_header(const uint8_t *h, struct fconf *fc)
{
	memset(fc, 0, sizeof(*fc));
	smtp_config_init(&fc->cfg);
	fc->cfg.tls_available = h[0] & 1;
	fc->cfg.tls_required = (h[0] >> 1) & 1;
	fc->cfg.bare_newline = (h[0] >> 2) & 1 ? SMTP_BARE_NORMALIZE :
	    SMTP_BARE_REJECT;
	fc->zero_copy = (h[0] >> 3) & 1;
	fc->cfg.dsn = (h[0] >> 4) & 1;
	fc->cfg.hostname = hostname((h[0] >> 5) & 1);
	fc->greeting = (enum greeting)((h[0] >> 6) & 3);
	fc->cfg.limits.message_size = msg_sizes[h[1] & 7];
	fc->cfg.limits.text_line = text_lines[(h[1] >> 3) & 7];
	fc->cfg.limits.cmd_line = cmd_lines[(h[1] >> 6) & 3];
	fc->cfg.limits.rcpt_max = rcpt_maxes[h[2] & 7];
	fc->cfg.limits.errors_max = errors_maxes[(h[2] >> 3) & 15];
	fc->deny_hash = (h[2] >> 7) & 1;
	fc->chunk_class = h[3] & 7;
	fc->drain = (enum drain_policy)(h[4] & 3);
	fc->seed = (uint64_t)h[3] << 8 | h[4];
	fc->end = (enum end_action)(h[5] & 3);
	fc->too_fast = (h[5] >> 2) & 1;
	fc->cfg.limits.msgs_max = msgs_maxes[(h[5] >> 3) & 3];
	fc->cfg.hook_commands = (h[5] >> 5) & 1;
}

/* ---- output ------------------------------------------------------------ */

static size_t
pending(struct run *r)
{
	size_t len;
	const char *p = smtp_session_output(r->s, &len);

	CHECK(len <= SMTP_OUT_CAP);
	CHECK((p == NULL) == (len == 0));
	return len;
}

static void
drain(struct run *r, bool all)
{
	const char *p;
	size_t len, n;

	p = smtp_session_output(r->s, &len);
	CHECK(len <= SMTP_OUT_CAP);
	if (len == 0)
		return;
	n = len;
	if (!all && r->chunked) {
		switch (r->fc->drain) {
		case DRAIN_ALL:
			break;
		case DRAIN_SOME:
			n = (size_t)(rng_next(&r->rng) % (len + 1));
			break;
		case DRAIN_STUCK:
			n = 0;
			break;
		case DRAIN_FEW:
			n = rng_upto(&r->rng, 16);
			if (n > len)
				n = len;
			break;
		}
	}
	fuzz_buf_add(&r->replies, p, n);
	smtp_session_output_done(r->s, n);
}

/* ---- checks on events ---------------------------------------------------- */

static bool
text_ok(const char *p, size_t n)
{
	size_t i;

	/* RFC 5321 4.2: textstring = 1*(%d09 / %d32-126) */
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c != 9 && (c < 32 || c > 126))
			return false;
	}
	return true;
}

static bool
ieq(const char *a, size_t n, const char *lit)
{
	size_t i;

	if (strlen(lit) != n)
		return false;
	for (i = 0; i < n; i++) {
		char x = a[i], y = lit[i];

		if (x >= 'A' && x <= 'Z')
			x += 32;
		if (x != y)
			return false;
	}
	return true;
}

static bool
has_8bit(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return true;
	return false;
}

static void
check_path(const struct smtp_path *p, bool mail, bool smtputf8)
{
	struct smtp_path q;
	size_t used = 0;
	char *b;

	if (p->addr_len == 0) {
		/* "<>": MAIL only. */
		CHECK(mail);
		CHECK(p->local_len == 0 && p->domain_len == 0 && !p->utf8);
		return;
	}
	CHECK(p->addr != NULL && p->local != NULL);
	CHECK(p->local == p->addr);
	CHECK(p->local_len > 0 && p->local_len <= p->addr_len);
	CHECK(p->addr_len < SMTP_PATH_MAX);
	/* RFC 6531 3.4: non-ASCII only under SMTPUTF8. */
	CHECK(p->utf8 == has_8bit(p->addr, p->addr_len));
	CHECK(!p->utf8 || smtputf8);
	if (p->domain_len == 0) {
		/* "<postmaster>": RCPT only. */
		CHECK(!mail);
		CHECK(p->local_len == p->addr_len);
		CHECK(ieq(p->local, p->local_len, "postmaster"));
	} else {
		CHECK(p->local_len <= SMTP_LOCAL_MAX);
		CHECK(p->local_len + 1 + p->domain_len == p->addr_len);
		CHECK(p->addr[p->local_len] == '@');
		CHECK(p->domain == p->addr + p->local_len + 1);
		if (!has_8bit(p->domain, p->domain_len))
			CHECK(smtp_valid_domain(p->domain, p->domain_len) ||
			    smtp_valid_address_literal(p->domain,
			    p->domain_len));
	}
	/* The mailbox alone, without any source route, parses back. */
	b = malloc(p->addr_len + 2);
	CHECK(b != NULL);
	b[0] = '<';
	memcpy(b + 1, p->addr, p->addr_len);
	b[p->addr_len + 1] = '>';
	CHECK(smtp_parse_path(b, p->addr_len + 2, SMTP_PATH_UTF8 |
	    (mail ? 0 : SMTP_PATH_POSTMASTER), &q, &used) == SMTP_PATH_OK);
	CHECK(used == p->addr_len + 2);
	CHECK(q.local_len == p->local_len && q.domain_len == p->domain_len);
	free(b);
}

/* CRLF only, ends in CRLF (or empty), lines within text_line. */
static void
check_body(const struct run *r)
{
	const uint8_t *b = r->body.p;
	size_t n = r->body.len, i, line = 0;
	size_t max = r->fc->cfg.limits.text_line;

	if (n == 0)
		return;
	CHECK(n >= 2 && b[n - 2] == '\r' && b[n - 1] == '\n');
	for (i = 0; i < n; i++) {
		if (b[i] == '\r') {
			CHECK(i + 1 < n && b[i + 1] == '\n');
			if (max != 0)
				CHECK(line + 2 <= max);
			line = 0;
			i++;
		} else {
			CHECK(b[i] != '\n');
			line++;
		}
	}
}

static uint32_t
domain_hash(const char *p, size_t n)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 'A' && c <= 'Z')
			c += 32;
		h = (h ^ c) * 16777619u;
	}
	return h;
}

static void
txn_end(struct run *r)
{
	r->in_txn = false;
	r->smtputf8 = false;
	r->bdat = false;
	r->rcpt_ok = 0;
	r->body.len = 0;
}

/*
 * The event log is text, one line per event, so that a mismatch can be
 * printed: "M addr size=... " with bytes escaped.
 */
static void
log_str(struct run *r, const char *s)
{
	fuzz_buf_add(&r->events, s, strlen(s));
}

static void
log_num(struct run *r, const char *key, uint64_t v)
{
	char tmp[48];

	snprintf(tmp, sizeof(tmp), " %s=%llu", key, (unsigned long long)v);
	log_str(r, tmp);
}

static void
log_bytes(struct run *r, const char *key, const void *p, size_t n)
{
	const unsigned char *b = p;
	char tmp[8];
	size_t i;

	snprintf(tmp, sizeof(tmp), " %s=", key);
	log_str(r, tmp);
	for (i = 0; i < n; i++) {
		if (b[i] > 32 && b[i] < 127 && b[i] != '\\') {
			fuzz_buf_add(&r->events, &b[i], 1);
		} else {
			snprintf(tmp, sizeof(tmp), "\\x%02x", b[i]);
			log_str(r, tmp);
		}
	}
}

/*
 * STARTTLS: nothing is taken until the handshake; then the session is
 * reset, and the client's bytes after the STARTTLS line come next.
 */
static void
on_starttls(struct run *r, const struct smtp_event *ev)
{
	size_t room = 1;
	char *sp;

	CHECK(r->fc->cfg.tls_available && !r->tls_on);
	CHECK(smtp_session_feed(r->s, "X", 1) == 0);
	CHECK(!smtp_session_wants_input(r->s));
	sp = smtp_session_input_space(r->s, &room);
	CHECK(sp == NULL && room == 0);
	CHECK(ev->discarded <= r->pos);
	r->rewind = true;
	r->rewind_to = r->pos - ev->discarded;
	log_str(r, "STARTTLS\n");
	drain(r, true);
	smtp_session_tls_started(r->s);
	CHECK(smtp_session_tls_active(r->s));
	CHECK(!smtp_session_in_transaction(r->s));
	r->tls_on = true;
	r->helo_seen = false;
	r->esmtp = false;
	txn_end(r);
}

static void
on_event(struct run *r, enum smtp_ev t, const struct smtp_event *ev)
{
	const struct smtp_limits *lim = &r->fc->cfg.limits;
	char id[24];
	uint32_t h;

	switch (t) {
	case SMTP_EV_HELO:
		CHECK(ev->helo != NULL && ev->helo_len > 0);
		CHECK(smtp_valid_helo(ev->helo, ev->helo_len));
		r->helo_seen = true;
		r->esmtp = ev->esmtp;
		txn_end(r);
		log_str(r, "HELO");
		log_num(r, "esmtp", ev->esmtp);
		log_bytes(r, "name", ev->helo, ev->helo_len);
		log_str(r, "\n");
		break;
	case SMTP_EV_MAIL:
		CHECK(r->helo_seen && !r->in_txn);
		CHECK(!r->fc->cfg.tls_required || r->tls_on);
		CHECK(lim->msgs_max == 0 || r->msgs_ok < lim->msgs_max);
		CHECK(ev->size <= lim->message_size);
		CHECK(ev->body == SMTP_BODY_NONE ||
		    ev->body == SMTP_BODY_7BIT ||
		    ev->body == SMTP_BODY_8BITMIME);
		/* RFC 1869 4.1.1: parameters need EHLO. */
		if (ev->size != 0 || ev->body != SMTP_BODY_NONE ||
		    ev->smtputf8 || ev->requiretls || ev->ret != 0 ||
		    ev->envid != NULL)
			CHECK(r->esmtp);
		/* RFC 8689 2: REQUIRETLS only inside TLS. */
		CHECK(!ev->requiretls || r->tls_on);
		/* RFC 3461: only when DSN is offered. */
		CHECK(r->fc->cfg.dsn || (ev->ret == 0 && ev->envid == NULL));
		CHECK(ev->ret == SMTP_RET_NONE || ev->ret == SMTP_RET_FULL ||
		    ev->ret == SMTP_RET_HDRS);
		if (ev->envid != NULL)
			CHECK(ev->envid_len > 0 && ev->envid_len <= 100 &&
			    smtp_valid_xtext(ev->envid, ev->envid_len));
		CHECK(ev->notify == 0 && ev->orcpt == NULL);
		check_path(&ev->path, true, ev->smtputf8);
		CHECK(!smtp_session_in_transaction(r->s));
		smtp_session_mail_result(r->s, SMTP_MAIL_OK);
		CHECK(smtp_session_in_transaction(r->s));
		txn_end(r);
		r->in_txn = true;
		r->smtputf8 = ev->smtputf8;
		log_str(r, "MAIL");
		log_bytes(r, "from", ev->path.addr, ev->path.addr_len);
		log_num(r, "size", ev->size);
		log_num(r, "body", ev->body);
		log_num(r, "smtputf8", ev->smtputf8);
		log_num(r, "requiretls", ev->requiretls);
		log_num(r, "ret", ev->ret);
		log_bytes(r, "envid", ev->envid, ev->envid_len);
		log_str(r, "\n");
		break;
	case SMTP_EV_RCPT: {
		enum smtp_rcpt_result res = SMTP_RCPT_OK;

		CHECK(r->in_txn);
		CHECK(r->rcpt_ok < lim->rcpt_max);
		check_path(&ev->path, false, r->smtputf8);
		CHECK(ev->path.addr_len > 0);
		if (ev->notify != 0 || ev->orcpt != NULL)
			CHECK(r->esmtp && r->fc->cfg.dsn);
		/* RFC 3461 4.1: NEVER stands alone. */
		CHECK((ev->notify & ~15u) == 0);
		CHECK(!(ev->notify & SMTP_NOTIFY_NEVER) ||
		    ev->notify == SMTP_NOTIFY_NEVER);
		if (ev->orcpt != NULL) {
			const char *semi = memchr(ev->orcpt, ';',
			    ev->orcpt_len);

			CHECK(ev->orcpt_len <= 500);
			CHECK(semi != NULL && semi > ev->orcpt);
		}
		if (r->fc->deny_hash) {
			h = domain_hash(ev->path.domain, ev->path.domain_len);
			if (h % 8 == 0)
				res = SMTP_RCPT_RELAY_DENIED;
			else if (h % 8 == 1)
				res = SMTP_RCPT_TEMPFAIL;
		}
		log_str(r, "RCPT");
		log_bytes(r, "to", ev->path.addr, ev->path.addr_len);
		log_num(r, "notify", ev->notify);
		log_bytes(r, "orcpt", ev->orcpt, ev->orcpt_len);
		log_num(r, "result", res);
		log_str(r, "\n");
		smtp_session_rcpt_result(r->s, res);
		if (res == SMTP_RCPT_OK)
			r->rcpt_ok++;
		break;
	}
	case SMTP_EV_DATA:
		/* DATA's 354, or the first kept chunk of BDAT. */
		CHECK(r->in_txn && r->rcpt_ok > 0);
		CHECK(ev->cmd != NULL);
		r->bdat = strcmp(ev->cmd, "BDAT") == 0;
		if (!r->bdat)
			CHECK(smtp_session_in_data(r->s));
		r->body.len = 0;
		log_str(r, "DATA");
		log_num(r, "bdat", r->bdat);
		log_str(r, "\n");
		break;
	case SMTP_EV_BODY:
		CHECK(r->in_txn);
		CHECK(ev->data != NULL);
		CHECK(ev->data_len > 0 && ev->data_len <= SMTP_IN_CAP);
		/* Read every octet: ASan checks that they are proto's. */
		fuzz_buf_add(&r->body, ev->data, ev->data_len);
		break;
	case SMTP_EV_DATA_END: {
		enum smtp_msg_result res;
		const char *idp = id;

		CHECK(r->in_txn);
		CHECK(ev->msg_size == r->body.len);
		CHECK(ev->msg_size <= lim->message_size);
		if (!r->bdat)
			check_body(r);
		log_str(r, "END");
		log_num(r, "size", ev->msg_size);
		log_bytes(r, "body", r->body.p, r->body.len);
		log_str(r, "\n");
		switch (r->msgs++ % 4) {
		case 0:
			res = SMTP_MSG_OK;
			break;
		case 1:
			res = SMTP_MSG_NOSPACE;
			break;
		case 2:
			res = SMTP_MSG_TEMPFAIL;
			break;
		default:
			res = SMTP_MSG_OK;
			idp = NULL;
			break;
		}
		snprintf(id, sizeof(id), "id%u", r->msgs);
		if (res == SMTP_MSG_OK)
			r->msgs_ok++;
		smtp_session_message_result(r->s, res, idp);
		CHECK(!smtp_session_in_transaction(r->s));
		txn_end(r);
		break;
	}
	case SMTP_EV_DATA_ABORT:
		CHECK(r->in_txn);
		CHECK(ev->code >= 400 && ev->code <= 599);
		CHECK(ev->reason != SMTP_REASON_NONE);
		CHECK(text_ok(ev->text, ev->text_len));
		log_str(r, "ABORT");
		log_num(r, "code", (uint64_t)ev->code);
		log_str(r, " reason=");
		log_str(r, smtp_reason_name(ev->reason));
		log_num(r, "size", ev->msg_size);
		log_str(r, "\n");
		txn_end(r);
		break;
	case SMTP_EV_RSET:
		CHECK(r->in_txn);
		log_str(r, "RSET\n");
		txn_end(r);
		break;
	case SMTP_EV_STARTTLS:
		on_starttls(r, ev);
		break;
	case SMTP_EV_COMMAND:
		/*
		 * The hook of a harness: decided from the line alone, so
		 * both runs decide alike.  Mostly run it; now and then a
		 * custom refusal or a hang-up.
		 */
		CHECK(r->fc->cfg.hook_commands);
		CHECK(ev->cmd != NULL && (ev->arg != NULL || ev->arg_len == 0));
		h = domain_hash(ev->arg, ev->arg_len);
		log_str(r, "COMMAND");
		log_bytes(r, "line", ev->arg, ev->arg_len);
		log_num(r, "action", h % 16);
		log_str(r, "\n");
		if (h % 16 == 0) {
			smtp_session_reply_custom(r->s, 550, "5.7.1",
			    "fault injected");
			if (strcmp(ev->cmd, "BDAT") != 0 &&
			    !smtp_session_in_transaction(r->s))
				txn_end(r);
		} else if (h % 16 == 1) {
			smtp_session_command_result(r->s, SMTP_CMD_DISCONNECT);
		} else {
			smtp_session_command_result(r->s, SMTP_CMD_PROCEED);
		}
		break;
	case SMTP_EV_REJECT:
		CHECK(ev->code >= 400 && ev->code <= 599);
		CHECK(ev->text != NULL && ev->text_len >= 5);
		CHECK(ev->text_len < SMTP_REPLY_MAX);
		CHECK(text_ok(ev->text, ev->text_len));
		CHECK(ev->arg_len == 0 || ev->arg != NULL);
		log_str(r, "REJECT");
		log_num(r, "code", (uint64_t)ev->code);
		log_bytes(r, "text", ev->text, ev->text_len);
		log_str(r, "\n");
		/*
		 * A refusal may end the transaction (a refused BDAT chunk,
		 * RFC 3030 2), never begin one.
		 */
		if (!smtp_session_in_transaction(r->s))
			txn_end(r);
		break;
	case SMTP_EV_CLOSE:
		CHECK(smtp_session_closing(r->s));
		r->closed = true;
		r->close_reason = ev->reason;
		r->close_at = r->replies.len + pending(r);
		log_str(r, "CLOSE reason=");
		log_str(r, smtp_reason_name(ev->reason));
		log_str(r, "\n");
		break;
	default:
		/* A newer proto's event: not ours to judge. */
		r->unknown = true;
		break;
	}
}

static void
pump(struct run *r)
{
	struct smtp_event ev;
	enum smtp_ev t;

	for (;;) {
		drain(r, false);
		t = smtp_session_next(r->s, &ev);
		pending(r);
		if (t == SMTP_EV_NONE)
			break;
		CHECK(ev.type == t);
		/* Nothing after CLOSE: it is reported once, and last. */
		CHECK(!r->closed);
		on_event(r, t, &ev);
		pending(r);
		/* Our view of the transaction is proto's (until closing). */
		if (!smtp_session_closing(r->s) && !r->unknown)
			CHECK(r->in_txn == smtp_session_in_transaction(r->s));
	}
	drain(r, false);
}

/* ---- input --------------------------------------------------------------- */

static size_t
chunk_len(struct run *r)
{
	size_t left = r->len - r->pos, max;
	unsigned cls = r->fc->chunk_class;

	if (!r->chunked)
		return left;
	if (cls == 7)
		cls = (unsigned)(rng_next(&r->rng) % 7);
	max = chunk_max[cls];
	if (max == 0 || max > left)
		max = left;
	return rng_upto(&r->rng, max);
}

static size_t
put(struct run *r, size_t n)
{
	const char *p = (const char *)r->in + r->pos;
	size_t room;
	char *sp;

	if (!(r->chunked && r->fc->zero_copy))
		return smtp_session_feed(r->s, p, n);
	sp = smtp_session_input_space(r->s, &room);
	CHECK((sp == NULL) == (room == 0));
	CHECK(smtp_session_wants_input(r->s) == (room > 0));
	if (sp == NULL)
		return 0;
	if (n > room)
		n = room;
	memcpy(sp, p, n);
	smtp_session_input_commit(r->s, n);
	return n;
}

static void
greet(struct run *r)
{
	r->greeted = true;
	switch (r->fc->greeting) {
	case GREET_REFUSE:
		smtp_session_hangup(r->s, r->fc->too_fast ?
		    SMTP_HANGUP_TOO_FAST : SMTP_HANGUP_TOO_MANY_CONN_IP);
		break;
	case GREET_PREGREET:
		if (r->pos == 0) {
			smtp_session_greet(r->s);
			break;
		}
		/* The delayed greeting finds the client talked. */
		r->pregreeted = true;
		smtp_session_pregreet(r->s);
		break;
	default:
		smtp_session_greet(r->s);
		break;
	}
}

/* Whether to greet now, after r->pos octets were fed. */
static bool
greet_due(const struct run *r, size_t took)
{
	if (r->greeted)
		return false;
	switch (r->fc->greeting) {
	case GREET_HELD:
		return true;
	case GREET_PREGREET:
		/* Once all is in, or proto holds no more. */
		return r->pos >= r->len || took == 0;
	default:
		return true;
	}
}

/*
 * Drain everything and let proto work through what it holds, until it
 * writes nothing more: it is then idle for want of input.
 */
static void
flush(struct run *r)
{
	if (!r->greeted)
		greet(r);
	do {
		drain(r, true);
		pump(r);
	} while (pending(r) > 0 && !r->rewind);
}

static void
feed_all(struct run *r)
{
	size_t took;
	bool retried = false;

	if (r->fc->greeting == GREET_NOW || r->fc->greeting == GREET_REFUSE)
		greet(r);
	pump(r);
	for (;;) {
		if (r->rewind) {
			/* After STARTTLS: resume right after its line. */
			r->rewind = false;
			r->pos = r->rewind_to;
			retried = false;
		}
		if (r->pos >= r->len) {
			flush(r);
			if (r->rewind)
				continue;
			break;
		}
		took = put(r, chunk_len(r));
		r->pos += took;
		if (greet_due(r, took)) {
			greet(r);
			took = 1;	/* not stuck: the greeting changed all */
		}
		pump(r);
		if (took > 0 || r->rewind) {
			retried = false;
			continue;
		}
		if (smtp_session_closing(r->s)) {
			/* The rest is ignored. */
			CHECK(r->closed);
			break;
		}
		if (retried) {
			/* Drained and answered, and still no room. */
			CHECK(r->unknown);
			r->stopped = true;
			break;
		}
		retried = true;
		drain(r, true);
		pump(r);
	}
	switch (r->fc->end) {
	case END_TIMEOUT:
		smtp_session_hangup(r->s, SMTP_HANGUP_TIMEOUT);
		break;
	case END_SHUTDOWN:
		smtp_session_hangup(r->s, SMTP_HANGUP_SHUTDOWN);
		break;
	default:
		break;
	}
	flush(r);
	CHECK(!r->rewind || r->stopped);
	if (r->closed) {
		CHECK(smtp_session_feed(r->s, "X", 1) == 0);
		CHECK(!smtp_session_wants_input(r->s));
	}
	CHECK(r->closed == smtp_session_closing(r->s) || r->stopped);
}

/* ---- the reply stream ---------------------------------------------------- */

static int
line_code(const uint8_t *p)
{
	return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
}

static void
check_replies(const struct run *r)
{
	const uint8_t *p = r->replies.p, *end, *nl;
	const uint8_t *last = NULL;
	int cont = 0;		/* code of an open multi-line reply */
	size_t n;

	if (r->replies.len == 0) {
		/* Only an HTTP line before the greeting gets no word. */
		CHECK(r->pregreeted && r->closed &&
		    r->close_reason == SMTP_REASON_HTTP);
		return;
	}
	/* The greeting, the refusal at connect, or the pregreet verdict. */
	end = p + r->replies.len;
	CHECK(r->replies.len >= 4);
	if (r->fc->greeting == GREET_REFUSE)
		CHECK(memcmp(p, "421 ", 4) == 0);
	else if (r->pregreeted)
		CHECK(memcmp(p, "554 ", 4) == 0);
	else
		CHECK(memcmp(p, "220 ", 4) == 0);
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		CHECK(nl != NULL);
		n = (size_t)(nl - p) + 1;
		CHECK(n <= SMTP_REPLY_MAX);
		CHECK(n >= 6 && p[n - 2] == '\r');
		/* Reply-code = %x32-35 %x30-35 %x30-39 */
		CHECK(p[0] >= '2' && p[0] <= '5');
		CHECK(p[1] >= '0' && p[1] <= '5');
		CHECK(p[2] >= '0' && p[2] <= '9');
		CHECK(p[3] == ' ' || p[3] == '-');
		CHECK(text_ok((const char *)p + 4, n - 6));
		if (cont != 0)
			CHECK(line_code(p) == cont);
		cont = p[3] == '-' ? line_code(p) : 0;
		last = p;
		p += n;
	}
	CHECK(cont == 0);
	if (r->closed) {
		/* Nothing after the close, and the close said goodbye. */
		CHECK(r->close_at == r->replies.len);
		switch (r->close_reason) {
		case SMTP_REASON_OUT_OF_MEMORY:
		case SMTP_REASON_HTTP:
		case SMTP_REASON_FAULT:		/* a hang-up without reply */
			break;
		case SMTP_REASON_PREGREET:
			CHECK(line_code(last) == 554);
			break;
		default:
			CHECK(line_code(last) == 221 || line_code(last) == 421);
			break;
		}
	}
}

/* ---- the target ------------------------------------------------------------ */

static void
run_once(struct run *r, const struct fconf *fc, const uint8_t *in,
    size_t len, bool chunked)
{
	memset(r, 0, sizeof(*r));
	r->fc = fc;
	r->in = in;
	r->len = len;
	r->chunked = chunked;
	r->rng = fc->seed;
	r->s = smtp_session_create(&fc->cfg);
	CHECK(r->s != NULL);
	feed_all(r);
	check_replies(r);
	smtp_session_destroy(r->s);
	r->s = NULL;
}

/* Where runs A and B part, for the crash report. */
static void
show_diff(const char *what, const struct fuzz_buf *a,
    const struct fuzz_buf *b)
{
	size_t i = 0, from;

	while (i < a->len && i < b->len && a->p[i] == b->p[i])
		i++;
	from = i;
	while (from > 0 && a->p[from - 1] != '\n')
		from--;
	fprintf(stderr, "%s differ at octet %zu (A: %zu octets, B: %zu)\n"
	    "A (chunked): %.*s\nB (whole):   %.*s\n", what, i, a->len, b->len,
	    (int)(a->len - from > 400 ? 400 : a->len - from),
	    (const char *)a->p + from,
	    (int)(b->len - from > 400 ? 400 : b->len - from),
	    (const char *)b->p + from);
}

static void
run_free(struct run *r)
{
	fuzz_buf_free(&r->replies);
	fuzz_buf_free(&r->events);
	fuzz_buf_free(&r->body);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fconf fc;
	struct run a, b;

	if (size < HDR_LEN)
		return 0;
	parse_header(data, &fc);
	run_once(&a, &fc, data + HDR_LEN, size - HDR_LEN, true);
	run_once(&b, &fc, data + HDR_LEN, size - HDR_LEN, false);
	if (!a.stopped && !b.stopped) {
		if (!fuzz_buf_eq(&a.replies, &b.replies))
			show_diff("replies", &a.replies, &b.replies);
		CHECK(fuzz_buf_eq(&a.replies, &b.replies));
		if (!fuzz_buf_eq(&a.events, &b.events))
			show_diff("events", &a.events, &b.events);
		CHECK(fuzz_buf_eq(&a.events, &b.events));
	}
	run_free(&a);
	run_free(&b);
	return 0;
}
