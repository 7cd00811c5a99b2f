/*
 * config.h - mxd's configuration: defaults, the INI file, -o overrides.
 *
 * A struct config is filled in three layers, each overriding the last:
 * built-in defaults (config_init), the file (config_load_file), then the
 * command line (config_set with CONFIG_SRC_CMDLINE).  config_finish()
 * checks the whole and derives what depends on several keys; after it,
 * the struct is read-only for the life of the server.  Every key, with
 * its default and range, is in docs/mxd.conf.5.
 */
#ifndef MXD_CONFIG_H
#define MXD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

#include "fault.h"
#include "log.h"
#include "smtp.h"

enum config_src {
	CONFIG_SRC_DEFAULT = 0,
	CONFIG_SRC_FILE,
	CONFIG_SRC_CMDLINE,
};

struct proxy_cidr;

struct listen_conf {
	char			text[80];	/* "127.0.0.1:2525", "[::1]:25" */
	struct sockaddr_storage	addr;
	socklen_t		addrlen;
	/* Per-listener options after the address; -1: the global key. */
	int			tls;
	int			require_tls;
	int			proxy;		/* enum smtp_proxy_mode */
};

/* Where accepted messages go (key delivery). */
enum config_delivery {
	CONFIG_DELIVERY_MAILDIR = 0,
	CONFIG_DELIVERY_CAPTURE,	/* ID.eml + ID.json, for harnesses */
	CONFIG_DELIVERY_DISCARD,	/* read, count, drop: benchmarks */
	CONFIG_DELIVERY_CALLBACK,	/* libmxd's message callback; no key */
	CONFIG_DELIVERY_LMTP,		/* lmtp:unix:PATH, lmtp:ADDR:PORT */
};

struct config {
	char			 hostname[256];
	struct listen_conf	*listen;
	size_t			 nlisten;
	char			**domains;	/* lower case */
	size_t			 ndomains;
	char			*maildir;	/* path, maybe with %d %l */
	enum config_delivery	 delivery;
	char			*capture_dir;	/* delivery = capture */
	/* delivery = lmtp:...: the downstream, its text without "lmtp:" */
	char			 lmtp_text[120];
	struct sockaddr_storage	 lmtp_addr;	/* AF_UNIX, AF_INET(6) */
	socklen_t		 lmtp_addrlen;
	double			 lmtp_timeout;	/* per step, seconds */
	unsigned		 lmtp_connections;	/* idle ones kept */
	struct smtp_config	 smtp;		/* limits, policy for proto */
	unsigned		 max_connections;
	unsigned		 max_connections_per_ip;
	unsigned		 max_connection_rate;	/* per IP per minute */
	double			 greeting_delay;	/* 0: greet at once */
	unsigned		 min_data_rate;		/* octets/s in DATA */
	double			 idle_timeout;	/* seconds */
	double			 shutdown_grace;
	unsigned		 delivery_threads;
	unsigned		 workers;	/* 0: CPUs online (config_workers) */
	bool			 commit_syncfs;	/* group commit: one syncfs */
	enum log_level		 log_level;
	enum log_format		 log_format;
	char			*data_dir;	/* our own files */
	/* Prometheus metrics over HTTP; off unless metrics_listen is set */
	bool			 metrics_on;
	struct listen_conf	 metrics_listen;

	/* Privileges (privdrop.c): whom to become after the binds. */
	char			*user;
	char			*group;		/* NULL: user's primary */
	bool			 allow_root;

	/* STARTTLS */
	bool			 tls;		/* offer it */
	bool			 require_tls;	/* default for listeners */
	char			**tls_certs;
	size_t			 ntls_certs;
	char			**tls_keys;
	size_t			 ntls_keys;
	int			 tls_min_version;	/* 0x0301.. */
	bool			 tls_tickets;
	double			 tls_ticket_lifetime;
	double			 tls_handshake_timeout;
	double			 tls_fallback_window;
	bool			 tls_ask_client_cert;
	char			*tls_client_ca;

	/* PROXY protocol (server/proxy.h) */
	int			 proxy_protocol;	/* for listeners */
	struct proxy_cidr	*proxy_trusted;
	size_t			 nproxy_trusted;
	double			 proxy_timeout;

	/* fault: a harness's rules (docs/harness.md), in order */
	struct fault_rule	*faults;
	size_t			 nfaults;

	/* Which layer last set the repeatable keys (a layer replaces). */
	enum config_src		 listen_src;
	enum config_src		 domain_src;
	enum config_src		 cert_src;
	enum config_src		 key_src;
	enum config_src		 fault_src;
	enum config_src		 proxy_trusted_src;
};

void	config_init(struct config *c);
void	config_free(struct config *c);

/* 0, or -1 with "FILE:LINE: key: why" in err. */
int	config_load_file(struct config *c, const char *path, char *err,
	    size_t errlen);
/* One key; 0, or -1 with "key: why" in err. */
int	config_set(struct config *c, enum config_src src, const char *key,
	    const char *value, char *err, size_t errlen);
/* Checks across keys, defaults that depend on others. */
int	config_finish(struct config *c, char *err, size_t errlen);

/* "300", "300s", "5m", "1h", "250ms" in seconds.  0 or -1. */
int	config_parse_duration(const char *v, double *out);

/* Parse "ADDR:PORT" (IPv4, or [IPv6]); no DNS.  0 or -1. */
int	config_parse_listen(const char *s, struct listen_conf *out);

/* Does any listener offer STARTTLS (globally or by its own option)? */
bool	config_wants_tls(const struct config *c);

/* Most worker processes (key workers). */
#define WORKERS_MAX	64

/* The number of worker processes: the key, or the CPUs online. */
unsigned config_workers(const struct config *c);

/* The key names, for --help. */
void	config_print_keys(FILE *f);

#endif
