/*
 * smtp_proxy.c - the PROXY protocol header, versions 1 and 2 (HAProxy's
 * proxy-protocol.txt), judged on the bytes seen so far.
 *
 * Stateless on purpose: smtp_proxy_parse() looks at the whole prefix
 * each time.  A header is at most SMTP_PROXY_MAX octets, so reparsing
 * costs nothing that matters, and "any split gives the same verdict"
 * holds by construction instead of by a resumable state machine.
 *
 * Strictness.  Version 1 (section 2.1): "PROXY" SP protocol, then for
 * TCP4/TCP6 exactly four fields separated by single spaces, addresses
 * in their canonical text form (dotted quad without leading zeros, or
 * what inet_pton takes for IPv6), ports 0-65535 without leading zeros,
 * CRLF.  After "UNKNOWN" anything but CR and LF is ignored up to the
 * CRLF, as the specification requires.  Version 2 (section 2.2): the
 * 12-octet signature, version 2, command LOCAL or PROXY; for PROXY over
 * AF_INET/AF_INET6 with SOCK_STREAM the address block must be long
 * enough and the TLVs after it must tile the rest exactly (each one's
 * length inside the header): they are walked and skipped, never
 * trusted.  AF_UNSPEC and AF_UNIX are taken as UNKNOWN (the client is
 * not named); SOCK_DGRAM and undefined values are errors, since SMTP
 * does not run over datagrams.  LOCAL skips its block unread.
 *
 * Rejected: accepting v1 with several spaces or a bare LF, as some
 * parsers do.  A proxy that we trust sends the exact form; anything
 * else is not from it.
 */
#include <arpa/inet.h>
#include <string.h>

#include "smtp_proxy.h"

static const unsigned char v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};
static const char v1_sig[6] = "PROXY ";

static enum smtp_proxy_status
fail(struct smtp_proxy_header *h, const char *why)
{
	h->error = why;
	return SMTP_PROXY_ERROR;
}

/* Does buf[0..len) match the start of sig (as far as both go)? */
static bool
prefix_ok(const unsigned char *buf, size_t len, const void *sig,
    size_t siglen)
{
	return memcmp(buf, sig, len < siglen ? len : siglen) == 0;
}

/* ---- version 1 -------------------------------------------------------- */

/* A decimal 0..max, no sign, no leading zero. */
static bool
v1_number(const char *s, size_t n, unsigned max, unsigned *out)
{
	unsigned v = 0;
	size_t i;

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

static bool
v1_ipv4(const char *s, size_t n, unsigned char out[4])
{
	size_t i, start = 0, part = 0;
	unsigned v;

	for (i = 0; i <= n; i++) {
		if (i < n && s[i] != '.')
			continue;
		if (part == 4 || i - start > 3 ||
		    !v1_number(s + start, i - start, 255, &v))
			return false;
		out[part++] = (unsigned char)v;
		start = i + 1;
	}
	return part == 4;
}

static bool
v1_ipv6(const char *s, size_t n, unsigned char out[16])
{
	char tmp[48];
	size_t i;

	if (n == 0 || n >= sizeof(tmp))
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f') ||
		    (s[i] >= 'A' && s[i] <= 'F') || s[i] == ':' || s[i] == '.'))
			return false;
	memcpy(tmp, s, n);
	tmp[n] = 0;
	return inet_pton(AF_INET6, tmp, out) == 1;
}

/* The next field up to a single SP or the end; false if empty. */
static bool
v1_field(const char **p, const char *end, const char **f, size_t *n)
{
	const char *sp = memchr(*p, ' ', (size_t)(end - *p));

	*f = *p;
	*n = (size_t)((sp != NULL ? sp : end) - *p);
	*p = sp != NULL ? sp + 1 : end;
	return *n > 0 && !(sp != NULL && sp + 1 == end);
}

