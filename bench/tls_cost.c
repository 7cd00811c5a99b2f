/*
 * tls_cost.c - what mbedTLS itself spends on the server side of one
 * STARTTLS handshake, measured in one process, for bench/run.
 *
 *   tls_cost CERT KEY [FULL [RESUMED [KEEP]]]
 *
 * The server's mbedtls_ssl_config is mxd's own: tls_server_create() from
 * tls/ builds it from CERT and KEY exactly as mxd does at start (suites,
 * groups, versions, tickets on with mxd's default lifetime, no client
 * certificate), and this program reads it from struct tls_server
 * (tls_int.h).  So the figures follow tls/ when it changes.  The client
 * is mbedTLS with its defaults (verification off): the server picks
 * suite and group by its own preference, as it does for OpenSSL clients.
 *
 * Client and server talk over two memory queues (our bio callbacks), in
 * lock step: one server step, then one client step, until both are done.
 * Only the server's work is timed, with CLOCK_THREAD_CPUTIME_ID: context
 * set-up (mbedtls_ssl_setup), every mbedtls_ssl_handshake() call of the
 * server, and mbedtls_ssl_free() -- what mxd does per TLS session, less
 * the socket calls.  The client never runs while the clock runs.
 *
 *   FULL      sessions with no ticket offered: full handshakes (the
 *             client still offers the ticket extension, so the server
 *             issues a ticket each time, as with OpenSSL clients)
 *   RESUMED   sessions that offer the ticket of the first full one;
 *             each must be resumed (the server's ticket parse callback
 *             is wrapped to count successes; any other result fails)
 *   KEEP      server contexts kept established at once, client contexts
 *             freed, to measure the heap each idle TLS session holds
 *             (glibc mallinfo2(), in use after minus before, over KEEP;
 *             Debian's mbedTLS has no MBEDTLS_PLATFORM_MEMORY for a
 *             counting allocator)
 *
 * One line on stdout, key=value, for the script:
 *
 *   suite=... full=N full_us=... full_hs_us=... resumed=N resumed_us=...
 *   resumed_hs_us=... keep=N ctx_heap=BYTES sizeof_ctx=BYTES
 *   in_content=BYTES out_content=BYTES
 *
 * *_us is the mean server CPU per session (set-up + handshake + free),
 * *_hs_us the handshake calls alone.  Exit status 1 on any failure.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tls_int.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ssl.h>

/* One direction of the connection; a flight is a few KiB at most. */
struct queue {
	unsigned char	 buf[65536];
	size_t		 len;
};

struct pipe_end {
	struct queue	*in, *out;
};

static int
on_send(void *arg, const unsigned char *buf, size_t len)
{
	struct pipe_end *p = arg;

	if (len > sizeof(p->out->buf) - p->out->len)
		len = sizeof(p->out->buf) - p->out->len;
	if (len == 0)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	memcpy(p->out->buf + p->out->len, buf, len);
	p->out->len += len;
	return (int)len;
}

static int
on_recv(void *arg, unsigned char *buf, size_t len)
{
	struct pipe_end *p = arg;

	if (p->in->len == 0)
		return MBEDTLS_ERR_SSL_WANT_READ;
	if (len > p->in->len)
		len = p->in->len;
	memcpy(buf, p->in->buf, len);
	memmove(p->in->buf, p->in->buf + len, p->in->len - len);
	p->in->len -= len;
	return (int)len;
}

static mbedtls_ssl_ticket_write_t *ticket_write;
static mbedtls_ssl_ticket_parse_t *ticket_parse;
static long tickets_accepted;

static int
count_parse(void *p, mbedtls_ssl_session *session, unsigned char *buf,
    size_t len)
{
	int r = ticket_parse(p, session, buf, len);

	if (r == 0)
		tickets_accepted++;
	return r;
}

static double
cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct timing {
	double		 total;		/* s: set-up + handshake + free */
	double		 hs;		/* s: handshake calls alone */
};

/*
 * One session: a fresh server and client context, handshaken.  The
 * server context is left in *keep (established) when keep is not NULL,
 * else freed (timed).  0 or -1.
 */
