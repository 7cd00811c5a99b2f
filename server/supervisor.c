/*
 * supervisor.c - the supervisor process and the start of each worker.
 *
 * The supervisor owns: the listening sockets (bound here, or taken from
 * systemd, before any fork, and inherited by the workers), the
 * metrics_listen socket, the shared region and the metrics region (a
 * slot per worker slot), one slot per worker (pid, generation, a pipe
 * the worker reports on) and the list of generations.  It keeps the
 * privileges it started with and speaks to NOTIFY_SOCKET; each worker
 * loads its keys, then drops root (privdrop.c).  It waits in poll(2) on a signalfd and the workers'
 * pipes; it has no event loop of its own, so a forked child starts with
 * a clean libev and no supervisor watchers to undo.
 *
 * A worker reports on its pipe: "R" once it serves (setup done, the
 * listeners adopted), "E<why>" when its setup failed, "S" once it has
 * stopped accepting after a reload.  When a generation's first worker
 * may make files (the self-signed certificate, which the others then
 * read) it starts alone, the others once it is ready; otherwise all
 * start at once.
 *
 * Signals: SIGTERM/SIGINT pass to every worker as SIGTERM (each drains
 * as a single process did), and the supervisor exits 0 when they are
 * gone, killing what is left shutdown_grace + KILL_MARGIN later.  SIGHUP
 * reloads (mxd.conf(5), "Reload").  A worker that dies is restarted in
 * its slot, at most once per RESTART_INTERVAL, after its slot's counts
 * in the shared region are cleared.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "delivery.h"
#include "fault.h"
#include "log.h"
#include "metrics.h"
#include "privdrop.h"
#include "sd.h"
#include "server.h"
#include "shared.h"
#include "supervisor.h"

/* A slot restarts its worker at most this often (a crash loop). */
#define RESTART_INTERVAL	1.0
/* After shutdown_grace, what is still running is killed this much later. */
#define KILL_MARGIN		10.0
/* How long a starting worker may take to report (self-signed cert,
 * a slow disk, valgrind). */
#define READY_TIMEOUT		60.0
/* How long old workers may take to stop accepting after a reload. */
#define RETIRE_TIMEOUT		5.0

struct lsock {
	char		 text[80];	/* as configured: the reuse key */
	char		 bound[80];
	int		 fd;
	/* A socket systemd passed that no listen key names: served with
	 * the global settings, by every generation. */
	const struct listen_conf *sd_conf;
	bool		 from_sd;	/* passed by systemd: its socket too */
	bool		 metrics;	/* the metrics_listen socket */
};

struct gen {
	unsigned	 id;
	const struct config *cfg;
	struct config	*own;		/* NULL for the first (borrowed) */
	/* What its workers serve: fds[i] for lcs[i]. */
	const struct listen_conf **lcs;
	int		*fds;
	size_t		 nfds;
	int		 metrics_fd;	/* -1: metrics_listen is off */
	unsigned	 nworkers;
	unsigned	 alive;
	bool		 retiring;
	char		 delivery[1000];	/* for the start line */
	unsigned char	 ticket_secret[32];	/* TLS tickets, per generation */
	struct gen	*next;
};

struct slot {
	pid_t		 pid;		/* 0: free or waiting to restart */
	struct gen	*gen;		/* NULL: free */
	int		 pipe;		/* read end, -1 */
	double		 started;
	double		 restart_at;	/* > 0: a restart is due then */
};

struct sup {
	const struct supervisor_opts *o;
	struct shared	*sh;
	/* Prometheus counters, a slot per worker slot (metrics.h). */
	struct metrics_region *mr;
	struct lsock	*ls;
	size_t		 nls;
	struct gen	*gens;		/* newest first; gens == current */
	unsigned	 gen_ids;
	struct slot	 slots[SHARED_SLOTS];
	int		 sfd;
	pid_t		 pid;
	bool		 stopping;
	double		 kill_at;
	bool		 killed;
};

_Static_assert(sizeof(struct server_stats) <= SHARED_STATS_MAX *
    sizeof(unsigned long long), "server_stats fits the shared totals");

/* Reachable from here in a worker too (for LeakSanitizer's sake). */
static struct sup *the_sup;

static double
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the worker side ---------------------------------------------------- */

static int worker_pipe = -1;

static void
on_term(struct ev_loop *loop, ev_signal *w, int revents)
{
	server_shutdown(w->data);
}

static void
on_retire(struct ev_loop *loop, ev_signal *w, int revents)
{
	server_retire(w->data);
	/* The listeners are closed: the supervisor may say "reload". */
	if (worker_pipe >= 0 && write(worker_pipe, "S", 1) < 0)
		log_msg(LOG_WARN, "worker", "cannot report to the supervisor");
}

