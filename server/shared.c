/*
 * shared.c - the region of shared.h: counters, and three fixed hash
 * tables under one robust process-shared mutex.
 *
 * A table is an array of entries with a free list, chained from 8192
 * buckets by index (index + 1; 0 ends a chain), so it means the same in
 * every process whatever the address of the mapping.  The hash is
 * FNV-1a with a seed drawn at creation: a client cannot aim at one
 * bucket.  Entries past the high-water mark have never been used, so
 * their pages stay untouched.
 *
 * Rejected: a lock-free table.  Every operation is a few memory
 * accesses under an uncontended futex; what a lock-free version would
 * save is not worth its subtlety.  The counters that need no table
 * (connection number, session id, fault hits) are plain atomics.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

#include "shared.h"

#define BUCKETS		8192
#define SLOT_ALL	UINT32_MAX	/* an address's total */

struct sent {
	unsigned char	 key[16];
	uint32_t	 slot;		/* SLOT_ALL outside the ip table */
	uint32_t	 next;		/* index + 1; 0: the chain ends */
	union {
		uint32_t count;				/* ip */
		double	 until;				/* fallback */
		struct { double tokens, last; } r;	/* rate */
	} v;
};

struct stab {
	uint32_t	 head[BUCKETS];
	uint32_t	 free;		/* free list, index + 1 */
	uint32_t	 hwm;		/* entries ever handed out */
	uint32_t	 cap;
	uint32_t	 n;
};

struct shared {
	pthread_mutex_t		 lock;
	uint32_t		 seed;
	unsigned long long	 conn_no;
	uint64_t		 sid_next;
	unsigned long long	 fault_hits[SHARED_FAULTS_MAX];
	uint32_t		 slot_conns[SHARED_SLOTS];
	unsigned long long	 stats[SHARED_STATS_MAX];
	unsigned char		 ticket_secret[SHARED_SLOTS][32];
	struct stab		 ip, fb, rate;
	struct sent		 ip_e[SHARED_IP_MAX];
	struct sent		 fb_e[SHARED_FALLBACK_MAX];
	struct sent		 rate_e[SHARED_RATE_MAX];
};

size_t
shared_size(void)
{
	return sizeof(struct shared);
}

struct shared *
shared_create(char *err, size_t errlen)
{
	pthread_mutexattr_t a;
	struct shared *sh;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		snprintf(err, errlen, "mmap of the shared region (%zu "
		    "octets): %s", sizeof(*sh), strerror(errno));
		return NULL;
	}
	/* Zero-filled by the kernel: every table starts empty. */
	if (getrandom(&sh->seed, sizeof(sh->seed), 0) != sizeof(sh->seed) ||
	    getrandom(&sh->sid_next, sizeof(sh->sid_next), 0) !=
	    sizeof(sh->sid_next)) {
		snprintf(err, errlen, "getrandom: %s", strerror(errno));
		munmap(sh, sizeof(*sh));
		return NULL;
	}
	sh->ip.cap = SHARED_IP_MAX;
	sh->fb.cap = SHARED_FALLBACK_MAX;
	sh->rate.cap = SHARED_RATE_MAX;
	if (pthread_mutexattr_init(&a) != 0 ||
	    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) != 0 ||
	    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) != 0 ||
	    pthread_mutex_init(&sh->lock, &a) != 0) {
		snprintf(err, errlen, "cannot make a process-shared lock");
		munmap(sh, sizeof(*sh));
		return NULL;
	}
	pthread_mutexattr_destroy(&a);
	return sh;
}

void
shared_destroy(struct shared *sh)
{
	if (sh == NULL)
		return;
	munmap(sh, sizeof(*sh));
}

/*
 * A holder that died left the tables as its last store did: each
 * operation below keeps them consistent after every single store that
 * matters (a link or an unlink), and the supervisor clears the dead
 * worker's counts anyway.  So: mark it consistent and go on.
 */
static void
lock(struct shared *sh)
{
	if (pthread_mutex_lock(&sh->lock) == EOWNERDEAD)
		pthread_mutex_consistent(&sh->lock);
}

static void
unlock(struct shared *sh)
{
	pthread_mutex_unlock(&sh->lock);
}

/* ---- counters --------------------------------------------------------- */

unsigned long long
shared_next_conn(struct shared *sh)
{
	return __atomic_add_fetch(&sh->conn_no, 1, __ATOMIC_RELAXED);
}

unsigned long long
shared_conn_count(struct shared *sh)
{
	return __atomic_load_n(&sh->conn_no, __ATOMIC_RELAXED);
}

