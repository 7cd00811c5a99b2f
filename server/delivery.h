/*
 * delivery.h - where an accepted message goes, behind one interface.
 *
 * A delivery_txn holds one transaction's envelope and body on its way to
 * storage.  The connection feeds it from proto's events; every blocking
 * step runs in the worker pool and reports back in the loop thread
 * through the callback given.  The promise (DESIGN.md): the commit
 * callback says SMTP_MSG_OK only once the message is on stable storage,
 * file and directory fsynced; on any failure nothing is left where a
 * reader looks.
 *
 * Lifetimes: the txn belongs to the connection until delivery_txn_abort()
 * (or a finished commit's callback, after which the caller frees it with
 * delivery_txn_abort() too).  Aborting while a job runs is allowed: the
 * txn is then freed when the job ends, and its callback is not called.
 */
#ifndef MXD_DELIVERY_H
#define MXD_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>

#include "smtp.h"

struct config;
struct worker_pool;
struct delivery;
struct delivery_txn;

/* What the trace header (RFC 5321 4.4) says about the session. */
struct delivery_trace {
	const char	*helo;		/* as the client gave it */
	const char	*client_ip;	/* "192.0.2.1", "2001:db8::1" */
	unsigned	 client_port;
	bool		 client_v6;
	bool		 esmtp;
	bool		 tls_active;
	const char	*tls;		/* NULL, or "using TLSv1.3 with ..." */
	/* For the capture's metadata (docs/harness.md). */
	const char	*tls_version;	/* NULL without TLS */
	const char	*tls_cipher;
	const char	*tls_sni;	/* NULL when none was sent */
	const char	*sid;		/* the session id */
	unsigned long long conn_no;	/* connections since start, from 1 */
	double		 received;	/* s since the epoch; end of data:
					 * delivery_txn_received() */
};

/* The protocol of RFC 5321 4.4's "with" clause (RFC 3848, RFC 6531). */
const char	*delivery_protocol(const struct delivery_trace *tr,
		    bool smtputf8);

/*
 * Body bytes are buffered up to this, then written out by a worker while
 * the connection stops reading (delivery_txn_write() says when).
 */
#define DELIVERY_FLUSH_AT	(128u * 1024)

struct delivery	*delivery_create(const struct config *cfg,
		    struct worker_pool *pool, char *err, size_t errlen);
void		 delivery_destroy(struct delivery *d);
/* "maildir:./mail" or "capture:DIR", for the start-up line. */
const char	*delivery_describe(const struct delivery *d);

/*
 * True for delivery = discard: nothing is stored, a commit would do
 * nothing, so the caller answers at once, without delivery_txn_commit(),
 * and says in the 250 that the message was discarded.
 */
bool		 delivery_discards(const struct delivery *d);

/*
 * The id is the message's "queued as" id; mail is proto's MAIL event
 * (sender and parameters).  Both are copied.
 */
struct delivery_txn *delivery_txn_create(struct delivery *d, const char *id,
		    const struct smtp_event *mail);
/* rcpt is proto's RCPT event (path, NOTIFY, ORCPT); copied.  0 or -1. */
int		 delivery_txn_add_rcpt(struct delivery_txn *t,
		    const struct smtp_event *rcpt);
unsigned	 delivery_txn_rcpt_count(const struct delivery_txn *t);
const char	*delivery_txn_id(const struct delivery_txn *t);

/*
 * At DATA: the Return-Path and Received lines go first (Maildir); the
 * backend keeps what it records of the trace (capture).  The trace is
 * borrowed for the call only.
 */
int		 delivery_txn_begin_data(struct delivery_txn *t,
		    const struct delivery_trace *tr);
/*
 * At the end of the body (before delivery_txn_commit()): the time, in
 * s since the epoch, that replaces the trace's "received".
 */
void		 delivery_txn_received(struct delivery_txn *t, double when);
/*
 * Body bytes as proto gives them (CRLF line ends).  Returns 1 when the
 * buffer is full enough that the caller should call delivery_txn_flush()
 * before feeding more, 0 otherwise, -1 when out of memory.
 */
int		 delivery_txn_write(struct delivery_txn *t, const char *p,
		    size_t n);
uint64_t	 delivery_txn_size(const struct delivery_txn *t);
const char	*delivery_txn_sender(const struct delivery_txn *t);
/* The i-th recipient's address, or NULL past the last. */
const char	*delivery_txn_rcpt(const struct delivery_txn *t, unsigned i);
/* The body so far, when it stays in memory (delivery = callback). */
const char	*delivery_txn_body(const struct delivery_txn *t, size_t *len);

/*
 * After a callback's SMTP_MSG_REJECTED: the downstream's code (5xx) and
 * enhanced code, for smtp_session_message_rejected().
 */
int		 delivery_txn_rejection(const struct delivery_txn *t,
		    const char **enh);
/* After a failed job: what went wrong, for the log ("" when nothing). */
const char	*delivery_txn_detail(const struct delivery_txn *t);

typedef void	 delivery_done_cb(void *arg, enum smtp_msg_result r);

/* Write the buffer out in a worker; cb(arg, SMTP_MSG_OK) or a failure. */
void		 delivery_txn_flush(struct delivery_txn *t,
		    delivery_done_cb *cb, void *arg);
/* Make the message durable and visible; then cb. */
void		 delivery_txn_commit(struct delivery_txn *t,
		    delivery_done_cb *cb, void *arg);
/* Drop the transaction (removing any partial file); frees t. */
void		 delivery_txn_abort(struct delivery_txn *t);

#endif
