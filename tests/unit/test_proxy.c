/*
 * test_proxy.c - proto/smtp_proxy.c: valid v1 and v2 headers at every
 * split, malformed and oversized ones, wrong signatures, TLVs.
 *
 * Each valid header is checked whole, cut in two at every position,
 * fed byte by byte through struct smtp_proxy, with every strict prefix
 * (NEED_MORE) and with the client's bytes after it (kept, in order).
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "smtp_proxy.h"

#define TAIL	"EHLO client.example\r\n"

struct valid {
	const char		*name;
	enum smtp_proxy_mode	 mode;
	const unsigned char	*bytes;
	size_t			 len;
	int			 version;
	enum smtp_proxy_kind	 kind;
	const char		*src, *dst;	/* text, or NULL */
	unsigned		 sport, dport;
	unsigned		 ntlv;
};

static const unsigned char v2_sig[12] = "\r\n\r\n\0\r\nQUIT\n";

/* A v2 header: signature, ver/cmd, fam, then body of blen octets. */
static size_t
v2(unsigned char *out, unsigned char vc, unsigned char fam,
    const unsigned char *body, size_t blen)
{
	memcpy(out, v2_sig, 12);
	out[12] = vc;
	out[13] = fam;
	out[14] = (unsigned char)(blen >> 8);
	out[15] = (unsigned char)blen;
	if (blen > 0)
		memcpy(out + 16, body, blen);
	return 16 + blen;
}

static void
addr_text(enum smtp_proxy_kind k, const unsigned char *a, char *buf,
    size_t len)
{
	if (k == SMTP_PROXY_TCP4)
		inet_ntop(AF_INET, a, buf, (socklen_t)len);
	else if (k == SMTP_PROXY_TCP6)
		inet_ntop(AF_INET6, a, buf, (socklen_t)len);
	else
		snprintf(buf, len, "-");
}

static void
check_header(const struct valid *v, const struct smtp_proxy_header *h,
    const char *how)
{
	char s[64], d[64];

	CHECK(h->len == v->len, "%s %s: len %zu, want %zu", v->name, how,
	    h->len, v->len);
	CHECK(h->version == v->version, "%s %s: version %d", v->name, how,
	    h->version);
	CHECK(h->kind == v->kind, "%s %s: kind %s", v->name, how,
	    smtp_proxy_kind_name(h->kind));
	CHECK(h->ntlv == v->ntlv, "%s %s: %u TLVs, want %u", v->name, how,
	    h->ntlv, v->ntlv);
	if (v->src == NULL)
		return;
	addr_text(h->kind, h->src, s, sizeof(s));
	addr_text(h->kind, h->dst, d, sizeof(d));
	CHECK(strcmp(s, v->src) == 0, "%s %s: src %s", v->name, how, s);
	CHECK(strcmp(d, v->dst) == 0, "%s %s: dst %s", v->name, how, d);
	CHECK(h->src_port == v->sport && h->dst_port == v->dport,
	    "%s %s: ports %u %u", v->name, how, h->src_port, h->dst_port);
}

