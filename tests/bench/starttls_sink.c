/*
 * starttls_sink.c - the cheapest STARTTLS server we can write, to find
 * the ceiling of starttls_load (tests/bench/tls_bench.sh).
 *
 * OpenSSL, blocking, one session at a time, no logging, no delivery:
 * 220, EHLO (250-STARTTLS), STARTTLS (220), the TLS 1.2 handshake, then
 * EHLO and QUIT.  Anything else gets 250 too.  Tickets and OpenSSL's
 * server session cache are on (its defaults), so the client can resume
 * either way.  Prints "listening ADDR:PORT" when ready (port 0 picks
 * one).  Not an SMTP server: it reads commands, not mail.
 *
 *   cc -O2 -o starttls_sink starttls_sink.c -lssl -lcrypto
 *   starttls_sink -p 0 -c CERT -k KEY
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

struct peer {
	int		 fd;
	SSL		*ssl;
	char		 buf[2048];
	size_t		 len;
};

static int
put(struct peer *p, const char *s)
{
	size_t len = strlen(s);

	if (p->ssl != NULL)
		return SSL_write(p->ssl, s, (int)len) == (int)len ? 0 : -1;
	return send(p->fd, s, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* One command line into line (without CRLF); -1 on EOF or error. */
static int
get(struct peer *p, char *line, size_t size)
{
	char *eol;
	ssize_t n;
	size_t ll;

	for (;;) {
		eol = memchr(p->buf, '\n', p->len);
		if (eol != NULL) {
			ll = (size_t)(eol - p->buf) + 1;
			snprintf(line, size, "%.*s", (int)ll, p->buf);
			line[strcspn(line, "\r\n")] = 0;
			memmove(p->buf, eol + 1, p->len - ll);
			p->len -= ll;
			return 0;
		}
		if (p->len == sizeof(p->buf))
			return -1;
		if (p->ssl != NULL)
			n = SSL_read(p->ssl, p->buf + p->len,
			    (int)(sizeof(p->buf) - p->len));
		else
			n = recv(p->fd, p->buf + p->len,
			    sizeof(p->buf) - p->len, 0);
		if (n <= 0)
			return -1;
		p->len += (size_t)n;
	}
}

static void
serve(SSL_CTX *ctx, int fd)
{
	struct peer p = { .fd = fd };
	char line[600];

	if (put(&p, "220 sink ESMTP\r\n") != 0)
		goto out;
	while (get(&p, line, sizeof(line)) == 0) {
		if (strncasecmp(line, "EHLO", 4) == 0) {
			if (put(&p, p.ssl == NULL ? "250-sink\r\n250 STARTTLS"
			    "\r\n" : "250 sink\r\n") != 0)
				break;
		} else if (strcasecmp(line, "STARTTLS") == 0 &&
		    p.ssl == NULL) {
			if (put(&p, "220 go ahead\r\n") != 0)
				break;
			p.len = 0;
			p.ssl = SSL_new(ctx);
			if (p.ssl == NULL || SSL_set_fd(p.ssl, fd) != 1 ||
			    SSL_accept(p.ssl) != 1)
				break;
		} else if (strcasecmp(line, "QUIT") == 0) {
			put(&p, "221 bye\r\n");
			if (p.ssl != NULL)
				SSL_shutdown(p.ssl);
			break;
		} else if (put(&p, "250 ok\r\n") != 0) {
			break;
		}
	}
out:
	ERR_clear_error();
	SSL_free(p.ssl);
	close(fd);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	struct timeval tv = { 10, 0 };
	const char *cert = NULL, *key = NULL;
	SSL_CTX *ctx;
	int ch, lfd, fd, one = 1, port = 0;

	while ((ch = getopt(argc, argv, "p:c:k:")) != -1) {
		switch (ch) {
		case 'p': port = atoi(optarg); break;
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		default:
			fprintf(stderr, "usage: starttls_sink [-p PORT] -c CERT"
			    " -k KEY\n");
			return 2;
		}
	}
	if (cert == NULL || key == NULL) {
		fprintf(stderr, "starttls_sink: -c CERT -k KEY needed\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL ||
	    SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(lfd, 512) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &slen) != 0) {
		perror("starttls_sink: listen");
		return 1;
	}
	printf("listening 127.0.0.1:%u\n", ntohs(sin.sin_port));
	fflush(stdout);
	for (;;) {
		fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("starttls_sink: accept");
			return 1;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		serve(ctx, fd);
	}
}
