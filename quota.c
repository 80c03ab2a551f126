/*
 * quota.c - Maildir++ quota (Courier's maildirquota, Dovecot's "maildir"
 * quota backend): read the limits and usage, and keep the count right.
 *
 * Interface: quota_read() parses DIR/maildirsize, quota_check() says
 * whether a mailbox is full now (RCPT: 452 4.2.2) or would be pushed
 * over by a message of some size (end of data: 552 5.2.2), quota_add()
 * appends the line for one delivered message.  quota_parse() is the pure
 * decoder, fuzzed by fuzz/fuzz_quota.c.
 * Format: the first line holds the limits, "<bytes>S,<count>C" (either
 * part may be missing); each further line is "<bytes> <count>", a signed
 * change.  Usage is the sum of those lines.  A file larger than
 * QUOTA_FILE_MAX is one Dovecot or Courier must recalculate: we treat it
 * as "no quota known" (never refuse mail on a stale count) and keep
 * appending, which is what prompts the owner to recalculate.
 * Invariants: the deliverer calls these with the user's identity, so
 * they never touch a file the user could not; appends are one write(2)
 * with O_APPEND, so concurrent deliverers and Dovecot interleave lines,
 * never octets.  A missing maildirsize means no quota (QUOTA_NONE).
 * Absent: quota_read_at() and quota_add_at() are told the Maildir's own
 * lstat; a maildirsize found missing is not looked for again while that
 * directory keeps its device, inode and ctime (creating, renaming or
 * removing an entry in it changes its ctime, which no one can set back),
 * and only once its ctime is older than the clock's grain, so a create in
 * the same tick as our look cannot hide behind an equal ctime.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "quota.h"
#include "strcopy.h"

#define QUOTA_NUM_MAX	(1LL << 53)	/* a sane ceiling for any figure */
#define ABSENT_N	8	/* Maildirs remembered without a maildirsize */

static struct absent {
	dev_t dev;
	ino_t ino;
	struct timespec ctim;
} absent[ABSENT_N];
static unsigned absent_next;

/* maildirsize_path - "DIR/maildirsize"; -1 if it does not fit */
static int maildirsize_path(char *dst, size_t cap, const char *maildir)
{
	const char *parts[] = { maildir, "/maildirsize", NULL };

	return str_join(dst, cap, parts) >= cap ? -1 : 0;
}

/* absent_hit - was maildirsize missing in this very directory state? */
static int absent_hit(const struct stat *dir)
{
	int i;

	for (i = 0; dir && i < ABSENT_N; i++)
		if (absent[i].ino && absent[i].dev == dir->st_dev &&
		    absent[i].ino == dir->st_ino &&
		    absent[i].ctim.tv_sec == dir->st_ctim.tv_sec &&
		    absent[i].ctim.tv_nsec == dir->st_ctim.tv_nsec)
			return 1;
	return 0;
}

/* absent_note - remember a missing maildirsize, if the ctime has settled
 * (whole seconds: a file system with 1 s stamps; else 100 ms, above any
 * kernel tick) */
static void absent_note(const struct stat *dir)
{
	struct timespec now;
	long long age_ms;

	if (!dir || clock_gettime(CLOCK_REALTIME, &now) < 0)
		return;
	age_ms = (long long)(now.tv_sec - dir->st_ctim.tv_sec) * 1000 +
	    (now.tv_nsec - dir->st_ctim.tv_nsec) / 1000000;
	if (age_ms < (dir->st_ctim.tv_nsec ? 100 : 2000))
		return;
	absent[absent_next % ABSENT_N] = (struct absent){ dir->st_dev, dir->st_ino,
	    dir->st_ctim };
	absent_next++;
}

/* number - a signed decimal at *p, advancing it; -1 if none or absurd */
static int number(const char **p, const char *end, long long *v)
{
	const char *s = *p;
	int neg = 0;
	long long x = 0;

	if (s < end && (*s == '-' || *s == '+'))
		neg = *s++ == '-';
	if (s >= end || !isdigit((unsigned char)*s))
		return -1;
	while (s < end && isdigit((unsigned char)*s)) {
		x = x * 10 + (*s++ - '0');
		if (x > QUOTA_NUM_MAX)
			return -1;
	}
	*v = neg ? -x : x;
	*p = s;
	return 0;
}

