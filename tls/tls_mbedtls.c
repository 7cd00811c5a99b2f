/*
 * tls_mbedtls.c - tls.h on mbedTLS: the server config, one connection per
 * session, and the alert-and-close rule.
 *
 * Owns: the mbedTLS contexts, our send/recv callbacks (send() with
 * MSG_NOSIGNAL, since mbedtls_net_send() calls write() and would raise
 * SIGPIPE), the record observers of tls_wire.h, and the classification
 * of a failed handshake.  Does not own the fd (the caller closes it) or
 * any timer (the caller calls tls_conn_timeout()).
 *
 * Why the observers: mbedTLS sends a fatal alert itself for some
 * failures (no shared cipher suite: handshake_failure) and none for
 * others (octets that are not TLS; no common ECDHE group, found only
 * after ServerHello and Certificate went out).  No API tells which
 * happened, so the send callback watches the records going out, and
 * tls_conn_send_alert() adds ours only when none went out.  Likewise the
 * receive callback keeps the ClientHello, which says what the client
 * offered when mbedTLS refuses it.
 *
 * The same two callbacks carry the faults a test harness injects
 * (tls_conn_set_fault): the receive callback notices the end of the
 * ClientHello, the send callback's count of records tells when the
 * first flight is out.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "tls_int.h"

#include <mbedtls/net_sockets.h>

enum conn_state {
	ST_HANDSHAKE,
	ST_OPEN,
	ST_FAILED,
};

struct tls_conn {
	mbedtls_ssl_context	 ssl;		/* first: the SNI callback's key */
	struct tls_server	*srv;
	int			 fd;
	enum conn_state		 state;
	struct tls_stream	 in, out;
	bool			 peer_eof;
	bool			 peer_reset;
	int			 lib_error;
	enum tls_fail_class	 cls;
	int			 our_alert;	/* to send, or TLS_ALERT_NONE */
	bool			 alert_pre;	/* one had started before ours */
	bool			 alert_ours;
	bool			 alert_queued;	/* mbedTLS holds ours */
	bool			 wblocked;	/* so it holds output */
	uint8_t			 raw_alert[7];	/* when nothing was sent yet */
	size_t			 raw_off;
	size_t			 wpending;	/* length of a blocked write */
	enum tls_fail_class	 preflight;	/* refused before mbedTLS */
	bool			 hello_checked;
	char			 sni[256];
	struct tls_hello_info	 hello;
	struct tls_fault	 fault;		/* TLS_FAULT_NONE: none */
	bool			 fault_fired;	/* it acts now */
	bool			 want_read;	/* mbedTLS's last word */
	size_t			 junk_off;	/* GARBAGE: octets out */
};

/*
 * The suites we offer, by preference: TLS 1.3 (3.x only), then ECDHE with
 * AEAD, ECDSA before RSA.  The CBC suites are added only when the operator
 * lowers the floor below TLS 1.2, as TLS 1.0/1.1 clients have no AEAD.
 */
static const char *const suites_aead[] = {
	"TLS1-3-AES-128-GCM-SHA256",
	"TLS1-3-AES-256-GCM-SHA384",
	"TLS1-3-CHACHA20-POLY1305-SHA256",
	"TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256",
	"TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384",
	"TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256",
	"TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256",
	"TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384",
	"TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256",
	NULL,
};

static const char *const suites_legacy[] = {
	"TLS-ECDHE-ECDSA-WITH-AES-128-CBC-SHA",
	"TLS-ECDHE-ECDSA-WITH-AES-256-CBC-SHA",
	"TLS-ECDHE-RSA-WITH-AES-128-CBC-SHA",
	"TLS-ECDHE-RSA-WITH-AES-256-CBC-SHA",
	NULL,
};

int
tls_global_init(void)
{
	return tls_compat_global_init();
}

const char *
tls_library_version(void)
{
	return MBEDTLS_VERSION_STRING;
}

int
tls_max_version(void)
{
	return tls_compat_max_version();
}

int
tls_min_supported_version(void)
{
	return tls_compat_min_version();
}

/* ---- server ----------------------------------------------------------- */

static void
add_suites(struct tls_server *s, const char *const *names, size_t *n)
{
	int id;

	for (; *names != NULL; names++) {
		id = mbedtls_ssl_get_ciphersuite_id(*names);
		if (id != 0 && *n + 1 < sizeof(s->suites) / sizeof(int))
			s->suites[(*n)++] = id;
	}
	s->suites[*n] = 0;
}

/*
 * SNI (RFC 6066 3): use the pairs whose names match; with none, leave the
 * configured list (the first pair and its twins).  Never fail the
 * handshake over a name.
 */