static int
session(mbedtls_ssl_config *scf, mbedtls_ssl_config *ccf,
    const mbedtls_ssl_session *offer, mbedtls_ssl_session *save,
    struct timing *tm, mbedtls_ssl_context **keep)
{
	static struct queue c2s, s2c;
	struct pipe_end sp = { &c2s, &s2c }, cp = { &s2c, &c2s };
	mbedtls_ssl_context *srv, cli;
	int rs = 1, rc = 1, rounds;
	double t0, t1;

	c2s.len = s2c.len = 0;
	srv = malloc(sizeof(*srv));
	if (srv == NULL)
		return -1;
	mbedtls_ssl_init(&cli);
	if (mbedtls_ssl_setup(&cli, ccf) != 0 ||
	    (offer != NULL && mbedtls_ssl_set_session(&cli, offer) != 0))
		goto fail;
	mbedtls_ssl_set_bio(&cli, &cp, on_send, on_recv, NULL);

	t0 = cpu_now();
	mbedtls_ssl_init(srv);
	rs = mbedtls_ssl_setup(srv, scf);
	if (rs == 0)
		mbedtls_ssl_set_bio(srv, &sp, on_send, on_recv, NULL);
	t1 = cpu_now();
	tm->total += t1 - t0;
	if (rs != 0)
		goto fail;
	rs = rc = MBEDTLS_ERR_SSL_WANT_READ;
	/* The client speaks first; then alternate until neither waits. */
	for (rounds = 0; rounds < 100 && (rs != 0 || rc != 0); rounds++) {
		if (rc != 0) {
			rc = mbedtls_ssl_handshake(&cli);
			if (rc != 0 && rc != MBEDTLS_ERR_SSL_WANT_READ &&
			    rc != MBEDTLS_ERR_SSL_WANT_WRITE)
				break;
		}
		if (rs != 0) {
			t0 = cpu_now();
			rs = mbedtls_ssl_handshake(srv);
			t1 = cpu_now();
			tm->total += t1 - t0;
			tm->hs += t1 - t0;
			if (rs != 0 && rs != MBEDTLS_ERR_SSL_WANT_READ &&
			    rs != MBEDTLS_ERR_SSL_WANT_WRITE)
				break;
		}
	}
	if (rs != 0 || rc != 0) {
		fprintf(stderr, "tls_cost: handshake failed: server -0x%04x, "
		    "client -0x%04x\n", -rs, -rc);
		goto fail;
	}
	if (save != NULL && mbedtls_ssl_get_session(&cli, save) != 0)
		goto fail;
	mbedtls_ssl_free(&cli);
	if (keep != NULL) {
		*keep = srv;
		return 0;
	}
	t0 = cpu_now();
	mbedtls_ssl_free(srv);
	free(srv);
	tm->total += cpu_now() - t0;
	return 0;

fail:
	mbedtls_ssl_free(&cli);
	mbedtls_ssl_free(srv);
	free(srv);
	return -1;
}

static size_t
heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

