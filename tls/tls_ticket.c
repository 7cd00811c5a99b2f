/*
 * tls_ticket.c - session tickets (RFC 5077, RFC 8446 4.6.1) whose keys
 * several processes share, so that a client resumes whichever worker
 * process takes its next connection.
 *
 * mbedTLS's own ticket context draws its keys from its RNG and rotates
 * them at times of its own: two processes never agree.  Here the key of
 * a period is derived from a secret the caller gives (the same in every
 * worker): key(e) = HMAC-SHA-256(secret, "mxd ticket key" || e), with
 * e = now / lifetime.  A ticket names its period and is accepted in that
 * period and the next, and for lifetime seconds from its issue.
 *
 *	ticket = e (4, big-endian) | iv (12) | n (2) | ct (n) | tag (16)
 *	ct     = AES-256-GCM(key(e), iv, aad = the first 18 octets,
 *	         issued (8, big-endian seconds) | the saved session)
 *
 * The IV comes from the process's own DRBG (never from the secret), so
 * two workers never reuse a (key, IV) pair but by chance (96 random
 * bits).  Rejected: sharing mbedTLS's ticket context through memory (its
 * layout is private in 3.x) and a fixed key with no rotation.
 */
#include "tls_int.h"

#include <mbedtls/gcm.h>
#include <mbedtls/md.h>
#include <string.h>
#include <time.h>

#define HDR		18	/* e, iv, n */
#define TAG		16
#define ISSUED		8

static void
put_be(unsigned char *p, uint64_t v, int n)
{
	while (n-- > 0) {
		p[n] = (unsigned char)v;
		v >>= 8;
	}
}

static uint64_t
get_be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static int
period_key(const struct tls_tickets *t, uint32_t e, mbedtls_gcm_context *g)
{
	static const char label[] = "mxd ticket key";
	unsigned char msg[sizeof(label) - 1 + 4], key[32];
	int r;

	memcpy(msg, label, sizeof(label) - 1);
	put_be(msg + sizeof(label) - 1, e, 4);
	r = mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
	    t->secret, sizeof(t->secret), msg, sizeof(msg), key);
	if (r == 0)
		r = mbedtls_gcm_setkey(g, MBEDTLS_CIPHER_ID_AES, key, 256);
	mbedtls_platform_zeroize(key, sizeof(key));
	return r;
}

int
tls_ticket_write(void *p, const mbedtls_ssl_session *session,
    unsigned char *start, const unsigned char *end, size_t *tlen,
    uint32_t *lifetime)
{
	struct tls_tickets *t = p;
	mbedtls_gcm_context g;
	uint64_t now = (uint64_t)time(NULL);
	uint32_t e = (uint32_t)(now / t->lifetime);
	size_t room, olen, n;
	int r;

	*tlen = 0;
	if (end - start < HDR + ISSUED + TAG)
		return MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL;
	room = (size_t)(end - start) - HDR - ISSUED - TAG;
	if (room > 0xffff - ISSUED)
		room = 0xffff - ISSUED;
	r = mbedtls_ssl_session_save(session, start + HDR + ISSUED, room,
	    &olen);
	if (r != 0)
		return r;
	n = ISSUED + olen;
	put_be(start, e, 4);
	if ((r = mbedtls_ctr_drbg_random(t->drbg, start + 4, 12)) != 0)
		return r;
	put_be(start + 16, n, 2);
	put_be(start + HDR, now, ISSUED);
	mbedtls_gcm_init(&g);
	r = period_key(t, e, &g);
	if (r == 0)
		r = mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, n,
		    start + 4, 12, start, HDR, start + HDR, start + HDR,
		    TAG, start + HDR + n);
	mbedtls_gcm_free(&g);
	if (r != 0)
		return r;
	*tlen = HDR + n + TAG;
	*lifetime = t->lifetime;
	return 0;
}

int
tls_ticket_parse(void *p, mbedtls_ssl_session *session, unsigned char *buf,
    size_t len)
{
	struct tls_tickets *t = p;
	mbedtls_gcm_context g;
	uint64_t now = (uint64_t)time(NULL), issued;
	uint32_t e, cur = (uint32_t)(now / t->lifetime);
	size_t n;
	int r;

	if (len < HDR + ISSUED + TAG)
		return MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
	e = (uint32_t)get_be(buf, 4);
	n = (size_t)get_be(buf + 16, 2);
	if (n < ISSUED || HDR + n + TAG != len)
		return MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
	if (e != cur && e + 1 != cur)
		return MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED;
	mbedtls_gcm_init(&g);
	r = period_key(t, e, &g);
	if (r == 0)
		r = mbedtls_gcm_auth_decrypt(&g, n, buf + 4, 12, buf, HDR,
		    buf + HDR + n, TAG, buf + HDR, buf + HDR);
	mbedtls_gcm_free(&g);
	if (r != 0)
		return MBEDTLS_ERR_SSL_INVALID_MAC;
	issued = get_be(buf + HDR, ISSUED);
	if (issued > now || now - issued > t->lifetime)
		return MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED;
	return mbedtls_ssl_session_load(session, buf + HDR + ISSUED,
	    n - ISSUED);
}
