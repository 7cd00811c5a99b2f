/*
 * fault.c - the fault rules of docs/harness.md: parse once, match often.
 *
 * A rule is a line of words:
 *
 *	[conn N[-[M]]] TARGET [~ PATTERN] [first N | every N] ACTION ...
 *
 * Parsing checks everything a rule could get wrong (an action its target
 * cannot take, a reply code out of range, an unknown alert) so that a
 * harness learns of its typo at start, not by a test that passes for the
 * wrong reason.
 */

#include "fault.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "tls.h"

/* A reply line is 512 octets with its code and CRLF (RFC 5321 4.5.3.1.5). */
#define REPLY_TEXT_MAX	480
/* Longer than any delay a test would wait for. */
#define DELAY_MAX	3600.0
/* ~ PATTERN is matched against at most this much of the argument. */
#define ARG_MAX		1024

static const char *const target_names[] = {
	[FT_GREETING] = "greeting",
	[FT_EHLO] = "ehlo",
	[FT_HELO] = "helo",
	[FT_MAIL] = "mail",
	[FT_RCPT] = "rcpt",
	[FT_DATA] = "data",
	[FT_EOM] = "eom",
	[FT_BDAT] = "bdat",
	[FT_RSET] = "rset",
	[FT_NOOP] = "noop",
	[FT_QUIT] = "quit",
	[FT_VRFY] = "vrfy",
	[FT_STARTTLS] = "starttls",
	[FT_TLS] = "tls",
};

#define NTARGETS	(sizeof(target_names) / sizeof(target_names[0]))

const char *
fault_target_name(enum fault_target t)
{
	if ((size_t)t >= NTARGETS)
		return "?";
	return target_names[t];
}

static int
target_by_name(const char *s)
{
	size_t i;

	for (i = 0; i < NTARGETS; i++)
		if (strcasecmp(s, target_names[i]) == 0)
			return (int)i;
	return -1;
}

int
fault_target_of(const char *verb)
{
	int t;

	if (verb == NULL || *verb == 0)
		return -1;
	t = target_by_name(verb);
	/* Not commands: they never come from proto's hook. */
	if (t == FT_GREETING || t == FT_EOM || t == FT_TLS)
		return -1;
	return t;
}

/* The words of a rule, split on blanks; word[i] points into buf. */
struct words {
	char	*buf;
	char	*word[64];
	size_t	 n;
	size_t	 i;		/* the next one to take */
	/* Where each word starts in the original text (for reply text). */
	size_t	 at[64];
};

static int
split(const char *text, struct words *w)
{
	char *p;

	memset(w, 0, sizeof(*w));
	if ((w->buf = strdup(text)) == NULL)
		return -1;
	p = w->buf;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == 0)
			break;
		if (w->n == sizeof(w->word) / sizeof(w->word[0])) {
			errno = E2BIG;
			return -1;
		}
		w->at[w->n] = (size_t)(p - w->buf);
		w->word[w->n++] = p;
		while (*p != 0 && *p != ' ' && *p != '\t')
			p++;
		if (*p != 0)
			*p++ = 0;
	}
	return 0;
}

static const char *
peek(const struct words *w)
{
	return w->i < w->n ? w->word[w->i] : NULL;
}

static const char *
take(struct words *w)
{
	return w->i < w->n ? w->word[w->i++] : NULL;
}

static bool
is(const char *word, const char *s)
{
	return word != NULL && strcasecmp(word, s) == 0;
}

static void fail(char *err, size_t errlen, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

static void
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* A count of 1 .. 10^9 (connections, "first N", "every N"). */
static int
number(const char *s, unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != 0 || v == 0 || v > 1000000000ULL)
		return -1;
	*out = v;
	return 0;
}

