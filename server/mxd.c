/*
 * mxd.c - libmxd (mxd.h): the daemon's server on a caller's loop.
 *
 * A thin layer: the config is the daemon's struct config, filled by the
 * same config_set() and checked by the same config_finish(); the server
 * is the daemon's struct server, set up by server_setup() and
 * server_listen() as main() does, minus signals and printing.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "log.h"
#include "mxd.h"
#include "server.h"
#include "tls.h"

struct mxd_config {
	struct config	 cfg;
};

struct mxd {
	struct server	 srv;
	struct mxd_config *c;
	bool		 started;
	bool		 stopped;
};

const char *
mxd_version(void)
{
	static char v[64];

	if (v[0] == 0)
		snprintf(v, sizeof(v), "%s (mbedTLS %s)", MXD_VERSION,
		    tls_library_version());
	return v;
}

struct mxd_config *
mxd_config_create(void)
{
	struct mxd_config *c = calloc(1, sizeof(*c));

	if (c != NULL)
		config_init(&c->cfg);
	return c;
}

void
mxd_config_destroy(struct mxd_config *c)
{
	if (c == NULL)
		return;
	config_free(&c->cfg);
	free(c);
}

int
mxd_config_set(struct mxd_config *c, const char *key, const char *value,
    char *err, size_t errlen)
{
	/* The command line's layer: it overrides the file's. */
	return config_set(&c->cfg, CONFIG_SRC_CMDLINE, key, value, err,
	    errlen);
}

int
mxd_config_load(struct mxd_config *c, const char *path, char *err,
    size_t errlen)
{
	return config_load_file(&c->cfg, path, err, errlen);
}

struct mxd *
mxd_create(struct ev_loop *loop, struct mxd_config *c,
    const struct mxd_callbacks *cb, char *err, size_t errlen)
{
	struct mxd *m;

	if (c == NULL) {
		snprintf(err, errlen, "no configuration");
		return NULL;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		snprintf(err, errlen, "out of memory");
		mxd_config_destroy(c);
		return NULL;
	}
	m->c = c;
	if (config_finish(&c->cfg, err, errlen) != 0)
		goto fail;
	/* With a message callback, messages go there and nowhere else. */
	if (cb != NULL && cb->message != NULL)
		c->cfg.delivery = CONFIG_DELIVERY_CALLBACK;
	log_setup(c->cfg.log_level, c->cfg.log_format);
	if (server_setup(&m->srv, &c->cfg, loop, false, err, errlen) != 0) {
		server_teardown(&m->srv);
		goto fail;
	}
	m->srv.embedded = true;
	if (cb != NULL)
		m->srv.cb = *cb;
	return m;
fail:
	mxd_config_destroy(c);
	free(m);
	return NULL;
}

int
mxd_start(struct mxd *m, char *err, size_t errlen)
{
	if (m->started) {
		snprintf(err, errlen, "already started");
		return -1;
	}
	m->started = true;
	if (server_listen(&m->srv, err, errlen) != 0)
		return -1;
	server_log_start(&m->srv);
	return 0;
}

size_t
mxd_listener_count(const struct mxd *m)
{
	return m->srv.nlisteners;
}

int
mxd_listener_port(const struct mxd *m, size_t i)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (i >= m->srv.nlisteners || m->srv.listeners[i].fd < 0 ||
	    getsockname(m->srv.listeners[i].fd, (struct sockaddr *)&ss,
	    &sl) != 0)
		return -1;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

const char *
mxd_listener_address(const struct mxd *m, size_t i)
{
	if (i >= m->srv.nlisteners)
		return NULL;
	return m->srv.listeners[i].bound;
}

void
mxd_stop(struct mxd *m)
{
	struct server *srv = &m->srv;
	struct conn *c, *next;
	size_t i;

	if (m->stopped)
		return;
	m->stopped = true;
	srv->shutting_down = true;
	for (i = 0; i < srv->nlisteners; i++)
		listener_close(&srv->listeners[i]);
	metrics_http_close(srv);
	ev_timer_stop(srv->loop, &srv->accept_retry);
	for (c = srv->conns; c != NULL; c = next) {
		next = conn_next(c);
		conn_abort(c);
	}
}

void
mxd_destroy(struct mxd *m)
{
	if (m == NULL)
		return;
	mxd_stop(m);
	server_teardown(&m->srv);
	mxd_config_destroy(m->c);
	free(m);
}
