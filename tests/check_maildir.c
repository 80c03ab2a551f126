/*
 * check_maildir.c - unit tests for maildir.c (Check).
 *
 *   make tests/check_maildir && ./tests/check_maildir
 *
 * Each test gets its own directory below the suite's mkdtemp directory
 * in /tmp; an unchecked fixture (run by the runner, not the forked test)
 * removes it, so failed tests leave nothing behind.  Storage faults go
 * through storage_set_ops().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "maildir.h"
#include "storage.h"
#include "tests/check_common.h"

#define HEAD	"Return-Path: <s@example.org>\nDelivered-To: u@example.test\n"

/* ---- helpers ----------------------------------------------------------- */

static void teardown(void)
{
	storage_set_ops(NULL);
	check_test_rmdir();
}

/* a spool file holding data[0..len), open for reading */
static int spool(const void *data, size_t len)
{
	int fd = open(P("spool"), O_RDWR | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	return fd;
}

static struct maildir_msg msg(int fd, off_t off, off_t len, unsigned long seq)
{
	struct maildir_msg m = { 0 };	/* no tag */

	m.head = HEAD, m.headlen = strlen(HEAD);
	m.srcfd = fd, m.srcoff = off, m.srclen = len, m.seq = seq;
	return m;
}

/* name is "SECS.MusecPpidQseq.HOST,S=SIZE" with SECS in [t0, t1] */
static void check_name(const char *name, const char *host, unsigned long seq,
    long long size, time_t t0, time_t t1)
{
	long long secs;
	long pid;
	unsigned long q;
	char usec[8], want[300];
	int end = -1;

	ck_assert_msg(sscanf(name, "%lld.M%7[0-9]P%ldQ%lu.%n", &secs, usec, &pid,
	    &q, &end) == 4 && end > 0, "name %s: not SECS.MusecPpidQseq.", name);
	ck_assert_msg(strlen(usec) == 6, "name %s: usec not 6 digits", name);
	ck_assert_msg(secs >= t0 && secs <= t1, "name %s: time not in [%lld,%lld]",
	    name, (long long)t0, (long long)t1);
	ck_assert_int_eq(pid, getpid());
	ck_assert_uint_eq(q, seq);
	snprintf(want, sizeof want, "%s,S=%lld", host, size);
	ck_assert_str_eq(name + end, want);
}

/* now - the clock Maildir names use (gettimeofday); time() reads a coarser
 * clock that can still say the previous second */
static time_t now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return tv.tv_sec;
}

/* ---- delivery ---------------------------------------------------------- */

