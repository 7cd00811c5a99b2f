/*
 * test_tls.c - tls/ without the daemon: a tls_conn on one end of a
 * socketpair, an mbedTLS client (or raw bytes) on the other, both
 * non-blocking and stepped in turn.
 *
 * Checks the handshake, a blocked write retried as mbedTLS requires
 * (with the output buffer growing meanwhile, as proto's does), reading
 * records mbedTLS already holds, and the alert-and-close rule: exactly
 * one fatal alert on the wire for each kind of failure, none when the
 * client ended the session itself.
 *
 * Also what a test harness is given (tls_conn_set_fault, tls_make_variant,
 * max_version): for each injected fault exactly what goes on the wire,
 * certificates wrong in just the way they claim, and a version cap.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* For tls_compat_set_versions(): a client's versions on either release. */
#include "tls_compat.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "tls.h"
#include "tls_wire.h"

static int failures;

#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		failures++;						\
		fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__,	\
		    #cond);						\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
	}								\
} while (0)

static char certfile[256], keyfile[256];
static struct tls_server *server;

struct client {
	mbedtls_ssl_context	ssl;
	mbedtls_ssl_config	conf;
	int			fd;
};

static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;

static int
cl_send(void *ctx, const unsigned char *b, size_t n)
{
	ssize_t r = send(*(int *)ctx, b, n, MSG_NOSIGNAL);

	if (r < 0)
		return errno == EAGAIN ? MBEDTLS_ERR_SSL_WANT_WRITE :
		    MBEDTLS_ERR_NET_SEND_FAILED;
	return (int)r;
}

static int
cl_recv(void *ctx, unsigned char *b, size_t n)
{
	ssize_t r = recv(*(int *)ctx, b, n, 0);

	if (r < 0)
		return errno == EAGAIN ? MBEDTLS_ERR_SSL_WANT_READ :
		    MBEDTLS_ERR_NET_RECV_FAILED;
	return (int)r;
}

static void
client_init(struct client *c, int fd, const int *suites)
{
	mbedtls_ssl_init(&c->ssl);
	mbedtls_ssl_config_init(&c->conf);
	mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
	mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &drbg);
	if (suites != NULL)
		mbedtls_ssl_conf_ciphersuites(&c->conf, suites);
	mbedtls_ssl_setup(&c->ssl, &c->conf);
	c->fd = fd;
	mbedtls_ssl_set_bio(&c->ssl, &c->fd, cl_send, cl_recv, NULL);
}

static void
client_free(struct client *c)
{
	mbedtls_ssl_free(&c->ssl);
	mbedtls_ssl_config_free(&c->conf);
}

static void
pair(int sv[2], int sndbuf)
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		abort();
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	if (sndbuf > 0) {
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf,
		    sizeof(sndbuf));
		setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sndbuf,
		    sizeof(sndbuf));
	}
}

/* Step both sides until the server's handshake ends; its result. */
static int
handshake(struct tls_conn *t, struct client *c)
{
	int s = TLS_WANT_READ, r = MBEDTLS_ERR_SSL_WANT_READ, i;

	for (i = 0; i < 1000; i++) {
		if (r == MBEDTLS_ERR_SSL_WANT_READ ||
		    r == MBEDTLS_ERR_SSL_WANT_WRITE)
			r = mbedtls_ssl_handshake(&c->ssl);
		s = tls_conn_handshake(t);
		if (s == TLS_OK && r == 0)
			return TLS_OK;
		if (s == TLS_ERR)
			return TLS_ERR;
	}
	return s;
}

/* Count the alert records in what the server sent to the raw client. */
static int
alerts_on_wire(int fd, int *desc, bool *eof)
{
	unsigned char buf[16384];
	size_t len = 0, off = 0;
	ssize_t n;
	int count = 0;

	*eof = false;
	while ((n = recv(fd, buf + len, sizeof(buf) - len, 0)) > 0)
		len += (size_t)n;
	if (n == 0)
		*eof = true;
	while (off + 5 <= len) {
		size_t rl = (size_t)buf[off + 3] << 8 | buf[off + 4];

		if (buf[off] == TLS_CT_ALERT && rl == 2 && off + 7 <= len) {
			count++;
			*desc = buf[off + 6];
			CHECK(buf[off + 5] == 2, "alert level %d", buf[off + 5]);
			CHECK(buf[off + 1] == 3 && buf[off + 2] >= 1,
			    "record version %d.%d", buf[off + 1],
			    buf[off + 2]);
		}
		off += 5 + rl;
	}
	return count;
}

