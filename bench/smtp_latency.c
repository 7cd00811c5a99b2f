/*
 * smtp_latency.c - latency of whole SMTP transactions, for bench/run.
 *
 *   smtp_latency [-c CONC] [-d SECONDS] [-n MAX] [-l LENGTH] [-r RCPTS]
 *                HOST PORT
 *
 * CONC sessions at once (default 1), each a fresh connection doing one
 * transaction, one command at a time (no pipelining, like smtp-source):
 *
 *   connect, 220, EHLO, 250, MAIL, 250, RCPT x RCPTS (250 each), DATA,
 *   354, LENGTH octets of body and ".", 250, QUIT, 221, close
 *
 * As one ends, another starts in its place, until SECONDS have passed
 * (default 3) or MAX sessions have started; those under way then finish.
 * Two latencies per session, from CLOCK_MONOTONIC:
 *
 *   session   from just before connect() to the 221 of QUIT
 *   mail      from sending MAIL to the 250 after the final "."
 *
 * One line on stdout at the end, for scripts (microseconds):
 *
 *   sessions=N errors=E wall=S session_p50=U session_p99=U
 *   session_max=U mail_p50=U mail_p99=U
 *
 * Any reply with an unexpected code, or a closed connection, counts as
 * an error (the first one is printed on stderr) and exits 1.  One thread,
 * epoll; small enough that its own cost is a few microseconds per reply.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum step {
	S_GREETING,
	S_EHLO,
	S_MAIL,
	S_RCPT,
	S_DATA,
	S_BODY,
	S_QUIT,
};

struct sess {
	int		 fd;
	enum step	 step;
	int		 rcpts;		/* RCPT replies still to come */
	double		 t_start, t_mail;
	char		 in[2048];
	size_t		 inlen;
};

struct opts {
	int		 conc;
	double		 seconds;
	long		 max;
	long		 length;
	int		 rcpts;
	struct sockaddr_in addr;
};

static struct opts o = { 1, 3.0, 0, 1024, 10, { 0 } };
static char *body;
static size_t bodylen;
static double *lat_session, *lat_mail;
static long nsamples, cap, started, errors;
static int epfd;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The body: header lines, then LENGTH octets of 72-column lines. */
static void
make_body(void)
{
	static const char head[] = "From: <bench@client.example>\r\n"
	    "To: <rcpt@bench.example>\r\nSubject: latency\r\n\r\n";
	size_t n = 0, col = 0;

	body = malloc(sizeof(head) + (size_t)o.length + o.length / 72 * 2 +
	    16);
	if (body == NULL)
		exit(1);
	memcpy(body, head, sizeof(head) - 1);
	n = sizeof(head) - 1;
	for (long i = 0; i < o.length; i++) {
		if (col == 72) {
			body[n++] = '\r';
			body[n++] = '\n';
			col = 0;
		}
		body[n++] = (char)('a' + i % 26);
		col++;
	}
	memcpy(body + n, "\r\n.\r\n", 5);
	bodylen = n + 5;
}

static void
fail(struct sess *s, const char *what)
{
	if (errors++ == 0)
		fprintf(stderr, "smtp_latency: %s (step %d): %.*s\n", what,
		    (int)s->step, (int)s->inlen, s->in);
	close(s->fd);
	s->fd = -1;
}

/* Writes all of it: commands are small, the socket buffer takes them. */
static int
send_all(struct sess *s, const char *buf, size_t len)
{
	ssize_t w;

	while (len > 0) {
		w = send(s->fd, buf, len, MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN) {
			/* Rare: a large body; wait for room. */
			struct pollfd p = { s->fd, POLLOUT, 0 };

			poll(&p, 1, -1);
			continue;
		}
		if (w <= 0)
			return -1;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

static int
send_cmd(struct sess *s, const char *cmd)
{
	return send_all(s, cmd, strlen(cmd));
}

static void
start(struct sess *s)
{
	struct epoll_event ev;
	int one = 1;

	s->step = S_GREETING;
	s->inlen = 0;
	s->t_start = now();
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (s->fd < 0) {
		perror("socket");
		exit(1);
	}
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(s->fd, (struct sockaddr *)&o.addr, sizeof(o.addr)) < 0 &&
	    errno != EINPROGRESS) {
		fail(s, "connect");
		return;
	}
	started++;
	ev.events = EPOLLIN;
	ev.data.ptr = s;
	epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev);
}

static void
record(struct sess *s)
{
	double t = now();

	if (nsamples == cap) {
		cap = cap ? cap * 2 : 65536;
		lat_session = realloc(lat_session, cap * sizeof(double));
		lat_mail = realloc(lat_mail, cap * sizeof(double));
		if (lat_session == NULL || lat_mail == NULL)
			exit(1);
	}
	lat_session[nsamples] = t - s->t_start;
	lat_mail[nsamples] = s->t_mail;
	nsamples++;
}

