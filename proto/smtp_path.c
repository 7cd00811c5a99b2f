/*
 * smtp_path.c - the grammar of paths, domains and ESMTP parameters.
 *
 * RFC 5321 4.1.2 (Path, Mailbox, Domain, address-literal), 4.1.3 (address
 * literals), RFC 5322 3.2.3 (atext), RFC 1869 section 6 / RFC 5321 4.1.2
 * (esmtp-keyword, esmtp-value).  Pure functions over (ptr, len): nothing
 * here allocates or keeps state, so they are fuzzed alone.
 *
 * Strictness: a path must be in angle brackets and follow the grammar;
 * there is no "strict RFC 821" switch to turn this off.  The one leniency
 * is in HELO/EHLO names, where '_' is accepted in labels (Windows host
 * names send it, and RFC 5321 4.1.4 says a server must not refuse a
 * session over the HELO name's form beyond syntax).
 */
#include <arpa/inet.h>
#include <string.h>

#include "smtp_int.h"

static bool
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Length of the well-formed UTF-8 sequence of a non-ASCII character at p
 * (RFC 3629 section 4: no overlong forms, no surrogates, at most
 * U+10FFFF), or 0.  RFC 6531 3.3: UTF8-non-ascii in paths.
 */
static size_t
utf8_seq(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len, i;

	if (n == 0 || p[0] < 0xc2 || p[0] > 0xf4)
		return 0;
	len = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if (p[0] == 0xe0 && p[1] < 0xa0)	/* overlong */
		return 0;
	if (p[0] == 0xed && p[1] > 0x9f)	/* surrogates */
		return 0;
	if (p[0] == 0xf0 && p[1] < 0x90)	/* overlong */
		return 0;
	if (p[0] == 0xf4 && p[1] > 0x8f)	/* above U+10FFFF */
		return 0;
	return len;
}

/* RFC 5322 3.2.3 atext */
static bool
is_atext(unsigned char c)
{
	if (is_alpha(c) || is_digit(c))
		return true;
	return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

bool
smtp_ieq(const char *a, size_t alen, const char *lit)
{
	size_t i;

	for (i = 0; i < alen; i++) {
		unsigned char x = (unsigned char)a[i];
		unsigned char y = (unsigned char)lit[i];

		if (y == 0)
			return false;
		if (x >= 'a' && x <= 'z')
			x -= 32;
		if (y >= 'a' && y <= 'z')
			y -= 32;
		if (x != y)
			return false;
	}
	return lit[alen] == 0;
}

/*
 * sub-domain = Let-dig [Ldh-str]; Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig
 * Labels are 1..63 octets (RFC 1035 2.3.4).
 */
static bool
valid_domain(const char *p, size_t len, bool underscore, bool utf8)
{
	size_t i, k, label = 0;
	unsigned char c, prev = '.';

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return false;
	for (i = 0; i < len; i++) {
		c = (unsigned char)p[i];
		if (c == '.') {
			if (label == 0 || prev == '-')
				return false;
			label = 0;
		} else if (is_alpha(c) || is_digit(c) ||
		    (underscore && c == '_')) {
			if (++label > 63)
				return false;
		} else if (c == '-') {
			if (label == 0)
				return false;
			label++;
		} else if (utf8 && c >= 0x80 &&
		    (k = utf8_seq(p + i, len - i)) > 0) {
			/* A U-label (RFC 6531 3.3); 63 octets at most. */
			label += k;
			if (label > 63)
				return false;
			i += k - 1;
			c = 'a';
		} else {
			return false;
		}
		prev = c;
	}
	return label > 0 && prev != '-';
}

bool
smtp_valid_domain(const char *p, size_t len)
{
	return valid_domain(p, len, false, false);
}

/*
 * address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
 *                         General-address-literal ) "]"
 */
bool
smtp_valid_address_literal(const char *p, size_t len)
{
	char buf[64];
	unsigned char addr[16];
	size_t i, tag;

	if (len < 3 || p[0] != '[' || p[len - 1] != ']')
		return false;
	p++;
	len -= 2;
	if (len >= sizeof(buf))
		return false;
	/* Printable ASCII only: inet_pton() below would stop at a NUL. */
	for (i = 0; i < len; i++)
		if ((unsigned char)p[i] < 33 || (unsigned char)p[i] > 126)
			return false;
	if (len > 5 && smtp_ieq(p, 5, "IPv6:")) {
		memcpy(buf, p + 5, len - 5);
		buf[len - 5] = 0;
		return inet_pton(AF_INET6, buf, addr) == 1;
	}
	if (is_digit((unsigned char)p[0])) {
		/* inet_pton(AF_INET) takes dotted quads only: no octal. */
		memcpy(buf, p, len);
		buf[len] = 0;
		return inet_pton(AF_INET, buf, addr) == 1;
	}
	/* General-address-literal = Standardized-tag ":" 1*dcontent */
	for (tag = 0; tag < len && p[tag] != ':'; tag++)
		;
	if (tag == 0 || tag >= len - 1 || !valid_domain(p, tag, false, false))
		return false;
	for (i = tag + 1; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c < 33 || c > 126 || c == '[' || c == '\\' || c == ']')
			return false;
	}
	return true;
}

