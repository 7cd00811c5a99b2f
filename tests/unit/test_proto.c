/*
 * test_proto.c - replays C:/S: transcripts through proto.
 *
 * Each transcript is fed whole, line by line, byte by byte and in chunks
 * of pseudo-random sizes; every feeding must give exactly the expected
 * log.  The log holds the replies ("S: ..."), the stored bodies at each
 * end of data ("M: ..."), and a few events ("E: ...").
 *
 * Transcript lines:
 *   # ...            comment
 *   !KEY VALUE       settings (see apply_setting)
 *   C: text          client line; CRLF is added
 *   R: text          client bytes; nothing is added
 *   T:               the TLS handshake completes here
 *   S: / M: / E:     expected log lines
 * In C:, R: and M: text, \r \n \t \\ \0 and \xHH are escapes.
 *
 * The transcript's decisions: recipients in a "!deny" domain are refused
 * (550 5.7.1); "!store fail|nospace|unavailable|rejected" makes every
 * message result fail so; "!rejected CODE ENH" answers every message
 * with smtp_session_message_rejected().
 * Message ids are "id1", "id2", ... in each feeding.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp.h"

struct buf {
	char	*p;
	size_t	 len, cap;
};

static void
buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		if (b->p == NULL)
			abort();
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
buf_printf(struct buf *b, const char *fmt, ...)
{
	char tmp[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	buf_add(b, tmp, (size_t)n);
}

/* Printable form of bytes: the inverse of unescape() for the log. */
static void
buf_escaped(struct buf *b, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\\')
			buf_add(b, "\\\\", 2);
		else if (c == '\r')
			buf_add(b, "\\r", 2);
		else if (c == '\n')
			buf_add(b, "\\n", 2);
		else if (c == '\t')
			buf_add(b, "\\t", 2);
		else if (c < 32 || c >= 127)
			buf_printf(b, "\\x%02x", c);
		else
			buf_add(b, &p[i], 1);
	}
}

static size_t
unescape(const char *in, char *out)
{
	size_t n = 0;

	while (*in) {
		if (*in != '\\') {
			out[n++] = *in++;
			continue;
		}
		in++;
		switch (*in) {
		case 'r': out[n++] = '\r'; in++; break;
		case 'n': out[n++] = '\n'; in++; break;
		case 't': out[n++] = '\t'; in++; break;
		case '0': out[n++] = 0; in++; break;
		case '\\': out[n++] = '\\'; in++; break;
		case 'x': {
			char hex[3] = { in[1], in[2], 0 };

			out[n++] = (char)strtol(hex, NULL, 16);
			in += 3;
			break;
		}
		default:
			fprintf(stderr, "bad escape \\%c\n", *in);
			exit(2);
		}
	}
	return n;
}

struct transcript {
	const char		*name;
	struct smtp_config	 cfg;
	char			 deny[8][256];
	int			 ndeny;
	enum smtp_msg_result	 store;
	int			 greet;		/* 0: no greeting (pregreet) */
	/* Input segments, split at T: markers. */
	struct buf		 seg[8];
	int			 nseg;
	struct buf		 expect;
	/* for a long R: payload */
	char			 hostname[256];
	struct {
		char	 verb[16];
		int	 code;		/* 0: disconnect */
		char	 enh[16];
		char	 text[128];
	}			 hooks[8];
	int			 nhooks;
	int			 eom_code;	/* !eom: custom end of data */
	int			 rej_code;	/* !rejected */
	char			 rej_enh[16];
	char			 eom_enh[16], eom_text[128];
	int			 greet_code;	/* !greet: custom greeting */
	char			 greet_enh[16], greet_text[128];
};

enum mode { FEED_WHOLE, FEED_LINES, FEED_BYTES, FEED_RANDOM };
static const char *mode_name[] = { "whole", "lines", "bytes", "random" };

struct run {
	struct transcript	*t;
	struct smtp_session	*s;
	struct buf		 log;
	struct buf		 body;
	int			 msgs;
	int			 tls_wait;
	size_t			 discarded;
};

