/*
 * smtp.h - the SMTP server protocol as a pure state machine.
 *
 * proto owns: command parsing, sequencing, limits, DATA decoding
 * (dot-unstuffing, end-of-data detection, bare CR/LF policy), and the
 * text of every reply.  It does not own: sockets, TLS, the clock, logs,
 * storage.  Bytes go in (smtp_session_feed, or input_space/input_commit
 * to read straight into its buffer); replies come out
 * (smtp_session_output/output_done); and everything the caller must know
 * or decide comes out as events, pulled with smtp_session_next().
 *
 * Decisions are events that proto waits for: after SMTP_EV_RCPT,
 * SMTP_EV_DATA_END or SMTP_EV_STARTTLS, smtp_session_next() returns
 * SMTP_EV_NONE and consumes nothing until the matching *_result or
 * smtp_session_tls_started() call.  The caller may answer later, from
 * another event-loop iteration.
 *
 * Any split of the input gives the same output: the parser keeps its
 * position in the session and never looks past what it was handed.
 *
 * Lifetimes: pointers in a struct smtp_event are borrowed from the
 * session and stay valid until the next call on that session.  The
 * configuration passed to smtp_session_create() is borrowed and must
 * outlive the session.
 */
#ifndef MXD_SMTP_H
#define MXD_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp_limits.h"

/*
 * What to do with a CR or LF that is not part of a CRLF pair
 * (RFC 5321 2.3.8: they "MUST NOT" be sent).
 */
enum smtp_bare_newline {
	/* Refuse: the command line gets 500 5.5.2; a message is read to its
	 * end and refused with 550 5.5.2. */
	SMTP_BARE_REJECT = 0,
	/* Accept, and treat it as a CRLF in what is stored.  The end of DATA
	 * is still only <CRLF>.<CRLF>. */
	SMTP_BARE_NORMALIZE,
};

struct smtp_config {
	const char		*hostname;	/* our name, in replies */
	struct smtp_limits	 limits;
	enum smtp_bare_newline	 bare_newline;
	bool			 tls_available;	/* offer STARTTLS */
	bool			 tls_required;	/* 530 until TLS is up */
	/*
	 * Offer DSN (RFC 3461).  Off by default: advertising it obliges the
	 * receiver to send "delivered" DSNs for NOTIFY=SUCCESS (5.2.3),
	 * which a server that never sends mail cannot do itself.
	 */
	bool			 dsn;
	/*
	 * Emit SMTP_EV_COMMAND before each command and wait for
	 * smtp_session_command_result(): the fault injection of a test
	 * harness.  Off, commands cost nothing more.
	 */
	bool			 hook_commands;
};

/* Fill *cfg with the defaults of smtp_limits.h; hostname "localhost". */
void	smtp_config_init(struct smtp_config *cfg);

enum smtp_ev {
	SMTP_EV_NONE = 0,	/* needs input, a result, or output drained */
	SMTP_EV_HELO,		/* HELO/EHLO accepted: helo, esmtp */
	SMTP_EV_COMMAND,	/* decide: smtp_session_command_result() */
	SMTP_EV_MAIL,		/* decide: smtp_session_mail_result() */
	SMTP_EV_RCPT,		/* decide: smtp_session_rcpt_result() */
	SMTP_EV_DATA,		/* 354 queued: a message body follows */
	SMTP_EV_BODY,		/* body bytes, unstuffed, CRLF line ends */
	SMTP_EV_DATA_END,	/* decide: smtp_session_message_result() */
	SMTP_EV_DATA_ABORT,	/* body refused by proto (reply queued) */
	SMTP_EV_RSET,		/* the open transaction was dropped */
	SMTP_EV_STARTTLS,	/* 220 queued: flush it, then run TLS */
	SMTP_EV_REJECT,		/* a command got a 4xx/5xx reply */
	SMTP_EV_CLOSE,		/* QUIT or 421: flush output, then close */
};

enum smtp_body {
	SMTP_BODY_NONE = 0,	/* no BODY parameter */
	SMTP_BODY_7BIT,
	SMTP_BODY_8BITMIME,
};

/* DSN (RFC 3461 4.3): what a bounce should contain. */
enum smtp_ret {
	SMTP_RET_NONE = 0,
	SMTP_RET_FULL,
	SMTP_RET_HDRS,
};

/* DSN (RFC 3461 4.1): NOTIFY= as bits; 0 when absent. */
enum smtp_notify {
	SMTP_NOTIFY_NEVER = 1 << 0,
	SMTP_NOTIFY_SUCCESS = 1 << 1,
	SMTP_NOTIFY_FAILURE = 1 << 2,
	SMTP_NOTIFY_DELAY = 1 << 3,
};

