/*
 * check_queue.c - unit tests for queue.c (Check).
 *
 *   make tests/check_queue && ./tests/check_queue
 *
 * Each test gets a world below the suite's mkdtemp directory: a spool,
 * a virtual users file and Maildir homes.  queue_run() tests use a real
 * deliverer (deliverer_start forks it).  As root the deliverer writes as
 * uid/gid 65534, so the directories are 0755 and the Maildir parents
 * belong to 65534; otherwise everything is ours.  The `now` given to
 * queue_run() stands in for waiting.  Set SMTPD_TEST_LOG=1 to see logs.
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
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "deliver.h"
#include "queue.h"
#include "tests/check_common.h"
#include "storage.h"

#define MSG	"Return-Path: <s@example.org>\nSubject: queued\n\nbody line\n"
#define MSG_REST "Subject: queued\n\nbody line\n"

static struct spool sp;		/* 64 KiB buffer: not on the stack */

/* ---- helpers ----------------------------------------------------------- */

/* the one message in a Maildir's new/, as text */
static char *only_message(const char *maildir)
{
	char dir[512], name[300], path[900];

	snprintf(dir, sizeof dir, "%s/new", P(maildir));
	ck_assert_int_eq(count(dir, name, sizeof name), 1);
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return slurp(path, NULL);
}

/* config_load on writable copies (set_pair() splits its argument) */
static void load(const char *const *args, int n)
{
	static char store[32][320];
	char *argv[33];
	int i, mode;

	ck_assert_int_le(n, 32);
	for (i = 0; i < n; i++)
		argv[i] = strcpy(store[i], args[i]);
	argv[n] = NULL;
	optind = 1;
	ck_assert_int_eq(config_load(n, argv, &mode), 0);
}

/* tmp world + config_load with the standard settings */
static void setup(void)
{
	char vu[300], sd[300], users[1024];
	const char *args[] = { "t", "-e", "-o", vu, "-o", "local_domains=example.test",
	    "-o", sd, "-o", "hostname=mx.test", "-o", "queue_retry=1",
	    "-o", "postmaster=alice" };

	check_quiet();
	check_test_dir();
	ck_assert_int_eq(mkdir(P("spool"), 0700), 0);
	home("alice");		/* bob's home is made by the tests that want it */
	snprintf(users, sizeof users, "# name:uid:gid:maildir\n"
	    "alice:%ld:%ld:%s/alice/Maildir\nbob:%ld:%ld:%s/bob/Maildir\n",
	    (long)mail_uid, (long)mail_gid, tmp, (long)mail_uid, (long)mail_gid, tmp);
	put_file("users", users, strlen(users));
	snprintf(vu, sizeof vu, "virtual_users=%s", P("users"));
	snprintf(sd, sizeof sd, "spool_dir=%s", P("spool"));
	load(args, (int)N(args));
	ck_assert_str_eq(cfg.spool_dir, P("spool"));
	ck_assert_str_eq(cfg.postmaster, "alice");
}

/* a kept message for these recipients; its id into `id` */
static void queue_msg(char *id, char *const *rcpt, int n)
{
	static unsigned long seq;

	ck_assert_int_eq(spool_create(&sp, ++seq), 0);
	spool_put(&sp, MSG, strlen(MSG));
	ck_assert_int_eq(spool_keep(&sp, rcpt, n, "test"), 0);
	spool_close(&sp);
	strcpy(id, sp.id);
}

/* the envelope's T, attempts and next-try; its R lines joined by ',' */
static void read_env(const char *id, long long *t, long *a, long long *next,
    char *rcpts, size_t cap)
{
	char rel[64], *text, *line, *save = NULL;

	snprintf(rel, sizeof rel, "spool/%s.env", id);
	text = slurp(P(rel), NULL);
	ck_assert_msg(text != NULL, "%s missing", rel);
	ck_assert_msg(sscanf(text, "T %lld\nA %ld %lld\n", t, a, next) == 3,
	    "envelope header: %s", text);
	rcpts[0] = '\0';
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (line[0] == 'R')
			snprintf(rcpts + strlen(rcpts), cap - strlen(rcpts), "%s%s",
			    rcpts[0] ? "," : "", line);
	free(text);
}