/*
 * The stop line, a worker's own ("worker_stop") or, from the totals of
 * all workers that exited (not those killed), the supervisor's ("stop").
 */
static void
stop_line(const char *event, const struct server_stats *st, bool faults,
    long long slot)
{
	struct logline l;

	log_begin(&l, LOG_INFO, NULL, event);
	log_uint(&l, "connections", st->connections);
	log_uint(&l, "pregreet", st->pregreet);
	log_uint(&l, "http_requests", st->http_requests);
	log_uint(&l, "floods", st->floods);
	log_uint(&l, "rate_limited", st->rate_limited);
	log_uint(&l, "slow_data", st->slow_data);
	log_uint(&l, "proxy_untrusted", st->proxy_untrusted);
	log_uint(&l, "proxy_missing", st->proxy_missing);
	log_uint(&l, "proxy_bad", st->proxy_bad);
	log_uint(&l, "proxy_health", st->proxy_health);
	if (faults)
		log_uint(&l, "faults", st->faults);
	if (slot >= 0) {
		log_int(&l, "slot", slot);
		log_int(&l, "pid", (long long)getpid());
	}
	log_end(&l);
}

/* Closes what the supervisor holds that this worker must not. */
static void
worker_close_inherited(struct sup *s, const struct gen *g)
{
	size_t i, j;
	bool mine;

	close(s->sfd);
	for (i = 0; i < SHARED_SLOTS; i++)
		if (s->slots[i].pipe >= 0)
			close(s->slots[i].pipe);
	/* A listener of another generation only: closing it here lets
	 * the supervisor really close it later. */
	for (i = 0; i < s->nls; i++) {
		mine = s->ls[i].fd == g->metrics_fd;
		for (j = 0; j < g->nfds; j++)
			if (g->fds[j] == s->ls[i].fd)
				mine = true;
		if (!mine && s->ls[i].fd >= 0)
			close(s->ls[i].fd);
	}
}

static void
worker_fail(int fd, const char *why)
{
	char msg[1100];
	int n;

	n = snprintf(msg, sizeof(msg), "E%s", why);
	if (n > 0 && write(fd, msg, (size_t)n < sizeof(msg) ? (size_t)n :
	    sizeof(msg) - 1) < 0)
		log_msg(LOG_ERROR, "worker_failed", "%s", why);
	exit(1);
}

static void __attribute__((noreturn))
worker_main(struct sup *s, unsigned slot, struct gen *g, int wfd,
    bool print, bool first)
{
	static struct server srv;
	ev_signal sterm, sint, susr2;
	struct ev_loop *loop;
	sigset_t all;
	char err[1024];

	/* Die with the supervisor, whatever kills it (kill -9 included). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != s->pid)
		_exit(1);
	worker_pipe = wfd;
	worker_close_inherited(s, g);
	signal(SIGHUP, SIG_IGN);	/* the supervisor's business */
	loop = ev_default_loop(EVFLAG_AUTO);
	/*
	 * Signals stay blocked through the setup, so the delivery threads
	 * made there keep them blocked; ev_signal_start unblocks each in
	 * this thread.  The metrics go to this worker's slot of the
	 * supervisor's region (kept by server_setup).
	 */
	srv.metrics_region = s->mr;
	srv.metrics_index = slot;
	if (server_setup_shared(&srv, g->cfg, loop, print, first, s->sh, slot,
	    err, sizeof(err)) != 0) {
		server_teardown(&srv);
		worker_fail(wfd, err);
	}
	/*
	 * The certificates and keys are read, the Maildir or capture
	 * directory opened: drop root before the first accept.  The
	 * supervisor keeps the privileges it started with, to bind new
	 * listeners, and so a restarted worker or a new generation (a
	 * reload) reads root-only keys again before its own drop.
	 */
	if (privdrop(g->cfg, err, sizeof(err)) != 0) {
		server_teardown(&srv);
		worker_fail(wfd, err);
	}
	/*
	 * A change of uid or gid clears the parent-death signal (prctl(2)):
	 * set it again, and check the supervisor did not die meanwhile.
	 */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != s->pid)
		_exit(1);
	if (server_adopt(&srv, g->lcs, g->fds, g->nfds, err,
	    sizeof(err)) != 0 ||
	    metrics_http_adopt(&srv, g->metrics_fd, err, sizeof(err)) != 0) {
		server_teardown(&srv);
		worker_fail(wfd, err);
	}
	ev_signal_init(&sterm, on_term, SIGTERM);
	ev_signal_init(&sint, on_term, SIGINT);
	ev_signal_init(&susr2, on_retire, SIGUSR2);
	sterm.data = sint.data = susr2.data = &srv;
	ev_signal_start(loop, &sterm);
	ev_signal_start(loop, &sint);
	ev_signal_start(loop, &susr2);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	fflush(stdout);
	/* "R" and what the supervisor's start line says of delivery. */
	snprintf(err, sizeof(err), "R%s", delivery_describe(srv.delivery));
	if (write(wfd, err, strlen(err)) < 0)
		exit(1);

	ev_run(loop, 0);
	stop_line("worker_stop", &srv.stats, g->cfg->nfaults != 0, slot);
	/* server_stats is all unsigned long long (see server.h). */
	shared_stats_add(s->sh, (const unsigned long long *)&srv.stats,
	    sizeof(srv.stats) / sizeof(unsigned long long));
	ev_signal_stop(loop, &sterm);
	ev_signal_stop(loop, &sint);
	ev_signal_stop(loop, &susr2);
	server_teardown(&srv);
	exit(0);
}

