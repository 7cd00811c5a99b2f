/*
 * log.h - one line per event on stderr, logfmt or JSON.
 *
 * A line is built with log_begin(), then fields, then log_end():
 *
 *	2026-11-29T00:28:56.123Z a3f9c01b22e4 connect client=192.0.2.1:40022
 *	{"ts":"2026-11-29T00:28:56.123Z","level":"info",
 *	 "session":"a3f9c01b22e4","event":"connect","client":"192.0.2.1:40022"}
 *
 * Values from the client are escaped here (non-printable octets as \xHH,
 * quotes and backslashes escaped, the value quoted when it holds a space
 * or '='), so a client cannot forge a field or a line.  A field that does
 * not fit in LOG_LINE_MAX is left out whole and the line says
 * truncated=1 (or "truncated":true), so every line stays well-formed.
 */
#ifndef MXD_LOG_H
#define MXD_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level {
	LOG_ERROR = 0,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG,
};

enum log_format {
	LOG_LOGFMT = 0,
	LOG_JSON,
};

#define LOG_LINE_MAX	2048

struct logline {
	char		buf[LOG_LINE_MAX];
	size_t		len;
	bool		json;
	enum log_level	level;
	bool		skip;
	bool		truncated;
};

void	log_setup(enum log_level level, enum log_format format);
bool	log_enabled(enum log_level level);

/* sid may be NULL for lines that belong to no session ("-"). */
void	log_begin(struct logline *l, enum log_level level, const char *sid,
	    const char *event);
void	log_str(struct logline *l, const char *key, const char *val);
void	log_strn(struct logline *l, const char *key, const char *val,
	    size_t len);
void	log_int(struct logline *l, const char *key, long long val);
void	log_uint(struct logline *l, const char *key, unsigned long long val);
void	log_end(struct logline *l);

/* A whole line with one "msg" field, for start-up and fatal errors. */
void	log_msg(enum log_level level, const char *event, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

#endif
