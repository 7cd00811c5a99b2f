/*
 * smtp.c - the session: buffers, the pull loop, the reply writer, and the
 * answers to decision events.
 *
 * Owns the input accumulator and the output queue of one session, both
 * allocated only while they hold bytes, so an idle session costs only its
 * struct.  smtp_reply() writes every reply; it is where the bad-command
 * counter and the "421 4.7.0 ... too many errors" hang-up live.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_int.h"

void
smtp_config_init(struct smtp_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->hostname = "localhost";
	cfg->limits.cmd_line = SMTP_DEF_CMD_LINE;
	cfg->limits.text_line = SMTP_DEF_TEXT_LINE;
	cfg->limits.rcpt_max = SMTP_DEF_RCPT_MAX;
	cfg->limits.message_size = SMTP_DEF_MESSAGE_SIZE;
	cfg->limits.errors_max = SMTP_DEF_ERRORS_MAX;
	cfg->limits.msgs_max = SMTP_DEF_MSGS_PER_SESSION;
	cfg->bare_newline = SMTP_BARE_REJECT;
}

const char *
smtp_reason_name(enum smtp_reason r)
{
	switch (r) {
	case SMTP_REASON_NONE:			return "none";
	case SMTP_REASON_QUIT:			return "quit";
	case SMTP_REASON_TOO_BIG:		return "too_big";
	case SMTP_REASON_LINE_TOO_LONG:		return "line_too_long";
	case SMTP_REASON_BARE_NEWLINE:		return "bare_newline";
	case SMTP_REASON_ERRORS:		return "too_many_errors";
	case SMTP_REASON_TIMEOUT:		return "timeout";
	case SMTP_REASON_SHUTDOWN:		return "shutdown";
	case SMTP_REASON_TOO_MANY_CONN_IP:	return "too_many_connections_ip";
	case SMTP_REASON_OUT_OF_MEMORY:		return "out_of_memory";
	case SMTP_REASON_PREGREET:		return "pregreet";
	case SMTP_REASON_HTTP:			return "http_request";
	case SMTP_REASON_FLOOD:			return "flood";
	case SMTP_REASON_TOO_MANY_MSGS:		return "too_many_messages";
	case SMTP_REASON_CONNECTION_RATE:	return "connection_rate";
	case SMTP_REASON_FAULT:			return "fault";
	case SMTP_REASON_REFUSED:		return "refused";
	}
	return "unknown";
}

struct smtp_session *
smtp_session_create(const struct smtp_config *cfg)
{
	struct smtp_session *s;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->cfg = cfg;
	s->mode = MODE_NEW;
	return s;
}

void
smtp_session_destroy(struct smtp_session *s)
{
	if (s == NULL)
		return;
	free(s->in);
	free(s->out);
	free(s);
}

/* ---- output ---------------------------------------------------------- */

static size_t
out_pending(const struct smtp_session *s)
{
	return s->out_len - s->out_off;
}

/*
 * Make room for one reply of up to SMTP_REPLY_MAX octets.  The high-water
 * check in smtp_session_next() keeps the queue below SMTP_OUT_HIGHWATER
 * before each command, and a command adds at most two replies, so running
 * out of room is a broken invariant, not bad input.
 */
static char *
out_reserve(struct smtp_session *s)
{
	if (s->out == NULL) {
		s->out = malloc(SMTP_OUT_CAP);
		if (s->out == NULL) {
			s->oom = true;
			return NULL;
		}
		s->out_off = s->out_len = 0;
	}
	if (SMTP_OUT_CAP - s->out_len < SMTP_REPLY_MAX) {
		memmove(s->out, s->out + s->out_off, out_pending(s));
		s->out_len -= s->out_off;
		s->out_off = 0;
	}
	if (SMTP_OUT_CAP - s->out_len < SMTP_REPLY_MAX)
		abort();
	return s->out + s->out_len;
}

void
smtp_reply_raw(struct smtp_session *s, const char *text, size_t len)
{
	char *p;

	if (len > SMTP_REPLY_MAX)
		abort();
	p = out_reserve(s);
	if (p == NULL)
		return;
	memcpy(p, text, len);
	s->out_len += len;
}

