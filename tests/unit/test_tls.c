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
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>

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

int
main(int argc, char **argv)
{
	struct tls_keypair_files kp;
	struct tls_server_conf sc;
	char dir[] = "/tmp/mxd-test-tls-XXXXXX", err[256];

	if (mkdtemp(dir) == NULL || tls_global_init() != 0)
		return 1;
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