static void
drain(struct run *r)
{
	const char *p, *end, *nl;
	size_t len;

	p = smtp_session_output(r->s, &len);
	if (p == NULL)
		return;
	end = p + len;
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL || nl == p || nl[-1] != '\r') {
			buf_printf(&r->log, "BAD OUTPUT: ");
			buf_escaped(&r->log, p, (size_t)(end - p));
			buf_add(&r->log, "\n", 1);
			break;
		}
		buf_add(&r->log, "S: ", 3);
		buf_escaped(&r->log, p, (size_t)(nl - 1 - p));
		buf_add(&r->log, "\n", 1);
		p = nl + 1;
	}
	smtp_session_output_done(r->s, len);
}

static void
log_body(struct run *r)
{
	const char *p = r->body.p, *end = p + r->body.len, *e;

	while (p < end) {
		e = p;
		while (e + 1 < end && !(e[0] == '\r' && e[1] == '\n'))
			e++;
		buf_add(&r->log, "M: ", 3);
		if (e + 1 < end) {
			buf_escaped(&r->log, p, (size_t)(e - p));
			p = e + 2;
		} else {
			buf_escaped(&r->log, p, (size_t)(end - p));
			p = end;
		}
		buf_add(&r->log, "\n", 1);
	}
	r->body.len = 0;
}

/* !hook VERB disconnect | !hook VERB CODE ENH TEXT */
static void
command_hook(struct run *r, const struct smtp_event *ev)
{
	const struct transcript *t = r->t;
	int i;

	for (i = 0; i < t->nhooks; i++) {
		if (strcmp(t->hooks[i].verb, ev->cmd) != 0)
			continue;
		drain(r);
		buf_printf(&r->log, "E: HOOK %s\n", ev->cmd);
		if (t->hooks[i].code == 0)
			smtp_session_command_result(r->s, SMTP_CMD_DISCONNECT);
		else
			smtp_session_reply_custom(r->s, t->hooks[i].code,
			    t->hooks[i].enh, t->hooks[i].text);
		return;
	}
	smtp_session_command_result(r->s, SMTP_CMD_PROCEED);
}

static void
pump(struct run *r)
{
	struct smtp_event ev;
	enum smtp_ev t;
	char id[16];
	int i;

	for (;;) {
		drain(r);
		t = smtp_session_next(r->s, &ev);
		switch (t) {
		case SMTP_EV_NONE:
			drain(r);
			return;
		case SMTP_EV_RCPT: {
			enum smtp_rcpt_result res = SMTP_RCPT_OK;

			for (i = 0; i < r->t->ndeny; i++)
				if (ev.path.domain_len ==
				    strlen(r->t->deny[i]) &&
				    strncasecmp(ev.path.domain, r->t->deny[i],
				    ev.path.domain_len) == 0)
					res = SMTP_RCPT_RELAY_DENIED;
			smtp_session_rcpt_result(r->s, res);
			break;
		}
		case SMTP_EV_DATA:
			r->body.len = 0;
			break;
		case SMTP_EV_BODY:
			buf_add(&r->body, ev.data, ev.data_len);
			break;
		case SMTP_EV_DATA_END:
			if (ev.msg_size != r->body.len)
				buf_printf(&r->log, "E: SIZE MISMATCH %llu\n",
				    (unsigned long long)ev.msg_size);
			log_body(r);
			snprintf(id, sizeof(id), "id%d", ++r->msgs);
			if (r->t->rej_code != 0)
				smtp_session_message_rejected(r->s,
				    r->t->rej_code, r->t->rej_enh);
			else if (r->t->eom_code != 0)
				smtp_session_reply_custom(r->s, r->t->eom_code,
				    r->t->eom_enh, r->t->eom_text);
			else
				smtp_session_message_result(r->s,
				    r->t->store, id);
			break;
		case SMTP_EV_DATA_ABORT:
			drain(r);
			buf_printf(&r->log, "E: ABORT %s\n",
			    smtp_reason_name(ev.reason));
			r->body.len = 0;
			break;
		case SMTP_EV_STARTTLS:
			drain(r);
			buf_printf(&r->log, "E: STARTTLS\n");
			r->tls_wait = 1;
			r->discarded += ev.discarded;
			break;
		case SMTP_EV_CLOSE:
			drain(r);
			buf_printf(&r->log, "E: CLOSE %s\n",
			    smtp_reason_name(ev.reason));
			break;
		case SMTP_EV_REJECT:
			/* The reply is the record; check the event's copy. */
			if (ev.text_len < 5 || ev.code < 400)
				buf_printf(&r->log, "E: BAD REJECT %d\n",
				    ev.code);
			break;
		case SMTP_EV_MAIL:
			smtp_session_mail_result(r->s, SMTP_MAIL_OK);
			break;
		case SMTP_EV_COMMAND:
			command_hook(r, &ev);
			break;
		case SMTP_EV_HELO:
		case SMTP_EV_RSET:
			break;
		}
	}
}

