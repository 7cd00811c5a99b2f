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

static void
put(struct logline *l, const char *p, size_t n)
{
	/* Keep room for the closing "}\n". */
	if (l->len + n > sizeof(l->buf) - 3)
		n = sizeof(l->buf) - 3 - l->len;
	memcpy(l->buf + l->len, p, n);
	l->len += n;
}

static void
putc_(struct logline *l, char c)
{
	put(l, &c, 1);
}

/* Escaped value: logfmt quotes it when needed, JSON always does. */
static void
put_value(struct logline *l, const char *v, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	bool quote = l->json || n == 0;
	size_t i;

	for (i = 0; i < n && !quote; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 127)
			quote = true;
	}
	if (quote)
		putc_(l, '"');
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c == '"' || c == '\\') {
			putc_(l, '\\');
			putc_(l, (char)c);
		} else if (c < ' ' || c >= 127) {
			/* JSON has no \x: use \u00HH there. */
			if (l->json)
				put(l, "\\u00", 4);
			else
				put(l, "\\x", 2);
			putc_(l, hex[c >> 4]);
			putc_(l, hex[c & 15]);
		} else {
			putc_(l, (char)c);
		}
	}
	if (quote)
		putc_(l, '"');
}

static void
put_key(struct logline *l, const char *key)
{
	if (l->json) {
		put(l, ",\"", 2);
		put(l, key, strlen(key));
		put(l, "\":", 2);
	} else {
		putc_(l, ' ');
		put(l, key, strlen(key));
		putc_(l, '=');
	}
}

void
log_begin(struct logline *l, enum log_level level, const char *sid,
    const char *event)
{
	struct timeval tv;
	struct tm tm;
	char ts[40];
	size_t n;

	l->len = 0;
	l->level = level;
	l->skip = !log_enabled(level);
	l->json = cur_format == LOG_JSON;
	if (l->skip)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(tv.tv_usec / 1000));
	if (sid == NULL)
		sid = "-";
	if (l->json) {
		put(l, "{\"ts\":\"", 7);
		put(l, ts, strlen(ts));
		put(l, "\",\"level\":\"", 11);
		put(l, level_name[level], strlen(level_name[level]));
		put(l, "\",\"session\":\"", 13);
		put(l, sid, strlen(sid));
		put(l, "\",\"event\":\"", 11);
		put(l, event, strlen(event));
		putc_(l, '"');
	} else {
		put(l, ts, strlen(ts));
		putc_(l, ' ');
		put(l, sid, strlen(sid));
		putc_(l, ' ');
		put(l, event, strlen(event));
		if (level != LOG_INFO) {
			put(l, " level=", 7);
			put(l, level_name[level], strlen(level_name[level]));
		}
	}
}

void
log_strn(struct logline *l, const char *key, const char *val, size_t len)
{
	if (l->skip)
		return;
	put_key(l, key);
	put_value(l, val, len);
}

void
log_str(struct logline *l, const char *key, const char *val)
{
	log_strn(l, key, val ? val : "", val ? strlen(val) : 0);
}

void
log_int(struct logline *l, const char *key, long long val)
{
	char tmp[32];

	if (l->skip)
		return;
	put_key(l, key);
	put(l, tmp, (size_t)snprintf(tmp, sizeof(tmp), "%lld", val));
}

void
log_uint(struct logline *l, const char *key, unsigned long long val)
{
	char tmp[32];

	if (l->skip)
		return;
	put_key(l, key);
	put(l, tmp, (size_t)snprintf(tmp, sizeof(tmp), "%llu", val));
}

void
log_end(struct logline *l)
{
	ssize_t r;

	if (l->skip)
		return;
	if (l->json)
		putc_(l, '}');
	l->buf[l->len++] = '\n';
	/* One write per line; a short write to stderr is not retried. */
	r = write(STDERR_FILENO, l->buf, l->len);
	(void)r;
}

void
log_msg(enum log_level level, const char *event, const char *fmt, ...)
{
	struct logline l;
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_begin(&l, level, NULL, event);
	log_str(&l, "msg", msg);
	log_end(&l);
}