/* ---- slots and generations ---------------------------------------------- */

static int
slot_free(struct sup *s)
{
	int i;

	for (i = 0; i < SHARED_SLOTS; i++)
		if (s->slots[i].gen == NULL)
			return i;
	return -1;
}

static unsigned
slots_free(struct sup *s)
{
	unsigned i, n = 0;

	for (i = 0; i < SHARED_SLOTS; i++)
		if (s->slots[i].gen == NULL)
			n++;
	return n;
}

static int
spawn(struct sup *s, unsigned slot, struct gen *g, bool print,
    bool first, char *err, size_t errlen)
{
	struct slot *sl = &s->slots[slot];
	struct logline l;
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	shared_set_ticket_secret(s->sh, slot, g->ticket_secret);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		worker_main(s, slot, g, p[1], print, first);
	}
	close(p[1]);
	sl->pid = pid;
	sl->gen = g;
	sl->pipe = p[0];
	sl->started = now_mono();
	sl->restart_at = 0;
	g->alive++;
	log_begin(&l, LOG_DEBUG, NULL, "worker_start");
	log_uint(&l, "slot", slot);
	log_int(&l, "pid", (long long)pid);
	log_uint(&l, "generation", g->id);
	log_end(&l);
	return 0;
}

/* The "R" of a starting worker: 0, or -1 with its reason. */
static int
wait_ready(struct sup *s, unsigned slot, char *err, size_t errlen)
{
	struct gen *g = s->slots[slot].gen;

	struct pollfd pf = { .fd = s->slots[slot].pipe, .events = POLLIN };
	char buf[1000];
	ssize_t n;
	int r;

	do
		r = poll(&pf, 1, (int)(READY_TIMEOUT * 1000));
	while (r < 0 && errno == EINTR);
	if (r <= 0) {
		snprintf(err, errlen, "a worker did not start within %.0fs",
		    READY_TIMEOUT);
		return -1;
	}
	n = read(pf.fd, buf, sizeof(buf) - 1);
	if (n > 0 && buf[0] == 'R') {
		buf[n] = 0;
		snprintf(g->delivery, sizeof(g->delivery), "%s", buf + 1);
		return 0;
	}
	if (n > 1 && buf[0] == 'E') {
		buf[n] = 0;
		snprintf(err, errlen, "%s", buf + 1);
	} else {
		snprintf(err, errlen, "a worker exited while starting");
	}
	return -1;
}

static void
slot_reaped(struct sup *s, unsigned slot)
{
	struct slot *sl = &s->slots[slot];

	shared_slot_clear(s->sh, slot);
	/* Its sessions are gone: the gauges say so (the counters stay,
	 * summed, and a restart in this slot counts on). */
	metrics_slot_clear_gauges(metrics_slot(s->mr, slot));
	if (sl->pipe >= 0)
		close(sl->pipe);
	sl->pipe = -1;
	sl->pid = 0;
	if (sl->gen != NULL)
		sl->gen->alive--;
}

/* Kill and reap the workers of a generation that failed to start. */
static void
gen_abort(struct sup *s, struct gen *g)
{
	unsigned i;

	for (i = 0; i < SHARED_SLOTS; i++) {
		struct slot *sl = &s->slots[i];

		if (sl->gen != g)
			continue;
		if (sl->pid > 0) {
			kill(sl->pid, SIGKILL);
			waitpid(sl->pid, NULL, 0);
			slot_reaped(s, i);
		}
		sl->gen = NULL;
		sl->restart_at = 0;
	}
}

/*
 * Will the first worker make files the others read: the self-signed
 * pair (when missing) or the fault rules' certificates?  Then it starts
 * alone; otherwise all start at once (a harness waits for the start).
 */
