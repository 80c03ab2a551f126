/*
 * fuzz/common.c - a throw-away mail system for fuzz_session and
 * fuzz_envelope: a temp directory (on /dev/shm when there is one, so the
 * fsyncs cost nothing) holding spool/, the virtual user alice's Maildir
 * and the users file; cfg pointing at them; a real deliverer on demand.
 * A second virtual user, bob, can never be delivered to (temporary
 * failure), so alice + bob in one transaction queues the message.
 *
 * Product log lines go to stderr; we point the stdio `stderr` (glibc: a
 * plain variable) at /dev/null.  Descriptor 2 stays open, so libFuzzer's
 * stats, the sanitizer reports and CHECK failures are still seen.
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

/*
 * An account that owns nothing.  With cfg.uid set to it, users.c refuses
 * every passwd entry (root or not), so no input can make the deliverer
 * write into a real user's Maildir, and the deliverer writes as whoever
 * runs the fuzzer, with no seteuid.  Only the virtual users receive mail.
 */
#define NO_UID	4242424

char fuzz_spool[300];
static char top[200], maildir[300];
static pid_t owner;
static int lowest;			/* see fuzz_before */

/* rm_one - nftw callback: remove whatever is there */
static int rm_one(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

/* cleanup - at exit, remove the temp directory (not from a deliverer) */
static void cleanup(void)
{
	if (getpid() == owner)
		nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* empty_dir - remove the files in dir */
static void empty_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}

/* fuzz_setup - the test bed and cfg; once, from LLVMFuzzerInitialize */
void fuzz_setup(void)
{
	char users[300], vu[400], sd[400];
	char *set[] = {
		vu, sd, "log=stderr", "local_domains=example.test",
		"hostname=mx.test", "cmd_timeout=1", "data_timeout=1",
		"size_limit=65536", "postmaster=alice",
		"spool_memory=4096",	/* memfd spool, and the move to spool/ID */
	};
	char *argv[1 + 2 * sizeof set / sizeof set[0] + 1];
	const char *base = getenv("TMPDIR");
	int argc = 0, mode;
	size_t i;
	FILE *f;

	if (!base)
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(top, sizeof top, "%s/smtpd-fuzz-XXXXXX", base);
	CHECK(mkdtemp(top) != NULL);
	owner = getpid();
	atexit(cleanup);
	snprintf(fuzz_spool, sizeof fuzz_spool, "%s/spool", top);
	snprintf(maildir, sizeof maildir, "%s/Maildir", top);
	snprintf(users, sizeof users, "%s/users", top);
	CHECK(mkdir(fuzz_spool, 0700) == 0);
	CHECK((f = fopen(users, "w")) != NULL);
	fprintf(f, "alice:%d:%d:%s\n", NO_UID, NO_UID, maildir);
	fprintf(f, "bob:%d:%d:/dev/null/Maildir\n", NO_UID, NO_UID); /* always 4xx */
	CHECK(fclose(f) == 0);

	snprintf(vu, sizeof vu, "virtual_users=%s", users);
	snprintf(sd, sizeof sd, "spool_dir=%s", fuzz_spool);
	argv[argc++] = "smtpd";
	for (i = 0; i < sizeof set / sizeof set[0]; i++) {
		argv[argc++] = "-o";
		argv[argc++] = set[i];
	}
	argv[argc] = NULL;
	optind = 0;				/* glibc: a full getopt reset */
	CHECK(config_load(argc, argv, &mode) == 0);
	cfg.uid = NO_UID;
	stderr = fopen("/dev/null", "w");	/* product logs: see above */
	CHECK(stderr != NULL);
}

/* fuzz_deliverer - start a real deliverer (before any fuzzing thread) */
void fuzz_deliverer(struct deliverer *d)
{
	CHECK(deliverer_start(d, 2) == 0);
}

/* spool_check - envelopes are queued mail; any other file is a leak */
static void spool_check(void)
{
	char env[sizeof fuzz_spool + 300];
	DIR *d = opendir(fuzz_spool);
	struct dirent *de;

	CHECK(d != NULL);
	while ((de = readdir(d)) != NULL) {
		const char *dot = strchr(de->d_name, '.');

		if (de->d_name[0] == '.' || (dot && strcmp(dot, ".env") == 0))
			continue;
		snprintf(env, sizeof env, "%s/%s.env", fuzz_spool, de->d_name);
		if (dot || access(env, F_OK) != 0) {
			dprintf(2, "spool file left behind: %s\n", de->d_name);
			fuzz_fail(__FILE__, __LINE__, "spool data/tmp file leaked");
		}
	}
	closedir(d);
}

/* maildir_check - each delivered message starts with its Return-Path
 * line and holds no CR (stored with LF line ends; a bare CR or LF rejects
 * the message); then it is removed.  tmp/ must be empty. */
static void maildir_check(void)
{
	char dir[sizeof maildir + 8], buf[4096];
	struct dirent *de;
	ssize_t n;
	DIR *d;
	int fd;

	snprintf(dir, sizeof dir, "%s/tmp", maildir);
	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL)
			CHECK(de->d_name[0] == '.');	/* a file left in tmp/ */
		closedir(d);
	}
	snprintf(dir, sizeof dir, "%s/new", maildir);
	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		CHECK((fd = openat(dirfd(d), de->d_name, O_RDONLY)) >= 0);
		CHECK((n = read(fd, buf, sizeof buf)) >= 14 &&
		    memcmp(buf, "Return-Path: <", 14) == 0);
		do
			CHECK(memchr(buf, '\r', n) == NULL);
		while ((n = read(fd, buf, sizeof buf)) > 0);
		close(fd);
		unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

/* lowest_free - the descriptor open() would return now */
static int lowest_free(void)
{
	int fd = open("/dev/null", O_RDONLY);

	CHECK(fd >= 0);
	close(fd);
	return fd;
}

/* fuzz_before - before each run: note the lowest free descriptor; a
 * spool file, memfd, envelope or Maildir descriptor left open moves it */
void fuzz_before(void)
{
	lowest = lowest_free();
}

/* fuzz_after - after each run: the checks, then an empty spool and Maildir */
void fuzz_after(struct deliverer *d)
{
	if (d->pid > 0)		/* a deliverer that died hides its crash */
		CHECK(waitpid(d->pid, NULL, WNOHANG) == 0);
	CHECK(lowest_free() == lowest);		/* a descriptor leaked */
	spool_check();
	empty_dir(fuzz_spool);
	maildir_check();
}
