/*
 * main.c - replay driver: runs each file given, and each file in each
 * directory given, through LLVMFuzzerTestOneInput() once.
 *
 * This is how the targets build without libFuzzer (gcc, or clang without
 * -fsanitize=fuzzer) and how meson's "fuzz" suite replays the corpus: a
 * broken invariant abort()s and fails the test.  Directory entries are run
 * in name order, and dotfiles are skipped.  Each input is copied to a block
 * of its exact size, as libFuzzer does, so that ASan (when enabled) sees a
 * read past its end.  Exit status 0 when at least one input ran, 1 when
 * none did (an empty or mistyped corpus path is an error, not a pass).
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int
run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL, *exact;
	size_t len = 0, cap = 0, n;

	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	for (;;) {
		if (len == cap) {
			cap = cap == 0 ? 4096 : cap * 2;
			buf = realloc(buf, cap);
			if (buf == NULL)
				abort();
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		fprintf(stderr, "%s: read error\n", path);
		fclose(f);
		free(buf);
		return -1;
	}
	fclose(f);
	exact = fuzz_dup(buf, len);
	free(buf);
	fprintf(stderr, "running %s (%zu octets)\n", path, len);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 0;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Returns the number of inputs run, or -1 on an error. */
static int
run_path(const char *path)
{
	struct stat st;
	struct dirent *de;
	DIR *d;
	char **names = NULL, *full;
	size_t n = 0, cap = 0, i;
	int count = 0;
	bool bad = false;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return run_file(path) == 0 ? 1 : -1;
	d = opendir(path);
	if (d == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			names = realloc(names, cap * sizeof(*names));
			if (names == NULL)
				abort();
		}
		names[n] = strdup(de->d_name);
		if (names[n] == NULL)
			abort();
		n++;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), by_name);
	for (i = 0; i < n; i++) {
		full = malloc(strlen(path) + strlen(names[i]) + 2);
		if (full == NULL)
			abort();
		sprintf(full, "%s/%s", path, names[i]);
		if (stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
			if (run_file(full) == 0)
				count++;
			else
				bad = true;
		}
		free(full);
		free(names[i]);
	}
	free(names);
	return bad ? -1 : count;
}

int
main(int argc, char **argv)
{
	int i, n, total = 0, failed = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s file-or-directory ...\n", argv[0]);
		return 2;
	}
	for (i = 1; i < argc; i++) {
		n = run_path(argv[i]);
		if (n < 0)
			failed = 1;
		else
			total += n;
	}
	printf("%d inputs replayed\n", total);
	return failed || total == 0 ? 1 : 0;
}