static bool
gen_makes_files(const struct config *cfg)
{
	char path[4096];
	size_t i;

	for (i = 0; i < cfg->nfaults; i++)
		if (cfg->faults[i].action == FA_TLS_CERT)
			return true;
	if (!config_wants_tls(cfg) || cfg->ntls_certs != 0)
		return false;
	snprintf(path, sizeof(path), "%s/mxd-selfsigned.crt", cfg->data_dir);
	if (access(path, R_OK) != 0)
		return true;
	snprintf(path, sizeof(path), "%s/mxd-selfsigned.key", cfg->data_dir);
	return access(path, R_OK) != 0;
}

static int
gen_start(struct sup *s, struct gen *g, bool print, char *err, size_t errlen)
{
	bool alone = gen_makes_files(g->cfg);
	int slot, first = -1;
	unsigned i;

	for (i = 0; i < g->nworkers; i++) {
		slot = slot_free(s);
		if (slot < 0 || spawn(s, (unsigned)slot, g, print && i == 0,
		    i == 0, err, errlen) != 0)
			goto fail;
		if (i == 0 && alone) {
			first = slot;
			if (wait_ready(s, (unsigned)slot, err, errlen) != 0)
				goto fail;
		}
	}
	for (i = 0; i < SHARED_SLOTS; i++)
		if (s->slots[i].gen == g && (int)i != first &&
		    wait_ready(s, i, err, errlen) != 0)
			goto fail;
	return 0;
fail:
	gen_abort(s, g);
	return -1;
}


static bool
lsock_used(struct sup *s, int fd)
{
	struct gen *g;
	size_t j;

	for (g = s->gens; g != NULL; g = g->next) {
		if (g->metrics_fd == fd)
			return true;
		for (j = 0; j < g->nfds; j++)
			if (g->fds[j] == fd)
				return true;
	}
	return false;
}

/* Close the listeners no generation uses any more. */
static void
lsock_gc(struct sup *s)
{
	size_t i, o = 0;

	for (i = 0; i < s->nls; i++) {
		if (s->ls[i].fd >= 0 && !lsock_used(s, s->ls[i].fd)) {
			if (!s->stopping)
				log_msg(LOG_INFO, "listener_closed", "%s",
				    s->ls[i].bound);
			close(s->ls[i].fd);
			continue;
		}
		s->ls[o++] = s->ls[i];
	}
	s->nls = o;
}

static void
gen_free(struct sup *s, struct gen *g)
{
	struct gen **pp;

	for (pp = &s->gens; *pp != NULL; pp = &(*pp)->next)
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	free(g->fds);
	free(g->lcs);
	explicit_bzero(g->ticket_secret, sizeof(g->ticket_secret));
	if (g->own != NULL) {
		config_free(g->own);
		free(g->own);
	}
	free(g);
	lsock_gc(s);
}

static bool
fd_in(const int *fds, size_t n, int fd)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (fds[i] == fd)
			return true;
	return false;
}

static const char *
lsock_bound(struct sup *s, int fd)
{
	size_t i;

	for (i = 0; i < s->nls; i++)
		if (s->ls[i].fd == fd)
			return s->ls[i].bound;
	return "?";
}

/* The "start" line of a generation, once all its workers serve. */
static void
gen_log_start(struct sup *s, struct gen *g)
{
	char listen[LOG_LINE_MAX] = "";
	size_t i, o = 0;

	for (i = 0; i < g->nfds && o < sizeof(listen); i++)
		o += (size_t)snprintf(listen + o, sizeof(listen) - o, "%s%s",
		    i ? "," : "", lsock_bound(s, g->fds[i]));
	server_log_start_as(g->cfg, listen, g->delivery,
	    config_wants_tls(g->cfg));
}

/*
 * The supervisor's socket for lc (metrics: the metrics_listen one): one
 * it holds for the same text or for the address that text got bound to
 * ("127.0.0.1:2525" for the port 0 that got 2525) and that g does not
 * use yet (the same text twice is two listeners), else one systemd
 * passed for that address, else one bound now.  The fd, or -1 with err.
 */
