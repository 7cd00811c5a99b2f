/*
 * shared.h - the state that sessions in different worker processes share.
 *
 * One region, mapped MAP_SHARED|MAP_ANONYMOUS by the supervisor before
 * it forks, so every worker (and every later generation) sees the same
 * memory at the same address.  It holds what must not depend on which
 * worker accepted a connection (mxd.conf(5), WORKER PROCESSES AND RELOAD):
 *
 * - the connection number (fault rules' "conn N", capture metadata) and
 *   the session id sequence, both atomic counters;
 * - the fault rules' hit counters ("first N", "every N"), atomic;
 * - sessions per worker slot (the global max_connections);
 * - sessions per client address, per worker slot, with the total
 *   (max_connections_per_ip); the supervisor clears a dead worker's
 *   slot, so its sessions do not stay counted;
 * - the TLS fallback memory (tls_fallback_window) and the connection
 *   rate buckets (max_connection_rate).
 *
 * The tables have a fixed size (no malloc, no pointers: indices), sit
 * under one process-shared robust mutex (a worker killed while holding
 * it does not wedge the others: the next locker gets EOWNERDEAD and goes
 * on), and are bounded: SHARED_IP_MAX entries for the address counts,
 * SHARED_FALLBACK_MAX and SHARED_RATE_MAX for the others.  Past a bound
 * an address goes uncounted (never refused), as before.  Pages are
 * touched only as entries are first used.
 *
 * libmxd and the tests use a region of their own with one slot.
 */
#ifndef MXD_SHARED_H
#define MXD_SHARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Worker slots: two generations of WORKERS_MAX during a reload. */
#define SHARED_SLOTS		(2 * WORKERS_MAX)
#define SHARED_FAULTS_MAX	256
/* Entries: one per (address, slot) plus one total per address. */
#define SHARED_IP_MAX		131072
#define SHARED_FALLBACK_MAX	65536
#define SHARED_RATE_MAX		65536

struct shared;

/* 0 or NULL with err; shared_destroy(NULL) is fine. */
struct shared	*shared_create(char *err, size_t errlen);
void		 shared_destroy(struct shared *sh);
/* Its size in bytes (virtual; most pages are never touched). */
size_t		 shared_size(void);

/* The next connection number (1, 2, ...) and session id. */
unsigned long long shared_next_conn(struct shared *sh);
uint64_t	 shared_next_sid(struct shared *sh);
/* Connections numbered so far. */
unsigned long long shared_conn_count(struct shared *sh);
/* SHARED_FAULTS_MAX counters for fault_match(), updated atomically. */
unsigned long long *shared_fault_hits(struct shared *sh);

/*
 * max_connections, for all workers together: take one session for
 * slot if fewer than max are open (true), give it back after.
 */
bool		 shared_conn_reserve(struct shared *sh, unsigned slot,
		    unsigned max);
void		 shared_conn_release(struct shared *sh, unsigned slot);
/* Sessions open in every worker; sessions of one slot. */
unsigned	 shared_conns(struct shared *sh);
unsigned	 shared_slot_conns(struct shared *sh, unsigned slot);

/* Add delta (+1/-1) for an address in slot; the new total over all. */
unsigned	 shared_ipcount_add(struct shared *sh, unsigned slot,
		    const unsigned char key[16], int delta);

/* tls_fallback_window: remember an address until then; is it there? */
void		 shared_fallback_note(struct shared *sh,
		    const unsigned char key[16], double now, double until);
bool		 shared_fallback_active(struct shared *sh,
		    const unsigned char key[16], double now);

/* max_connection_rate: cap per minute; may it connect now? */
bool		 shared_rate_allow(struct shared *sh,
		    const unsigned char key[16], double cap, double now);

/* Counters of a worker's stop line (unsigned long long each), added
 * to the totals as it exits; the totals, SHARED_STATS_MAX of them. */
#define SHARED_STATS_MAX	16
void		 shared_stats_add(struct shared *sh,
		    const unsigned long long *v, size_t n);
const unsigned long long *shared_stats(struct shared *sh);

/*
 * The TLS ticket secret (32 octets) of the worker in slot: the
 * supervisor sets its generation's before it starts the worker, so
 * every worker of a generation accepts the others' tickets.
 */
void		 shared_set_ticket_secret(struct shared *sh, unsigned slot,
		    const unsigned char secret[32]);
const unsigned char *shared_ticket_secret(struct shared *sh, unsigned slot);

/* The supervisor, after reaping the worker of slot: forget its counts. */
void		 shared_slot_clear(struct shared *sh, unsigned slot);

#endif
