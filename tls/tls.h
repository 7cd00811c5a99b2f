/*
 * tls.h - TLS for one server socket at a time, behind a small interface.
 *
 * tls/ knows nothing of SMTP.  A tls_server holds what every handshake
 * shares (certificates, versions, suites, ticket keys, the RNG); a
 * tls_conn runs one server-side TLS session over a non-blocking fd and is
 * driven by readiness: each call returns TLS_WANT_READ or TLS_WANT_WRITE
 * when the fd must become ready first.  Only tls/ includes mbedTLS.
 *
 * The failure rule (RFC 5246 7.2.2, RFC 8446 6.2): when a handshake
 * fails, exactly one fatal alert goes to the peer, then the connection is
 * closed.  tls_conn_handshake() returns TLS_ERR; the caller then calls
 * tls_conn_send_alert() until it returns 0 (it sends our alert only if
 * mbedTLS has not sent one and the peer did not end the session itself),
 * and reads the cause with tls_conn_failure().  Closing the fd is the
 * caller's, after a half-close and a short drain so that the alert is not
 * destroyed by a TCP reset.
 *
 * Lifetimes: a tls_conn keeps its tls_server alive (reference counted),
 * so a reload can replace the server while sessions run on the old one.
 * Strings returned by tls_conn_* live as long as the tls_conn.
 */
#ifndef MXD_TLS_H
#define MXD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tls_wire.h"

enum {
	TLS_OK = 0,
	TLS_ERR = -1,
	TLS_WANT_READ = -2,
	TLS_WANT_WRITE = -3,
};

#define TLS_V10	0x0301
#define TLS_V11	0x0302
#define TLS_V12	0x0303
#define TLS_V13	0x0304

struct tls_keypair_files {
	const char	*cert;		/* PEM, leaf first, then chain */
	const char	*key;		/* PEM */
};

struct tls_server_conf {
	const struct tls_keypair_files *pairs;
	size_t		 npairs;
	int		 min_version;	/* TLS_V10 .. TLS_V13 */
	int		 max_version;	/* 0: the library's highest */
	bool		 tickets;	/* RFC 5077 / 8446 4.6.1 */
	unsigned	 ticket_lifetime; /* s; keys rotate at this period */
	/* 32 octets that several processes share, so that each accepts
	 * the others' tickets; NULL: keys of this server's own. */
	const unsigned char *ticket_secret;
	bool		 ask_client_cert; /* request, never require */
	const char	*client_ca;	/* PEM bundle to verify against */
};

enum tls_fail_class {
	TLS_FAIL_NONE = 0,
	TLS_FAIL_NO_SHARED_CIPHER,
	TLS_FAIL_NO_SHARED_GROUP,
	TLS_FAIL_PROTOCOL_VERSION,
	TLS_FAIL_NOT_TLS,		/* the first octets are not a record */
	TLS_FAIL_DECODE,		/* a record, but malformed */
	TLS_FAIL_CLIENT_ALERT,		/* the client sent a fatal alert */
	TLS_FAIL_EOF,			/* the client closed */
	TLS_FAIL_RESET,			/* the connection was reset */
	TLS_FAIL_TIMEOUT,		/* tls_conn_timeout() was called */
	TLS_FAIL_BAD_CERTIFICATE,	/* the client's certificate */
	TLS_FAIL_HANDSHAKE,		/* another handshake error */
	TLS_FAIL_INTERNAL,		/* ours: memory, RNG */
	TLS_FAIL_INJECTED,		/* tls_conn_set_fault() */
};

/*
 * Faults a test harness injects into one handshake (docs/harness.md).
 * ALERT and CLOSE act at a step: when the whole ClientHello has been
 * read (before mbedTLS answers it), or once the server's first flight
 * (ServerHello...) is out.  STALL reads and drops what the client sends
 * and never answers.  GARBAGE answers the ClientHello with octets that
 * are no TLS record, then fails without an alert.  Each makes
 * tls_conn_handshake() return TLS_ERR with class TLS_FAIL_INJECTED (but
 * STALL, which never ends by itself), and tls_conn_send_alert() then
 * sends ALERT's alert, or none.
 */
enum tls_fault_kind {
	TLS_FAULT_NONE = 0,
	TLS_FAULT_ALERT,
	TLS_FAULT_CLOSE,
	TLS_FAULT_STALL,
	TLS_FAULT_GARBAGE,
};

enum tls_fault_step {
	TLS_STEP_CLIENT_HELLO = 0,
	TLS_STEP_SERVER_HELLO,
};