static void
test_handshake_and_data(void)
{
	struct tls_conn *t;
	struct client c;
	int sv[2], r, i;
	char *big, *got;
	size_t total = 200 * 1024, sent = 0, recvd = 0, len;
	ssize_t w;

	pair(sv, 4096);
	t = tls_conn_create(server, sv[0]);
	client_init(&c, sv[1], NULL);
	r = handshake(t, &c);
	CHECK(r == TLS_OK, "handshake %d", r);
	CHECK(strncmp(tls_conn_version(t), "TLSv1.", 6) == 0, "version %s",
	    tls_conn_version(t));
	CHECK(strstr(tls_conn_cipher(t), "ECDHE-ECDSA") != NULL ||
	    strncmp(tls_conn_cipher(t), "TLS1-3", 6) == 0, "cipher %s",
	    tls_conn_cipher(t));

	/*
	 * A write that blocks is retried with the same leading bytes but a
	 * longer length (replies were appended meanwhile): what arrives
	 * must be exactly the bytes, in order, none twice.
	 */
	big = malloc(total);
	got = malloc(total);
	for (i = 0; i < (int)total; i++)
		big[i] = (char)(i * 7 + i / 251);
	len = 1000;
	for (i = 0; i < 100000 && recvd < total; i++) {
		if (sent < total) {
			if (len > total - sent)
				len = total - sent;
			w = tls_conn_write(t, big + sent, len);
			if (w > 0) {
				sent += (size_t)w;
				len = 1000;
			} else {
				CHECK(w == TLS_WANT_WRITE, "write %zd", w);
				len += 1000;	/* the queue grew */
			}
		}
		r = mbedtls_ssl_read(&c.ssl, (unsigned char *)got + recvd,
		    total - recvd);
		if (r > 0)
			recvd += (size_t)r;
	}
	CHECK(recvd == total && memcmp(big, got, total) == 0,
	    "received %zu of %zu, equal=%d", recvd, total,
	    recvd == total && memcmp(big, got, total) == 0);

	/* Client to server: three records, read in small pieces. */
	memset(got, 0, total);
	for (i = 0; i < 3; i++)
		while (mbedtls_ssl_write(&c.ssl, (const unsigned char *)"abcdefghij",
		    10) == MBEDTLS_ERR_SSL_WANT_WRITE)
			;
	recvd = 0;
	for (i = 0; i < 1000 && recvd < 30; i++) {
		w = tls_conn_read(t, got + recvd, 4);
		if (w > 0) {
			recvd += (size_t)w;
			if (recvd % 10 != 0)
				CHECK(tls_conn_pending(t),
				    "bytes left in a record must be pending");
		}
	}
	CHECK(recvd == 30 && memcmp(got, "abcdefghijabcdefghijabcdefghij",
	    30) == 0, "read %zu", recvd);

	/* close_notify reads as EOF. */
	mbedtls_ssl_close_notify(&c.ssl);
	for (i = 0; i < 100 && (w = tls_conn_read(t, got, 10)) < 0; i++)
		;
	CHECK(w == 0, "after close_notify %zd", w);
	free(big);
	free(got);
	client_free(&c);
	tls_conn_destroy(t);
	close(sv[0]);
	close(sv[1]);
}

/* The server fails; the raw client end must see one alert, then EOF. */
static void
expect_failure(const char *name, struct tls_conn *t, const int sv[2],
    const char *cls, int want_alert, bool by_us)
{
	struct tls_failure f;
	int desc = -1, n, i;
	bool eof;

	for (i = 0; i < 100 && tls_conn_send_alert(t) != 0; i++)
		;
	tls_conn_failure(t, &f);
	CHECK(strcmp(f.class_name, cls) == 0, "%s: class %s, want %s", name,
	    f.class_name, cls);
	/* What the daemon does next: half-close.  Then read it all. */
	shutdown(sv[0], SHUT_WR);
	n = alerts_on_wire(sv[1], &desc, &eof);
	CHECK(eof, "%s: no EOF after the alert", name);
	if (want_alert < 0) {
		CHECK(n == 0, "%s: %d alerts, want none", name, n);
		CHECK(f.alert_sent == TLS_ALERT_NONE, "%s: alert_sent %d",
		    name, f.alert_sent);
	} else {
		CHECK(n == 1, "%s: %d alerts on the wire, want 1", name, n);
		CHECK(desc == want_alert, "%s: alert %d, want %d", name, desc,
		    want_alert);
		CHECK(f.alert_sent == want_alert, "%s: reported %d", name,
		    f.alert_sent);
		CHECK(f.alert_by_us == by_us, "%s: by_us %d", name,
		    f.alert_by_us);
	}
}

static struct tls_conn *
raw_failure(int sv[2], const void *bytes, size_t n)
{
	struct tls_conn *t;
	int r, i;

	pair(sv, 0);
	t = tls_conn_create(server, sv[0]);
	if (n > 0 && send(sv[1], bytes, n, 0) != (ssize_t)n)
		abort();
	for (i = 0; i < 10 && (r = tls_conn_handshake(t)) != TLS_ERR; i++)
		;
	return t;
}

static void
test_failures(void)
{
	static const char smtp[] = "EHLO client.example\r\n";
	static const unsigned char garbage[] = { 0x16, 3, 1, 0, 5, 'h', 'e',
	    'l', 'l', 'o' };
	static const unsigned char client_alert[] = { 21, 3, 3, 0, 2, 2, 48 };
	static const int rsa_only[] = { 0x002f, 0 };
	struct tls_conn *t;
	struct client c;
	int sv[2], r, i;

	t = raw_failure(sv, smtp, sizeof(smtp) - 1);
	expect_failure("smtp text", t, sv, "not_tls", 10, true);
	tls_conn_destroy(t);
	close(sv[0]);
	close(sv[1]);

	t = raw_failure(sv, garbage, sizeof(garbage));
	expect_failure("bad hello", t, sv, "decode_error", 50, true);
	tls_conn_destroy(t);
	close(sv[0]);
	close(sv[1]);

	/* The client's own fatal alert is never answered with one. */
	t = raw_failure(sv, client_alert, sizeof(client_alert));
	expect_failure("client alert", t, sv, "client_alert", -1, false);
	tls_conn_destroy(t);
	close(sv[0]);
	close(sv[1]);

	/* EOF before the hello: nothing to say. */
	pair(sv, 0);
	t = tls_conn_create(server, sv[0]);
	shutdown(sv[1], SHUT_WR);
	for (i = 0; i < 10 && tls_conn_handshake(t) != TLS_ERR; i++)
		;
	expect_failure("eof", t, sv, "eof", -1, false);
	tls_conn_destroy(t);
	close(sv[0]);
	close(sv[1]);

	/* A stall: the caller's timer fails it, with handshake_failure. */
	pair(sv, 0);
	t = tls_conn_create(server, sv[0]);
	CHECK(tls_conn_handshake(t) == TLS_WANT_READ, "stall");
	tls_conn_timeout(t);
	CHECK(tls_conn_handshake(t) == TLS_ERR, "after timeout");
	expect_failure("timeout", t, sv, "timeout", 40, true);
	tls_conn_destroy(t);
	close(sv[0]);
	close(sv[1]);

	/* No shared suite: mbedTLS sends handshake_failure itself. */
	pair(sv, 0);
	t = tls_conn_create(server, sv[0]);
	client_init(&c, sv[1], rsa_only);
	r = mbedtls_ssl_handshake(&c.ssl);	/* ClientHello out */
	CHECK(r == MBEDTLS_ERR_SSL_WANT_READ, "client %d", r);
	for (i = 0; i < 10 && tls_conn_handshake(t) != TLS_ERR; i++)
		;
	expect_failure("no shared cipher", t, sv, "no_shared_cipher", 40,
	    false);
	client_free(&c);
	tls_conn_destroy(t);
	close(sv[0]);
	close(sv[1]);
}

