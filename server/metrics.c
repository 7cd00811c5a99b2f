/*
 * metrics.c - the shared counters of metrics.h and their exposition in
 * the Prometheus text format, version 0.0.4 ("# HELP", "# TYPE", then
 * name{label="value"} value lines).
 *
 * The families are a table: a name, a type, a help text, and the run of
 * slot values behind it with its label names.  Every label value is
 * printed, zeros included, so a series exists from the first scrape and
 * rate() has something to start from.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "metrics.h"
#include "tls.h"

#ifndef MXD_VERSION
#define MXD_VERSION "unknown"
#endif

struct metrics_slot {
	uint64_t	v[MI_COUNT];
};

/* Each slot on its own cache lines: writers never share a line. */
#define SLOT_STRIDE	((sizeof(struct metrics_slot) + 63) / 64 * 64)

struct metrics_region {
	size_t		size;		/* of the mapping */
	unsigned	nslots;
	/* then the slots, each SLOT_STRIDE octets, from offset 64 */
};

#define REGION_HEAD	64

struct metrics_region *
metrics_region_create(unsigned nslots)
{
	struct metrics_region *r;
	size_t size;

	if (nslots == 0 || nslots > 65536) {
		errno = EINVAL;
		return NULL;
	}
	size = REGION_HEAD + (size_t)nslots * SLOT_STRIDE;
	/* Zero-filled by the kernel; shared with every child forked later. */
	r = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED |
	    MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED)
		return NULL;
	r->size = size;
	r->nslots = nslots;
	return r;
}

void
metrics_region_free(struct metrics_region *r)
{
	if (r != NULL)
		munmap(r, r->size);
}

unsigned
metrics_region_nslots(const struct metrics_region *r)
{
	return r->nslots;
}

struct metrics_slot *
metrics_slot(struct metrics_region *r, unsigned i)
{
	if (r == NULL || i >= r->nslots)
		return NULL;
	return (struct metrics_slot *)((char *)r + REGION_HEAD +
	    (size_t)i * SLOT_STRIDE);
}

static const struct metrics_slot *
slot_const(const struct metrics_region *r, unsigned i)
{
	return (const struct metrics_slot *)((const char *)r + REGION_HEAD +
	    (size_t)i * SLOT_STRIDE);
}

/* ---- writers ---------------------------------------------------------- */

/*
 * One writer per slot: a relaxed load and store, no locked add.  The
 * atomics keep a reader in another process from seeing half a value.
 */
