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

/* Connections per client address (keys: IPv6 or v4-mapped, 16 octets). */
struct ipcount_entry {
	unsigned char		 key[16];
	unsigned		 count;
	struct ipcount_entry	*next;
};

#define IPCOUNT_BUCKETS	4096

/* Client addresses whose TLS handshake failed, until when. */
struct fallback_entry {
	unsigned char		 key[16];
	ev_tstamp		 until;
	struct fallback_entry	*next;
};

#define FALLBACK_MAX	65536

/* New connections per client address: a token bucket each. */
struct rate_entry {
	unsigned char		 key[16];
	double			 tokens;
	ev_tstamp		 last;
	struct rate_entry	*next;
};

#define RATE_MAX	65536

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
	struct ipcount_entry	*ipcount[IPCOUNT_BUCKETS];
	uint32_t		 ipcount_seed;

	ev_signal		 sigterm, sigint, sighup;
	ev_timer		 grace;
	bool			 shutting_down;

	struct tls_server	*tls;		/* new handshakes use this */
	struct fallback_entry	*fallback[IPCOUNT_BUCKETS];
	unsigned		 nfallback;
	struct rate_entry	*rate[IPCOUNT_BUCKETS];
	unsigned		 nrate;
	struct server_stats	 stats;

	uint64_t		 sid_next;	/* random start, then +1 */

	/* Fault rules (cfg->faults): how often each matched, and the
	 * TLS servers of "tls cert" and "tls max_version" rules. */
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
int	server_listen(struct server *srv, char *err, size_t errlen);
void	server_teardown(struct server *srv);
void	server_log_start(const struct server *srv);
/* After fork: this worker counts in slot i of srv->metrics_region. */
int	server_metrics_slot(struct server *srv, unsigned i);
unsigned ipcount_add(struct server *srv, const unsigned char key[16],
	    int delta);
/* Load the certificates of the config (or make the self-signed one). */
struct tls_server *server_tls_load(const struct config *cfg, bool print,
	    char *err, size_t errlen);
void	server_reload_tls(struct server *srv);
/* Counters and TLS servers for the fault rules; 0 or -1 with err. */
int	server_faults_init(struct server *srv, char *err, size_t errlen);
void	server_faults_free(struct server *srv);
void	fallback_note(struct server *srv, const unsigned char key[16]);
bool	fallback_active(struct server *srv, const unsigned char key[16]);
/* max_connection_rate: may this address open one more connection now? */
bool	rate_allow(struct server *srv, const unsigned char key[16]);
void	server_free_tables(struct server *srv);
void	server_conn_gone(struct server *srv);
void	server_shutdown(struct server *srv);

/* metrics_http.c: the metrics_listen socket (none when it is empty). */
int	metrics_http_open(struct server *srv, char *err, size_t errlen);
/* "ADDR:PORT" bound, or NULL when metrics are off. */
const char *metrics_http_bound(const struct server *srv);
/* Stop serving: the listener and any scrape in progress. */
void	metrics_http_close(struct server *srv);

/* conn.c */
void	conn_accept(struct listener *l, int fd, const struct sockaddr *sa,
	    socklen_t salen);
/* SIGTERM: 421 now, or after the transaction in DATA. */
void	conn_shutdown(struct conn *c);
/* Grace over: close whatever is left. */
void	conn_abort(struct conn *c);
struct conn *conn_next(struct conn *c);

#endif
