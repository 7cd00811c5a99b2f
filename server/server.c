/*
 * server.c - server-wide bookkeeping: connections per client address,
 * resuming accept, and the SIGTERM drain.
 *
 * Drain (DESIGN.md): stop accepting; sessions outside DATA get
 * "421 4.3.2" at once; a message in DATA may finish within
 * shutdown_grace and then gets its reply and the 421; when the grace
 * runs out, whatever is left is closed.  The loop ends when the last
 * connection is gone, and main() then waits for the worker pool.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "server.h"

/* FNV-1a with a per-process seed: a client cannot aim at one bucket. */
static uint32_t
ip_hash(const struct server *srv, const unsigned char key[16])
{
	uint32_t h = 2166136261u ^ srv->ipcount_seed;
	int i;

	for (i = 0; i < 16; i++) {
		h ^= key[i];
		h *= 16777619u;
	}
	return h % IPCOUNT_BUCKETS;
}

/* Add delta (+1/-1) to the address's count; returns the new count. */
unsigned
ipcount_add(struct server *srv, const unsigned char key[16], int delta)
{
	struct ipcount_entry **pp, *e;

	pp = &srv->ipcount[ip_hash(srv, key)];
	for (e = *pp; e != NULL; pp = &e->next, e = e->next)
		if (memcmp(e->key, key, 16) == 0)
			break;
	if (e == NULL) {
		if (delta < 0)
			return 0;
		e = calloc(1, sizeof(*e));
		if (e == NULL)
			return 0;	/* uncounted rather than refused */
		memcpy(e->key, key, 16);
		e->next = *pp;
		*pp = e;
	}
	if (delta < 0 && e->count > 0)
		e->count--;
	else if (delta > 0)
		e->count++;
	if (e->count == 0) {
		for (pp = &srv->ipcount[ip_hash(srv, key)]; *pp != e;
		    pp = &(*pp)->next)
			;
		*pp = e->next;
		free(e);
		return 0;
	}
	return e->count;
}

void
server_conn_gone(struct server *srv)
{
	srv->nconns--;
	if (srv->shutting_down) {
		if (srv->nconns == 0)
			ev_break(srv->loop, EVBREAK_ALL);
		return;
	}
	if (srv->accept_paused && !ev_is_active(&srv->accept_retry) &&
	    srv->nconns < srv->cfg->max_connections)
		listeners_resume(srv);
}

static void
on_grace(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *srv = (struct server *)((char *)w -
	    offsetof(struct server, grace));
	struct conn *c, *next;

	log_msg(LOG_WARN, "shutdown_grace_over", "closing %u sessions",
	    srv->nconns);
	for (c = srv->conns; c != NULL; c = next) {
		next = conn_next(c);
		conn_abort(c);
	}
}

void
server_shutdown(struct server *srv)
{
	struct conn *c, *next;
	size_t i;

	if (srv->shutting_down)
		return;
	srv->shutting_down = true;
	log_msg(LOG_INFO, "shutdown", "draining %u sessions, grace %.0fs",
	    srv->nconns, srv->cfg->shutdown_grace);
	for (i = 0; i < srv->nlisteners; i++)
		listener_close(&srv->listeners[i]);
	ev_timer_stop(srv->loop, &srv->accept_retry);
	if (srv->nconns == 0) {
		ev_break(srv->loop, EVBREAK_ALL);
		return;
	}
	ev_timer_init(&srv->grace, on_grace, srv->cfg->shutdown_grace, 0.);
	ev_timer_start(srv->loop, &srv->grace);
	for (c = srv->conns; c != NULL; c = next) {
		next = conn_next(c);
		conn_shutdown(c);
	}
}