static void
check_valid(const struct valid *v)
{
	struct smtp_proxy_header h;
	struct smtp_proxy p;
	unsigned char buf[SMTP_PROXY_MAX + 64];
	const unsigned char *rest;
	size_t i, cut, n, tl = strlen(TAIL), restlen;
	enum smtp_proxy_status st;
	char how[64];

	/* Whole, and under 'any' too. */
	st = smtp_proxy_parse(v->mode, v->bytes, v->len, &h);
	CHECK(st == SMTP_PROXY_DONE, "%s: whole: status %d (%s)", v->name, st,
	    h.error ? h.error : "");
	check_header(v, &h, "whole");
	st = smtp_proxy_parse(SMTP_PROXY_ANY, v->bytes, v->len, &h);
	CHECK(st == SMTP_PROXY_DONE, "%s: any: status %d", v->name, st);
	check_header(v, &h, "any");

	/* Every strict prefix: not yet decided. */
	for (i = 0; i < v->len; i++) {
		st = smtp_proxy_parse(v->mode, v->bytes, i, &h);
		CHECK(st == SMTP_PROXY_NEED_MORE, "%s: prefix %zu: status %d "
		    "(%s)", v->name, i, st, h.error ? h.error : "");
	}

	/* With the client's bytes behind it, cut in two everywhere. */
	memcpy(buf, v->bytes, v->len);
	memcpy(buf + v->len, TAIL, tl);
	n = v->len + tl;
	for (cut = 0; cut <= n; cut++) {
		smtp_proxy_init(&p, v->mode);
		i = smtp_proxy_feed(&p, buf, cut);
		i += smtp_proxy_feed(&p, buf + i, n - i);
		snprintf(how, sizeof(how), "cut at %zu", cut);
		/* Once done it takes no more: the caller keeps the rest. */
		CHECK(i == (cut >= v->len ? cut : n), "%s %s: took %zu of %zu",
		    v->name, how, i, n);
		CHECK(p.status == SMTP_PROXY_DONE, "%s %s: status %d",
		    v->name, how, p.status);
		check_header(v, &p.hdr, how);
		rest = smtp_proxy_rest(&p, &restlen);
		CHECK(restlen == i - v->len && (restlen == 0 ||
		    memcmp(rest, TAIL, restlen) == 0), "%s %s: rest %zu octets",
		    v->name, how, restlen);
		CHECK(smtp_proxy_room(&p) == 0, "%s %s: room after done",
		    v->name, how);
	}

	/* Byte by byte: DONE exactly at the last octet of the header. */
	smtp_proxy_init(&p, v->mode);
	for (i = 0; i < v->len; i++) {
		CHECK(p.status == SMTP_PROXY_NEED_MORE, "%s: byte %zu: "
		    "decided early", v->name, i);
		CHECK(smtp_proxy_feed(&p, v->bytes + i, 1) == 1, "%s: byte "
		    "%zu not taken", v->name, i);
	}
	CHECK(p.status == SMTP_PROXY_DONE, "%s: bytewise: status %d", v->name,
	    p.status);
	check_header(v, &p.hdr, "bytewise");
	rest = smtp_proxy_rest(&p, &restlen);
	CHECK(rest == NULL && restlen == 0, "%s: bytewise: rest", v->name);
	CHECK(smtp_proxy_feed(&p, "X", 1) == 0, "%s: took more after done",
	    v->name);
}