/* ClientHello parser: a real hello parses; no prefix of it does. */
static void
test_hello_parser(void)
{
	struct tls_hello_info info;
	static const int ours[] = { 0xc02b, 0 };
	static const uint16_t groups[] = { 29 };
	struct client c;
	struct tls_stream st;
	unsigned char buf[4096];
	int sv[2], r;
	ssize_t n;
	size_t i;

	pair(sv, 0);
	client_init(&c, sv[1], NULL);
	mbedtls_ssl_set_hostname(&c.ssl, "mx.example");
	r = mbedtls_ssl_handshake(&c.ssl);
	CHECK(r == MBEDTLS_ERR_SSL_WANT_READ, "client %d", r);
	n = recv(sv[0], buf, sizeof(buf), 0);
	CHECK(n > 5, "hello bytes %zd", n);
	tls_stream_init(&st, true);
	for (i = 0; i < (size_t)n; i++)	/* byte by byte */
		tls_stream_feed(&st, buf + i, 1);
	CHECK(st.hello_done && st.hello_len == (size_t)n - 5, "captured %zu",
	    st.hello_len);
	r = tls_parse_client_hello(st.hello, st.hello_len, ours, groups, 1,
	    &info);
	CHECK(r == 0 && info.parsed, "parse %d", r);
	CHECK(strcmp(info.sni, "mx.example") == 0, "sni '%s'", info.sni);
	CHECK(info.cipher_match && info.has_groups && info.group_match,
	    "match %d %d %d", info.cipher_match, info.has_groups,
	    info.group_match);
	CHECK(info.max_version >= 0x0303 && info.nciphers > 1,
	    "version %04x ciphers %u", info.max_version, info.nciphers);
	for (i = 0; i < st.hello_len; i++)
		CHECK(tls_parse_client_hello(st.hello, i, ours, groups, 1,
		    &info) != 0, "prefix %zu parsed", i);
	tls_stream_finish(&st);
	client_free(&c);
	close(sv[0]);
	close(sv[1]);
}

/* ---- what a harness is given ------------------------------------------ */

static char dirname_[64];

static struct tls_server *
make_server(const char *cert, const char *key, int min, int max, char *err,
    size_t errlen)
{
	struct tls_keypair_files kp = { cert, key };
	struct tls_server_conf sc;

	memset(&sc, 0, sizeof(sc));
	sc.pairs = &kp;
	sc.npairs = 1;
	sc.min_version = min;
	sc.max_version = max;
	return tls_server_create(&sc, err, errlen);
}

static void
test_alert_names(void)
{
	int d, known = 0;

	for (d = 0; d <= 255; d++) {
		const char *n = tls_alert_name(d);

		if (strcmp(n, "unknown") == 0)
			continue;
		known++;
		CHECK(tls_alert_by_name(n) == d, "%s: %d, want %d", n,
		    tls_alert_by_name(n), d);
	}
	CHECK(known >= 28, "%d names", known);
	CHECK(tls_alert_by_name("handshake_failure") == 40, "40");
	CHECK(tls_alert_by_name("Protocol_Version") == 70, "any case");
	CHECK(tls_alert_by_name("close_notify") == 0, "close_notify");
	CHECK(tls_alert_by_name("unknown") == -1, "unknown");
	CHECK(tls_alert_by_name("encrypted") == -1, "encrypted");
	CHECK(tls_alert_by_name("") == -1, "empty");
	CHECK(tls_alert_by_name("handshake_failure ") == -1, "trailing space");
}

/* All the server sent, up to its half-close. */
struct wire {
	unsigned char	 buf[65536];
	size_t		 len;
	bool		 eof;
};

struct rec {
	int		 type;
	size_t		 len;
	const unsigned char *body;
};

static void
wire_read(int fd, struct wire *w)
{
	ssize_t n;

	w->len = 0;
	w->eof = false;
	while ((n = recv(fd, w->buf + w->len, sizeof(w->buf) - w->len,
	    0)) > 0)
		w->len += (size_t)n;
	w->eof = n == 0;
}

/* Split into records; false if the octets are not whole records. */
static bool
wire_records(const struct wire *w, struct rec *r, size_t max, size_t *nr)
{
	size_t off = 0;

	*nr = 0;
	while (off + 5 <= w->len && *nr < max) {
		size_t rl = (size_t)w->buf[off + 3] << 8 | w->buf[off + 4];

		if (w->buf[off] < TLS_CT_CHANGE_CIPHER_SPEC ||
		    w->buf[off] > TLS_CT_APPLICATION_DATA ||
		    w->buf[off + 1] != 3 || off + 5 + rl > w->len)
			return false;
		r[*nr].type = w->buf[off];
		r[*nr].len = rl;
		r[*nr].body = w->buf + off + 5;
		(*nr)++;
		off += 5 + rl;
	}
	return off == w->len;
}

/*
 * One handshake with this fault.  The client's ClientHello goes out,
 * then only the server steps (the client reads nothing), until it
 * fails; then the alert, if any, and the half-close, as the daemon
 * does.  What came out is in *w; f->hello is a copy that outlives the
 * connection.
 */
