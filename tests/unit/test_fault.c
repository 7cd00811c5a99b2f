/*
 * test_fault.c - the fault rules of docs/harness.md: what parses, what
 * is refused with which reason, and when a rule fires.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fault.h"
#include "tls.h"

static struct fault_rule
parse_ok(const char *text)
{
	struct fault_rule r;
	char err[256] = "";

	if (fault_parse(text, &r, err, sizeof(err)) != 0) {
		fprintf(stderr, "rule \"%s\" refused: %s\n", text, err);
		failures++;
		memset(&r, 0, sizeof(r));
	}
	return r;
}

/* Refused, with a reason that contains want. */
static void
parse_bad(const char *text, const char *want)
{
	struct fault_rule r;
	char err[256] = "";

	if (fault_parse(text, &r, err, sizeof(err)) == 0) {
		fprintf(stderr, "rule \"%s\" accepted\n", text);
		failures++;
		fault_free(&r);
		return;
	}
	CHECK(strstr(err, want) != NULL, "rule \"%s\": reason \"%s\" lacks "
	    "\"%s\"", text, err, want);
}

static void
test_parse(void)
{
	struct fault_rule r;

	r = parse_ok("rcpt ~ *@bounce.test reply 550 5.1.1 No such user");
	CHECK(r.target == FT_RCPT && r.action == FA_REPLY, "rcpt reply");
	CHECK(r.code == 550 && strcmp(r.enh, "5.1.1") == 0, "code %d %s",
	    r.code, r.enh);
	CHECK(r.reply_text && strcmp(r.reply_text, "No such user") == 0,
	    "text \"%s\"", r.reply_text ? r.reply_text : "(null)");
	CHECK(r.pattern && strcmp(r.pattern, "*@bounce.test") == 0,
	    "pattern");
	fault_free(&r);

	/* Blanks inside the text are kept; no enhanced code is fine. */
	r = parse_ok("mail first 2 reply 451 Greylisted,  try   again ");
	CHECK(r.count == FC_FIRST && r.n == 2, "first 2");
	CHECK(r.enh[0] == 0, "no enh");
	CHECK(r.reply_text && strcmp(r.reply_text,
	    "Greylisted,  try   again") == 0, "text \"%s\"",
	    r.reply_text ? r.reply_text : "(null)");
	fault_free(&r);

	r = parse_ok("eom every 3 reply 452 4.3.1 Insufficient system storage");
	CHECK(r.target == FT_EOM && r.count == FC_EVERY && r.n == 3, "eom");
	fault_free(&r);

	r = parse_ok("data delay 500ms");
	CHECK(r.action == FA_DELAY && r.delay > 0.49 && r.delay < 0.51,
	    "delay %f", r.delay);
	fault_free(&r);

	r = parse_ok("conn 1 tls alert handshake_failure");
	CHECK(r.conn_lo == 1 && r.conn_hi == 1, "conn 1");
	CHECK(r.action == FA_TLS_ALERT && r.alert == 40 &&
	    r.step == TLS_STEP_CLIENT_HELLO, "alert %d step %d", r.alert,
	    r.step);
	fault_free(&r);

	r = parse_ok("conn 2- TLS Alert protocol_version after server_hello");
	CHECK(r.conn_lo == 2 && r.conn_hi == 0, "conn 2-");
	CHECK(r.alert == 70 && r.step == TLS_STEP_SERVER_HELLO, "step");
	fault_free(&r);

	r = parse_ok("conn 3-5 tls close after handshake");
	CHECK(r.conn_lo == 3 && r.conn_hi == 5 && r.after_handshake,
	    "close after handshake");
	fault_free(&r);

	r = parse_ok("tls alert 99 after server_hello");
	CHECK(r.alert == 99 && r.step == TLS_STEP_SERVER_HELLO, "alert 99");
	fault_free(&r);

	r = parse_ok("conn 4 starttls hide");
	CHECK(r.action == FA_HIDE && r.conn_lo == 4, "hide conn 4");
	CHECK(fault_hides_starttls(&r, 1, 4) == &r, "hides on 4");
	CHECK(fault_hides_starttls(&r, 1, 5) == NULL, "not on 5");
	CHECK(fault_match(&r, 1, (unsigned long long[1]){ 0 }, 4,
	    FT_STARTTLS, NULL, 0) == NULL, "hide is no command rule");
	fault_free(&r);

		r = parse_ok("tls cert wrong_name");
	CHECK(r.action == FA_TLS_CERT && r.cert == TLS_CERT_WRONG_NAME,
	    "cert");
	fault_free(&r);

	r = parse_ok("tls max_version 1.1");
	CHECK(r.action == FA_TLS_MAX_VERSION && r.version == TLS_V11, "1.1");
	fault_free(&r);

	r = parse_ok("starttls hide");
	CHECK(r.action == FA_HIDE, "hide");
	fault_free(&r);

	r = parse_ok("ehlo ~client.test disconnect");
	CHECK(r.pattern && strcmp(r.pattern, "client.test") == 0, "~x");
	fault_free(&r);

	r = parse_ok("greeting reply 554 5.3.2 Not now");
	CHECK(r.code == 554, "greeting 554");
	fault_free(&r);

	parse_bad("", "expected a target");
	parse_bad("helo", "expected an action");
	parse_bad("bogus reply 550 x", "expected a target");
	parse_bad("conn 0 mail disconnect", "conn:");
	parse_bad("conn 5-2 mail disconnect", "conn:");
	parse_bad("conn x mail disconnect", "conn:");
	parse_bad("mail reply 55 x", "three-digit");
	parse_bad("mail reply 354 go on", "2xx, 4xx or 5xx");
	parse_bad("mail reply 571 x", "out of range");
	parse_bad("mail reply 550 4.1.1 x", "class");
	parse_bad("mail reply 550 5.1 x", "X.Y.Z");
	parse_bad("mail reply 550 5.1.1 caf\xc3\xa9", "printable ASCII");
	parse_bad("greeting reply 450 x", "421 or 554");
	parse_bad("greeting ~ x disconnect", "no argument");
	parse_bad("eom ~ x disconnect", "no argument");
	parse_bad("mail first 0 disconnect", "first: expected a number");
	parse_bad("mail every x disconnect", "every: expected a number");
	parse_bad("mail delay soon", "delay:");
	parse_bad("mail delay 2h", "delay:");
	parse_bad("mail hide", "unknown action");
	parse_bad("starttls first 1 hide", "takes no ~ or count");
	parse_bad("mail disconnect now", "unexpected \"now\"");
	parse_bad("tls alert no_such_alert", "alert:");
	parse_bad("tls alert 256", "alert:");
	parse_bad("tls alert 1x", "alert:");
	parse_bad("tls alert handshake_failure after handshake",
	    "on client_hello");
	parse_bad("tls close before lunch", "on client_hello");
	parse_bad("tls cert old", "cert:");
	parse_bad("tls max_version 1.3", "max_version:");
	parse_bad("tls reply 550 x", "unknown action");
	parse_bad("mail ~", "~: expected a pattern");
}

