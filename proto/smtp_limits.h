/*
 * smtp_limits.h - every limit proto enforces, with its default and reason.
 *
 * One place for the numbers: docs/mxd.conf.5 repeats each one with its
 * configuration key.  proto enforces these on what it is handed; the
 * server enforces the limits that need a clock or a socket (timeouts,
 * connection counts) and takes their defaults from here too, so that
 * there is a single table.
 */
#ifndef MXD_SMTP_LIMITS_H
#define MXD_SMTP_LIMITS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Command line, including CRLF.  RFC 5321 4.5.3.1.4: 512 octets.
 * Too long: "500 5.5.2 Error: line too long" (RFC 5321 4.2.3 lists 500
 * for it).
 * Key: max_command_line.
 */
#define SMTP_DEF_CMD_LINE		512

/*
 * Extra room for MAIL and RCPT lines, whose ESMTP parameters may lengthen
 * them (RFC 1869 section 4.1.2: each extension states its increment; SIZE
 * adds 26 (RFC 1870), DSN's ORCPT and ENVID up to 500 (RFC 3461 section
 * 5)).  Not a key: it follows from the extensions we offer.
 */
#define SMTP_PARAM_ALLOWANCE		512

/*
 * Text line in DATA, including CRLF.  RFC 5321 4.5.3.1.6: 1000 octets.
 * A longer line does not cost memory (DATA is streamed), so it is policy:
 * the message is read to its end, then refused with
 * "550 5.6.0 Error: message line longer than N octets".  0 turns the
 * check off.
 * Key: max_text_line.
 */
#define SMTP_DEF_TEXT_LINE		1000

/*
 * Recipients per transaction.  RFC 5321 4.5.3.1.8: a server must accept at
 * least 100.  Beyond: "452 4.5.3 Error: too many recipients" (RFC 5321
 * 4.5.3.1.10:
 * the client is to send the rest in a later transaction).
 * Key: max_recipients.
 */
#define SMTP_DEF_RCPT_MAX		100

/*
 * Message size in octets, as received after dot-unstuffing (RFC 1870
 * section 4: CRLF counts as two octets, the quoting dots do not).  Advertised as "SIZE n".  Declared
 * too large in MAIL, or found too large at the end of DATA:
 * "552 5.3.4 Message size exceeds fixed maximum message size".
 * Key: max_message_size.
 */
#define SMTP_DEF_MESSAGE_SIZE		(25u * 1024 * 1024)

/*
 * Bad commands per session (unknown, out of sequence, bad syntax, over-long,
 * refused recipients).  At the limit the session gets
 * "421 4.7.0 HOST Error: too many errors" and is closed.  As nginx's max_errors and
 * Postfix's smtpd_hard_error_limit.  Key: max_errors.
 */
#define SMTP_DEF_ERRORS_MAX		10

/*
 * Messages per session.  A sender that keeps one connection for ever
 * would escape the per-address connection limits; past this many
 * accepted messages, MAIL gets "421 4.7.0 HOST Error: too many messages
 * in this session" and the session closes (the client reconnects).
 * 0 = no limit.  Key: max_messages_per_connection.
 */
#define SMTP_DEF_MSGS_PER_SESSION	1000

/*
 * Input that can never be accepted is not read for ever.  A command line
 * that has run past SMTP_CMD_FLOOD octets without a line end (the
 * client is not speaking SMTP), and a message body or BDAT chunk that
 * would pass twice the message size limit, end the session: the reply
 * for what was refused, then "421 4.7.0", then close.  Below these the
 * input is read and discarded, so that a client that merely overshoots
 * stays in step (RFC 5321 4.5.3.1.10, RFC 3030 section 2).
 */
#define SMTP_CMD_FLOOD			(64 * 1024)

/*
 * Timeouts, enforced by the server (proto has no clock).
 * Idle: waiting for a command or for DATA bytes.  RFC 5321 4.5.3.2.7 asks
 * a server to wait at least 5 minutes.  Then
 * "421 4.4.2 HOST Error: timeout exceeded".
 * Key: idle_timeout (seconds).
 */
#define SMTP_DEF_IDLE_TIMEOUT		300

/*
 * Grace for transactions in DATA when the server is told to stop (SIGTERM).
 * Sessions outside DATA get "421 4.3.2" at once.  Key: shutdown_grace.
 */
#define SMTP_DEF_SHUTDOWN_GRACE		30

/*
 * Connections.  The total cap pauses accepting (new clients wait in the
 * listen backlog rather than being refused); the per-address cap answers
 * "421 4.7.0 Too many connections from your address" at connect.
 * Postfix's smtpd_client_connection_count_limit is 50 too.
 * Keys: max_connections, max_connections_per_ip.
 */
#define SMTP_DEF_CONN_MAX		1000
#define SMTP_DEF_CONN_PER_IP		50

/*
 * Buffers.  Not keys: they bound memory per session and do not change
 * what a client may send.  The input buffer holds at least one longest
 * command line; the output buffer holds the replies to one buffer of
 * pipelined commands up to the high-water mark (RFC 2920 section 3.1: a
 * server stops reading when it cannot write), plus the longest reply.
 * Both are allocated only while they hold bytes.
 */
#define SMTP_IN_CAP			16384
#define SMTP_OUT_HIGHWATER		4096
#define SMTP_REPLY_MAX			1024
#define SMTP_OUT_CAP			(SMTP_OUT_HIGHWATER + 2 * SMTP_REPLY_MAX)

/* Path limits, RFC 5321 4.5.3.1.1-3: local part 64, domain 255, path 256. */
#define SMTP_LOCAL_MAX			64
#define SMTP_DOMAIN_MAX			255
#define SMTP_PATH_MAX			256

struct smtp_limits {
	size_t		cmd_line;	/* octets incl. CRLF */
	size_t		text_line;	/* octets incl. CRLF; 0: unchecked */
	unsigned	rcpt_max;
	uint64_t	message_size;
	unsigned	errors_max;
	unsigned	msgs_max;	/* per session; 0: unlimited */
};

#endif