static void
fault_run(struct tls_server *srv, const struct tls_fault *fault,
    struct wire *w, struct tls_failure *f, char *version, size_t vlen)
{
	static struct tls_hello_info hello;
	struct tls_conn *t;
	struct client c;
	int sv[2], r = TLS_WANT_READ, i;

	pair(sv, 0);
	t = tls_conn_create(srv, sv[0]);
	tls_conn_set_fault(t, fault);
	client_init(&c, sv[1], NULL);
	r = mbedtls_ssl_handshake(&c.ssl);	/* ClientHello out */
	CHECK(r == MBEDTLS_ERR_SSL_WANT_READ, "client %d", r);
	for (i = 0; i < 10 && (r = tls_conn_handshake(t)) != TLS_ERR; i++)
		;
	CHECK(r == TLS_ERR, "fault %d/%d: handshake %d", fault->kind,
	    fault->step, r);
	for (i = 0; i < 100 && tls_conn_send_alert(t) != 0; i++)
		;
	tls_conn_failure(t, f);
	hello = *f->hello;
	f->hello = &hello;
	snprintf(version, vlen, "%s", tls_conn_version(t));
	shutdown(sv[0], SHUT_WR);
	wire_read(sv[1], w);
	CHECK(w->eof, "fault %d/%d: no EOF", fault->kind, fault->step);
	client_free(&c);
	tls_conn_destroy(t);
	close(sv[0]);
	close(sv[1]);
}

/*
 * The same through a small socket buffer read slowly, so that the
 * server's flight blocks half-way: the fault must wait for all of it.
 * Whether it blocked is in *blocked.
 */
static void
fault_run_slow(struct tls_server *srv, const struct tls_fault *fault,
    struct wire *w, bool *blocked)
{
	struct tls_conn *t;
	struct client c;
	int sv[2], r = TLS_WANT_READ, i;
	ssize_t n;

	pair(sv, 1024);
	t = tls_conn_create(srv, sv[0]);
	tls_conn_set_fault(t, fault);
	client_init(&c, sv[1], NULL);
	r = mbedtls_ssl_handshake(&c.ssl);	/* ClientHello out */
	CHECK(r == MBEDTLS_ERR_SSL_WANT_READ, "client %d", r);
	w->len = 0;
	*blocked = false;
	for (i = 0; i < 10000; i++) {
		r = tls_conn_handshake(t);
		if (r == TLS_ERR)
			break;
		if (r == TLS_WANT_WRITE)
			*blocked = true;
		n = recv(sv[1], w->buf + w->len, 64, 0);
		if (n > 0)
			w->len += (size_t)n;
	}
	CHECK(r == TLS_ERR, "slow: handshake %d", r);
	for (i = 0; i < 10000 && tls_conn_send_alert(t) != 0; i++) {
		n = recv(sv[1], w->buf + w->len, 64, 0);
		if (n > 0)
			w->len += (size_t)n;
	}
	shutdown(sv[0], SHUT_WR);
	while ((n = recv(sv[1], w->buf + w->len, sizeof(w->buf) - w->len,
	    0)) > 0)
		w->len += (size_t)n;
	w->eof = n == 0;
	CHECK(w->eof, "slow: no EOF");
	client_free(&c);
	tls_conn_destroy(t);
	close(sv[0]);
	close(sv[1]);
}

/*
 * The same, with the client stepping too: what a real client makes of
 * it.  Its last handshake result.
 */
static int
fault_client(struct tls_server *srv, const struct tls_fault *fault)
{
	struct tls_conn *t;
	struct client c;
	int sv[2], r, i;

	pair(sv, 0);
	t = tls_conn_create(srv, sv[0]);
	tls_conn_set_fault(t, fault);
	client_init(&c, sv[1], NULL);
	r = handshake(t, &c);
	CHECK(r == TLS_ERR, "fault %d/%d: handshake %d", fault->kind,
	    fault->step, r);
	for (i = 0; i < 100 && tls_conn_send_alert(t) != 0; i++)
		;
	shutdown(sv[0], SHUT_WR);
	for (i = 0; i < 100; i++) {
		r = mbedtls_ssl_handshake(&c.ssl);
		if (r != MBEDTLS_ERR_SSL_WANT_READ &&
		    r != MBEDTLS_ERR_SSL_WANT_WRITE)
			break;
	}
	/* A TLS 1.3 client is done once its Finished is out: read on. */
	for (i = 0; r == 0 && i < 100; i++) {
		unsigned char b[64];

		r = mbedtls_ssl_read(&c.ssl, b, sizeof(b));
		if (r == MBEDTLS_ERR_SSL_WANT_READ ||
		    r == MBEDTLS_ERR_SSL_WANT_WRITE)
			r = 0;
		else if (r >= 0)
			r = -1;	/* data, or EOF: no alert */
	}
	client_free(&c);
	tls_conn_destroy(t);
	close(sv[0]);
	close(sv[1]);
	return r;
}

static void
check_injected(const char *name, const struct tls_failure *f, int alert,
    const char *step)
{
	CHECK(strcmp(f->class_name, "injected") == 0 &&
	    f->cls == TLS_FAIL_INJECTED, "%s: class %s", name, f->class_name);
	CHECK(f->alert_sent == alert, "%s: alert_sent %d, want %d", name,
	    f->alert_sent, alert);
	if (alert != TLS_ALERT_NONE)
		CHECK(f->alert_by_us, "%s: alert not by us", name);
	CHECK(f->lib_error == 0, "%s: lib_error -0x%04x", name, -f->lib_error);
	CHECK(strcmp(f->step, step) == 0, "%s: step %s, want %s", name,
	    f->step, step);
	CHECK(f->hello != NULL && f->hello->parsed, "%s: hello not parsed",
	    name);
}

