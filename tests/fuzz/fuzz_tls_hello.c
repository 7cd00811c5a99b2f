/*
 * fuzz_tls_hello.c - the TLS record observer and ClientHello parser of
 * tls/tls_wire.c (pure code: no mbedTLS, no I/O).
 *
 * The input is a header, then the byte stream:
 *
 *   [0] bit 0     the receiving side (keep_hello, strict versions)
 *       bit 1     not handshaking from the start (the owner's flag)
 *       bits 2-4  k, the number of split points
 *   [1..2k]       split points, 16 bits each, big-endian, modulo the
 *                 stream length
 *
 * The stream is fed to one tls_stream whole and to another in pieces cut
 * at the split points.  Invariants (abort() when broken):
 *   - both streams end in the same state, and the same captured hello;
 *   - that state is what an independent reading of the framing gives
 *     (RFC 8446 5.1: type, version, 16-bit length, body): octets equal
 *     the input length, the counts of records and of non-alert records,
 *     where framing broke, the partial header or body left, the first
 *     alert (level and description, or "encrypted"), ChangeCipherSpec
 *     seen, and the hello: the body of a first handshake record, kept on
 *     the receiving side only, done once that record is whole;
 *   - tls_parse_client_hello, on the captured hello and directly on the
 *     input (after the header, and after a 5-octet record header): 0 with
 *     parsed set, or -1 with parsed clear; the same answer twice, and for
 *     the hello cut to its declared length; a parsed hello offers at
 *     least one suite, min_version <= max_version, a printable, ended
 *     SNI, at most 24 groups kept, and the match flags agree with what
 *     was kept;
 *   - tls_version_name and tls_alert_name return short strings.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "tls_wire.h"

/* Suites and groups a server might have: TLS 1.3, ECDHE-AES-GCM, ChaCha. */
static const int our_suites[] = {
	0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9,
	0xcca8, 0
};
static const uint16_t our_groups[] = { 29, 23, 24, 30 };
#define NGROUPS	(sizeof(our_groups) / sizeof(our_groups[0]))

/* ---- the reference reading of the framing ------------------------------ */

struct model {
	unsigned	 records, other_records;
	bool		 broken;
	unsigned	 hdr_len;	/* when not broken */
	size_t		 body_left;	/* when not broken */
	bool		 ccs_seen;
	bool		 alert_started, alert_done;
	int		 alert_level, alert_desc;
	const uint8_t	*hello;		/* NULL: none kept */
	size_t		 hello_len;
	bool		 hello_done;
};

static void
model_read(struct model *m, const uint8_t *p, size_t n, bool keep,
    bool handshaking)
{
	size_t off = 0, blen, avail;
	bool opaque = false;
	uint8_t type;

	memset(m, 0, sizeof(*m));
	m->alert_level = m->alert_desc = TLS_ALERT_NONE;
	for (;;) {
		if (n - off < 5) {
			m->hdr_len = (unsigned)(n - off);
			return;
		}
		type = p[off];
		blen = (size_t)p[off + 3] << 8 | p[off + 4];
		if (type < 20 || type > 24 || (keep && p[off + 1] != 3) ||
		    blen > 16384 + 2048) {
			m->broken = true;
			return;
		}
		if (!m->alert_started) {
			if (type == TLS_CT_ALERT) {
				m->alert_started = true;
				opaque = m->ccs_seen || blen != 2;
			} else if (type == TLS_CT_APPLICATION_DATA &&
			    handshaking && (blen == 19 || blen == 11)) {
				m->alert_started = true;
				opaque = true;
			}
		}
		avail = n - off - 5;
		if (keep && m->records == 0 && type == TLS_CT_HANDSHAKE &&
		    blen > 0) {
			m->hello = p + off + 5;
			m->hello_len = avail < blen ? avail : blen;
		}
		if (avail < blen) {
			m->hdr_len = 5;
			m->body_left = blen - avail;
			return;
		}
		m->records++;
		if (!(m->alert_started && !m->alert_done))
			m->other_records++;
		if (type == TLS_CT_CHANGE_CIPHER_SPEC)
			m->ccs_seen = true;
		if (m->alert_started && !m->alert_done) {
			m->alert_done = true;
			if (opaque) {
				m->alert_desc = TLS_ALERT_ENCRYPTED;
			} else {
				m->alert_level = p[off + 5];
				m->alert_desc = p[off + 6];
			}
		}
		if (m->hello != NULL)
			m->hello_done = true;
		off += 5 + blen;
	}
}

