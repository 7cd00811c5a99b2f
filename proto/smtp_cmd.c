/*
 * smtp_cmd.c - the command table and one handler per command.
 *
 * Each handler validates its arguments and the session state first, and
 * only then changes state and queues its reply (OpenSMTPD's check/proceed
 * split).  A handler returns the event the caller must see, SMTP_EV_REJECT
 * after any 4xx/5xx, or SMTP_EV_NONE.  Reply texts and enhanced status
 * codes (RFC 3463) are chosen here; smtp_reply() formats and counts them.
 */
#include <stdio.h>
#include <string.h>

#include "smtp_int.h"

enum cmd_flags {
	/* RFC 3207 section 4: allowed before TLS when TLS is required. */
	CMD_PRE_TLS = 1 << 0,
};

struct smtp_cmd {
	const char	*name;
	enum smtp_ev	(*fn)(struct smtp_session *, const char *, size_t,
			    struct smtp_event *);
	unsigned	 flags;
};

#define REJECT		SMTP_EV_REJECT

static enum smtp_ev
syntax(struct smtp_session *s, const char *usage)
{
	smtp_reply(s, 501, "5.5.4", "Syntax: %s", usage);
	return REJECT;
}

/* ---- HELO / EHLO (RFC 5321 4.1.1.1) ----------------------------------- */

static enum smtp_ev
hello(struct smtp_session *s, const char *a, size_t n, struct smtp_event *ev,
    bool esmtp)
{
	const char *name;
	size_t i;

	if (n < 2 || a[0] != ' ')
		return syntax(s, esmtp ? "EHLO hostname" : "HELO hostname");
	name = a + 1;
	n--;
	for (i = 0; i < n; i++)
		if (name[i] == ' ')
			return syntax(s, esmtp ? "EHLO hostname" :
			    "HELO hostname");
	if (!smtp_valid_helo(name, n)) {
		smtp_reply(s, 501, "5.5.4", "Invalid domain name");
		return REJECT;
	}

	/* A new HELO/EHLO ends any open transaction (RFC 5321 4.1.4). */
	smtp_txn_reset(s);
	s->helo_seen = true;
	s->esmtp = esmtp;
	if (esmtp) {
		const struct smtp_config *c = s->cfg;
		char buf[SMTP_REPLY_MAX];
		size_t len = 0;

#define LINE(...) do {							\
	int m_ = snprintf(buf + len, sizeof(buf) - len, __VA_ARGS__);	\
	if (m_ > 0)							\
		len += (size_t)m_;					\
} while (0)
		LINE("250-%s\r\n", c->hostname);
		LINE("250-PIPELINING\r\n");
		LINE("250-SIZE %llu\r\n",
		    (unsigned long long)c->limits.message_size);
		LINE("250-8BITMIME\r\n");
		LINE("250-SMTPUTF8\r\n");
		if (c->dsn)
			LINE("250-DSN\r\n");
		LINE("250-CHUNKING\r\n");
		if (smtp_tls_offered(s) && !s->tls_active)
			LINE("250-STARTTLS\r\n");
		/* RFC 8689 4.1: offered only inside TLS. */
		if (s->tls_active)
			LINE("250-REQUIRETLS\r\n");
		LINE("250 ENHANCEDSTATUSCODES\r\n");
#undef LINE
		if (len >= sizeof(buf))
			len = sizeof(buf) - 1;
		smtp_reply_raw(s, buf, len);
	} else {
		smtp_reply(s, 250, NULL, "%s", s->cfg->hostname);
	}
	ev->helo = name;
	ev->helo_len = n;
	ev->esmtp = esmtp;
	return SMTP_EV_HELO;
}

static enum smtp_ev
cmd_ehlo(struct smtp_session *s, const char *a, size_t n,
    struct smtp_event *ev)
{
	return hello(s, a, n, ev, true);
}

static enum smtp_ev
cmd_helo(struct smtp_session *s, const char *a, size_t n,
    struct smtp_event *ev)
{
	return hello(s, a, n, ev, false);
}

