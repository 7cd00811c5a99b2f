/*
 * test_metrics.c - server/metrics.c: slots in memory shared across
 * fork(), summed by any process; gauges cleared for a dead worker; the
 * exposition's sums.  And server_setup() with a region and slot of the
 * caller's, a worker's move to its own slot after fork, or a region of
 * its own.
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "metrics.h"
#include "server.h"
#include "tls.h"

#define CHILDREN	3
#define PER_CHILD	100000

static unsigned long long
sum_of(const struct metrics_region *r, enum metrics_idx i)
{
	uint64_t v[MI_COUNT];

	metrics_sum(r, v);
	return (unsigned long long)v[i];
}

/* The line "name value" of the exposition, or NULL. */
static const char *
line_of(const char *text, const char *series)
{
	const char *p = text;
	size_t n = strlen(series);

	while ((p = strstr(p, series)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return p + n + 1;
		p += n;
	}
	return NULL;
}

static void
check_value(const char *text, const char *series, const char *want)
{
	const char *v = line_of(text, series);

	CHECK(v != NULL && strncmp(v, want, strlen(want)) == 0 &&
	    v[strlen(want)] == '\n', "%s: want %s, got %.20s", series, want,
	    v != NULL ? v : "(none)");
}

/* A server on its defaults but a Maildir under dir, no TLS. */
static int
setup(struct server *srv, struct config *cfg, const char *dir,
    struct ev_loop *loop)
{
	char path[512], err[512];

	config_init(cfg);
	snprintf(path, sizeof(path), "%s/mail", dir);
	if (config_set(cfg, CONFIG_SRC_CMDLINE, "maildir", path, err,
	    sizeof(err)) != 0 || config_set(cfg, CONFIG_SRC_CMDLINE, "tls",
	    "no", err, sizeof(err)) != 0 || config_set(cfg,
	    CONFIG_SRC_CMDLINE, "max_connections", "7", err,
	    sizeof(err)) != 0 || config_finish(cfg, err, sizeof(err)) != 0 ||
	    server_setup(srv, cfg, loop, false, err, sizeof(err)) != 0) {
		CHECK(0, "setup: %s", err);
		return -1;
	}
	return 0;
}

static void
rm_maildir(const char *dir)
{
	static const char *const sub[] = { "mail/tmp", "mail/new", "mail/cur",
	    "mail", "" };
	char path[512];
	size_t i;

	for (i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, sub[i]);
		rmdir(path);
	}
}