START_TEST(test_creates_maildir)
{
	static const char *const sub[] = { "Maildir", "Maildir/tmp", "Maildir/new",
	    "Maildir/cur" };
	const char *src = "XXXXHello, world\n\xe9\xff 8-bit\nYYYY";
	char name[MAILDIR_NAME_MAX], first[300], *got;
	struct maildir_msg m = msg(spool(src, strlen(src)), 4, strlen(src) - 8, 42);
	struct stat st;
	time_t t0 = now(), t1;
	size_t len, i;

	ck_assert_int_eq(maildir_deliver(P("Maildir"), &m, "mx.test", name, sizeof name), 0);
	t1 = now();
	for (i = 0; i < N(sub); i++) {
		ck_assert_msg(lstat(P(sub[i]), &st) == 0 && S_ISDIR(st.st_mode),
		    "%s is not a directory", sub[i]);
		ck_assert_msg((st.st_mode & 07777) == 0700, "%s mode %o, want 700",
		    sub[i], (unsigned)(st.st_mode & 07777));
	}
	ck_assert_int_eq(count(P("Maildir/tmp"), NULL, 0), 0);
	ck_assert_int_eq(count(P("Maildir/cur"), NULL, 0), 0);
	ck_assert_int_eq(count(P("Maildir/new"), first, sizeof first), 1);
	ck_assert_str_eq(first, name);
	snprintf(first, sizeof first, "Maildir/new/%s", name);
	ck_assert_int_eq(lstat(P(first), &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	got = slurp(P(first), &len);
	ck_assert_uint_eq(len, strlen(HEAD) + strlen(src) - 8);
	ck_assert_str_eq(got, HEAD "Hello, world\n\xe9\xff 8-bit\n");
	check_name(name, "mx.test", 42, st.st_size, t0, t1);
	free(got);
	close(m.srcfd);
}
END_TEST

/* a slice of a large spool with every octet value, across many buffers */
START_TEST(test_large_slice_exact)
{
	size_t total = 300000, off = 70001, n = 200000, len, i;
	unsigned char *src = malloc(total);
	char name[MAILDIR_NAME_MAX], path[400], *got;
	struct maildir_msg m;

	ck_assert_ptr_nonnull(src);
	for (i = 0; i < total; i++)
		src[i] = (unsigned char)(i * 7 + i / 256);
	m = msg(spool(src, total), off, n, 1);
	ck_assert_int_eq(maildir_deliver(P("Maildir"), &m, "mx.test", name, sizeof name), 0);
	snprintf(path, sizeof path, "Maildir/new/%s", name);
	got = slurp(P(path), &len);
	ck_assert_uint_eq(len, strlen(HEAD) + n);
	ck_assert(memcmp(got, HEAD, strlen(HEAD)) == 0);
	ck_assert_msg(memcmp(got + strlen(HEAD), src + off, n) == 0,
	    "body differs from spool bytes [%zu, %zu)", off, off + n);
	check_name(name, "mx.test", 1, (long long)len, 0, now());
	free(got);
	free(src);
	close(m.srcfd);
}
END_TEST

START_TEST(test_empty_slice)
{
	char name[MAILDIR_NAME_MAX], path[400], *got;
	struct maildir_msg m = msg(spool("abc", 3), 3, 0, 2);
	size_t len;

	ck_assert_int_eq(maildir_deliver(P("Maildir"), &m, "mx.test", name, sizeof name), 0);
	snprintf(path, sizeof path, "Maildir/new/%s", name);
	got = slurp(P(path), &len);
	ck_assert_str_eq(got, HEAD);
	check_name(name, "mx.test", 2, (long long)strlen(HEAD), 0, now());
	free(got);
	close(m.srcfd);
}
END_TEST

/* a spool shorter than promised is never delivered short */
START_TEST(test_short_spool_refused)
{
	char name[MAILDIR_NAME_MAX];
	struct maildir_msg m = msg(spool("0123456789", 10), 4, 100, 3);

	ck_assert_int_ne(maildir_deliver(P("Maildir"), &m, "mx.test", name, sizeof name), 0);
	ck_assert_int_eq(count(P("Maildir/new"), NULL, 0), 0);
	ck_assert_int_eq(count(P("Maildir/tmp"), NULL, 0), 0);
	close(m.srcfd);
}
END_TEST

/* two processes, same seq numbers, same second: every name distinct */
START_TEST(test_unique_names)
{
	enum { PER = 150 };
	static char names[PER][MAILDIR_NAME_MAX];
	char name[MAILDIR_NAME_MAX];
	struct maildir_msg m = msg(spool("body\n", 5), 0, 5, 0);
	unsigned long i, j;
	int status, bad = 0;
	pid_t kid;

	ck_assert_int_eq(maildir_deliver(P("Maildir"), &m, "mx.test", name, sizeof name), 0);
	kid = fork();
	ck_assert_int_ge(kid, 0);
	for (i = 0; i < PER; i++) {
		m.seq = i + 1;
		if (maildir_deliver(P("Maildir"), &m, "mx.test", kid ? names[i] : name,
		    MAILDIR_NAME_MAX) != 0)
			bad++;
	}
	if (kid == 0)
		_exit(bad);
	ck_assert_int_eq(waitpid(kid, &status, 0), kid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "child's deliveries failed");
	ck_assert_int_eq(bad, 0);
	for (i = 0; i < PER; i++)
		for (j = i + 1; j < PER; j++)
			if (strcmp(names[i], names[j]) == 0)
				ck_abort_msg("name %s twice", names[i]);
	/* the first delivery plus both processes' messages, none overwritten */
	ck_assert_int_eq(count(P("Maildir/new"), NULL, 0), 1 + 2 * PER);
	ck_assert_int_eq(count(P("Maildir/tmp"), NULL, 0), 0);
	close(m.srcfd);
}
END_TEST

/* '/' and ':' in the host name are encoded as \057 and \072 */
static const struct { const char *host, *enc; } hosts[] = {
	{ "mx.test", "mx.test" },
	{ "a/b:c", "a\\057b\\072c" },
	{ "::/", "\\072\\072\\057" },
	{ "x.y:25", "x.y\\07225" },
};

START_TEST(test_host_encoding)
{
	char name[MAILDIR_NAME_MAX], path[400];
	struct maildir_msg m = msg(spool("hi\n", 3), 0, 3, 9);
	struct stat st;

	ck_assert_int_eq(maildir_deliver(P("Maildir"), &m, hosts[_i].host, name,
	    sizeof name), 0);
	ck_assert_msg(strchr(name, '/') == NULL && strchr(name, ':') == NULL,
	    "name %s holds / or :", name);
	snprintf(path, sizeof path, "Maildir/new/%s", name);
	ck_assert_int_eq(stat(P(path), &st), 0);
	check_name(name, hosts[_i].enc, 9, st.st_size, 0, now());
	close(m.srcfd);
}
END_TEST

/* ---- symlinks ---------------------------------------------------------- */

static const struct {
	const char *link;	/* what is a symlink to tmp/elsewhere */
	const char *dirs;	/* real directories made first */
} links[] = {
	{ "Maildir", "" },
	{ "Maildir/tmp", "Maildir Maildir/new Maildir/cur" },
	{ "Maildir/new", "Maildir Maildir/tmp Maildir/cur" },
	{ "Maildir/tmp", "Maildir" },	/* planted before the first delivery */
	{ "Maildir/new", "Maildir" },
};

/* a tagged copy carries the tag in its name; has_tag finds it in new/ and cur/ */
START_TEST(test_tag)
{
	struct maildir_msg m = msg(spool("hi\n", 3), 0, 3, 5);
	char name[MAILDIR_NAME_MAX], from[400], to[400];

	m.tag = "6B0Ap1s2-0123456789abcdef";
	ck_assert_int_eq(maildir_deliver(P("Maildir"), &m, "mx.test", name, sizeof name), 0);
	ck_assert_ptr_nonnull(strstr(name, "_6B0Ap1s2-0123456789abcdef.mx.test,S="));
	ck_assert_int_eq(maildir_has_tag(P("Maildir"), m.tag), 1);
	ck_assert_int_eq(maildir_has_tag(P("Maildir"), "6B0Ap1s2-fedcba9876543210"), 0);
	snprintf(from, sizeof from, "%s/new/%s", P("Maildir"), name);
	snprintf(to, sizeof to, "%s/cur/%s:2,S", P("Maildir"), name);
	ck_assert_int_eq(rename(from, to), 0);	/* a reader moved it */
	ck_assert_int_eq(maildir_has_tag(P("Maildir"), m.tag), 1);
}
END_TEST

START_TEST(test_symlink_refused)
{
	char dirs[128], *d, *save = NULL, name[MAILDIR_NAME_MAX];
	struct maildir_msg m = msg(spool("evil\n", 5), 0, 5, 1);
	struct stat st;
	int r;

	snprintf(dirs, sizeof dirs, "%s", links[_i].dirs);
	for (d = strtok_r(dirs, " ", &save); d; d = strtok_r(NULL, " ", &save))
		ck_assert_int_eq(mkdir(P(d), 0700), 0);
	ck_assert_int_eq(mkdir(P("elsewhere"), 0700), 0);
	ck_assert_int_eq(symlink(P("elsewhere"), P(links[_i].link)), 0);
	r = maildir_deliver(P("Maildir"), &m, "mx.test", name, sizeof name);
	ck_assert_msg(r == ELOOP, "symlink %s (dirs: %s): got %d (%s), want ELOOP",
	    links[_i].link, links[_i].dirs[0] ? links[_i].dirs : "none", r, strerror(r));
	ck_assert_msg(count(P("elsewhere"), name, sizeof name) == 0,
	    "%s written through the link", name);
	ck_assert_int_eq(lstat(P(links[_i].link), &st), 0);
	ck_assert(S_ISLNK(st.st_mode));
	if (lstat(P("Maildir/new"), &st) == 0 && S_ISDIR(st.st_mode))
		ck_assert_int_eq(count(P("Maildir/new"), NULL, 0), 0);
	if (lstat(P("Maildir/tmp"), &st) == 0 && S_ISDIR(st.st_mode))
		ck_assert_int_eq(count(P("Maildir/tmp"), NULL, 0), 0);
	close(m.srcfd);
}
END_TEST

/* a dangling symlink as the Maildir: its target is never created */
START_TEST(test_dangling_symlink)
{
	char name[MAILDIR_NAME_MAX];
	struct maildir_msg m = msg(spool("evil\n", 5), 0, 5, 1);
	struct stat st;

	ck_assert_int_eq(symlink(P("target"), P("Maildir")), 0);
	ck_assert_int_eq(maildir_deliver(P("Maildir"), &m, "mx.test", name, sizeof name),
	    ELOOP);
	ck_assert_int_ne(lstat(P("target"), &st), 0);
	close(m.srcfd);
}
END_TEST

/* ---- storage faults through the seam ----------------------------------- */

static const struct fault_step faults[] = {
	{ OP_WRITE, 1, "write of the head" },
	{ OP_WRITE, 2, "write of the body (after the head)" },
	{ OP_FSYNC, 1, "fsync of the file" },
	{ OP_FSYNC, 2, "fsync of new/" },
	{ OP_RENAME, 1, "renameat tmp -> new" },
};

#define BIG 150000	/* a body past the first 48 KiB: sendfile's part too */

/* big_msg - BIG octets of a-z in a spool file, as message seq; *src the text */
static struct maildir_msg big_msg(unsigned long seq, char **src)
{
	size_t i;

	*src = malloc(BIG);
	ck_assert_ptr_nonnull(*src);
	for (i = 0; i < BIG; i++)
		(*src)[i] = 'a' + i % 26;
	return msg(spool(*src, BIG), 0, BIG, seq);
}

START_TEST(test_storage_fault)
{
	size_t which = _i / N(fault_errs);
	char *src, name[MAILDIR_NAME_MAX];
	struct maildir_msg m = big_msg(5, &src);
	int r;

	fault_arm(faults[which].op, faults[which].nth, fault_errs[_i % N(fault_errs)]);
	storage_set_ops(&fault_ops);
	r = maildir_deliver(P("Maildir"), &m, "mx.test", name, sizeof name);
	storage_set_ops(NULL);
	ck_assert_msg(fault.hit, "fault at %s never reached", faults[which].what);
	ck_assert_msg(r == fault.err, "%s failing with %s: got %d (%s)",
	    faults[which].what, strerror(fault.err), r, strerror(r));
	if (fault.op == OP_FSYNC)
		ck_assert_msg(fault.dir == (fault.nth == 2), "fsync #%d %s a directory",
		    fault.nth, fault.dir ? "was" : "was not");
	ck_assert_int_eq(count(P("Maildir/new"), name, sizeof name), 0);
	ck_assert_int_eq(count(P("Maildir/tmp"), name, sizeof name), 0);
	/* the real calls are back: the same message now goes through */
	ck_assert_int_eq(maildir_deliver(P("Maildir"), &m, "mx.test", name, sizeof name), 0);
	ck_assert_int_eq(count(P("Maildir/new"), NULL, 0), 1);
	free(src);
	close(m.srcfd);
}
END_TEST

/* a big body goes by sendfile past the first 48 KiB: a failing copy is
 * the delivery's error and leaves nothing; a kernel that refuses the copy
 * at once (EINVAL) means the body is written instead, octet-exact */
START_TEST(test_copy_fault)
{
	const int errs[] = { ENOSPC, EDQUOT, EIO, EINVAL };
	size_t len;
	char *src, *got, name[MAILDIR_NAME_MAX], path[400];
	struct maildir_msg m = big_msg(7, &src);
	int r;

	fault_arm(OP_COPY, 1, errs[_i]);
	storage_set_ops(&fault_copy_ops);
	r = maildir_deliver(P("Maildir"), &m, "mx.test", name, sizeof name);
	storage_set_ops(NULL);
	ck_assert_msg(fault.hit, "the copy was never tried");
	ck_assert_int_eq(count(P("Maildir/tmp"), NULL, 0), 0);
	if (errs[_i] != EINVAL) {
		ck_assert_int_eq(r, errs[_i]);
		ck_assert_int_eq(count(P("Maildir/new"), NULL, 0), 0);
	} else {
		ck_assert_int_eq(r, 0);
		snprintf(path, sizeof path, "Maildir/new/%s", name);
		got = slurp(P(path), &len);
		ck_assert_uint_eq(len, strlen(HEAD) + BIG);
		ck_assert(memcmp(got, HEAD, strlen(HEAD)) == 0);
		ck_assert(memcmp(got + strlen(HEAD), src, BIG) == 0);
		free(got);
	}
	free(src);
	close(m.srcfd);
}
END_TEST

/* short writes are resumed; a write that returns 0 is an error */
START_TEST(test_short_writes)
{
	const char *src = "line one\nline two is longer\n";
	char name[MAILDIR_NAME_MAX], path[400], *got;
	struct maildir_msg m = msg(spool(src, strlen(src)), 0, strlen(src), 6);
	size_t len;

	fault_arm(OP_WRITE, 0, 0);	/* no call fails; writes are capped */
	fault.max = 3;
	storage_set_ops(&fault_ops);
	ck_assert_int_eq(maildir_deliver(P("Maildir"), &m, "mx.test", name, sizeof name), 0);
	snprintf(path, sizeof path, "Maildir/new/%s", name);
	got = slurp(P(path), &len);
	ck_assert_str_eq(got, HEAD "line one\nline two is longer\n");
	free(got);
	ck_assert_int_eq(unlink(P(path)), 0);
	fault.max = 0;	/* every write now "succeeds" with 0 octets */
	ck_assert_int_ne(maildir_deliver(P("Maildir"), &m, "mx.test", name, sizeof name), 0);
	storage_set_ops(NULL);
	fault.max = (size_t)-1;
	ck_assert_int_eq(count(P("Maildir/new"), NULL, 0), 0);
	ck_assert_int_eq(count(P("Maildir/tmp"), NULL, 0), 0);
	close(m.srcfd);
}
END_TEST

Suite *check_suite(void)
{
	const TTest *tests[] = { test_creates_maildir, test_large_slice_exact, test_empty_slice,
	    test_short_spool_refused, test_unique_names, test_tag, test_dangling_symlink,
	    test_short_writes };
	Suite *s = suite_create("maildir");
	TCase *tc = check_tcase(s, "deliver", check_test_dir, teardown, 30);

	check_add(tc, tests, N(tests));
	tcase_add_loop_test(tc, test_host_encoding, 0, N(hosts));
	tcase_add_loop_test(tc, test_symlink_refused, 0, N(links));
	tcase_add_loop_test(tc, test_storage_fault, 0, N(faults) * N(fault_errs));
	tcase_add_loop_test(tc, test_copy_fault, 0, 4);
	return s;
}