static int
on_sni(void *arg, mbedtls_ssl_context *ssl, const unsigned char *name,
    size_t len)
{
	struct tls_server *s = arg;
	struct tls_conn *t = (struct tls_conn *)ssl;
	char lower[256];
	size_t i;

	if (len == 0 || len >= sizeof(lower))
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = name[i];

		lower[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		t->sni[i] = (char)(c > 32 && c < 127 ? c : '?');
	}
	lower[len] = t->sni[len] = 0;
	for (i = 0; i < s->npairs; i++)
		if (tls_keypair_matches(&s->pairs[i], lower))
			mbedtls_ssl_set_hs_own_cert(ssl, &s->pairs[i].crt,
			    &s->pairs[i].key);
	return 0;
}

static bool
same_names(const struct tls_keypair *a, const struct tls_keypair *b)
{
	size_t i;

	for (i = 0; i < b->nnames; i++)
		if (tls_keypair_matches(a, b->names[i]))
			return true;
	return false;
}

struct tls_server *
tls_server_create(const struct tls_server_conf *c, char *err, size_t errlen)
{
	static const char pers[] = "mxd tls server";
	struct tls_server *s;
	size_t i, n = 0;
	int r;

	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->refs = 1;
	mbedtls_entropy_init(&s->entropy);
	mbedtls_ctr_drbg_init(&s->drbg);
	mbedtls_ssl_config_init(&s->conf);
	mbedtls_ssl_ticket_init(&s->ticket);
	mbedtls_x509_crt_init(&s->ca);
	if (c->npairs == 0) {
		snprintf(err, errlen, "no certificate configured");
		goto fail;
	}
	s->pairs = calloc(c->npairs, sizeof(*s->pairs));
	if (s->pairs == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((r = mbedtls_ctr_drbg_seed(&s->drbg, mbedtls_entropy_func,
	    &s->entropy, (const unsigned char *)pers, sizeof(pers) - 1)) != 0) {
		snprintf(err, errlen, "RNG seed failed (-0x%04x)", -r);
		goto fail;
	}
	for (i = 0; i < c->npairs; i++) {
		if (tls_keypair_load(&s->pairs[i], c->pairs[i].cert,
		    c->pairs[i].key, &s->drbg, err, errlen) != 0) {
			s->npairs = i + 1;
			goto fail;
		}
		s->npairs = i + 1;
	}

	if ((r = mbedtls_ssl_config_defaults(&s->conf, MBEDTLS_SSL_IS_SERVER,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT)) != 0) {
		snprintf(err, errlen, "TLS defaults failed (-0x%04x)", -r);
		goto fail;
	}
	mbedtls_ssl_conf_rng(&s->conf, mbedtls_ctr_drbg_random, &s->drbg);
	s->min_version = c->min_version;
	if (s->min_version < tls_compat_min_version())
		s->min_version = tls_compat_min_version();
	s->max_version = tls_compat_max_version();
	if (c->max_version != 0 && c->max_version < s->max_version)
		s->max_version = c->max_version;
	if (s->max_version < tls_compat_min_version()) {
		char a[8], b[8];

		snprintf(err, errlen, "maximum version %s: mbedTLS %s speaks "
		    "%s and later only", tls_version_name((uint16_t)
		    s->max_version, a), MBEDTLS_VERSION_STRING,
		    tls_version_name((uint16_t)tls_compat_min_version(), b));
		goto fail;
	}
	/* A cap below the floor wins: the harness asks for that version. */
	if (s->min_version > s->max_version)
		s->min_version = s->max_version;
	tls_compat_set_versions(&s->conf, s->min_version, s->max_version);
	add_suites(s, suites_aead, &n);
	if (s->min_version < TLS_V12)
		add_suites(s, suites_legacy, &n);
	mbedtls_ssl_conf_ciphersuites(&s->conf, s->suites);
	tls_compat_set_groups(&s->conf);
#if defined(MBEDTLS_SSL_RENEGOTIATION)
	mbedtls_ssl_conf_renegotiation(&s->conf,
	    MBEDTLS_SSL_RENEGOTIATION_DISABLED);
#endif
	/*
	 * Without SNI, or with a name no pair has, the first pair answers
	 * (with its twins of another key type, for the same names: mbedTLS
	 * then picks by suite, and ECDSA suites come first).
	 */
	for (i = 0; i < s->npairs; i++) {
		if (i > 0 && !same_names(&s->pairs[0], &s->pairs[i]))
			continue;
		if ((r = mbedtls_ssl_conf_own_cert(&s->conf, &s->pairs[i].crt,
		    &s->pairs[i].key)) != 0) {
			snprintf(err, errlen, "certificate %s: cannot use it "
			    "(-0x%04x)", c->pairs[i].cert, -r);
			goto fail;
		}
	}
	mbedtls_ssl_conf_sni(&s->conf, on_sni, s);

	if (c->ask_client_cert) {
		if (c->client_ca != NULL && (r = mbedtls_x509_crt_parse_file(
		    &s->ca, c->client_ca)) < 0) {
			char msg[128];

			mbedtls_strerror(r, msg, sizeof(msg));
			snprintf(err, errlen, "tls_client_ca %s: %s",
			    c->client_ca, msg);
			goto fail;
		}
		if (c->client_ca != NULL)
			mbedtls_ssl_conf_ca_chain(&s->conf, &s->ca, NULL);
		/* Ask, verify, never refuse: the result is logged. */
		mbedtls_ssl_conf_authmode(&s->conf,
		    MBEDTLS_SSL_VERIFY_OPTIONAL);
	} else {
		mbedtls_ssl_conf_authmode(&s->conf, MBEDTLS_SSL_VERIFY_NONE);
	}

	if (c->tickets && c->ticket_secret != NULL) {
		/* Keys derived per period from the shared secret. */
		memcpy(s->tickets.secret, c->ticket_secret,
		    sizeof(s->tickets.secret));
		s->tickets.lifetime = c->ticket_lifetime ? c->ticket_lifetime :
		    1;
		s->tickets.drbg = &s->drbg;
		mbedtls_ssl_conf_session_tickets_cb(&s->conf, tls_ticket_write,
		    tls_ticket_parse, &s->tickets);
	} else if (c->tickets) {
		/* mbedTLS rotates the ticket key every lifetime. */
		if ((r = mbedtls_ssl_ticket_setup(&s->ticket,
		    mbedtls_ctr_drbg_random, &s->drbg,
		    MBEDTLS_CIPHER_AES_256_GCM, c->ticket_lifetime)) != 0) {
			snprintf(err, errlen, "session tickets (-0x%04x)", -r);
			goto fail;
		}
		mbedtls_ssl_conf_session_tickets_cb(&s->conf,
		    mbedtls_ssl_ticket_write, mbedtls_ssl_ticket_parse,
		    &s->ticket);
	}
	tls_compat_tls13_tickets(&s->conf, c->tickets);
	return s;

fail:
	tls_server_destroy(s);
	return NULL;
}

static void
server_unref(struct tls_server *s)
{
	size_t i;

	if (s == NULL || --s->refs > 0)
		return;
	mbedtls_ssl_config_free(&s->conf);
	mbedtls_ssl_ticket_free(&s->ticket);
	mbedtls_platform_zeroize(&s->tickets, sizeof(s->tickets));
	for (i = 0; i < s->npairs; i++)
		tls_keypair_free(&s->pairs[i]);
	free(s->pairs);
	mbedtls_x509_crt_free(&s->ca);
	mbedtls_ctr_drbg_free(&s->drbg);
	mbedtls_entropy_free(&s->entropy);
	free(s);
}

void
tls_server_destroy(struct tls_server *s)
{
	server_unref(s);
}

size_t
tls_server_npairs(const struct tls_server *s)
{
	return s->npairs;
}

const char *
tls_server_pair_desc(const struct tls_server *s, size_t i)
{
	return i < s->npairs ? s->pairs[i].desc : "";
}

/* ---- the socket callbacks --------------------------------------------- */

static void
parse_hello(struct tls_conn *t)
{
	if (t->in.hello_done && !t->hello.parsed && t->in.hello != NULL)
		tls_parse_client_hello(t->in.hello, t->in.hello_len,
		    t->srv->suites, tls_compat_group_ids,
		    sizeof(tls_compat_group_ids) /
		    sizeof(tls_compat_group_ids[0]), &t->hello);
}

/*
 * The ClientHello has arrived and mbedTLS has not seen its end yet.  If
 * the client's versions and ours do not meet, the alert that names the
 * cause is protocol_version (RFC 8446 6.2), but mbedTLS 2.28 answers a
 * TLS 1.3-only hello with handshake_failure: so refuse it here, before
 * mbedTLS can, and send ours.  false: refuse.
 */
static bool
preflight(struct tls_conn *t)
{
	const struct tls_hello_info *h = &t->hello;

	t->hello_checked = true;
	parse_hello(t);
	if (!h->parsed)
		return true;	/* mbedTLS will say what is wrong */
	return h->max_version >= t->srv->min_version &&
	    h->min_version <= t->srv->max_version;
}

static bool
fault_on_hello(const struct tls_conn *t)
{
	switch (t->fault.kind) {
	case TLS_FAULT_ALERT:
	case TLS_FAULT_CLOSE:
		return t->fault.step == TLS_STEP_CLIENT_HELLO;
	case TLS_FAULT_GARBAGE:
		return true;
	default:
		return false;
	}
}

static int
on_send(void *ctx, const unsigned char *buf, size_t len)
{
	struct tls_conn *t = ctx;
	ssize_t n;

	n = send(t->fd, buf, len, MSG_NOSIGNAL);
	t->wblocked = n < 0;
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return MBEDTLS_ERR_SSL_WANT_WRITE;
		if (errno == EPIPE || errno == ECONNRESET)
			t->peer_reset = true;
		return errno == EPIPE || errno == ECONNRESET ?
		    MBEDTLS_ERR_NET_CONN_RESET : MBEDTLS_ERR_NET_SEND_FAILED;
	}
	tls_stream_feed(&t->out, buf, (size_t)n);
	return (int)n;
}