static enum smtp_proxy_status
parse_v1(const unsigned char *buf, size_t len, struct smtp_proxy_header *h)
{
	const char *p, *end, *f[5];
	size_t n[5], i, scan = len < SMTP_PROXY_V1_MAX ? len :
	    SMTP_PROXY_V1_MAX;
	const unsigned char *lf = NULL;
	unsigned sport, dport;
	bool v6;

	if (!prefix_ok(buf, len, v1_sig, sizeof(v1_sig)))
		return fail(h, "not a PROXY header (expected \"PROXY \")");
	/*
	 * A CR must be the one before LF; LF must follow a CR.  Only the
	 * first SMTP_PROXY_V1_MAX octets are looked at, so that the verdict
	 * does not change with what follows them (a CR at the last place
	 * is judged "oversized" whatever comes next).
	 */
	for (i = 0; i < scan; i++) {
		if (buf[i] == '\n') {
			if (i == 0 || buf[i - 1] != '\r')
				return fail(h, "malformed v1 header: LF "
				    "without CR");
			lf = buf + i;
			break;
		}
		if (buf[i] == '\r' && i + 1 < scan && buf[i + 1] != '\n')
			return fail(h, "malformed v1 header: CR without LF");
	}
	if (lf == NULL) {
		if (len >= SMTP_PROXY_V1_MAX)
			return fail(h, "oversized v1 header (no CRLF within "
			    "107 octets)");
		return SMTP_PROXY_NEED_MORE;
	}
	h->version = 1;
	h->len = (size_t)(lf - buf) + 1;
	p = (const char *)buf + sizeof(v1_sig);
	end = (const char *)lf - 1;		/* at the CR */
	if (end < p)
		return fail(h, "malformed v1 header: no protocol");
	if ((size_t)(end - p) >= 7 && memcmp(p, "UNKNOWN", 7) == 0 &&
	    (end - p == 7 || p[7] == ' ')) {
		h->kind = SMTP_PROXY_UNKNOWN;
		return SMTP_PROXY_DONE;
	}
	if ((size_t)(end - p) < 5 || (memcmp(p, "TCP4 ", 5) != 0 &&
	    memcmp(p, "TCP6 ", 5) != 0))
		return fail(h, "malformed v1 header: protocol is not TCP4, "
		    "TCP6 or UNKNOWN");
	v6 = p[3] == '6';
	p += 5;
	for (i = 0; i < 4; i++)
		if (p >= end || !v1_field(&p, end, &f[i], &n[i]))
			return fail(h, "malformed v1 header: expected four "
			    "fields after the protocol, one space apart");
	if (p != end)
		return fail(h, "malformed v1 header: more than four fields");
	h->kind = v6 ? SMTP_PROXY_TCP6 : SMTP_PROXY_TCP4;
	if (v6 ? !v1_ipv6(f[0], n[0], h->src) || !v1_ipv6(f[1], n[1], h->dst) :
	    !v1_ipv4(f[0], n[0], h->src) || !v1_ipv4(f[1], n[1], h->dst))
		return fail(h, v6 ? "malformed v1 header: bad IPv6 address" :
		    "malformed v1 header: bad IPv4 address");
	if (!v1_number(f[2], n[2], 65535, &sport) ||
	    !v1_number(f[3], n[3], 65535, &dport))
		return fail(h, "malformed v1 header: bad port");
	h->src_port = (uint16_t)sport;
	h->dst_port = (uint16_t)dport;
	return SMTP_PROXY_DONE;
}

/* ---- version 2 -------------------------------------------------------- */