static int
gen_sock(struct sup *s, struct gen *g, const struct listen_conf *lc,
    bool metrics, char *err, size_t errlen)
{
	struct lsock *nl;
	size_t j;

	for (j = 0; j < s->nls; j++)
		if (s->ls[j].metrics == metrics && s->ls[j].fd >= 0 &&
		    (strcmp(s->ls[j].text, lc->text) == 0 ||
		    strcmp(s->ls[j].bound, lc->text) == 0) &&
		    !fd_in(g->fds, g->nfds, s->ls[j].fd))
			return s->ls[j].fd;
	nl = realloc(s->ls, (s->nls + 1) * sizeof(*nl));
	if (nl == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->ls = nl;
	memset(&nl[j], 0, sizeof(nl[j]));
	snprintf(nl[j].text, sizeof(nl[j].text), "%s", lc->text);
	nl[j].metrics = metrics;
	nl[j].fd = metrics ? listener_socket(lc, "metrics_listen",
	    nl[j].bound, sizeof(nl[j].bound), err, errlen) :
	    listener_get(s->o->inherited, lc, nl[j].bound,
	    sizeof(nl[j].bound), &nl[j].from_sd, err, errlen);
	if (nl[j].fd < 0)
		return -1;
	s->nls++;
	return nl[j].fd;
}

/*
 * The sockets systemd passed that no listen key took: new ones become
 * the supervisor's (with a warning, unless there is no listen key at
 * all and they replace the default); the generation serves them all.
 */
static void
gen_sd_extra(struct sup *s, struct gen *g)
{
	struct sd_listen *sl = s->o->inherited;
	struct lsock *nl;
	size_t i;

	for (i = 0; sl != NULL && i < sl->n; i++) {
		struct sd_socket *so = &sl->socks[i];

		if (so->fd < 0)
			continue;
		nl = realloc(s->ls, (s->nls + 1) * sizeof(*nl));
		if (nl == NULL)
			break;	/* left in sl: closed at exit */
		s->ls = nl;
		nl += s->nls++;
		memset(nl, 0, sizeof(*nl));
		snprintf(nl->text, sizeof(nl->text), "%s", so->conf.text);
		listener_format_addr(&so->conf.addr, nl->bound,
		    sizeof(nl->bound));
		nl->fd = so->fd;
		nl->sd_conf = &so->conf;
		nl->from_sd = true;
		so->fd = -1;
		/* The workers' accept loops must not block. */
		if (fcntl(nl->fd, F_SETFL, fcntl(nl->fd, F_GETFL) |
		    O_NONBLOCK) != 0)
			log_msg(LOG_WARN, "listen_inherited", "%s: O_NONBLOCK: "
			    "%s", nl->bound, strerror(errno));
		log_msg(LOG_INFO, "listen_inherited", "%s: fd %d (name '%s') "
		    "from systemd, not bound again", nl->bound, nl->fd,
		    so->name);
		if (!sd_listen_replaces_default(sl, g->cfg))
			log_msg(LOG_WARN, "listen_unconfigured", "%s from "
			    "systemd matches no listen key: serving it with "
			    "the global settings", nl->text);
	}
	for (i = 0; i < s->nls; i++)
		if (s->ls[i].sd_conf != NULL && s->ls[i].fd >= 0 &&
		    !fd_in(g->fds, g->nfds, s->ls[i].fd)) {
			g->lcs[g->nfds] = s->ls[i].sd_conf;
			g->fds[g->nfds++] = s->ls[i].fd;
		}
}

/*
 * A generation for cfg: the listening fds of its addresses, the ones the
 * supervisor holds reused, the others taken from systemd or bound now.
 */
static struct gen *
gen_new(struct sup *s, const struct config *cfg, struct config *own,
    char *err, size_t errlen)
{
	struct sd_listen *sl = s->o->inherited;
	struct gen *g;
	size_t i, n;
	int fd;

	/* At most: every listen key, every socket systemd passed. */
	n = cfg->nlisten + (sl != NULL ? sl->n : 0) + 1;
	g = calloc(1, sizeof(*g));
	if (g == NULL || (g->fds = calloc(n, sizeof(*g->fds))) == NULL ||
	    (g->lcs = calloc(n, sizeof(*g->lcs))) == NULL) {
		if (g != NULL)
			free(g->fds);
		free(g);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	g->cfg = cfg;
	g->own = own;
	g->metrics_fd = -1;
	g->nworkers = config_workers(cfg);
	g->id = ++s->gen_ids;
	/* A reload makes new ticket keys, as before workers. */
	if (getrandom(g->ticket_secret, sizeof(g->ticket_secret), 0) !=
	    sizeof(g->ticket_secret)) {
		snprintf(err, errlen, "getrandom: %s", strerror(errno));
		free(g->fds);
		free(g->lcs);
		free(g);
		return NULL;
	}
	g->next = s->gens;
	s->gens = g;
	/* As root without user, no public address (before any bind);
	 * the directories the user is to write made. */
	if (privdrop_root_check(cfg, sl, err, errlen) != 0 ||
	    privdrop_prepare(cfg, err, errlen) != 0)
		goto fail;
	for (i = 0; i < cfg->nlisten; i++) {
		/* Sockets from systemd and no listen key: those alone. */
		if (sd_listen_replaces_default(sl, cfg))
			break;
		fd = gen_sock(s, g, &cfg->listen[i], false, err, errlen);
		if (fd < 0)
			goto fail;
		g->lcs[g->nfds] = &cfg->listen[i];
		g->fds[g->nfds++] = fd;
	}
	gen_sd_extra(s, g);
	if (cfg->metrics_on) {
		g->metrics_fd = gen_sock(s, g, &cfg->metrics_listen, true, err,
		    errlen);
		if (g->metrics_fd < 0)
			goto fail;
	}
	return g;
fail:
	/* Listeners bound for it and used by no one go again. */
	g->own = NULL;
	gen_free(s, g);
	return NULL;
}

/* Free the old generations whose last worker is gone. */
static void
gens_gc(struct sup *s)
{
	struct gen *g, *next;

	if (s->gens == NULL)
		return;
	for (g = s->gens->next; g != NULL; g = next) {
		next = g->next;
		if (g->alive == 0)
			gen_free(s, g);
	}
}

/* ---- events -------------------------------------------------------------- */

static void
reap(struct sup *s)
{
	struct logline l;
	struct slot *sl;
	struct gen *g;
	unsigned i;
	pid_t pid;
	int st;
	bool again;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (i = 0; i < SHARED_SLOTS; i++)
			if (s->slots[i].pid == pid)
				break;
		if (i == SHARED_SLOTS)
			continue;
		sl = &s->slots[i];
		g = sl->gen;
		again = g == s->gens && !s->stopping && !g->retiring;
		log_begin(&l, again ? LOG_WARN : LOG_INFO, NULL,
		    "worker_exit");
		log_uint(&l, "slot", i);
		log_int(&l, "pid", (long long)pid);
		log_uint(&l, "generation", g->id);
		if (WIFSIGNALED(st)) {
			log_str(&l, "signal", sigabbrev_np(WTERMSIG(st)) ?
			    sigabbrev_np(WTERMSIG(st)) : "?");
		} else {
			log_int(&l, "status", WEXITSTATUS(st));
		}
		slot_reaped(s, i);
		if (again) {
			char msg[64];

			/* Not more than once a second per slot. */
			sl->restart_at = sl->started + RESTART_INTERVAL;
			if (sl->restart_at < now_mono())
				sl->restart_at = now_mono();
			snprintf(msg, sizeof(msg), "restarting in %.1fs",
			    sl->restart_at - now_mono());
			log_str(&l, "msg", msg);
			log_end(&l);
			continue;
		}
		log_end(&l);
		sl->gen = NULL;
		gens_gc(s);
	}
}

static void
restarts(struct sup *s)
{
	char err[1024];
	double now = now_mono();
	unsigned i;

	for (i = 0; i < SHARED_SLOTS; i++) {
		struct slot *sl = &s->slots[i];

		if (sl->restart_at <= 0 || sl->restart_at > now || s->stopping)
			continue;
		if (spawn(s, i, sl->gen, false, false, err,
		    sizeof(err)) != 0) {
			log_msg(LOG_ERROR, "worker_restart_failed", "%s", err);
			sl->restart_at = now + RESTART_INTERVAL;
		}
	}
}

/* What a worker writes on its pipe after "R": "S", or "E" and why. */
static void
read_pipe(struct sup *s, unsigned i)
{
	struct slot *sl = &s->slots[i];
	char buf[1100];
	ssize_t n;

	n = read(sl->pipe, buf, sizeof(buf) - 1);
	if (n > 1 && buf[0] == 'E') {
		buf[n] = 0;
		log_msg(LOG_ERROR, "worker_failed", "slot %u: %s", i, buf + 1);
	}
	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
		close(sl->pipe);
		sl->pipe = -1;
	}
}