/* ---- MAIL, RCPT (RFC 5321 4.1.1.2-3) ---------------------------------- */

/*
 * " FROM:" / " TO:" then the path.  RFC 5321 4.1.2 has no space after the
 * colon, but widespread clients send one; it carries no ambiguity, so it
 * is accepted (as Postfix and OpenSMTPD do).
 */
static bool
path_prefix(const char **a, size_t *n, const char *kw)
{
	size_t k = strlen(kw);

	if (*n < k + 1 || (*a)[0] != ' ' || !smtp_ieq(*a + 1, k, kw))
		return false;
	*a += k + 1;
	*n -= k + 1;
	while (*n > 0 && **a == ' ') {
		(*a)++;
		(*n)--;
	}
	return true;
}

/*
 * " FROM:<path>" or " TO:<path>": parse the path into ev->path and move
 * *a past it, to the parameters.  On an error the reply is queued and
 * false returned.  MAIL errors are 5.1.7 and RCPT errors 5.1.3 (RFC 3463:
 * bad sender / bad destination mailbox address syntax).
 */
static bool
take_path(struct smtp_session *s, const char **a, size_t *n,
    struct smtp_event *ev, bool mail)
{
	const char *usage = mail ? "MAIL FROM:<address>" : "RCPT TO:<address>";
	const char *enh = mail ? "5.1.7" : "5.1.3";
	const char *who = mail ? "Sender" : "Recipient";
	unsigned flags = (mail ? SMTP_PATH_NULL_OK : SMTP_PATH_POSTMASTER) |
	    SMTP_PATH_UTF8;	/* allowed or not: decided after SMTPUTF8 */
	size_t used;

	if (!path_prefix(a, n, mail ? "FROM:" : "TO:")) {
		syntax(s, usage);
		return false;
	}
	switch (smtp_parse_path(*a, *n, flags, &ev->path, &used)) {
	case SMTP_PATH_OK:
		*a += used;
		*n -= used;
		return true;
	case SMTP_PATH_TOO_LONG:
		smtp_reply(s, 501, enh, "%s address too long", who);
		return false;
	case SMTP_PATH_NO_BRACKETS:
		syntax(s, usage);
		return false;
	case SMTP_PATH_SYNTAX:
		break;
	}
	smtp_reply(s, 501, enh, "Bad %s address syntax",
	    mail ? "sender" : "recipient");
	return false;
}

static bool
parse_size(const char *v, size_t n, uint64_t *out)
{
	uint64_t x = 0;
	size_t i;

	/* RFC 1870: size-value = 1*20DIGIT; saturate rather than wrap. */
	if (n == 0 || n > 20)
		return false;
	for (i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		if (x > (UINT64_MAX - 9) / 10)
			x = UINT64_MAX;
		else
			x = x * 10 + (uint64_t)(v[i] - '0');
	}
	*out = x;
	return true;
}

/*
 * One ESMTP parameter of MAIL or RCPT, by name.  Each returns true, or
 * queues its refusal and returns false.  seen holds a bit per keyword:
 * a parameter given twice is a syntax error (RFC 5321 4.1.2 does not say
 * which would win).
 */
enum {
	P_SIZE = 1 << 0, P_BODY = 1 << 1, P_SMTPUTF8 = 1 << 2,
	P_REQUIRETLS = 1 << 3, P_RET = 1 << 4, P_ENVID = 1 << 5,
	P_NOTIFY = 1 << 6, P_ORCPT = 1 << 7,
};

static bool
param_bad(struct smtp_session *s, const struct smtp_param *p,
    const char *why)
{
	smtp_reply(s, 501, "5.5.4", "%s %.*s parameter", why,
	    (int)(p->key_len > 20 ? 20 : p->key_len), p->key);
	return false;
}