static void
test_faults_on_hello(void)
{
	static const char junk[] = "this is not TLS\r\n";
	struct tls_fault fault;
	struct tls_failure f;
	struct wire *w = calloc(1, sizeof(*w));
	struct rec recs[64];
	char version[32];
	size_t nr, i;
	int r;

	/* ALERT on the ClientHello: that alert alone, plaintext. */
	memset(&fault, 0, sizeof(fault));
	fault.kind = TLS_FAULT_ALERT;
	fault.step = TLS_STEP_CLIENT_HELLO;
	fault.alert = 71;	/* insufficient_security: none of ours */
	fault_run(server, &fault, w, &f, version, sizeof(version));
	check_injected("alert on hello", &f, 71, "client_hello");
	CHECK(w->len == 7 && memcmp(w->buf, "\x15\x03\x03\x00\x02\x02\x47",
	    7) == 0, "alert on hello: %zu octets", w->len);
	r = fault_client(server, &fault);
	CHECK(r == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE,
	    "alert on hello: client -0x%04x", -r);

	/* CLOSE on the ClientHello: nothing at all. */
	fault.kind = TLS_FAULT_CLOSE;
	fault.alert = 0;
	fault_run(server, &fault, w, &f, version, sizeof(version));
	check_injected("close on hello", &f, TLS_ALERT_NONE, "client_hello");
	CHECK(w->len == 0, "close on hello: %zu octets", w->len);

	/* GARBAGE: no record, no alert, just the octets. */
	fault.kind = TLS_FAULT_GARBAGE;
	fault_run(server, &fault, w, &f, version, sizeof(version));
	check_injected("garbage", &f, TLS_ALERT_NONE, "client_hello");
	CHECK(w->len >= 24 && w->len <= 128 && w->len % (sizeof(junk) - 1) ==
	    0, "garbage: %zu octets", w->len);
	for (i = 0; i + sizeof(junk) - 1 <= w->len; i += sizeof(junk) - 1)
		CHECK(memcmp(w->buf + i, junk, sizeof(junk) - 1) == 0,
		    "garbage at %zu", i);
	CHECK(!wire_records(w, recs, 64, &nr), "garbage parses as records");
	r = fault_client(server, &fault);
	CHECK(r != 0 && r != MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE,
	    "garbage: client -0x%04x", -r);
	free(w);
}

/* ALERT and CLOSE after the first flight, on this server's version. */
static void
faults_after_flight(struct tls_server *srv, struct tls_server *big,
    const char *want_version)
{
	struct tls_fault fault;
	struct tls_failure f;
	struct wire *w = calloc(1, sizeof(*w));
	struct rec recs[64];
	char version[32];
	size_t nr, nflight, i, alerts;
	bool tls13, blocked;
	int r;

	/* CLOSE: the flight, then nothing. */
	memset(&fault, 0, sizeof(fault));
	fault.kind = TLS_FAULT_CLOSE;
	fault.step = TLS_STEP_SERVER_HELLO;
	fault_run(srv, &fault, w, &f, version, sizeof(version));
	CHECK(strcmp(version, want_version) == 0, "version %s, want %s",
	    version, want_version);
	tls13 = strcmp(version, "TLSv1.3") == 0;
	check_injected(version, &f, TLS_ALERT_NONE, "server_hello");
	CHECK(wire_records(w, recs, 64, &nflight), "%s: not records",
	    version);
	CHECK(nflight >= 3 && recs[0].type == TLS_CT_HANDSHAKE &&
	    recs[0].len > 0 && recs[0].body[0] == 2, "%s: no ServerHello",
	    version);
	for (i = 0; i < nflight; i++)
		CHECK(recs[i].type != TLS_CT_ALERT, "%s close: an alert",
		    version);
	if (!tls13)
		CHECK(nflight > 0 && recs[nflight - 1].type ==
		    TLS_CT_HANDSHAKE && recs[nflight - 1].body[0] == 14,
		    "%s close: ends without ServerHelloDone", version);

	/* ALERT: the same flight, then one alert, the last record. */
	fault.kind = TLS_FAULT_ALERT;
	fault.alert = 70;	/* protocol_version */
	fault_run(srv, &fault, w, &f, version, sizeof(version));
	check_injected(version, &f, 70, "server_hello");
	CHECK(wire_records(w, recs, 64, &nr), "%s: not records", version);
	CHECK(nr == nflight + 1, "%s: %zu records, flight %zu", version, nr,
	    nflight);
	CHECK(nr > 0 && recs[0].type == TLS_CT_HANDSHAKE &&
	    recs[0].len > 0 && recs[0].body[0] == 2, "%s: no ServerHello",
	    version);
	for (i = alerts = 0; i < nr; i++)
		alerts += recs[i].type == TLS_CT_ALERT;
	if (tls13) {
		/*
		 * Encrypted: application_data, 2 octets, the inner type,
		 * padding (mbedTLS 3.x pads to 16) and the tag.  The client
		 * below reads it as the alert.
		 */
		CHECK(alerts == 0 && nr > 0 &&
		    recs[nr - 1].type == TLS_CT_APPLICATION_DATA &&
		    recs[nr - 1].len >= 19 && recs[nr - 1].len <= 64,
		    "%s: the last record is no alert", version);
	} else {
		/* Before ChangeCipherSpec: plaintext, after ServerHelloDone. */
		CHECK(alerts == 1, "%s: %zu alerts", version, alerts);
		CHECK(nr > 0 && recs[nr - 1].type == TLS_CT_ALERT &&
		    recs[nr - 1].len == 2 && recs[nr - 1].body[0] == 2 &&
		    recs[nr - 1].body[1] == 70, "%s: the alert is not last",
		    version);
		for (i = 0; i + 1 < nr; i++)
			CHECK(recs[i].type == TLS_CT_HANDSHAKE,
			    "%s: record %zu type %d", version, i,
			    recs[i].type);
	}
	/*
	 * The same when the flight blocks half-way (its Certificate is
	 * larger than the socket buffer): the flight, then the alert.
	 */
	fault_run_slow(big, &fault, w, &blocked);
	CHECK(blocked, "%s: the flight never blocked", version);
	CHECK(wire_records(w, recs, 64, &nr), "%s slow: not records",
	    version);
	CHECK(nr == nflight + 1, "%s slow: %zu records, flight %zu", version,
	    nr, nflight);
	CHECK(nr > 0 && recs[0].type == TLS_CT_HANDSHAKE && recs[0].len > 0 &&
	    recs[0].body[0] == 2, "%s slow: no ServerHello", version);
	for (i = alerts = 0; i < nr; i++)
		alerts += recs[i].type == TLS_CT_ALERT;
	CHECK(alerts == (tls13 ? 0 : 1), "%s slow: %zu alerts", version,
	    alerts);

	/*
	 * What the client makes of it.  In TLS 1.3 records after the
	 * server's Finished must use the application keys (RFC 8446 4.4.4),
	 * but mbedTLS 3.6 stays on the handshake keys until the client's
	 * Finished (Mbed-TLS/mbedtls#10877): the client, on the new keys,
	 * sees a bad MAC where the alert is.  Either is one record, and the
	 * end of the handshake.
	 */
	r = fault_client(srv, &fault);
	CHECK(r == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE ||
	    (tls13 && r == MBEDTLS_ERR_SSL_INVALID_MAC),
	    "%s alert after flight: client -0x%04x", version, -r);
	free(w);
}

