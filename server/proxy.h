/*
 * proxy.h - the server's side of the PROXY protocol: which peers may
 * send a header (proxy_trusted), the listener's mode, the counters.
 *
 * proto/smtp_proxy.c parses the header; conn.c reads it before the
 * banner and then serves the session under the client's address.  This
 * file holds what config.c needs to parse and check the keys, so that
 * config.c only calls in.
 */
#ifndef MXD_PROXY_H
#define MXD_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#include "smtp_proxy.h"

/* One proxy_trusted entry: an IPv6 or v4-mapped prefix. */
struct proxy_cidr {
	unsigned char	addr[16];
	unsigned	bits;		/* 0..128; a v4 /n is 96 + n */
};

/* "off", "v1", "v2", "any" (also "no"/"yes" = off/any); -1 if none. */
int	proxy_mode_parse(const char *v);
const char *proxy_mode_name(int mode);

/*
 * Append the CIDRs of a list ("10.0.0.0/8, 192.0.2.1 ::1/128": commas
 * or blanks between them; no prefix length means the one address).
 * 0, or -1 with why; the list is unchanged on error.
 */
int	proxy_cidr_add(struct proxy_cidr **list, size_t *n, const char *v,
	    char *why, size_t whylen);

/* Is the 16-octet (v4-mapped or v6) address in one of the prefixes? */
bool	proxy_cidr_match(const struct proxy_cidr *list, size_t n,
	    const unsigned char key[16]);

#endif