static bool
fault_after_flight_due(const struct tls_conn *t)
{
	return (t->fault.kind == TLS_FAULT_ALERT ||
	    t->fault.kind == TLS_FAULT_CLOSE) &&
	    t->fault.step == TLS_STEP_SERVER_HELLO &&
	    t->out.other_records > 0;
}

static int
on_recv(void *ctx, unsigned char *buf, size_t len)
{
	struct tls_conn *t = ctx;
	ssize_t n;

	/*
	 * A fault after the server's flight: mbedTLS reads only once that
	 * flight is flushed, and must not read the client's answer, which
	 * on a fast link is already there in the same handshake call.
	 */
	if (!t->fault_fired && fault_after_flight_due(t)) {
		t->fault_fired = true;
		return MBEDTLS_ERR_NET_RECV_FAILED;
	}
	n = recv(t->fd, buf, len, 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return MBEDTLS_ERR_SSL_WANT_READ;
		t->peer_reset = true;
		return errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET :
		    MBEDTLS_ERR_NET_RECV_FAILED;
	}
	if (n == 0)
		t->peer_eof = true;
	tls_stream_feed(&t->in, buf, (size_t)n);
	/*
	 * A fault on the ClientHello: mbedTLS must not see its end, or it
	 * would answer it.  An error now makes it return without a word.
	 */
	if (t->in.hello_done && !t->fault_fired && fault_on_hello(t)) {
		t->fault_fired = true;
		return MBEDTLS_ERR_NET_RECV_FAILED;
	}
	if (t->in.hello_done && !t->hello_checked && !preflight(t)) {
		t->preflight = TLS_FAIL_PROTOCOL_VERSION;
		return MBEDTLS_ERR_NET_RECV_FAILED;
	}
	return (int)n;
}

