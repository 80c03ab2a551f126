/*
 * queue.c - the spool and the durability contract.
 *
 * Interface: the session streams a message into a spool data file
 * (spool_create, spool_put, spool_flush), hands its descriptor to the
 * deliverer, and then either discards it (every recipient delivered, or
 * none could be: nothing to keep) or keeps it (spool_keep: some
 * recipients pending).  queue_run() retries kept messages.
 * Layout of cfg.spool_dir: ID (message as stored, LF line ends, starting
 * with its Return-Path line), ID.env (envelope), ID.tmp (an envelope
 * being written).  Envelope lines: "T arrival", "A attempts next-try",
 * then one "R address" per pending recipient.
 * Messages up to spool_memory octets are spooled in an anonymous memory
 * file (memfd): the common case, delivered at once, then touches the disk
 * only in the Maildirs.  A larger message moves to spool_dir/ID as it
 * grows, so memory stays bounded whatever the size.
 * Durability: spool_keep() writes a memory spool to spool_dir/ID, fsyncs
 * the data, writes the envelope to
 * ID.tmp, fsyncs it, renames it to ID.env and fsyncs the directory; only
 * then may the session answer 250.  A message delivered to everyone at
 * once is never fsync'd here: its copies in new/ already are.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "queue.h"
#include "rfc822.h"

#define ENV_LINE_MAX	(ADDR_MAX + 8)
#define BACKOFF_MAX	14400	/* seconds: retry at least every 4 hours */
#define TIME_SANE	(1LL << 40)	/* larger times in an envelope are bad */