static void
stop(struct sup *s, int sig)
{
	double grace = 0;
	struct gen *g;
	size_t i;

	if (s->stopping)
		return;
	s->stopping = true;
	sd_notify("STOPPING=1");
	for (g = s->gens; g != NULL; g = g->next)
		if (g->cfg->shutdown_grace > grace)
			grace = g->cfg->shutdown_grace;
	log_msg(LOG_INFO, "shutdown", "draining %u sessions, grace %.0fs "
	    "(%s)", shared_conns(s->sh), s->gens->cfg->shutdown_grace,
	    sigabbrev_np(sig));
	/*
	 * shutdown(2) on a listening socket stops it listening for every
	 * process that shares it: new clients are refused from now on,
	 * even by a worker that has not yet seen its SIGTERM.  Not on a
	 * socket systemd passed: that one is systemd's as well, and
	 * must go on listening for the next start.
	 */
	for (i = 0; i < s->nls; i++) {
		if (!s->ls[i].from_sd)
			shutdown(s->ls[i].fd, SHUT_RD);
		close(s->ls[i].fd);
		s->ls[i].fd = -1;
	}
	for (i = 0; i < SHARED_SLOTS; i++) {
		s->slots[i].restart_at = 0;
		if (s->slots[i].pid > 0)
			kill(s->slots[i].pid, SIGTERM);
	}
	s->kill_at = now_mono() + grace + KILL_MARGIN;
}