/* ---- connection ------------------------------------------------------- */

struct tls_conn *
tls_conn_create(struct tls_server *srv, int fd)
{
	struct tls_conn *t;

	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	mbedtls_ssl_init(&t->ssl);
	if (mbedtls_ssl_setup(&t->ssl, &srv->conf) != 0) {
		mbedtls_ssl_free(&t->ssl);
		free(t);
		return NULL;
	}
	srv->refs++;
	t->srv = srv;
	t->fd = fd;
	t->our_alert = TLS_ALERT_NONE;
	tls_stream_init(&t->in, true);
	tls_stream_init(&t->out, false);
	mbedtls_ssl_set_bio(&t->ssl, t, on_send, on_recv, NULL);
	return t;
}

void
tls_conn_destroy(struct tls_conn *t)
{
	if (t == NULL)
		return;
	mbedtls_ssl_free(&t->ssl);
	tls_stream_finish(&t->in);
	tls_stream_finish(&t->out);
	server_unref(t->srv);
	free(t);
}

void
tls_conn_set_fault(struct tls_conn *t, const struct tls_fault *f)
{
	memset(&t->fault, 0, sizeof(t->fault));
	if (f != NULL)
		t->fault = *f;
}

static bool
is_err(int e, int a)
{
	return e == a;
}

/*
 * Why did the handshake fail, and which alert does the rule call for?
 * What the client sent (its first octet, its ClientHello) decides first,
 * because it names the cause in the client's terms; mbedTLS's error code
 * decides the rest.
 */
