/*
 * mxd.h - libmxd: the mxd SMTP server inside a program of your own.
 *
 * The same code as the daemon, on the caller's libev loop: a test
 * harness in C configures a server with the keys of mxd.conf(5), gives
 * it callbacks for sessions, senders, recipients and messages, starts
 * it, asks for its port, runs its loop, and stops and frees it.
 *
 *	struct mxd_config *c = mxd_config_create();
 *	mxd_config_set(c, "listen", "127.0.0.1:0", err, sizeof(err));
 *	struct mxd *m = mxd_create(EV_DEFAULT, c, &callbacks, err, ...);
 *	mxd_start(m, err, sizeof(err));
 *	... connect to mxd_listener_port(m, 0), ev_run(EV_DEFAULT, ...) ...
 *	mxd_stop(m);
 *	mxd_destroy(m);
 *
 * Everything runs in the loop's thread, callbacks included, and a
 * callback may not call back into libmxd.  Pointers handed to a
 * callback are valid during the call only.  The library installs no
 * signal handlers and prints nothing; its log goes to standard error,
 * as the daemon's (log_level, log_format).  It writes with MSG_NOSIGNAL,
 * so a closed peer raises no SIGPIPE.  docs/harness.md shows a whole
 * program.
 */
#ifndef MXD_H
#define MXD_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ev_loop;

/* Bumped when a struct here changes in a way old callers would miss. */
#define MXD_API_VERSION	1

/* "0.1.0 (mbedTLS 2.28.3)" */
const char	*mxd_version(void);

/* ---- configuration ---------------------------------------------------- */

struct mxd_config;

/* Defaults of mxd.conf(5); NULL when out of memory. */
struct mxd_config *mxd_config_create(void);
/* NULL is fine.  Not after mxd_create(), which took the config. */
void		 mxd_config_destroy(struct mxd_config *c);
/*
 * One key of mxd.conf(5) ("listen", "domain", "fault", ...): 0, or -1
 * with "key: why" in err.  A repeatable key adds a value each call.
 * Keys set here override those of a file loaded before or after.
 */
int		 mxd_config_set(struct mxd_config *c, const char *key,
		    const char *value, char *err, size_t errlen);
/* An mxd.conf(5) file: 0, or -1 with "FILE:LINE: key: why" in err. */
int		 mxd_config_load(struct mxd_config *c, const char *path,
		    char *err, size_t errlen);

/* ---- what callbacks see ----------------------------------------------- */

struct mxd_session {
	const char		*id;		/* the log's session id */
	unsigned long long	 number;	/* connections since start */
	const char		*client_ip;	/* "127.0.0.1", "::1" */
	unsigned		 client_port;
	const char		*helo;		/* NULL before HELO/EHLO */
	bool			 esmtp;		/* EHLO, not HELO */
	const char		*tls_version;	/* NULL: plaintext */
	const char		*tls_cipher;
	const char		*tls_sni;	/* NULL: none sent */
	/* Yours: set it in any callback, it is kept for the session. */
	void			*user;
};

struct mxd_message {
	const char		*id;		/* of "250 ... queued as ID" */
	const char		*mail_from;	/* "" for <> */
	const char *const	*rcpt_to;	/* the accepted recipients */
	size_t			 nrcpt;
	/* The message as sent: CRLF line ends, dot-unstuffed, no header
	 * added.  At most max_message_size octets. */
	const unsigned char	*data;
	size_t			 size;
};

/* A callback's answer. */
enum mxd_answer {
	MXD_ACCEPT = 0,
	MXD_TEMPFAIL,		/* 4xx: try again later */
	MXD_REJECT,		/* 5xx: never */
};

/*
 * The reply that goes with MXD_TEMPFAIL or MXD_REJECT: zeroed before
 * each call; fill it for a reply of your own, or leave code 0 for the
 * default one.  The code must be 4xx for TEMPFAIL and 5xx for REJECT
 * (at session_start: 421 or 554), the enhanced code (optional) of the
 * same class, the text printable ASCII; a reply that breaks these rules
 * is replaced by the default.
 */
struct mxd_reply {
	int	code;
	char	enh[16];	/* "5.1.1", or "" */
	char	text[400];
};

/*
 * Every member may be NULL: that event is then not reported, and the
 * server does as the daemon would.  arg is passed to each.
 */
struct mxd_callbacks {
	void	*arg;
	/* A client connected; REJECT: greeted with 554 and refused all
	 * but QUIT (RFC 5321 3.1), TEMPFAIL: 421 and closed. */
	enum mxd_answer (*session_start)(void *arg, struct mxd_session *s,
			    struct mxd_reply *r);
	/* The connection is gone; reason as in the log's disconnect line
	 * ("quit", "eof", "timeout", "tls_failed", "shutdown", ...). */
	void	(*session_end)(void *arg, struct mxd_session *s,
		    const char *reason);
	/* MAIL FROM: the reverse path, "" for <>.  Defaults: 451 4.3.0,
	 * 550 5.7.1. */
	enum mxd_answer (*mail)(void *arg, struct mxd_session *s,
			    const char *from, struct mxd_reply *r);
	/* RCPT TO, after the domain policy (the domain key) let it
	 * through.  Defaults: 451 4.3.0, 550 5.1.1. */
	enum mxd_answer (*rcpt)(void *arg, struct mxd_session *s,
			    const char *to, struct mxd_reply *r);
	/*
	 * The message, whole.  With this callback messages stay in memory
	 * and go nowhere else (no Maildir, no capture); ACCEPT answers
	 * "250 2.0.0 Ok: queued as ID".  Defaults: 451 4.3.0, 554 5.7.1.
	 */
	enum mxd_answer (*message)(void *arg, struct mxd_session *s,
			    const struct mxd_message *m, struct mxd_reply *r);
};

/* ---- the server ------------------------------------------------------- */

struct mxd;

/*
 * A server on loop, with config c (taken: freed with the server, or now
 * on failure) and callbacks cb (copied; may be NULL).  Checks the whole
 * config and loads the certificates; opens no socket yet.  NULL with a
 * reason in err.
 */
struct mxd	*mxd_create(struct ev_loop *loop, struct mxd_config *c,
		    const struct mxd_callbacks *cb, char *err, size_t errlen);
/* Bind and listen; connections are accepted as the loop runs.  0/-1. */
int		 mxd_start(struct mxd *m, char *err, size_t errlen);
size_t		 mxd_listener_count(const struct mxd *m);
/* The bound port of listener i (the real one for "ADDR:0"), or -1. */
int		 mxd_listener_port(const struct mxd *m, size_t i);
/* "127.0.0.1:40321", "[::1]:2525"; NULL for no such listener. */
const char	*mxd_listener_address(const struct mxd *m, size_t i);
/*
 * Stop now: no more connections; every session gets "421 4.3.2" and
 * is closed (a message not yet answered is not kept, and its client
 * got no 250).  session_end is called for each.  After it the server
 * holds no watcher on the loop; mxd_start() may not be called again.
 */
void		 mxd_stop(struct mxd *m);
/* Stops it if need be, waits for file work in flight, frees.  NULL ok. */
void		 mxd_destroy(struct mxd *m);

#ifdef __cplusplus
}
#endif

#endif
