/*
 * fuzz_path.c - the path, parameter and domain grammar of proto/smtp_path.c
 * (smtp_parse_path, smtp_next_param, smtp_valid_*), on the whole input.
 *
 * The input is copied to a block of its exact size, so that ASan sees any
 * read past its end.  Invariants (abort() when broken):
 *   - smtp_parse_path, under each of its eight flag sets: NO_BRACKETS
 *     exactly when the input does not start with '<'; on OK, used <= len,
 *     the path is "<...>", every pointer and length lies inside it, local
 *     and domain tile the address around its '@', the domain passes
 *     smtp_valid_domain or smtp_valid_address_literal, the limits of RFC
 *     5321 4.5.3.1 hold, "<>" needs NULL_OK and a bare "<postmaster>"
 *     needs POSTMASTER, non-ASCII needs UTF8 and sets utf8; without
 *     non-ASCII octets the UTF8 flag changes nothing; the path alone
 *     (input cut at used) parses to the
 *     same result, so does the path under more flags; flipping the case of
 *     ASCII letters changes no result (the grammar is case-blind);
 *   - smtp_next_param, over what follows a path and over the whole input:
 *     returns -1, 0 or 1; moves only forward and only on 1; a keyword is
 *     (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") after one or more SP, a
 *     value of octets 33-255 but '=' and DEL after '=' (RFC 6531 3.3
 *     lets UTF-8 in); it stops at SP or the end; 0 only when nothing but
 *     SP remains;
 *   - smtp_valid_domain and smtp_valid_address_literal each imply
 *     smtp_valid_helo; a valid domain is LDH and at most 255 octets, a
 *     valid address literal printable ASCII (RFC 5321 4.1.3); a
 *     valid HELO name that is no literal is a valid domain once '_' is
 *     replaced; "<a@" domain ">" parses (a valid domain or literal is a
 *     valid path domain); the case flip changes no verdict;
 *   - smtp_valid_xtext (RFC 3461 4): printable ASCII but '=', '+' only
 *     before two upper-case hex digits; it equals smtp_valid_xtext_utf8
 *     without UTF-8, and implies it with; the UTF-8 form of the input is
 *     xtext once its non-ASCII octets are dropped.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "smtp_int.h"

/* Every combination of the flags. */
#define NFLAGS	8
static const unsigned flag_sets[NFLAGS] = {
	0,
	SMTP_PATH_NULL_OK,
	SMTP_PATH_POSTMASTER,
	SMTP_PATH_NULL_OK | SMTP_PATH_POSTMASTER,
	SMTP_PATH_UTF8,
	SMTP_PATH_UTF8 | SMTP_PATH_NULL_OK,
	SMTP_PATH_UTF8 | SMTP_PATH_POSTMASTER,
	SMTP_PATH_UTF8 | SMTP_PATH_NULL_OK | SMTP_PATH_POSTMASTER,
};

static bool
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static bool
ieq(const char *a, size_t n, const char *lit)
{
	size_t i;

	if (strlen(lit) != n)
		return false;
	for (i = 0; i < n; i++) {
		char x = a[i];

		if (x >= 'A' && x <= 'Z')
			x += 32;
		if (x != lit[i])
			return false;
	}
	return true;
}

static bool
has_8bit(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return true;
	return false;
}

static uint8_t *
case_flip(const uint8_t *p, size_t n)
{
	uint8_t *q = fuzz_dup(p, n);
	size_t i;

	for (i = 0; i < n; i++)
		if ((q[i] >= 'a' && q[i] <= 'z') || (q[i] >= 'A' && q[i] <= 'Z'))
			q[i] ^= 0x20;
	return q;
}

/* ---- smtp_parse_path ------------------------------------------------------ */

static void
check_ok_path(const char *buf, size_t len, unsigned flags,
    const struct smtp_path *p, size_t used)
{
	const char *gt;

	CHECK(used >= 2 && used <= len && used <= SMTP_PATH_MAX);
	CHECK(buf[0] == '<' && buf[used - 1] == '>');
	gt = buf + used - 1;
	CHECK(p->addr != NULL && p->addr > buf && p->addr <= gt);
	CHECK(p->addr_len <= (size_t)(gt - p->addr));
	if (p->addr_len == 0) {
		CHECK(flags & SMTP_PATH_NULL_OK);
		CHECK(used == 2);
		CHECK(p->local_len == 0 && p->domain_len == 0);
		return;
	}
	CHECK(p->addr + p->addr_len == gt);
	/* RFC 6531: non-ASCII only with the UTF8 flag, and then flagged. */
	CHECK(p->utf8 == has_8bit(p->addr, p->addr_len));
	CHECK(!p->utf8 || (flags & SMTP_PATH_UTF8));
	if (p->addr > buf + 1) {
		/* A source route was skipped: "<@...:" */
		CHECK(buf[1] == '@' && p->addr[-1] == ':');
	}
	CHECK(p->local == p->addr);
	CHECK(p->local_len > 0 && p->local_len <= p->addr_len);
	if (p->domain_len == 0) {
		CHECK(flags & SMTP_PATH_POSTMASTER);
		CHECK(p->local_len == p->addr_len);
		CHECK(ieq(p->local, p->local_len, "postmaster"));
		return;
	}
	CHECK(p->local_len <= SMTP_LOCAL_MAX);
	CHECK(p->addr[p->local_len] == '@');
	CHECK(p->domain == p->local + p->local_len + 1);
	CHECK(p->domain + p->domain_len == gt);
	CHECK(p->domain_len <= SMTP_DOMAIN_MAX);
	if (!has_8bit(p->domain, p->domain_len))
		CHECK(smtp_valid_domain(p->domain, p->domain_len) ||
		    smtp_valid_address_literal(p->domain, p->domain_len));
}