/* A copy of the test pair whose chain repeats the certificate n times. */
static void
big_chain(const char *path, int n)
{
	char buf[8192];
	size_t len;
	FILE *in, *out;
	int i;

	in = fopen(certfile, "r");
	out = fopen(path, "w");
	if (in == NULL || out == NULL)
		abort();
	len = fread(buf, 1, sizeof(buf), in);
	for (i = 0; i < n; i++)
		fwrite(buf, 1, len, out);
	fclose(in);
	fclose(out);
}

static void
test_faults_after_flight(void)
{
	struct tls_server *s12, *big, *big12;
	char chain[128], err[256];

	snprintf(chain, sizeof(chain), "%s/chain.pem", dirname_);
	big_chain(chain, 16);
	big = make_server(chain, keyfile, TLS_V12, 0, err, sizeof(err));
	CHECK(big != NULL, "big chain: %s", err);
	if (big == NULL)
		return;
	faults_after_flight(server, big, tls_max_version() >= TLS_V13 ?
	    "TLSv1.3" : "TLSv1.2");
	if (tls_max_version() >= TLS_V13) {
		s12 = make_server(certfile, keyfile, TLS_V12, TLS_V12, err,
		    sizeof(err));
		CHECK(s12 != NULL, "server 1.2: %s", err);
		big12 = make_server(chain, keyfile, TLS_V12, TLS_V12, err,
		    sizeof(err));
		CHECK(big12 != NULL, "big chain 1.2: %s", err);
		if (s12 != NULL && big12 != NULL)
			faults_after_flight(s12, big12, "TLSv1.2");
		tls_server_destroy(s12);
		tls_server_destroy(big12);
	}
	tls_server_destroy(big);
	unlink(chain);
}

