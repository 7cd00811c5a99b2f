/*
 * test_libmxd.c - libmxd (mxd.h) as a harness in C uses it: a server on
 * this program's loop, a client in a thread speaking SMTP over loopback,
 * and checks of what each callback saw and what the client got.
 *
 * The loop runs in the main thread, as the callbacks must; the client
 * thread asks it for mxd_stop() through an ev_async, and says it is
 * done through another.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "mxd.h"

/* ---- what the callbacks saw (loop thread; read after the join) ---- */

struct seen {
	unsigned	 starts, ends, mails, rcpts, messages;
	char		 end_reasons[8][32];
	unsigned	 user_ok;		/* user pointer came back */
	char		 first[256];		/* the first message */
	char		 data[256];		/* the last message */
	size_t		 size;
	char		 from[64], to0[64], id[40];
	size_t		 nrcpt;
	unsigned long long number;
	char		 ip[64];
};

static struct seen seen;
static int tag = 42;

static enum mxd_answer
on_start(void *arg, struct mxd_session *s, struct mxd_reply *r)
{
	seen.starts++;
	s->user = &tag;
	/* Connection 2 is refused with a reply of ours, 3 with an invalid
	 * one (the default replaces it), 4 with 421. */
	if (s->number == 2) {
		r->code = 554;
		snprintf(r->enh, sizeof(r->enh), "5.7.1");
		snprintf(r->text, sizeof(r->text), "Go away");
		return MXD_REJECT;
	}
	if (s->number == 3) {
		r->code = 250;		/* not a refusal */
		snprintf(r->text, sizeof(r->text), "Fine");
		return MXD_REJECT;
	}
	if (s->number == 4)
		return MXD_TEMPFAIL;
	return MXD_ACCEPT;
}

static void
on_end(void *arg, struct mxd_session *s, const char *reason)
{
	if (seen.ends < 8)
		snprintf(seen.end_reasons[seen.ends], 32, "%s", reason);
	seen.ends++;
	if (s->user == &tag)
		seen.user_ok++;
}

static enum mxd_answer
on_mail(void *arg, struct mxd_session *s, const char *from,
    struct mxd_reply *r)
{
	/* Greylisting: the first MAIL of the server's life is refused. */
	if (seen.mails++ == 0) {
		r->code = 451;
		snprintf(r->enh, sizeof(r->enh), "4.7.1");
		snprintf(r->text, sizeof(r->text), "Greylisted");
		return MXD_TEMPFAIL;
	}
	return MXD_ACCEPT;
}

static enum mxd_answer
on_rcpt(void *arg, struct mxd_session *s, const char *to,
    struct mxd_reply *r)
{
	seen.rcpts++;
	if (strstr(to, "@bounce.test") != NULL)
		return MXD_REJECT;		/* the default reply */
	return MXD_ACCEPT;
}

static enum mxd_answer
on_message(void *arg, struct mxd_session *s, const struct mxd_message *m,
    struct mxd_reply *r)
{
	if (seen.messages++ == 0)
		snprintf(seen.first, sizeof(seen.first), "%.*s",
		    (int)m->size, (const char *)m->data);
	if (s->user == &tag)
		seen.user_ok++;
	seen.size = m->size;
	snprintf(seen.data, sizeof(seen.data), "%.*s", (int)m->size,
	    (const char *)m->data);
	snprintf(seen.from, sizeof(seen.from), "%s", m->mail_from);
	snprintf(seen.to0, sizeof(seen.to0), "%s", m->nrcpt ?
	    m->rcpt_to[0] : "");
	snprintf(seen.id, sizeof(seen.id), "%s", m->id);
	snprintf(seen.ip, sizeof(seen.ip), "%s", s->client_ip);
	seen.nrcpt = m->nrcpt;
	seen.number = s->number;
	if (m->size >= 6 && memcmp(m->data, "REFUSE", 6) == 0) {
		r->code = 554;
		snprintf(r->enh, sizeof(r->enh), "5.6.0");
		snprintf(r->text, sizeof(r->text), "Not this one");
		return MXD_REJECT;
	}
	return MXD_ACCEPT;
}

