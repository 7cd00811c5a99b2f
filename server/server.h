/*
 * server.h - the daemon's own state and the glue between its files.
 *
 * struct server owns the loop, the frozen config, the listeners, every
 * connection, the worker pool and the delivery backend.  One connection
 * is a struct conn (conn.c); its teardown path is conn_close() alone.
 */
#ifndef MXD_SERVER_H
#define MXD_SERVER_H

#include <ev.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "mxd.h"
#include "smtp.h"
#include "smtp_proxy.h"

struct delivery;
struct delivery_txn;
struct tls_server;
struct worker_pool;
struct conn;
struct sd_listen;
struct metrics_region;
struct metrics_slot;
struct metrics_http;

struct listener {
	ev_io			 io;
	int			 fd;
	struct server		*srv;
	const struct listen_conf *conf;
	char			 bound[80];	/* with the real port */
	bool			 tls;		/* STARTTLS offered here */
	bool			 require_tls;
	enum smtp_proxy_mode	 proxy;		/* PROXY header first */
	/* proto's view; smtp_notls for clients in the fallback window. */
	struct smtp_config	 smtp;
	struct smtp_config	 smtp_notls;
};

/* Counted for the stop line. */
struct server_stats {
	unsigned long long	 connections;
	unsigned long long	 pregreet;
	unsigned long long	 http_requests;
	unsigned long long	 floods;
	unsigned long long	 rate_limited;
	unsigned long long	 slow_data;
	unsigned long long	 faults;
	/* PROXY protocol: peers not in proxy_trusted, no header in time
	 * (or closed before it), malformed headers, v2 LOCAL checks. */
	unsigned long long	 proxy_untrusted;
	unsigned long long	 proxy_missing;
	unsigned long long	 proxy_bad;
	unsigned long long	 proxy_health;
};

struct server {
	struct ev_loop		*loop;
	const struct config	*cfg;
	struct worker_pool	*pool;
	struct delivery		*delivery;

	struct listener		*listeners;
	size_t			 nlisteners;
	/* Sockets systemd passed (sd.c); NULL but in the daemon. */
	struct sd_listen	*inherited;
	bool			 accept_paused;
	ev_timer		 accept_retry;	/* after EMFILE */
	ev_tstamp		 emfile_logged;

	struct conn		*conns;		/* all live connections */
	unsigned		 nconns;

	/* What all workers share (shared.h), and this worker's slot
	 * there (0 in libmxd); also the slot of per-worker metrics. */
	struct shared		*sh;
	bool			 own_sh;
	bool			 first;	/* see server_setup_shared */
	unsigned		 worker_slot;

	ev_timer		 grace;
	bool			 shutting_down;
	/* After a reload: no more accepting; sessions go on. */
	bool			 retiring;
	ev_timer		 retire;

	struct tls_server	*tls;		/* new handshakes use this */
	struct server_stats	 stats;

	/* Fault rules (cfg->faults): how often each matched (in the
	 * shared region), and the TLS servers of "tls cert" and
	 * "tls max_version" rules. */
	unsigned long long	*fault_hits;
	struct tls_server	**fault_tls;

	/* libmxd: the caller's callbacks (all NULL for the daemon), and
	 * a loop that is not ours to break. */
	struct mxd_callbacks	 cb;
	bool			 embedded;

	/*
	 * Prometheus (metrics.h): the counters, in memory shared across
	 * fork(), and this process's slot in them.  A caller that forks
	 * workers sets metrics_region and metrics_index before
	 * server_setup(), which keeps them; left NULL, server_setup()
	 * makes a region of one slot, its own.
	 */
	struct metrics_region	*metrics_region;
	unsigned		 metrics_index;
	bool			 metrics_own;
	struct metrics_slot	*metrics;
	struct metrics_http	*metrics_http;	/* metrics_listen */
};

/* listener.c */
int	listener_open(struct server *srv, const struct listen_conf *lc,
	    struct listener *l, char *err, size_t errlen);
/* The socket systemd passed for lc (*from_sd true), or one bound now:
 * the fd and "ADDR:PORT" with the real port, or -1 with err. */