/* queue_id - unique on this host: time, microseconds, pid, counter */
int queue_id(char *dst, size_t cap, unsigned long seq)
{
	struct timeval tv;
	int n;

	gettimeofday(&tv, NULL);
	n = snprintf(dst, cap, "%08llX%05lXp%lXs%lX", (long long)tv.tv_sec,
	    (long)tv.tv_usec, (long)getpid(), seq);
	return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

/* spool_path - "spool_dir/ID<suffix>"; -1 if it would not fit */
static int spool_path(char *dst, size_t cap, const char *id, const char *suffix)
{
	int n = snprintf(dst, cap, "%s/%s%s", cfg.spool_dir, id, suffix);

	return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

/* disk_fd - create the named data file spool_dir/ID */
static int disk_fd(const char *id)
{
	char path[CFG_STR_MAX + QID_MAX + 8];

	if (spool_path(path, sizeof path, id, "") < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
}

/* mem_fd - an anonymous file in memory; -1 where the system has none */
static int mem_fd(void)
{
	return memfd_create("smtpd-spool", MFD_CLOEXEC);
}

/* spool_create - open a new data file; 0 or an errno value */
int spool_create(struct spool *s, unsigned long seq)
{
	s->fd = -1, s->err = 0, s->size = 0, s->used = 0;
	if (queue_id(s->id, sizeof s->id, seq) < 0)
		return ENAMETOOLONG;
	s->disk = cfg.spool_memory == 0 || (s->fd = mem_fd()) < 0;
	if (s->disk)
		s->fd = disk_fd(s->id);
	return s->fd < 0 ? errno : 0;
}

/* write_all - write n octets, retrying short writes; 0 or an errno */
static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? errno : EIO;
		p += w, n -= w;
	}
	return 0;
}

/* unlink_data - remove spool_dir/ID */
static void unlink_data(const char *id)
{
	char path[CFG_STR_MAX + QID_MAX + 8];

	if (spool_path(path, sizeof path, id, "") == 0)
		unlink(path);
}

/* to_disk - move a memory spool's written octets into spool_dir/ID */
static int to_disk(struct spool *s)
{
	char buf[65536];
	off_t off = 0, end = s->size - s->used;
	int fd = disk_fd(s->id), err = 0;

	if (fd < 0)
		return errno;
	while (!err && off < end) {
		ssize_t r = pread(s->fd, buf, sizeof buf, off);

		if (r <= 0)
			err = r < 0 ? errno : EIO;
		else if ((err = write_all(fd, buf, r)) == 0)
			off += r;
	}
	if (err) {
		close(fd);
		unlink_data(s->id);
		return err;
	}
	close(s->fd);
	s->fd = fd, s->disk = 1;
	return 0;
}

/* spool_flush - write out the buffer; the sticky error, or 0 */
int spool_flush(struct spool *s)
{
	if (!s->err && !s->disk && s->size > cfg.spool_memory)
		s->err = to_disk(s);	/* too big for memory: bounded RSS */
	if (!s->err)
		s->err = write_all(s->fd, s->buf, s->used);
	s->used = 0;
	return s->err;
}

/* spool_put - buffer message octets; errors stick until the end */
void spool_put(struct spool *s, const char *p, size_t n)
{
	while (n > 0 && !s->err) {
		size_t room = sizeof s->buf - s->used, k = n < room ? n : room;

		memcpy(s->buf + s->used, p, k);
		s->used += k, s->size += k, p += k, n -= k;
		if (s->used == sizeof s->buf)
			spool_flush(s);
	}
}

/* spool_close - close the data file, keeping it on disk */
void spool_close(struct spool *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/* spool_discard - close and remove the data file */
void spool_discard(struct spool *s)
{
	if (s->fd < 0)
		return;
	spool_close(s);
	if (s->disk)
		unlink_data(s->id);
}

/* fsync_dir - make the spool directory's entries durable */
static int fsync_dir(void)
{
	int fd = open(cfg.spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;

	if (fd < 0)
		return errno;
	if (fsync(fd) < 0)
		err = errno;
	close(fd);
	return err;
}

/*
 * write_env - write the envelope durably: tmp, fsync, rename, fsync dir.
 * The rename makes the new envelope appear whole or not at all.
 */
static int write_env(const char *id, time_t arrival, long attempts,
    time_t next, char *const *rcpts, int n)
{
	char tmp[CFG_STR_MAX + QID_MAX + 8], env[CFG_STR_MAX + QID_MAX + 8];
	FILE *f;
	int fd, i, err = 0;

	if (spool_path(tmp, sizeof tmp, id, ".tmp") < 0 ||
	    spool_path(env, sizeof env, id, ".env") < 0)
		return ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		err = errno;
		if (fd >= 0)
			close(fd);
		return err;
	}
	fprintf(f, "T %lld\nA %ld %lld\n", (long long)arrival, attempts,
	    (long long)next);
	for (i = 0; i < n; i++)
		fprintf(f, "R %s\n", rcpts[i]);
	if (fflush(f) == EOF || fsync(fd) < 0)
		err = errno;
	if (fclose(f) == EOF && !err)
		err = errno;
	if (!err && rename(tmp, env) < 0)
		err = errno;
	if (!err)
		err = fsync_dir();
	if (err)
		unlink(tmp);
	return err;
}

/* spool_keep - make message and pending recipients durable; 0 or errno */
int spool_keep(struct spool *s, char *const *rcpts, int n)
{
	int err;

	if ((err = spool_flush(s)) != 0)
		return err;
	if (!s->disk && (err = to_disk(s)) != 0)
		return err;
	if (fsync(s->fd) < 0)
		return errno;
	return write_env(s->id, time(NULL), 0, time(NULL) + cfg.queue_retry,
	    rcpts, n);
}

/* An envelope read back from disk; `buf` holds the recipient lines. */
struct envelope {
	time_t arrival;		/* when the message was accepted */
	long attempts;		/* retries so far */
	time_t next;		/* not before this time */
	int n;			/* pending recipients in rcpt[] */
	char **rcpt;		/* pointers into buf */
	char *buf;		/* the file's text, NUL-ended */
};

/* parse_env - split envelope text into fields; -1 if malformed */
static int parse_env(struct envelope *e, int max)
{
	char *line = e->buf, *nl;
	long long t, nx;
	struct path p;

	e->n = 0;
	if (sscanf(line, "T %lld\nA %ld %lld\n", &t, &e->attempts, &nx) != 3 ||
	    t < 0 || t > TIME_SANE || nx < 0 || nx > TIME_SANE ||
	    e->attempts < 0 || e->attempts > 1000000)
		return -1;	/* written by a session: trust no number */
	e->arrival = t, e->next = nx;
	for (; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
		*nl = '\0';
		if (line[0] != 'R')
			continue;
		if (line[1] != ' ' || e->n >= max || rfc822_mailbox(line + 2, &p) < 0)
			return -1;
		e->rcpt[e->n++] = line + 2;
	}
	return 0;
}

/* read_env - read and parse an open envelope file; -1 if bad */
static int read_env(int fd, struct envelope *e)
{
	long max = cfg.rcpt_limit;
	size_t cap = (size_t)max * ENV_LINE_MAX + 128, len = 0;
	ssize_t r;

	e->buf = malloc(cap + 1);
	e->rcpt = malloc(sizeof *e->rcpt * max);
	if (!e->buf || !e->rcpt)
		return -1;
	while (len < cap && (r = read(fd, e->buf + len, cap - len)) > 0)
		len += r;
	e->buf[len] = '\0';
	if (len == cap || strlen(e->buf) != len)
		return -1;
	return parse_env(e, max);
}

/* backoff - seconds to the next try: doubling from queue_retry */
static time_t backoff(long attempts)
{
	time_t b = cfg.queue_retry;

	while (attempts-- > 0 && b < BACKOFF_MAX)
		b *= 2;
	return b < BACKOFF_MAX ? b : BACKOFF_MAX;
}

/* retry - try each pending recipient; returns how many remain */
static int retry(struct deliverer *d, const char *id, int data, struct envelope *e,
    int *perm)
{
	char why[256];
	int i, kept = 0, r;

	for (i = 0; i < e->n; i++) {
		r = deliverer_deliver(d, data, id, e->rcpt[i], 1, why, sizeof why);
		logmsg(LOG_INFO, "%s retry to=<%s> result=%c %s", id, e->rcpt[i],
		    r, why);
		if (r == DELIVER_PERM)
			*perm = 1;
		if (r != DELIVER_OK)
			e->rcpt[kept++] = e->rcpt[i];
	}
	return kept;
}

/* give_up - hand an undeliverable message to the postmaster */
static int give_up(struct deliverer *d, const char *id, int data)
{
	char why[256];
	int r = deliverer_deliver(d, data, id, "postmaster", 1, why, sizeof why);

	logmsg(LOG_WARNING, "%s gave up; to postmaster result=%c %s", id, r, why);
	return r == DELIVER_OK;
}

/* run_one - retry one queued message whose envelope is open as `fd` */
static void run_one(struct deliverer *d, const char *id, int fd, time_t now)
{
	char path[CFG_STR_MAX + QID_MAX + 8];
	struct envelope e = { 0 };
	int data = -1, perm = 0;

	if (read_env(fd, &e) < 0) {
		logmsg(LOG_ERR, "%s bad envelope; left for the administrator", id);
		goto out;
	}
	if (now < e.next || spool_path(path, sizeof path, id, "") < 0)
		goto out;
	if ((data = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		logmsg(LOG_ERR, "%s data file missing: %s", id, strerror(errno));
		goto out;
	}
	e.n = retry(d, id, data, &e, &perm);
	if (e.n > 0 && (perm || now - e.arrival > cfg.queue_lifetime) &&
	    give_up(d, id, data))
		e.n = 0;
	if (e.n == 0) {
		unlink(path);
		spool_path(path, sizeof path, id, ".env");
		unlink(path);
	} else if (write_env(id, e.arrival, e.attempts + 1,
	    now + backoff(e.attempts + 1), e.rcpt, e.n) != 0) {
		logmsg(LOG_ERR, "%s cannot update envelope", id);
	}
out:
	if (data >= 0)
		close(data);
	free(e.buf);
	free(e.rcpt);
}

/* stale - is this leftover old enough that no session can own it? */
static int stale(const char *name, time_t now)
{
	char path[CFG_STR_MAX + 300];
	struct stat st;

	if (snprintf(path, sizeof path, "%s/%s", cfg.spool_dir, name) >= (int)sizeof path ||
	    lstat(path, &st) < 0)
		return 0;
	return now - st.st_mtime > 2 * cfg.data_timeout + cfg.cmd_timeout;
}

/* clean_one - remove a crashed session's data file or envelope tmp */
static void clean_one(const char *name, time_t now)
{
	char path[CFG_STR_MAX + 300];
	const char *dot = strchr(name, '.');
	struct stat st;

	if (strlen(name) >= QID_MAX + 4 || !stale(name, now))
		return;
	if (dot && strcmp(dot, ".tmp") != 0)
		return;
	if (!dot && snprintf(path, sizeof path, "%s/%s.env", cfg.spool_dir, name) > 0 &&
	    lstat(path, &st) == 0)
		return;		/* a queued message, not a leftover */
	snprintf(path, sizeof path, "%s/%s", cfg.spool_dir, name);
	if (unlink(path) == 0)
		logmsg(LOG_INFO, "%s removed leftover spool file", name);
}

/* queue_run - one pass over the spool: retry what is due, clean up */
int queue_run(struct deliverer *d, time_t now)
{
	DIR *dir = opendir(cfg.spool_dir);
	struct dirent *de;

	if (!dir)
		return -1;
	while ((de = readdir(dir)) != NULL) {
		char id[QID_MAX], path[CFG_STR_MAX + QID_MAX + 8];
		const char *dot = strrchr(de->d_name, '.');
		int fd;

		if (de->d_name[0] == '.')
			continue;
		if (!dot || strcmp(dot, ".env") != 0 || dot - de->d_name >= QID_MAX) {
			clean_one(de->d_name, now);
			continue;
		}
		snprintf(id, sizeof id, "%.*s", (int)(dot - de->d_name), de->d_name);
		if (id[strspn(id, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")])
			continue;	/* not a name we made */
		if (spool_path(path, sizeof path, id, ".env") < 0 ||
		    (fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)	/* another run has it */
			run_one(d, id, fd, now);
		close(fd);
	}
	closedir(dir);
	return 0;
}