static void
check_model(const struct tls_stream *s, const struct model *m,
    const uint8_t *p, size_t n)
{
	CHECK(s->octets == n);
	if (n > 0)
		CHECK(s->first_octet == p[0]);
	CHECK(s->broken == m->broken);
	CHECK(s->records == m->records);
	CHECK(s->other_records == m->other_records);
	CHECK(s->other_records <= s->records);
	CHECK((uint64_t)s->records * 5 <= n);
	if (!m->broken) {
		CHECK(s->hdr_len == m->hdr_len);
		CHECK(s->body_left == m->body_left);
	}
	CHECK(s->ccs_seen == m->ccs_seen);
	CHECK(s->alert_started == m->alert_started);
	CHECK(s->alert_done == m->alert_done);
	CHECK(s->alert_level == m->alert_level);
	CHECK(s->alert_desc == m->alert_desc);
	CHECK((s->hello != NULL) == (m->hello != NULL));
	CHECK(s->hello_done == m->hello_done);
	if (m->hello != NULL) {
		CHECK(s->hello_len == m->hello_len);
		CHECK(memcmp(s->hello, m->hello, m->hello_len) == 0);
	} else {
		CHECK(s->hello_len == 0);
	}
}

/* Every field but the hello pointer. */
static void
check_same_stream(const struct tls_stream *a, const struct tls_stream *b)
{
	CHECK(memcmp(a->hdr, b->hdr, a->hdr_len) == 0);
	CHECK(a->hdr_len == b->hdr_len);
	CHECK(a->body_left == b->body_left);
	CHECK(a->type == b->type);
	CHECK(a->body_len == b->body_len);
	CHECK(a->octets == b->octets);
	CHECK(a->records == b->records);
	CHECK(a->other_records == b->other_records);
	CHECK(a->first_octet == b->first_octet);
	CHECK(a->broken == b->broken);
	CHECK(a->ccs_seen == b->ccs_seen);
	CHECK(a->alert_started == b->alert_started);
	CHECK(a->alert_done == b->alert_done);
	CHECK(a->alert_level == b->alert_level);
	CHECK(a->alert_desc == b->alert_desc);
	CHECK(a->alert_body_len == b->alert_body_len);
	CHECK(memcmp(a->alert_body, b->alert_body, a->alert_body_len) == 0);
	CHECK(a->alert_opaque == b->alert_opaque);
	CHECK((a->hello == NULL) == (b->hello == NULL));
	CHECK(a->hello_len == b->hello_len);
	CHECK(a->hello_done == b->hello_done);
	if (a->hello != NULL)
		CHECK(memcmp(a->hello, b->hello, a->hello_len) == 0);
}

/* ---- the ClientHello parser --------------------------------------------- */

static bool
ours_suite(unsigned cs)
{
	const int *s;

	for (s = our_suites; *s != 0; s++)
		if ((unsigned)*s == cs)
			return true;
	return false;
}

static bool
ours_group(unsigned g)
{
	size_t i;

	for (i = 0; i < NGROUPS; i++)
		if (our_groups[i] == g)
			return true;
	return false;
}

static void
check_names(const struct tls_hello_info *h)
{
	char buf[8];
	const char *s;

	s = tls_version_name(h->min_version, buf);
	CHECK(s != NULL && strlen(s) < 8);
	s = tls_version_name(h->max_version, buf);
	CHECK(s != NULL && strlen(s) < 8);
	s = tls_version_name(h->legacy_version, buf);
	CHECK(s != NULL && strlen(s) < 8);
}

static int
parse(const uint8_t *p, size_t n, struct tls_hello_info *info)
{
	uint8_t *copy = fuzz_dup(p, n);
	int r;

	r = tls_parse_client_hello(copy, n, our_suites, our_groups, NGROUPS,
	    info);
	free(copy);
	return r;
}

