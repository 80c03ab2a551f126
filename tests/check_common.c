/*
 * check_common.c - the fixture and main() the Check suites share.
 *
 * Interface in check_common.h.  main() runs the suite the file it is
 * linked with defines (check_suite()); the suite's directory is named
 * after the program (/tmp/check_queue.XXXXXX for tests/check_queue).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage.h"
#include "tests/check_common.h"

char tmp[128];
uid_t mail_uid;
gid_t mail_gid;
static char base[64];		/* the suite's directory, made by the runner */
static const char *prog = "check";	/* the program's name, for base */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st, (void)flag, (void)f;
	remove(p);
	return 0;
}

/* rm_rf - remove dir and everything below it, not following links */
void rm_rf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* suite_setup - unchecked: the suite's directory (runs once, in the runner) */
static void suite_setup(void)
{
	if (base[0])
		return;
	snprintf(base, sizeof base, "/tmp/%s.XXXXXX", prog);
	if (!mkdtemp(base) || chmod(base, 0755) < 0)
		abort();
}

static void suite_teardown(void)
{
	if (base[0])
		rm_rf(base);
	base[0] = '\0';
}

/* check_tcase - a test case of s with the suite's directory and setup/teardown */
TCase *check_tcase(Suite *s, const char *name, void (*setup)(void),
    void (*teardown)(void), int timeout)
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	if (setup || teardown)
		tcase_add_checked_fixture(tc, setup, teardown);
	if (timeout)
		tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}

/* check_add - the n tests to tc, in order */
void check_add(TCase *tc, const TTest *const *tests, size_t n)
{
	for (size_t i = 0; i < n; i++)
		tcase_add_test(tc, tests[i]);
}

/* check_test_dir - this test's directory (tmp, 0755) and the Maildir owner */
void check_test_dir(void)
{
	snprintf(tmp, sizeof tmp, "%s/t.XXXXXX", base);
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	ck_assert_int_eq(chmod(tmp, 0755), 0);
	mail_uid = getuid() == 0 ? 65534 : getuid();
	mail_gid = getuid() == 0 ? 65534 : getgid();
}

void check_test_rmdir(void)
{
	rm_rf(tmp);
}

/* check_quiet - smtpd's log lines (stderr) go nowhere unless SMTPD_TEST_LOG is set */
void check_quiet(void)
{
	if (!getenv("SMTPD_TEST_LOG"))
		dup2(open("/dev/null", O_WRONLY), 2);
}

/* P - tmp/rel, in one of four rotating buffers */
const char *P(const char *rel)
{
	static char buf[4][1024];
	static int slot;
	char *b = buf[slot++ & 3];

	snprintf(b, sizeof buf[0], "%s/%s", tmp, rel);
	return b;
}

/* count - entries of a directory without . and ..; the first one's name; -1 if none */
int count(const char *dir, char *first, size_t cap)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n++ == 0 && first)
			snprintf(first, cap, "%s", de->d_name);
	}
	closedir(d);
	return n;
}

/* slurp - the whole file, NUL-ended, malloc'd; its length into *len if len */
char *slurp(const char *path, size_t *len)
{
	struct stat st;
	char *b;
	int fd = open(path, O_RDONLY);

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(fstat(fd, &st), 0);
	b = malloc(st.st_size + 1);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(read(fd, b, st.st_size), st.st_size);
	b[st.st_size] = '\0';
	close(fd);
	if (len)
		*len = st.st_size;
	return b;
}

/* put_file - tmp/rel holds exactly text[0..len) */
void put_file(const char *rel, const char *text, size_t len)
{
	FILE *f = fopen(P(rel), "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

/* exists - tmp/rel is there (a dangling link counts) */
int exists(const char *rel)
{
	struct stat st;

	return lstat(P(rel), &st) == 0;
}

/* home - a directory for Maildir homes, owned by the mail user */
void home(const char *rel)
{
	ck_assert_int_eq(mkdir(P(rel), 0755), 0);
	ck_assert_int_eq(chown(P(rel), mail_uid, mail_gid), 0);
}

int main(int argc, char **argv)
{
	SRunner *sr;
	int failed;

	(void)argc;
	prog = basename(argv[0]);
	sr = srunner_create(check_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* ---- the storage fault seam ------------------------------------------- */

struct fault fault = { .max = (size_t)-1 };
const int fault_errs[3] = { ENOSPC, EDQUOT, EIO };

/* fault_arm - the nth call of kind op fails with err; counters from zero */
void fault_arm(int op, int nth, int err)
{
	fault.op = op, fault.nth = nth, fault.err = err;
	fault.hit = fault.dir = 0;
	fault.n_write = fault.n_fsync = fault.n_rename = fault.n_copy = 0;
}

/* fails - this call (the count-th of kind op) is the one to fail */
static int fails(int op, int count)
{
	if (count != fault.nth || fault.op != op)
		return 0;
	fault.hit = 1, errno = fault.err;
	return 1;
}

static ssize_t f_write(int fd, const void *b, size_t n)
{
	if (fails(OP_WRITE, ++fault.n_write))
		return -1;
	return write(fd, b, n < fault.max ? n : fault.max);
}

static ssize_t f_pwrite(int fd, const void *b, size_t n, off_t off)
{
	if (fails(OP_WRITE, ++fault.n_write))
		return -1;
	return pwrite(fd, b, n < fault.max ? n : fault.max, off);
}

static int f_fsync(int fd)
{
	struct stat st;

	if (fails(OP_FSYNC, ++fault.n_fsync)) {
		fault.dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
		return -1;
	}
	return fsync(fd);
}

static int f_renameat(int od, const char *o, int nd, const char *n)
{
	if (fails(OP_RENAME, ++fault.n_rename))
		return -1;
	return renameat(od, o, nd, n);
}

static ssize_t f_copy(int out, int in, off_t *off, size_t n)
{
	if (fails(OP_COPY, ++fault.n_copy))
		return -1;
	return sendfile(out, in, off, n);
}

const struct storage_ops fault_ops = { f_write, f_pwrite, f_fsync, f_renameat, NULL };
const struct storage_ops fault_copy_ops = { f_write, f_pwrite, f_fsync, f_renameat, f_copy };