static void
refuse(const char *why)
{
	log_msg(LOG_ERROR, "reload_failed", "refused: %s; keeping the "
	    "running config", why);
}

/* Old workers stop accepting: wait for each one's "S" (or its end). */
static void
wait_retired(struct sup *s, struct gen *old)
{
	double deadline = now_mono() + RETIRE_TIMEOUT;
	struct pollfd pf;
	char c;
	unsigned i;

	for (i = 0; i < SHARED_SLOTS; i++) {
		struct slot *sl = &s->slots[i];

		if (sl->gen != old || sl->pid <= 0 || sl->pipe < 0)
			continue;
		for (;;) {
			double left = deadline - now_mono();

			pf.fd = sl->pipe;
			pf.events = POLLIN;
			if (left <= 0 || poll(&pf, 1, (int)(left * 1000) +
			    1) <= 0)
				break;
			if (read(sl->pipe, &c, 1) != 1) {
				close(sl->pipe);
				sl->pipe = -1;
				break;
			}
			if (c == 'S')
				break;
		}
	}
}

static void
reload_gen(struct sup *s)
{
	struct gen *old = s->gens, *g;
	struct config *nc;
	char err[1024];
	unsigned i, n, left = 0;

	nc = calloc(1, sizeof(*nc));
	if (nc == NULL) {
		refuse("out of memory");
		return;
	}
	if (s->o->load(nc, s->o->arg, err, sizeof(err)) != 0) {
		config_free(nc);
		free(nc);
		refuse(err);
		return;
	}
	n = config_workers(nc);
	if (n > slots_free(s)) {
		snprintf(err, sizeof(err), "an earlier generation still has "
		    "%u workers finishing their sessions; try again later",
		    SHARED_SLOTS - slots_free(s));
		config_free(nc);
		free(nc);
		refuse(err);
		return;
	}
	g = gen_new(s, nc, nc, err, sizeof(err));
	if (g == NULL) {
		config_free(nc);
		free(nc);
		refuse(err);
		return;
	}
	if (gen_start(s, g, false, err, sizeof(err)) != 0) {
		gen_free(s, g);
		refuse(err);
		return;
	}
	log_setup(nc->log_level, nc->log_format);
	gen_log_start(s, g);
	for (old = g->next; old != NULL; old = old->next) {
		if (old->retiring)
			continue;
		old->retiring = true;
		for (i = 0; i < SHARED_SLOTS; i++) {
			struct slot *sl = &s->slots[i];

			if (sl->gen != old)
				continue;
			if (sl->pid > 0) {
				kill(sl->pid, SIGUSR2);
				left++;
			} else {
				sl->gen = NULL;	/* a restart not due */
				sl->restart_at = 0;
			}
		}
		wait_retired(s, old);
	}
	log_msg(LOG_INFO, "reload", "configuration and certificates "
	    "reloaded: generation %u, %u workers; %u old workers finish "
	    "their sessions", g->id, g->nworkers, left);
	gens_gc(s);
	lsock_gc(s);
}

/*
 * SIGHUP.  systemd (Type=notify-reload) hears RELOADING=1 with the
 * reload's start on CLOCK_MONOTONIC, then READY=1 once the new
 * generation accepts, or once the reload was refused and the running
 * generation goes on.
 */
static void
reload(struct sup *s)
{
	struct timespec ts;
	char state[80];

	if (s->stopping)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000);
	sd_notify(state);
	reload_gen(s);
	sd_notify("READY=1");
}

static int
poll_timeout(struct sup *s)
{
	double t = 0, now = now_mono(), d;
	bool any = false;
	unsigned i;

	for (i = 0; i < SHARED_SLOTS; i++) {
		if (s->slots[i].restart_at <= 0)
			continue;
		d = s->slots[i].restart_at - now;
		if (!any || d < t)
			t = d;
		any = true;
	}
	if (s->stopping && !s->killed) {
		d = s->kill_at - now;
		if (!any || d < t)
			t = d;
		any = true;
	}
	if (!any)
		return -1;
	return t <= 0 ? 0 : (int)(t * 1000) + 1;
}

