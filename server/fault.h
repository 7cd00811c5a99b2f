/*
 * fault.h - fault rules for test harnesses (docs/harness.md, "Faults").
 *
 * A rule is parsed once, at configuration time, into a struct
 * fault_rule; the server keeps one counter per rule (for "first N" and
 * "every N") and asks fault_match() at each point a rule may act: the
 * greeting, each command (through proto's command hook), the end of a
 * message, STARTTLS's handshake.  The first rule that fires wins.
 */
#ifndef MXD_FAULT_H
#define MXD_FAULT_H

#include <stdbool.h>
#include <stddef.h>

enum fault_target {
	FT_GREETING,
	FT_EHLO,
	FT_HELO,
	FT_MAIL,
	FT_RCPT,
	FT_DATA,
	FT_EOM,
	FT_BDAT,
	FT_RSET,
	FT_NOOP,
	FT_QUIT,
	FT_VRFY,
	FT_STARTTLS,
	FT_TLS,
};

enum fault_action {
	FA_REPLY,		/* code, enh, text */
	FA_DELAY,		/* delay */
	FA_DISCONNECT,
	FA_HIDE,		/* starttls: not advertised */
	FA_TLS_ALERT,		/* alert, step */
	FA_TLS_CLOSE,		/* step, or after_handshake */
	FA_TLS_STALL,
	FA_TLS_GARBAGE,
	FA_TLS_CERT,		/* cert: a tls_cert_variant */
	FA_TLS_MAX_VERSION,	/* version: 0x0301.. */
};

enum fault_count {
	FC_ALWAYS,
	FC_FIRST,
	FC_EVERY,
};

struct fault_rule {
	char			*text;		/* as written, for the log */
	unsigned long long	 conn_lo;	/* 0: any connection */
	unsigned long long	 conn_hi;	/* 0: no upper bound */
	enum fault_target	 target;
	char			*pattern;	/* NULL: any argument */
	enum fault_count	 count;
	unsigned		 n;
	enum fault_action	 action;
	int			 code;
	char			 enh[16];	/* "" when none */
	char			*reply_text;
	double			 delay;
	int			 alert;
	int			 step;		/* enum tls_fault_step */
	bool			 after_handshake;
	int			 cert;		/* enum tls_cert_variant */
	int			 version;
};

/* Parse one rule; 0, or -1 with why in err. */
int	fault_parse(const char *text, struct fault_rule *out, char *err,
	    size_t errlen);
void	fault_free(struct fault_rule *r);

/* The target of a command verb from proto ("RCPT"), or -1. */
int	fault_target_of(const char *verb);
const char *fault_target_name(enum fault_target t);

/*
 * The first rule of rules[0..n) that fires here, counting the ones that
 * match in counters[] (one per rule), or NULL.  arg: what ~ PATTERN is
 * matched against (NULL when there is none).
 */
const struct fault_rule *fault_match(const struct fault_rule *rules,
	    size_t n, unsigned long long *counters, unsigned long long conn,
	    enum fault_target t, const char *arg, size_t arglen);

/* The "starttls hide" rule for this connection, or NULL. */
const struct fault_rule *fault_hides_starttls(const struct fault_rule *rules,
	    size_t n, unsigned long long conn);

/*
 * What ~ PATTERN sees of a command line: for MAIL and RCPT the address
 * without its brackets, for the others the argument after the verb.
 */
void	fault_command_arg(const char *line, size_t len, const char **arg,
	    size_t *arglen);

#endif