/* ---- the client ---------------------------------------------------- */

struct client {
	int	 fd;
	char	 buf[4096];
	size_t	 len;
};

static int port;
static struct ev_loop *loop;
static ev_async stop_req, done_req;

static int
dial(struct client *c)
{
	struct sockaddr_in sin;
	struct timeval tv = { 10, 0 };

	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return connect(c->fd, (struct sockaddr *)&sin, sizeof(sin));
}

/* The last line of the next reply, without CRLF; "" on EOF. */
static const char *
reply(struct client *c)
{
	static char line[1024];
	char *lf;
	ssize_t n;

	for (;;) {
		while ((lf = memchr(c->buf, '\n', c->len)) != NULL) {
			size_t l = (size_t)(lf - c->buf) + 1;

			snprintf(line, sizeof(line), "%.*s", (int)(l - 2),
			    c->buf);
			memmove(c->buf, c->buf + l, c->len - l);
			c->len -= l;
			if (line[3] != '-')
				return line;
		}
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (n <= 0)
			return "";
		c->len += (size_t)n;
	}
}

static const char *cmd(struct client *c, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

static const char *
cmd(struct client *c, const char *fmt, ...)
{
	char out[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, sizeof(out) - 2, fmt, ap);
	va_end(ap);
	memcpy(out + n, "\r\n", 2);
	if (send(c->fd, out, (size_t)n + 2, MSG_NOSIGNAL) < 0)
		return "";
	return reply(c);
}

#define EXPECT(got, want) do {						\
	const char *g_ = (got);						\
	CHECK(strcmp(g_, (want)) == 0, "got \"%s\", want \"%s\"", g_,	\
	    (want));							\
} while (0)

static void *
client_main(void *arg)
{
	struct client c;
	const char *r;
	char id[40];

	/* Connection 1: the whole conversation. */
	CHECK(dial(&c) == 0, "connect: %s", strerror(errno));
	CHECK(strncmp(reply(&c), "220 mx.test ", 12) == 0, "greeting");
	cmd(&c, "EHLO client.test");
	EXPECT(cmd(&c, "MAIL FROM:<>"), "451 4.7.1 Greylisted");
	EXPECT(cmd(&c, "MAIL FROM:<>"), "250 2.1.0 Ok");
	EXPECT(cmd(&c, "RCPT TO:<x@bounce.test>"),
	    "550 5.1.1 Recipient rejected");
	EXPECT(cmd(&c, "RCPT TO:<b@ok.test>"), "250 2.1.5 Ok");
	EXPECT(cmd(&c, "DATA"), "354 End data with <CR><LF>.<CR><LF>");
	r = cmd(&c, "Subject: t\r\n\r\n..dot\r\n.");
	CHECK(sscanf(r, "250 2.0.0 Ok: queued as %39s", id) == 1, "%s", r);
	CHECK(strcmp(id, seen.id) == 0, "id %s vs %s", id, seen.id);
	cmd(&c, "MAIL FROM:<a@client.test>");
	cmd(&c, "RCPT TO:<b@ok.test>");
	cmd(&c, "DATA");
	EXPECT(cmd(&c, "REFUSE\r\n."), "554 5.6.0 Not this one");
	EXPECT(cmd(&c, "QUIT"), "221 2.0.0 Bye");
	close(c.fd);

	/* 2: our 554; then only QUIT works (RFC 5321 3.1). */
	dial(&c);
	EXPECT(reply(&c), "554 5.7.1 Go away");
	EXPECT(cmd(&c, "EHLO client.test"),
	    "503 5.5.1 Error: no SMTP service here");
	EXPECT(cmd(&c, "QUIT"), "221 2.0.0 Bye");
	close(c.fd);

	/* 3: an invalid reply gives way to the default. */
	dial(&c);
	EXPECT(reply(&c), "554 5.7.1 No SMTP service here");
	close(c.fd);

	/* 4: TEMPFAIL: 421 and closed. */
	dial(&c);
	EXPECT(reply(&c), "421 4.3.2 Service not available, closing channel");
	EXPECT(reply(&c), "");
	close(c.fd);

	/* 5: left open, then mxd_stop(): 421, closed. */
	dial(&c);
	reply(&c);
	EXPECT(cmd(&c, "EHLO client.test"), "250 ENHANCEDSTATUSCODES");
	ev_async_send(loop, &stop_req);
	r = reply(&c);
	CHECK(strncmp(r, "421 4.3.2 ", 10) == 0, "at stop: \"%s\"", r);
	EXPECT(reply(&c), "");
	close(c.fd);
	/* Nothing listens any more. */
	CHECK(dial(&c) != 0, "connected after mxd_stop()");
	close(c.fd);

	ev_async_send(loop, &done_req);
	return NULL;
}