static unsigned
alive(struct sup *s)
{
	unsigned i, n = 0;

	for (i = 0; i < SHARED_SLOTS; i++)
		if (s->slots[i].pid > 0)
			n++;
	return n;
}

/* What the signalfd holds (non-blocking): act on each. */
static void
signals(struct sup *s)
{
	struct signalfd_siginfo si;

	while (read(s->sfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			stop(s, (int)si.ssi_signo);
			break;
		case SIGHUP:
			reload(s);
			break;
		default:	/* SIGCHLD: reap() follows */
			break;
		}
	}
}

static void
run(struct sup *s)
{
	struct pollfd pf[1 + SHARED_SLOTS];
	unsigned map[1 + SHARED_SLOTS];
	unsigned i, n;

	for (;;) {
		/*
		 * Signals before reaping: when a service manager sends
		 * SIGTERM to every process at once, a worker that exits at
		 * once must be seen after our own SIGTERM, not restarted.
		 */
		signals(s);
		reap(s);
		restarts(s);
		if (s->stopping && alive(s) == 0)
			return;
		if (s->stopping && !s->killed && now_mono() >= s->kill_at) {
			log_msg(LOG_WARN, "shutdown_kill", "%u workers still "
			    "running after shutdown_grace + %.0fs: killed",
			    alive(s), KILL_MARGIN);
			for (i = 0; i < SHARED_SLOTS; i++)
				if (s->slots[i].pid > 0)
					kill(s->slots[i].pid, SIGKILL);
			s->killed = true;
		}
		pf[0].fd = s->sfd;
		pf[0].events = POLLIN;
		n = 1;
		for (i = 0; i < SHARED_SLOTS; i++) {
			if (s->slots[i].pipe < 0)
				continue;
			pf[n].fd = s->slots[i].pipe;
			pf[n].events = POLLIN;
			map[n++] = i;
		}
		if (poll(pf, n, poll_timeout(s)) < 0 && errno != EINTR)
			return;
		for (i = 1; i < n; i++)
			if (pf[i].revents != 0)
				read_pipe(s, map[i]);
	}
}

int
supervisor_run(const struct config *cfg, const struct supervisor_opts *o)
{
	struct sup *s;
	struct gen *g;
	sigset_t set;
	char err[1024];
	size_t i;
	int rc = 1;

	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		fprintf(stderr, "mxd: out of memory\n");
		return 1;
	}
	the_sup = s;
	s->o = o;
	s->pid = getpid();
	s->sfd = -1;
	for (i = 0; i < SHARED_SLOTS; i++)
		s->slots[i].pipe = -1;
	/* Made before any fork: every worker, of every generation, maps
	 * the same regions; the metrics have a slot per worker slot. */
	s->sh = shared_create(err, sizeof(err));
	if (s->sh == NULL)
		goto fail;
	s->mr = metrics_region_create(SHARED_SLOTS);
	if (s->mr == NULL) {
		snprintf(err, sizeof(err), "metrics: %s", strerror(errno));
		goto fail;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sigdelset(&set, SIGUSR2);
	s->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->sfd < 0) {
		snprintf(err, sizeof(err), "signalfd: %s", strerror(errno));
		goto fail;
	}
	log_msg(LOG_INFO, "supervisor", "pid %ld, %u workers",
	    (long)s->pid, config_workers(cfg));
	g = gen_new(s, cfg, NULL, err, sizeof(err));
	if (g == NULL || gen_start(s, g, o->print_cert, err,
	    sizeof(err)) != 0)
		goto fail;
	gen_log_start(s, g);
	/* Printed = every worker serves (docs/harness.md); the metrics
	 * line first, as a harness reads up to the listening lines. */
	if (g->metrics_fd >= 0)
		printf("metrics %s\n", lsock_bound(s, g->metrics_fd));
	for (i = 0; i < g->nfds; i++)
		printf("listening %s\n", lsock_bound(s, g->fds[i]));
	fflush(stdout);
	sd_notify("READY=1");
	run(s);
	{
		struct server_stats st;

		memcpy(&st, shared_stats(s->sh), sizeof(st));
		stop_line("stop", &st, s->gens->cfg->nfaults != 0, -1);
	}
	rc = 0;
fail:
	s->stopping = true;	/* no more log lines */
	while (s->gens != NULL)
		gen_free(s, s->gens);
	for (i = 0; i < s->nls; i++)
		if (s->ls[i].fd >= 0)
			close(s->ls[i].fd);
	free(s->ls);
	if (s->sfd >= 0)
		close(s->sfd);
	shared_destroy(s->sh);
	metrics_region_free(s->mr);
	free(s);
	the_sup = NULL;
	if (rc != 0)
		fprintf(stderr, "mxd: %s\n", err);
	return rc;
}
