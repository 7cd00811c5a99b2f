/*
 * test_json.c - server/json.c's strings, for any octets.
 *
 * The expected texts were made with Python: bytes.decode("utf-8") with
 * an error handler that marks each maximal ill-formed subpart (the same
 * ranges "replace" turns into U+FFFD), then each character escaped by
 * the rules of json.c.  Every one also reads back with json.loads() as
 * bytes.decode("utf-8", "replace").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static const struct {
	const char	*in;
	size_t		 len;
	const char	*want;
	const char	*why;
} cases[] = {
	{ "", 0, "\"\"",
	    "empty" },
	{ "plain ascii @ <>", 16, "\"plain ascii @ <>\"",
	    "printable ASCII as it is" },
	{ "\"\\", 2, "\"\\\"\\\\\"",
	    "quote and backslash" },
	{ "\x08\x0c\x0a\x0d\x09", 5, "\"\\b\\f\\n\\r\\t\"",
	    "the short escapes" },
	{ "\x00\x01\x1f\x7f", 4, "\"\\u0000\\u0001\\u001f\\u007f\"",
	    "other C0 controls and DEL" },
	{ "\xc2\x80\xc2\x9f\xc2\xa0", 6, "\"\\u0080\\u009f\xc2\xa0\"",
	    "C1 controls escaped, U+00A0 kept" },
	{ "j\xc3\xb6rg \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbd", 18,
	    "\"j\xc3\xb6rg \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbd\"",
	    "well-formed UTF-8 kept, a real U+FFFD too" },
	{ "\x80\xbf", 2, "\"\\ufffd\\ufffd\"",
	    "lone continuation octets: one each" },
	{ "\xc0\xaf", 2, "\"\\ufffd\\ufffd\"",
	    "overlong /: C0 never starts, AF alone" },
	{ "\xc1\xbf", 2, "\"\\ufffd\\ufffd\"",
	    "C1 never starts" },
	{ "\xe0\x80\xaf", 3, "\"\\ufffd\\ufffd\\ufffd\"",
	    "overlong 3-octet: E0 80 is no prefix" },
	{ "\xe0\xa0", 2, "\"\\ufffd\"",
	    "truncated at the end: one U+FFFD" },
	{ "\xe2\x82x", 3, "\"\\ufffdx\"",
	    "truncated by ASCII: one U+FFFD, then x" },
	{ "\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"",
	    "surrogate D800: three" },
	{ "\xed\x9f\xbf", 3, "\"\xed\x9f\xbf\"",
	    "U+D7FF kept" },
	{ "\xf0\x8f\xbf\xbf", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"",
	    "overlong 4-octet" },
	{ "\xf4\x8f\xbf\xbf", 4, "\"\xf4\x8f\xbf\xbf\"",
	    "U+10FFFF kept" },
	{ "\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"",
	    "past U+10FFFF" },
	{ "\xf5\xff\xfe", 3, "\"\\ufffd\\ufffd\\ufffd\"",
	    "never in UTF-8" },
	{ "\xf0\x9f\x98", 3, "\"\\ufffd\"",
	    "truncated 4-octet at the end" },
	{ "\xf0\x9f\x98\"", 4, "\"\\ufffd\\\"\"",
	    "truncated 4-octet before a quote" },
	{ "a\xff\xc3\xa9\xc3", 5, "\"a\\ufffd\xc3\xa9\\ufffd\"",
	    "mixed" },
};

static int
check(const char *why, const struct json_buf *b, const char *want)
{
	if (b->failed || b->len != strlen(want) ||
	    memcmp(b->p, want, b->len) != 0) {
		fprintf(stderr, "FAIL %s: got %.*s, want %s\n", why,
		    (int)b->len, b->p, want);
		return 1;
	}
	return 0;
}

int
main(void)
{
	struct json_buf b = { 0 };
	char big[5000], *want;
	size_t i;
	int fails = 0;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_str(&b, cases[i].in, cases[i].len);
		fails += check(cases[i].why, &b, cases[i].want);
		json_buf_finish(&b);
	}

	json_cstr(&b, NULL);
	json_raw(&b, ",", 1);
	json_cstr(&b, "x");
	json_rawf(&b, ",%d", 42);
	fails += check("null, a C string, a number", &b, "null,\"x\",42");
	json_buf_finish(&b);

	/* Past the first allocation: 5000 quotes, each escaped. */
	memset(big, '"', sizeof(big));
	want = malloc(2 * sizeof(big) + 3);
	if (want == NULL)
		return 1;
	want[0] = '"';
	for (i = 0; i < sizeof(big); i++)
		memcpy(want + 1 + 2 * i, "\\\"", 2);
	memcpy(want + 1 + 2 * sizeof(big), "\"", 2);
	json_str(&b, big, sizeof(big));
	fails += check("a long string", &b, want);
	json_buf_finish(&b);
	free(want);

	if (fails == 0)
		printf("ok: %zu strings\n",
		    sizeof(cases) / sizeof(cases[0]) + 2);
	return fails != 0;
}