/* Same result, and on OK the same offsets into each buffer. */
static void
check_same(enum smtp_path_err e1, const char *b1, const struct smtp_path *p1,
    size_t u1, enum smtp_path_err e2, const char *b2,
    const struct smtp_path *p2, size_t u2)
{
	CHECK(e1 == e2);
	if (e1 != SMTP_PATH_OK)
		return;
	CHECK(u1 == u2);
	CHECK(p1->addr - b1 == p2->addr - b2);
	CHECK(p1->addr_len == p2->addr_len);
	CHECK(p1->utf8 == p2->utf8);
	CHECK(p1->local_len == p2->local_len);
	CHECK(p1->domain_len == p2->domain_len);
	if (p1->local_len > 0)
		CHECK(p1->local - b1 == p2->local - b2);
	if (p1->domain_len > 0)
		CHECK(p1->domain - b1 == p2->domain - b2);
}

static void walk_params(const char *p, const char *end);

static void
fuzz_parse_path(const uint8_t *data, size_t len)
{
	char *buf = (char *)fuzz_dup(data, len);
	char *flip = (char *)case_flip(data, len);
	struct smtp_path p, q;
	enum smtp_path_err e, e2;
	size_t used = 0, used2, f, g;
	char *cut;

	for (f = 0; f < NFLAGS; f++) {
		e = smtp_parse_path(buf, len, flag_sets[f], &p, &used);
		CHECK(e == SMTP_PATH_OK || e == SMTP_PATH_SYNTAX ||
		    e == SMTP_PATH_TOO_LONG || e == SMTP_PATH_NO_BRACKETS);
		CHECK((e == SMTP_PATH_NO_BRACKETS) ==
		    (len == 0 || buf[0] != '<'));

		used2 = 0;
		e2 = smtp_parse_path(flip, len, flag_sets[f], &q, &used2);
		check_same(e, buf, &p, used, e2, flip, &q, used2);

		/* Without non-ASCII octets the UTF8 flag changes nothing. */
		if (!has_8bit(buf, len)) {
			used2 = 0;
			e2 = smtp_parse_path(buf, len,
			    flag_sets[f] ^ SMTP_PATH_UTF8, &q, &used2);
			check_same(e, buf, &p, used, e2, buf, &q, used2);
		}
		if (e != SMTP_PATH_OK)
			continue;
		check_ok_path(buf, len, flag_sets[f], &p, used);

		/* The path alone, in a block of its own size. */
		cut = (char *)fuzz_dup(buf, used);
		used2 = 0;
		e2 = smtp_parse_path(cut, used, flag_sets[f], &q, &used2);
		check_same(e, buf, &p, used, e2, cut, &q, used2);
		free(cut);

		/* More flags allow more, never less. */
		for (g = 0; g < NFLAGS; g++) {
			if ((flag_sets[g] & flag_sets[f]) != flag_sets[f])
				continue;
			used2 = 0;
			e2 = smtp_parse_path(buf, len, flag_sets[g], &q,
			    &used2);
			check_same(e, buf, &p, used, e2, buf, &q, used2);
		}
		if (f == NFLAGS - 1)
			walk_params(buf + used, buf + len);
	}
	free(buf);
	free(flip);
}

/* ---- smtp_next_param ---------------------------------------------------- */

static void
walk_params(const char *p, const char *end)
{
	const char *start = p, *before, *q;
	struct smtp_param prm;
	size_t steps = 0, i;
	int r;

	for (;;) {
		before = p;
		memset(&prm, 0, sizeof(prm));
		r = smtp_next_param(&p, end, &prm);
		CHECK(r >= -1 && r <= 1);
		if (r <= 0) {
			CHECK(p == before);
			if (r == 0)
				for (q = p; q < end; q++)
					CHECK(*q == ' ');
			return;
		}
		/* Each step takes an SP and a keyword octet at least. */
		CHECK(++steps <= (size_t)(end - start) / 2);
		CHECK(p > before && p <= end);
		CHECK(prm.key > before && prm.key < p);
		for (q = before; q < prm.key; q++)
			CHECK(*q == ' ');
		CHECK(prm.key_len > 0);
		CHECK(is_alnum((unsigned char)prm.key[0]));
		for (i = 0; i < prm.key_len; i++)
			CHECK(is_alnum((unsigned char)prm.key[i]) ||
			    prm.key[i] == '-');
		if (prm.value != NULL) {
			CHECK(prm.key[prm.key_len] == '=');
			CHECK(prm.value == prm.key + prm.key_len + 1);
			CHECK(prm.value_len > 0);
			CHECK(prm.value + prm.value_len == p);
			/* RFC 6531 3.3 adds UTF8-non-ascii to the value;
			 * each parameter checks its own. */
			for (i = 0; i < prm.value_len; i++) {
				unsigned char c = (unsigned char)prm.value[i];

				CHECK(c >= 33 && c != 127 && c != '=');
			}
		} else {
			CHECK(prm.value_len == 0);
			CHECK(prm.key + prm.key_len == p);
		}
		CHECK(p == end || *p == ' ');
	}
}

