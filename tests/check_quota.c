/*
 * check_quota.c - unit tests for quota.c (Check): maildirsize parsing,
 * the full/over decisions, and appends.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quota.h"

static char dir[64];

static void setup(void)
{
	strcpy(dir, "/tmp/check_quota.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	char p[128];

	snprintf(p, sizeof p, "%s/maildirsize", dir);
	unlink(p);
	rmdir(dir);
}

/* put_file - write maildirsize */
static void put_file(const char *text)
{
	char p[128];
	FILE *f;

	snprintf(p, sizeof p, "%s/maildirsize", dir);
	ck_assert_ptr_nonnull(f = fopen(p, "w"));
	fputs(text, f);
	fclose(f);
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

	ck_assert_int_eq(quota_read(dir, &q), QUOTA_NONE);
	ck_assert_int_eq(quota_add(dir, 10, 1), 0);	/* no file: nothing to do */
	ck_assert_int_eq(quota_read(dir, &q), QUOTA_NONE);
	put_file("2048S\n1000 1\n");
	ck_assert_int_eq(quota_read(dir, &q), QUOTA_OK);
	ck_assert_int_eq(q.bytes, 1000);
	ck_assert_int_eq(quota_add(dir, 1100, 1), 0);
	ck_assert_int_eq(quota_read(dir, &q), QUOTA_OK);
	ck_assert_int_eq(q.bytes, 2100);
	ck_assert_int_eq(q.count, 2);
	ck_assert_int_eq(quota_check(&q, 0), QUOTA_FULL);
	put_file("2048S\n1000 1\n12");	/* being written: not judged */
	ck_assert_int_eq(quota_read(dir, &q), QUOTA_NONE);
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
	put_file(big);
	ck_assert_int_eq(quota_read(dir, &q), QUOTA_NONE);
	free(big);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("quota");
	TCase *tc = tcase_create("maildirsize");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, parse_forms);
	tcase_add_test(tc, parse_bad);
	tcase_add_test(tc, check_levels);
	tcase_add_test(tc, read_and_add);
	tcase_add_test(tc, stale_big_file);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