/* limits_line - "<n>S,<n>C" in any order, either part optional */
static int limits_line(const char *s, const char *end, struct quota *q)
{
	long long v;

	while (s < end) {
		if (number(&s, end, &v) < 0 || v < 0 || s >= end)
			return -1;
		if (*s == 'S')
			q->max_bytes = v;
		else if (*s == 'C')
			q->max_count = v;
		else
			return -1;
		if (++s < end && *s++ != ',')
			return -1;
	}
	return 0;
}

/* usage_line - "<bytes> <count>" added to the usage */
static int usage_line(const char *s, const char *end, struct quota *q)
{
	long long b, c;

	while (s < end && *s == ' ')
		s++;
	if (number(&s, end, &b) < 0)
		return -1;
	while (s < end && *s == ' ')
		s++;
	if (number(&s, end, &c) < 0)
		return -1;
	while (s < end && *s == ' ')
		s++;
	if (s != end)
		return -1;
	q->bytes += b, q->count += c;
	if (q->bytes > QUOTA_NUM_MAX || q->bytes < -QUOTA_NUM_MAX ||
	    q->count > QUOTA_NUM_MAX || q->count < -QUOTA_NUM_MAX)
		return -1;
	return 0;
}

/* quota_parse - maildirsize text into q; -1 if it is not one */
int quota_parse(const char *text, size_t len, struct quota *q)
{
	const char *s = text, *end = text + len, *nl;
	int first = 1;

	memset(q, 0, sizeof *q);
	while (s < end) {
		nl = memchr(s, '\n', end - s);
		if (!nl)
			return -1;	/* a line still being written: not ours to judge */
		if (first ? limits_line(s, nl, q) : (nl > s ? usage_line(s, nl, q) : 0))
			return -1;
		first = 0;
		s = nl + 1;
	}
	if (first)
		return -1;
	if (q->bytes < 0)
		q->bytes = 0;
	if (q->count < 0)
		q->count = 0;
	return 0;
}

/* quota_read - DIR/maildirsize; QUOTA_NONE when absent, stale or bad */
int quota_read(const char *maildir, struct quota *q)
{
	return quota_read_at(maildir, NULL, q);
}

/* quota_read_at - quota_read, with DIR's lstat (or NULL) for the absent list */
int quota_read_at(const char *maildir, const struct stat *dir, struct quota *q)
{
	char path[PATH_MAX], *buf;
	ssize_t n;
	int fd, r = QUOTA_NONE;

	memset(q, 0, sizeof *q);
	if (maildirsize_path(path, sizeof path, maildir) < 0)
		return QUOTA_NONE;
	if (absent_hit(dir))
		return QUOTA_NONE;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)) < 0) {
		if (errno == ENOENT)
			absent_note(dir);
		return QUOTA_NONE;
	}
	if (!(buf = malloc(QUOTA_FILE_MAX + 1))) {
		close(fd);
		return QUOTA_NONE;
	}
	do
		n = read(fd, buf, QUOTA_FILE_MAX + 1);
	while (n < 0 && errno == EINTR);
	if (n > 0 && n <= QUOTA_FILE_MAX && quota_parse(buf, n, q) == 0 &&
	    (q->max_bytes || q->max_count))
		r = QUOTA_OK;
	free(buf);
	close(fd);
	return r;
}

/* quota_check - QUOTA_FULL now, QUOTA_OVER with add_bytes more, or OK */
int quota_check(const struct quota *q, long long add_bytes)
{
	if ((q->max_bytes && q->bytes >= q->max_bytes) ||
	    (q->max_count && q->count >= q->max_count))
		return QUOTA_FULL;
	if (q->max_bytes && q->bytes + add_bytes > q->max_bytes)
		return QUOTA_OVER;
	return QUOTA_OK;
}

/* quota_add - append "<bytes> <count>" in one write; only if the file exists */
int quota_add(const char *maildir, long long bytes, long long count)
{
	return quota_add_at(maildir, NULL, bytes, count);
}

/* quota_add_at - quota_add, with DIR's lstat (or NULL) for the absent list */
int quota_add_at(const char *maildir, const struct stat *dir, long long bytes,
    long long count)
{
	char path[PATH_MAX], line[64];
	int fd, n, r = 0;

	if (absent_hit(dir))
		return 0;
	if (maildirsize_path(path, sizeof path, maildir) < 0)
		return -1;
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW |
	    O_NONBLOCK)) < 0)
		return errno == ENOENT ? 0 : -1;
	n = snprintf(line, sizeof line, "%lld %lld\n", bytes, count);
	if (write(fd, line, n) != n)
		r = -1;
	if (close(fd) < 0)
		r = -1;
	return r;
}
