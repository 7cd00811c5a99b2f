/*
 * check.h - the unit tests' CHECK: report a failed condition with its
 * place and a message, count it, go on (main() returns non-zero when
 * failures != 0).
 */
#ifndef MXD_TEST_CHECK_H
#define MXD_TEST_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);		\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		failures++;						\
	}								\
} while (0)

#endif