static unsigned
be16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static enum smtp_proxy_status
parse_v2(const unsigned char *buf, size_t len, struct smtp_proxy_header *h)
{
	unsigned cmd, fam, proto, blen, need = 0;
	size_t total, off;

	if (!prefix_ok(buf, len, v2_sig, sizeof(v2_sig)))
		return fail(h, "not a PROXY header (bad v2 signature)");
	if (len < 16) {
		/* Judge what is there already: version, command. */
		if (len > 12 && (buf[12] >> 4) != 2)
			return fail(h, "malformed v2 header: version is not 2");
		if (len > 12 && (buf[12] & 0xf) > 1)
			return fail(h, "malformed v2 header: command is not "
			    "LOCAL or PROXY");
		return SMTP_PROXY_NEED_MORE;
	}
	if ((buf[12] >> 4) != 2)
		return fail(h, "malformed v2 header: version is not 2");
	cmd = buf[12] & 0xf;
	fam = buf[13] >> 4;
	proto = buf[13] & 0xf;
	blen = be16(buf + 14);
	if (cmd > 1)
		return fail(h, "malformed v2 header: command is not LOCAL or "
		    "PROXY");
	total = 16 + (size_t)blen;
	if (total > SMTP_PROXY_V2_MAX)
		return fail(h, "oversized v2 header (more than 536 octets)");
	h->version = 2;
	h->len = total;
	if (cmd == 0) {
		/* LOCAL: section 2.2 says to skip the block unread. */
		if (len < total)
			return SMTP_PROXY_NEED_MORE;
		h->kind = SMTP_PROXY_LOCAL;
		return SMTP_PROXY_DONE;
	}
	if (fam > 3 || proto > 2)
		return fail(h, "malformed v2 header: undefined address family "
		    "or transport");
	if (proto == 2)
		return fail(h, "malformed v2 header: datagram transport");
	if (fam == 1 || fam == 2) {
		if (proto != 1)
			return fail(h, "malformed v2 header: no transport for "
			    "an IP address");
		need = fam == 1 ? 12 : 36;
	} else if (fam == 3 && proto == 1) {
		need = 216;
	}
	if (blen < need)
		return fail(h, "malformed v2 header: address block too short");
	if (len < total)
		return SMTP_PROXY_NEED_MORE;
	if (fam != 1 && fam != 2) {
		h->kind = SMTP_PROXY_UNKNOWN;
		return SMTP_PROXY_DONE;
	}
	if (fam == 1) {
		h->kind = SMTP_PROXY_TCP4;
		memcpy(h->src, buf + 16, 4);
		memcpy(h->dst, buf + 20, 4);
		h->src_port = (uint16_t)be16(buf + 24);
		h->dst_port = (uint16_t)be16(buf + 26);
	} else {
		h->kind = SMTP_PROXY_TCP6;
		memcpy(h->src, buf + 16, 16);
		memcpy(h->dst, buf + 32, 16);
		h->src_port = (uint16_t)be16(buf + 48);
		h->dst_port = (uint16_t)be16(buf + 50);
	}
	/* TLVs (section 2.2.7): type, 16-bit length, value; skipped. */
	for (off = 16 + need; off < total; h->ntlv++) {
		if (total - off < 3 || be16(buf + off + 1) > total - off - 3)
			return fail(h, "malformed v2 header: a TLV runs past "
			    "the header");
		off += 3 + be16(buf + off + 1);
	}
	return SMTP_PROXY_DONE;
}

/* ---- entry points ----------------------------------------------------- */

enum smtp_proxy_status
smtp_proxy_parse(enum smtp_proxy_mode mode, const unsigned char *buf,
    size_t len, struct smtp_proxy_header *h)
{
	memset(h, 0, sizeof(*h));
	if (len == 0)
		return SMTP_PROXY_NEED_MORE;
	/* 'any': "PROXY" or the v2 signature's CR, section 2 ("detection"). */
	switch (mode) {
	case SMTP_PROXY_V1:
		if (buf[0] == v2_sig[0])
			return fail(h, "not a PROXY header (a v2 header where "
			    "v1 is expected)");
		return parse_v1(buf, len, h);
	case SMTP_PROXY_V2:
		if (buf[0] == (unsigned char)v1_sig[0])
			return fail(h, "not a PROXY header (a v1 header where "
			    "v2 is expected)");
		return parse_v2(buf, len, h);
	case SMTP_PROXY_ANY:
		if (buf[0] == v2_sig[0])
			return parse_v2(buf, len, h);
		return parse_v1(buf, len, h);
	case SMTP_PROXY_OFF:
		break;
	}
	return fail(h, "PROXY protocol is off");
}

void
smtp_proxy_init(struct smtp_proxy *p, enum smtp_proxy_mode mode)
{
	memset(p, 0, sizeof(*p));
	p->mode = mode;
	p->status = SMTP_PROXY_NEED_MORE;
}

size_t
smtp_proxy_room(const struct smtp_proxy *p)
{
	if (p->status != SMTP_PROXY_NEED_MORE)
		return 0;
	return sizeof(p->buf) - p->len;
}

size_t
smtp_proxy_feed(struct smtp_proxy *p, const void *buf, size_t len)
{
	size_t room = smtp_proxy_room(p);

	if (len > room)
		len = room;
	if (len == 0)
		return 0;
	memcpy(p->buf + p->len, buf, len);
	p->len += len;
	p->status = smtp_proxy_parse(p->mode, p->buf, p->len, &p->hdr);
	return len;
}

const unsigned char *
smtp_proxy_rest(const struct smtp_proxy *p, size_t *len)
{
	*len = 0;
	if (p->status != SMTP_PROXY_DONE || p->hdr.len >= p->len)
		return NULL;
	*len = p->len - p->hdr.len;
	return p->buf + p->hdr.len;
}

const char *
smtp_proxy_kind_name(enum smtp_proxy_kind k)
{
	switch (k) {
	case SMTP_PROXY_TCP4:		return "TCP4";
	case SMTP_PROXY_TCP6:		return "TCP6";
	case SMTP_PROXY_UNKNOWN:	return "UNKNOWN";
	case SMTP_PROXY_LOCAL:		return "LOCAL";
	}
	return "?";
}