static void
classify(struct tls_conn *t, int e)
{
	struct tls_hello_info *h = &t->hello;
	enum tls_fail_class c;
	int alert = 40;		/* handshake_failure */

	parse_hello(t);

	/* An alert record from the client (mbedTLS may fail before
	 * reading more than its header: it expects a ClientHello). */
	if (t->preflight != TLS_FAIL_NONE) {
		c = t->preflight;
		alert = 70;	/* protocol_version */
	} else if (is_err(e, MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE) ||
	    t->in.alert_started) {
		c = TLS_FAIL_CLIENT_ALERT;
	} else if (t->peer_reset || is_err(e, MBEDTLS_ERR_NET_CONN_RESET) ||
	    is_err(e, MBEDTLS_ERR_NET_RECV_FAILED)) {
		c = TLS_FAIL_RESET;
	} else if (t->in.octets > 0 && t->in.first_octet != TLS_CT_HANDSHAKE) {
		c = TLS_FAIL_NOT_TLS;
		alert = 10;	/* unexpected_message */
	} else if (t->peer_eof || is_err(e, MBEDTLS_ERR_SSL_CONN_EOF)) {
		c = TLS_FAIL_EOF;
	} else if (t->in.broken || (t->in.hello_done && !h->parsed)) {
		c = TLS_FAIL_DECODE;
		alert = 50;	/* decode_error */
	} else if (h->parsed && (h->max_version < t->srv->min_version ||
	    h->min_version > t->srv->max_version)) {
		c = TLS_FAIL_PROTOCOL_VERSION;
		alert = 70;
	} else if (h->parsed && !h->cipher_match) {
		c = TLS_FAIL_NO_SHARED_CIPHER;
	} else if (h->parsed && h->has_groups && !h->group_match) {
		c = TLS_FAIL_NO_SHARED_GROUP;
	} else if (is_err(e, TLS_COMPAT_ERR_VERSION)) {
		c = TLS_FAIL_PROTOCOL_VERSION;
		alert = 70;
#if defined(MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN)
	} else if (is_err(e, MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN)) {
		c = TLS_FAIL_NO_SHARED_CIPHER;
#endif
	} else if (is_err(e, TLS_COMPAT_ERR_HS_FAILURE)) {
		c = TLS_FAIL_NO_SHARED_CIPHER;
#if TLS_COMPAT_V3
	} else if (is_err(e, MBEDTLS_ERR_SSL_BAD_CERTIFICATE)) {
#else
	} else if (is_err(e, MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE) ||
	    is_err(e, MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE_VERIFY)) {
#endif
		c = TLS_FAIL_BAD_CERTIFICATE;
		alert = 42;
	} else if (is_err(e, TLS_COMPAT_ERR_DECODE) ||
	    is_err(e, MBEDTLS_ERR_SSL_INVALID_RECORD)) {
		c = TLS_FAIL_DECODE;
		alert = 50;
	} else if (is_err(e, MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE)) {
		c = TLS_FAIL_DECODE;
		alert = 10;
	} else if (is_err(e, MBEDTLS_ERR_SSL_ALLOC_FAILED) ||
	    is_err(e, MBEDTLS_ERR_SSL_INTERNAL_ERROR) ||
	    is_err(e, MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED)) {
		c = TLS_FAIL_INTERNAL;
		alert = 80;
	} else {
		c = TLS_FAIL_HANDSHAKE;
	}
	t->cls = c;
	/* Never answer the client's own end (alert, FIN, RST) with one. */
	if (c == TLS_FAIL_CLIENT_ALERT || c == TLS_FAIL_EOF ||
	    c == TLS_FAIL_RESET)
		alert = TLS_ALERT_NONE;
	t->our_alert = alert;
	t->alert_pre = t->out.alert_started;
}

static void
fail(struct tls_conn *t, int e)
{
	t->state = ST_FAILED;
	/* A refusal of ours is no library error: log no lib= for it. */
	t->lib_error = t->preflight != TLS_FAIL_NONE ? 0 : e;
	classify(t, e);
}

/*
 * The first handshake record holds no ClientHello, or one that claims
 * more than a record can carry: 2.28 refuses it at once, 3.6 waits for
 * the rest (until the timeout).  Refuse it at once on both.
 */