bool
smtp_valid_helo(const char *p, size_t len)
{
	if (len > 0 && p[0] == '[')
		return smtp_valid_address_literal(p, len);
	return valid_domain(p, len, true, false);
}

/*
 * Local-part = Dot-string / Quoted-string.  Returns its length at p, or 0.
 */
static size_t
local_part(const char *p, size_t len, bool utf8)
{
	size_t i = 0, k;
	unsigned char c;

	if (len > 0 && p[0] == '"') {
		for (i = 1; i < len; i++) {
			c = (unsigned char)p[i];
			if (c == '"')
				return i + 1;
			if (c == '\\') {
				/* quoted-pairSMTP = %d92 %d32-126 */
				if (++i >= len)
					return 0;
				c = (unsigned char)p[i];
				if (c < 32 || c > 126)
					return 0;
			} else if (utf8 && c >= 0x80 &&
			    (k = utf8_seq(p + i, len - i)) > 0) {
				i += k - 1;
			} else if (c < 32 || c > 126) {
				/* qtextSMTP = %d32-33 / %d35-91 / %d93-126 */
				return 0;
			}
		}
		return 0;
	}
	/* Dot-string = Atom *("." Atom) */
	for (;;) {
		size_t start = i;

		while (i < len) {
			c = (unsigned char)p[i];
			if (is_atext(c))
				i++;
			else if (utf8 && c >= 0x80 &&
			    (k = utf8_seq(p + i, len - i)) > 0)
				i += k;
			else
				break;
		}
		if (i == start)
			return 0;
		if (i < len && p[i] == '.')
			i++;
		else
			return i;
	}
}

/* Domain / address-literal, up to the first octet that cannot belong. */
static size_t
domain_span(const char *p, size_t len, bool utf8)
{
	size_t i, k;

	if (len > 0 && p[0] == '[') {
		for (i = 1; i < len && p[i] != ']'; i++)
			;
		if (i == len || !smtp_valid_address_literal(p, i + 1))
			return 0;
		return i + 1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (utf8 && c >= 0x80 && (k = utf8_seq(p + i, len - i)) > 0) {
			i += k - 1;
			continue;
		}
		if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '.')
			break;
	}
	return valid_domain(p, i, false, utf8) ? i : 0;
}

enum smtp_path_err
smtp_parse_path(const char *buf, size_t len, unsigned flags,
    struct smtp_path *out, size_t *used)
{
	size_t i = 0, n, close;
	bool utf8 = (flags & SMTP_PATH_UTF8) != 0;

	memset(out, 0, sizeof(*out));
	if (len == 0 || buf[0] != '<')
		return SMTP_PATH_NO_BRACKETS;
	for (close = 1; close < len && buf[close] != '>'; close++) {
		/*
		 * A '>' inside an address literal (RFC 5321 4.1.3 dcontent
		 * allows it, and '"') is not the end either.
		 */
		if (buf[close] == '[' && close > 1 && buf[close - 1] == '@') {
			while (close < len && buf[close] != ']')
				close++;
			if (close == len)
				return SMTP_PATH_SYNTAX;
			continue;
		}
		/* A '>' inside a quoted local part is not the end. */
		if (buf[close] == '"') {
			for (close++; close < len && buf[close] != '"';
			    close++)
				if (buf[close] == '\\' && close + 1 < len)
					close++;
			if (close == len)
				return SMTP_PATH_SYNTAX;
		}
	}
	if (close == len)
		return SMTP_PATH_SYNTAX;
	if (close + 1 > SMTP_PATH_MAX)
		return SMTP_PATH_TOO_LONG;
	*used = close + 1;
	i = 1;