static struct mxd *server;

static void
on_stop_req(struct ev_loop *l, ev_async *w, int revents)
{
	mxd_stop(server);
}

static void
on_done_req(struct ev_loop *l, ev_async *w, int revents)
{
	ev_break(l, EVBREAK_ALL);
}

/* ---- the tests ----------------------------------------------------- */

static struct mxd_config *
config(const char *dir, ...)
{
	struct mxd_config *c = mxd_config_create();
	char err[256];
	const char *k, *v;
	va_list ap;

	CHECK(c != NULL, "config_create");
	CHECK(mxd_config_set(c, "hostname", "mx.test", err, sizeof(err)) == 0,
	    "%s", err);
	CHECK(mxd_config_set(c, "data_dir", dir, err, sizeof(err)) == 0,
	    "%s", err);
	CHECK(mxd_config_set(c, "log_level", "error", err, sizeof(err)) == 0,
	    "%s", err);
	va_start(ap, dir);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		CHECK(mxd_config_set(c, k, v, err, sizeof(err)) == 0,
		    "%s=%s: %s", k, v, err);
	}
	va_end(ap);
	return c;
}

static void
test_conversation(const char *dir)
{
	struct mxd_callbacks cb = {
		.session_start = on_start,
		.session_end = on_end,
		.mail = on_mail,
		.rcpt = on_rcpt,
		.message = on_message,
	};
	char err[256], want[80];
	pthread_t th;
	int p6;

	loop = ev_loop_new(EVFLAG_AUTO);
	server = mxd_create(loop, config(dir, "listen", "127.0.0.1:0",
	    "listen", "[::1]:0", NULL), &cb, err, sizeof(err));
	CHECK(server != NULL, "mxd_create: %s", err);
	if (server == NULL)
		return;
	CHECK(mxd_start(server, err, sizeof(err)) == 0, "start: %s", err);
	CHECK(mxd_start(server, err, sizeof(err)) != 0, "started twice");
	CHECK(mxd_listener_count(server) == 2, "%zu listeners",
	    mxd_listener_count(server));
	port = mxd_listener_port(server, 0);
	p6 = mxd_listener_port(server, 1);
	CHECK(port > 0 && p6 > 0 && port != p6, "ports %d %d", port, p6);
	snprintf(want, sizeof(want), "127.0.0.1:%d", port);
	EXPECT(mxd_listener_address(server, 0), want);
	snprintf(want, sizeof(want), "[::1]:%d", p6);
	EXPECT(mxd_listener_address(server, 1), want);
	CHECK(mxd_listener_port(server, 2) == -1 &&
	    mxd_listener_address(server, 2) == NULL, "no listener 2");

	ev_async_init(&stop_req, on_stop_req);
	ev_async_init(&done_req, on_done_req);
	ev_async_start(loop, &stop_req);
	ev_async_start(loop, &done_req);
	pthread_create(&th, NULL, client_main, NULL);
	ev_run(loop, 0);
	pthread_join(th, NULL);
	mxd_destroy(server);
	ev_loop_destroy(loop);

	CHECK(seen.starts == 5, "starts %u", seen.starts);
	CHECK(seen.ends == 5, "ends %u", seen.ends);
	CHECK(strcmp(seen.end_reasons[0], "quit") == 0 &&
	    strcmp(seen.end_reasons[4], "shutdown") == 0, "reasons %s %s",
	    seen.end_reasons[0], seen.end_reasons[4]);
	/* Five ends and two messages carried the pointer of on_start. */
	CHECK(seen.user_ok == 7, "user pointer %u", seen.user_ok);
	CHECK(seen.messages == 2, "messages %u", seen.messages);
	CHECK(seen.rcpts == 3, "rcpts %u", seen.rcpts);
	/* Dot-unstuffed, CRLF, nothing added. */
	EXPECT(seen.first, "Subject: t\r\n\r\n.dot\r\n");
	/* The last message: the refused one. */
	EXPECT(seen.data, "REFUSE\r\n");
	EXPECT(seen.from, "a@client.test");
	EXPECT(seen.to0, "b@ok.test");
	CHECK(seen.nrcpt == 1 && seen.number == 1, "nrcpt %zu number %llu",
	    seen.nrcpt, seen.number);
	EXPECT(seen.ip, "127.0.0.1");
}