static void
test_match(void)
{
	struct fault_rule rules[4];
	unsigned long long ctr[4] = { 0 };
	const struct fault_rule *m;
	const char *a;
	size_t alen;
	int fired = 0, i;

	rules[0] = parse_ok("conn 2 rcpt ~ *@BOUNCE.test reply 550 5.1.1 no");
	rules[1] = parse_ok("rcpt every 2 reply 452 4.5.3 later");
	rules[2] = parse_ok("mail first 2 reply 451 4.7.1 grey");
	rules[3] = parse_ok("tls alert handshake_failure");

	/* The pattern is matched without case, on connection 2 only. */
	m = fault_match(rules, 4, ctr, 2, FT_RCPT, "x@bounce.TEST", 13);
	CHECK(m == &rules[0], "pattern on conn 2");
	m = fault_match(rules, 4, ctr, 1, FT_RCPT, "x@bounce.test", 13);
	CHECK(m == NULL, "every 2: the first time does not fire");
	m = fault_match(rules, 4, ctr, 1, FT_RCPT, "x@bounce.test", 13);
	CHECK(m == &rules[1], "conn 1: not rule 0; every 2 fires");
	/* An argument with a NUL or past the limit never matches. */
	m = fault_match(rules, 1, ctr, 2, FT_RCPT, "x@bounce.test\0x", 15);
	CHECK(m == NULL, "NUL inside");

	for (i = 0; i < 5; i++)
		if (fault_match(rules, 4, ctr, 9, FT_MAIL, "a@b", 3) ==
		    &rules[2])
			fired++;
	CHECK(fired == 2, "first 2 fired %d times", fired);
	CHECK(fault_match(rules, 4, ctr, 9, FT_DATA, NULL, 0) == NULL,
	    "no data rule");
	CHECK(fault_match(rules, 4, ctr, 9, FT_TLS, NULL, 0) == &rules[3],
	    "tls");
	for (i = 0; i < 4; i++)
		fault_free(&rules[i]);

	fault_command_arg("RCPT TO:<\"a>b\"@x.test> NOTIFY=NEVER", 35, &a,
	    &alen);
	CHECK(alen == 12 && memcmp(a, "\"a>b\"@x.test", 12) == 0,
	    "quoted path: \"%.*s\"", (int)alen, a);
	fault_command_arg("MAIL FROM:<>", 12, &a, &alen);
	CHECK(alen == 0, "null path");
	fault_command_arg("EHLO  client.test ", 18, &a, &alen);
	CHECK(alen == 11 && memcmp(a, "client.test", 11) == 0, "ehlo arg");
	fault_command_arg("NOOP", 4, &a, &alen);
	CHECK(alen == 0, "no arg");
	CHECK(fault_target_of("RCPT") == FT_RCPT, "RCPT");
	CHECK(fault_target_of("STARTTLS") == FT_STARTTLS, "STARTTLS");
	CHECK(fault_target_of("") == -1 && fault_target_of("HELP") == -1,
	    "no target");
}

int
main(void)
{
	test_parse();
	test_match();
	if (failures != 0) {
		fprintf(stderr, "%d failure(s)\n", failures);
		return 1;
	}
	printf("fault rules: ok\n");
	return 0;
}