static bool
param_once(struct smtp_session *s, const struct smtp_param *p,
    unsigned *seen, unsigned bit, bool value)
{
	if (*seen & bit)
		return param_bad(s, p, "Duplicate");
	*seen |= bit;
	if (value != (p->value != NULL))
		return param_bad(s, p, "Bad");
	return true;
}

static bool
mail_param(struct smtp_session *s, const struct smtp_param *p,
    unsigned *seen, struct smtp_event *ev)
{
	const char *v = p->value;
	size_t vn = p->value_len;

	if (smtp_ieq(p->key, p->key_len, "SIZE")) {
		if (!param_once(s, p, seen, P_SIZE, true))
			return false;
		if (!parse_size(v, vn, &ev->size))
			return param_bad(s, p, "Bad");
	} else if (smtp_ieq(p->key, p->key_len, "BODY")) {
		if (!param_once(s, p, seen, P_BODY, true))
			return false;
		if (smtp_ieq(v, vn, "7BIT"))
			ev->body = SMTP_BODY_7BIT;
		else if (smtp_ieq(v, vn, "8BITMIME"))
			ev->body = SMTP_BODY_8BITMIME;
		else
			return param_bad(s, p, "Bad");
	} else if (smtp_ieq(p->key, p->key_len, "SMTPUTF8")) {
		/* RFC 6531 3.4: a keyword with no value. */
		if (!param_once(s, p, seen, P_SMTPUTF8, false))
			return false;
		ev->smtputf8 = true;
	} else if (smtp_ieq(p->key, p->key_len, "REQUIRETLS")) {
		if (!param_once(s, p, seen, P_REQUIRETLS, false))
			return false;
		/*
		 * RFC 8689 2: only inside TLS, where it is offered.  RFC 8689
		 * names no reply for a plaintext session; this is RFC 3207
		 * 4's for a command that needs TLS.
		 */
		if (!s->tls_active && smtp_tls_offered(s)) {
			smtp_reply(s, 530, "5.7.0",
			    "Must issue a STARTTLS command first");
			return false;
		}
		if (!s->tls_active) {
			/* No TLS here at all: not offered, not known. */
			smtp_reply(s, 555, "5.5.4",
			    "Unsupported parameter REQUIRETLS");
			return false;
		}
		ev->requiretls = true;
	} else if (s->cfg->dsn && smtp_ieq(p->key, p->key_len, "RET")) {
		if (!param_once(s, p, seen, P_RET, true))
			return false;
		if (smtp_ieq(v, vn, "FULL"))
			ev->ret = SMTP_RET_FULL;
		else if (smtp_ieq(v, vn, "HDRS"))
			ev->ret = SMTP_RET_HDRS;
		else
			return param_bad(s, p, "Bad");
	} else if (s->cfg->dsn && smtp_ieq(p->key, p->key_len, "ENVID")) {
		/* RFC 3461 4.4: xtext, at most 100 characters. */
		if (!param_once(s, p, seen, P_ENVID, true))
			return false;
		if (vn > 100 || !smtp_valid_xtext(v, vn))
			return param_bad(s, p, "Bad");
		ev->envid = v;
		ev->envid_len = vn;
	} else {
		/* RFC 5321 4.1.1.11 / RFC 1869: 555 for unknown. */
		smtp_reply(s, 555, "5.5.4", "Unsupported parameter %.*s",
		    (int)(p->key_len > 40 ? 40 : p->key_len), p->key);
		return false;
	}
	return true;
}

/* NOTIFY = "NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" ) */
static bool
parse_notify(const char *v, size_t n, unsigned *out)
{
	static const char *const kw[] = { "NEVER", "SUCCESS", "FAILURE",
	    "DELAY" };
	size_t i = 0, j, k;
	unsigned bits = 0, b;

	while (i < n) {
		for (j = i; j < n && v[j] != ','; j++)
			;
		b = 0;
		for (k = 0; k < 4; k++)
			if (smtp_ieq(v + i, j - i, kw[k]))
				b = 1u << k;
		if (b == 0 || (bits & b))
			return false;
		bits |= b;
		if (j == n)
			break;
		i = j + 1;
		if (i == n)
			return false;	/* a trailing comma */
	}
	if (bits == 0 || ((bits & SMTP_NOTIFY_NEVER) &&
	    bits != SMTP_NOTIFY_NEVER))
		return false;
	*out = bits;
	return true;
}