struct tls_fault {
	enum tls_fault_kind	 kind;
	enum tls_fault_step	 step;
	int			 alert;		/* ALERT: its description */
};

/* Certificates a harness presents on purpose (tls_make_variant). */
enum tls_cert_variant {
	TLS_CERT_EXPIRED,	/* validity ended a day ago */
	TLS_CERT_WRONG_NAME,	/* for "wrong-name.invalid" */
	TLS_CERT_UNTRUSTED,	/* the right name, issued by a CA thrown away */
};

struct tls_failure {
	enum tls_fail_class	 cls;
	const char		*class_name;	/* "no_shared_cipher" */
	int			 alert_sent;	/* TLS_ALERT_NONE, desc or
						 * TLS_ALERT_ENCRYPTED */
	bool			 alert_by_us;	/* mxd, not mbedTLS, sent it */
	int			 alert_received;
	const char		*step;		/* "client_hello", ... */
	int			 lib_error;	/* mbedTLS error code */
	char			 lib_text[96];
	const struct tls_hello_info *hello;	/* parsed if possible */
};

struct tls_server;
struct tls_conn;

int	tls_global_init(void);

/* NULL with a reason in err (names the file) on failure. */
struct tls_server *tls_server_create(const struct tls_server_conf *c,
		    char *err, size_t errlen);
/* Drops the creator's reference; freed when no tls_conn uses it. */
void		 tls_server_destroy(struct tls_server *s);
/* "ECDSA P-256 CN=mx.example (2 names)" for each pair, for the log. */
size_t		 tls_server_npairs(const struct tls_server *s);
const char	*tls_server_pair_desc(const struct tls_server *s, size_t i);

/*
 * Make a self-signed ECDSA P-256 certificate for hostname, valid ten
 * years, and write it and its key (mode 0600) atomically.  0 or -1.
 */
int	tls_make_selfsigned(const char *cert_path, const char *key_path,
	    const char *hostname, char *err, size_t errlen);

/*
 * Like tls_make_selfsigned(), an ECDSA P-256 pair made with mbedTLS, of
 * the given kind, for a harness to present.  0 or -1.
 */
int	tls_make_variant(const char *cert_path, const char *key_path,
	    const char *hostname, enum tls_cert_variant v, char *err,
	    size_t errlen);

struct tls_conn	*tls_conn_create(struct tls_server *srv, int fd);
void		 tls_conn_destroy(struct tls_conn *t);
/* Before the first tls_conn_handshake(): inject this fault. */
void		 tls_conn_set_fault(struct tls_conn *t,
		    const struct tls_fault *f);
/* 40 for "handshake_failure"; -1 for a name not in tls_alert_name(). */
int		 tls_alert_by_name(const char *name);

/* TLS_OK when done, TLS_WANT_*, or TLS_ERR (see above). */
int	tls_conn_handshake(struct tls_conn *t);
/* The handshake took too long: fail it as TLS_FAIL_TIMEOUT. */
void	tls_conn_timeout(struct tls_conn *t);
/* After TLS_ERR: 0 when the one alert is out (or none is due). */
int	tls_conn_send_alert(struct tls_conn *t);
void	tls_conn_failure(const struct tls_conn *t, struct tls_failure *f);

/* >0 bytes, 0 on close_notify or EOF, TLS_WANT_*, TLS_ERR. */
ssize_t	tls_conn_read(struct tls_conn *t, void *buf, size_t len);
/* >0 bytes taken, TLS_WANT_*, TLS_ERR.  After TLS_WANT_*, call again
 * with the same bytes (len may be larger; what was taken is reported). */
ssize_t	tls_conn_write(struct tls_conn *t, const void *buf, size_t len);
/* Plaintext already decrypted or buffered: read before waiting on fd. */
bool	tls_conn_pending(const struct tls_conn *t);
/* Send close_notify: 0, or TLS_WANT_WRITE. */
int	tls_conn_close(struct tls_conn *t);

const char	*tls_conn_version(const struct tls_conn *t);
const char	*tls_conn_cipher(const struct tls_conn *t);
const char	*tls_conn_sni(const struct tls_conn *t);	/* "" if none */
/* Client certificate: subject or "" and the verify result text. */
bool		 tls_conn_peer_cert(const struct tls_conn *t, char *subject,
		    size_t slen, char *verify, size_t vlen);
const char	*tls_library_version(void);
int		 tls_max_version(void);
int		 tls_min_supported_version(void);

#endif
