/*
 * metrics.h - the counters behind Prometheus, in memory that processes
 * share, and their text exposition.
 *
 * A metrics_region is one mmap(MAP_SHARED | MAP_ANONYMOUS) mapping of
 * nslots slots, made before any fork so that every worker process sees
 * the same pages.  Each process writes its own slot only (one writer per
 * slot: no locks, no read-modify-write races); a scrape answered by any
 * process sums all slots.  Values are 64-bit, stored and loaded with
 * relaxed __atomic operations: a reader sees each value whole, and a
 * scrape is a near-instant, not a transaction (a counter summed while a
 * message is being accepted may lag by that one message).
 *
 * Counters only grow, so a slot whose process died keeps its counts:
 * the totals never go down (Prometheus treats a decrease as a restart).
 * Gauges (sessions now open) belong to a live process: the process that
 * notices the death calls metrics_slot_clear_gauges().
 *
 * What is counted and where is in docs/mxd.8, METRICS.  The HTTP side
 * (the metrics_listen socket) is metrics_http.c.
 */
#ifndef MXD_METRICS_H
#define MXD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp.h"

/* Why a message (DATA or BDAT) was not taken; label reason=. */
enum metrics_msg_reason {
	MR_TOO_BIG = 0,		/* over max_message_size: 552 5.3.4 */
	MR_SIZE_DECLARED,	/* MAIL SIZE= over it: 552 5.3.4 */
	MR_LINE_TOO_LONG,	/* 550 5.6.0 */
	MR_BARE_NEWLINE,	/* 550 5.5.2 */
	MR_FLOOD,		/* far over the size limit, then closed */
	MR_NO_RECIPIENTS,	/* DATA/BDAT after every RCPT failed: 554 */
	MR_POLICY,		/* libmxd's message callback refused it */
	MR_DELIVERY_FAILED,	/* the backend could not keep it: 451 */
	MR_NO_SPACE,		/* 452 4.3.1 */
	MR_MAILBOX_UNAVAILABLE,	/* LMTP server unreachable: 451 4.4.1 */
	MR_MAILBOX_REJECTED,	/* LMTP server refused every recipient */
	MR_FAULT,		/* a fault rule answered it (harness) */
	MR_OTHER,		/* a BDAT chunk refused mid-message */
	MR_COUNT
};

/* Why a recipient was refused; label reason=. */
enum metrics_rcpt_reason {
	RR_RELAY_DENIED = 0,	/* not our domain: 550 5.7.1 */
	RR_TEMPFAIL,		/* 451 4.3.0 */
	RR_POLICY,		/* libmxd's rcpt callback */
	RR_PROTOCOL,		/* proto refused the command: syntax,
				 * sequence, too many recipients */
	RR_COUNT
};

/*
 * Connections refused for their PROXY header; label reason=.  By the
 * reason conn.c closes them with (metrics_proxy_error_named(), a name
 * not listed counts as "other"), or by index (metrics_proxy_error()).
 * The stop line's proxy_missing is timeout + eof + reset.
 */
enum metrics_proxy_reason {
	MP_UNTRUSTED = 0,	/* "proxy_untrusted": not in proxy_trusted */
	MP_TIMEOUT,		/* "proxy_timeout": none within proxy_timeout */
	MP_EOF,			/* "eof": closed before the header was whole */
	MP_RESET,		/* "reset": the same, by a reset */
	MP_BAD_HEADER,		/* "proxy_header": malformed, oversized, not
				 * a PROXY header at all (proto's errors) */
	MP_OTHER,
	MP_COUNT
};

/* Status codes of the metrics responder; label code=. */
enum metrics_http_status {
	MH_200 = 0, MH_400, MH_404, MH_405, MH_408, MH_431, MH_503,
	MH_COUNT
};

/* Delivery latency buckets (seconds), le= of the histogram. */
#define METRICS_LAT_BUCKETS	13

/*
 * Indices of the values in a slot.  A labelled family is a run of
 * consecutive indices, one per label value, in the order of the names
 * in metrics.c.
 */
