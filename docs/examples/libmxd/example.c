/*
 * example.c - a test harness in C around libmxd (docs/harness.md).
 *
 * Listens on a free port of 127.0.0.1 and prints it, refuses recipients
 * at bounce.test, prints one line per message and per session end, and
 * stops on SIGINT or SIGTERM.  Build it against an installed libmxd:
 *
 *	cc example.c $(pkg-config --cflags --libs mxd) -lev -o example
 *
 * Run: ./example [DATA_DIR]  (where the self-signed certificate goes).
 */
#include <ev.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mxd.h>

struct harness {
	struct mxd	*server;
	unsigned	 messages;
};

static enum mxd_answer
on_rcpt(void *arg, struct mxd_session *s, const char *to,
    struct mxd_reply *r)
{
	if (fnmatch("*@bounce.test", to, 0) != 0)
		return MXD_ACCEPT;
	r->code = 550;
	snprintf(r->enh, sizeof(r->enh), "5.1.1");
	snprintf(r->text, sizeof(r->text), "No such user here");
	return MXD_REJECT;
}

static enum mxd_answer
on_message(void *arg, struct mxd_session *s, const struct mxd_message *m,
    struct mxd_reply *r)
{
	struct harness *h = arg;
	size_t i;

	h->messages++;
	printf("message %s session %llu from <%s> to", m->id, s->number,
	    m->mail_from);
	for (i = 0; i < m->nrcpt; i++)
		printf(" <%s>", m->rcpt_to[i]);
	printf(" size %zu tls %s\n", m->size,
	    s->tls_version != NULL ? s->tls_version : "none");
	fflush(stdout);
	return MXD_ACCEPT;
}

static void
on_end(void *arg, struct mxd_session *s, const char *reason)
{
	printf("session %llu end %s\n", s->number, reason);
	fflush(stdout);
}

static void
on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct harness *h = w->data;

	mxd_stop(h->server);
	ev_break(loop, EVBREAK_ALL);
}

int
main(int argc, char **argv)
{
	struct ev_loop *loop = EV_DEFAULT;
	struct harness h = { NULL, 0 };
	struct mxd_callbacks cb = {
		.arg = &h,
		.rcpt = on_rcpt,
		.message = on_message,
		.session_end = on_end,
	};
	struct mxd_config *c;
	ev_signal sigterm, sigint;
	char err[512];

	if ((c = mxd_config_create()) == NULL ||
	    mxd_config_set(c, "listen", "127.0.0.1:0", err,
	    sizeof(err)) != 0 ||
	    mxd_config_set(c, "hostname", "mx.test", err, sizeof(err)) != 0 ||
	    mxd_config_set(c, "log_level", "warn", err, sizeof(err)) != 0 ||
	    (argc > 1 && mxd_config_set(c, "data_dir", argv[1], err,
	    sizeof(err)) != 0)) {
		fprintf(stderr, "example: %s\n", c ? err : "out of memory");
		return 1;
	}
	/* Takes c, even when it fails. */
	if ((h.server = mxd_create(loop, c, &cb, err, sizeof(err))) == NULL ||
	    mxd_start(h.server, err, sizeof(err)) != 0) {
		fprintf(stderr, "example: %s\n", err);
		mxd_destroy(h.server);
		return 1;
	}
	printf("listening %s port %d\n", mxd_listener_address(h.server, 0),
	    mxd_listener_port(h.server, 0));
	fflush(stdout);

	ev_signal_init(&sigterm, on_signal, SIGTERM);
	ev_signal_init(&sigint, on_signal, SIGINT);
	sigterm.data = sigint.data = &h;
	ev_signal_start(loop, &sigterm);
	ev_signal_start(loop, &sigint);
	ev_run(loop, 0);

	mxd_destroy(h.server);
	printf("stopped after %u messages\n", h.messages);
	return 0;
}