static bool
hello_hopeless(const struct tls_conn *t)
{
	const uint8_t *h = t->in.hello;
	size_t declared;

	if (!t->in.hello_done || h == NULL)
		return false;
	if (t->in.hello_len < 4 || h[0] != 1)
		return true;
	declared = (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
	return declared > TLS_HELLO_MAX;
}

/* ---- injected faults -------------------------------------------------- */

/* The handshake ends as the fault says: no library error, our alert. */
static void
fail_as(struct tls_conn *t, enum tls_fail_class c, int alert)
{
	t->state = ST_FAILED;
	t->lib_error = 0;
	parse_hello(t);
	t->cls = c;
	t->our_alert = alert;
	t->alert_pre = t->out.alert_started;
}

/*
 * ALERT, CLOSE or GARBAGE acts now.  GARBAGE first writes its octets,
 * which no TLS record starts with ('t' is no content type), where the
 * ServerHello would go.
 */
static int
inject(struct tls_conn *t)
{
	static const char junk[] = "this is not TLS\r\n"
	    "this is not TLS\r\n" "this is not TLS\r\n";
	int alert = TLS_ALERT_NONE, n;

	t->fault_fired = true;
	if (t->fault.kind == TLS_FAULT_GARBAGE) {
		while (t->junk_off < sizeof(junk) - 1) {
			n = on_send(t, (const unsigned char *)junk +
			    t->junk_off, sizeof(junk) - 1 - t->junk_off);
			if (n == MBEDTLS_ERR_SSL_WANT_WRITE)
				return TLS_WANT_WRITE;
			if (n < 0)
				break;	/* the peer is gone: fail anyway */
			t->junk_off += (size_t)n;
		}
	}
	/* An alert with no description: handshake_failure. */
	if (t->fault.kind == TLS_FAULT_ALERT)
		alert = t->fault.alert >= 0 && t->fault.alert <= 255 ?
		    t->fault.alert : 40;
	fail_as(t, TLS_FAIL_INJECTED, alert);
	return TLS_ERR;
}

/*
 * STALL: mbedTLS never runs.  Whatever the client sends is read (so the
 * fd does not stay readable) and dropped, but watched, for the log.
 */
static int
stall(struct tls_conn *t)
{
	unsigned char buf[4096];
	ssize_t n;

	for (;;) {
		n = recv(t->fd, buf, sizeof(buf), 0);
		if (n > 0) {
			tls_stream_feed(&t->in, buf, (size_t)n);
			continue;
		}
		if (n == 0) {
			t->peer_eof = true;
			fail_as(t, TLS_FAIL_EOF, TLS_ALERT_NONE);
			return TLS_ERR;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return TLS_WANT_READ;
		if (errno != EINTR) {
			t->peer_reset = true;
			fail_as(t, TLS_FAIL_RESET, TLS_ALERT_NONE);
			return TLS_ERR;
		}
	}
}

/*
 * ALERT or CLOSE after the first flight: on the call after the one that
 * sent it all (mbedTLS said it waits to read, so nothing is held back).
 * The alert then goes through mbedTLS, plaintext in TLS 1.2 (no
 * ChangeCipherSpec yet), encrypted in TLS 1.3: there, under the
 * handshake keys, as mbedTLS 3.6 keeps them until the client's Finished
 * although the client reads with the application keys by then
 * (Mbed-TLS/mbedtls#10877), so the client sees a bad record MAC.
 */
static bool
fault_after_flight(const struct tls_conn *t)
{
	return (t->fault.kind == TLS_FAULT_ALERT ||
	    t->fault.kind == TLS_FAULT_CLOSE) &&
	    t->fault.step == TLS_STEP_SERVER_HELLO && t->want_read &&
	    t->out.other_records > 0;
}

int
tls_conn_handshake(struct tls_conn *t)
{
	int r;

	if (t->state == ST_OPEN)
		return TLS_OK;
	if (t->state == ST_FAILED)
		return TLS_ERR;
	if (t->fault.kind == TLS_FAULT_STALL)
		return stall(t);
	if (t->fault_fired || fault_after_flight(t))
		return inject(t);
	r = mbedtls_ssl_handshake(&t->ssl);
	t->want_read = r == MBEDTLS_ERR_SSL_WANT_READ;
	if (r != 0 && t->fault_fired)
		return inject(t);
	if (r == 0) {
		t->state = ST_OPEN;
		t->in.handshaking = t->out.handshaking = false;
		tls_stream_finish(&t->in);	/* the hello copy */
		return TLS_OK;
	}
	if (r == MBEDTLS_ERR_SSL_WANT_READ && hello_hopeless(t))
		r = TLS_COMPAT_ERR_DECODE;
	if (r == MBEDTLS_ERR_SSL_WANT_READ)
		return TLS_WANT_READ;
	if (r == MBEDTLS_ERR_SSL_WANT_WRITE)
		return TLS_WANT_WRITE;
	fail(t, r);
	return TLS_ERR;
}

void
tls_conn_timeout(struct tls_conn *t)
{
	if (t->state != ST_HANDSHAKE)
		return;
	fail(t, 0);
	t->cls = TLS_FAIL_TIMEOUT;
	/*
	 * TLS has no timeout alert; handshake_failure says the handshake
	 * could not complete (RFC 8446 6.2), and it is fatal by nature.
	 */
	t->our_alert = t->peer_eof || t->peer_reset ? TLS_ALERT_NONE : 40;
}

/*
 * Nothing has gone out yet, so no keys are in use and the alert is a
 * plaintext record we can write ourselves.  mbedTLS would label it with
 * the version it has not negotiated yet (0.0 in 2.28), which clients take
 * for garbage rather than an alert; ours says TLS 1.2 (RFC 8446 5.1:
 * legacy_record_version 0x0303).
 */
static int
send_raw_alert(struct tls_conn *t)
{
	ssize_t n;

	if (t->raw_off == 0) {
		t->raw_alert[0] = TLS_CT_ALERT;
		t->raw_alert[1] = 3;
		t->raw_alert[2] = 3;
		t->raw_alert[3] = 0;
		t->raw_alert[4] = 2;
		t->raw_alert[5] = MBEDTLS_SSL_ALERT_LEVEL_FATAL;
		t->raw_alert[6] = (uint8_t)t->our_alert;
	}
	while (t->raw_off < sizeof(t->raw_alert)) {
		n = on_send(t, t->raw_alert + t->raw_off,
		    sizeof(t->raw_alert) - t->raw_off);
		if (n == MBEDTLS_ERR_SSL_WANT_WRITE)
			return TLS_WANT_WRITE;
		if (n < 0)
			return 0;
		t->raw_off += (size_t)n;
	}
	t->alert_ours = true;
	return 0;
}

int
tls_conn_send_alert(struct tls_conn *t)
{
	int r, guard;
	bool held;

	if (t->state != ST_FAILED)
		return 0;
	if (t->raw_off > 0 || (t->out.octets == 0 &&
	    t->our_alert != TLS_ALERT_NONE && !t->peer_reset))
		return send_raw_alert(t);
	for (guard = 0; guard < 4; guard++) {
		/*
		 * Ours was written and nothing is held back any more: it
		 * is out, whether or not the observer could see it (TLS
		 * 1.3 hides it, and mbedTLS 3.x pads it to 32 octets).
		 */
		if (t->alert_queued && !t->wblocked)
			t->alert_ours = true;
		/* One alert, from mbedTLS or from us, is all the rule asks. */
		if (t->out.alert_done || t->alert_ours ||
		    t->our_alert == TLS_ALERT_NONE || t->peer_reset ||
		    t->out.broken)
			return 0;
		/*
		 * With output held back (the last send would block), this
		 * call only flushes it (and returns 0): then the loop
		 * decides again.  With none, it writes ours and flushes.
		 */
		held = t->wblocked;
		r = mbedtls_ssl_send_alert_message(&t->ssl,
		    MBEDTLS_SSL_ALERT_LEVEL_FATAL,
		    (unsigned char)t->our_alert);
		if (!held && (r == 0 || r == MBEDTLS_ERR_SSL_WANT_WRITE))
			t->alert_queued = true;
		if (!t->alert_pre && t->out.alert_started)
			t->alert_ours = true;
		if (r == MBEDTLS_ERR_SSL_WANT_WRITE)
			return TLS_WANT_WRITE;
		if (r != 0)
			return 0;	/* the socket is gone: nothing to do */
	}
	return 0;
}

static const char *
class_name(enum tls_fail_class c)
{
	switch (c) {
	case TLS_FAIL_NONE:		return "none";
	case TLS_FAIL_NO_SHARED_CIPHER:	return "no_shared_cipher";
	case TLS_FAIL_NO_SHARED_GROUP:	return "no_shared_group";
	case TLS_FAIL_PROTOCOL_VERSION:	return "protocol_version";
	case TLS_FAIL_NOT_TLS:		return "not_tls";
	case TLS_FAIL_DECODE:		return "decode_error";
	case TLS_FAIL_CLIENT_ALERT:	return "client_alert";
	case TLS_FAIL_EOF:		return "eof";
	case TLS_FAIL_RESET:		return "reset";
	case TLS_FAIL_TIMEOUT:		return "timeout";
	case TLS_FAIL_BAD_CERTIFICATE:	return "bad_certificate";
	case TLS_FAIL_HANDSHAKE:	return "handshake";
	case TLS_FAIL_INTERNAL:		return "internal";
	case TLS_FAIL_INJECTED:		return "injected";
	}
	return "unknown";
}

int
tls_alert_by_name(const char *name)
{
	int d;

	/* Descriptions only: "encrypted" and "unknown" name none. */
	for (d = 0; d <= 255; d++)
		if (strcmp(tls_alert_name(d), "unknown") != 0 &&
		    strcasecmp(tls_alert_name(d), name) == 0)
			return d;
	return -1;
}

void
tls_conn_failure(const struct tls_conn *t, struct tls_failure *f)
{
	memset(f, 0, sizeof(*f));
	f->cls = t->cls;
	f->class_name = class_name(t->cls);
	f->alert_sent = t->out.alert_done ? t->out.alert_desc :
	    TLS_ALERT_NONE;
	/* Ours, encrypted or unseen (TLS 1.3): we know what it said. */
	if (t->alert_ours && (f->alert_sent == TLS_ALERT_NONE ||
	    f->alert_sent == TLS_ALERT_ENCRYPTED))
		f->alert_sent = t->our_alert;
	f->alert_by_us = t->alert_ours;
	f->alert_received = t->in.alert_done ? t->in.alert_desc :
	    TLS_ALERT_NONE;
	if (t->in.octets == 0)
		f->step = "before_client_hello";
	else if (t->out.other_records == 0)
		f->step = "client_hello";
	else if (t->in.records <= 1)
		f->step = "server_hello";
	else
		f->step = "client_finished";
	f->lib_error = t->lib_error;
	if (t->lib_error != 0)
		mbedtls_strerror(t->lib_error, f->lib_text,
		    sizeof(f->lib_text));
	f->hello = &t->hello;
}

/* ---- data ------------------------------------------------------------- */

ssize_t
tls_conn_read(struct tls_conn *t, void *buf, size_t len)
{
	int r;

	r = mbedtls_ssl_read(&t->ssl, buf, len);
	if (r > 0)
		return r;
	if (r == 0 || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY ||
	    r == MBEDTLS_ERR_SSL_CONN_EOF)
		return 0;
	if (r == MBEDTLS_ERR_SSL_WANT_READ)
		return TLS_WANT_READ;
	if (r == MBEDTLS_ERR_SSL_WANT_WRITE)
		return TLS_WANT_WRITE;
	t->lib_error = r;
	return TLS_ERR;
}

ssize_t
tls_conn_write(struct tls_conn *t, const void *buf, size_t len)
{
	int r;

	/*
	 * mbedTLS keeps the record it could not flush and, when called
	 * again, sends it and reports the length it is now given: so give
	 * it the same length as the first time (the bytes are the same,
	 * the caller has not consumed them).
	 */
	if (t->wpending != 0)
		len = t->wpending;
	r = mbedtls_ssl_write(&t->ssl, buf, len);
	if (r >= 0) {
		t->wpending = 0;
		return r;
	}
	if (r == MBEDTLS_ERR_SSL_WANT_WRITE || r == MBEDTLS_ERR_SSL_WANT_READ) {
		t->wpending = len;
		return r == MBEDTLS_ERR_SSL_WANT_WRITE ? TLS_WANT_WRITE :
		    TLS_WANT_READ;
	}
	t->lib_error = r;
	return TLS_ERR;
}

bool
tls_conn_pending(const struct tls_conn *t)
{
	return mbedtls_ssl_get_bytes_avail(&t->ssl) > 0 ||
	    mbedtls_ssl_check_pending(&t->ssl) != 0;
}

int
tls_conn_close(struct tls_conn *t)
{
	int r;

	if (t->state != ST_OPEN)
		return 0;
	r = mbedtls_ssl_close_notify(&t->ssl);
	return r == MBEDTLS_ERR_SSL_WANT_WRITE ? TLS_WANT_WRITE : 0;
}

const char *
tls_conn_version(const struct tls_conn *t)
{
	return mbedtls_ssl_get_version(&t->ssl);
}

const char *
tls_conn_cipher(const struct tls_conn *t)
{
	const char *c = mbedtls_ssl_get_ciphersuite(&t->ssl);

	return c != NULL ? c : "none";
}

const char *
tls_conn_sni(const struct tls_conn *t)
{
	return t->sni;
}

bool
tls_conn_peer_cert(const struct tls_conn *t, char *subject, size_t slen,
    char *verify, size_t vlen)
{
	const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(&t->ssl);
	uint32_t flags;
	int n;

	if (crt == NULL)
		return false;
	if (mbedtls_x509_dn_gets(subject, slen, &crt->subject) < 0)
		snprintf(subject, slen, "?");
	flags = mbedtls_ssl_get_verify_result(&t->ssl);
	if (flags == 0) {
		snprintf(verify, vlen, "ok");
	} else {
		n = mbedtls_x509_crt_verify_info(verify, vlen, "", flags);
		/* One line: the info is "reason\n" per flag. */
		for (; n > 0; n--)
			if (verify[n - 1] == '\n')
				verify[n - 1] = n == (int)strlen(verify) ?
				    0 : ';';
	}
	return true;
}