int	listener_get(struct sd_listen *inherited, const struct listen_conf *lc,
	    char *bound, size_t boundlen, bool *from_sd, char *err,
	    size_t errlen);
/* Serve an fd bound before (by the supervisor). */
void	listener_attach(struct server *srv, const struct listen_conf *lc,
	    struct listener *l, int fd);
void	listener_close(struct listener *l);
void	listener_format_addr(const struct sockaddr_storage *ss, char *out,
	    size_t outlen);
int	listener_socket(const struct listen_conf *lc, const char *what,
	    char *bound, size_t boundlen, char *err, size_t errlen);
void	listeners_init(struct server *srv);
void	listeners_pause(struct server *srv);
void	listeners_resume(struct server *srv);

/* server.c */
int	server_setup(struct server *srv, const struct config *cfg,
	    struct ev_loop *loop, bool print, char *err, size_t errlen);
/* The same, in a worker: the region of all workers and its slot. */
/* first: the first worker of a generation, which makes the files the
 * others then read (the fault rules' certificates). */
int	server_setup_shared(struct server *srv, const struct config *cfg,
	    struct ev_loop *loop, bool print, bool first, struct shared *sh,
	    unsigned slot, char *err, size_t errlen);
int	server_listen(struct server *srv, char *err, size_t errlen);
/* A worker: serve the n fds the supervisor holds, fds[i] for lcs[i]. */
int	server_adopt(struct server *srv, const struct listen_conf *const *lcs,
	    const int *fds, size_t n, char *err, size_t errlen);
/* Reload, old generation: stop accepting; sessions go on until they
 * end, or until shutdown_grace, when the normal drain begins. */
void	server_retire(struct server *srv);
void	server_teardown(struct server *srv);
void	server_log_start(const struct server *srv);
void	server_log_start_as(const struct config *cfg, const char *listen,
	    const char *delivery, bool tls);
/* After fork: this worker counts in slot i of srv->metrics_region. */
int	server_metrics_slot(struct server *srv, unsigned i);
unsigned ipcount_add(struct server *srv, const unsigned char key[16],
	    int delta);
/* max_connections over all workers: may this one accept one more? */
bool	server_conn_reserve(struct server *srv);
void	server_conn_release(struct server *srv);
/* Load the certificates of the config (or make the self-signed one). */
struct tls_server *server_tls_load(const struct server *srv, bool print,
	    char *err, size_t errlen);
/* Counters and TLS servers for the fault rules; 0 or -1 with err. */
int	server_faults_init(struct server *srv, char *err, size_t errlen);
void	server_faults_free(struct server *srv);
void	fallback_note(struct server *srv, const unsigned char key[16]);
bool	fallback_active(struct server *srv, const unsigned char key[16]);
/* max_connection_rate: may this address open one more connection now? */
bool	rate_allow(struct server *srv, const unsigned char key[16]);
void	server_conn_gone(struct server *srv);
void	server_shutdown(struct server *srv);

/* metrics_http.c: the metrics_listen socket (none when it is empty). */
int	metrics_http_open(struct server *srv, char *err, size_t errlen);
/* A worker: serve fd, the metrics listener its supervisor bound (-1:
 * none); it is closed with the server. */
int	metrics_http_adopt(struct server *srv, int fd, char *err,
	    size_t errlen);
/* "ADDR:PORT" bound, or NULL when metrics are off. */
const char *metrics_http_bound(const struct server *srv);
/* Stop serving: the listener and any scrape in progress. */
void	metrics_http_close(struct server *srv);

/* conn.c */
/* True: the connection is counted until it closes; false: it is gone. */
bool	conn_accept(struct listener *l, int fd, const struct sockaddr *sa,
	    socklen_t salen);
/* SIGTERM: 421 now, or after the transaction in DATA. */
void	conn_shutdown(struct conn *c);
/* Grace over: close whatever is left. */
void	conn_abort(struct conn *c);
struct conn *conn_next(struct conn *c);

#endif