/* Why proto refused a message body or closed a session. */
enum smtp_reason {
	SMTP_REASON_NONE = 0,
	SMTP_REASON_QUIT,
	SMTP_REASON_TOO_BIG,
	SMTP_REASON_LINE_TOO_LONG,
	SMTP_REASON_BARE_NEWLINE,
	SMTP_REASON_ERRORS,
	SMTP_REASON_TIMEOUT,
	SMTP_REASON_SHUTDOWN,
	SMTP_REASON_TOO_MANY_CONN_IP,
	SMTP_REASON_OUT_OF_MEMORY,
	SMTP_REASON_PREGREET,		/* talked before the greeting */
	SMTP_REASON_HTTP,		/* an HTTP request line */
	SMTP_REASON_FLOOD,		/* input that can never be accepted */
	SMTP_REASON_TOO_MANY_MSGS,
	SMTP_REASON_CONNECTION_RATE,
	SMTP_REASON_FAULT,		/* an injected fault closed it */
	SMTP_REASON_REFUSED,		/* a 421 greeting */
};

const char	*smtp_reason_name(enum smtp_reason r);

/*
 * A mailbox as parsed from a path, without the angle brackets and without
 * any source route (RFC 5321 4.1.2, C: routes are accepted and ignored).
 * The null reverse-path "<>" has addr_len 0.  "<postmaster>" has no
 * domain (domain_len 0).
 */
struct smtp_path {
	const char	*addr;		/* local@domain, or local alone */
	size_t		 addr_len;
	const char	*local;
	size_t		 local_len;
	const char	*domain;
	size_t		 domain_len;
	bool		 utf8;		/* has non-ASCII (RFC 6531) */
};

struct smtp_event {
	enum smtp_ev	 type;
	const char	*cmd;		/* verb that caused it, upper case */
	/* HELO */
	const char	*helo;
	size_t		 helo_len;
	bool		 esmtp;
	/* MAIL, RCPT */
	struct smtp_path path;
	uint64_t	 size;		/* MAIL SIZE=, 0 if absent */
	enum smtp_body	 body;
	bool		 smtputf8;	/* MAIL SMTPUTF8 (RFC 6531) */
	bool		 requiretls;	/* MAIL REQUIRETLS (RFC 8689) */
	enum smtp_ret	 ret;		/* MAIL RET= (RFC 3461) */
	const char	*envid;		/* MAIL ENVID=, xtext as sent */
	size_t		 envid_len;
	unsigned	 notify;	/* RCPT NOTIFY=, SMTP_NOTIFY_* */
	const char	*orcpt;		/* RCPT ORCPT=, "type;xtext" */
	size_t		 orcpt_len;
	/* BODY */
	const char	*data;
	size_t		 data_len;
	/* DATA_END, DATA_ABORT: octets after unstuffing */
	uint64_t	 msg_size;
	/* REJECT, DATA_ABORT, CLOSE: the reply sent and why */
	int		 code;
	const char	*text;		/* "5.5.1 Error: command unrecognized" */
	size_t		 text_len;
	enum smtp_reason reason;
	const char	*arg;		/* REJECT: the command line, raw */
	size_t		 arg_len;
	/* STARTTLS: plaintext octets that followed it and were dropped */
	size_t		 discarded;
};

enum smtp_mail_result {
	SMTP_MAIL_OK = 0,		/* 250 2.1.0 Ok */
	SMTP_MAIL_TEMPFAIL,		/* 451 4.3.0 */
};

/* What to do with a command, after SMTP_EV_COMMAND. */
enum smtp_cmd_action {
	SMTP_CMD_PROCEED = 0,		/* run it as usual */
	SMTP_CMD_DISCONNECT,		/* close, no reply */
};

enum smtp_rcpt_result {
	SMTP_RCPT_OK = 0,
	SMTP_RCPT_RELAY_DENIED,		/* 550 5.7.1 Relaying denied */
	SMTP_RCPT_TEMPFAIL,		/* 451 4.3.0 */
};

enum smtp_msg_result {
	SMTP_MSG_OK = 0,		/* 250 2.0.0 Ok: queued as <id> */
	SMTP_MSG_NOSPACE,		/* 452 4.3.1 Insufficient system storage */
	SMTP_MSG_TEMPFAIL,		/* 451 4.3.0 */
	SMTP_MSG_UNAVAILABLE,		/* 451 4.4.1 mailbox server unreachable */
	SMTP_MSG_REJECTED,		/* 550 5.1.1, or see message_rejected() */
};

/* How the server is closing a session that did not ask to be closed. */
enum smtp_hangup {
	SMTP_HANGUP_TIMEOUT,		/* 421 4.4.2 */
	SMTP_HANGUP_SHUTDOWN,		/* 421 4.3.2 */
	SMTP_HANGUP_TOO_MANY_CONN_IP,	/* 421 4.7.0, at connect */
	SMTP_HANGUP_TOO_FAST,		/* 421 4.7.0, at connect */
};

struct smtp_session;

/* NULL when out of memory. */
struct smtp_session	*smtp_session_create(const struct smtp_config *cfg);
void			 smtp_session_destroy(struct smtp_session *s);

/* Queue the 220 greeting.  Input fed before it is held, not parsed. */
void	smtp_session_greet(struct smtp_session *s);