	if (close == 1) {
		if (!(flags & SMTP_PATH_NULL_OK))
			return SMTP_PATH_SYNTAX;
		out->addr = buf + 1;
		return SMTP_PATH_OK;
	}

	/* A-d-l ":" : a source route, accepted and ignored (RFC 5321 C). */
	if (buf[i] == '@') {
		for (;;) {
			if (buf[i] != '@')
				return SMTP_PATH_SYNTAX;
			i++;
			n = domain_span(buf + i, close - i, false);
			if (n == 0)
				return SMTP_PATH_SYNTAX;
			i += n;
			if (buf[i] == ',') {
				i++;
				continue;
			}
			if (buf[i] != ':')
				return SMTP_PATH_SYNTAX;
			i++;
			break;
		}
	}

	out->addr = buf + i;
	out->addr_len = close - i;
	for (n = i; n < close; n++)
		if ((unsigned char)buf[n] >= 0x80)
			out->utf8 = true;
	out->local = buf + i;
	n = local_part(buf + i, close - i, utf8);
	if (n == 0)
		return SMTP_PATH_SYNTAX;
	out->local_len = n;
	i += n;

	if (i == close) {
		/* RFC 5321 4.1.1.3: "<Postmaster>" with no domain. */
		if ((flags & SMTP_PATH_POSTMASTER) &&
		    smtp_ieq(out->local, n, "postmaster"))
			return SMTP_PATH_OK;
		return SMTP_PATH_SYNTAX;
	}
	if (buf[i] != '@')
		return SMTP_PATH_SYNTAX;
	if (n > SMTP_LOCAL_MAX)
		return SMTP_PATH_TOO_LONG;
	i++;
	out->domain = buf + i;
	out->domain_len = close - i;
	if (i == close || domain_span(buf + i, close - i, utf8) != close - i)
		return SMTP_PATH_SYNTAX;
	return SMTP_PATH_OK;
}

/*
 * Mail-parameters = esmtp-param *(SP esmtp-param)
 * esmtp-param     = esmtp-keyword ["=" esmtp-value]
 * esmtp-keyword   = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
 * esmtp-value     = 1*(%d33-60 / %d62-126)
 * One or more SP separate parameters; trailing SP were trimmed earlier.
 */
int
smtp_next_param(const char **pp, const char *end, struct smtp_param *out)
{
	const char *p = *pp;
	unsigned char c;

	if (p == end)
		return 0;
	if (*p != ' ')
		return -1;
	while (p < end && *p == ' ')
		p++;
	if (p == end)
		return 0;
	out->key = p;
	c = (unsigned char)*p;
	if (!is_alpha(c) && !is_digit(c))
		return -1;
	while (p < end && (is_alpha((unsigned char)*p) ||
	    is_digit((unsigned char)*p) || *p == '-'))
		p++;
	out->key_len = (size_t)(p - out->key);
	out->value = NULL;
	out->value_len = 0;
	if (p < end && *p == '=') {
		p++;
		out->value = p;
		while (p < end) {
			c = (unsigned char)*p;
			/* RFC 6531 3.3: esmtp-value =/ UTF8-non-ascii; each
			 * parameter checks its own value. */
			if (c < 33 || c == 127 || c == '=')
				break;
			p++;
		}
		out->value_len = (size_t)(p - out->value);
		if (out->value_len == 0)
			return -1;
	}
	if (p < end && *p != ' ')
		return -1;
	*pp = p;
	return 1;
}

static bool
is_upper_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/*
 * xtext (RFC 3461 4): printable ASCII but "+" and "=", and "+" followed
 * by two upper-case hex digits for any octet.
 */
bool
smtp_valid_xtext(const char *p, size_t n)
{
	return smtp_valid_xtext_utf8(p, n, false);
}

/* xtext, and with utf8 also UTF8-non-ascii (RFC 6533 3). */
bool
smtp_valid_xtext_utf8(const char *p, size_t n, bool utf8)
{
	size_t i, k;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (utf8 && c >= 0x80 && (k = utf8_seq(p + i, n - i)) > 0) {
			i += k - 1;
			continue;
		}
		if (c == '+') {
			if (n - i < 3 || !is_upper_hex(p[i + 1]) ||
			    !is_upper_hex(p[i + 2]))
				return false;
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return false;
		}
	}
	return true;
}