uint64_t
shared_next_sid(struct shared *sh)
{
	return __atomic_fetch_add(&sh->sid_next, 1, __ATOMIC_RELAXED);
}

unsigned long long *
shared_fault_hits(struct shared *sh)
{
	return sh->fault_hits;
}

bool
shared_conn_reserve(struct shared *sh, unsigned slot, unsigned max)
{
	unsigned long long total = 0;
	size_t i;
	bool ok;

	lock(sh);
	for (i = 0; i < SHARED_SLOTS; i++)
		total += sh->slot_conns[i];
	ok = total < max;
	if (ok)
		sh->slot_conns[slot]++;
	unlock(sh);
	return ok;
}

void
shared_conn_release(struct shared *sh, unsigned slot)
{
	lock(sh);
	if (sh->slot_conns[slot] > 0)
		sh->slot_conns[slot]--;
	unlock(sh);
}

unsigned
shared_conns(struct shared *sh)
{
	unsigned total = 0;
	size_t i;

	for (i = 0; i < SHARED_SLOTS; i++)
		total += __atomic_load_n(&sh->slot_conns[i], __ATOMIC_RELAXED);
	return total;
}

unsigned
shared_slot_conns(struct shared *sh, unsigned slot)
{
	return __atomic_load_n(&sh->slot_conns[slot], __ATOMIC_RELAXED);
}

void
shared_stats_add(struct shared *sh, const unsigned long long *v, size_t n)
{
	size_t i;

	for (i = 0; i < n && i < SHARED_STATS_MAX; i++)
		__atomic_add_fetch(&sh->stats[i], v[i], __ATOMIC_RELAXED);
}

const unsigned long long *
shared_stats(struct shared *sh)
{
	return sh->stats;
}

void
shared_set_ticket_secret(struct shared *sh, unsigned slot,
    const unsigned char secret[32])
{
	memcpy(sh->ticket_secret[slot], secret, 32);
}

const unsigned char *
shared_ticket_secret(struct shared *sh, unsigned slot)
{
	return sh->ticket_secret[slot];
}

/* ---- tables ----------------------------------------------------------- */

static uint32_t
hash(const struct shared *sh, const unsigned char key[16], uint32_t slot)
{
	uint32_t h = 2166136261u ^ sh->seed;
	int i;

	for (i = 0; i < 16; i++) {
		h ^= key[i];
		h *= 16777619u;
	}
	for (i = 0; i < 4; i++) {
		h ^= (slot >> (8 * i)) & 0xff;
		h *= 16777619u;
	}
	return h % BUCKETS;
}

/* Is this entry stale (to be unlinked as its chain is walked)? */
typedef bool (*stale_fn)(const struct sent *e, double now);

/*
 * The entry for (key, slot), or NULL; stale entries met on the way are
 * freed.  With create, a new zeroed entry is linked when there is none
 * and room is left.
 */
static struct sent *
stab_get(struct shared *sh, struct stab *t, struct sent *ents,
    const unsigned char key[16], uint32_t slot, stale_fn stale, double now,
    bool create)
{
	uint32_t *pp, i, b = hash(sh, key, slot);
	struct sent *e, *found = NULL;

	for (pp = &t->head[b]; (i = *pp) != 0;) {
		e = &ents[i - 1];
		if (e->slot == slot && memcmp(e->key, key, 16) == 0) {
			found = e;
		} else if (stale != NULL && stale(e, now)) {
			*pp = e->next;
			e->next = t->free;
			t->free = i;
			t->n--;
			continue;
		}
		pp = &e->next;
	}
	if (found != NULL || !create)
		return found;
	if (t->free != 0) {
		i = t->free;
		t->free = ents[i - 1].next;
	} else if (t->hwm < t->cap) {
		i = ++t->hwm;
	} else {
		return NULL;	/* full: the caller goes without */
	}
	e = &ents[i - 1];
	memset(e, 0, sizeof(*e));
	memcpy(e->key, key, 16);
	e->slot = slot;
	e->next = t->head[b];
	t->head[b] = i;
	t->n++;
	return e;
}

static void
stab_del(struct shared *sh, struct stab *t, struct sent *ents,
    struct sent *e)
{
	uint32_t *pp, i = (uint32_t)(e - ents) + 1;

	for (pp = &t->head[hash(sh, e->key, e->slot)]; *pp != 0;
	    pp = &ents[*pp - 1].next) {
		if (*pp == i) {
			*pp = e->next;
			e->next = t->free;
			t->free = i;
			t->n--;
			return;
		}
	}
}

/* ---- connections per address ------------------------------------------ */