static bool
rcpt_param(struct smtp_session *s, const struct smtp_param *p,
    unsigned *seen, struct smtp_event *ev)
{
	const char *v = p->value, *semi;
	size_t vn = p->value_len;

	if (s->cfg->dsn && smtp_ieq(p->key, p->key_len, "NOTIFY")) {
		if (!param_once(s, p, seen, P_NOTIFY, true))
			return false;
		if (!parse_notify(v, vn, &ev->notify))
			return param_bad(s, p, "Bad");
	} else if (s->cfg->dsn && smtp_ieq(p->key, p->key_len, "ORCPT")) {
		/*
		 * RFC 3461 4.2: addr-type ";" xtext, at most 500
		 * characters; addr-type is an atom ("rfc822", "utf-8").
		 * RFC 6533 3: a "utf-8" address may hold UTF-8 itself.
		 */
		if (!param_once(s, p, seen, P_ORCPT, true))
			return false;
		semi = memchr(v, ';', vn);
		if (vn > 500 || semi == NULL || semi == v ||
		    !smtp_valid_xtext_utf8(semi + 1,
		    vn - (size_t)(semi + 1 - v),
		    smtp_ieq(v, (size_t)(semi - v), "utf-8")))
			return param_bad(s, p, "Bad");
		ev->orcpt = v;
		ev->orcpt_len = vn;
	} else {
		smtp_reply(s, 555, "5.5.4", "Unsupported parameter %.*s",
		    (int)(p->key_len > 40 ? 40 : p->key_len), p->key);
		return false;
	}
	return true;
}

/*
 * RFC 6531 3.4: a non-ASCII path needs SMTPUTF8 on its MAIL.  Without
 * it, the codes of RFC 6531 3.5 for an address that must be ASCII:
 * 550 5.6.7 for MAIL, 553 5.6.7 for RCPT.
 */
static bool
utf8_allowed(struct smtp_session *s, const struct smtp_event *ev,
    bool smtputf8, bool mail)
{
	if (!ev->path.utf8 || smtputf8)
		return true;
	smtp_reply(s, mail ? 550 : 553, "5.6.7",
	    "Non-ASCII address needs SMTPUTF8");
	return false;
}

static enum smtp_ev
cmd_mail(struct smtp_session *s, const char *a, size_t n,
    struct smtp_event *ev)
{
	const char *end = a + n, *p;
	struct smtp_param prm;
	unsigned seen = 0;
	int r;

	if (!s->helo_seen) {
		smtp_reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
		return REJECT;
	}
	if (s->in_txn) {
		smtp_reply(s, 503, "5.5.1", "Error: nested MAIL command");
		return REJECT;
	}
	if (s->cfg->limits.msgs_max != 0 &&
	    s->msgs >= s->cfg->limits.msgs_max) {
		smtp_reply(s, 421, "4.7.0",
		    "%s Error: too many messages in this session",
		    s->cfg->hostname);
		smtp_close(s, SMTP_REASON_TOO_MANY_MSGS);
		return REJECT;
	}
	if (!take_path(s, &a, &n, ev, true))
		return REJECT;

	p = a;
	while ((r = smtp_next_param(&p, end, &prm)) == 1) {
		if (!s->esmtp) {
			/* RFC 1869 section 4.1.1: parameters need EHLO. */
			smtp_reply(s, 555, "5.5.4",
			    "Parameters are not allowed after HELO");
			return REJECT;
		}
		if (!mail_param(s, &prm, &seen, ev))
			return REJECT;
	}
	if (r < 0)
		return syntax(s, "MAIL FROM:<address> [parameters]");
	if (!utf8_allowed(s, ev, ev->smtputf8, true))
		return REJECT;