static bool
readable(int fd)
{
	char b;

	return recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

static void
test_stall(void)
{
	struct tls_fault fault;
	struct tls_failure f;
	struct tls_conn *t;
	struct client c;
	struct wire *w = calloc(1, sizeof(*w));
	int sv[2], r, i;

	memset(&fault, 0, sizeof(fault));
	fault.kind = TLS_FAULT_STALL;
	pair(sv, 0);
	t = tls_conn_create(server, sv[0]);
	tls_conn_set_fault(t, &fault);
	client_init(&c, sv[1], NULL);
	for (i = 0; i < 5; i++) {
		r = mbedtls_ssl_handshake(&c.ssl);
		CHECK(r == MBEDTLS_ERR_SSL_WANT_READ, "client %d", r);
		CHECK(tls_conn_handshake(t) == TLS_WANT_READ, "stall %d", i);
		CHECK(!readable(sv[0]), "stall %d: left unread", i);
		CHECK(!readable(sv[1]), "stall %d: an answer", i);
	}
	if (send(sv[1], "more", 4, 0) != 4)
		abort();
	CHECK(tls_conn_handshake(t) == TLS_WANT_READ, "stall after more");
	CHECK(!readable(sv[0]), "stall: more left unread");
	shutdown(sv[1], SHUT_WR);
	CHECK(tls_conn_handshake(t) == TLS_ERR, "stall at EOF");
	CHECK(tls_conn_send_alert(t) == 0, "stall: send_alert");
	tls_conn_failure(t, &f);
	CHECK(strcmp(f.class_name, "eof") == 0, "stall: class %s",
	    f.class_name);
	CHECK(f.alert_sent == TLS_ALERT_NONE, "stall: alert %d", f.alert_sent);
	CHECK(f.hello != NULL && f.hello->parsed, "stall: hello not parsed");
	shutdown(sv[0], SHUT_WR);
	wire_read(sv[1], w);
	CHECK(w->eof && w->len == 0, "stall: %zu octets, eof %d", w->len,
	    w->eof);
	client_free(&c);
	tls_conn_destroy(t);
	close(sv[0]);
	close(sv[1]);
	free(w);
}

/* The certificates made wrong on purpose. */
static void
test_cert_variants(void)
{
	static const struct {
		enum tls_cert_variant	 v;
		const char		*name;
	} vs[] = {
		{ TLS_CERT_EXPIRED, "expired" },
		{ TLS_CERT_WRONG_NAME, "wrong_name" },
		{ TLS_CERT_UNTRUSTED, "untrusted" },
	};
	char cert[128], key[128], err[256], dn[256];
	const char *want_cn;
	mbedtls_x509_crt crt;
	struct tls_server *s;
	uint32_t flags;
	time_t now = time(NULL);
	struct tm y1, y2, ago;
	size_t i;
	int r;

	/* Yesterday (either side of a midnight passing meanwhile). */
	gmtime_r(&(time_t){ now - 86400 }, &y1);
	gmtime_r(&(time_t){ now - 86400 - 120 }, &y2);
	gmtime_r(&(time_t){ now - 2 * 365 * 86400L }, &ago);
	for (i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
		snprintf(cert, sizeof(cert), "%s/%s.pem", dirname_, vs[i].name);
		snprintf(key, sizeof(key), "%s/%s.key", dirname_, vs[i].name);
		r = tls_make_variant(cert, key, "mx.example", vs[i].v, err,
		    sizeof(err));
		CHECK(r == 0, "%s: %s", vs[i].name, err);
		if (r != 0)
			continue;
		/* The pair loads: the key is the certificate's. */
		s = make_server(cert, key, TLS_V12, 0, err, sizeof(err));
		CHECK(s != NULL, "%s: server: %s", vs[i].name, err);
		tls_server_destroy(s);

		mbedtls_x509_crt_init(&crt);
		r = mbedtls_x509_crt_parse_file(&crt, cert);
		CHECK(r == 0, "%s: parse -0x%04x", vs[i].name, -r);
		if (r != 0) {
			mbedtls_x509_crt_free(&crt);
			continue;
		}
		CHECK(crt.next == NULL, "%s: more than one certificate",
		    vs[i].name);
		CHECK(strcmp(mbedtls_pk_get_name(&crt.pk), "EC") == 0 &&
		    mbedtls_pk_get_bitlen(&crt.pk) == 256, "%s: key %s-%zu",
		    vs[i].name, mbedtls_pk_get_name(&crt.pk),
		    mbedtls_pk_get_bitlen(&crt.pk));
		want_cn = vs[i].v == TLS_CERT_WRONG_NAME ?
		    "wrong-name.invalid" : "mx.example";
		mbedtls_x509_dn_gets(dn, sizeof(dn), &crt.subject);
		CHECK(strncmp(dn, "CN=", 3) == 0 && strcmp(dn + 3, want_cn) ==
		    0, "%s: subject %s", vs[i].name, dn);
		/* One dNSName SAN, the same name. */
		CHECK(crt.subject_alt_names.buf.p != NULL &&
		    crt.subject_alt_names.next == NULL &&
		    crt.subject_alt_names.buf.tag ==
		    (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2) &&
		    crt.subject_alt_names.buf.len == strlen(want_cn) &&
		    memcmp(crt.subject_alt_names.buf.p, want_cn,
		    strlen(want_cn)) == 0, "%s: SAN", vs[i].name);
		if (vs[i].v == TLS_CERT_EXPIRED) {
			CHECK(mbedtls_x509_time_is_past(&crt.valid_to),
			    "expired: not past");
			CHECK((crt.valid_to.year == y1.tm_year + 1900 &&
			    crt.valid_to.mon == y1.tm_mon + 1 &&
			    crt.valid_to.day == y1.tm_mday) ||
			    (crt.valid_to.year == y2.tm_year + 1900 &&
			    crt.valid_to.mon == y2.tm_mon + 1 &&
			    crt.valid_to.day == y2.tm_mday),
			    "expired: notAfter %04d-%02d-%02d",
			    crt.valid_to.year, crt.valid_to.mon,
			    crt.valid_to.day);
			CHECK(crt.valid_from.year == ago.tm_year + 1900 &&
			    crt.valid_from.mon == ago.tm_mon + 1,
			    "expired: notBefore %04d-%02d", crt.valid_from.year,
			    crt.valid_from.mon);
		} else {
			CHECK(!mbedtls_x509_time_is_past(&crt.valid_to) &&
			    !mbedtls_x509_time_is_future(&crt.valid_from),
			    "%s: not valid now", vs[i].name);
		}
		if (vs[i].v == TLS_CERT_UNTRUSTED) {
			CHECK(crt.issuer_raw.len != crt.subject_raw.len ||
			    memcmp(crt.issuer_raw.p, crt.subject_raw.p,
			    crt.subject_raw.len) != 0,
			    "untrusted: issuer is the subject");
			mbedtls_x509_dn_gets(dn, sizeof(dn), &crt.issuer);
			CHECK(strstr(dn, "mx.example") == NULL,
			    "untrusted: issuer %s", dn);
		} else {
			CHECK(crt.issuer_raw.len == crt.subject_raw.len &&
			    memcmp(crt.issuer_raw.p, crt.subject_raw.p,
			    crt.subject_raw.len) == 0,
			    "%s: not self-issued", vs[i].name);
		}
		/*
		 * Verified as a client would, trusting the certificate
		 * itself: each fails for its reason and no other.
		 */
		flags = 0;
		mbedtls_x509_crt_verify(&crt, &crt, NULL, "mx.example", &flags,
		    NULL, NULL);
		switch (vs[i].v) {
		case TLS_CERT_EXPIRED:
			CHECK(flags == MBEDTLS_X509_BADCERT_EXPIRED,
			    "expired: flags 0x%x", (unsigned)flags);
			break;
		case TLS_CERT_WRONG_NAME:
			CHECK(flags == MBEDTLS_X509_BADCERT_CN_MISMATCH,
			    "wrong_name: flags 0x%x", (unsigned)flags);
			break;
		case TLS_CERT_UNTRUSTED:
			CHECK(flags == MBEDTLS_X509_BADCERT_NOT_TRUSTED,
			    "untrusted: flags 0x%x", (unsigned)flags);
			break;
		}
		mbedtls_x509_crt_free(&crt);
		unlink(cert);
		unlink(key);
	}
	/* The control: the self-signed default passes the same check. */
	mbedtls_x509_crt_init(&crt);
	CHECK(mbedtls_x509_crt_parse_file(&crt, certfile) == 0, "parse");
	flags = 0;
	r = mbedtls_x509_crt_verify(&crt, &crt, NULL, "mx.example", &flags,
	    NULL, NULL);
	CHECK(r == 0 && flags == 0, "selfsigned: -0x%04x flags 0x%x", -r,
	    (unsigned)flags);
	mbedtls_x509_crt_free(&crt);
}

/* A server capped at max, a client that allows min..client_max. */
static int
versions(int max, int cmin, int cmax, char *got, size_t glen)
{
	struct tls_server *s;
	struct tls_conn *t;
	struct client c;
	char err[256];
	int sv[2], r;

	s = make_server(certfile, keyfile, TLS_V12, max, err, sizeof(err));
	CHECK(s != NULL, "max %04x: %s", max, err);
	if (s == NULL)
		return TLS_ERR;
	pair(sv, 0);
	t = tls_conn_create(s, sv[0]);
	mbedtls_ssl_init(&c.ssl);
	mbedtls_ssl_config_init(&c.conf);
	mbedtls_ssl_config_defaults(&c.conf, MBEDTLS_SSL_IS_CLIENT,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	mbedtls_ssl_conf_authmode(&c.conf, MBEDTLS_SSL_VERIFY_NONE);
	mbedtls_ssl_conf_rng(&c.conf, mbedtls_ctr_drbg_random, &drbg);
	tls_compat_set_versions(&c.conf, cmin, cmax);
	mbedtls_ssl_setup(&c.ssl, &c.conf);
	c.fd = sv[1];
	mbedtls_ssl_set_bio(&c.ssl, &c.fd, cl_send, cl_recv, NULL);
	r = handshake(t, &c);
	snprintf(got, glen, "%s", r == TLS_OK ? tls_conn_version(t) : "-");
	if (r == TLS_OK)
		CHECK(strcmp(mbedtls_ssl_get_version(&c.ssl), got) == 0,
		    "client says %s, server %s",
		    mbedtls_ssl_get_version(&c.ssl), got);
	client_free(&c);
	tls_conn_destroy(t);
	tls_server_destroy(s);
	close(sv[0]);
	close(sv[1]);
	return r;
}

static void
test_max_version(void)
{
	struct tls_server *s;
	char got[32], err[256];
	int r;

	if (tls_min_supported_version() <= TLS_V11) {
		/* The cap wins over the floor of 1.2 that the conf asks. */
		r = versions(TLS_V11, TLS_V10, TLS_V12, got, sizeof(got));
		CHECK(r == TLS_OK && strcmp(got, "TLSv1.1") == 0,
		    "max 1.1: %d %s", r, got);
		if (tls_min_supported_version() <= TLS_V10) {
			r = versions(TLS_V10, TLS_V10, TLS_V12, got,
			    sizeof(got));
			CHECK(r == TLS_OK && strcmp(got, "TLSv1.0") == 0,
			    "max 1.0: %d %s", r, got);
		}
		/* A client of 1.2 only: refused, protocol_version. */
		r = versions(TLS_V11, TLS_V12, TLS_V12, got, sizeof(got));
		CHECK(r == TLS_ERR, "max 1.1, client 1.2: %d %s", r, got);
	} else {
		/* No TLS 1.1 in this library: the cap cannot be met. */
		s = make_server(certfile, keyfile, TLS_V12, TLS_V11, err,
		    sizeof(err));
		CHECK(s == NULL && strstr(err, "TLSv1.1") != NULL,
		    "max 1.1 accepted: '%s'", s == NULL ? err : "");
		tls_server_destroy(s);
	}
	r = versions(TLS_V12, TLS_V12, tls_max_version(), got, sizeof(got));
	CHECK(r == TLS_OK && strcmp(got, "TLSv1.2") == 0, "max 1.2: %d %s", r,
	    got);
	r = versions(0, TLS_V12, tls_max_version(), got, sizeof(got));
	CHECK(r == TLS_OK && strcmp(got, tls_max_version() >= TLS_V13 ?
	    "TLSv1.3" : "TLSv1.2") == 0, "no cap: %d %s", r, got);
}

int
main(int argc, char **argv)
{
	struct tls_keypair_files kp;
	struct tls_server_conf sc;
	char dir[] = "/tmp/mxd-test-tls-XXXXXX", err[256];

	if (mkdtemp(dir) == NULL || tls_global_init() != 0)
		return 1;
	snprintf(dirname_, sizeof(dirname_), "%s", dir);
	snprintf(certfile, sizeof(certfile), "%s/c.pem", dir);
	snprintf(keyfile, sizeof(keyfile), "%s/k.pem", dir);
	if (tls_make_selfsigned(certfile, keyfile, "mx.example", err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "selfsigned: %s\n", err);
		return 1;
	}
	kp.cert = certfile;
	kp.key = keyfile;
	memset(&sc, 0, sizeof(sc));
	sc.pairs = &kp;
	sc.npairs = 1;
	sc.min_version = TLS_V12;
	sc.tickets = true;
	sc.ticket_lifetime = 3600;
	server = tls_server_create(&sc, err, sizeof(err));
	if (server == NULL) {
		fprintf(stderr, "server: %s\n", err);
		return 1;
	}
	mbedtls_entropy_init(&entropy);
	mbedtls_ctr_drbg_init(&drbg);
	mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0);

	test_handshake_and_data();
	test_failures();
	test_hello_parser();
	test_alert_names();
	test_faults_on_hello();
	test_faults_after_flight();
	test_stall();
	test_cert_variants();
	test_max_version();

	tls_server_destroy(server);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&entropy);
	unlink(certfile);
	unlink(keyfile);
	rmdir(dir);
	printf("%s (%s)\n", failures ? "FAILED" : "ok", tls_library_version());
	(void)argc;
	(void)argv;
	return failures ? 1 : 0;
}