static unsigned long rng_state;

static size_t
rng(size_t max)
{
	rng_state = rng_state * 6364136223846793005UL + 1442695040888963407UL;
	return (size_t)((rng_state >> 33) % max) + 1;
}

static size_t
chunk_len(enum mode m, const char *p, size_t left)
{
	const char *nl;

	switch (m) {
	case FEED_WHOLE:
		return left;
	case FEED_LINES:
		nl = memchr(p, '\n', left);
		return nl ? (size_t)(nl - p) + 1 : left;
	case FEED_BYTES:
		return 1;
	case FEED_RANDOM:
		return rng(left < 7 ? left : 7);
	}
	return left;
}

static void
feed_segment(struct run *r, enum mode m, const struct buf *seg)
{
	size_t off = 0, n, c, took;

	while (off < seg->len) {
		c = chunk_len(m, seg->p + off, seg->len - off);
		n = 0;
		while (n < c) {
			took = smtp_session_feed(r->s, seg->p + off + n, c - n);
			n += took;
			pump(r);
			if (took == 0) {
				/* Closing, or STARTTLS: the rest is dropped. */
				if (!smtp_session_closing(r->s) &&
				    !r->tls_wait)
					buf_printf(&r->log, "E: STUCK\n");
				break;
			}
		}
		if (n < c) {
			if (r->tls_wait)
				r->discarded += seg->len - off - n;
			return;
		}
		off += c;
	}
}

/* Print the first line where the log departs from the transcript. */
static void
report(const struct transcript *t, enum mode m, const char *want,
    const char *got)
{
	int line = 1;

	while (*want && *want == *got) {
		if (*want == '\n')
			line++;
		want++;
		got++;
	}
	while (*want != '\n' && want > t->expect.p && want[-1] != '\n')
		want--, got--;
	fprintf(stderr, "FAIL %s (%s feeding), log line %d\n"
	    "  expected: %.*s\n  got:      %.*s\n", t->name, mode_name[m],
	    line, (int)strcspn(want, "\n"), want, (int)strcspn(got, "\n"),
	    got);
}

static int
run_mode(struct transcript *t, enum mode m)
{
	struct run r;
	int i, ok;

	memset(&r, 0, sizeof(r));
	r.t = t;
	rng_state = 42;
	r.s = smtp_session_create(&t->cfg);
	if (r.s == NULL)
		abort();
	if (t->greet > 0 && t->greet_code != 0)
		smtp_session_greet_custom(r.s, t->greet_code, t->greet_enh,
		    t->greet_text);
	else if (t->greet > 0)
		smtp_session_greet(r.s);
	pump(&r);
	for (i = 0; i < t->nseg; i++) {
		if (i > 0) {
			/* T: the handshake finished. */
			if (r.discarded > 0)
				buf_printf(&r.log, "E: DISCARDED %zu\n",
				    r.discarded);
			r.discarded = 0;
			r.tls_wait = 0;
			buf_printf(&r.log, "E: TLS\n");
			smtp_session_tls_started(r.s);
			pump(&r);
		}
		feed_segment(&r, m, &t->seg[i]);
	}
	if (r.discarded > 0)
		buf_printf(&r.log, "E: DISCARDED %zu\n", r.discarded);
	if (t->greet < 0) {
		/* The delayed greeting's timer finds the client talked. */
		smtp_session_pregreet(r.s);
		pump(&r);
	}
	ok = r.log.len == t->expect.len &&
	    memcmp(r.log.p, t->expect.p, r.log.len) == 0;
	if (!ok)
		report(t, m, t->expect.p ? t->expect.p : "",
		    r.log.p ? r.log.p : "");
	smtp_session_destroy(r.s);
	free(r.log.p);
	free(r.body.p);
	return ok;
}

