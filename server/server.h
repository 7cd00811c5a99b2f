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

struct delivery;
struct delivery_txn;
struct tls_server;
struct worker_pool;
struct conn;

struct listener {
	ev_io			 io;
	int			 fd;
	struct server		*srv;
	const struct listen_conf *conf;
	char			 bound[80];	/* with the real port */
	bool			 tls;		/* STARTTLS offered here */
	bool			 require_tls;
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
};

struct server {
	struct ev_loop		*loop;
	const struct config	*cfg;
	struct worker_pool	*pool;
	struct delivery		*delivery;

	struct listener		*listeners;
	size_t			 nlisteners;
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
};

/* listener.c */
int	listener_open(struct server *srv, const struct listen_conf *lc,
	    struct listener *l, char *err, size_t errlen);
/* socket, bind, listen: the fd and "ADDR:PORT" with the real port. */
int	listener_bind(const struct listen_conf *lc, int *fd, char *bound,
	    size_t boundlen, char *err, size_t errlen);
/* Serve an fd bound before (by the supervisor). */
void	listener_attach(struct server *srv, const struct listen_conf *lc,
	    struct listener *l, int fd);
void	listener_close(struct listener *l);
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
/* A worker: serve the fds the supervisor bound, one per cfg->listen. */
int	server_adopt(struct server *srv, const int *fds, char *err,
	    size_t errlen);
/* Reload, old generation: stop accepting; sessions go on until they
 * end, or until shutdown_grace, when the normal drain begins. */
void	server_retire(struct server *srv);
void	server_teardown(struct server *srv);
void	server_log_start(const struct server *srv);
void	server_log_start_as(const struct config *cfg, const char *listen,
	    const char *delivery, bool tls);
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

/* conn.c */
void	conn_accept(struct listener *l, int fd, const struct sockaddr *sa,
	    socklen_t salen);
/* SIGTERM: 421 now, or after the transaction in DATA. */
void	conn_shutdown(struct conn *c);
/* Grace over: close whatever is left. */
void	conn_abort(struct conn *c);
struct conn *conn_next(struct conn *c);

#endif