/* ---- smtp_valid_* ----------------------------------------------------------- */

/* "<a@" dom ">" parses, and its domain is dom. */
static void
check_as_path_domain(const char *dom, size_t len)
{
	size_t n = len + 4, used = 0;
	char *path = malloc(n);
	struct smtp_path p;
	enum smtp_path_err e;

	CHECK(path != NULL);
	memcpy(path, "<a@", 3);
	memcpy(path + 3, dom, len);
	path[n - 1] = '>';
	e = smtp_parse_path(path, n, 0, &p, &used);
	if (n > SMTP_PATH_MAX) {
		CHECK(e == SMTP_PATH_TOO_LONG);
	} else {
		CHECK(e == SMTP_PATH_OK);
		CHECK(used == n);
		CHECK(p.domain == path + 3 && p.domain_len == len);
	}
	free(path);
}

static void
fuzz_valid(const uint8_t *data, size_t len)
{
	char *buf = (char *)fuzz_dup(data, len);
	char *flip = (char *)case_flip(data, len);
	char *under;
	bool d, h, l;
	size_t i;

	d = smtp_valid_domain(buf, len);
	h = smtp_valid_helo(buf, len);
	l = smtp_valid_address_literal(buf, len);
	CHECK(d == smtp_valid_domain(flip, len));
	CHECK(h == smtp_valid_helo(flip, len));
	CHECK(l == smtp_valid_address_literal(flip, len));
	if (d || l)
		CHECK(h);
	CHECK(!(d && l));
	if (d) {
		CHECK(len > 0 && len <= SMTP_DOMAIN_MAX);
		CHECK(buf[0] != '-' && buf[0] != '.');
		CHECK(buf[len - 1] != '-' && buf[len - 1] != '.');
		for (i = 0; i < len; i++)
			CHECK(is_alnum((unsigned char)buf[i]) ||
			    buf[i] == '-' || buf[i] == '.');
		check_as_path_domain(buf, len);
	}
	if (l) {
		CHECK(len >= 3 && buf[0] == '[' && buf[len - 1] == ']');
		/* RFC 5321 4.1.3: printable ASCII only, in every form. */
		for (i = 0; i < len; i++)
			CHECK(buf[i] >= 33 && buf[i] <= 126);
		check_as_path_domain(buf, len);
	}
	if (h && !l) {
		CHECK(len > 0 && buf[0] != '[');
		under = (char *)fuzz_dup(buf, len);
		for (i = 0; i < len; i++)
			if (under[i] == '_')
				under[i] = 'u';
		CHECK(smtp_valid_domain(under, len));
		free(under);
	}
	free(buf);
	free(flip);
}

static bool
is_upper_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static void
fuzz_xtext(const uint8_t *data, size_t len)
{
	char *buf = (char *)fuzz_dup(data, len);
	char *ascii;
	bool x, xu;
	size_t i, n;

	x = smtp_valid_xtext(buf, len);
	CHECK(x == smtp_valid_xtext_utf8(buf, len, false));
	xu = smtp_valid_xtext_utf8(buf, len, true);
	if (x) {
		CHECK(xu);
		for (i = 0; i < len; i++) {
			unsigned char c = (unsigned char)buf[i];

			CHECK(c >= 33 && c <= 126 && c != '=');
			if (c == '+') {
				CHECK(i + 2 < len);
				CHECK(is_upper_hex(buf[i + 1]) &&
				    is_upper_hex(buf[i + 2]));
				i += 2;
			}
		}
	}
	if (xu) {
		/* Dropping whole UTF-8 characters leaves xtext. */
		ascii = malloc(len + 1);
		CHECK(ascii != NULL);
		for (i = n = 0; i < len; i++)
			if ((unsigned char)buf[i] < 0x80)
				ascii[n++] = buf[i];
		CHECK(smtp_valid_xtext(ascii, n));
		free(ascii);
	}
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf;

	fuzz_parse_path(data, size);
	buf = (char *)fuzz_dup(data, size);
	walk_params(buf, buf + size);
	free(buf);
	fuzz_valid(data, size);
	fuzz_xtext(data, size);
	return 0;
}