/*
 * The client sent bytes before the (delayed) greeting.  An HTTP request
 * line closes the session without a reply; anything else gets
 * "554 5.5.1 ... talked before the greeting" and closes.
 */
void	smtp_session_pregreet(struct smtp_session *s);

/*
 * Queue a 421 for the reason and enter the closing state: all further
 * input is ignored and smtp_session_next() returns SMTP_EV_CLOSE.  A
 * message in DATA is dropped (SMTP_EV_RSET is not sent for it: the
 * caller is closing).
 */
void	smtp_session_hangup(struct smtp_session *s, enum smtp_hangup why);

/*
 * Copy up to len bytes in; returns how many were taken: 0 when the buffer
 * is full, and always 0 while closing or between SMTP_EV_STARTTLS and
 * smtp_session_tls_started() (what arrives then belongs to TLS).
 */
size_t	smtp_session_feed(struct smtp_session *s, const char *buf, size_t len);

/*
 * Zero-copy input: a place for up to *len bytes to be read into, then
 * smtp_session_input_commit() with the count read.  NULL with *len 0 when
 * proto takes no input now (buffer full, closing, or STARTTLS pending),
 * or when out of memory (then smtp_session_oom() is true).
 */
char	*smtp_session_input_space(struct smtp_session *s, size_t *len);
/* Would input_space() offer room?  Allocates nothing. */
bool	 smtp_session_wants_input(const struct smtp_session *s);
void	 smtp_session_input_commit(struct smtp_session *s, size_t n);

enum smtp_ev	smtp_session_next(struct smtp_session *s, struct smtp_event *ev);

/* Replies not yet written; NULL with *len 0 when none. */
const char	*smtp_session_output(struct smtp_session *s, size_t *len);
void		 smtp_session_output_done(struct smtp_session *s, size_t n);

/* Answers to decision events. */
void	smtp_session_command_result(struct smtp_session *s,
	    enum smtp_cmd_action a);
void	smtp_session_mail_result(struct smtp_session *s,
	    enum smtp_mail_result r);
void	smtp_session_rcpt_result(struct smtp_session *s,
	    enum smtp_rcpt_result r);
void	smtp_session_message_result(struct smtp_session *s,
	    enum smtp_msg_result r, const char *id);

/*
 * The mailbox server (LMTP) refused the message for every recipient:
 * its code and enhanced code with our text, "CODE ENH Rejected by the
 * mailbox server".  A code outside 500..599 or an enh that is not
 * "5.x.y" gives 550 5.1.1.  Not counted as a bad command.
 */
void	smtp_session_message_rejected(struct smtp_session *s, int code,
	    const char *enh);

/*
 * The reply to a stored message, "250 2.0.0 Ok: queued as ID" (no
 * CRLF), as smtp_session_message_result() sends it: for whoever records
 * what the client was told (a capture).  Returns what snprintf returns.
 */
#define SMTP_MSG_OK_CODE	250
#define SMTP_MSG_OK_ENH		"2.0.0"
#define SMTP_MSG_OK_TEXT	"Ok: queued as %s"
int	smtp_msg_ok_reply(char *buf, size_t len, const char *id);

/* The handshake after SMTP_EV_STARTTLS succeeded: reset the session. */
void	smtp_session_tls_started(struct smtp_session *s);

/*
 * Answer the pending decision (COMMAND, MAIL, RCPT or DATA_END) with
 * this reply instead.  The command then has no other effect: a command
 * is not run, a MAIL opens no transaction, a message is not kept (the
 * transaction ends).  A 2xx for RCPT or DATA_END counts as accepted, as
 * the client will take it.  A BDAT's chunk is still read, then answered
 * with it.  text is copied.
 */
void	smtp_session_reply_custom(struct smtp_session *s, int code,
	    const char *enh, const char *text);

/*
 * A greeting of the caller's instead of 220: a 421 closes; a 554 keeps
 * the connection, and every command but QUIT gets 503 (RFC 5321 3.1).
 */
void	smtp_session_greet_custom(struct smtp_session *s, int code,
	    const char *enh, const char *text);

/* This session does not offer STARTTLS (a fault, or the fallback). */
void	smtp_session_hide_starttls(struct smtp_session *s);

/* Syntax checks of RFC 5321 4.1.2, on a whole string; also for config. */
bool	smtp_valid_domain(const char *p, size_t len);
bool	smtp_valid_address_literal(const char *p, size_t len);
/* EHLO/HELO argument: as above, but '_' is allowed in labels. */
bool	smtp_valid_helo(const char *p, size_t len);

/*
 * State queries for the caller's bookkeeping.  in_data: a message body
 * is being received or stored (DATA, or a BDAT message from its first
 * kept chunk to its answer).
 */
bool	smtp_session_closing(const struct smtp_session *s);
bool	smtp_session_in_data(const struct smtp_session *s);
bool	smtp_session_in_transaction(const struct smtp_session *s);
bool	smtp_session_tls_active(const struct smtp_session *s);
bool	smtp_session_oom(const struct smtp_session *s);

#endif