/* "N", "N-", "N-M". */
static int
conn_range(const char *s, struct fault_rule *r)
{
	char buf[32], *dash;
	unsigned long long lo, hi = 0;

	if (s == NULL || strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	if ((dash = strchr(buf, '-')) != NULL) {
		*dash = 0;
		if (dash[1] != 0 && number(dash + 1, &hi) != 0)
			return -1;
	}
	if (number(buf, &lo) != 0)
		return -1;
	if (dash == NULL)
		hi = lo;
	if (hi != 0 && hi < lo)
		return -1;
	r->conn_lo = lo;
	r->conn_hi = hi;
	return 0;
}

/* "reply CODE [X.Y.Z] TEXT": what proto's custom replies accept. */
static int
parse_reply(const char *text, struct words *w, struct fault_rule *r,
    char *err, size_t errlen)
{
	const char *code = take(w), *p;
	int cls;
	size_t len;

	if (code == NULL || strlen(code) != 3 || !isdigit((unsigned char)code[0])
	    || !isdigit((unsigned char)code[1]) ||
	    !isdigit((unsigned char)code[2])) {
		fail(err, errlen, "reply: expected a three-digit code");
		return -1;
	}
	r->code = atoi(code);
	cls = code[0] - '0';
	if (r->target == FT_GREETING) {
		/* RFC 5321 3.1 and 4.3.2: the only refusals of a greeting. */
		if (r->code != 421 && r->code != 554) {
			fail(err, errlen, "reply: a greeting may be refused "
			    "with 421 or 554, not %s", code);
			return -1;
		}
	} else if (cls != 2 && cls != 4 && cls != 5) {
		/* 3xx would leave the client waiting for a state we skip. */
		fail(err, errlen, "reply: code %s: expected 2xx, 4xx or 5xx",
		    code);
		return -1;
	} else if (code[1] > '5') {
		/* RFC 5321 4.2.1: the second digit is 0 to 5. */
		fail(err, errlen, "reply: code %s out of range", code);
		return -1;
	}
	p = peek(w);
	if (p != NULL && isdigit((unsigned char)p[0]) && p[1] == '.') {
		/* RFC 3463: class.subject.detail, class as the code's. */
		unsigned a, b, c;
		char tail;

		if (sscanf(p, "%u.%u.%u%c", &a, &b, &c, &tail) != 3 ||
		    strlen(p) >= sizeof(r->enh) || b > 999 || c > 999) {
			fail(err, errlen, "reply: enhanced code %s: expected "
			    "X.Y.Z", p);
			return -1;
		}
		if ((int)a != cls) {
			fail(err, errlen, "reply: enhanced code %s does not "
			    "match the class of %s (RFC 3463)", p, code);
			return -1;
		}
		strcpy(r->enh, p);
		take(w);
	}
	if (w->i < w->n) {
		/* The rest of the line as written, blanks and all. */
		p = text + w->at[w->i];
		w->i = w->n;
	} else
		p = "Fault injected";
	len = strlen(p);
	while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	if (len > REPLY_TEXT_MAX) {
		fail(err, errlen, "reply: text longer than %d octets",
		    REPLY_TEXT_MAX);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)p[i];

		if ((ch < 0x20 && ch != '\t') || ch > 0x7e) {
			fail(err, errlen, "reply: text must be printable "
			    "ASCII");
			return -1;
		}
	}
	if ((r->reply_text = strndup(p, len)) == NULL) {
		fail(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* "on client_hello", "after server_hello", "after handshake". */
static int
parse_step(struct words *w, struct fault_rule *r, bool handshake_ok,
    char *err, size_t errlen)
{
	const char *prep = peek(w), *what;

	r->step = TLS_STEP_CLIENT_HELLO;
	if (prep == NULL)
		return 0;
	take(w);
	what = take(w);
	if (is(prep, "on") && is(what, "client_hello"))
		return 0;
	if (is(prep, "after") && is(what, "server_hello")) {
		r->step = TLS_STEP_SERVER_HELLO;
		return 0;
	}
	if (handshake_ok && is(prep, "after") && is(what, "handshake")) {
		r->after_handshake = true;
		return 0;
	}
	fail(err, errlen, "expected \"on client_hello\", \"after "
	    "server_hello\"%s", handshake_ok ? " or \"after handshake\"" : "");
	return -1;
}

static int
parse_tls_action(const char *act, struct words *w, struct fault_rule *r,
    char *err, size_t errlen)
{
	const char *arg;

	if (is(act, "alert")) {
		r->action = FA_TLS_ALERT;
		arg = take(w);
		if (arg != NULL && isdigit((unsigned char)*arg) &&
		    strspn(arg, "0123456789") == strlen(arg) &&
		    strlen(arg) <= 3 && atoi(arg) <= 255)
			r->alert = atoi(arg);	/* any description */
		else if (arg == NULL ||
		    (r->alert = tls_alert_by_name(arg)) < 0) {
			fail(err, errlen, "alert: expected an alert name such "
			    "as handshake_failure, or 0 to 255, not \"%s\"",
			    arg != NULL ? arg : "");
			return -1;
		}
		return parse_step(w, r, false, err, errlen);
	}
	if (is(act, "close")) {
		r->action = FA_TLS_CLOSE;
		return parse_step(w, r, true, err, errlen);
	}
	if (is(act, "stall")) {
		r->action = FA_TLS_STALL;
		return 0;
	}
	if (is(act, "garbage")) {
		r->action = FA_TLS_GARBAGE;
		return 0;
	}
	if (is(act, "cert")) {
		r->action = FA_TLS_CERT;
		arg = take(w);
		if (is(arg, "expired"))
			r->cert = TLS_CERT_EXPIRED;
		else if (is(arg, "wrong_name"))
			r->cert = TLS_CERT_WRONG_NAME;
		else if (is(arg, "untrusted"))
			r->cert = TLS_CERT_UNTRUSTED;
		else {
			fail(err, errlen, "cert: expected expired, wrong_name "
			    "or untrusted");
			return -1;
		}
		return 0;
	}
	if (is(act, "max_version")) {
		r->action = FA_TLS_MAX_VERSION;
		arg = take(w);
		if (is(arg, "1.0"))
			r->version = TLS_V10;
		else if (is(arg, "1.1"))
			r->version = TLS_V11;
		else if (is(arg, "1.2"))
			r->version = TLS_V12;
		else {
			fail(err, errlen, "max_version: expected 1.0, 1.1 or "
			    "1.2");
			return -1;
		}
		return 0;
	}
	fail(err, errlen, "tls: unknown action \"%s\" (alert, close, stall, "
	    "garbage, cert, max_version)", act);
	return -1;
}

int
fault_parse(const char *text, struct fault_rule *r, char *err,
    size_t errlen)
{
	struct words w;
	const char *word, *act;
	unsigned long long n;
	int t, rc = -1;

	memset(r, 0, sizeof(*r));
	if (split(text, &w) != 0) {
		fail(err, errlen, errno == E2BIG ? "too many words" :
		    "out of memory");
		goto out;
	}
	if (is(peek(&w), "conn")) {
		take(&w);
		if (conn_range(take(&w), r) != 0) {
			fail(err, errlen, "conn: expected N, N-M or N- "
			    "(connections counted from 1)");
			goto out;
		}
	}
	word = take(&w);
	if (word == NULL || (t = target_by_name(word)) < 0) {
		fail(err, errlen, "expected a target (greeting, ehlo, helo, "
		    "mail, rcpt, data, eom, bdat, rset, noop, quit, vrfy, "
		    "starttls, tls), not \"%s\"", word != NULL ? word : "");
		goto out;
	}
	r->target = (enum fault_target)t;

	word = peek(&w);
	if (word != NULL && word[0] == '~') {
		/* "~ PATTERN" or "~PATTERN". */
		take(&w);
		if (word[1] == 0)
			word = take(&w);
		else
			word++;
		if (word == NULL || *word == 0) {
			fail(err, errlen, "~: expected a pattern");
			goto out;
		}
		if (r->target == FT_GREETING || r->target == FT_EOM ||
		    r->target == FT_TLS) {
			fail(err, errlen, "~: %s has no argument to match",
			    target_names[r->target]);
			goto out;
		}
		if ((r->pattern = strdup(word)) == NULL) {
			fail(err, errlen, "out of memory");
			goto out;
		}
	}

	if (is(peek(&w), "first") || is(peek(&w), "every")) {
		r->count = is(take(&w), "first") ? FC_FIRST : FC_EVERY;
		if (number(take(&w), &n) != 0) {
			fail(err, errlen, "%s: expected a number from 1",
			    r->count == FC_FIRST ? "first" : "every");
			goto out;
		}
		r->n = (unsigned)n;
	}

	if ((act = take(&w)) == NULL) {
		fail(err, errlen, "expected an action");
		goto out;
	}
	if (r->target == FT_TLS) {
		if (parse_tls_action(act, &w, r, err, errlen) != 0)
			goto out;
	} else if (is(act, "reply")) {
		r->action = FA_REPLY;
		if (parse_reply(text, &w, r, err, errlen) != 0)
			goto out;
	} else if (is(act, "delay")) {
		double d;

		r->action = FA_DELAY;
		word = take(&w);
		if (word == NULL || config_parse_duration(word, &d) != 0 ||
		    d <= 0 || d > DELAY_MAX) {
			fail(err, errlen, "delay: expected a duration (500ms, "
			    "2s) up to %.0fs", DELAY_MAX);
			goto out;
		}
		r->delay = d;
	} else if (is(act, "disconnect")) {
		r->action = FA_DISCONNECT;
	} else if (is(act, "hide") && r->target == FT_STARTTLS) {
		r->action = FA_HIDE;
		if (r->pattern != NULL || r->count != FC_ALWAYS) {
			/* Decided at connect, before any command. */
			fail(err, errlen, "hide: takes no ~ or count");
			goto out;
		}
	} else {
		fail(err, errlen, "%s: unknown action \"%s\" (reply, delay, "
		    "disconnect%s)", target_names[r->target], act,
		    r->target == FT_STARTTLS ? ", hide" : "");
		goto out;
	}
	if (w.i < w.n) {
		fail(err, errlen, "unexpected \"%s\" after the action",
		    w.word[w.i]);
		goto out;
	}
	if ((r->text = strdup(text)) == NULL) {
		fail(err, errlen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	free(w.buf);
	if (rc != 0)
		fault_free(r);
	return rc;
}

void
fault_free(struct fault_rule *r)
{
	if (r == NULL)
		return;
	free(r->text);
	free(r->pattern);
	free(r->reply_text);
	memset(r, 0, sizeof(*r));
}

static bool
pattern_matches(const char *pattern, const char *arg, size_t arglen)
{
	char buf[ARG_MAX + 1];

	if (arg == NULL || arglen > ARG_MAX)
		return false;
	memcpy(buf, arg, arglen);
	buf[arglen] = 0;
	/* A NUL inside the argument would cut it short: no match. */
	if (strlen(buf) != arglen)
		return false;
	return fnmatch(pattern, buf, FNM_CASEFOLD) == 0;
}

static bool
conn_in(const struct fault_rule *r, unsigned long long conn)
{
	return r->conn_lo == 0 || (conn >= r->conn_lo &&
	    (r->conn_hi == 0 || conn <= r->conn_hi));
}

const struct fault_rule *
fault_match(const struct fault_rule *rules, size_t n,
    unsigned long long *counters, unsigned long long conn,
    enum fault_target t, const char *arg, size_t arglen)
{
	const struct fault_rule *r;
	unsigned long long k;
	size_t i;

	for (i = 0; i < n; i++) {
		r = &rules[i];
		if (r->target != t || r->action == FA_HIDE)
			continue;
		if (!conn_in(r, conn))
			continue;
		if (r->pattern != NULL &&
		    !pattern_matches(r->pattern, arg, arglen))
			continue;
		/* Atomic: the counters are shared by worker processes. */
		k = __atomic_add_fetch(&counters[i], 1, __ATOMIC_RELAXED);
		if (r->count == FC_FIRST && k > r->n)
			continue;
		if (r->count == FC_EVERY && k % r->n != 0)
			continue;
		return r;
	}
	return NULL;
}

const struct fault_rule *
fault_hides_starttls(const struct fault_rule *rules, size_t n,
    unsigned long long conn)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (rules[i].action == FA_HIDE && conn_in(&rules[i], conn))
			return &rules[i];
	return NULL;
}

void
fault_command_arg(const char *line, size_t len, const char **arg,
    size_t *arglen)
{
	const char *p = line, *end = line + len, *lt, *gt;
	size_t vlen;

	while (p < end && *p != ' ')
		p++;
	vlen = (size_t)(p - line);
	if ((vlen == 4 && (strncasecmp(line, "MAIL", 4) == 0 ||
	    strncasecmp(line, "RCPT", 4) == 0))) {
		/* The path: from '<' to its '>', not one inside quotes. */
		lt = memchr(line, '<', len);
		if (lt != NULL) {
			bool quoted = false;

			for (gt = lt + 1; gt < end; gt++) {
				if (*gt == '\\' && quoted && gt + 1 < end)
					gt++;
				else if (*gt == '"')
					quoted = !quoted;
				else if (*gt == '>' && !quoted)
					break;
			}
			if (gt < end) {
				*arg = lt + 1;
				*arglen = (size_t)(gt - lt - 1);
				return;
			}
		}
	}
	while (p < end && *p == ' ')
		p++;
	while (end > p && end[-1] == ' ')
		end--;
	*arg = p;
	*arglen = (size_t)(end - p);
}
