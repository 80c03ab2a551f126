/*
 * check_common.h - the fixture the Check suites share (tests/check_*.c).
 *
 * Each suite file defines check_suite(); check_common.c holds main(),
 * which runs it (the binary exits 1 when a test failed).  A suite's
 * directory is made below /tmp by an unchecked fixture (it runs in the
 * runner, so it also cleans up after failed tests); each test gets its
 * own directory `tmp` below it, 0755, and P("rel") names files there.
 * As root the Maildir homes belong to 65534 (the deliverer writes as that
 * uid); otherwise everything is ours.
 */
#ifndef CHECK_COMMON_H
#define CHECK_COMMON_H

#include <check.h>
#include <stddef.h>
#include <sys/types.h>

#define N(a)	(sizeof(a) / sizeof((a)[0]))

extern char tmp[128];		/* this test's directory */
extern uid_t mail_uid;		/* owner of Maildir homes */
extern gid_t mail_gid;

Suite *check_suite(void);	/* defined by each suite file */

TCase *check_tcase(Suite *s, const char *name, void (*setup)(void),
    void (*teardown)(void), int timeout);
void check_add(TCase *tc, const TTest *const *tests, size_t n);
void check_test_dir(void);
void check_test_rmdir(void);
void check_quiet(void);
void rm_rf(const char *dir);
const char *P(const char *rel);
int count(const char *dir, char *first, size_t cap);
char *slurp(const char *path, size_t *len);
void put_file(const char *rel, const char *text, size_t len);
int exists(const char *rel);
void home(const char *rel);

/*
 * The storage fault seam (storage.h): fault_ops fails the nth call of one
 * kind (write and pwrite count as one kind, fsync, renameat; copy in
 * fault_copy_ops) with fault.err; fault_arm() sets it up and
 * zeroes the counters.  fault.dir: the failed fsync was of a directory;
 * fault.max caps one write's length (0: every write "succeeds" with 0).
 */
struct storage_ops;
enum { OP_WRITE, OP_FSYNC, OP_RENAME, OP_COPY };
struct fault {
	int op, nth, err;	/* which call fails, and how */
	int hit, dir;		/* it did; it was an fsync of a directory */
	int n_write, n_fsync, n_rename, n_copy;	/* calls seen so far */
	size_t max;		/* cap on one write's length */
};
extern struct fault fault;
struct fault_step { int op, nth; const char *what; };	/* a step to fail */
extern const int fault_errs[3];		/* ENOSPC, EDQUOT, EIO */
extern const struct storage_ops fault_ops;	/* no copy: every octet by write */
extern const struct storage_ops fault_copy_ops;	/* with copy (sendfile) */
void fault_arm(int op, int nth, int err);

#endif