static void
apply_setting(struct transcript *t, const char *key, const char *val)
{
	struct smtp_limits *l = &t->cfg.limits;

	if (strcmp(key, "deny") == 0)
		snprintf(t->deny[t->ndeny++], sizeof(t->deny[0]), "%s", val);
	else if (strcmp(key, "store") == 0)
		t->store = strcmp(val, "nospace") == 0 ? SMTP_MSG_NOSPACE :
		    strcmp(val, "unavailable") == 0 ? SMTP_MSG_UNAVAILABLE :
		    strcmp(val, "rejected") == 0 ? SMTP_MSG_REJECTED :
		    SMTP_MSG_TEMPFAIL;
	else if (strcmp(key, "rejected") == 0) {
		if (sscanf(val, "%d %15s", &t->rej_code, t->rej_enh) != 2) {
			fprintf(stderr, "%s: bad !rejected\n", t->name);
			exit(2);
		}
	}
	else if (strcmp(key, "hostname") == 0) {
		snprintf(t->hostname, sizeof(t->hostname), "%s", val);
		t->cfg.hostname = t->hostname;
	} else if (strcmp(key, "max_recipients") == 0)
		l->rcpt_max = (unsigned)atoi(val);
	else if (strcmp(key, "max_message_size") == 0)
		l->message_size = strtoull(val, NULL, 10);
	else if (strcmp(key, "max_errors") == 0)
		l->errors_max = (unsigned)atoi(val);
	else if (strcmp(key, "max_text_line") == 0)
		l->text_line = (size_t)atoi(val);
	else if (strcmp(key, "bare_newline") == 0)
		t->cfg.bare_newline = strcmp(val, "normalize") == 0 ?
		    SMTP_BARE_NORMALIZE : SMTP_BARE_REJECT;
	else if (strcmp(key, "tls") == 0)
		t->cfg.tls_available = atoi(val) != 0;
	else if (strcmp(key, "require_tls") == 0)
		t->cfg.tls_required = atoi(val) != 0;
	else if (strcmp(key, "hook") == 0) {
		/* !hook VERB disconnect, or !hook VERB CODE ENH TEXT */
		char buf[256], *verb, *what, *enh, *txt;

		snprintf(buf, sizeof(buf), "%s", val);
		verb = strtok(buf, " ");
		what = strtok(NULL, " ");
		if (verb == NULL || what == NULL || t->nhooks == 8) {
			fprintf(stderr, "%s: bad !hook\n", t->name);
			exit(2);
		}
		t->cfg.hook_commands = true;
		snprintf(t->hooks[t->nhooks].verb,
		    sizeof(t->hooks[0].verb), "%s", verb);
		if (strcmp(what, "disconnect") != 0) {
			enh = strtok(NULL, " ");
			txt = strtok(NULL, "");
			t->hooks[t->nhooks].code = atoi(what);
			snprintf(t->hooks[t->nhooks].enh,
			    sizeof(t->hooks[0].enh), "%s", enh ? enh : "");
			snprintf(t->hooks[t->nhooks].text,
			    sizeof(t->hooks[0].text), "%s", txt ? txt : "");
		}
		t->nhooks++;
	} else if (strcmp(key, "eom") == 0 || strcmp(key, "greet") == 0) {
		/* !eom CODE ENH TEXT, !greet CODE ENH TEXT */
		bool eom = key[0] == 'e';
		int code = 0, n = 0;
		char enh[16];

		if (sscanf(val, "%d %15s %n", &code, enh, &n) < 2) {
			fprintf(stderr, "%s: bad !%s\n", t->name, key);
			exit(2);
		}
		if (eom) {
			t->eom_code = code;
			snprintf(t->eom_enh, sizeof(t->eom_enh), "%s", enh);
			snprintf(t->eom_text, sizeof(t->eom_text), "%s",
			    val + n);
		} else {
			t->greet_code = code;
			snprintf(t->greet_enh, sizeof(t->greet_enh), "%s",
			    enh);
			snprintf(t->greet_text, sizeof(t->greet_text), "%s",
			    val + n);
		}
	} else if (strcmp(key, "dsn") == 0)
		t->cfg.dsn = atoi(val) != 0;
	else if (strcmp(key, "max_messages") == 0)
		l->msgs_max = (unsigned)atoi(val);
	else if (strcmp(key, "pregreet") == 0)
		t->greet = -1;	/* no greeting; pregreet after the input */
	else if (strcmp(key, "repeat") == 0) {
		/* !repeat N TEXT: N copies of TEXT as client bytes */
		char *end, tmp[1024];
		long n = strtol(val, &end, 10);
		size_t len;

		len = unescape(end + 1, tmp);
		while (n-- > 0)
			buf_add(&t->seg[t->nseg - 1], tmp, len);
	} else {
		fprintf(stderr, "%s: unknown setting %s\n", t->name, key);
		exit(2);
	}
}