/*
 * The one function that writes a single-line reply: "code enh text CRLF".
 * enh is the RFC 3463 enhanced status code, NULL only where RFC 2034
 * section 3 leaves it out (the greeting, replies to HELO and EHLO).
 * Bad commands (5xx to a command) are counted here; at max_errors the
 * session gets 421 4.7.0 and closes.
 */
void
smtp_reply(struct smtp_session *s, int code, const char *enh,
    const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n, m;
	size_t room = SMTP_REPLY_MAX - 2;

	p = out_reserve(s);
	if (p == NULL)
		return;
	/* By hand: snprintf here was a hot spot (docs/performance.md). */
	p[0] = (char)('0' + code / 100 % 10);
	p[1] = (char)('0' + code / 10 % 10);
	p[2] = (char)('0' + code % 10);
	p[3] = ' ';
	n = 4;
	s->last_code = code;
	if (enh != NULL) {
		m = (int)strlen(enh);
		if (m > 16)	/* "x.yyy.zzz" is 9 at most */
			m = 16;
		memcpy(p + n, enh, (size_t)m);
		n += m;
		p[n++] = ' ';
	}
	if (strchr(fmt, '%') == NULL) {
		m = (int)strlen(fmt);
		memcpy(p + n, fmt, (size_t)n + (size_t)m < room ? (size_t)m :
		    room - 1 - (size_t)n);	/* truncated below */
	} else {
		va_start(ap, fmt);
		m = vsnprintf(p + n, room - n, fmt, ap);
		va_end(ap);
	}
	if (m < 0)
		m = 0;
	if ((size_t)(n + m) >= room)	/* truncated: keep what fits */
		m = (int)room - 1 - n;
	s->last_text_set = true;
	s->last_text_off = (size_t)(p + 4 - s->out) - s->out_off;
	n += m;
	p[n++] = '\r';
	p[n++] = '\n';
	s->out_len += n;

	if (code >= 500 && s->mode == MODE_CMD && !s->errors_exempt) {
		s->errors++;
		if (s->cfg->limits.errors_max != 0 &&
		    s->errors >= s->cfg->limits.errors_max) {
			int c = s->last_code;
			size_t t = s->last_text_off;

			smtp_reply(s, 421, "4.7.0", "%s Error: too many errors",
			    s->cfg->hostname);
			smtp_close(s, SMTP_REASON_ERRORS);
			/* Report the bad command's reply, not the 421. */
			s->last_code = c;
			s->last_text_off = t;
		}
	}
}

const char *
smtp_session_output(struct smtp_session *s, size_t *len)
{
	*len = s->out == NULL ? 0 : out_pending(s);
	return *len == 0 ? NULL : s->out + s->out_off;
}

void
smtp_session_output_done(struct smtp_session *s, size_t n)
{
	if (n > out_pending(s))
		abort();
	s->out_off += n;
	if (s->out_off == s->out_len) {
		/* Drained: give the buffer back, an idle session keeps none. */
		free(s->out);
		s->out = NULL;
		s->out_off = s->out_len = 0;
	}
}

/* ---- input ----------------------------------------------------------- */

static bool
takes_input(const struct smtp_session *s)
{
	return s->mode != MODE_CLOSING && s->wait != WAIT_TLS && !s->oom;
}

bool
smtp_session_wants_input(const struct smtp_session *s)
{
	if (!takes_input(s))
		return false;
	return s->in == NULL || s->in_len - s->in_off < SMTP_IN_CAP;
}

char *
smtp_session_input_space(struct smtp_session *s, size_t *len)
{
	*len = 0;
	if (!takes_input(s))
		return NULL;
	if (s->in == NULL) {
		s->in = malloc(SMTP_IN_CAP);
		if (s->in == NULL) {
			s->oom = true;
			return NULL;
		}
		s->in_off = s->in_len = 0;
	}
	if (s->in_off > 0) {
		memmove(s->in, s->in + s->in_off, s->in_len - s->in_off);
		s->in_len -= s->in_off;
		s->in_off = 0;
	}
	*len = SMTP_IN_CAP - s->in_len;
	return *len == 0 ? NULL : s->in + s->in_len;
}

void
smtp_session_input_commit(struct smtp_session *s, size_t n)
{
	if (n > SMTP_IN_CAP - s->in_len)
		abort();
	s->in_len += n;
}

