/*
 * json.h - building a JSON text (RFC 8259) in a growing buffer.
 *
 * For the capture's metadata files: strings come from clients and may
 * hold any octet, so json_str() escapes whatever it is given and always
 * produces valid UTF-8 (see json.c for the rules).  The buffer grows
 * with malloc; a failure sets failed and later calls do nothing, so a
 * caller checks once at the end.
 */
#ifndef MXD_JSON_H
#define MXD_JSON_H

#include <stdbool.h>
#include <stddef.h>

struct json_buf {
	char	*p;		/* not NUL-terminated */
	size_t	 len, cap;
	bool	 failed;	/* out of memory */
};

/* Append n octets as they are (JSON punctuation, numbers). */
void	json_raw(struct json_buf *b, const char *s, size_t n);
void	json_rawf(struct json_buf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* A JSON string of s[0..n), quoted and escaped. */
void	json_str(struct json_buf *b, const char *s, size_t n);
/* A JSON string of the C string s, or null when s is NULL. */
void	json_cstr(struct json_buf *b, const char *s);
void	json_buf_finish(struct json_buf *b);	/* frees; b is empty again */

#endif
