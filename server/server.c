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
#include <sys/random.h>
#include <unistd.h>

#include "delivery.h"
#include "log.h"
#include "sd.h"
#include "metrics.h"
#include "server.h"
#include "tls.h"
#include "worker.h"

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
	metrics_set(srv->metrics, MI_SESSIONS_ACTIVE, srv->nconns);
	if (srv->shutting_down) {
		if (srv->nconns == 0 && !srv->embedded)
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
	if (getrandom(&srv->sid_next, sizeof(srv->sid_next), 0) !=
	    sizeof(srv->sid_next) ||
	    getrandom(&srv->ipcount_seed, sizeof(srv->ipcount_seed), 0) !=
	    sizeof(srv->ipcount_seed)) {
		snprintf(err, errlen, "getrandom: %s", strerror(errno));
		return -1;
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
		srv->tls = server_tls_load(cfg, print, err, errlen);
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

	srv->listeners = calloc(n, sizeof(*srv->listeners));
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

/* The "start" line: what this server is and where it listens. */
void
server_log_start(const struct server *srv)
{
	const struct config *cfg = srv->cfg;
	struct logline l;
	char listen[LOG_LINE_MAX] = "", doms[LOG_LINE_MAX] = "";
	size_t i, o = 0;

	for (i = 0; i < srv->nlisteners && o < sizeof(listen); i++)
		o += (size_t)snprintf(listen + o, sizeof(listen) - o, "%s%s",
		    i ? "," : "", srv->listeners[i].bound);
	log_begin(&l, LOG_INFO, NULL, "start");
	log_str(&l, "version", MXD_VERSION);
	log_str(&l, "hostname", cfg->hostname);
	log_str(&l, "listen", listen);
	log_str(&l, "delivery", delivery_describe(srv->delivery));
	log_str(&l, "tls", srv->tls == NULL ? "off" : tls_library_version());
	if (cfg->ndomains == 0) {
		log_str(&l, "domains", "any");
		log_str(&l, "note", "no domain configured: accepting mail for "
		    "every recipient domain");
	} else {
		o = 0;
		for (i = 0; i < cfg->ndomains && o < sizeof(doms); i++)
			o += (size_t)snprintf(doms + o, sizeof(doms) - o,
			    "%s%s", i ? "," : "", cfg->domains[i]);
		log_str(&l, "domains", doms);
	}
	log_end(&l);
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
	worker_pool_destroy(srv->pool);
	delivery_destroy(srv->delivery);
	server_free_tables(srv);
	server_faults_free(srv);
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
tls_load(const struct config *cfg, bool print, int max_version, char *err,
    size_t errlen)
{
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
server_tls_load(const struct config *cfg, bool print, char *err,
    size_t errlen)
{
	return tls_load(cfg, print, 0, err, errlen);
}

/* SIGHUP: new handshakes use new certificates; live sessions keep theirs. */
void
server_reload_tls(struct server *srv)
{
	struct tls_server *ts;
	char err[512];

	if (srv->tls == NULL)
		return;
	ts = server_tls_load(srv->cfg, false, err, sizeof(err));
	if (ts == NULL) {
		log_msg(LOG_ERROR, "reload_failed", "%s; keeping the "
		    "certificates in use", err);
		return;
	}
	tls_server_destroy(srv->tls);
	srv->tls = ts;
	log_msg(LOG_INFO, "reload", "certificates reloaded");
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
		ts = tls_load(cfg, false, r->version, why, sizeof(why));
		if (ts == NULL)
			snprintf(err, errlen, "fault %s: %s", r->text, why);
		return ts;
	}
	snprintf(cert, sizeof(cert), "%s/mxd-fault-%s.crt", cfg->data_dir,
	    names[r->cert]);
	snprintf(key, sizeof(key), "%s/mxd-fault-%s.key", cfg->data_dir,
	    names[r->cert]);
	if (tls_make_variant(cert, key, cfg->hostname,
	    (enum tls_cert_variant)r->cert, why, sizeof(why)) != 0) {
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
	srv->fault_hits = calloc(cfg->nfaults, sizeof(*srv->fault_hits));
	srv->fault_tls = calloc(cfg->nfaults, sizeof(*srv->fault_tls));
	if (srv->fault_hits == NULL || srv->fault_tls == NULL) {
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
	free(srv->fault_hits);
	srv->fault_tls = NULL;
	srv->fault_hits = NULL;
}

/* ---- fallback memory (tls_fallback_window) ---------------------------- */

static struct fallback_entry *
fallback_find(struct server *srv, const unsigned char key[16], bool prune)
{
	struct fallback_entry **pp, *e;
	ev_tstamp now = ev_now(srv->loop);

	pp = &srv->fallback[ip_hash(srv, key)];
	while ((e = *pp) != NULL) {
		if (prune && e->until <= now) {
			*pp = e->next;
			free(e);
			srv->nfallback--;
			continue;
		}
		if (memcmp(e->key, key, 16) == 0)
			return e;
		pp = &e->next;
	}
	return NULL;
}

void
fallback_note(struct server *srv, const unsigned char key[16])
{
	struct fallback_entry *e;
	size_t b;

	if (srv->cfg->tls_fallback_window <= 0)
		return;
	e = fallback_find(srv, key, true);
	if (e == NULL) {
		/* Bounded: a flood of failing addresses cannot grow it. */
		if (srv->nfallback >= FALLBACK_MAX)
			return;
		e = calloc(1, sizeof(*e));
		if (e == NULL)
			return;
		memcpy(e->key, key, 16);
		b = ip_hash(srv, key);
		e->next = srv->fallback[b];
		srv->fallback[b] = e;
		srv->nfallback++;
	}
	metrics_inc(srv->metrics, MI_FALLBACK_NOTED);
	e->until = ev_now(srv->loop) + srv->cfg->tls_fallback_window;
}

bool
fallback_active(struct server *srv, const unsigned char key[16])
{
	if (srv->cfg->tls_fallback_window <= 0)
		return false;
	return fallback_find(srv, key, true) != NULL;
}

/* ---- connection rate (max_connection_rate) --------------------------- */

/*
 * A bucket of max_connection_rate tokens per address, refilled evenly
 * over a minute: a burst up to the rate is fine, a sustained rate above
 * it is refused.  A full bucket is the same as no entry, so entries
 * idle for a minute are dropped as the chain is walked.
 */
bool
rate_allow(struct server *srv, const unsigned char key[16])
{
	struct rate_entry **pp, *e, *found = NULL;
	double cap = srv->cfg->max_connection_rate;
	ev_tstamp now = ev_now(srv->loop);
	size_t b;

	if (cap <= 0)
		return true;
	b = ip_hash(srv, key);
	for (pp = &srv->rate[b]; (e = *pp) != NULL;) {
		if (memcmp(e->key, key, 16) == 0) {
			found = e;
		} else if (now - e->last >= 60) {
			*pp = e->next;
			free(e);
			srv->nrate--;
			continue;
		}
		pp = &e->next;
	}
	if (found == NULL) {
		/* Bounded: past RATE_MAX addresses, no more are tracked. */
		if (srv->nrate >= RATE_MAX ||
		    (found = calloc(1, sizeof(*found))) == NULL)
			return true;
		memcpy(found->key, key, 16);
		found->tokens = cap;
		found->last = now;
		found->next = srv->rate[b];
		srv->rate[b] = found;
		srv->nrate++;
	}
	found->tokens += (now - found->last) * cap / 60;
	if (found->tokens > cap)
		found->tokens = cap;
	found->last = now;
	if (found->tokens < 1)
		return false;
	found->tokens -= 1;
	return true;
}

void
server_free_tables(struct server *srv)
{
	size_t i;

	for (i = 0; i < IPCOUNT_BUCKETS; i++) {
		while (srv->rate[i] != NULL) {
			struct rate_entry *r = srv->rate[i];

			srv->rate[i] = r->next;
			free(r);
		}
		while (srv->ipcount[i] != NULL) {
			struct ipcount_entry *e = srv->ipcount[i];

			srv->ipcount[i] = e->next;
			free(e);
		}
		while (srv->fallback[i] != NULL) {
			struct fallback_entry *f = srv->fallback[i];

			srv->fallback[i] = f->next;
			free(f);
		}
	}
	srv->nfallback = 0;
	srv->nrate = 0;
}
