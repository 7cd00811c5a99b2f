/*
 * fuzz_proxy.c - the PROXY protocol header parser (proto/smtp_proxy.c).
 *
 * Input: one octet of setup, then the connection's first bytes.  Setup
 * bits 0-1: the mode (0 is taken as 'any', as OFF parses nothing);
 * bits 2-7: a seed for the chunk sizes.  The bytes are copied to a
 * block of their exact size, so that ASan sees a read past its end.
 * Invariants (abort() when broken):
 *   - the verdict on the whole input equals the verdict of struct
 *     smtp_proxy fed in chunks (sizes from the seed: 1 octet, up to 3,
 *     up to 17, or all), with the same header fields and error text, and
 *     the accumulator took exactly min(len, what it had room for);
 *   - a verdict is final: once a prefix is DONE or ERROR, every longer
 *     prefix gets the same verdict and header;
 *   - NEED_MORE only below SMTP_PROXY_MAX octets;
 *   - DONE: 0 < h.len <= the bytes given; v1 ends in CRLF within
 *     SMTP_PROXY_V1_MAX and starts "PROXY ", has no TLVs and is never
 *     LOCAL; v2 is at least 16 octets, within SMTP_PROXY_V2_MAX, starts
 *     with the signature and its length field says h.len - 16; the
 *     header cut at h.len parses to the same result and at h.len - 1 to
 *     NEED_MORE; rest() is exactly the bytes after h.len;
 *   - ERROR: the reason is one of the documented phrases.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "smtp_proxy.h"

static const unsigned char v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

static bool
same(enum smtp_proxy_status a, const struct smtp_proxy_header *x,
    enum smtp_proxy_status b, const struct smtp_proxy_header *y)
{
	if (a != b)
		return false;
	if (a == SMTP_PROXY_ERROR)
		return strcmp(x->error, y->error) == 0;
	if (a == SMTP_PROXY_NEED_MORE)
		return true;
	return x->len == y->len && x->version == y->version &&
	    x->kind == y->kind && memcmp(x->src, y->src, 16) == 0 &&
	    memcmp(x->dst, y->dst, 16) == 0 && x->src_port == y->src_port &&
	    x->dst_port == y->dst_port && x->ntlv == y->ntlv;
}

static bool
has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static void
check_done(enum smtp_proxy_mode mode, const uint8_t *b, size_t n,
    const struct smtp_proxy_header *h)
{
	struct smtp_proxy_header h2;

	CHECK(h->len > 0 && h->len <= n && h->len <= SMTP_PROXY_MAX);
	CHECK(h->error == NULL);
	if (h->version == 1) {
		CHECK(h->len <= SMTP_PROXY_V1_MAX && h->len >= 8);
		CHECK(memcmp(b, "PROXY ", 6) == 0);
		CHECK(b[h->len - 2] == '\r' && b[h->len - 1] == '\n');
		CHECK(h->ntlv == 0 && h->kind != SMTP_PROXY_LOCAL);
		CHECK(mode != SMTP_PROXY_V2);
	} else {
		CHECK(h->version == 2);
		CHECK(h->len >= 16 && memcmp(b, v2_sig, 12) == 0);
		CHECK(((size_t)b[14] << 8 | b[15]) == h->len - 16);
		CHECK(mode != SMTP_PROXY_V1);
	}
	CHECK(smtp_proxy_parse(mode, b, h->len, &h2) == SMTP_PROXY_DONE);
	CHECK(same(SMTP_PROXY_DONE, h, SMTP_PROXY_DONE, &h2));
	CHECK(smtp_proxy_parse(mode, b, h->len - 1, &h2) ==
	    SMTP_PROXY_NEED_MORE);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum smtp_proxy_mode mode;
	enum smtp_proxy_status st, st2, first = SMTP_PROXY_NEED_MORE;
	struct smtp_proxy_header h, h2, hfirst;
	struct smtp_proxy p;
	const unsigned char *rest;
	unsigned seed;
	uint8_t *b;
	size_t n, i, took, chunk, restlen, lim;

	if (size < 1)
		return 0;
	mode = (enum smtp_proxy_mode)(data[0] & 3);
	if (mode == SMTP_PROXY_OFF)
		mode = SMTP_PROXY_ANY;
	seed = data[0] >> 2;
	n = size - 1;
	b = fuzz_dup(data + 1, n);

	st = smtp_proxy_parse(mode, b, n, &h);
	switch (st) {
	case SMTP_PROXY_NEED_MORE:
		CHECK(n < SMTP_PROXY_MAX);
		break;
	case SMTP_PROXY_DONE:
		check_done(mode, b, n, &h);
		break;
	case SMTP_PROXY_ERROR:
		CHECK(h.error != NULL);
		CHECK(has_prefix(h.error, "malformed v1 header") ||
		    has_prefix(h.error, "malformed v2 header") ||
		    has_prefix(h.error, "not a PROXY header") ||
		    has_prefix(h.error, "oversized"));
		break;
	}

	/* The accumulator, in chunks. */
	smtp_proxy_init(&p, mode);
	for (i = 0, took = 0; i < n; i += chunk) {
		switch (seed & 3) {
		case 0:	chunk = 1; break;
		case 1:	chunk = 1 + (i + seed) % 3; break;
		case 2:	chunk = 1 + (i * 7 + seed) % 17; break;
		default: chunk = n; break;
		}
		if (chunk > n - i)
			chunk = n - i;
		took += smtp_proxy_feed(&p, b + i, chunk);
		if (p.status != SMTP_PROXY_NEED_MORE)
			break;
	}
	/* Parsing stopped where the verdict came: compare on what it has. */
	st2 = smtp_proxy_parse(mode, b, took, &h2);
	CHECK(same(p.status, &p.hdr, st2, &h2));
	CHECK(took == (n < SMTP_PROXY_MAX ? n : SMTP_PROXY_MAX) ||
	    p.status != SMTP_PROXY_NEED_MORE);
	/* Decided early or not, the whole input agrees (finality). */
	CHECK(same(p.status, &p.hdr, st, &h));
	rest = smtp_proxy_rest(&p, &restlen);
	if (p.status == SMTP_PROXY_DONE) {
		CHECK(restlen == took - p.hdr.len);
		CHECK(restlen == 0 || memcmp(rest, b + p.hdr.len, restlen) ==
		    0);
	} else {
		CHECK(rest == NULL && restlen == 0);
	}

	/* A verdict is final. */
	lim = n < SMTP_PROXY_MAX + 8 ? n : SMTP_PROXY_MAX + 8;
	for (i = 0; i <= lim; i++) {
		st2 = smtp_proxy_parse(mode, b, i, &h2);
		if (first != SMTP_PROXY_NEED_MORE)
			CHECK(same(first, &hfirst, st2, &h2));
		else if (st2 != SMTP_PROXY_NEED_MORE) {
			first = st2;
			hfirst = h2;
		}
		if (st2 == SMTP_PROXY_NEED_MORE)
			CHECK(i < SMTP_PROXY_MAX);
	}
	free(b);
	return 0;
}