int
main(int argc, char **argv)
{
	static const char pers[] = "tls_cost client";
	struct tls_keypair_files pair;
	struct tls_server_conf tc;
	struct tls_server *ts;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_ssl_config ccf;
	mbedtls_ssl_session ticket;
	mbedtls_ssl_context **kept = NULL;
	struct timing full = { 0, 0 }, resumed = { 0, 0 }, scratch;
	long nfull = 200, nres = 1000, nkeep = 200, i;
	size_t before, after;
	const char *suite = "?";
	char err[256];
	int status = 1;

	if (argc < 3 || argc > 6) {
		fprintf(stderr, "usage: tls_cost CERT KEY [FULL [RESUMED "
		    "[KEEP]]]\n");
		return 2;
	}
	if (argc > 3)
		nfull = atol(argv[3]);
	if (argc > 4)
		nres = atol(argv[4]);
	if (argc > 5)
		nkeep = atol(argv[5]);
	if (nfull < 1 || nres < 0 || nkeep < 1)
		return 2;

	if (tls_global_init() != 0)
		return 1;
	memset(&pair, 0, sizeof(pair));
	pair.cert = argv[1];
	pair.key = argv[2];
	memset(&tc, 0, sizeof(tc));
	tc.pairs = &pair;
	tc.npairs = 1;
	tc.min_version = TLS_V12;	/* mxd's defaults (config.c) */
	tc.tickets = true;
	tc.ticket_lifetime = 12 * 3600;
	ts = tls_server_create(&tc, err, sizeof(err));
	if (ts == NULL) {
		fprintf(stderr, "tls_cost: %s\n", err);
		return 1;
	}
	/* The same callbacks, counted. */
	ticket_write = mbedtls_ssl_ticket_write;
	ticket_parse = mbedtls_ssl_ticket_parse;
	mbedtls_ssl_conf_session_tickets_cb(&ts->conf, ticket_write,
	    count_parse, &ts->ticket);

	mbedtls_entropy_init(&entropy);
	mbedtls_ctr_drbg_init(&drbg);
	mbedtls_ssl_config_init(&ccf);
	mbedtls_ssl_session_init(&ticket);
	if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
	    (const unsigned char *)pers, sizeof(pers) - 1) != 0 ||
	    mbedtls_ssl_config_defaults(&ccf, MBEDTLS_SSL_IS_CLIENT,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT) != 0)
		goto out;
	mbedtls_ssl_conf_rng(&ccf, mbedtls_ctr_drbg_random, &drbg);
	mbedtls_ssl_conf_authmode(&ccf, MBEDTLS_SSL_VERIFY_NONE);
	/* TLS 1.2, as bench/run's stunnel asks (and mbedTLS 2.28 speaks). */
	tls_compat_set_versions(&ccf, TLS_V12, TLS_V12);
	mbedtls_ssl_conf_session_tickets(&ccf,
	    MBEDTLS_SSL_SESSION_TICKETS_ENABLED);

	/* Warm-up (first-use tables, allocator), and the ticket to offer. */
	if (session(&ts->conf, &ccf, NULL, &ticket, &scratch, NULL) != 0)
		goto out;
	for (i = 0; i < nfull; i++)
		if (session(&ts->conf, &ccf, NULL, NULL, &full, NULL) != 0)
			goto out;
	tickets_accepted = 0;
	for (i = 0; i < nres; i++)
		if (session(&ts->conf, &ccf, &ticket, NULL, &resumed,
		    NULL) != 0)
			goto out;
	if (tickets_accepted != nres) {
		fprintf(stderr, "tls_cost: %ld of %ld sessions resumed\n",
		    tickets_accepted, nres);
		goto out;
	}

	/* Heap per established server context, full handshakes. */
	kept = calloc((size_t)nkeep, sizeof(*kept));
	if (kept == NULL)
		goto out;
	before = heap_in_use();
	for (i = 0; i < nkeep; i++)
		if (session(&ts->conf, &ccf, NULL, NULL, &scratch,
		    &kept[i]) != 0)
			goto out;
	after = heap_in_use();
	suite = mbedtls_ssl_get_ciphersuite(kept[0]);

	printf("suite=%s full=%ld full_us=%.1f full_hs_us=%.1f resumed=%ld "
	    "resumed_us=%.1f resumed_hs_us=%.1f keep=%ld ctx_heap=%zu "
	    "sizeof_ctx=%zu in_content=%d out_content=%d\n",
	    suite != NULL ? suite : "?", nfull, full.total / nfull * 1e6,
	    full.hs / nfull * 1e6, nres,
	    nres > 0 ? resumed.total / nres * 1e6 : 0.0,
	    nres > 0 ? resumed.hs / nres * 1e6 : 0.0, nkeep,
	    after > before ? (after - before) / (size_t)nkeep : 0,
	    sizeof(mbedtls_ssl_context), (int)MBEDTLS_SSL_IN_CONTENT_LEN,
	    (int)MBEDTLS_SSL_OUT_CONTENT_LEN);
	status = 0;

out:
	if (status != 0)
		fprintf(stderr, "tls_cost: failed\n");
	if (kept != NULL) {
		for (i = 0; i < nkeep; i++) {
			if (kept[i] != NULL)
				mbedtls_ssl_free(kept[i]);
			free(kept[i]);
		}
		free(kept);
	}
	mbedtls_ssl_session_free(&ticket);
	mbedtls_ssl_config_free(&ccf);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&entropy);
	tls_server_destroy(ts);
	return status;
}