size_t
smtp_session_feed(struct smtp_session *s, const char *buf, size_t len)
{
	size_t room;
	char *p;

	p = smtp_session_input_space(s, &room);
	if (p == NULL)
		return 0;
	if (len > room)
		len = room;
	memcpy(p, buf, len);
	smtp_session_input_commit(s, len);
	return len;
}

static void
in_release(struct smtp_session *s)
{
	free(s->in);
	s->in = NULL;
	s->in_off = s->in_len = 0;
}

/* ---- the pull loop --------------------------------------------------- */

static enum smtp_ev
cmd_step(struct smtp_session *s, struct smtp_event *ev)
{
	const char *p = s->in + s->in_off;
	size_t avail = s->in_len - s->in_off;
	size_t max = s->cfg->limits.cmd_line + SMTP_PARAM_ALLOWANCE;
	const char *lf = memchr(p, '\n', avail);
	size_t n, len;
	enum smtp_ev t;

	if (s->cmd_skip) {
		/* Inside an over-long line: drop through its LF. */
		s->cmd_skipped += lf != NULL ? (size_t)(lf - p) : avail;
		if (s->cmd_skipped > SMTP_CMD_FLOOD)
			return smtp_cmd_flood(s, ev);
		if (lf == NULL) {
			s->in_off = s->in_len;
			return SMTP_EV_NONE;
		}
		s->in_off += (size_t)(lf - p) + 1;
		s->cmd_skip = false;
		return smtp_cmd_too_long(s, ev);
	}
	if (lf == NULL) {
		/*
		 * No line end yet.  Once the partial line reaches the limit
		 * the line is too long whatever follows, so stop holding it:
		 * memory stays bounded against a flood without LF.
		 */
		if (avail >= max) {
			s->cmd_skip = true;
			s->cmd_skipped = avail;
			s->in_off = s->in_len;
		}
		return SMTP_EV_NONE;
	}
	n = (size_t)(lf - p) + 1;
	s->in_off += n;
	if (n > max)
		return smtp_cmd_too_long(s, ev);
	len = n - 1;		/* the LF */
	if (len > 0 && p[len - 1] == '\r')
		len--;
	else if (s->cfg->bare_newline == SMTP_BARE_REJECT)
		return smtp_cmd_bare_newline(s, ev);
	t = smtp_cmd_line(s, p, len, ev);
	if (t == SMTP_EV_COMMAND) {
		/* The line stays in the buffer until it is decided on. */
		s->in_off -= n;
		s->hook_len = n;
	}
	return t;
}

static void
fill_reject(struct smtp_session *s, struct smtp_event *ev)
{
	const char *t, *end;

	ev->code = s->last_code;
	if (!s->last_text_set || s->out == NULL) {
		ev->text = "";
		ev->text_len = 0;
		return;
	}
	t = s->out + s->out_off + s->last_text_off;
	end = memchr(t, '\r', s->out + s->out_len - t);
	ev->text = t;
	ev->text_len = end != NULL ? (size_t)(end - t) : 0;
}