static void
test_valid(void)
{
	static const unsigned char in4[] = { 192, 0, 2, 7, 198, 51, 100, 25,
	    0xd4, 0x31, 0x00, 0x19 };
	unsigned char in6[36], tlv4[12 + 3 * 3 + 8], h4[64], h6[64], hl[64],
	    ht[64], hu[64], hlt[64];
	size_t n4, n6, nl, nt, nu, nlt;
	static const char *v1_4 = "PROXY TCP4 192.0.2.7 198.51.100.25 54321 "
	    "25\r\n";
	static const char *v1_6 = "PROXY TCP6 2001:db8::7 2001:db8::25 "
	    "65535 0\r\n";
	static const char *v1_u = "PROXY UNKNOWN\r\n";
	static const char *v1_ul = "PROXY UNKNOWN "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	size_t i;

	n4 = v2(h4, 0x21, 0x11, in4, sizeof(in4));
	memset(in6, 0, sizeof(in6));
	inet_pton(AF_INET6, "2001:db8::7", in6);
	inet_pton(AF_INET6, "2001:db8::25", in6 + 16);
	in6[32] = 0xff; in6[33] = 0xff; in6[34] = 0; in6[35] = 25;
	n6 = v2(h6, 0x21, 0x21, in6, sizeof(in6));
	/* LOCAL with an address block, which must be skipped unread. */
	nl = v2(hl, 0x20, 0x11, in4, sizeof(in4));
	/* TCP4 with three TLVs: ALPN "smtp", a NOOP of 4 octets, one of 0. */
	memcpy(tlv4, in4, 12);
	i = 12;
	tlv4[i++] = 0x01; tlv4[i++] = 0; tlv4[i++] = 4;
	memcpy(tlv4 + i, "smtp", 4); i += 4;
	tlv4[i++] = 0x04; tlv4[i++] = 0; tlv4[i++] = 4;
	memcpy(tlv4 + i, "abcd", 4); i += 4;
	tlv4[i++] = 0x04; tlv4[i++] = 0; tlv4[i++] = 0;
	nt = v2(ht, 0x21, 0x11, tlv4, i);
	/* PROXY over AF_UNSPEC, empty block: UNKNOWN. */
	nu = v2(hu, 0x21, 0x00, NULL, 0);
	/* LOCAL, UNSPEC, empty: what HAProxy's health checks send. */
	nlt = v2(hlt, 0x20, 0x00, NULL, 0);

	const struct valid cases[] = {
		{ "v1 TCP4", SMTP_PROXY_V1, (const void *)v1_4, strlen(v1_4),
		    1, SMTP_PROXY_TCP4, "192.0.2.7", "198.51.100.25", 54321,
		    25, 0 },
		{ "v1 TCP6", SMTP_PROXY_V1, (const void *)v1_6, strlen(v1_6),
		    1, SMTP_PROXY_TCP6, "2001:db8::7", "2001:db8::25", 65535,
		    0, 0 },
		{ "v1 UNKNOWN", SMTP_PROXY_V1, (const void *)v1_u,
		    strlen(v1_u), 1, SMTP_PROXY_UNKNOWN, NULL, NULL, 0, 0, 0 },
		{ "v1 UNKNOWN long", SMTP_PROXY_V1, (const void *)v1_ul,
		    strlen(v1_ul), 1, SMTP_PROXY_UNKNOWN, NULL, NULL, 0, 0,
		    0 },
		{ "v2 TCP4", SMTP_PROXY_V2, h4, n4, 2, SMTP_PROXY_TCP4,
		    "192.0.2.7", "198.51.100.25", 54321, 25, 0 },
		{ "v2 TCP6", SMTP_PROXY_V2, h6, n6, 2, SMTP_PROXY_TCP6,
		    "2001:db8::7", "2001:db8::25", 65535, 25, 0 },
		{ "v2 LOCAL", SMTP_PROXY_V2, hl, nl, 2, SMTP_PROXY_LOCAL,
		    NULL, NULL, 0, 0, 0 },
		{ "v2 LOCAL empty", SMTP_PROXY_V2, hlt, nlt, 2,
		    SMTP_PROXY_LOCAL, NULL, NULL, 0, 0, 0 },
		{ "v2 TLVs", SMTP_PROXY_V2, ht, nt, 2, SMTP_PROXY_TCP4,
		    "192.0.2.7", "198.51.100.25", 54321, 25, 3 },
		{ "v2 UNSPEC", SMTP_PROXY_V2, hu, nu, 2, SMTP_PROXY_UNKNOWN,
		    NULL, NULL, 0, 0, 0 },
	};

	CHECK(strlen(v1_ul) == SMTP_PROXY_V1_MAX, "the longest v1 header is "
	    "%zu octets", strlen(v1_ul));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_valid(&cases[i]);
}

/* Refused whole, and fed byte by byte never DONE, ending in ERROR. */
static void
check_bad(const char *name, enum smtp_proxy_mode mode,
    const unsigned char *b, size_t n, const char *prefix)
{
	struct smtp_proxy_header h;
	struct smtp_proxy p;
	enum smtp_proxy_status st;
	size_t i;

	st = smtp_proxy_parse(mode, b, n, &h);
	CHECK(st == SMTP_PROXY_ERROR, "%s: status %d", name, st);
	CHECK(st != SMTP_PROXY_ERROR || (h.error != NULL &&
	    strncmp(h.error, prefix, strlen(prefix)) == 0), "%s: error '%s', "
	    "want '%s...'", name, h.error ? h.error : "(null)", prefix);
	smtp_proxy_init(&p, mode);
	for (i = 0; i < n && p.status == SMTP_PROXY_NEED_MORE; i++)
		smtp_proxy_feed(&p, b + i, 1);
	CHECK(p.status == SMTP_PROXY_ERROR, "%s: bytewise: status %d", name,
	    p.status);
	CHECK(smtp_proxy_room(&p) == 0, "%s: room after error", name);
}

/* Malformed v1 lines: name, mode, bytes, how the reason starts. */
struct bad {
	const char		*name;
	enum smtp_proxy_mode	 mode;
	const char		*bytes;
	size_t			 len;
	const char		*prefix;
};