static void
test_errors(const char *dir)
{
	struct mxd_config *c;
	char err[256] = "";

	c = mxd_config_create();
	CHECK(mxd_config_set(c, "no_such_key", "1", err, sizeof(err)) != 0 &&
	    strstr(err, "no_such_key: unknown key") != NULL, "%s", err);
	CHECK(mxd_config_set(c, "fault", "rcpt reply 354 x", err,
	    sizeof(err)) != 0 && strstr(err, "2xx, 4xx or 5xx") != NULL,
	    "%s", err);
	CHECK(mxd_config_load(c, "/nonexistent/mxd.conf", err,
	    sizeof(err)) != 0 && strstr(err, "No such file") != NULL, "%s",
	    err);
	mxd_config_destroy(c);

	/* Checks across keys run in mxd_create(), which frees c. */
	c = config(dir, "tls", "no", "require_tls", "yes", NULL);
	loop = ev_loop_new(EVFLAG_AUTO);
	CHECK(mxd_create(loop, c, NULL, err, sizeof(err)) == NULL &&
	    strstr(err, "require_tls") != NULL, "%s", err);
	/* A port in use: mxd_start() says so. */
	{
		struct mxd *a, *b;
		char addr[40];

		a = mxd_create(loop, config(dir, "listen", "127.0.0.1:0",
		    NULL), NULL, err, sizeof(err));
		CHECK(a != NULL && mxd_start(a, err, sizeof(err)) == 0, "%s",
		    err);
		snprintf(addr, sizeof(addr), "127.0.0.1:%d",
		    mxd_listener_port(a, 0));
		b = mxd_create(loop, config(dir, "listen", addr, NULL), NULL,
		    err, sizeof(err));
		CHECK(b != NULL && mxd_start(b, err, sizeof(err)) != 0 &&
		    strstr(err, addr) != NULL, "second bind: %s", err);
		mxd_destroy(b);
		mxd_destroy(a);
	}
	ev_loop_destroy(loop);
	mxd_destroy(NULL);
	mxd_config_destroy(NULL);
	CHECK(strstr(mxd_version(), "mbedTLS") != NULL, "%s", mxd_version());
}

static void
rmdir_all(const char *dir)
{
	static const char *const made[] = { "mxd-selfsigned.crt",
	    "mxd-selfsigned.key" };
	char path[256];
	size_t i;

	for (i = 0; i < sizeof(made) / sizeof(made[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, made[i]);
		unlink(path);
	}
	CHECK(rmdir(dir) == 0, "rmdir %s: %s", dir, strerror(errno));
}

int
main(void)
{
	char dir[] = "/tmp/test_libmxd.XXXXXX";

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_conversation(dir);
	test_errors(dir);
	/* What mxd made there: its self-signed pair. */
	rmdir_all(dir);
	if (failures != 0) {
		fprintf(stderr, "%d failure(s)\n", failures);
		return 1;
	}
	printf("libmxd: ok\n");
	return 0;
}