enum smtp_ev
smtp_session_next(struct smtp_session *s, struct smtp_event *ev)
{
	enum smtp_ev t;
	size_t off;
	enum smtp_mode mode;

	memset(ev, 0, sizeof(*ev));
	for (;;) {
		if (s->oom && s->mode != MODE_CLOSING) {
			s->mode = MODE_CLOSING;
			s->close_reason = SMTP_REASON_OUT_OF_MEMORY;
		}
		if (s->mode == MODE_CLOSING) {
			if (s->in != NULL)
				in_release(s);
			if (s->close_reported)
				return SMTP_EV_NONE;
			s->close_reported = true;
			ev->type = SMTP_EV_CLOSE;
			ev->reason = s->close_reason;
			return SMTP_EV_CLOSE;
		}
		if (s->mode == MODE_NEW || s->wait != WAIT_NONE)
			return SMTP_EV_NONE;
		if (s->mode == MODE_BDAT && s->bdat_left == 0) {
			/* A whole chunk is in (or it was empty): reply. */
			s->last_text_set = false;
			t = smtp_bdat_end(s, ev);
			if (t == SMTP_EV_REJECT || t == SMTP_EV_DATA_ABORT)
				fill_reject(s, ev);
			if (t != SMTP_EV_NONE) {
				ev->type = t;
				return t;
			}
			continue;
		}
		if (s->in_off == s->in_len) {
			/*
			 * Drained: an idle session keeps no buffer.  One that
			 * is streaming (DATA, an over-long line) keeps it for
			 * the next read rather than churning the allocator.
			 */
			if (s->in != NULL && s->mode != MODE_DATA &&
			    !s->cmd_skip)
				in_release(s);
			return SMTP_EV_NONE;
		}
		/* RFC 2920 section 3.1: stop reading while we cannot write. */
		if (s->out != NULL && out_pending(s) >= SMTP_OUT_HIGHWATER)
			return SMTP_EV_NONE;

		off = s->in_off;
		mode = s->mode;
		s->last_text_set = false;
		s->last_code = 0;
		if (s->mode == MODE_DATA)
			t = smtp_data_step(s, ev);
		else if (s->mode == MODE_BDAT)
			t = smtp_bdat_step(s, ev);
		else
			t = cmd_step(s, ev);
		if (t == SMTP_EV_REJECT || t == SMTP_EV_DATA_ABORT)
			fill_reject(s, ev);
		if (t != SMTP_EV_NONE) {
			ev->type = t;
			return t;
		}
		if (s->in_off == off && s->mode == mode)
			return SMTP_EV_NONE;	/* needs more input */
	}
}

/* ---- state changes --------------------------------------------------- */

void
smtp_txn_reset(struct smtp_session *s)
{
	s->in_txn = false;
	s->smtputf8 = false;
	s->rcpt_ok = 0;
	s->rcpt_tried = 0;
	s->body = SMTP_BODY_NONE;
	s->bdat_used = false;
	s->data_size = 0;
}

/*
 * Refuse what was sent and close.  The refusal is what the REJECT event
 * reports (not the 421), and it is no "bad command": the session ends
 * for the flood, not for too many errors.
 */
void
smtp_flood(struct smtp_session *s, int code, const char *enh,
    const char *text, const char *why)
{
	int c;
	size_t t;

	s->errors_exempt = true;
	smtp_reply(s, code, enh, "%s", text);
	c = s->last_code;
	t = s->last_text_off;
	smtp_reply(s, 421, "4.7.0", "%s Error: %s, closing", s->cfg->hostname,
	    why);
	s->last_code = c;
	s->last_text_off = t;
	s->errors_exempt = false;
	smtp_close(s, SMTP_REASON_FLOOD);
}

void
smtp_close(struct smtp_session *s, enum smtp_reason why)
{
	if (s->mode == MODE_CLOSING)
		return;
	s->mode = MODE_CLOSING;
	s->wait = WAIT_NONE;
	s->close_reason = why;
}

void
smtp_session_greet(struct smtp_session *s)
{
	if (s->mode != MODE_NEW)
		return;
	smtp_reply(s, 220, NULL, "%s ESMTP mxd", s->cfg->hostname);
	s->mode = MODE_CMD;
}

void
smtp_session_pregreet(struct smtp_session *s)
{
	const char *p = s->in + s->in_off;
	size_t n = s->in != NULL ? s->in_len - s->in_off : 0;
	const char *lf = n > 0 ? memchr(p, '\n', n) : NULL;

	if (s->mode != MODE_NEW)
		return;
	s->mode = MODE_CMD;
	if (lf != NULL && smtp_is_http(p, (size_t)(lf - p))) {
		/* Cross-protocol request: no SMTP reply at all. */
		smtp_close(s, SMTP_REASON_HTTP);
		return;
	}
	s->errors_exempt = true;
	smtp_reply(s, 554, "5.5.1", "%s Error: talked before the greeting",
	    s->cfg->hostname);
	s->errors_exempt = false;
	smtp_close(s, SMTP_REASON_PREGREET);
}