	/* RFC 1870 section 6.2: refuse a declared size over the limit. */
	if ((seen & P_SIZE) && ev->size > s->cfg->limits.message_size) {
		smtp_reply(s, 552, "5.3.4",
		    "Message size exceeds fixed maximum message size");
		return REJECT;
	}

	/* The caller decides; smtp_session_mail_result() replies. */
	s->mail_smtputf8 = ev->smtputf8;
	s->mail_body = ev->body;
	s->wait = WAIT_MAIL;
	return SMTP_EV_MAIL;
}

static enum smtp_ev
cmd_rcpt(struct smtp_session *s, const char *a, size_t n,
    struct smtp_event *ev)
{
	const char *end = a + n, *p;
	struct smtp_param prm;
	unsigned seen = 0;
	int r;

	if (!s->in_txn) {
		smtp_reply(s, 503, "5.5.1", "Error: need MAIL command");
		return REJECT;
	}
	if (!take_path(s, &a, &n, ev, false))
		return REJECT;
	p = a;
	while ((r = smtp_next_param(&p, end, &prm)) == 1) {
		if (!s->esmtp) {
			smtp_reply(s, 555, "5.5.4",
			    "Parameters are not allowed after HELO");
			return REJECT;
		}
		if (!rcpt_param(s, &prm, &seen, ev))
			return REJECT;
	}
	if (r < 0)
		return syntax(s, "RCPT TO:<address> [parameters]");
	if (!utf8_allowed(s, ev, s->smtputf8, false))
		return REJECT;
	if (s->rcpt_ok >= s->cfg->limits.rcpt_max) {
		smtp_reply(s, 452, "4.5.3", "Error: too many recipients");
		return REJECT;
	}
	/* The caller decides; smtp_session_rcpt_result() replies. */
	s->wait = WAIT_RCPT;
	return SMTP_EV_RCPT;
}

/* ---- DATA (RFC 5321 4.1.1.4) ------------------------------------------ */

static enum smtp_ev
cmd_data(struct smtp_session *s, const char *a, size_t n,
    struct smtp_event *ev)
{
	if (n > 0)
		return syntax(s, "DATA");
	if (!s->in_txn) {
		smtp_reply(s, 503, "5.5.1", "Error: need MAIL command");
		return REJECT;
	}
	if (s->bdat_used) {
		/* RFC 3030 2: not in the same transaction as BDAT. */
		smtp_reply(s, 503, "5.5.1",
		    "Error: DATA and BDAT cannot be mixed");
		return REJECT;
	}
	if (s->rcpt_tried == 0) {
		smtp_reply(s, 503, "5.5.1", "Error: need RCPT command");
		return REJECT;
	}
	if (s->rcpt_ok == 0) {
		/* RFC 5321 3.3: all recipients refused: 554 (or 503). */
		smtp_reply(s, 554, "5.5.1", "Error: no valid recipients");
		return REJECT;
	}
	smtp_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	smtp_data_begin(s);
	return SMTP_EV_DATA;
}

/* ---- BDAT (RFC 3030) -------------------------------------------------- */

/*
 * "BDAT SP chunk-size [SP LAST]".  The chunk's octets follow the line at
 * once, whatever the reply will be: they are always read (and dropped
 * when the chunk is refused), and the reply comes after them, so the
 * client stays in step.  The decision is taken here, before the octets:
 * bdat_code is 0 to keep the chunk, or the refusal to send after it.
 */
static enum smtp_ev
cmd_bdat(struct smtp_session *s, const char *a, size_t n,
    struct smtp_event *ev)
{
	const uint64_t max = s->cfg->limits.message_size;
	uint64_t size = 0;
	size_t i = 1, digits;
	bool last = false;