void
metrics_add(struct metrics_slot *s, enum metrics_idx i, uint64_t n)
{
	if (s == NULL)
		return;
	__atomic_store_n(&s->v[i], __atomic_load_n(&s->v[i],
	    __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

void
metrics_inc(struct metrics_slot *s, enum metrics_idx i)
{
	metrics_add(s, i, 1);
}

void
metrics_set(struct metrics_slot *s, enum metrics_idx i, uint64_t v)
{
	if (s != NULL)
		__atomic_store_n(&s->v[i], v, __ATOMIC_RELAXED);
}

void
metrics_slot_clear_gauges(struct metrics_slot *s)
{
	metrics_set(s, MI_SESSIONS_ACTIVE, 0);
	metrics_set(s, MI_SESSIONS_LIMIT, 0);
}

static const char *const tls_versions[] = { "TLSv1.0", "TLSv1.1",
    "TLSv1.2", "TLSv1.3", "other", NULL };

void
metrics_tls_ok(struct metrics_slot *s, const char *version)
{
	unsigned i;

	metrics_inc(s, MI_TLS_OK);
	for (i = 0; i < 4; i++)
		if (version != NULL && strcmp(version, tls_versions[i]) == 0)
			break;
	metrics_inc(s, (enum metrics_idx)(MI_TLS_VERSION + i));
}

void
metrics_tls_failed(struct metrics_slot *s, int cls)
{
	metrics_inc(s, MI_TLS_FAILED);
	/* TLS_FAIL_NONE is no failure: not a label value. */
	if (cls <= TLS_FAIL_NONE || cls > TLS_FAIL_INJECTED)
		cls = TLS_FAIL_HANDSHAKE;
	metrics_inc(s, (enum metrics_idx)(MI_TLS_CLASS + cls - 1));
}

void
metrics_message_refused(struct metrics_slot *s, enum metrics_msg_reason why)
{
	metrics_inc(s, (enum metrics_idx)(MI_MSG_REJECTED + why));
}

static void
rcpt_refused(struct metrics_slot *s, enum metrics_rcpt_reason why)
{
	metrics_inc(s, (enum metrics_idx)(MI_RCPT_REJECTED + why));
}

/*
 * What proto refused: a body (DATA_ABORT, by its reason), a DATA or BDAT
 * with no recipient left (554), a MAIL whose SIZE= is over the limit
 * (552), or a RCPT (syntax, sequence, too many).  Other refused commands
 * are no message and no recipient.
 */
void
metrics_reject(struct metrics_slot *s, const struct smtp_event *ev)
{
	const char *cmd = ev->cmd != NULL ? ev->cmd : "";

	if (ev->type == SMTP_EV_DATA_ABORT) {
		switch (ev->reason) {
		case SMTP_REASON_TOO_BIG:
			metrics_message_refused(s, MR_TOO_BIG);
			break;
		case SMTP_REASON_LINE_TOO_LONG:
			metrics_message_refused(s, MR_LINE_TOO_LONG);
			break;
		case SMTP_REASON_BARE_NEWLINE:
			metrics_message_refused(s, MR_BARE_NEWLINE);
			break;
		case SMTP_REASON_FLOOD:
			metrics_message_refused(s, MR_FLOOD);
			break;
		default:
			metrics_message_refused(s, MR_OTHER);
			break;
		}
		return;
	}
	if ((strcmp(cmd, "DATA") == 0 || strcmp(cmd, "BDAT") == 0) &&
	    ev->code == 554)
		metrics_message_refused(s, MR_NO_RECIPIENTS);
	else if (strcmp(cmd, "MAIL") == 0 && ev->code == 552)
		metrics_message_refused(s, MR_SIZE_DECLARED);
	else if (strcmp(cmd, "RCPT") == 0)
		rcpt_refused(s, RR_PROTOCOL);
}

void
metrics_rcpt(struct metrics_slot *s, enum smtp_rcpt_result r)
{
	switch (r) {
	case SMTP_RCPT_OK:
		metrics_inc(s, MI_RCPT_ACCEPTED);
		break;
	case SMTP_RCPT_RELAY_DENIED:
		rcpt_refused(s, RR_RELAY_DENIED);
		break;
	case SMTP_RCPT_TEMPFAIL:
		rcpt_refused(s, RR_TEMPFAIL);
		break;
	}
}

void
metrics_close(struct metrics_slot *s, enum smtp_reason why)
{
	if (why == SMTP_REASON_HTTP)
		metrics_inc(s, MI_HTTP_REQUESTS);
	else if (why == SMTP_REASON_FLOOD)
		metrics_inc(s, MI_FLOODS);
}

void
metrics_message(struct metrics_slot *s, enum smtp_msg_result r,
    uint64_t size)
{
	switch (r) {
	case SMTP_MSG_OK:
		metrics_inc(s, MI_MSG_ACCEPTED);
		metrics_add(s, MI_MSG_BYTES, size);
		break;
	case SMTP_MSG_NOSPACE:
		metrics_message_refused(s, MR_NO_SPACE);
		break;
	case SMTP_MSG_TEMPFAIL:
		metrics_message_refused(s, MR_DELIVERY_FAILED);
		break;
	case SMTP_MSG_UNAVAILABLE:
		metrics_message_refused(s, MR_MAILBOX_UNAVAILABLE);
		break;
	case SMTP_MSG_REJECTED:
		metrics_message_refused(s, MR_MAILBOX_REJECTED);
		break;
	}
}

/* Upper bounds of the latency buckets: 1 ms to 10 s. */
static const double lat_le[METRICS_LAT_BUCKETS] = { 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
static const char *const lat_le_text[METRICS_LAT_BUCKETS] = { "0.001",
    "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
    "2.5", "5", "10" };

/* Stored per bucket (not cumulative); the exposition adds them up. */
void
metrics_latency(struct metrics_slot *s, double seconds)
{
	unsigned i;

	if (seconds < 0)
		seconds = 0;
	for (i = 0; i < METRICS_LAT_BUCKETS && seconds > lat_le[i]; i++)
		;
	metrics_inc(s, (enum metrics_idx)(MI_LAT_BUCKET + i));
	metrics_add(s, MI_LAT_SUM_US, (uint64_t)(seconds * 1e6 + 0.5));
	metrics_inc(s, MI_LAT_COUNT);
}

static const char *const proxy_reasons[] = { "untrusted", "timeout", "eof",
    "reset", "bad_header", "other", NULL };
/* conn.c's reasons for closing, in the order of proxy_reasons. */
static const char *const proxy_closes[] = { "proxy_untrusted",
    "proxy_timeout", "eof", "reset", "proxy_header" };

void
metrics_proxy_error(struct metrics_slot *s, enum metrics_proxy_reason r)
{
	if ((unsigned)r >= MP_COUNT)
		r = MP_OTHER;
	metrics_inc(s, (enum metrics_idx)(MI_PROXY_ERRORS + r));
}

void
metrics_proxy_error_named(struct metrics_slot *s, const char *reason)
{
	unsigned i;

	for (i = 0; i < MP_OTHER; i++)
		if (reason != NULL && strcmp(reason, proxy_closes[i]) == 0)
			break;
	metrics_proxy_error(s, (enum metrics_proxy_reason)i);
}

/* ---- readers ---------------------------------------------------------- */

void
metrics_sum(const struct metrics_region *r, uint64_t *v)
{
	const struct metrics_slot *s;
	unsigned i, k;

	memset(v, 0, MI_COUNT * sizeof(*v));
	for (i = 0; i < r->nslots; i++) {
		s = slot_const(r, i);
		for (k = 0; k < MI_COUNT; k++) {
			uint64_t x = __atomic_load_n(&s->v[k],
			    __ATOMIC_RELAXED);

			/* max_connections is one cap for all the workers:
			 * each reports it, the region says it once. */
			if (k == MI_SESSIONS_LIMIT)
				v[k] = x > v[k] ? x : v[k];
			else
				v[k] += x;
		}
	}
}

/* ---- the exposition --------------------------------------------------- */

static const char *const tls_results[] = { "ok", "failed", NULL };
static const char *const tls_classes[] = { "no_shared_cipher",
    "no_shared_group", "protocol_version", "not_tls", "decode_error",
    "client_alert", "eof", "reset", "timeout", "bad_certificate",
    "handshake", "internal", "injected", NULL };
static const char *const msg_reasons[] = { "too_big", "size_declared",
    "line_too_long", "bare_newline", "flood", "no_recipients", "policy",
    "delivery_failed", "no_space", "mailbox_unavailable", "mailbox_rejected",
    "fault", "other", NULL };
static const char *const rcpt_reasons[] = { "relay_denied", "tempfail",
    "policy", "protocol", NULL };
static const char *const fallback_events[] = { "noted", "used", NULL };
static const char *const http_codes[] = { "200", "400", "404", "405",
    "408", "431", "503", NULL };

struct family {
	const char		*name;
	const char		*type;
	const char		*help;
	enum metrics_idx	 base;
	const char		*label;		/* NULL: one value, no label */
	const char *const	*values;
};

static const struct family families[] = {
	{ "mxd_connections_total", "counter",
	    "SMTP connections accepted.", MI_CONNECTIONS, NULL, NULL },
	{ "mxd_sessions_active", "gauge",
	    "SMTP sessions open now.", MI_SESSIONS_ACTIVE, NULL, NULL },
	{ "mxd_sessions_limit", "gauge",
	    "max_connections, the cap over all the worker processes.",
	    MI_SESSIONS_LIMIT, NULL, NULL },
	{ "mxd_tls_handshakes_total", "counter",
	    "STARTTLS handshakes by result.", MI_TLS_OK, "result",
	    tls_results },
	{ "mxd_tls_handshake_failures_total", "counter",
	    "Failed STARTTLS handshakes by cause (the class of the tls_failed "
	    "log line).", MI_TLS_CLASS, "class", tls_classes },
	{ "mxd_tls_sessions_total", "counter",
	    "Completed STARTTLS handshakes by protocol version.",
	    MI_TLS_VERSION, "version", tls_versions },
	{ "mxd_messages_accepted_total", "counter",
	    "Messages stored and answered with 250.", MI_MSG_ACCEPTED, NULL,
	    NULL },
	{ "mxd_messages_rejected_total", "counter",
	    "Messages refused, by reason.", MI_MSG_REJECTED, "reason",
	    msg_reasons },
	{ "mxd_received_bytes_total", "counter",
	    "Octets of the accepted messages, after dot-unstuffing.",
	    MI_MSG_BYTES, NULL, NULL },
	{ "mxd_recipients_accepted_total", "counter",
	    "RCPT commands answered with 250.", MI_RCPT_ACCEPTED, NULL, NULL },
	{ "mxd_recipients_rejected_total", "counter",
	    "RCPT commands refused, by reason.", MI_RCPT_REJECTED, "reason",
	    rcpt_reasons },
	{ "mxd_tls_fallback_total", "counter",
	    "tls_fallback_window: client addresses remembered after a failed "
	    "handshake (noted), connections not offered STARTTLS for it "
	    "(used).", MI_FALLBACK_NOTED, "event", fallback_events },
	{ "mxd_proxy_errors_total", "counter",
	    "Connections refused for their PROXY protocol header, by reason.",
	    MI_PROXY_ERRORS, "reason", proxy_reasons },
	{ "mxd_proxy_health_checks_total", "counter",
	    "PROXY v2 LOCAL connections: a load balancer's health checks.",
	    MI_PROXY_HEALTH, NULL, NULL },
	{ "mxd_pregreet_total", "counter",
	    "Clients that talked before the greeting (greeting_delay).",
	    MI_PREGREET, NULL, NULL },
	{ "mxd_http_requests_total", "counter",
	    "HTTP requests sent to an SMTP listener.", MI_HTTP_REQUESTS, NULL,
	    NULL },
	{ "mxd_floods_total", "counter",
	    "Sessions closed for input that can never be accepted.",
	    MI_FLOODS, NULL, NULL },
	{ "mxd_rate_limited_total", "counter",
	    "Connections refused by max_connection_rate.", MI_RATE_LIMITED,
	    NULL, NULL },
	{ "mxd_slow_data_total", "counter",
	    "Message bodies cut off by min_data_rate.", MI_SLOW_DATA, NULL,
	    NULL },
	{ "mxd_faults_total", "counter",
	    "Fault rules that fired (test harnesses).", MI_FAULTS, NULL,
	    NULL },
	{ "mxd_metrics_requests_total", "counter",
	    "Requests to the metrics listener, by HTTP status.", MI_SCRAPES,
	    "code", http_codes },
};

struct buf {
	char	*p;
	size_t	 len, cap;
	bool	 oom;
};

static void put(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *np;

	for (;;) {
		if (b->oom)
			return;
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		np = realloc(b->p, b->cap * 2 + (size_t)n);
		if (np == NULL) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = b->cap * 2 + (size_t)n;
	}
}

static void
head(struct buf *b, const char *name, const char *type, const char *help)
{
	put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
render_latency(struct buf *b, const uint64_t *v)
{
	static const char name[] = "mxd_delivery_duration_seconds";
	uint64_t cum = 0;
	unsigned i;

	head(b, name, "histogram", "From the end of a message's data to the "
	    "delivery backend's answer (stored, or failed).");
	for (i = 0; i < METRICS_LAT_BUCKETS; i++) {
		cum += v[MI_LAT_BUCKET + i];
		put(b, "%s_bucket{le=\"%s\"} %llu\n", name, lat_le_text[i],
		    (unsigned long long)cum);
	}
	/* +Inf is the count, by definition (and so never below a bucket). */
	put(b, "%s_bucket{le=\"+Inf\"} %llu\n", name,
	    (unsigned long long)v[MI_LAT_COUNT]);
	put(b, "%s_sum %.6f\n", name, (double)v[MI_LAT_SUM_US] / 1e6);
	put(b, "%s_count %llu\n", name, (unsigned long long)v[MI_LAT_COUNT]);
}

int
metrics_render(const struct metrics_region *r, char **out, size_t *len)
{
	struct buf b = { NULL, 0, 8192, false };
	uint64_t v[MI_COUNT];
	const struct family *f;
	size_t i, k;

	b.p = malloc(b.cap);
	if (b.p == NULL)
		return -1;
	metrics_sum(r, v);
	head(&b, "mxd_build_info", "gauge",
	    "Always 1; the labels name the build.");
	put(&b, "mxd_build_info{version=\"%s\",tls_library=\"mbedTLS %s\"} 1\n",
	    MXD_VERSION, tls_library_version());
	for (i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		f = &families[i];
		head(&b, f->name, f->type, f->help);
		if (f->label == NULL) {
			put(&b, "%s %llu\n", f->name,
			    (unsigned long long)v[f->base]);
			continue;
		}
		for (k = 0; f->values[k] != NULL; k++)
			put(&b, "%s{%s=\"%s\"} %llu\n", f->name, f->label,
			    f->values[k], (unsigned long long)v[f->base + k]);
	}
	render_latency(&b, v);
	if (b.oom) {
		free(b.p);
		return -1;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

/* Each label list matches its run of slot values. */
#define NVALUES(a)	(sizeof(a) / sizeof((a)[0]) - 1)
_Static_assert(NVALUES(tls_classes) == TLS_FAIL_INJECTED,
    "a name for each enum tls_fail_class");
_Static_assert(NVALUES(tls_classes) == MI_TLS_VERSION - MI_TLS_CLASS,
    "MI_TLS_CLASS's run");
_Static_assert(NVALUES(tls_versions) == MI_MSG_ACCEPTED - MI_TLS_VERSION,
    "MI_TLS_VERSION's run");
_Static_assert(NVALUES(msg_reasons) == MR_COUNT, "msg_reasons");
_Static_assert(NVALUES(rcpt_reasons) == RR_COUNT, "rcpt_reasons");
_Static_assert(NVALUES(proxy_reasons) == MP_COUNT, "proxy_reasons");
_Static_assert(sizeof(proxy_closes) / sizeof(proxy_closes[0]) == MP_OTHER,
    "proxy_closes");
_Static_assert(NVALUES(http_codes) == MH_COUNT, "http_codes");
_Static_assert(NVALUES(fallback_events) == MI_PROXY_ERRORS -
    MI_FALLBACK_NOTED, "fallback_events");