static void
test_server_slots(void)
{
	struct metrics_region *r = metrics_region_create(3);
	struct ev_loop *loop = ev_loop_new(0);
	struct server srv;
	struct config cfg;
	char dir[] = "/tmp/mxd-test-metrics-XXXXXX";
	pid_t pid;
	int st;

	if (r == NULL || loop == NULL || mkdtemp(dir) == NULL) {
		CHECK(0, "region, loop, temporary directory");
		return;
	}
	/* The caller's region and slot: kept, and the limit set there. */
	memset(&srv, 0, sizeof(srv));
	srv.metrics_region = r;
	srv.metrics_index = 1;
	if (setup(&srv, &cfg, dir, loop) == 0) {
		CHECK(srv.metrics_region == r && !srv.metrics_own,
		    "the caller's region");
		CHECK(srv.metrics == metrics_slot(r, 1), "the caller's slot");
		CHECK(sum_of(r, MI_SESSIONS_LIMIT) == 7, "limit in slot 1");
		/* A worker forked now moves to slot 2; slot 3 is no slot. */
		pid = fork();
		if (pid == 0)
			_exit(server_metrics_slot(&srv, 3) == -1 &&
			    server_metrics_slot(&srv, 2) == 0 ? 0 : 1);
		CHECK(pid > 0 && waitpid(pid, &st, 0) == pid &&
		    WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker");
		CHECK(sum_of(r, MI_SESSIONS_LIMIT) == 7, "limit once");
		metrics_inc(metrics_slot(r, 2), MI_CONNECTIONS);
		CHECK(sum_of(r, MI_CONNECTIONS) == 1, "a worker's count");
		server_teardown(&srv);
		/* Not ours to unmap: still there. */
		CHECK(sum_of(r, MI_CONNECTIONS) == 1, "region after teardown");
	}
	config_free(&cfg);
	metrics_region_free(r);

	/* No region given: one of its own, one slot, freed at teardown. */
	memset(&srv, 0, sizeof(srv));
	if (setup(&srv, &cfg, dir, loop) == 0) {
		CHECK(srv.metrics_own && srv.metrics_region != NULL &&
		    metrics_region_nslots(srv.metrics_region) == 1,
		    "a region of its own");
		CHECK(srv.metrics == metrics_slot(srv.metrics_region, 0),
		    "slot 0");
		CHECK(server_metrics_slot(&srv, 1) == -1, "no slot 1");
		server_teardown(&srv);
		CHECK(srv.metrics_region == NULL && srv.metrics == NULL,
		    "freed");
	}
	config_free(&cfg);
	ev_loop_destroy(loop);
	rm_maildir(dir);
}

int
main(void)
{
	struct metrics_region *r;
	struct metrics_slot *s;
	pid_t pid[CHILDREN];
	char *text;
	size_t len;
	int i, j, st;

	CHECK(metrics_region_create(0) == NULL, "0 slots");
	r = metrics_region_create(CHILDREN + 1);
	CHECK(r != NULL, "create");
	if (r == NULL)
		return 1;
	CHECK(metrics_region_nslots(r) == CHILDREN + 1, "nslots");
	CHECK(metrics_slot(r, CHILDREN + 1) == NULL, "slot out of range");
	CHECK(metrics_slot(NULL, 0) == NULL, "no region");

	/* Each child counts in its own slot; the parent reads the sum. */
	for (i = 0; i < CHILDREN; i++) {
		pid[i] = fork();
		if (pid[i] == 0) {
			s = metrics_slot(r, (unsigned)i + 1);
			for (j = 0; j < PER_CHILD; j++)
				metrics_inc(s, MI_CONNECTIONS);
			metrics_set(s, MI_SESSIONS_ACTIVE, (uint64_t)i + 1);
			metrics_message(s, SMTP_MSG_OK, 1000);
			metrics_latency(s, 0.003);
			_exit(0);
		}
		CHECK(pid[i] > 0, "fork");
	}
	s = metrics_slot(r, 0);
	metrics_inc(s, MI_CONNECTIONS);
	metrics_tls_ok(s, "TLSv1.3");
	metrics_tls_ok(s, "SSLv3");
	metrics_tls_failed(s, TLS_FAIL_NO_SHARED_CIPHER);
	metrics_tls_failed(s, TLS_FAIL_NONE);	/* not a cause: handshake */
	metrics_rcpt(s, SMTP_RCPT_RELAY_DENIED);
	metrics_proxy_error_named(s, "proxy_timeout");
	metrics_proxy_error_named(s, "no such reason");
	metrics_latency(s, 60);
	for (i = 0; i < CHILDREN; i++)
		CHECK(pid[i] > 0 && waitpid(pid[i], &st, 0) == pid[i] &&
		    WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d", i);

	CHECK(sum_of(r, MI_CONNECTIONS) == CHILDREN * PER_CHILD + 1,
	    "connections: %llu", sum_of(r, MI_CONNECTIONS));
	CHECK(sum_of(r, MI_SESSIONS_ACTIVE) == 1 + 2 + 3, "gauge sum");
	CHECK(sum_of(r, MI_MSG_BYTES) == 3000, "bytes");
	/* Worker 2 died: its gauge goes, its counts stay. */
	metrics_set(metrics_slot(r, 2), MI_SESSIONS_LIMIT, 1000);
	metrics_slot_clear_gauges(metrics_slot(r, 2));
	CHECK(sum_of(r, MI_SESSIONS_ACTIVE) == 1 + 3, "gauge after clear");
	CHECK(sum_of(r, MI_SESSIONS_LIMIT) == 0, "limit after clear");
	CHECK(sum_of(r, MI_CONNECTIONS) == CHILDREN * PER_CHILD + 1,
	    "counters after clear");

	CHECK(metrics_render(r, &text, &len) == 0, "render");
	CHECK(strlen(text) == len, "length");
	check_value(text, "mxd_connections_total", "300001");
	check_value(text, "mxd_sessions_active", "4");
	check_value(text, "mxd_messages_accepted_total", "3");
	check_value(text, "mxd_received_bytes_total", "3000");
	check_value(text, "mxd_tls_handshakes_total{result=\"ok\"}", "2");
	check_value(text, "mxd_tls_handshakes_total{result=\"failed\"}", "2");
	check_value(text, "mxd_tls_sessions_total{version=\"TLSv1.3\"}", "1");
	check_value(text, "mxd_tls_sessions_total{version=\"other\"}", "1");
	check_value(text, "mxd_tls_handshake_failures_total"
	    "{class=\"no_shared_cipher\"}", "1");
	check_value(text, "mxd_tls_handshake_failures_total"
	    "{class=\"handshake\"}", "1");
	check_value(text, "mxd_recipients_rejected_total"
	    "{reason=\"relay_denied\"}", "1");
	check_value(text, "mxd_proxy_errors_total{reason=\"timeout\"}", "1");
	check_value(text, "mxd_proxy_errors_total{reason=\"other\"}", "1");
	check_value(text, "mxd_delivery_duration_seconds_bucket{le=\"0.001\"}",
	    "0");
	check_value(text, "mxd_delivery_duration_seconds_bucket{le=\"0.005\"}",
	    "3");
	check_value(text, "mxd_delivery_duration_seconds_bucket{le=\"10\"}",
	    "3");
	check_value(text, "mxd_delivery_duration_seconds_bucket{le=\"+Inf\"}",
	    "4");
	check_value(text, "mxd_delivery_duration_seconds_count", "4");
	check_value(text, "mxd_delivery_duration_seconds_sum", "60.009000");
	CHECK(strstr(text, "class=\"none\"") == NULL, "no class none");
	free(text);
	metrics_region_free(r);
	metrics_region_free(NULL);
	test_server_slots();
	if (failures != 0)
		fprintf(stderr, "%d failure(s)\n", failures);
	return failures != 0;
}
