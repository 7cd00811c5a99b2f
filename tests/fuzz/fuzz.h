/*
 * fuzz.h - what the fuzz targets share: the libFuzzer entry point, the
 * invariant check, and a growable byte buffer.
 *
 * A broken invariant prints where and what, then abort()s, so that
 * libFuzzer (or the replay driver, main.c) records the input as a crash.
 * Nothing here depends on libFuzzer: the targets also build with gcc.
 */
#ifndef MXD_FUZZ_H
#define MXD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: invariant broken: %s\n",	\
		    __FILE__, __LINE__, #cond);				\
		abort();						\
	}								\
} while (0)

/*
 * Known bugs, reported and not yet fixed, that a fuzzing campaign may
 * step over so as to find new ones: MXD_FUZZ_KNOWN=name,name (or "all").
 * The replay tests run without it, so a regression input in the corpus
 * fails until the bug is fixed.  Each name is listed in README.md.
 */
static inline int
fuzz_known(const char *name)
{
	const char *v = getenv("MXD_FUZZ_KNOWN"), *p;
	size_t n = strlen(name);

	if (v == NULL)
		return 0;
	if (strcmp(v, "all") == 0)
		return 1;
	for (p = v; (p = strstr(p, name)) != NULL; p += n)
		if ((p == v || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
			return 1;
	return 0;
}

struct fuzz_buf {
	uint8_t	*p;
	size_t	 len, cap;
};

static inline void
fuzz_buf_add(struct fuzz_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2;
		b->p = realloc(b->p, b->cap);
		if (b->p == NULL)
			abort();
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* A length-prefixed field, so that concatenated fields cannot collide. */
static inline void
fuzz_buf_field(struct fuzz_buf *b, const void *p, size_t n)
{
	uint64_t len = n;

	fuzz_buf_add(b, &len, sizeof(len));
	fuzz_buf_add(b, p, n);
}

static inline void
fuzz_buf_u64(struct fuzz_buf *b, uint64_t v)
{
	fuzz_buf_add(b, &v, sizeof(v));
}

static inline void
fuzz_buf_free(struct fuzz_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static inline int
fuzz_buf_eq(const struct fuzz_buf *a, const struct fuzz_buf *b)
{
	return a->len == b->len && (a->len == 0 ||
	    memcmp(a->p, b->p, a->len) == 0);
}

/* An exact-size heap copy, so that ASan sees any read past the end. */
static inline uint8_t *
fuzz_dup(const void *p, size_t n)
{
	/*
	 * glibc: a 0-octet block, not NULL, so a read past the input is
	 * caught even then; calloc, because with n == 0 gcc -O3 warns that
	 * malloc'd octets passed on may be uninitialized.
	 */
	uint8_t *q = calloc(n, 1);

	if (q == NULL && n > 0)
		abort();
	if (n > 0)
		memcpy(q, p, n);
	return q;
}

#endif
