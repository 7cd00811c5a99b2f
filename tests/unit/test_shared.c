/*
 * test_shared.c - the region worker processes share (server/shared.c):
 * counts per address and slot, a dead slot's release, the bounds of the
 * tables, the fallback and rate tables, max_connections over slots, and
 * a process killed while it holds the lock.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "shared.h"

static void
key_of(unsigned n, unsigned char key[16])
{
	memset(key, 0, 16);
	key[10] = key[11] = 0xff;
	key[12] = (unsigned char)(n >> 24);
	key[13] = (unsigned char)(n >> 16);
	key[14] = (unsigned char)(n >> 8);
	key[15] = (unsigned char)n;
}

static void
test_ipcount(struct shared *sh)
{
	unsigned char a[16], b[16];

	key_of(1, a);
	key_of(2, b);
	CHECK(shared_ipcount_add(sh, 0, a, 1) == 1, "first");
	CHECK(shared_ipcount_add(sh, 1, a, 1) == 2, "second, other slot");
	CHECK(shared_ipcount_add(sh, 1, a, 1) == 3, "third");
	CHECK(shared_ipcount_add(sh, 1, b, 1) == 1, "other address");
	/* Slot 1 dies: its two sessions of a, one of b, are released. */
	shared_slot_clear(sh, 1);
	CHECK(shared_ipcount_add(sh, 0, a, 1) == 2, "after the clear");
	CHECK(shared_ipcount_add(sh, 0, b, 1) == 1, "b after the clear");
	/* A release for the dead slot changes nothing. */
	CHECK(shared_ipcount_add(sh, 1, a, -1) == 0, "dead slot's release");
	CHECK(shared_ipcount_add(sh, 0, a, -1) == 1, "release");
	CHECK(shared_ipcount_add(sh, 0, a, -1) == 0, "last release");
	CHECK(shared_ipcount_add(sh, 0, a, -1) == 0, "below zero");
	CHECK(shared_ipcount_add(sh, 0, b, -1) == 0, "b gone");
}

static void
test_ipcount_bound(struct shared *sh)
{
	unsigned char k[16];
	unsigned i, n = SHARED_IP_MAX / 2;

	/* Two entries per address (its slot's, its total). */
	for (i = 0; i < n; i++) {
		key_of(1000 + i, k);
		CHECK(shared_ipcount_add(sh, 0, k, 1) == 1, "address %u", i);
	}
	key_of(1000 + n, k);
	CHECK(shared_ipcount_add(sh, 0, k, 1) == 0, "past the bound: "
	    "uncounted");
	CHECK(shared_ipcount_add(sh, 0, k, -1) == 0, "and its release");
	for (i = 0; i < n; i++) {
		key_of(1000 + i, k);
		CHECK(shared_ipcount_add(sh, 0, k, -1) == 0, "release %u", i);
	}
	/* The entries are free again. */
	key_of(1000 + n, k);
	CHECK(shared_ipcount_add(sh, 3, k, 1) == 1, "room again");
	shared_slot_clear(sh, 3);
	CHECK(shared_ipcount_add(sh, 0, k, 1) == 1, "cleared");
	CHECK(shared_ipcount_add(sh, 0, k, -1) == 0, "released");
}

static void
test_fallback_and_rate(struct shared *sh)
{
	unsigned char a[16], b[16];

	key_of(7, a);
	key_of(8, b);
	CHECK(!shared_fallback_active(sh, a, 100), "empty");
	shared_fallback_note(sh, a, 100, 160);
	CHECK(shared_fallback_active(sh, a, 159), "noted");
	CHECK(!shared_fallback_active(sh, b, 159), "another address");
	CHECK(!shared_fallback_active(sh, a, 160), "expired");

	CHECK(shared_rate_allow(sh, a, 3, 0), "1 of 3");
	CHECK(shared_rate_allow(sh, a, 3, 0), "2 of 3");
	CHECK(shared_rate_allow(sh, a, 3, 0), "3 of 3");
	CHECK(!shared_rate_allow(sh, a, 3, 0), "4 of 3");
	CHECK(shared_rate_allow(sh, b, 3, 0), "another address");
	CHECK(!shared_rate_allow(sh, a, 3, 10), "10 s: not yet a token");
	CHECK(shared_rate_allow(sh, a, 3, 20), "20 s: one token");
	CHECK(!shared_rate_allow(sh, a, 3, 20), "and only one");
}

static void
test_conns(struct shared *sh)
{
	CHECK(shared_conn_reserve(sh, 0, 3), "1 of 3");
	CHECK(shared_conn_reserve(sh, 5, 3), "2 of 3");
	CHECK(shared_conn_reserve(sh, 5, 3), "3 of 3");
	CHECK(!shared_conn_reserve(sh, 0, 3), "4 of 3, any slot");
	CHECK(shared_conns(sh) == 3, "3 open");
	shared_slot_clear(sh, 5);
	CHECK(shared_conns(sh) == 1, "slot 5's released");
	CHECK(shared_conn_reserve(sh, 1, 3), "room again");
	shared_conn_release(sh, 1);
	shared_conn_release(sh, 0);
	CHECK(shared_conns(sh) == 0, "none open");
}

/* Counters seen across fork, as workers see them. */
static void
test_counters(struct shared *sh)
{
	unsigned long long c0 = shared_conn_count(sh);
	uint64_t s0 = shared_next_sid(sh);
	pid_t pid;
	int st;

	pid = fork();
	if (pid == 0) {
		shared_next_conn(sh);
		shared_next_conn(sh);
		shared_next_sid(sh);
		_exit(0);
	}
	waitpid(pid, &st, 0);
	CHECK(shared_next_conn(sh) == c0 + 3, "connection numbers");
	CHECK(shared_next_sid(sh) == s0 + 2, "session ids");
}

/*
 * Children hammer the table and are killed at random moments, some of
 * them while they hold the lock: the parent must never block.
 */
static void
test_killed_holder(struct shared *sh)
{
	unsigned char k[16];
	unsigned i;
	pid_t pid;
	int st;

	alarm(60);	/* a wedged lock fails the test, not the run */
	srand((unsigned)time(NULL));
	for (i = 0; i < 40; i++) {
		pid = fork();
		if (pid == 0) {
			unsigned j;

			for (j = 0;; j++) {
				key_of(j % 5000, k);
				shared_ipcount_add(sh, 2, k, 1);
				shared_rate_allow(sh, k, 10, j);
			}
		}
		usleep((useconds_t)(rand() % 3000));
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		shared_slot_clear(sh, 2);
		key_of(1, k);
		CHECK(shared_ipcount_add(sh, 0, k, 1) == 1, "round %u", i);
		CHECK(shared_ipcount_add(sh, 0, k, -1) == 0, "round %u", i);
	}
	alarm(0);
}

int
main(void)
{
	struct shared *sh;
	char err[256];

	sh = shared_create(err, sizeof(err));
	if (sh == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	test_ipcount(sh);
	test_ipcount_bound(sh);
	test_fallback_and_rate(sh);
	test_conns(sh);
	test_counters(sh);
	test_killed_holder(sh);
	shared_destroy(sh);
	if (failures != 0)
		fprintf(stderr, "%d failures\n", failures);
	return failures != 0;
}
