/*
 * smtp_data.c - the DATA body decoder (RFC 5321 4.1.1.4, 4.5.2).
 *
 * Owns: end-of-data detection, dot-unstuffing, the bare CR/LF policy, and
 * the size and line-length checks of a body.  Body bytes leave as
 * SMTP_EV_BODY slices of the input buffer (or of a constant "\r\n" when a
 * bare newline is normalized); nothing is copied here.
 *
 * The data ends only at <CRLF>.<CRLF>: the CRLF that ends a line, then a
 * line holding a single dot.  A bare CR or LF never starts a line, so no
 * <LF>.<LF>, <CR>.<CR> or mixed form can end the message early (the "SMTP
 * smuggling" family, 2023).  The decoder looks at most three octets ahead
 * (".\r\n" at the start of a line, "\r\n" elsewhere); when they have not
 * arrived it stops before them and leaves them in the input buffer, so
 * every split of the input is decoded alike.
 *
 * A body with a fault is still read to its end, so that the client stays
 * in step; nothing more of it is passed on, and its reply is chosen by a
 * fixed priority, not by which fault was seen first (which would depend on
 * how the input was split).
 */
#include <string.h>

#include "smtp_int.h"

enum {
	FAULT_TOO_BIG = 1 << 0,
	FAULT_BARE_NEWLINE = 1 << 1,
	FAULT_LINE_TOO_LONG = 1 << 2,
};

void
smtp_data_begin(struct smtp_session *s)
{
	s->mode = MODE_DATA;
	s->data_bol = true;
	s->data_fault = 0;
	s->data_size = 0;
	s->data_wire = 0;
	s->data_line = 0;
}

/*
 * Past twice the size limit the body is not read on (SMTP_CMD_FLOOD's
 * note).  Checked on the octets consumed before the end mark, which only
 * grow, so every split of the input decides alike.
 */
static bool
data_flood(struct smtp_session *s, struct smtp_event *ev)
{
	if (s->data_wire <= 2 * s->cfg->limits.message_size)
		return false;
	ev->cmd = "DATA";
	ev->reason = SMTP_REASON_FLOOD;
	/*
	 * How much was decoded when this was noticed depends on how the
	 * input came in; report what is known alike for every split: more
	 * than twice the limit.
	 */
	ev->msg_size = 2 * s->cfg->limits.message_size + 1;
	smtp_flood(s, 552, "5.3.4",
	    "Message size exceeds fixed maximum message size",
	    "message far over the size limit");
	return true;
}

static void
count_line(struct smtp_session *s, size_t n)
{
	size_t max = s->cfg->limits.text_line;

	s->data_line += n;
	/* RFC 5321 4.5.3.1.6: 1000 octets including the CRLF. */
	if (max != 0 && s->data_line + 2 > max)
		s->data_fault |= FAULT_LINE_TOO_LONG;
}

/*
 * Pass [from, to) of the input on as body, or only count it once the body
 * has a fault.  Returns the event to report.
 */
static enum smtp_ev
emit(struct smtp_session *s, const char *p, size_t n, struct smtp_event *ev)
{
	s->data_size += n;
	if (s->data_size > s->cfg->limits.message_size)
		s->data_fault |= FAULT_TOO_BIG;
	if (s->data_fault != 0 || n == 0)
		return SMTP_EV_NONE;
	ev->data = p;
	ev->data_len = n;
	return SMTP_EV_BODY;
}

static enum smtp_ev
finish(struct smtp_session *s, struct smtp_event *ev)
{
	ev->msg_size = s->data_size;
	ev->cmd = "DATA";
	/* Replies are queued while still in MODE_DATA: not a bad command. */
	if (s->data_fault & FAULT_TOO_BIG) {
		smtp_reply(s, 552, "5.3.4",
		    "Message size exceeds fixed maximum message size");
		ev->reason = SMTP_REASON_TOO_BIG;
	} else if (s->data_fault & FAULT_BARE_NEWLINE) {
		smtp_reply(s, 550, "5.5.2",
		    "Error: bare <CR> or <LF> in message");
		ev->reason = SMTP_REASON_BARE_NEWLINE;
	} else if (s->data_fault & FAULT_LINE_TOO_LONG) {
		smtp_reply(s, 550, "5.6.0",
		    "Error: message line longer than %zu octets",
		    s->cfg->limits.text_line);
		ev->reason = SMTP_REASON_LINE_TOO_LONG;
	}
	s->mode = MODE_CMD;
	if (ev->reason != SMTP_REASON_NONE) {
		smtp_txn_reset(s);
		return SMTP_EV_DATA_ABORT;
	}
	s->wait = WAIT_MSG;
	return SMTP_EV_DATA_END;
}

static enum smtp_ev data_scan(struct smtp_session *s,
    struct smtp_event *ev, size_t *end_mark);

enum smtp_ev
smtp_data_step(struct smtp_session *s, struct smtp_event *ev)
{
	size_t before = s->in_off, mark = 0;
	enum smtp_ev t;

	t = data_scan(s, ev, &mark);
	/* The end mark ".CRLF" itself is not part of the message. */
	s->data_wire += s->in_off - before - mark;
	if (data_flood(s, ev))
		return SMTP_EV_DATA_ABORT;
	if (t == SMTP_EV_DATA_END || t == SMTP_EV_DATA_ABORT)
		return finish(s, ev);
	return t;
}