static void
check_parse(const uint8_t *p, size_t n, struct tls_hello_info *out)
{
	struct tls_hello_info a, b;
	size_t i, declared;
	bool m;
	int r;

	r = parse(p, n, &a);
	CHECK(r == 0 || r == -1);
	CHECK(a.parsed == (r == 0));
	CHECK(parse(p, n, &b) == r);
	CHECK(memcmp(&a, &b, sizeof(a)) == 0);
	if (out != NULL)
		*out = a;
	if (r != 0)
		return;

	CHECK(n >= 4 && p[0] == 1);
	declared = (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
	CHECK(declared + 4 <= n);
	CHECK(a.legacy_version == ((unsigned)p[4] << 8 | p[5]));
	/* What follows the message is not the parser's business. */
	CHECK(parse(p, declared + 4, &b) == 0);
	CHECK(memcmp(&a, &b, sizeof(a)) == 0);

	CHECK(a.nciphers >= 1);
	CHECK(a.min_version <= a.max_version);
	CHECK(a.ngroups <= 24);
	CHECK(memchr(a.sni, 0, sizeof(a.sni)) != NULL);
	for (i = 0; a.sni[i] != 0; i++)
		CHECK(a.sni[i] > 32 && a.sni[i] < 127);
	if (a.nciphers <= 4) {
		for (m = false, i = 0; i < a.nciphers; i++)
			m = m || ours_suite(a.ciphers[i]);
		CHECK(m == a.cipher_match);
	}
	if (!a.has_groups)
		CHECK(a.ngroups == 0 && !a.group_match);
	if (a.ngroups < 24) {
		for (m = false, i = 0; i < a.ngroups; i++)
			m = m || ours_group(a.groups[i]);
		CHECK(m == a.group_match);
	}
	check_names(&a);
}

/* ---- the target ------------------------------------------------------------ */

static int
cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tls_stream whole, split;
	struct tls_hello_info hw, hs;
	struct model m;
	size_t cuts[9], k, i, hdr, n, from;
	const uint8_t *p;
	bool keep, handshaking;
	const char *name;

	if (size < 1)
		return 0;
	keep = data[0] & 1;
	handshaking = !((data[0] >> 1) & 1);
	k = (data[0] >> 2) & 7;
	hdr = 1 + 2 * k;
	if (size < hdr)
		return 0;
	p = data + hdr;
	n = size - hdr;
	for (i = 0; i < k; i++)
		cuts[i] = ((size_t)data[1 + 2 * i] << 8 | data[2 + 2 * i]) %
		    (n + 1);
	cuts[k] = n;
	qsort(cuts, k + 1, sizeof(cuts[0]), cmp_size);

	tls_stream_init(&whole, keep);
	whole.handshaking = handshaking;
	tls_stream_feed(&whole, p, n);

	tls_stream_init(&split, keep);
	split.handshaking = handshaking;
	for (from = 0, i = 0; i <= k; i++) {
		/* Each piece in a block of its own: ASan sees overreads. */
		uint8_t *piece = fuzz_dup(p + from, cuts[i] - from);

		tls_stream_feed(&split, piece, cuts[i] - from);
		free(piece);
		from = cuts[i];
	}

	check_same_stream(&whole, &split);
	model_read(&m, p, n, keep, handshaking);
	check_model(&whole, &m, p, n);

	name = tls_alert_name(whole.alert_desc);
	CHECK(name != NULL && strlen(name) < 40);

	if (whole.hello != NULL) {
		check_parse(whole.hello, whole.hello_len, &hw);
		check_parse(split.hello, split.hello_len, &hs);
		CHECK(memcmp(&hw, &hs, sizeof(hw)) == 0);
	}
	/* The parser on its own: the stream as a hello, and after a header. */
	check_parse(p, n, NULL);
	if (n > 5)
		check_parse(p + 5, n - 5, NULL);

	tls_stream_finish(&whole);
	tls_stream_finish(&split);
	return 0;
}
