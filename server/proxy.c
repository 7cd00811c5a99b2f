/*
 * proxy.c - proxy_protocol and proxy_trusted: parsing and matching.
 *
 * Addresses are kept as the 16 octets conn.c already uses for its
 * per-address tables (IPv6, or IPv4 mapped into ::ffff:0:0/96), so a v4
 * prefix /n is the mapped prefix /96+n and a client's address matches
 * whether it came on a v4 or a dual-stack socket.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy.h"

static const char *const mode_names[] = { "off", "v1", "v2", "any" };

int
proxy_mode_parse(const char *v)
{
	size_t i;

	for (i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
		if (strcasecmp(v, mode_names[i]) == 0)
			return (int)i;
	if (strcasecmp(v, "no") == 0)
		return SMTP_PROXY_OFF;
	if (strcasecmp(v, "yes") == 0)
		return SMTP_PROXY_ANY;
	return -1;
}

const char *
proxy_mode_name(int mode)
{
	if (mode < 0 || mode > SMTP_PROXY_ANY)
		return "?";
	return mode_names[mode];
}

/* One "ADDR" or "ADDR/LEN" of len octets. */
static int
cidr_one(const char *s, size_t len, struct proxy_cidr *out, char *why,
    size_t whylen)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0, 0xff, 0xff };
	char tmp[64], *slash, *end;
	unsigned long bits;
	bool v6;
	size_t i;

	if (len >= sizeof(tmp)) {
		snprintf(why, whylen, "'%.*s...' is too long for an address",
		    20, s);
		return -1;
	}
	memcpy(tmp, s, len);
	tmp[len] = 0;
	slash = strchr(tmp, '/');
	if (slash != NULL)
		*slash++ = 0;
	memset(out, 0, sizeof(*out));
	v6 = strchr(tmp, ':') != NULL;
	if (v6 ? inet_pton(AF_INET6, tmp, out->addr) != 1 :
	    inet_pton(AF_INET, tmp, out->addr + 12) != 1)
		goto bad;
	if (!v6)
		memcpy(out->addr, mapped, 12);
	bits = v6 ? 128 : 32;
	if (slash != NULL) {
		if (*slash < '0' || *slash > '9')
			goto bad;
		bits = strtoul(slash, &end, 10);
		if (*end != 0 || bits > (v6 ? 128UL : 32UL))
			goto bad;
	}
	out->bits = (unsigned)bits + (v6 ? 0 : 96);
	/* Host bits must be zero: "10.1.2.3/8" is most likely a typo. */
	for (i = out->bits; i < 128; i++)
		if (out->addr[i / 8] & (0x80 >> (i % 8))) {
			snprintf(why, whylen, "'%s/%lu' has bits set past the "
			    "prefix length", tmp, bits);
			return -1;
		}
	return 0;
bad:
	snprintf(why, whylen, "'%.*s' is not ADDR or ADDR/LEN (IPv4 or IPv6, "
	    "numeric)", (int)len, s);
	return -1;
}

int
proxy_cidr_add(struct proxy_cidr **list, size_t *n, const char *v,
    char *why, size_t whylen)
{
	const char *sep = ", \t";
	struct proxy_cidr one, *nl;
	size_t len, count = 0;
	const char *p;

	for (p = v + strspn(v, sep); *p != 0; p += len, p += strspn(p, sep)) {
		len = strcspn(p, sep);
		if (cidr_one(p, len, &one, why, whylen) != 0)
			return -1;
		count++;
	}
	if (count == 0) {
		snprintf(why, whylen, "empty list (give ADDR/LEN entries)");
		return -1;
	}
	nl = realloc(*list, (*n + count) * sizeof(*nl));
	if (nl == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	*list = nl;
	for (p = v + strspn(v, sep); *p != 0; p += len, p += strspn(p, sep)) {
		len = strcspn(p, sep);
		cidr_one(p, len, &nl[(*n)++], why, whylen);
	}
	return 0;
}

bool
proxy_cidr_match(const struct proxy_cidr *list, size_t n,
    const unsigned char key[16])
{
	size_t i;
	unsigned full, rest;

	for (i = 0; i < n; i++) {
		full = list[i].bits / 8;
		rest = list[i].bits % 8;
		if (memcmp(list[i].addr, key, full) != 0)
			continue;
		if (rest != 0 && ((list[i].addr[full] ^ key[full]) &
		    (0xff << (8 - rest)) & 0xff) != 0)
			continue;
		return true;
	}
	return false;
}
