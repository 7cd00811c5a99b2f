/*
 * log.c - the line builder of log.h.  Writes each line with one write(2)
 * so that lines from worker processes never interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static enum log_level	cur_level = LOG_INFO;
static enum log_format	cur_format = LOG_LOGFMT;

static const char *level_name[] = { "error", "warn", "info", "debug" };

void
log_setup(enum log_level level, enum log_format format)
{
	cur_level = level;
	cur_format = format;
}

bool
log_enabled(enum log_level level)
{
	return level <= cur_level;
}

/* Room kept for the truncation mark and the line's end. */
#define LOG_RESERVE	24

/* A growing piece of a line: a field is built here, then kept whole. */
struct piece {
	char	*p;
	size_t	 len, cap;
	bool	 full;
};

static void
put(struct piece *b, const char *p, size_t n)
{
	if (b->full || b->len + n > b->cap) {
		b->full = true;
		return;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void
putc_(struct piece *b, char c)
{
	put(b, &c, 1);
}

/* Escaped value: logfmt quotes it when needed, JSON always does. */
static void
put_value(struct piece *b, bool json, const char *v, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	bool quote = json || n == 0;
	size_t i;

	for (i = 0; i < n && !quote; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 127)
			quote = true;
	}
	if (quote)
		putc_(b, '"');
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		size_t run;

		/* A run of plain octets goes in one copy. */
		for (run = i; run < n && (unsigned char)v[run] >= ' ' &&
		    (unsigned char)v[run] < 127 && v[run] != '"' &&
		    v[run] != '\\'; run++)
			;
		if (run > i) {
			put(b, v + i, run - i);
			i = run - 1;
		} else if (c == '"' || c == '\\') {
			putc_(b, '\\');
			putc_(b, (char)c);
		} else {
			/* JSON has no \x: use \u00HH there. */
			put(b, json ? "\\u00" : "\\x", json ? 4 : 2);
			putc_(b, hex[c >> 4]);
			putc_(b, hex[c & 15]);
		}
	}
	if (quote)
		putc_(b, '"');
}

static void
put_key(struct piece *b, bool json, const char *key)
{
	if (json) {
		put(b, ",\"", 2);
		put(b, key, strlen(key));
		put(b, "\":", 2);
	} else {
		putc_(b, ' ');
		put(b, key, strlen(key));
		putc_(b, '=');
	}
}

/* Append a finished field, or mark the line truncated if it does not fit. */
static void
add_field(struct logline *l, const struct piece *f)
{
	if (f->full || l->len + f->len > sizeof(l->buf) - LOG_RESERVE) {
		l->truncated = true;
		return;
	}
	memcpy(l->buf + l->len, f->p, f->len);
	l->len += f->len;
}

static struct piece
line_piece(struct logline *l)
{
	struct piece b = { l->buf, l->len, sizeof(l->buf) - LOG_RESERVE,
	    false };

	return b;
}

/* The current second, formatted, per thread. */
static _Thread_local time_t	ts_sec = -1;
static _Thread_local char	ts_second[32];
static _Thread_local size_t	ts_len;

void
log_begin(struct logline *l, enum log_level level, const char *sid,
    const char *event)
{
	struct timeval tv;
	struct tm tm;
	struct piece b;
	char ts[40];
	size_t n;
	unsigned ms;

	l->len = 0;
	l->level = level;
	l->truncated = false;
	l->skip = !log_enabled(level);
	l->json = cur_format == LOG_JSON;
	if (l->skip)
		return;
	gettimeofday(&tv, NULL);
	/* strftime once a second, not once a line: it was a hot spot. */
	if (tv.tv_sec != ts_sec) {
		gmtime_r(&tv.tv_sec, &tm);
		ts_len = strftime(ts_second, sizeof(ts_second),
		    "%Y-%m-%dT%H:%M:%S", &tm);
		ts_sec = tv.tv_sec;
	}
	memcpy(ts, ts_second, ts_len);
	n = ts_len;
	ms = (unsigned)(tv.tv_usec / 1000);
	ts[n++] = '.';
	ts[n++] = (char)('0' + ms / 100);
	ts[n++] = (char)('0' + ms / 10 % 10);
	ts[n++] = (char)('0' + ms % 10);
	ts[n++] = 'Z';
	ts[n] = 0;
	if (sid == NULL)
		sid = "-";
	b = line_piece(l);
	if (l->json) {
		put(&b, "{\"ts\":\"", 7);
		put(&b, ts, strlen(ts));
		put(&b, "\",\"level\":\"", 11);
		put(&b, level_name[level], strlen(level_name[level]));
		put(&b, "\",\"session\":\"", 13);
		put(&b, sid, strlen(sid));
		put(&b, "\",\"event\":\"", 11);
		put(&b, event, strlen(event));
		putc_(&b, '"');
	} else {
		put(&b, ts, strlen(ts));
		putc_(&b, ' ');
		put(&b, sid, strlen(sid));
		putc_(&b, ' ');
		put(&b, event, strlen(event));
		if (level != LOG_INFO) {
			put(&b, " level=", 7);
			put(&b, level_name[level], strlen(level_name[level]));
		}
	}
	l->len = b.len;
}

void
log_strn(struct logline *l, const char *key, const char *val, size_t len)
{
	char tmp[LOG_LINE_MAX];
	struct piece f = { tmp, 0, sizeof(tmp), false };

	if (l->skip)
		return;
	put_key(&f, l->json, key);
	put_value(&f, l->json, val, len);
	add_field(l, &f);
}

void
log_str(struct logline *l, const char *key, const char *val)
{
	log_strn(l, key, val ? val : "", val ? strlen(val) : 0);
}

static void
log_number(struct logline *l, const char *key, const char *digits)
{
	char tmp[128];
	struct piece f = { tmp, 0, sizeof(tmp), false };

	if (l->skip)
		return;
	put_key(&f, l->json, key);
	put(&f, digits, strlen(digits));
	add_field(l, &f);
}

/* Decimal digits of v, ending at end (NUL-terminated); the first. */
static char *
digits(char *end, unsigned long long v)
{
	*end = 0;
	do {
		*--end = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	return end;
}

void
log_int(struct logline *l, const char *key, long long val)
{
	char tmp[32], *p;

	p = digits(tmp + sizeof(tmp) - 1, val < 0 ?
	    0ULL - (unsigned long long)val : (unsigned long long)val);
	if (val < 0)
		*--p = '-';
	log_number(l, key, p);
}

void
log_uint(struct logline *l, const char *key, unsigned long long val)
{
	char tmp[32];

	log_number(l, key, digits(tmp + sizeof(tmp) - 1, val));
}

void
log_end(struct logline *l)
{
	static const char jmark[] = ",\"truncated\":true";
	static const char lmark[] = " truncated=1";
	ssize_t r;

	if (l->skip)
		return;
	/* LOG_RESERVE keeps room for the mark and the end. */
	if (l->truncated) {
		const char *m = l->json ? jmark : lmark;

		memcpy(l->buf + l->len, m, strlen(m));
		l->len += strlen(m);
	}
	if (l->json)
		l->buf[l->len++] = '}';
	l->buf[l->len++] = '\n';
	/* One write per line; a short write to stderr is not retried. */
	r = write(STDERR_FILENO, l->buf, l->len);
	(void)r;
}

void
log_msg(enum log_level level, const char *event, const char *fmt, ...)
{
	struct logline l;
	char msg[LOG_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_begin(&l, level, NULL, event);
	log_str(&l, "msg", msg);
	log_end(&l);
}