	if (n < 2 || a[0] != ' ')
		return syntax(s, "BDAT chunk-size [LAST]");
	for (digits = 0; i < n && a[i] >= '0' && a[i] <= '9'; i++, digits++)
		if (size <= (UINT64_MAX - 9) / 10)
			size = size * 10 + (uint64_t)(a[i] - '0');
		else
			size = UINT64_MAX;
	if (digits == 0 || digits > 20)
		return syntax(s, "BDAT chunk-size [LAST]");
	if (i < n) {
		if (n - i != 5 || a[i] != ' ' || !smtp_ieq(a + i + 1, 4,
		    "LAST"))
			return syntax(s, "BDAT chunk-size [LAST]");
		last = true;
	}
	ev->size = size;

	/*
	 * A chunk that would take the message past twice the limit is not
	 * worth reading: refuse it and close (see SMTP_CMD_FLOOD).  Kept
	 * chunks never exceed the limit, so data_size <= max here.
	 */
	if (size > 2 * max - s->data_size) {
		smtp_flood(s, 552, "5.3.4",
		    "Message size exceeds fixed maximum message size",
		    "chunk far over the size limit");
		return SMTP_EV_REJECT;
	}

	s->bdat_code = 0;
	if (s->override) {
		/* A custom reply (smtp_session_reply_custom) after the
		 * chunk, which is read and dropped. */
		s->override = false;
		s->bdat_code = s->override_code;
		s->bdat_enh = s->override_enh[0] ? s->override_enh : NULL;
		s->bdat_text = s->override_text;
	} else if (!s->in_txn) {
		s->bdat_code = 503;
		s->bdat_enh = "5.5.1";
		s->bdat_text = "Error: need MAIL command";
	} else if (s->rcpt_tried == 0) {
		s->bdat_code = 503;
		s->bdat_enh = "5.5.1";
		s->bdat_text = "Error: need RCPT command";
	} else if (s->rcpt_ok == 0) {
		s->bdat_code = 554;
		s->bdat_enh = "5.5.1";
		s->bdat_text = "Error: no valid recipients";
	} else if (s->data_size + size > max) {
		/* RFC 1870 / 3030: the size limit holds across chunks. */
		s->bdat_code = 552;
		s->bdat_enh = "5.3.4";
		s->bdat_text =
		    "Message size exceeds fixed maximum message size";
	}
	s->bdat_size = size;
	s->bdat_left = size;
	s->bdat_last = last;
	s->mode = MODE_BDAT;
	if (s->bdat_code == 0 && !s->bdat_used) {
		/* The first chunk of a message: the body begins. */
		s->bdat_used = true;
		s->data_size = 0;
		return SMTP_EV_DATA;
	}
	return SMTP_EV_NONE;	/* smtp_bdat_step() reads the chunk */
}

/* ---- the rest --------------------------------------------------------- */

static enum smtp_ev
cmd_rset(struct smtp_session *s, const char *a, size_t n,
    struct smtp_event *ev)
{
	bool had = s->in_txn;

	if (n > 0)
		return syntax(s, "RSET");
	smtp_txn_reset(s);
	smtp_reply(s, 250, "2.0.0", "Ok");
	return had ? SMTP_EV_RSET : SMTP_EV_NONE;
}

static enum smtp_ev
cmd_noop(struct smtp_session *s, const char *a, size_t n,
    struct smtp_event *ev)
{
	/* RFC 5321 4.1.1.9: a parameter may be given and is ignored. */
	smtp_reply(s, 250, "2.0.0", "Ok");
	return SMTP_EV_NONE;
}

static enum smtp_ev
cmd_quit(struct smtp_session *s, const char *a, size_t n,
    struct smtp_event *ev)
{
	if (n > 0)
		return syntax(s, "QUIT");
	smtp_reply(s, 221, "2.0.0", "Bye");
	smtp_close(s, SMTP_REASON_QUIT);
	return SMTP_EV_NONE;
}