static enum smtp_ev
data_scan(struct smtp_session *s, struct smtp_event *ev, size_t *end_mark)
{
	const char *b = s->in;
	size_t p = s->in_off, end = s->in_len, start = p, q, nl = 0;
	const char *lf, *cr;
	bool nl_known = false;
	bool normalize = s->cfg->bare_newline == SMTP_BARE_NORMALIZE;
	enum smtp_ev t;

	while (p < end) {
		if (s->data_bol) {
			if (b[p] == '.') {
				if (p + 1 == end)
					break;
				if (b[p + 1] == '\r') {
					if (p + 2 == end)
						break;
					if (b[p + 2] == '\n') {
						if (p > start)
							break;	/* flush first */
						s->in_off = p + 3;
						*end_mark = 3;
						return SMTP_EV_DATA_END;
					}
				}
				/*
				 * RFC 5321 4.5.2: a leading dot with more on
				 * the line is deleted.  A dot before a bare
				 * CR or LF has nothing more on its line: it
				 * is kept as text, and the bare newline is
				 * dealt with below.
				 */
				if (b[p + 1] != '\r' && b[p + 1] != '\n') {
					if (p > start)
						break;	/* flush first */
					p++;
					start = p;
					s->in_off = p;
				}
			}
			s->data_bol = false;
		}
		/*
		 * The line's end: memchr, not a loop over every octet.  The
		 * next LF is looked for again only once p has passed it, so
		 * bare CRs cannot make the scan quadratic.
		 */
		if (!nl_known || nl < p) {
			lf = memchr(b + p, '\n', end - p);
			nl = lf != NULL ? (size_t)(lf - b) : end;
			nl_known = true;
		}
		q = nl;
		cr = memchr(b + p, '\r', q - p);
		if (cr != NULL)
			q = (size_t)(cr - b);
		count_line(s, q - p);
		p = q;
		if (p == end)
			break;
		if (b[p] == '\r') {
			if (p + 1 == end)
				break;	/* is it CRLF?  Wait and see. */
			if (b[p + 1] == '\n') {
				p += 2;
				s->data_line = 0;
				s->data_bol = true;
				continue;
			}
		}
		/* A bare CR (b[p+1] is not LF) or a bare LF. */
		if (!normalize) {
			s->data_fault |= FAULT_BARE_NEWLINE;
			count_line(s, 1);
			p++;
			continue;
		}
		if (p > start)
			break;		/* flush the text before it */
		/*
		 * Normalize: store a CRLF in its place.  The line ends for
		 * the length count, but a dot after it is not unstuffed and
		 * cannot end the data: only a real CRLF starts a line here.
		 */
		s->in_off = p + 1;
		s->data_line = 0;
		return emit(s, "\r\n", 2, ev);
	}
	s->in_off = p;
	t = emit(s, b + start, p - start, ev);
	return t;
}

/* ---- BDAT chunks (RFC 3030) -------------------------------------------- */

/*
 * The chunk's octets, exactly bdat_size of them, with no dot handling,
 * no line structure and no end marker: passed on as they come when the
 * chunk is kept, dropped otherwise.
 */
enum smtp_ev
smtp_bdat_step(struct smtp_session *s, struct smtp_event *ev)
{
	const char *p = s->in + s->in_off;
	size_t avail = s->in_len - s->in_off;
	size_t n = avail < s->bdat_left ? avail : (size_t)s->bdat_left;

	s->in_off += n;
	s->bdat_left -= n;
	if (s->bdat_code != 0 || n == 0)
		return SMTP_EV_NONE;
	s->data_size += n;
	ev->data = p;
	ev->data_len = n;
	return SMTP_EV_BODY;
}

/* The chunk is read: its reply, and the end of the message after LAST. */
enum smtp_ev
smtp_bdat_end(struct smtp_session *s, struct smtp_event *ev)
{
	bool began = s->bdat_used;

	s->mode = MODE_CMD;
	ev->cmd = "BDAT";
	ev->msg_size = s->data_size;
	if (s->bdat_code != 0) {
		/*
		 * RFC 3030 2: the octets were read and dropped; the
		 * transaction has failed and the client is to start again
		 * (it may RSET first).  A body already begun is dropped.
		 * A size refusal is policy, like DATA's: no bad command.
		 */
		s->errors_exempt = s->bdat_code == 552;
		smtp_reply(s, s->bdat_code, s->bdat_enh, "%s", s->bdat_text);
		s->errors_exempt = false;
		ev->reason = s->bdat_code == 552 ? SMTP_REASON_TOO_BIG :
		    SMTP_REASON_NONE;
		smtp_txn_reset(s);
		return began ? SMTP_EV_DATA_ABORT : SMTP_EV_REJECT;
	}
	if (!s->bdat_last) {
		smtp_reply(s, 250, "2.0.0", "%llu octets received",
		    (unsigned long long)s->bdat_size);
		return SMTP_EV_NONE;
	}
	s->wait = WAIT_MSG;
	return SMTP_EV_DATA_END;
}