static void
test_malformed_v1(void)
{
#define B(name, mode, lit, prefix) \
	{ name, mode, lit, sizeof(lit) - 1, prefix }
	static const struct bad cases[] = {
		B("lower case", SMTP_PROXY_V1,
		    "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		    "not a PROXY header"),
		B("smtp", SMTP_PROXY_V1,
		    "EHLO x\r\n",
		    "not a PROXY header"),
		B("http", SMTP_PROXY_ANY,
		    "GET / HTTP/1.0\r\n",
		    "not a PROXY header"),
		B("bare LF", SMTP_PROXY_V1,
		    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
		    "malformed v1 header"),
		B("CR alone", SMTP_PROXY_V1,
		    "PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n",
		    "malformed v1 header"),
		B("TCP5", SMTP_PROXY_V1,
		    "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
		    "malformed v1 header"),
		B("no protocol", SMTP_PROXY_V1,
		    "PROXY \r\n",
		    "malformed v1 header"),
		B("UNKNOWNX", SMTP_PROXY_V1,
		    "PROXY UNKNOWNX\r\n",
		    "malformed v1 header"),
		B("two spaces", SMTP_PROXY_V1,
		    "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
		    "malformed v1 header"),
		B("three fields", SMTP_PROXY_V1,
		    "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
		    "malformed v1 header"),
		B("five fields", SMTP_PROXY_V1,
		    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
		    "malformed v1 header"),
		B("trailing space", SMTP_PROXY_V1,
		    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
		    "malformed v1 header"),
		B("octet 256", SMTP_PROXY_V1,
		    "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
		    "malformed v1 header: bad IPv4"),
		B("leading zero", SMTP_PROXY_V1,
		    "PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n",
		    "malformed v1 header: bad IPv4"),
		B("three octets", SMTP_PROXY_V1,
		    "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
		    "malformed v1 header: bad IPv4"),
		B("v6 in TCP4", SMTP_PROXY_V1,
		    "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
		    "malformed v1 header: bad IPv4"),
		B("v4 in TCP6", SMTP_PROXY_V1,
		    "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
		    "malformed v1 header: bad IPv6"),
		B("v6 scope", SMTP_PROXY_V1,
		    "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
		    "malformed v1 header: bad IPv6"),
		B("port 65536", SMTP_PROXY_V1,
		    "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
		    "malformed v1 header: bad port"),
		B("port sign", SMTP_PROXY_V1,
		    "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
		    "malformed v1 header: bad port"),
		B("port zero", SMTP_PROXY_V1,
		    "PROXY TCP4 1.2.3.4 5.6.7.8 025 2\r\n",
		    "malformed v1 header: bad port"),
		B("NUL in it", SMTP_PROXY_V1,
		    "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n",
		    "malformed v1 header"),
		B("v2 on v1", SMTP_PROXY_V1,
		    "\r\n\r\n\0\r\nQUIT\n\x21\x11\0\x0c",
		    "not a PROXY header"),
	};
	const enum smtp_proxy_mode m = SMTP_PROXY_V1;
	char longer[300];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_bad(cases[i].name, cases[i].mode,
		    (const unsigned char *)cases[i].bytes, cases[i].len,
		    cases[i].prefix);
#undef B
	/* 107 octets and no CRLF: over the limit. */
	memset(longer, 'A', sizeof(longer));
	memcpy(longer, "PROXY UNKNOWN ", 14);
	check_bad("oversized", m, (const unsigned char *)longer,
	    SMTP_PROXY_V1_MAX, "oversized v1 header");
	check_bad("oversized+", m, (const unsigned char *)longer,
	    sizeof(longer), "oversized v1 header");
	/* A CR as the 107th octet: judged on the first 107 alone (fuzz). */
	longer[SMTP_PROXY_V1_MAX - 1] = '\r';
	check_bad("CR at the limit", m, (const unsigned char *)longer,
	    sizeof(longer), "oversized v1 header");
}

static void
test_malformed_v2(void)
{
	const enum smtp_proxy_mode m = SMTP_PROXY_V2;
	unsigned char b[SMTP_PROXY_MAX + 32], body[SMTP_PROXY_MAX];
	static const unsigned char in4[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 0, 1,
	    0, 2 };
	/* Bad in the fixed part: version/command, family/transport, length. */
	static const struct {
		const char	*name;
		unsigned char	 vc, fam;
		size_t		 blen;
		const char	*prefix;
	} fixed[] = {
		{ "version 1", 0x11, 0x11, 12, "malformed v2 header: version" },
		{ "command 2", 0x22, 0x11, 12, "malformed v2 header: command" },
		{ "family 4", 0x21, 0x41, 12, "malformed v2 header: undefined" },
		{ "transport 3", 0x21, 0x13, 12,
		    "malformed v2 header: undefined" },
		{ "UDP", 0x21, 0x12, 12, "malformed v2 header: datagram" },
		{ "INET unspec", 0x21, 0x10, 12,
		    "malformed v2 header: no transport" },
		{ "short INET", 0x21, 0x11, 11,
		    "malformed v2 header: address block" },
	};
	size_t n, i;

	memset(body, 0, sizeof(body));
	memcpy(b, v2_sig, 12);
	b[3] = 'X';
	memset(b + 12, 0, 4);
	check_bad("bad signature", m, b, 16, "not a PROXY header");
	check_bad("v1 on v2", m, (const unsigned char *)"PROXY UNKNOWN\r\n",
	    15, "not a PROXY header");
	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		n = v2(b, fixed[i].vc, fixed[i].fam, in4, fixed[i].blen);
		check_bad(fixed[i].name, m, b, n, fixed[i].prefix);
	}
	n = v2(b, 0x11, 0x11, in4, 12);
	check_bad("version 1, 13 octets", m, b, 13, "malformed v2 header");
	/* Decided from the fixed part alone, before the block arrives. */
	check_bad("short INET6 early", m, (const unsigned char *)
	    "\r\n\r\n\0\r\nQUIT\n\x21\x21\0\x20", 16,
	    "malformed v2 header: address block");
	n = v2(b, 0x21, 0x31, body, 100);
	check_bad("short UNIX", m, b, n, "malformed v2 header: address block");
	/* TLVs: a length past the end; a lone type octet. */
	memcpy(body, in4, 12);
	body[12] = 0x04; body[13] = 0; body[14] = 5;
	n = v2(b, 0x21, 0x11, body, 12 + 3 + 4);
	check_bad("TLV overrun", m, b, n, "malformed v2 header: a TLV");
	n = v2(b, 0x21, 0x11, body, 12 + 1);
	check_bad("TLV cut", m, b, n, "malformed v2 header: a TLV");
	body[14] = 0xff; body[13] = 0xff;
	n = v2(b, 0x21, 0x11, body, 12 + 3 + 60);
	check_bad("TLV 64k", m, b, n, "malformed v2 header: a TLV");
	/* 536 is the limit: 520 of block is fine, 521 is not. */
	memset(body + 12, 0, sizeof(body) - 12);
	body[12] = 0x04;
	body[13] = (unsigned char)((520 - 15) >> 8);
	body[14] = (unsigned char)(520 - 15);
	n = v2(b, 0x21, 0x11, body, 520);
	{
		struct smtp_proxy_header h;

		CHECK(smtp_proxy_parse(m, b, n, &h) == SMTP_PROXY_DONE &&
		    h.len == SMTP_PROXY_V2_MAX && h.ntlv == 1,
		    "536 octets: %s", h.error ? h.error : "ok but wrong");
	}
	b[14] = (unsigned char)(521 >> 8);
	b[15] = (unsigned char)521;
	check_bad("oversized", m, b, 16, "oversized v2 header");
	b[14] = 0xff;
	b[15] = 0xff;
	check_bad("64k", m, b, 16, "oversized v2 header");
}