static enum smtp_ev
cmd_vrfy(struct smtp_session *s, const char *a, size_t n,
    struct smtp_event *ev)
{
	if (n < 2)
		return syntax(s, "VRFY address");
	/*
	 * RFC 5321 3.5.3: 252 when we will not verify but will accept.
	 * RFC 3463 has no detail for it (X.5.2 would say "syntax error").
	 */
	smtp_reply(s, 252, "2.0.0",
	    "Cannot VRFY user, but will accept message and attempt delivery");
	return SMTP_EV_NONE;
}

static enum smtp_ev
cmd_help(struct smtp_session *s, const char *a, size_t n,
    struct smtp_event *ev)
{
	smtp_reply(s, 214, "2.0.0",
	    "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY "
	    "HELP%s",
	    smtp_tls_offered(s) && !s->tls_active ? " STARTTLS" : "");
	return SMTP_EV_NONE;
}

/* RFC 3207 section 4. */
static enum smtp_ev
cmd_starttls(struct smtp_session *s, const char *a, size_t n,
    struct smtp_event *ev)
{
	if (n > 0)
		return syntax(s, "STARTTLS");
	if (s->tls_active) {
		smtp_reply(s, 503, "5.5.1", "Error: TLS already active");
		return REJECT;
	}
	if (!smtp_tls_offered(s)) {
		smtp_reply(s, 454, "4.7.0", "TLS not available");
		return REJECT;
	}
	/*
	 * Anything the client sent after this line was sent in plaintext
	 * before the handshake; it must not be executed inside TLS
	 * (RFC 3207 section 6, CVE-2011-0411).  Drop it now, and whatever
	 * arrives until tls_started() is called.
	 */
	ev->discarded = s->in_len - s->in_off;
	s->in_off = s->in_len;
	smtp_reply(s, 220, "2.0.0", "Ready to start TLS");
	s->wait = WAIT_TLS;
	return SMTP_EV_STARTTLS;
}

/* Known commands that an MX does not offer. */
static enum smtp_ev
cmd_unimplemented(struct smtp_session *s, const char *a, size_t n,
    struct smtp_event *ev)
{
	smtp_reply(s, 502, "5.5.1", "Error: command not implemented");
	return REJECT;
}

static const struct smtp_cmd cmd_table[] = {
	{ "EHLO",	cmd_ehlo,		CMD_PRE_TLS },
	{ "HELO",	cmd_helo,		CMD_PRE_TLS },
	{ "MAIL",	cmd_mail,		0 },
	{ "RCPT",	cmd_rcpt,		0 },
	{ "DATA",	cmd_data,		0 },
	{ "RSET",	cmd_rset,		CMD_PRE_TLS },
	{ "NOOP",	cmd_noop,		CMD_PRE_TLS },
	{ "QUIT",	cmd_quit,		CMD_PRE_TLS },
	{ "VRFY",	cmd_vrfy,		0 },
	{ "HELP",	cmd_help,		0 },
	{ "STARTTLS",	cmd_starttls,		CMD_PRE_TLS },
	{ "EXPN",	cmd_unimplemented,	0 },
	{ "AUTH",	cmd_unimplemented,	0 },
	{ "BDAT",	cmd_bdat,		0 },
	{ "ETRN",	cmd_unimplemented,	0 },
	{ "TURN",	cmd_unimplemented,	0 },
	{ "ATRN",	cmd_unimplemented,	0 },
	{ "SEND",	cmd_unimplemented,	0 },
	{ "SOML",	cmd_unimplemented,	0 },
	{ "SAML",	cmd_unimplemented,	0 },
};

/*
 * One command line, without its CRLF.  Trailing SP and HT are dropped
 * (tolerated, as by every deployed server); control octets are refused.
 */
