/*
 * smtp_int.h - proto's private session layout and the functions its files
 * share.  Nothing outside proto/ (and its unit tests and fuzz targets)
 * includes this.
 */
#ifndef MXD_SMTP_INT_H
#define MXD_SMTP_INT_H

#include "smtp.h"

enum smtp_mode {
	MODE_NEW = 0,		/* before the greeting */
	MODE_CMD,		/* reading command lines */
	MODE_DATA,		/* reading a DATA body */
	MODE_BDAT,		/* reading a BDAT chunk */
	MODE_CLOSING,		/* QUIT or 421 sent; input ignored */
};

enum smtp_wait {
	WAIT_NONE = 0,
	WAIT_CMD,		/* SMTP_EV_COMMAND out, command_result due */
	WAIT_MAIL,		/* SMTP_EV_MAIL out, mail_result due */
	WAIT_RCPT,		/* SMTP_EV_RCPT out, rcpt_result due */
	WAIT_MSG,		/* SMTP_EV_DATA_END out, message_result due */
	WAIT_TLS,		/* SMTP_EV_STARTTLS out, tls_started due */
};

struct smtp_session {
	const struct smtp_config *cfg;

	/* Input: bytes [in_off, in_len) are unparsed. */
	char		*in;
	size_t		 in_off;
	size_t		 in_len;

	/* Output: bytes [out_off, out_len) are unwritten replies. */
	char		*out;
	size_t		 out_off;
	size_t		 out_len;

	enum smtp_mode	 mode;
	enum smtp_wait	 wait;
	bool		 oom;
	bool		 close_reported;

	/* Session (RFC 5321 4.1.1.1: reset by EHLO/HELO and STARTTLS). */
	bool		 helo_seen;
	bool		 esmtp;
	bool		 tls_active;
	bool		 tls_hidden;	/* smtp_session_hide_starttls() */
	bool		 refused;	/* 554 greeting: 503 but QUIT */
	unsigned	 errors;
	bool		 errors_exempt;	/* this reply is no bad command */
	/* The command hook: the line waits for its decision. */
	bool		 hooked;	/* this line passed the hook */
	size_t		 hook_len;	/* octets of the line with its LF */
	const char	*hook_cmd;	/* its verb, from the table, or "" */
	bool		 mail_smtputf8;	/* MAIL waiting for its result */
	enum smtp_body	 mail_body;
	bool		 override;	/* a custom reply for a BDAT chunk */
	int		 override_code;
	char		 override_enh[16];
	char		 override_text[SMTP_REPLY_MAX / 2];

	/* Discarding an over-long command line up to its LF. */
	bool		 cmd_skip;
	size_t		 cmd_skipped;
	unsigned	 msgs;		/* messages accepted */

	/* Transaction (RFC 5321 3.3: from MAIL to end of data or RSET). */
	bool		 in_txn;
	bool		 smtputf8;	/* MAIL had SMTPUTF8 */
	unsigned	 rcpt_ok;	/* accepted */
	unsigned	 rcpt_tried;	/* accepted or refused */
	enum smtp_body	 body;

	/* CHUNKING (RFC 3030). */
	bool		 bdat_used;	/* this transaction sent BDAT */
	bool		 bdat_last;
	uint64_t	 bdat_left;	/* octets of the chunk still to read */
	uint64_t	 bdat_size;	/* the chunk's declared size */
	int		 bdat_code;	/* 0: keep the chunk; else refuse */
	const char	*bdat_enh;
	const char	*bdat_text;

	/* DATA decoder. */
	bool		 data_bol;	/* at the start of a line */
	unsigned	 data_fault;	/* FAULT_* bits of smtp_data.c */
	uint64_t	 data_size;	/* octets after unstuffing */
	uint64_t	 data_wire;	/* octets read before the end mark */
	size_t		 data_line;	/* octets of the current line */

	/* The reply of the command being handled, for SMTP_EV_REJECT. */
	int		 last_code;
	bool		 last_text_set;
	size_t		 last_text_off;	/* from out_off: survives compaction */
	const char	*last_cmd;
	enum smtp_reason close_reason;
};

/* smtp.c */
void	smtp_reply(struct smtp_session *s, int code, const char *enh,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void	smtp_reply_raw(struct smtp_session *s, const char *text, size_t len);
void	smtp_txn_reset(struct smtp_session *s);
void	smtp_close(struct smtp_session *s, enum smtp_reason why);

/* smtp.c: STARTTLS offered to this session? */
bool	smtp_tls_offered(const struct smtp_session *s);

/* smtp_cmd.c */
enum smtp_ev	smtp_cmd_line(struct smtp_session *s, const char *line,
		    size_t len, struct smtp_event *ev);
enum smtp_ev	smtp_cmd_too_long(struct smtp_session *s,
		    struct smtp_event *ev);
enum smtp_ev	smtp_cmd_bare_newline(struct smtp_session *s,
		    struct smtp_event *ev);
enum smtp_ev	smtp_cmd_flood(struct smtp_session *s, struct smtp_event *ev);
/* An HTTP request line ("GET / HTTP/1.1"): cross-protocol traffic. */
bool		smtp_is_http(const char *line, size_t len);
/* Refuse what was sent and close: the reply, then 421 4.7.0. */
void		smtp_flood(struct smtp_session *s, int code, const char *enh,
		    const char *text, const char *why);

/* smtp_data.c */
void		smtp_data_begin(struct smtp_session *s);
enum smtp_ev	smtp_data_step(struct smtp_session *s, struct smtp_event *ev);
enum smtp_ev	smtp_bdat_step(struct smtp_session *s, struct smtp_event *ev);
enum smtp_ev	smtp_bdat_end(struct smtp_session *s, struct smtp_event *ev);

/*
 * smtp_path.c: the path and ESMTP parameter grammar of RFC 5321 4.1.2 and
 * RFC 1869 / 5321 4.1.2 "Mail-parameters".  Pure functions over (ptr, len);
 * fuzzed on their own.
 */
enum smtp_path_flags {
	SMTP_PATH_NULL_OK = 1 << 0,	/* "<>" allowed (MAIL) */
	SMTP_PATH_POSTMASTER = 1 << 1,	/* "<postmaster>" allowed (RCPT) */
	SMTP_PATH_UTF8 = 1 << 2,	/* UTF-8 in local part and domain */
};

enum smtp_path_err {
	SMTP_PATH_OK = 0,
	SMTP_PATH_SYNTAX,
	SMTP_PATH_TOO_LONG,
	SMTP_PATH_NO_BRACKETS,
};

/*
 * Parse a Path at buf; on success *used is the octets taken (through '>')
 * and *out points into buf.
 */
enum smtp_path_err	smtp_parse_path(const char *buf, size_t len,
			    unsigned flags, struct smtp_path *out,
			    size_t *used);


struct smtp_param {
	const char	*key;
	size_t		 key_len;
	const char	*value;		/* NULL when there is no '=' */
	size_t		 value_len;
};

/*
 * Take the next "SP keyword[=value]" from *p..end.  Returns 1 with *out
 * filled, 0 at the end, -1 on a syntax error.
 */
int	smtp_next_param(const char **p, const char *end,
	    struct smtp_param *out);

bool	smtp_ieq(const char *a, size_t alen, const char *lit);
bool	smtp_valid_xtext(const char *p, size_t n);
bool	smtp_valid_xtext_utf8(const char *p, size_t n, bool utf8);

#endif
