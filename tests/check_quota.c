/*
 * check_quota.c - unit tests for quota.c (Check): maildirsize parsing,
 * the full/over decisions, and appends.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quota.h"
#include "tests/check_common.h"

/* maildirsize - the test directory's maildirsize holds text */
static void maildirsize(const char *text)
{
	put_file("maildirsize", text, strlen(text));
}

START_TEST(parse_forms)
{
	struct quota q;
	const char *t = "1000S,10C\n  200   2\n-50 -1\n\n300 1\n";

	ck_assert_int_eq(quota_parse(t, strlen(t), &q), 0);
	ck_assert_int_eq(q.max_bytes, 1000);
	ck_assert_int_eq(q.max_count, 10);
	ck_assert_int_eq(q.bytes, 450);
	ck_assert_int_eq(q.count, 2);
	t = "5C,77S\n";
	ck_assert_int_eq(quota_parse(t, strlen(t), &q), 0);
	ck_assert_int_eq(q.max_bytes, 77);
	ck_assert_int_eq(q.max_count, 5);
	t = "\n1 1\n";	/* no limits at all */
	ck_assert_int_eq(quota_parse(t, strlen(t), &q), 0);
	ck_assert_int_eq(q.max_bytes, 0);
}
END_TEST

START_TEST(parse_bad)
{
	static const char *bad[] = { "", "1000X\n", "100S\nabc 1\n",
	    "100S\n1\n", "100S\n1 2 3\n", "100S\n5 5", "-5S\n",
	    "100S\n99999999999999999999 1\n" };
	struct quota q;
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(quota_parse(bad[i], strlen(bad[i]), &q) < 0, "%s", bad[i]);
}
END_TEST

START_TEST(check_levels)
{
	struct quota q = { 1000, 0, 900, 3 };

	ck_assert_int_eq(quota_check(&q, 100), QUOTA_OK);
	ck_assert_int_eq(quota_check(&q, 101), QUOTA_OVER);
	q.bytes = 1000;
	ck_assert_int_eq(quota_check(&q, 0), QUOTA_FULL);
	q.bytes = 0, q.max_count = 3;
	ck_assert_int_eq(quota_check(&q, 0), QUOTA_FULL);
}
END_TEST

START_TEST(read_and_add)
{
	struct quota q;

	ck_assert_int_eq(quota_read(tmp, &q), QUOTA_NONE);
	ck_assert_int_eq(quota_add(tmp, 10, 1), 0);	/* no file: nothing to do */
	ck_assert_int_eq(quota_read(tmp, &q), QUOTA_NONE);
	maildirsize("2048S\n1000 1\n");
	ck_assert_int_eq(quota_read(tmp, &q), QUOTA_OK);
	ck_assert_int_eq(q.bytes, 1000);
	ck_assert_int_eq(quota_add(tmp, 1100, 1), 0);
	ck_assert_int_eq(quota_read(tmp, &q), QUOTA_OK);
	ck_assert_int_eq(q.bytes, 2100);
	ck_assert_int_eq(q.count, 2);
	ck_assert_int_eq(quota_check(&q, 0), QUOTA_FULL);
	maildirsize("2048S\n1000 1\n12");	/* being written: not judged */
	ck_assert_int_eq(quota_read(tmp, &q), QUOTA_NONE);
}
END_TEST

START_TEST(stale_big_file)
{
	char *big = malloc(QUOTA_FILE_MAX + 100);
	struct quota q;
	size_t n = 0;

	n += sprintf(big, "100S\n");
	while (n < QUOTA_FILE_MAX + 10)
		n += sprintf(big + n, "1 1\n");
	maildirsize(big);
	ck_assert_int_eq(quota_read(tmp, &q), QUOTA_NONE);
	free(big);
}
END_TEST

Suite *check_suite(void)
{
	Suite *s = suite_create("quota");
	TCase *tc = check_tcase(s, "maildirsize", check_test_dir, check_test_rmdir, 0);
	const TTest *tests[] = { parse_forms, parse_bad, check_levels, read_and_add, stale_big_file };

	check_add(tc, tests, N(tests));
	return s;
}
