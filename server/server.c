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
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "delivery.h"
#include "log.h"
#include "sd.h"
#include "metrics.h"
#include "server.h"
#include "shared.h"
#include "tls.h"
#include "worker.h"

/* Add delta (+1/-1) to the address's count; returns the new count,
 * over every worker. */
unsigned
ipcount_add(struct server *srv, const unsigned char key[16], int delta)
{
	return shared_ipcount_add(srv->sh, srv->worker_slot, key, delta);
}

bool
server_conn_reserve(struct server *srv)
{
	return shared_conn_reserve(srv->sh, srv->worker_slot,
	    srv->cfg->max_connections);
}

void
server_conn_release(struct server *srv)
{
	shared_conn_release(srv->sh, srv->worker_slot);
}

void
server_conn_gone(struct server *srv)
{
	srv->nconns--;
	server_conn_release(srv);
	metrics_set(srv->metrics, MI_SESSIONS_ACTIVE, srv->nconns);
	if (srv->shutting_down || srv->retiring) {
		if (srv->nconns == 0 && !srv->embedded)
			ev_break(srv->loop, EVBREAK_ALL);
		return;
	}
	if (srv->accept_paused && !ev_is_active(&srv->accept_retry) &&
	    shared_conns(srv->sh) < srv->cfg->max_connections)
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
	ev_timer_stop(srv->loop, &srv->retire);
	/* In a worker the supervisor logs "shutdown" for them all. */
	log_msg(LOG_INFO, srv->own_sh ? "shutdown" : "worker_shutdown",
	    "draining %u sessions, grace %.0fs", srv->nconns,
	    srv->cfg->shutdown_grace);
	for (i = 0; i < srv->nlisteners; i++)
		listener_close(&srv->listeners[i]);
	metrics_http_close(srv);
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

static void
on_retire_over(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *srv = (struct server *)((char *)w -
	    offsetof(struct server, retire));

	log_msg(LOG_INFO, "retire_over", "%u sessions left after "
	    "shutdown_grace: draining them", srv->nconns);
	server_shutdown(srv);
}

void
server_retire(struct server *srv)
{
	size_t i;

	if (srv->retiring || srv->shutting_down)
		return;
	srv->retiring = true;
	for (i = 0; i < srv->nlisteners; i++)
		listener_close(&srv->listeners[i]);
	/* The new generation serves the scrapes too. */
	metrics_http_close(srv);
	ev_timer_stop(srv->loop, &srv->accept_retry);
	log_msg(LOG_INFO, "retire", "no longer accepting; %u sessions go on "
	    "(at most shutdown_grace %.0fs, then the drain)", srv->nconns,
	    srv->cfg->shutdown_grace);
	if (srv->nconns == 0) {
		ev_break(srv->loop, EVBREAK_ALL);
		return;
	}
	ev_timer_init(&srv->retire, on_retire_over, srv->cfg->shutdown_grace,
	    0.);
	ev_timer_start(srv->loop, &srv->retire);
}

/* ---- start and end ---------------------------------------------------- */

/*
 * The counters: the caller's region and slot (a supervisor that forks
 * workers made it, with a slot per worker), or a region of one slot
 * of our own (one process, libmxd).
 */
static int
server_metrics_init(struct server *srv, struct metrics_region *mr,
    unsigned mi, char *err, size_t errlen)
{
	if (mr == NULL) {
		mr = metrics_region_create(1);
		mi = 0;
		srv->metrics_own = true;
	}
	srv->metrics_region = mr;
	srv->metrics_index = mi;
	srv->metrics = metrics_slot(mr, mi);
	if (srv->metrics == NULL) {
		snprintf(err, errlen, "metrics: %s", mr == NULL ?
		    strerror(errno) : "no such slot");
		return -1;
	}
	metrics_set(srv->metrics, MI_SESSIONS_LIMIT, srv->cfg->max_connections);
	return 0;
}

/*
 * A forked worker's own slot: i in the region the parent gave
 * server_setup().  The gauges move with it (the slot set up before the
 * fork is the parent's, which no longer serves).  0, or -1 when i is
 * out of range.
 */
int
server_metrics_slot(struct server *srv, unsigned i)
{
	struct metrics_slot *s = metrics_slot(srv->metrics_region, i);

	if (s == NULL)
		return -1;
	metrics_slot_clear_gauges(srv->metrics);
	srv->metrics = s;
	srv->metrics_index = i;
	metrics_set(s, MI_SESSIONS_ACTIVE, srv->nconns);
	metrics_set(s, MI_SESSIONS_LIMIT, srv->cfg->max_connections);
	return 0;
}

/*
 * What main() and libmxd share: everything from a finished config to a
 * server ready to listen, on the caller's loop.  No signals, nothing
 * printed but the certificate paths when asked (print).  The metrics
 * region and slot set in *srv beforehand are kept (server.h).
 */
int
server_setup(struct server *srv, const struct config *cfg,
    struct ev_loop *loop, bool print, char *err, size_t errlen)
{
	return server_setup_shared(srv, cfg, loop, print, true, NULL, 0, err,
	    errlen);
}

/* sh NULL: a region of its own, with one slot (libmxd). */
int
server_setup_shared(struct server *srv, const struct config *cfg,
    struct ev_loop *loop, bool print, bool first, struct shared *sh,
    unsigned slot, char *err, size_t errlen)
{
	struct metrics_region *mr = srv->metrics_region;
	unsigned mi = srv->metrics_index;

	memset(srv, 0, sizeof(*srv));
	srv->cfg = cfg;
	srv->loop = loop;
	if (loop == NULL) {
		snprintf(err, errlen, "cannot create the event loop");
		return -1;
	}
	if (server_metrics_init(srv, mr, mi, err, errlen) != 0)
		return -1;
	listeners_init(srv);
	ev_init(&srv->grace, NULL);
	ev_init(&srv->retire, NULL);
	srv->worker_slot = slot;
	srv->first = first;
	srv->sh = sh;
	if (sh == NULL) {
		srv->sh = shared_create(err, errlen);
		if (srv->sh == NULL)
			return -1;
		srv->own_sh = true;
	}
	srv->pool = worker_pool_create(loop, cfg->delivery_threads);
	if (srv->pool == NULL) {
		snprintf(err, errlen, "cannot start worker threads");
		return -1;
	}
	if (config_wants_tls(cfg)) {
		if (tls_global_init() != 0) {
			snprintf(err, errlen, "cannot initialise the TLS "
			    "library");
			return -1;
		}
		srv->tls = server_tls_load(srv, print, err, errlen);
		if (srv->tls == NULL)
			return -1;
	}
	if (server_faults_init(srv, err, errlen) != 0)
		return -1;
	srv->delivery = delivery_create(cfg, srv->pool, err, errlen);
	if (srv->delivery == NULL)
		return -1;
	return 0;
}

/*
 * Open every configured listener; they accept once the loop runs.  With
 * sockets from systemd (srv->inherited): a listener takes the one bound
 * to its address, and those no listener took are served too, with the
 * global settings (sd.c, mxd.8 "SOCKET ACTIVATION").
 */
int
server_listen(struct server *srv, char *err, size_t errlen)
{
	const struct config *cfg = srv->cfg;
	struct sd_listen *sl = srv->inherited;
	size_t i, n = cfg->nlisten + (sl != NULL ? sl->n : 0);

	srv->listeners = calloc(n ? n : 1, sizeof(*srv->listeners));
	if (srv->listeners == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < cfg->nlisten; i++) {
		if (sd_listen_replaces_default(sl, cfg))
			break;
		if (listener_open(srv, &cfg->listen[i],
		    &srv->listeners[srv->nlisteners], err, errlen) != 0)
			return -1;
		srv->nlisteners++;
	}
	for (i = 0; sl != NULL && i < sl->n; i++) {
		if (sl->socks[i].fd < 0)
			continue;
		if (!sd_listen_replaces_default(sl, cfg))
			log_msg(LOG_WARN, "listen_unconfigured", "%s from "
			    "systemd matches no listen key: serving it with "
			    "the global settings", sl->socks[i].conf.text);
		if (listener_open(srv, &sl->socks[i].conf,
		    &srv->listeners[srv->nlisteners], err, errlen) != 0)
			return -1;
		srv->nlisteners++;
	}
	return metrics_http_open(srv, err, errlen);
}

/*
 * A worker: serve the listening sockets the supervisor holds (bound
 * there, or passed by systemd), fds[i] for lcs[i], and the metrics
 * listener it bound (metrics_fd, -1 for none).
 */
int
server_adopt(struct server *srv, const struct listen_conf *const *lcs,
    const int *fds, size_t n, char *err, size_t errlen)
{
	size_t i;

	srv->listeners = calloc(n ? n : 1, sizeof(*srv->listeners));
	if (srv->listeners == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++)
		listener_attach(srv, lcs[i], &srv->listeners[i], fds[i]);
	srv->nlisteners = n;
	return 0;
}

/* The "start" line: what this server is and where it listens. */
void
server_log_start(const struct server *srv)
{
	char listen[LOG_LINE_MAX] = "";
	size_t i, o = 0;

	for (i = 0; i < srv->nlisteners && o < sizeof(listen); i++)
		o += (size_t)snprintf(listen + o, sizeof(listen) - o, "%s%s",
		    i ? "," : "", srv->listeners[i].bound);
	server_log_start_as(srv->cfg, listen,
	    delivery_describe(srv->delivery), srv->tls != NULL);
}

/* The same from its parts, for the supervisor (no server of its own). */
void
server_log_start_as(const struct config *cfg, const char *listen,
    const char *delivery, bool tls)
{
	struct logline l;
	char doms[LOG_LINE_MAX] = "";
	size_t i, o = 0;

	log_begin(&l, LOG_INFO, NULL, "start");
	log_str(&l, "version", MXD_VERSION);
	log_str(&l, "hostname", cfg->hostname);
	log_str(&l, "listen", listen);
	log_str(&l, "delivery", delivery);
	log_str(&l, "tls", tls ? tls_library_version() : "off");
	if (cfg->ndomains == 0) {
		log_str(&l, "domains", "any");
		log_str(&l, "note", "no domain configured: accepting mail for "
		    "every recipient domain");
	} else {
		for (i = 0; i < cfg->ndomains && o < sizeof(doms); i++)
			o += (size_t)snprintf(doms + o, sizeof(doms) - o,
			    "%s%s", i ? "," : "", cfg->domains[i]);
		log_str(&l, "domains", doms);
	}
	log_end(&l);
	if (cfg->delivery == CONFIG_DELIVERY_DISCARD)
		log_msg(LOG_WARN, "discard", "delivery = discard: accepted "
		    "messages are dropped, not stored (for benchmarks and "
		    "harnesses)");
}

/*
 * After the loop: close the listeners, let every queued file job
 * finish (nothing half-done), free the rest.  Connections must be gone.
 */
void
server_teardown(struct server *srv)
{
	size_t i;

	if (srv->loop == NULL)
		return;
	for (i = 0; i < srv->nlisteners; i++)
		listener_close(&srv->listeners[i]);
	metrics_http_close(srv);
	ev_timer_stop(srv->loop, &srv->accept_retry);
	ev_timer_stop(srv->loop, &srv->grace);
	ev_timer_stop(srv->loop, &srv->retire);
	worker_pool_destroy(srv->pool);
	delivery_destroy(srv->delivery);
	server_faults_free(srv);
	if (srv->own_sh)
		shared_destroy(srv->sh);
	srv->sh = NULL;
	tls_server_destroy(srv->tls);
	free(srv->listeners);
	srv->pool = NULL;
	srv->delivery = NULL;
	srv->tls = NULL;
	srv->listeners = NULL;
	srv->nlisteners = 0;
	if (srv->metrics_own)
		metrics_region_free(srv->metrics_region);
	srv->metrics_region = NULL;
	srv->metrics = NULL;
	srv->loop = NULL;
}

/* ---- TLS certificates ------------------------------------------------- */

/*
 * The configured pairs, or, with none, the self-signed pair in data_dir,
 * made on first start and reused after (DESIGN.md: STARTTLS works with
 * no configuration at all).
 */
static struct tls_server *
tls_load(const struct server *srv, bool print, int max_version, char *err,
    size_t errlen)
{
	const struct config *cfg = srv->cfg;
	struct tls_keypair_files *pairs;
	struct tls_server_conf tc;
	struct tls_server *ts;
	char cert[PATH_MAX], key[PATH_MAX], abs[PATH_MAX];
	size_t i, n = cfg->ntls_certs;

	pairs = calloc(n ? n : 1, sizeof(*pairs));
	if (pairs == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (i = 0; i < n; i++) {
		pairs[i].cert = cfg->tls_certs[i];
		pairs[i].key = cfg->tls_keys[i];
	}
	if (n == 0) {
		snprintf(cert, sizeof(cert), "%s/mxd-selfsigned.crt",
		    cfg->data_dir);
		snprintf(key, sizeof(key), "%s/mxd-selfsigned.key",
		    cfg->data_dir);
		if (access(cert, R_OK) != 0 || access(key, R_OK) != 0) {
			if (tls_make_selfsigned(cert, key, cfg->hostname, err,
			    errlen) != 0) {
				free(pairs);
				return NULL;
			}
			log_msg(LOG_INFO, "tls_selfsigned", "made a self-signed "
			    "certificate for %s in %s", cfg->hostname, cert);
		}
		pairs[0].cert = cert;
		pairs[0].key = key;
		n = 1;
	}
	memset(&tc, 0, sizeof(tc));
	tc.pairs = pairs;
	tc.npairs = n;
	tc.min_version = cfg->tls_min_version;
	tc.max_version = max_version;
	tc.tickets = cfg->tls_tickets;
	tc.ticket_lifetime = (unsigned)cfg->tls_ticket_lifetime;
	/* Workers: keys every worker of the generation derives alike. */
	tc.ticket_secret = srv->own_sh ? NULL :
	    shared_ticket_secret(srv->sh, srv->worker_slot);
	tc.ask_client_cert = cfg->tls_ask_client_cert;
	tc.client_ca = cfg->tls_client_ca;
	ts = tls_server_create(&tc, err, errlen);
	if (ts != NULL && print) {
		for (i = 0; i < n; i++)
			printf("certificate %s\n",
			    realpath(pairs[i].cert, abs) ? abs : pairs[i].cert);
	}
	if (ts != NULL && max_version == 0) {
		for (i = 0; i < tls_server_npairs(ts); i++)
			log_msg(LOG_INFO, "tls_certificate", "%s: %s",
			    pairs[i].cert, tls_server_pair_desc(ts, i));
		int floor = cfg->tls_min_version;

		if (floor < tls_min_supported_version()) {
			floor = tls_min_supported_version();
			log_msg(LOG_WARN, "tls_min_version", "this build's TLS "
			    "library (mbedTLS %s) has nothing below TLSv1.%d: "
			    "using that", tls_library_version(),
			    (floor & 0xff) - 1);
		}
		if (floor < 0x0303)
			log_msg(LOG_WARN, "tls_legacy", "TLS versions below "
			    "1.2 are enabled (tls_min_version): only for "
			    "senders that cannot do better");
	}
	free(pairs);
	return ts;
}

struct tls_server *
server_tls_load(const struct server *srv, bool print, char *err,
    size_t errlen)
{
	return tls_load(srv, print, 0, err, errlen);
}

/* ---- fault rules ------------------------------------------------------ */

/*
 * A "tls cert" rule presents a certificate made wrong on purpose, with
 * mbedTLS, in data_dir at each start; a "tls max_version" rule the
 * configured pairs under a version cap.  Each is a TLS server of its
 * own, made here so that a handshake only picks one.
 */
static struct tls_server *
fault_tls_server(const struct server *srv, const struct fault_rule *r,
    char *err, size_t errlen)
{
	static const char *const names[] = { "expired", "wrong_name",
	    "untrusted" };
	struct tls_keypair_files pair;
	struct tls_server_conf tc;
	struct tls_server *ts;
	const struct config *cfg = srv->cfg;
	char cert[PATH_MAX], key[PATH_MAX], why[256];

	if (r->action == FA_TLS_MAX_VERSION) {
		ts = tls_load(srv, false, r->version, why, sizeof(why));
		if (ts == NULL)
			snprintf(err, errlen, "fault %s: %s", r->text, why);
		return ts;
	}
	snprintf(cert, sizeof(cert), "%s/mxd-fault-%s.crt", cfg->data_dir,
	    names[r->cert]);
	snprintf(key, sizeof(key), "%s/mxd-fault-%s.key", cfg->data_dir,
	    names[r->cert]);
	/* Made by the first worker; the others present the same one. */
	if ((srv->first || access(cert, R_OK) != 0 ||
	    access(key, R_OK) != 0) && tls_make_variant(cert, key,
	    cfg->hostname, (enum tls_cert_variant)r->cert, why,
	    sizeof(why)) != 0) {
		snprintf(err, errlen, "fault %s: %s", r->text, why);
		return NULL;
	}
	pair.cert = cert;
	pair.key = key;
	memset(&tc, 0, sizeof(tc));
	tc.pairs = &pair;
	tc.npairs = 1;
	tc.min_version = cfg->tls_min_version;
	ts = tls_server_create(&tc, why, sizeof(why));
	if (ts == NULL)
		snprintf(err, errlen, "fault %s: %s", r->text, why);
	return ts;
}

int
server_faults_init(struct server *srv, char *err, size_t errlen)
{
	const struct config *cfg = srv->cfg;
	size_t i;

	if (cfg->nfaults == 0)
		return 0;
	if (cfg->nfaults > SHARED_FAULTS_MAX) {
		snprintf(err, errlen, "fault: more than %d rules",
		    SHARED_FAULTS_MAX);
		return -1;
	}
	srv->fault_hits = shared_fault_hits(srv->sh);
	srv->fault_tls = calloc(cfg->nfaults, sizeof(*srv->fault_tls));
	if (srv->fault_tls == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < cfg->nfaults; i++) {
		const struct fault_rule *r = &cfg->faults[i];

		if (r->action != FA_TLS_CERT && r->action != FA_TLS_MAX_VERSION)
			continue;
		srv->fault_tls[i] = fault_tls_server(srv, r, err, errlen);
		if (srv->fault_tls[i] == NULL)
			return -1;
	}
	log_msg(LOG_WARN, "faults", "%zu fault rule(s) active: this server "
	    "fails on purpose (a test harness)", cfg->nfaults);
	return 0;
}

void
server_faults_free(struct server *srv)
{
	size_t i;

	if (srv->fault_tls != NULL)
		for (i = 0; i < srv->cfg->nfaults; i++)
			tls_server_destroy(srv->fault_tls[i]);
	free(srv->fault_tls);
	srv->fault_tls = NULL;
	srv->fault_hits = NULL;
}

/* ---- fallback memory (tls_fallback_window) ---------------------------- */

void
fallback_note(struct server *srv, const unsigned char key[16])
{
	ev_tstamp now = ev_now(srv->loop);

	if (srv->cfg->tls_fallback_window <= 0)
		return;
	shared_fallback_note(srv->sh, key, now,
	    now + srv->cfg->tls_fallback_window);
	metrics_inc(srv->metrics, MI_FALLBACK_NOTED);
}

bool
fallback_active(struct server *srv, const unsigned char key[16])
{
	if (srv->cfg->tls_fallback_window <= 0)
		return false;
	return shared_fallback_active(srv->sh, key, ev_now(srv->loop));
}

/* ---- connection rate (max_connection_rate) --------------------------- */

/*
 * A bucket of max_connection_rate tokens per address, refilled evenly
 * over a minute: a burst up to the rate is fine, a sustained rate above
 * it is refused (shared.c keeps the buckets, for every worker).
 */
bool
rate_allow(struct server *srv, const unsigned char key[16])
{
	if (srv->cfg->max_connection_rate <= 0)
		return true;
	return shared_rate_allow(srv->sh, key, srv->cfg->max_connection_rate,
	    ev_now(srv->loop));
}