/* More than a header's worth of bytes is never taken. */
static void
test_room(void)
{
	struct smtp_proxy p;
	unsigned char big[SMTP_PROXY_MAX * 2];
	size_t rl;

	memset(big, ' ', sizeof(big));
	memcpy(big, "PROXY UNKNOWN\r\n", 15);
	smtp_proxy_init(&p, SMTP_PROXY_ANY);
	CHECK(smtp_proxy_feed(&p, big, sizeof(big)) == SMTP_PROXY_MAX,
	    "took more than SMTP_PROXY_MAX");
	CHECK(p.status == SMTP_PROXY_DONE, "status %d", p.status);
	CHECK(smtp_proxy_rest(&p, &rl) != NULL && rl == SMTP_PROXY_MAX - 15,
	    "rest %zu", rl);
	smtp_proxy_init(&p, SMTP_PROXY_ANY);
	CHECK(smtp_proxy_feed(&p, big, 0) == 0 &&
	    p.status == SMTP_PROXY_NEED_MORE, "empty feed decided");
	CHECK(smtp_proxy_room(&p) == SMTP_PROXY_MAX, "room %zu",
	    smtp_proxy_room(&p));
}

int
main(void)
{
	test_valid();
	test_malformed_v1();
	test_malformed_v2();
	test_room();
	if (failures != 0) {
		fprintf(stderr, "test_proxy: %d failure(s)\n", failures);
		return 1;
	}
	printf("test_proxy: ok\n");
	return 0;
}