static int
load(struct transcript *t, const char *path)
{
	char line[8192], tmp[8192], *v;
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL) {
		perror(path);
		return -1;
	}
	memset(t, 0, sizeof(*t));
	t->name = path;
	smtp_config_init(&t->cfg);
	t->cfg.hostname = "mx.test";
	t->greet = 1;
	t->nseg = 1;
	while (fgets(line, sizeof(line), f) != NULL) {
		n = strlen(line);
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = 0;
		if (n == 0 || line[0] == '#')
			continue;
		if (line[0] == '!') {
			v = strchr(line, ' ');
			if (v != NULL)
				*v++ = 0;
			apply_setting(t, line + 1, v ? v : "");
			continue;
		}
		if (n < 2 || line[1] != ':') {
			fprintf(stderr, "%s: bad line: %s\n", path, line);
			exit(2);
		}
		v = line + 2;
		if (*v == ' ')
			v++;
		switch (line[0]) {
		case 'C':
			n = unescape(v, tmp);
			buf_add(&t->seg[t->nseg - 1], tmp, n);
			buf_add(&t->seg[t->nseg - 1], "\r\n", 2);
			break;
		case 'R':
			n = unescape(v, tmp);
			buf_add(&t->seg[t->nseg - 1], tmp, n);
			break;
		case 'T':
			t->nseg++;
			buf_add(&t->expect, "E: TLS\n", 7);
			break;
		case 'S':
		case 'E':
		case 'M':
			buf_add(&t->expect, line, 2);
			buf_add(&t->expect, " ", 1);
			buf_add(&t->expect, v, strlen(v));
			buf_add(&t->expect, "\n", 1);
			break;
		default:
			fprintf(stderr, "%s: bad line: %s\n", path, line);
			exit(2);
		}
	}
	fclose(f);
	return 0;
}

int
main(int argc, char **argv)
{
	struct transcript *t = malloc(sizeof(*t));
	int i, m, failed = 0, total = 0;

	for (i = 1; i < argc; i++) {
		if (load(t, argv[i]) != 0) {
			failed++;
			continue;
		}
		for (m = FEED_WHOLE; m <= FEED_RANDOM; m++) {
			total++;
			if (!run_mode(t, (enum mode)m))
				failed++;
		}
		for (m = 0; m < t->nseg; m++)
			free(t->seg[m].p);
		free(t->expect.p);
	}
	free(t);
	printf("%d of %d transcript runs passed\n", total - failed, total);
	return failed == 0 && total > 0 ? 0 : 1;
}
