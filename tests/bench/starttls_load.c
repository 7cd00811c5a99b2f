/*
 * starttls_load.c - a STARTTLS load client for benchmarks (OpenSSL).
 *
 * Each session: connect, 220, EHLO, STARTTLS, 220, a TLS 1.2 handshake,
 * EHLO, QUIT, 221, close_notify, close.  Sessions run one after another
 * in each of -c processes (forked; they start together), for -n
 * sessions in all or for -d seconds.  With -r a session offers the
 * session (ticket or ID) of the previous one in the same process
 * (SSL_set_session), as an MTA that caches sessions per destination
 * does; SSL_session_reused() counts what the server resumed.
 *
 * One line on stdout at the end, for scripts:
 *
 *   sessions=N resumed=R errors=E wall=S rate=X client_cpu=S \
 *       client_us_per_session=U
 *
 * client_cpu is user+system time of the load processes while they ran,
 * so a script can check the client is not the bottleneck.  -v prints
 * what the first session negotiated (version, cipher, key exchange) on
 * stderr; the first error of each process goes to stderr too.
 *
 * Not a test of correctness: replies are checked only for their codes.
 * Built by tests/bench/tls_bench.sh with cc, not by meson:
 *
 *   cc -O2 -o starttls_load starttls_load.c -lssl -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

/* Give up on a process after this many failures in a row. */
#define MAX_CONSECUTIVE_ERRORS	100

struct opts {
	const char	*host;
	const char	*port;
	const char	*ehlo;
	const char	*sni;		/* NULL: no server_name */
	const char	*ciphers;
	const char	*groups;	/* key exchange groups to offer */
	long		 sessions;	/* in all; 0 with a duration */
	double		 seconds;
	int		 procs;
	bool		 resume;
	bool		 no_ticket;
	bool		 verbose;
};

/* What one process sends back to the parent. */
struct result {
	long		 sessions;	/* completed */
	long		 resumed;
	long		 errors;
	double		 cpu;		/* s, user + system */
	char		 first_error[200];
};

struct line_reader {
	int		 fd;
	SSL		*ssl;		/* NULL: plaintext */
	char		 buf[4096];
	size_t		 len;
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void
ssl_error(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[160];

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "%s", errno ? strerror(errno) :
		    "EOF");
	snprintf(err, errlen, "%s: %s", what, buf);
	ERR_clear_error();
}

static int
send_all(int fd, SSL *ssl, const char *s, char *err, size_t errlen)
{
	size_t len = strlen(s), off = 0;
	ssize_t n;

	while (off < len) {
		if (ssl != NULL) {
			n = SSL_write(ssl, s + off, (int)(len - off));
			if (n <= 0) {
				ssl_error(err, errlen, "SSL_write");
				return -1;
			}
		} else {
			n = send(fd, s + off, len - off, MSG_NOSIGNAL);
			if (n < 0) {
				snprintf(err, errlen, "send: %s",
				    strerror(errno));
				return -1;
			}
		}
		off += (size_t)n;
	}
	return 0;
}

/*
 * Read one whole reply (all its lines) and check its code.  With
 * contains, the reply must also mention that word (STARTTLS in EHLO).
 */
static int
expect(struct line_reader *r, const char *code, const char *contains,
    char *err, size_t errlen)
{
	bool found = contains == NULL;
	char *eol, last;
	ssize_t n;

	for (;;) {
		eol = memchr(r->buf, '\n', r->len);
		if (eol != NULL) {
			size_t ll = (size_t)(eol - r->buf) + 1;

			if (ll < 4 || memcmp(r->buf, code, 3) != 0) {
				snprintf(err, errlen, "expected %s, got "
				    "'%.*s'", code, (int)(ll > 80 ? 80 : ll),
				    r->buf);
				return -1;
			}
			if (!found && memmem(r->buf, ll, contains,
			    strlen(contains)) != NULL)
				found = true;
			last = r->buf[3];
			memmove(r->buf, eol + 1, r->len - ll);
			r->len -= ll;
			if (last == '-')
				continue;
			if (!found) {
				snprintf(err, errlen, "%s reply without %s",
				    code, contains);
				return -1;
			}
			return 0;
		}
		if (r->len == sizeof(r->buf)) {
			snprintf(err, errlen, "reply line too long");
			return -1;
		}
		errno = 0;
		if (r->ssl != NULL) {
			n = SSL_read(r->ssl, r->buf + r->len,
			    (int)(sizeof(r->buf) - r->len));
			if (n <= 0) {
				ssl_error(err, errlen, "SSL_read");
				return -1;
			}
		} else {
			n = recv(r->fd, r->buf + r->len,
			    sizeof(r->buf) - r->len, 0);
			if (n <= 0) {
				snprintf(err, errlen, "recv: %s", n == 0 ?
				    "EOF" : strerror(errno));
				return -1;
			}
		}
		r->len += (size_t)n;
	}
}

