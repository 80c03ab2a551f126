/*
 * check_aliases.c - unit tests for aliases.c (Check): the parser's
 * FILE:LINE errors, comments and continuation lines, domain keys, and
 * expansion with its loop, depth and fan-out checks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aliases.h"
#include "config.h"
#include "tests/check_common.h"

static char err[ALIAS_ERR_MAX];

/* parse - a table from text, NULL with err set */
static struct alias_table *parse(const char *text)
{
	err[0] = '\0';
	return aliases_parse(text, strlen(text), "aliases", err, sizeof err);
}

/* parsed - a table from text that must parse */
static struct alias_table *parsed(const char *text)
{
	struct alias_table *t = parse(text);

	ck_assert_msg(t != NULL, "%s", err);
	return t;
}

/* expand1 - expand and join the leaves with ',' into buf; the count */
static int expand1(const struct alias_table *t, const char *local,
    const char *dom, char *buf, size_t cap)
{
	struct alias_leaf out[ALIAS_FANOUT];
	int i, n = aliases_expand(t, local, dom, out, ALIAS_FANOUT);

	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i)
			strncat(buf, ",", cap - strlen(buf) - 1);
		strncat(buf, out[i].local, cap - strlen(buf) - 1);
	}
	return n;
}

/* expands_to - local@dom expands to the leaves want lists, joined by ','
 * (want NULL: it is no alias) */
static void expands_to(const struct alias_table *t, const char *local, const char *dom,
    const char *want)
{
	char buf[256];
	int n = 1;

	if (want == NULL) {
		ck_assert_int_eq(expand1(t, local, dom, buf, sizeof buf), ALIAS_NONE);
		return;
	}
	for (const char *p = want; *p; p++)
		n += *p == ',';
	ck_assert_int_eq(expand1(t, local, dom, buf, sizeof buf), n);
	ck_assert_str_eq(buf, want);
}

static void setup(void)
{
	memset(&cfg, 0, sizeof cfg);
	strcpy(cfg.hostname, "mx.example.org");
	strcpy(cfg.local_domains, "example.org,example.net");
}

START_TEST(comments_and_continuations)
{
	struct alias_table *t = parsed(
	    "# role addresses\n"
	    "postmaster: root\n"
	    "root:  alice,   # the admin\n"
	    "\tbob\n"
	    "  , carol\n"
	    "\n"
	    "abuse : postmaster\n");

	ck_assert_uint_eq(aliases_count(t), 3);
	expands_to(t, "root", "", "alice,bob,carol");
	expands_to(t, "ABUSE", "example.org", "alice,bob,carol");
	expands_to(t, "alice", "", NULL);
	aliases_free(t);
}
END_TEST

START_TEST(domain_keys)
{
	struct alias_table *t = parsed(
	    "sales@example.org: alice\n"
	    "sales: bob\n"
	    "info@example.net: sales@example.org, carol@example.net\n");

	expands_to(t, "sales", "example.org", "alice");
	expands_to(t, "sales", "example.net", "bob");
	expands_to(t, "Info", "EXAMPLE.NET", "alice,carol");
	expands_to(t, "info", "example.org", NULL);
	aliases_free(t);
}
END_TEST

START_TEST(recursion_dedupe_self)
{
	struct alias_table *t = parsed(
	    "a: b, c\nb: c, d\nc: Dave\nd: dave, eve\nalice: alice, bob\n");

	expands_to(t, "a", "", "dave,eve");
	expands_to(t, "alice", "", "alice,bob");
	aliases_free(t);
}
END_TEST

START_TEST(loop_and_depth)
{
	char buf[256];
	struct alias_table *t = parsed("x: y\ny: z\nz: x\n"
	    "l0: l1\nl1: l2\nl2: l3\nl3: l4\nl4: l5\nl5: l6\nl6: l7\nl7: l8\n"
	    "l8: l9\nl9: user\n");

	ck_assert_int_eq(expand1(t, "x", "", buf, sizeof buf), ALIAS_LOOP);
	ck_assert_int_eq(expand1(t, "l0", "", buf, sizeof buf), ALIAS_DEEP);
	ck_assert_int_eq(expand1(t, "l3", "", buf, sizeof buf), 1);
	aliases_free(t);
}
END_TEST