/* ---- queue ids and the spool -------------------------------------------- */

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

START_TEST(test_queue_id)
{
	enum { NID = 2000 };
	static char ids[NID][QID_MAX];
	char again[QID_MAX];
	int i, bad = 0;

	/* a tight loop, no assertions (each is a syscall): same microseconds */
	for (i = 0; i < NID; i++)
		bad += queue_id(ids[i], QID_MAX, (unsigned long)i + 1) != 0;
	ck_assert_int_eq(bad, 0);
	for (i = 0; i < NID; i++)
		if (ids[i][0] == '\0' || ids[i][strspn(ids[i], "0123456789"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")] != '\0')
			ck_abort_msg("id \"%s\" is not alphanumeric", ids[i]);
	qsort(ids, NID, QID_MAX, cmp_id);
	for (i = 1; i < NID; i++)
		if (strcmp(ids[i - 1], ids[i]) == 0)
			ck_abort_msg("id %s twice", ids[i]);
	/* same counter a little later: time makes it new */
	ck_assert_int_eq(queue_id(ids[0], QID_MAX, 1), 0);
	usleep(2000);
	ck_assert_int_eq(queue_id(again, sizeof again, 1), 0);
	ck_assert_str_ne(again, ids[0]);
	/* too small a buffer is an error, not a truncated id */
	ck_assert_int_eq(queue_id(again, 8, 1), -1);
}
END_TEST

START_TEST(test_spool_bytes_exact)
{
	static const size_t chunks[] = { 1, 7, 65536, 65535, 100000, 3, 80000 };
	size_t total = 0, off = 0, len, i;
	unsigned char *data;
	char rel[64], *got;
	struct stat st;

	for (i = 0; i < N(chunks); i++)
		total += chunks[i];
	data = malloc(total);
	ck_assert_ptr_nonnull(data);
	for (i = 0; i < total; i++)
		data[i] = (unsigned char)(i * 13 + i / 251);	/* all 256 values */
	cfg.spool_memory = 0;		/* straight to spool_dir/ID */
	ck_assert_int_eq(spool_create(&sp, 1), 0);
	ck_assert_int_ge(sp.fd, 0);
	for (i = 0; i < N(chunks); i++) {
		spool_put(&sp, (char *)data + off, chunks[i]);
		off += chunks[i];
	}
	ck_assert_int_eq(spool_flush(&sp), 0);
	ck_assert_int_eq(sp.size, (off_t)total);
	snprintf(rel, sizeof rel, "spool/%s", sp.id);
	ck_assert_int_eq(lstat(P(rel), &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 077, 0);
	got = slurp(P(rel), &len);
	ck_assert_uint_eq(len, total);
	ck_assert_msg(memcmp(got, data, total) == 0, "spool bytes differ");
	spool_close(&sp);
	ck_assert_int_eq(sp.fd, -1);
	ck_assert(exists(rel));		/* close keeps the file */
	free(got);
	free(data);
}
END_TEST

START_TEST(test_spool_discard)
{
	char rel[64];

	cfg.spool_memory = 0;
	ck_assert_int_eq(spool_create(&sp, 7), 0);
	spool_put(&sp, MSG, strlen(MSG));
	snprintf(rel, sizeof rel, "spool/%s", sp.id);
	ck_assert(exists(rel));
	spool_discard(&sp);
	ck_assert_int_eq(sp.fd, -1);
	ck_assert(!exists(rel));
	ck_assert_int_eq(count(P("spool"), NULL, 0), 0);
	spool_discard(&sp);	/* twice is harmless */
}
END_TEST

/* a small message stays in memory; past spool_memory it moves to disk */
START_TEST(test_spool_memory)
{
	char rel[64], buf[300000], *got;
	size_t len, i;

	for (i = 0; i < sizeof buf; i++)
		buf[i] = (char)(i % 251);
	cfg.spool_memory = 200000;
	ck_assert_int_eq(spool_create(&sp, 9), 0);
	spool_put(&sp, buf, 1000);
	ck_assert_int_eq(spool_flush(&sp), 0);
	ck_assert_int_eq(count(P("spool"), NULL, 0), 0);	/* nothing on disk */
	ck_assert_int_eq(pread(sp.fd, buf + 100000, 1000, 0), 1000);
	for (i = 0; i < sizeof buf; i++)
		buf[i] = (char)(i % 251);
	spool_put(&sp, buf + 1000, sizeof buf - 1000);
	ck_assert_int_eq(spool_flush(&sp), 0);
	snprintf(rel, sizeof rel, "spool/%s", sp.id);
	ck_assert(exists(rel));
	got = slurp(P(rel), &len);
	ck_assert_uint_eq(len, sizeof buf);
	ck_assert(memcmp(got, buf, sizeof buf) == 0);
	free(got);
	spool_discard(&sp);
	ck_assert(!exists(rel));
}
END_TEST

/* a session's next message reuses the memory file of its last one:
 * emptied first, so no octet of the last message can reach the next */
START_TEST(test_spool_recycle)
{
	char big[5000], got[200];
	struct stat st;
	int fd;

	memset(big, 'A', sizeof big);
	cfg.spool_memory = 200000;
	ck_assert_int_eq(spool_create(&sp, 31), 0);
	spool_put(&sp, big, sizeof big);
	ck_assert_int_eq(spool_flush(&sp), 0);
	fd = sp.fd;
	spool_recycle(&sp);
	ck_assert_int_eq(sp.fd, -1);
	ck_assert_int_eq(spool_create(&sp, 32), 0);
	ck_assert_int_eq(sp.fd, fd);	/* the same file, reused */
	spool_put(&sp, "short", 5);
	ck_assert_int_eq(spool_flush(&sp), 0);
	ck_assert_int_eq(fstat(sp.fd, &st), 0);
	ck_assert_int_eq(st.st_size, 5);
	ck_assert_int_eq(pread(sp.fd, got, sizeof got, 0), 5);
	ck_assert(memcmp(got, "short", 5) == 0);
	sp.lent = 1;	/* a deliverer we gave up on may read it still */
	spool_recycle(&sp);
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);	/* closed, not kept */
	ck_assert_int_eq(spool_create(&sp, 33), 0);
	ck_assert_int_eq(sp.lent, 0);
	fd = sp.fd;
	spool_recycle(&sp);
	spool_free(&sp);	/* the session's end closes the kept file */
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
	ck_assert_int_eq(count(P("spool"), NULL, 0), 0);
}
END_TEST

/* a deliverer that is gone marks the spool lent: never reused */
START_TEST(test_spool_lent)
{
	char *rcpt[] = { "alice@example.test" };
	struct deliverer d = { .pid = 0, .fd = -1 };
	struct deliver_result res;

	cfg.spool_memory = 200000;
	ck_assert_int_eq(spool_create(&sp, 34), 0);
	spool_put(&sp, MSG, strlen(MSG));
	ck_assert_int_eq(spool_flush(&sp), 0);
	ck_assert_int_eq(queue_accept(&d, &sp, rcpt, 1, NULL, &res), ACCEPT_NONE);
	ck_assert_int_eq(res.why, WHY_AGENT);
	ck_assert_int_eq(sp.lent, 1);
	spool_free(&sp);
}
END_TEST

START_TEST(test_spool_keep)
{
	char *rcpt[] = { "alice@example.test", "bob@example.test", "carol@example.test" };
	char rel[64], rcpts[512], *data;
	long long t, next;
	time_t before = time(NULL);
	long a;

	ck_assert_int_eq(spool_create(&sp, 3), 0);
	spool_put(&sp, MSG, strlen(MSG));	/* still buffered: keep flushes */
	ck_assert_int_eq(spool_keep(&sp, rcpt, 2, "test"), 0);	/* carol: not pending */
	spool_close(&sp);
	read_env(sp.id, &t, &a, &next, rcpts, sizeof rcpts);
	ck_assert(t >= before && t <= time(NULL));
	ck_assert_int_eq(a, 0);
	ck_assert_int_eq(next, t + cfg.queue_retry);
	ck_assert_str_eq(rcpts, "R alice@example.test,R bob@example.test");
	snprintf(rel, sizeof rel, "spool/%s.tmp", sp.id);
	ck_assert_msg(!exists(rel), "%s left behind", rel);
	snprintf(rel, sizeof rel, "spool/%s", sp.id);
	data = slurp(P(rel), NULL);
	ck_assert_ptr_nonnull(data);
	ck_assert_str_eq(data, MSG);
	ck_assert_int_eq(count(P("spool"), NULL, 0), 2);
	free(data);
}
END_TEST

/* ---- queue runs ---------------------------------------------------------- */

/* temporary failure, retry with back-off, then delivery */
START_TEST(test_retry_then_deliver)
{
	char *rcpt[] = { "bob@example.test" }, id[QID_MAX], rel[64], rcpts[256];
	char *got;
	long long t, next, t2, next2;
	long a;
	struct deliverer d;
	struct stat st;

	queue_msg(id, rcpt, 1);
	ck_assert_int_eq(deliverer_start(&d, 2), 0);
	read_env(id, &t, &a, &next, rcpts, sizeof rcpts);

	ck_assert_int_eq(queue_run(&d, next - 1), 0);		/* not due yet */
	read_env(id, &t2, &a, &next2, rcpts, sizeof rcpts);
	ck_assert_int_eq(a, 0);
	ck_assert_int_eq(next2, next);

	ck_assert_int_eq(queue_run(&d, next), 0);		/* bob/ missing */
	read_env(id, &t2, &a, &next2, rcpts, sizeof rcpts);
	ck_assert_int_eq(t2, t);
	ck_assert_int_eq(a, 1);
	ck_assert_int_gt(next2, next);
	ck_assert_str_eq(rcpts, "R bob@example.test");
	snprintf(rel, sizeof rel, "spool/%s", id);
	ck_assert(exists(rel));
	ck_assert(!exists("bob"));

	home("bob");
	ck_assert_int_eq(queue_run(&d, next2 - 1), 0);		/* not due again */
	ck_assert(!exists("bob/Maildir"));
	read_env(id, &t2, &a, &next2, rcpts, sizeof rcpts);
	ck_assert_int_eq(a, 1);

	ck_assert_int_eq(queue_run(&d, next2), 0);		/* delivered */
	deliverer_stop(&d);
	ck_assert_msg(!exists(rel), "%s still queued", rel);
	snprintf(rel, sizeof rel, "spool/%s.env", id);
	ck_assert(!exists(rel));
	ck_assert_int_eq(count(P("spool"), NULL, 0), 0);
	got = only_message("bob/Maildir");
	ck_assert_str_eq(got, "Return-Path: <s@example.org>\n"
	    "Delivered-To: bob@example.test\n" MSG_REST);
	ck_assert_int_eq(stat(P("bob/Maildir"), &st), 0);
	ck_assert_uint_eq(st.st_uid, mail_uid);
	free(got);
}
END_TEST

/* past queue_lifetime the message goes to the postmaster */
START_TEST(test_lifetime_to_postmaster)
{
	char *rcpt[] = { "bob@example.test" }, id[QID_MAX], rcpts[256], *got;
	long long t, next;
	long a;
	struct deliverer d;

	queue_msg(id, rcpt, 1);
	ck_assert_int_eq(deliverer_start(&d, 2), 0);
	read_env(id, &t, &a, &next, rcpts, sizeof rcpts);
	ck_assert_int_eq(queue_run(&d, t + cfg.queue_lifetime), 0);	/* not past */
	read_env(id, &t, &a, &next, rcpts, sizeof rcpts);
	ck_assert_int_eq(a, 1);
	ck_assert_int_eq(count(P("alice"), NULL, 0), 0);
	ck_assert_int_eq(queue_run(&d, t + cfg.queue_lifetime + 100000), 0);
	deliverer_stop(&d);
	ck_assert_int_eq(count(P("spool"), NULL, 0), 0);
	ck_assert(!exists("bob"));
	got = only_message("alice/Maildir");
	ck_assert_str_eq(got, "Return-Path: <s@example.org>\n"
	    "Delivered-To: postmaster\n" MSG_REST);
	free(got);
}
END_TEST

/* an envelope whose data file is gone: the postmaster gets a notice
 * naming the recipients, and the envelope goes */
START_TEST(test_lost_data_notice)
{
	char *rcpt[] = { "bob@example.test" }, id[QID_MAX], rel[64], rcpts[256];
	char subject[128], *got;
	long long t, next;
	long a;
	struct deliverer d;

	queue_msg(id, rcpt, 1);
	snprintf(rel, sizeof rel, "spool/%s", id);
	ck_assert_int_eq(unlink(P(rel)), 0);
	read_env(id, &t, &a, &next, rcpts, sizeof rcpts);
	ck_assert_int_eq(deliverer_start(&d, 2), 0);
	ck_assert_int_eq(queue_run(&d, next), 0);
	deliverer_stop(&d);
	ck_assert_int_eq(count(P("spool"), NULL, 0), 0);	/* envelope gone */
	got = only_message("alice/Maildir");
	snprintf(subject, sizeof subject,
	    "Subject: smtpd: queued message %s lost its data file\n", id);
	ck_assert_msg(strstr(got, subject) != NULL, "no subject in: %s", got);
	ck_assert_msg(strstr(got, "  <bob@example.test>\n") != NULL, "no recipient: %s", got);
	free(got);
}
END_TEST

/* queue_and_run - queue_msg, then one queue run at its first retry time */
static void queue_and_run(char *id, char *const *rcpt, int n)
{
	char rcpts[256];
	long long t, next;
	long a;
	struct deliverer d;

	queue_msg(id, rcpt, n);
	ck_assert_int_eq(deliverer_start(&d, 2), 0);
	read_env(id, &t, &a, &next, rcpts, sizeof rcpts);
	ck_assert_int_eq(queue_run(&d, next), 0);
	deliverer_stop(&d);
}

/* one recipient delivered, one still failing: only that one stays */
START_TEST(test_partial_retry)
{
	char *rcpt[] = { "bob@example.test", "alice@example.test" };
	char id[QID_MAX], rcpts[256], *got;
	long long t, next;
	long a;

	home("bob");
	ck_assert_int_eq(rmdir(P("alice")), 0);		/* alice: temporary failure */
	queue_and_run(id, rcpt, 2);
	read_env(id, &t, &a, &next, rcpts, sizeof rcpts);
	ck_assert_int_eq(a, 1);
	ck_assert_str_eq(rcpts, "R alice@example.test");
	got = only_message("bob/Maildir");
	ck_assert_ptr_nonnull(strstr(got, "Delivered-To: bob@example.test\n"));
	free(got);
}
END_TEST

/* a permanent failure gives up at once: to the postmaster */
START_TEST(test_permanent_to_postmaster)
{
	char *rcpt[] = { "nosuch@example.test", "bob@example.test" };
	char id[QID_MAX], *got;

	home("bob");
	queue_and_run(id, rcpt, 2);
	ck_assert_int_eq(count(P("spool"), NULL, 0), 0);
	got = only_message("bob/Maildir");
	ck_assert_ptr_nonnull(strstr(got, "Delivered-To: bob@example.test\n"));
	free(got);
	got = only_message("alice/Maildir");
	ck_assert_ptr_nonnull(strstr(got, "Delivered-To: postmaster\n"));
	free(got);
}
END_TEST

/* leftovers of crashed sessions go once they are old enough */
START_TEST(test_stale_cleanup)
{
	static const struct { const char *name; int age, kept; } files[] = {
		{ "AAAA1", 2000, 0 },		/* data file, no envelope: old */
		{ "BBBB2.tmp", 2000, 0 },	/* envelope being written: old */
		{ "CCCC3", 1400, 1 },		/* young: a session may own it */
		{ "DDDD4.tmp", 10, 1 },
		{ "EEEE5", 2000, 1 },		/* queued: has EEEE5.env */
		{ "EEEE5.env", 2000, 1 },
		{ "FFFF6.xyz", 2000, 1 },	/* not a name we make */
	};
	struct deliverer none = { .pid = 0, .fd = -1 };
	time_t now = time(NULL);
	char env[128];
	size_t i;

	/* 2 * data_timeout + cmd_timeout = 1500 seconds with the defaults */
	ck_assert_int_eq(2 * cfg.data_timeout + cfg.cmd_timeout, 1500);
	snprintf(env, sizeof env, "T %lld\nA 0 %lld\nR bob@example.test\n",
	    (long long)now - 2000, (long long)now + 100000);
	for (i = 0; i < N(files); i++) {
		char rel[64];
		struct timeval tv[2] = { { now - files[i].age, 0 }, { now - files[i].age, 0 } };

		snprintf(rel, sizeof rel, "spool/%s", files[i].name);
		if (strstr(rel, ".env"))
			put_file(rel, env, strlen(env));
		else
			put_file(rel, MSG, strlen(MSG));
		ck_assert_int_eq(utimes(P(rel), tv), 0);
	}
	ck_assert_int_eq(queue_run(&none, now), 0);
	for (i = 0; i < N(files); i++) {
		char rel[64];

		snprintf(rel, sizeof rel, "spool/%s", files[i].name);
		ck_assert_msg(exists(rel) == files[i].kept, "%s (%d s old) %s",
		    files[i].name, files[i].age, files[i].kept ? "removed" : "kept");
	}
}
END_TEST

/* envelopes that do not parse are left for the administrator */
static const struct { const char *what, *text; size_t len; } bad_envs[] = {
#define E(w, s)	{ w, s, sizeof(s) - 1 }
	E("empty", ""),
	E("garbage", "garbage\n"),
	E("truncated", "T 1\n"),
	E("bad attempts", "T 1\nA x 0\nR bob@example.test\n"),
	E("bad address", "T 1\nA 0 0\nR not an address\n"),
	E("no blank after R", "T 1\nA 0 0\nRbob@example.test\n"),
	E("NUL", "T 1\nA 0 0\nR bob@example.test\0\nR x@example.test\n"),
#undef E
	{ "too many recipients", NULL, 0 },
	{ "too long", NULL, 1 },
};

START_TEST(test_malformed_envelope)
{
	struct deliverer d;
	char rel[64], *text, *got;
	size_t len = bad_envs[_i].len, i;

	if (bad_envs[_i].text) {
		text = malloc(len + 1);
		ck_assert_ptr_nonnull(text);
		memcpy(text, bad_envs[_i].text, len);
	} else {
		text = malloc(200000);
		ck_assert_ptr_nonnull(text);
		len = (size_t)sprintf(text, "T 1\nA 0 0\n");
		if (bad_envs[_i].len)	/* one line, longer than any envelope */
			len += sprintf(text + len, "R %0150000d\n", 1);
		else			/* rcpt_limit + 1 recipients */
			for (i = 0; i <= (size_t)cfg.rcpt_limit; i++)
				len += sprintf(text + len, "R bob@example.test\n");
	}
	home("bob");
	put_file("spool/MALF1", MSG, strlen(MSG));
	put_file("spool/MALF1.env", text, len);
	ck_assert_int_eq(deliverer_start(&d, 2), 0);
	ck_assert_int_eq(queue_run(&d, time(NULL) + 1000000), 0);
	deliverer_stop(&d);
	ck_assert_msg(exists("spool/MALF1"), "%s: data file removed", bad_envs[_i].what);
	snprintf(rel, sizeof rel, "spool/MALF1.env");
	got = slurp(P(rel), &i);
	ck_assert_msg(got != NULL, "%s: envelope removed", bad_envs[_i].what);
	ck_assert_msg(i == len && memcmp(got, text, len) == 0, "%s: envelope changed",
	    bad_envs[_i].what);
	ck_assert_msg(!exists("bob/Maildir"), "%s: delivered anyway", bad_envs[_i].what);
	free(got);
	free(text);
}
END_TEST

/* an envelope whose data file is gone: a notice to the postmaster, no loop */
START_TEST(test_missing_data_file)
{
	struct deliverer d;
	const char *env = "T 1\nA 0 0\nR bob@example.test\nR carol@example.test\n";
	char *got;

	put_file("spool/GONE1.env", env, strlen(env));
	ck_assert_int_eq(deliverer_start(&d, 2), 0);
	ck_assert_int_eq(queue_run(&d, time(NULL)), 0);
	deliverer_stop(&d);
	ck_assert_msg(!exists("spool/GONE1.env"), "envelope kept: retried forever");
	got = only_message("alice/Maildir");	/* alice is the postmaster */
	ck_assert_ptr_nonnull(strstr(got, "Return-Path: <>\n"));
	ck_assert_ptr_nonnull(strstr(got, "Subject: smtpd: queued message GONE1 lost"));
	ck_assert_ptr_nonnull(strstr(got, "<bob@example.test>\n"));
	ck_assert_ptr_nonnull(strstr(got, "<carol@example.test>\n"));
	ck_assert_int_eq(count(P("spool"), NULL, 0), 0);
	free(got);
}
END_TEST

/* the postmaster cannot take the notice now: the envelope stays for later */
START_TEST(test_missing_data_file_deferred)
{
	struct deliverer none = { .pid = 0, .fd = -1 };
	const char *env = "T 1\nA 0 0\nR bob@example.test\n";
	long long t, next;
	char rcpts[128];
	long a;

	put_file("spool/GONE2.env", env, strlen(env));
	ck_assert_int_eq(queue_run(&none, time(NULL)), 0);
	read_env("GONE2", &t, &a, &next, rcpts, sizeof rcpts);
	ck_assert_int_eq(a, 1);
	ck_assert(next > time(NULL));
	ck_assert_int_eq(count(P("spool"), NULL, 0), 1);
}
END_TEST

/* finding 1: a slow session's data file is old, but its session is alive */
START_TEST(test_live_session_file_kept)
{
	struct deliverer none = { .pid = 0, .fd = -1 };
	char *rcpt[] = { "bob@example.test" };
	struct timeval tv[2] = { { time(NULL) - 5000, 0 }, { time(NULL) - 5000, 0 } };
	char rel[64], *data;

	cfg.spool_memory = 0;	/* on disk from the first octet */
	ck_assert_int_eq(spool_create(&sp, 11), 0);
	spool_put(&sp, MSG, strlen(MSG));
	ck_assert_int_eq(spool_flush(&sp), 0);
	snprintf(rel, sizeof rel, "spool/%s", sp.id);
	ck_assert_int_eq(utimes(P(rel), tv), 0);	/* last flush long ago */
	ck_assert_int_eq(queue_run(&none, time(NULL)), 0);
	ck_assert_msg(exists(rel), "a live session's data file was removed");
	ck_assert_int_eq(spool_keep(&sp, rcpt, 1, "test"), 0);
	spool_close(&sp);
	data = slurp(P(rel), NULL);
	ck_assert_ptr_nonnull(data);
	ck_assert_str_eq(data, MSG);
	free(data);
	/* once the session is gone the same age makes a leftover go */
	ck_assert_int_eq(spool_create(&sp, 12), 0);
	spool_put(&sp, MSG, strlen(MSG));
	ck_assert_int_eq(spool_flush(&sp), 0);
	snprintf(rel, sizeof rel, "spool/%s", sp.id);
	spool_close(&sp);	/* a crashed session: no lock, no envelope */
	ck_assert_int_eq(utimes(P(rel), tv), 0);
	ck_assert_int_eq(queue_run(&none, time(NULL)), 0);
	ck_assert(!exists(rel));
}
END_TEST

/* finding 1: spool_keep never commits an envelope for a nameless file */
START_TEST(test_keep_relinks_removed_data)
{
	char *rcpt[] = { "bob@example.test" };
	char rel[64], *data;

	cfg.spool_memory = 0;
	ck_assert_int_eq(spool_create(&sp, 13), 0);
	spool_put(&sp, MSG, strlen(MSG));
	ck_assert_int_eq(spool_flush(&sp), 0);
	snprintf(rel, sizeof rel, "spool/%s", sp.id);
	ck_assert_int_eq(unlink(P(rel)), 0);	/* what the old cleaner did */
	ck_assert_int_eq(spool_keep(&sp, rcpt, 1, "test"), 0);
	spool_close(&sp);
	data = slurp(P(rel), NULL);
	ck_assert_msg(data != NULL, "envelope committed without a data file");
	ck_assert_str_eq(data, MSG);
	free(data);
}
END_TEST

/* ---- storage faults on the spool side (through the seam) ---------------- */

/* the steps of spool_keep() for a memory spool, in their order */
static const struct fault_step spool_faults[] = {
	{ OP_WRITE, 1, "write of the data file" },
	{ OP_FSYNC, 1, "fsync of the data file" },
	{ OP_WRITE, 2, "write of the envelope" },
	{ OP_FSYNC, 2, "fsync of the envelope" },
	{ OP_RENAME, 1, "rename ID.tmp -> ID.env" },
	{ OP_FSYNC, 3, "fsync of the spool directory" },
};

/* finding 8: each step fails with each error: an error (4xx), nothing left */
START_TEST(test_spool_fault)
{
	char *rcpt[] = { "bob@example.test" };
	int which = _i / N(fault_errs), r;

	fault_arm(spool_faults[which].op, spool_faults[which].nth, fault_errs[_i % N(fault_errs)]);
	ck_assert_int_eq(spool_create(&sp, 21), 0);	/* in memory: keep writes it */
	spool_put(&sp, MSG, strlen(MSG));
	storage_set_ops(&fault_ops);
	r = spool_keep(&sp, rcpt, 1, "test");
	storage_set_ops(NULL);
	ck_assert_msg(fault.hit, "fault at %s never reached", spool_faults[which].what);
	ck_assert_msg(r == fault.err, "%s failing with %s: got %d (%s)",
	    spool_faults[which].what, strerror(fault.err), r, strerror(r));
	spool_discard(&sp);	/* what the session does before its 4xx */
	ck_assert_msg(count(P("spool"), NULL, 0) == 0, "%s: spool not empty",
	    spool_faults[which].what);
	ck_assert_int_eq(spool_create(&sp, 22), 0);	/* the real calls work */
	spool_put(&sp, MSG, strlen(MSG));
	ck_assert_int_eq(spool_keep(&sp, rcpt, 1, "test"), 0);
	spool_close(&sp);
	ck_assert_int_eq(count(P("spool"), NULL, 0), 2);
}
END_TEST

/* a fault while a large message streams to disk sticks until the end */
START_TEST(test_spool_stream_fault)
{
	static char big[3 * SPOOL_BUF];

	memset(big, 'x', sizeof big);
	cfg.spool_memory = 0;
	fault_arm(OP_WRITE, 2, _i == 0 ? ENOSPC : EIO);
	ck_assert_int_eq(spool_create(&sp, 23), 0);
	storage_set_ops(&fault_ops);
	spool_put(&sp, big, sizeof big);
	storage_set_ops(NULL);
	ck_assert(fault.hit);
	ck_assert_int_eq(spool_flush(&sp), fault.err);	/* sticky */
	spool_discard(&sp);
	ck_assert_int_eq(count(P("spool"), NULL, 0), 0);
}
END_TEST

Suite *check_suite(void)
{
	Suite *s = suite_create("queue");
	TCase *tc = check_tcase(s, "spool", setup, check_test_rmdir, 0);
	TCase *run = check_tcase(s, "run", setup, check_test_rmdir, 30);

	tcase_add_test(tc, test_queue_id);
	tcase_add_test(tc, test_spool_bytes_exact);
	tcase_add_test(tc, test_spool_discard);
	tcase_add_test(tc, test_spool_memory);
	tcase_add_test(tc, test_spool_recycle);
	tcase_add_test(tc, test_spool_lent);
	tcase_add_test(tc, test_spool_keep);
	tcase_add_test(run, test_retry_then_deliver);
	tcase_add_test(run, test_lifetime_to_postmaster);
	tcase_add_test(run, test_lost_data_notice);
	tcase_add_test(run, test_partial_retry);
	tcase_add_test(run, test_permanent_to_postmaster);
	tcase_add_test(run, test_stale_cleanup);
	tcase_add_loop_test(run, test_malformed_envelope, 0, N(bad_envs));
	tcase_add_test(run, test_missing_data_file);
	tcase_add_test(run, test_missing_data_file_deferred);
	tcase_add_test(run, test_live_session_file_kept);
	tcase_add_test(run, test_keep_relinks_removed_data);
	tcase_add_loop_test(run, test_spool_fault, 0, N(spool_faults) * N(fault_errs));
	tcase_add_loop_test(run, test_spool_stream_fault, 0, 2);
	return s;
}