void
smtp_session_hangup(struct smtp_session *s, enum smtp_hangup why)
{
	const char *h = s->cfg->hostname;

	if (s->mode == MODE_CLOSING)
		return;
	s->mode = MODE_CMD;	/* a 421 is no DATA-phase reply */
	switch (why) {
	case SMTP_HANGUP_TIMEOUT:
		smtp_reply(s, 421, "4.4.2", "%s Error: timeout exceeded", h);
		smtp_close(s, SMTP_REASON_TIMEOUT);
		break;
	case SMTP_HANGUP_SHUTDOWN:
		smtp_reply(s, 421, "4.3.2", "%s Service shutting down", h);
		smtp_close(s, SMTP_REASON_SHUTDOWN);
		break;
	case SMTP_HANGUP_TOO_MANY_CONN_IP:
		smtp_reply(s, 421, "4.7.0",
		    "%s Too many connections from your address", h);
		smtp_close(s, SMTP_REASON_TOO_MANY_CONN_IP);
		break;
	case SMTP_HANGUP_TOO_FAST:
		smtp_reply(s, 421, "4.7.0",
		    "%s Too many connections from your address, slow down",
		    h);
		smtp_close(s, SMTP_REASON_CONNECTION_RATE);
		break;
	}
}

bool
smtp_tls_offered(const struct smtp_session *s)
{
	return s->cfg->tls_available && !s->tls_hidden;
}

void
smtp_session_hide_starttls(struct smtp_session *s)
{
	s->tls_hidden = true;
}

void
smtp_session_command_result(struct smtp_session *s, enum smtp_cmd_action a)
{
	if (s->wait != WAIT_CMD)
		abort();
	s->wait = WAIT_NONE;
	if (a == SMTP_CMD_DISCONNECT) {
		s->in_off += s->hook_len;
		smtp_close(s, SMTP_REASON_FAULT);
		return;
	}
	s->hooked = true;	/* cmd_step() runs the line now */
}

void
smtp_session_mail_result(struct smtp_session *s, enum smtp_mail_result r)
{
	if (s->wait != WAIT_MAIL)
		abort();
	s->wait = WAIT_NONE;
	if (r != SMTP_MAIL_OK) {
		smtp_reply(s, 451, "4.3.0",
		    "Temporary failure, try again later");
		return;
	}
	s->in_txn = true;
	s->smtputf8 = s->mail_smtputf8;
	s->rcpt_ok = s->rcpt_tried = 0;
	s->body = s->mail_body;
	smtp_reply(s, 250, "2.1.0", "Ok");
}

void
smtp_session_reply_custom(struct smtp_session *s, int code, const char *enh,
    const char *text)
{
	enum smtp_wait w = s->wait;
	bool yes = code < 400;

	if (code < 200 || code > 599 || w == WAIT_NONE || w == WAIT_TLS)
		abort();
	s->wait = WAIT_NONE;
	if (w == WAIT_CMD && strcmp(s->hook_cmd, "BDAT") == 0) {
		/* The chunk must still be read: run BDAT, answer this. */
		s->override = true;
		s->override_code = code;
		snprintf(s->override_enh, sizeof(s->override_enh), "%s",
		    enh != NULL ? enh : "");
		snprintf(s->override_text, sizeof(s->override_text), "%s",
		    text);
		s->hooked = true;
		return;
	}
	if (w == WAIT_CMD)
		s->in_off += s->hook_len;
	if (w == WAIT_MAIL && yes) {
		s->in_txn = true;
		s->smtputf8 = s->mail_smtputf8;
		s->rcpt_ok = s->rcpt_tried = 0;
		s->body = s->mail_body;
	}
	if (w == WAIT_RCPT) {
		s->rcpt_tried++;
		if (yes)
			s->rcpt_ok++;
	}
	if (w == WAIT_MSG) {
		if (yes)
			s->msgs++;
		smtp_txn_reset(s);
	}
	smtp_reply(s, code, enh != NULL && *enh ? enh : NULL, "%s", text);
}

void
smtp_session_greet_custom(struct smtp_session *s, int code, const char *enh,
    const char *text)
{
	if (s->mode != MODE_NEW)
		return;
	s->mode = MODE_CMD;
	s->errors_exempt = true;
	smtp_reply(s, code, enh != NULL && *enh ? enh : NULL, "%s", text);
	s->errors_exempt = false;
	if (code == 421)
		smtp_close(s, SMTP_REASON_REFUSED);
	else if (code >= 500)
		s->refused = true;	/* RFC 5321 3.1: 503 but QUIT */
}