enum metrics_idx {
	MI_CONNECTIONS = 0,
	MI_SESSIONS_ACTIVE,		/* gauge */
	MI_SESSIONS_LIMIT,		/* gauge: max_connections */
	MI_TLS_OK,			/* result="ok" */
	MI_TLS_FAILED,			/* result="failed" */
	MI_TLS_CLASS,			/* + enum tls_fail_class - 1 */
	MI_TLS_VERSION = MI_TLS_CLASS + 13,	/* + TLSv1.0..1.3, other */
	MI_MSG_ACCEPTED = MI_TLS_VERSION + 5,
	MI_MSG_REJECTED,		/* + enum metrics_msg_reason */
	MI_MSG_BYTES = MI_MSG_REJECTED + MR_COUNT,
	MI_RCPT_ACCEPTED,
	MI_RCPT_REJECTED,		/* + enum metrics_rcpt_reason */
	MI_FALLBACK_NOTED = MI_RCPT_REJECTED + RR_COUNT,
	MI_FALLBACK_USED,
	MI_PROXY_ERRORS,		/* + enum metrics_proxy_reason */
	MI_PROXY_HEALTH = MI_PROXY_ERRORS + MP_COUNT,
	MI_PREGREET,
	MI_HTTP_REQUESTS,
	MI_FLOODS,
	MI_RATE_LIMITED,
	MI_SLOW_DATA,
	MI_FAULTS,
	MI_LAT_BUCKET,			/* + bucket, + 1 for over the last */
	MI_LAT_SUM_US = MI_LAT_BUCKET + METRICS_LAT_BUCKETS + 1,
	MI_LAT_COUNT,
	MI_SCRAPES,			/* + enum metrics_http_status */
	MI_COUNT = MI_SCRAPES + MH_COUNT
};

struct metrics_region;
struct metrics_slot;

/* NULL (errno set) when the mapping fails or nslots is 0. */
struct metrics_region	*metrics_region_create(unsigned nslots);
/* Unmaps; every process that has it mapped must be done with it. */
void			 metrics_region_free(struct metrics_region *r);
unsigned		 metrics_region_nslots(const struct metrics_region *r);
/* Slot i, or NULL when i is out of range. */
struct metrics_slot	*metrics_slot(struct metrics_region *r, unsigned i);
/* A worker died: its gauges no longer describe anything. */
void			 metrics_slot_clear_gauges(struct metrics_slot *s);

/* The writer's side; s may be NULL (then nothing is counted). */
void	metrics_add(struct metrics_slot *s, enum metrics_idx i, uint64_t n);
void	metrics_inc(struct metrics_slot *s, enum metrics_idx i);
void	metrics_set(struct metrics_slot *s, enum metrics_idx i, uint64_t v);
/* A handshake completed; version as tls_conn_version() names it. */
void	metrics_tls_ok(struct metrics_slot *s, const char *version);
/* A handshake failed, of this class (enum tls_fail_class). */
void	metrics_tls_failed(struct metrics_slot *s, int cls);
/* proto's SMTP_EV_REJECT or SMTP_EV_DATA_ABORT, sorted by what it is. */
void	metrics_reject(struct metrics_slot *s, const struct smtp_event *ev);
void	metrics_rcpt(struct metrics_slot *s, enum smtp_rcpt_result r);
/* proto's SMTP_EV_CLOSE: an HTTP request or a flood is counted. */
void	metrics_close(struct metrics_slot *s, enum smtp_reason why);
void	metrics_message(struct metrics_slot *s, enum smtp_msg_result r,
	    uint64_t size);
void	metrics_message_refused(struct metrics_slot *s,
	    enum metrics_msg_reason why);
/* End of data to the backend's answer, in seconds. */
void	metrics_latency(struct metrics_slot *s, double seconds);
void	metrics_proxy_error(struct metrics_slot *s,
	    enum metrics_proxy_reason r);
void	metrics_proxy_error_named(struct metrics_slot *s, const char *reason);

/* Every slot summed, into v[MI_COUNT]. */
void	metrics_sum(const struct metrics_region *r, uint64_t *v);

/*
 * The exposition (text format 0.0.4) of the sums: a malloc'd string in
 * *out, its length in *len.  0, or -1 when out of memory.
 */
int	metrics_render(const struct metrics_region *r, char **out,
	    size_t *len);

#endif