enum smtp_ev
smtp_cmd_line(struct smtp_session *s, const char *line, size_t len,
    struct smtp_event *ev)
{
	const struct smtp_cmd *c = NULL;
	size_t i, vlen;

	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	ev->arg = line;
	ev->arg_len = len;
	ev->cmd = "";
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];

		if (ch < 32 || ch == 127) {
			smtp_reply(s, 500, "5.5.2",
			    "Error: invalid character in command");
			return REJECT;
		}
	}
	if (len == 0) {
		smtp_reply(s, 500, "5.5.2", "Error: bad syntax");
		return REJECT;
	}
	if (smtp_is_http(line, len)) {
		/* A browser or proxy probe, or a cross-protocol attack: no
		 * SMTP reply to it, the session ends at once. */
		smtp_close(s, SMTP_REASON_HTTP);
		return SMTP_EV_NONE;
	}
	for (vlen = 0; vlen < len && line[vlen] != ' '; vlen++)
		;
	for (i = 0; i < sizeof(cmd_table) / sizeof(cmd_table[0]); i++) {
		if (smtp_ieq(line, vlen, cmd_table[i].name)) {
			c = &cmd_table[i];
			break;
		}
	}
	if (c != NULL)
		ev->cmd = c->name;
	/* RFC 5321 4.5.3.1.4: 512 octets, MAIL and RCPT get more room. */
	if (len + 2 > s->cfg->limits.cmd_line && (c == NULL ||
	    (strcmp(c->name, "MAIL") != 0 && strcmp(c->name, "RCPT") != 0)))
		return smtp_cmd_too_long(s, ev);
	if (s->cfg->hook_commands && !s->hooked) {
		/* The caller may answer it instead (a harness's fault). */
		s->hook_cmd = c != NULL ? c->name : "";
		s->wait = WAIT_CMD;
		return SMTP_EV_COMMAND;
	}
	s->hooked = false;
	if (s->refused && (c == NULL || strcmp(c->name, "QUIT") != 0)) {
		/* RFC 5321 3.1: after a 554 greeting, 503 to all but QUIT. */
		smtp_reply(s, 503, "5.5.1", "Error: no SMTP service here");
		return REJECT;
	}
	if (c == NULL) {
		smtp_reply(s, 500, "5.5.1", "Error: command unrecognized");
		return REJECT;
	}
	if (s->cfg->tls_required && !s->tls_active &&
	    !(c->flags & CMD_PRE_TLS)) {
		smtp_reply(s, 530, "5.7.0",
		    "Must issue a STARTTLS command first");
		return REJECT;
	}
	return c->fn(s, line + vlen, len - vlen, ev);
}

enum smtp_ev
smtp_cmd_too_long(struct smtp_session *s, struct smtp_event *ev)
{
	smtp_reply(s, 500, "5.5.2", "Error: line too long");
	return REJECT;
}

enum smtp_ev
smtp_cmd_flood(struct smtp_session *s, struct smtp_event *ev)
{
	s->cmd_skip = false;
	s->in_off = s->in_len;
	smtp_flood(s, 500, "5.5.2", "Error: line too long",
	    "no line end in the command");
	return REJECT;
}

bool
smtp_is_http(const char *line, size_t len)
{
	static const char *const methods[] = { "GET", "POST", "HEAD", "PUT",
	    "CONNECT", "OPTIONS", "DELETE", "PATCH", "TRACE", "PRI", NULL };
	size_t i, v;

	for (v = 0; v < len && line[v] != ' '; v++)
		;
	for (i = 0; methods[i] != NULL; i++)
		if (v == strlen(methods[i]) &&
		    memcmp(line, methods[i], v) == 0)
			break;
	if (methods[i] == NULL)
		return false;
	/* "METHOD target HTTP/x.y": the version ends the line. */
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	return len >= v + 10 && memcmp(line + len - 8, "HTTP/", 5) == 0;
}

enum smtp_ev
smtp_cmd_bare_newline(struct smtp_session *s, struct smtp_event *ev)
{
	/* RFC 5321 2.3.8: lines end in CRLF; a bare LF is refused. */
	smtp_reply(s, 500, "5.5.2", "Error: bare <LF> received");
	return REJECT;
}