static int
dial(const struct addrinfo *ai, char *err, size_t errlen)
{
	struct timeval tv = { 10, 0 };	/* a stuck server fails a session */
	int fd, one = 1;

	fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		snprintf(err, errlen, "connect: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void
describe(SSL *ssl)
{
	EVP_PKEY *kx = NULL;
	char group[64] = "";
	const char *kxname = "?";

	if (SSL_get_peer_tmp_key(ssl, &kx) == 1 && kx != NULL) {
		kxname = EVP_PKEY_get0_type_name(kx);
		if (EVP_PKEY_get_group_name(kx, group, sizeof(group),
		    NULL) != 1)
			group[0] = 0;
	}
	fprintf(stderr, "starttls_load: first session: %s %s kx=%s%s%s "
	    "reused=%d\n", SSL_get_version(ssl), SSL_get_cipher_name(ssl),
	    kxname != NULL ? kxname : "?", group[0] ? "/" : "", group,
	    SSL_session_reused(ssl));
	EVP_PKEY_free(kx);
}

/*
 * One session from connect to close.  0 or -1 with err.  *prev is the
 * session to offer (may be NULL) and is replaced by this one's.
 */
static int
one_session(const struct opts *o, SSL_CTX *ctx, const struct addrinfo *ai,
    SSL_SESSION **prev, bool *resumed, bool first, char *err, size_t errlen)
{
	struct line_reader r;
	char cmd[300];
	SSL *ssl = NULL;
	int fd, rc = -1;

	*resumed = false;
	fd = dial(ai, err, errlen);
	if (fd < 0)
		return -1;
	memset(&r, 0, sizeof(r));
	r.fd = fd;
	snprintf(cmd, sizeof(cmd), "EHLO %s\r\n", o->ehlo);
	if (expect(&r, "220", NULL, err, errlen) != 0 ||
	    send_all(fd, NULL, cmd, err, errlen) != 0 ||
	    expect(&r, "250", "STARTTLS", err, errlen) != 0 ||
	    send_all(fd, NULL, "STARTTLS\r\n", err, errlen) != 0 ||
	    expect(&r, "220", NULL, err, errlen) != 0)
		goto out;
	if (r.len != 0) {
		/* RFC 3207 5: nothing may follow the 220 in plaintext. */
		snprintf(err, errlen, "%zu plaintext octets after 220", r.len);
		goto out;
	}
	ssl = SSL_new(ctx);
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
		ssl_error(err, errlen, "SSL_new");
		goto out;
	}
	if (o->sni != NULL)
		SSL_set_tlsext_host_name(ssl, o->sni);
	if (o->resume && *prev != NULL)
		SSL_set_session(ssl, *prev);
	errno = 0;
	if (SSL_connect(ssl) != 1) {
		ssl_error(err, errlen, "SSL_connect");
		goto out;
	}
	*resumed = SSL_session_reused(ssl) == 1;
	if (first && o->verbose)
		describe(ssl);
	if (o->resume) {
		SSL_SESSION_free(*prev);
		*prev = SSL_get1_session(ssl);
	}
	r.ssl = ssl;
	if (send_all(fd, ssl, cmd, err, errlen) != 0 ||
	    expect(&r, "250", NULL, err, errlen) != 0 ||
	    send_all(fd, ssl, "QUIT\r\n", err, errlen) != 0 ||
	    expect(&r, "221", NULL, err, errlen) != 0)
		goto out;
	/*
	 * Our close_notify, as a polite MTA sends it.  Without it OpenSSL
	 * marks the session not resumable (ssl_clear_bad_session()).  We
	 * do not wait for the server's.
	 */
	SSL_shutdown(ssl);
	rc = 0;
out:
	SSL_free(ssl);
	close(fd);
	return rc;
}

static SSL_CTX *
make_ctx(const struct opts *o)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	/* We keep the one session we offer ourselves (SSL_set_session). */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (o->no_ticket)
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if ((o->ciphers != NULL &&
	    SSL_CTX_set_cipher_list(ctx, o->ciphers) != 1) ||
	    (o->groups != NULL &&
	    SSL_CTX_set1_groups_list(ctx, o->groups) != 1)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* One load process: run until the count or the deadline. */
static void
worker(const struct opts *o, const struct addrinfo *ai, long count,
    double deadline, bool verbose_first, int go_fd, int out_fd)
{
	struct result res;
	SSL_SESSION *prev = NULL;
	SSL_CTX *ctx;
	char err[sizeof(res.first_error)], c;
	double cpu0;
	int consecutive = 0;
	bool resumed;

	memset(&res, 0, sizeof(res));
	ctx = make_ctx(o);
	if (ctx == NULL) {
		snprintf(res.first_error, sizeof(res.first_error),
		    "cannot make the SSL_CTX (-C or -g list?)");
		res.errors = 1;
		goto done;
	}
	/* Wait for the parent: every process starts at once. */
	while (read(go_fd, &c, 1) < 0 && errno == EINTR)
		;
	if (deadline > 0)
		deadline += now();
	cpu0 = cpu_seconds();
	while (deadline > 0 ? now() < deadline : res.sessions +
	    res.errors < count) {
		if (one_session(o, ctx, ai, &prev, &resumed,
		    verbose_first && res.sessions == 0 && res.errors == 0,
		    err, sizeof(err)) == 0) {
			res.sessions++;
			res.resumed += resumed;
			consecutive = 0;
			continue;
		}
		if (res.errors++ == 0)
			snprintf(res.first_error, sizeof(res.first_error),
			    "%s", err);
		if (++consecutive >= MAX_CONSECUTIVE_ERRORS)
			break;
	}
	res.cpu = cpu_seconds() - cpu0;
	SSL_SESSION_free(prev);
	SSL_CTX_free(ctx);
done:
	if (write(out_fd, &res, sizeof(res)) != (ssize_t)sizeof(res))
		_exit(2);
	_exit(0);
}

static void
usage(void)
{
	fprintf(stderr,
"usage: starttls_load -p PORT [-H HOST] [-n SESSIONS | -d SECONDS]\n"
"                     [-c PROCS] [-r] [-T] [-e EHLO] [-s SNI] [-C CIPHERS]\n"
"                     [-g GROUPS] [-v]\n"
"  -n N      N sessions in all (default 1000)\n"
"  -d S      run for S seconds instead\n"
"  -c P      P processes at once, each one session after another (1)\n"
"  -r        resume: offer the previous session (SSL_set_session)\n"
"  -T        no session ticket extension (SSL_OP_NO_TICKET)\n"
"  -e NAME   EHLO name (load.example)\n"
"  -s NAME   send SNI (default none, as most MTAs)\n"
"  -C LIST   TLS 1.2 cipher list for the client to offer\n"
"  -g LIST   key exchange groups to offer, e.g. P-256 (default: OpenSSL's)\n"
"  -v        print what the first session negotiated on stderr\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct opts o = { .host = "127.0.0.1", .ehlo = "load.example",
	    .sessions = 1000, .procs = 1 };
	struct addrinfo hints, *ai;
	struct result total, res;
	int ch, i, go[2], out[2], status, gai;
	double t0, wall;
	long per, extra;
	bool failed = false;

	while ((ch = getopt(argc, argv, "H:p:n:d:c:rTe:s:C:g:v")) != -1) {
		switch (ch) {
		case 'H': o.host = optarg; break;
		case 'p': o.port = optarg; break;
		case 'n': o.sessions = atol(optarg); o.seconds = 0; break;
		case 'd': o.seconds = atof(optarg); o.sessions = 0; break;
		case 'c': o.procs = atoi(optarg); break;
		case 'r': o.resume = true; break;
		case 'T': o.no_ticket = true; break;
		case 'e': o.ehlo = optarg; break;
		case 's': o.sni = optarg; break;
		case 'C': o.ciphers = optarg; break;
		case 'g': o.groups = optarg; break;
		case 'v': o.verbose = true; break;
		default: usage();
		}
	}
	if (o.port == NULL || o.procs < 1 || (o.sessions <= 0 &&
	    o.seconds <= 0) || optind != argc)
		usage();
	signal(SIGPIPE, SIG_IGN);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if ((gai = getaddrinfo(o.host, o.port, &hints, &ai)) != 0) {
		fprintf(stderr, "starttls_load: %s: %s\n", o.host,
		    gai_strerror(gai));
		return 1;
	}
	if (pipe(go) != 0 || pipe(out) != 0) {
		perror("starttls_load: pipe");
		return 1;
	}
	per = o.sessions / o.procs;
	extra = o.sessions % o.procs;
	for (i = 0; i < o.procs; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("starttls_load: fork");
			return 1;
		}
		if (pid == 0) {
			close(go[1]);
			close(out[0]);
			worker(&o, ai, per + (i < extra), o.seconds,
			    o.verbose && i == 0, go[0], out[1]);
		}
	}
	close(go[0]);
	close(out[1]);
	/* Let the children make their SSL_CTX, then start them together. */
	usleep(50000);
	t0 = now();
	close(go[1]);

	memset(&total, 0, sizeof(total));
	for (i = 0; i < o.procs; i++) {
		if (read(out[0], &res, sizeof(res)) != (ssize_t)sizeof(res)) {
			fprintf(stderr, "starttls_load: a process died\n");
			failed = true;
			break;
		}
		total.sessions += res.sessions;
		total.resumed += res.resumed;
		total.errors += res.errors;
		total.cpu += res.cpu;
		if (res.first_error[0] != 0)
			fprintf(stderr, "starttls_load: %ld error(s), first: "
			    "%s\n", res.errors, res.first_error);
	}
	wall = now() - t0;
	while (wait(&status) > 0)
		;
	freeaddrinfo(ai);
	printf("sessions=%ld resumed=%ld errors=%ld wall=%.3f rate=%.1f "
	    "client_cpu=%.3f client_us_per_session=%.1f\n", total.sessions,
	    total.resumed, total.errors, wall,
	    wall > 0 ? (double)total.sessions / wall : 0.0, total.cpu,
	    total.sessions > 0 ? total.cpu * 1e6 / (double)total.sessions :
	    0.0);
	return failed || total.sessions == 0 ? 1 : 0;
}