unsigned
shared_ipcount_add(struct shared *sh, unsigned slot,
    const unsigned char key[16], int delta)
{
	struct sent *tot, *mine;
	unsigned n = 0;

	lock(sh);
	tot = stab_get(sh, &sh->ip, sh->ip_e, key, SLOT_ALL, NULL, 0,
	    delta > 0);
	mine = tot == NULL ? NULL : stab_get(sh, &sh->ip, sh->ip_e, key,
	    slot, NULL, 0, delta > 0);
	if (mine == NULL) {
		/* Uncounted rather than refused (full), or never counted. */
		if (tot != NULL && tot->v.count == 0)
			stab_del(sh, &sh->ip, sh->ip_e, tot);
		goto out;
	}
	if (delta > 0) {
		mine->v.count++;
		tot->v.count++;
	} else if (mine->v.count > 0) {
		mine->v.count--;
		if (tot->v.count > 0)
			tot->v.count--;
	}
	n = tot->v.count;
	if (mine->v.count == 0)
		stab_del(sh, &sh->ip, sh->ip_e, mine);
	if (tot->v.count == 0)
		stab_del(sh, &sh->ip, sh->ip_e, tot);
out:
	unlock(sh);
	return n;
}

/*
 * Two passes: take the slot's counts off the totals, then unlink every
 * entry left at zero (unlinking while the first pass walks could free
 * the entry it is about to step to).
 */
void
shared_slot_clear(struct shared *sh, unsigned slot)
{
	struct sent *e, *tot;
	uint32_t b, i, *pp;

	lock(sh);
	sh->slot_conns[slot] = 0;
	for (b = 0; b < BUCKETS; b++) {
		for (i = sh->ip.head[b]; i != 0; i = e->next) {
			e = &sh->ip_e[i - 1];
			if (e->slot != slot)
				continue;
			tot = stab_get(sh, &sh->ip, sh->ip_e, e->key,
			    SLOT_ALL, NULL, 0, false);
			if (tot != NULL)
				tot->v.count = tot->v.count > e->v.count ?
				    tot->v.count - e->v.count : 0;
			e->v.count = 0;
		}
	}
	for (b = 0; b < BUCKETS; b++) {
		for (pp = &sh->ip.head[b]; (i = *pp) != 0;) {
			e = &sh->ip_e[i - 1];
			if (e->v.count != 0) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			e->next = sh->ip.free;
			sh->ip.free = i;
			sh->ip.n--;
		}
	}
	unlock(sh);
}

/* ---- fallback memory -------------------------------------------------- */

static bool
fb_stale(const struct sent *e, double now)
{
	return e->v.until <= now;
}

void
shared_fallback_note(struct shared *sh, const unsigned char key[16],
    double now, double until)
{
	struct sent *e;

	lock(sh);
	/* Bounded: a flood of failing addresses cannot grow it. */
	e = stab_get(sh, &sh->fb, sh->fb_e, key, SLOT_ALL, fb_stale, now,
	    true);
	if (e != NULL)
		e->v.until = until;
	unlock(sh);
}

bool
shared_fallback_active(struct shared *sh, const unsigned char key[16],
    double now)
{
	struct sent *e;
	bool on;

	lock(sh);
	e = stab_get(sh, &sh->fb, sh->fb_e, key, SLOT_ALL, fb_stale, now,
	    false);
	on = e != NULL && e->v.until > now;
	unlock(sh);
	return on;
}

/* ---- connection rate -------------------------------------------------- */

/* A bucket idle for a minute is full again: the same as no entry. */
static bool
rate_stale(const struct sent *e, double now)
{
	return now - e->v.r.last >= 60;
}

bool
shared_rate_allow(struct shared *sh, const unsigned char key[16],
    double cap, double now)
{
	struct sent *e;
	bool ok = true;

	lock(sh);
	e = stab_get(sh, &sh->rate, sh->rate_e, key, SLOT_ALL, rate_stale,
	    now, false);
	if (e == NULL) {
		/* Bounded: past SHARED_RATE_MAX addresses, none tracked. */
		e = stab_get(sh, &sh->rate, sh->rate_e, key, SLOT_ALL, NULL,
		    now, true);
		if (e == NULL)
			goto out;
		e->v.r.tokens = cap;
		e->v.r.last = now;
	}
	e->v.r.tokens += (now - e->v.r.last) * cap / 60;
	if (e->v.r.tokens > cap)
		e->v.r.tokens = cap;
	e->v.r.last = now;
	if (e->v.r.tokens < 1)
		ok = false;
	else
		e->v.r.tokens -= 1;
out:
	unlock(sh);
	return ok;
}
