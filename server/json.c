/*
 * json.c - JSON strings from arbitrary octets.
 *
 * RFC 8259 7: '"' and '\' are escaped, and so are all control
 * characters (the short forms \b \f \n \r \t where they exist, else
 * \u00XX), including DEL and the C1 controls U+0080..U+009F, which JSON
 * would allow raw but which a reader should see.  Well-formed UTF-8
 * (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF)
 * is copied as it is.  Octets that are not well-formed UTF-8 become
 * U+FFFD, written as \ufffd, one for each maximal subpart of an
 * ill-formed sequence (Unicode 15, 3.9, "U+FFFD Substitution of Maximal
 * Subparts"), which is what Python's bytes.decode("utf-8", "replace")
 * and the WHATWG decoder do, so a reader that decodes the same bytes
 * the usual way gets the same text.
 *
 * Rejected: \u00XX for each bad octet.  It would read back as a Latin-1
 * character, indistinguishable from a real one (\u00e9 is "é"), so the
 * text would look valid and be wrong.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static bool
reserve(struct json_buf *b, size_t n)
{
	size_t cap;
	char *np;

	if (b->failed)
		return false;
	if (b->len + n <= b->cap)
		return true;
	cap = b->cap ? b->cap : 512;
	while (cap < b->len + n)
		cap *= 2;
	np = realloc(b->p, cap);
	if (np == NULL) {
		b->failed = true;
		return false;
	}
	b->p = np;
	b->cap = cap;
	return true;
}

void
json_raw(struct json_buf *b, const char *s, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

void
json_rawf(struct json_buf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		b->failed = true;	/* numbers and names only: cannot be */
		return;
	}
	json_raw(b, tmp, (size_t)n);
}

/*
 * The length of the well-formed UTF-8 sequence at s (2 to 4), or 0 with
 * *bad set to the length of the maximal subpart to replace (at least 1).
 * Table 3-7 of Unicode 15: the second octet's range depends on the first.
 */
static size_t
utf8_len(const unsigned char *s, size_t n, size_t *bad)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t need, k;

	if (c >= 0xc2 && c <= 0xdf)
		need = 1;
	else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		if (c == 0xe0)
			lo = 0xa0;	/* no overlong form */
		else if (c == 0xed)
			hi = 0x9f;	/* no surrogate */
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		if (c == 0xf0)
			lo = 0x90;	/* no overlong form */
		else if (c == 0xf4)
			hi = 0x8f;	/* nothing past U+10FFFF */
	} else {
		*bad = 1;		/* 80..c1, f5..ff: never a first octet */
		return 0;
	}
	for (k = 1; k <= need; k++) {
		if (k >= n || s[k] < lo || s[k] > hi) {
			*bad = k;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return need + 1;
}

void
json_str(struct json_buf *b, const char *str, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run, k, bad;
	char esc[6];

	json_raw(b, "\"", 1);
	while (i < n && !b->failed) {
		/* A run of octets that need nothing: copied at once. */
		for (run = i; run < n && s[run] >= 0x20 && s[run] < 0x7f &&
		    s[run] != '"' && s[run] != '\\'; run++)
			;
		json_raw(b, str + i, run - i);
		i = run;
		if (i == n)
			break;
		if (s[i] >= 0x80) {
			k = utf8_len(s + i, n - i, &bad);
			if (k == 0) {
				json_raw(b, "\\ufffd", 6);
				i += bad;
				continue;
			}
			/* U+0080..U+009F, the C1 controls: c2 80..c2 9f. */
			if (!(k == 2 && s[i] == 0xc2 && s[i + 1] < 0xa0)) {
				json_raw(b, str + i, k);
				i += k;
				continue;
			}
			i++;	/* escape the code point, s[i] */
		}
		esc[0] = '\\';
		switch (s[i]) {
		case '"':  esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[s[i] >> 4];
			esc[5] = hex[s[i] & 15];
			json_raw(b, esc, 6);
			i++;
			continue;
		}
		json_raw(b, esc, 2);
		i++;
	}
	json_raw(b, "\"", 1);
}

void
json_cstr(struct json_buf *b, const char *s)
{
	if (s == NULL)
		json_raw(b, "null", 4);
	else
		json_str(b, s, strlen(s));
}

void
json_buf_finish(struct json_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}