void
smtp_session_rcpt_result(struct smtp_session *s, enum smtp_rcpt_result r)
{
	if (s->wait != WAIT_RCPT)
		abort();
	s->wait = WAIT_NONE;
	s->rcpt_tried++;
	switch (r) {
	case SMTP_RCPT_OK:
		s->rcpt_ok++;
		smtp_reply(s, 250, "2.1.5", "Ok");
		break;
	case SMTP_RCPT_RELAY_DENIED:
		smtp_reply(s, 550, "5.7.1", "Relaying denied");
		break;
	case SMTP_RCPT_TEMPFAIL:
		smtp_reply(s, 451, "4.3.0",
		    "Temporary failure, try again later");
		break;
	}
}

void
smtp_session_message_result(struct smtp_session *s, enum smtp_msg_result r,
    const char *id)
{
	if (s->wait != WAIT_MSG)
		abort();
	s->wait = WAIT_NONE;
	switch (r) {
	case SMTP_MSG_OK:
		s->msgs++;
		smtp_reply(s, SMTP_MSG_OK_CODE, SMTP_MSG_OK_ENH,
		    SMTP_MSG_OK_TEXT, id != NULL ? id : "-");
		break;
	case SMTP_MSG_NOSPACE:
		smtp_reply(s, 452, "4.3.1", "Insufficient system storage");
		break;
	case SMTP_MSG_TEMPFAIL:
		smtp_reply(s, 451, "4.3.0",
		    "Error: could not store message, try again later");
		break;
	case SMTP_MSG_UNAVAILABLE:
		smtp_reply(s, 451, "4.4.1",
		    "Mailbox server not reachable, try again later");
		break;
	case SMTP_MSG_REJECTED:
		s->wait = WAIT_MSG;
		smtp_session_message_rejected(s, 550, "5.1.1");
		return;
	}
	smtp_txn_reset(s);
}

/* "5.x.y" of RFC 3463 2: class 5, subject and detail of 1-3 digits. */
static bool
valid_perm_enh(const char *e)
{
	size_t n;

	if (e == NULL || e[0] != '5' || e[1] != '.')
		return false;
	e += 2;
	for (n = 0; *e >= '0' && *e <= '9'; e++)
		n++;
	if (n < 1 || n > 3 || *e++ != '.')
		return false;
	for (n = 0; *e >= '0' && *e <= '9'; e++)
		n++;
	return n >= 1 && n <= 3 && *e == 0;
}

void
smtp_session_message_rejected(struct smtp_session *s, int code,
    const char *enh)
{
	if (s->wait != WAIT_MSG)
		abort();
	s->wait = WAIT_NONE;
	if (code < 500 || code > 599 || !valid_perm_enh(enh)) {
		code = 550;
		enh = "5.1.1";
	}
	/* The client's message, not its command, was bad. */
	s->errors_exempt = true;
	smtp_reply(s, code, enh, "Rejected by the mailbox server");
	s->errors_exempt = false;
	smtp_txn_reset(s);
}

int
smtp_msg_ok_reply(char *buf, size_t len, const char *id)
{
	return snprintf(buf, len, "%03d " SMTP_MSG_OK_ENH " " SMTP_MSG_OK_TEXT,
	    SMTP_MSG_OK_CODE, id != NULL ? id : "-");
}

void
smtp_session_tls_started(struct smtp_session *s)
{
	if (s->wait != WAIT_TLS)
		abort();
	/*
	 * RFC 3207 section 4.2: discard all knowledge obtained from the
	 * client before TLS; the client must send EHLO again.
	 */
	s->wait = WAIT_NONE;
	s->tls_active = true;
	s->helo_seen = false;
	s->esmtp = false;
	smtp_txn_reset(s);
}

bool
smtp_session_closing(const struct smtp_session *s)
{
	return s->mode == MODE_CLOSING;
}

bool
smtp_session_in_data(const struct smtp_session *s)
{
	/* A BDAT message is in progress between its chunks too. */
	return s->mode == MODE_DATA || s->mode == MODE_BDAT ||
	    s->wait == WAIT_MSG || (s->in_txn && s->bdat_used);
}

bool
smtp_session_in_transaction(const struct smtp_session *s)
{
	return s->in_txn;
}

bool
smtp_session_tls_active(const struct smtp_session *s)
{
	return s->tls_active;
}

bool
smtp_session_oom(const struct smtp_session *s)
{
	return s->oom;
}