START_TEST(fanout)
{
	char text[8192] = "big: ";
	char buf[4096];
	struct alias_leaf out[3];
	struct alias_table *t;
	int i;

	for (i = 0; i < 90; i++)
		snprintf(text + strlen(text), sizeof text - strlen(text), "u%d,", i);
	strcat(text, "last\n");
	t = parsed(text);
	ck_assert_int_eq(expand1(t, "big", "", buf, sizeof buf), 91);
	ck_assert_int_eq(aliases_expand(t, "big", "", out, 3), ALIAS_WIDE);
	aliases_free(t);
}
END_TEST

/* refused lines and the FILE:LINE each must name */
static const struct { const char *text, *err; } bad[] = {
	{ "a: b\nroot: |/usr/bin/prog\n", "aliases:2: program targets" },
	{ "a: b,\n  \"|/bin/sh\"\n", "aliases:1: quoted targets" },
	{ "# x\n\nlist: :include:/etc/list\n", "aliases:3: :include: is refused" },
	{ "log: /var/log/mail\n", "aliases:1: file targets" },
	{ "r: someone@elsewhere.example\n", "aliases:1: remote target refused" },
	{ "r: a,,b\n", "aliases:1: empty target" },
	{ "r: a,\n", "aliases:1: empty target" },
	{ "  r: a\n", "aliases:1: continuation line without" },
	{ "r a\n", "aliases:1: no ':'" },
	{ "a: b\nx\"y: b\n", "aliases:2: name holds" },
	{ "a: b\nb: c\na: d\n", "aliases:3: duplicate alias a (first at line 1)" },
	{ "A: b\na: c\n", "aliases:2: duplicate alias a" },
	{ "a@elsewhere.example: b\n", "aliases:1: key domain is not in local_domains" },
	{ "a: b\x01\n", "aliases:1: control character" },
	{ "a: b\0c\n", "aliases:1: control character" },
};

START_TEST(refused)
{
	size_t len = strlen(bad[_i].text);
	struct alias_table *t;

	if (_i == N(bad) - 1)
		len = 7;
	t = aliases_parse(bad[_i].text, len, "aliases", err, sizeof err);
	ck_assert_ptr_null(t);
	ck_assert_msg(strncmp(err, bad[_i].err, strlen(bad[_i].err)) == 0,
	    "got '%s', want '%s'", err, bad[_i].err);
}
END_TEST

START_TEST(long_entry)
{
	char *text = malloc(ALIAS_LINE_MAX + 64);
	struct alias_table *t;

	strcpy(text, "a: ");
	memset(text + 3, 'b', ALIAS_LINE_MAX);
	strcpy(text + 3 + ALIAS_LINE_MAX, "\n");
	t = parse(text);
	ck_assert_ptr_null(t);
	ck_assert_msg(strstr(err, "aliases:1:") != NULL, "%s", err);
	free(text);
}
END_TEST

START_TEST(empty_file)
{
	struct alias_table *t = parse("# nothing\n\n");

	ck_assert_ptr_nonnull(t);
	ck_assert_uint_eq(aliases_count(t), 0);
	ck_assert_int_eq(aliases_expand(t, "x", "", NULL, 0), ALIAS_NONE);
	aliases_free(t);
}
END_TEST

START_TEST(no_newline_at_end)
{
	struct alias_table *t = parsed("hostmaster: alice");

	expands_to(t, "hostmaster", "", "alice");
	aliases_free(t);
}
END_TEST

Suite *check_suite(void)
{
	Suite *s = suite_create("aliases");
	TCase *tc = check_tcase(s, "parse", setup, NULL, 0);
	const TTest *tests[] = { comments_and_continuations, domain_keys, recursion_dedupe_self,
	    loop_and_depth, fanout, long_entry, empty_file, no_newline_at_end };

	check_add(tc, tests, N(tests));
	tcase_add_loop_test(tc, refused, 0, N(bad));
	return s;
}