/* One complete reply line (the last of a multi-line one): act on it. */
static void
on_reply(struct sess *s, int code)
{
	static const int want[] = { 220, 250, 250, 250, 354, 250, 221 };
	char cmd[128];

	if (code != want[s->step]) {
		fail(s, "unexpected reply");
		return;
	}
	switch (s->step) {
	case S_GREETING:
		s->step = S_EHLO;
		if (send_cmd(s, "EHLO client.example\r\n") < 0)
			fail(s, "send");
		return;
	case S_EHLO:
		s->step = S_MAIL;
		s->t_mail = now();
		if (send_cmd(s, "MAIL FROM:<bench@client.example>\r\n") < 0)
			fail(s, "send");
		return;
	case S_MAIL:
	case S_RCPT:
		if (s->step == S_MAIL) {
			s->step = S_RCPT;
			s->rcpts = o.rcpts;
		}
		if (s->rcpts == 0) {
			s->step = S_DATA;
			if (send_cmd(s, "DATA\r\n") < 0)
				fail(s, "send");
			return;
		}
		snprintf(cmd, sizeof(cmd), "RCPT TO:<%drcpt@bench.example>\r\n",
		    o.rcpts - s->rcpts + 1);
		s->rcpts--;
		if (send_cmd(s, cmd) < 0)
			fail(s, "send");
		return;
	case S_DATA:
		s->step = S_BODY;
		if (send_all(s, body, bodylen) < 0)
			fail(s, "send");
		return;
	case S_BODY:
		s->t_mail = now() - s->t_mail;
		s->step = S_QUIT;
		if (send_cmd(s, "QUIT\r\n") < 0)
			fail(s, "send");
		return;
	case S_QUIT:
		record(s);
		close(s->fd);
		s->fd = -1;
		return;
	}
}

static void
on_readable(struct sess *s)
{
	ssize_t r;
	char *eol;

	r = recv(s->fd, s->in + s->inlen, sizeof(s->in) - s->inlen, 0);
	if (r < 0 && errno == EAGAIN)
		return;
	if (r <= 0) {
		fail(s, r == 0 ? "closed by the server" : "recv");
		return;
	}
	s->inlen += (size_t)r;
	while (s->fd >= 0 && (eol = memchr(s->in, '\n', s->inlen)) != NULL) {
		size_t n = (size_t)(eol - s->in) + 1;
		bool last = n >= 4 && s->in[3] != '-';
		int code = atoi(s->in);

		memmove(s->in, s->in + n, s->inlen - n);
		s->inlen -= n;
		if (last)
			on_reply(s, code);
	}
	if (s->fd >= 0 && s->inlen == sizeof(s->in))
		fail(s, "reply line too long");
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(double *v, long n, double p)
{
	long i = (long)(p * (double)n);

	if (n == 0)
		return 0;
	if (i >= n)
		i = n - 1;
	return v[i] * 1e6;
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[64];
	struct sess *ss;
	double t0, deadline;
	int opt, active, i, n;

	while ((opt = getopt(argc, argv, "c:d:n:l:r:")) != -1) {
		switch (opt) {
		case 'c': o.conc = atoi(optarg); break;
		case 'd': o.seconds = atof(optarg); break;
		case 'n': o.max = atol(optarg); break;
		case 'l': o.length = atol(optarg); break;
		case 'r': o.rcpts = atoi(optarg); break;
		default: goto usage;
		}
	}
	if (argc - optind != 2 || o.conc < 1 || o.rcpts < 1 || o.length < 0)
		goto usage;
	o.addr.sin_family = AF_INET;
	o.addr.sin_port = htons((uint16_t)atoi(argv[optind + 1]));
	if (inet_pton(AF_INET, argv[optind], &o.addr.sin_addr) != 1)
		goto usage;
	make_body();
	epfd = epoll_create1(0);
	ss = calloc((size_t)o.conc, sizeof(*ss));
	if (epfd < 0 || ss == NULL)
		return 1;

	t0 = now();
	deadline = t0 + o.seconds;
	for (i = 0; i < o.conc; i++)
		start(&ss[i]);
	for (;;) {
		n = epoll_wait(epfd, evs, 64, 1000);
		for (i = 0; i < n; i++) {
			struct sess *s = evs[i].data.ptr;

			on_readable(s);
			if (s->fd < 0 && errors == 0 && now() < deadline &&
			    (o.max == 0 || started < o.max))
				start(s);
		}
		if (errors > 0)
			break;
		for (active = 0, i = 0; i < o.conc; i++)
			active += ss[i].fd >= 0;
		if (active == 0)
			break;
	}
	qsort(lat_session, (size_t)nsamples, sizeof(double), cmp);
	qsort(lat_mail, (size_t)nsamples, sizeof(double), cmp);
	printf("sessions=%ld errors=%ld wall=%.3f session_p50=%.0f "
	    "session_p99=%.0f session_max=%.0f mail_p50=%.0f mail_p99=%.0f\n",
	    nsamples, errors, now() - t0, pct(lat_session, nsamples, 0.50),
	    pct(lat_session, nsamples, 0.99),
	    pct(lat_session, nsamples, 1.0), pct(lat_mail, nsamples, 0.50),
	    pct(lat_mail, nsamples, 0.99));
	for (i = 0; i < o.conc; i++)
		if (ss[i].fd >= 0)
			close(ss[i].fd);
	free(ss);
	free(body);
	free(lat_session);
	free(lat_mail);
	close(epfd);
	return errors > 0;

usage:
	fprintf(stderr, "usage: smtp_latency [-c CONC] [-d SECONDS] [-n MAX] "
	    "[-l LENGTH] [-r RCPTS] HOST PORT\n");
	return 2;
}
