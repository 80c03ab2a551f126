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

#endif
