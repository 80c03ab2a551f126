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
 * grows, so memory stays bounded whatever the size.  A session's next
 * message reuses the memory file of its last one (spool_recycle), emptied
 * with ftruncate: one call instead of a close and a memfd_create per
 * message, and the spool writes with pwrite so no lseek is needed.  A
 * file one of our deliverers may still hold (it timed out or broke) is
 * never reused.
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

#include "strcopy.h"
#include "config.h"
#include "log.h"
#include "proc.h"
#include "queue.h"
#include "resolve.h"
#include "route.h"
#include "rfc822.h"
#include "storage.h"

#define ENV_LINE_MAX	(ENTRY_MAX + 8)
#define BACKOFF_MAX	14400	/* seconds: retry at least every 4 hours */
#define TIME_SANE	(1LL << 40)	/* larger times in an envelope are bad */

/* queue_id - unique on this host: time, microseconds, pid, counter */
int queue_id(char *dst, size_t cap, unsigned long seq)
{
	char sec[24], usec[24], pid[24], sq[24];
	const char *parts[] = { sec, usec, "p", pid, "s", sq, NULL };
	struct timeval tv;

	gettimeofday(&tv, NULL);	/* "%08llX%05lXp%lXs%lX" without printf */
	str_uint(sec, (unsigned long long)tv.tv_sec, 16, 8, 1);
	str_uint(usec, (unsigned long long)tv.tv_usec, 16, 5, 1);
	str_uint(pid, (unsigned long long)log_pid(), 16, 0, 1);
	str_uint(sq, seq, 16, 0, 1);
	return str_join(dst, cap, parts) >= cap ? -1 : 0;
}

/* spool_path - "spool_dir/ID<suffix>"; -1 if it would not fit */
static int spool_path(char *dst, size_t cap, const char *id, const char *suffix)
{
	int n = snprintf(dst, cap, "%s/%s%s", cfg.spool_dir, id, suffix);

	return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

/*
 * locked_create - create spool_dir/ID<suffix> and lock it (flock) for as
 * long as the descriptor lives: the cleaner never removes a locked file,
 * so a slow session's data file cannot vanish under it.
 */
static int locked_create(const char *id, const char *suffix, int excl)
{
	char path[CFG_STR_MAX + QID_MAX + 8];
	int fd, err;

	if (spool_path(path, sizeof path, id, suffix) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(path, O_RDWR | O_CREAT | (excl ? O_EXCL : O_TRUNC) | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
		err = errno;	/* a cleaner looks at it this instant: retry later */
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* disk_fd - create the named data file spool_dir/ID, locked */
static int disk_fd(const char *id)
{
	return locked_create(id, "", 1);
}

/* mem_fd - an anonymous file in memory; -1 where the system has none */
static int mem_fd(void)
{
	return memfd_create("smtpd-spool", MFD_CLOEXEC);
}

/* spare_fd - the kept memory file, emptied, or -1 */
static int spare_fd(struct spool *s)
{
	int fd = s->has_spare ? s->spare : -1;

	s->has_spare = 0;
	if (fd >= 0 && ftruncate(fd, 0) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* spool_create - open a new data file; 0 or an errno value */
int spool_create(struct spool *s, unsigned long seq)
{
	s->fd = -1, s->err = 0, s->size = 0, s->used = 0, s->lent = 0;
	if (queue_id(s->id, sizeof s->id, seq) < 0)
		return ENAMETOOLONG;
	if (cfg.spool_memory && (s->fd = spare_fd(s)) < 0)
		s->fd = mem_fd();
	s->disk = s->fd < 0;
	if (s->disk)
		s->fd = disk_fd(s->id);
	return s->fd < 0 ? errno : 0;
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
		else if ((err = storage_write_all(fd, buf, r)) == 0)
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
		s->err = storage_pwrite_all(s->fd, s->buf, s->used, s->size - s->used);
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

/* spool_recycle - end the transaction as spool_discard, but keep a
 * memory file no one else can hold for the session's next message */
void spool_recycle(struct spool *s)
{
	if (s->fd < 0 || s->disk || s->lent || s->has_spare) {
		spool_discard(s);
		return;
	}
	s->spare = s->fd, s->has_spare = 1;
	s->fd = -1;
}

/* spool_free - the end of the session: close the kept memory file too */
void spool_free(struct spool *s)
{
	spool_discard(s);
	if (s->has_spare)
		close(s->spare);
	s->has_spare = 0;
}

/* fsync_dir - make the spool directory's entries durable (the seam) */
static int fsync_dir(void)
{
	int fd = open(cfg.spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err;

	if (fd < 0)
		return errno;
	err = storage_fsync(fd);
	close(fd);
	return err;
}

/* env_text - the envelope's lines into a malloc'd buffer; its length */
static char *env_text(time_t arrival, long attempts, time_t next,
    char *const *rcpts, int n, const char *why, size_t *len)
{
	size_t cap = (size_t)n * (ADDR_MAX + 4) + 512;
	char *text = malloc(cap), safe[256];
	int i;

	if (!text)
		return NULL;
	*len = snprintf(text, cap, "T %lld\nA %ld %lld\n", (long long)arrival,
	    attempts, (long long)next);
	for (i = 0; i < n; i++)		/* an address: < ADDR_MAX octets */
		*len += snprintf(text + *len, cap - *len, "R %s\n", rcpts[i]);
	log_text(safe, sizeof safe, why);	/* no line break can get in */
	*len += snprintf(text + *len, cap - *len, "E %s\n", safe);	/* for -Q */
	return text;
}

/*
 * write_env - write the envelope durably: tmp, fsync, rename, fsync dir,
 * every step through the storage seam (so ENOSPC, EDQUOT and EIO can be
 * forced at each).  The rename makes the new envelope appear whole or
 * not at all; on any failure the tmp file goes.
 */
static int write_env(const char *id, time_t arrival, long attempts,
    time_t next, char *const *rcpts, int n, const char *why)
{
	char tmp[CFG_STR_MAX + QID_MAX + 8], env[CFG_STR_MAX + QID_MAX + 8];
	char *text;
	size_t len;
	int fd, err;

	if (spool_path(tmp, sizeof tmp, id, ".tmp") < 0 ||
	    spool_path(env, sizeof env, id, ".env") < 0)
		return ENAMETOOLONG;
	if (!(text = env_text(arrival, attempts, next, rcpts, n, why, &len)))
		return ENOMEM;
	if ((fd = locked_create(id, ".tmp", 0)) < 0) {
		err = errno;
	} else {
		if ((err = storage_write_all(fd, text, len)) == 0)
			err = storage_fsync(fd);
		if (close(fd) < 0 && !err)
			err = errno;
	}
	free(text);
	if (!err)
		err = storage_rename(AT_FDCWD, tmp, AT_FDCWD, env);
	if (!err)
		err = fsync_dir();
	if (err)
		unlink(tmp);
	return err;
}

/* linked - does the open data file still have a name? 1, 0, or -1 */
static int linked(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -1;
	return st.st_nlink > 0;
}

/*
 * spool_keep - make message and pending recipients durable; 0 or errno.
 * An envelope is never committed for a data file that lost its name
 * (removed by someone while we read): the octets we still hold through
 * the descriptor are written to a new file first, and a name lost after
 * the envelope's rename withdraws the envelope (4xx, the sender keeps it).
 */
int spool_keep(struct spool *s, char *const *rcpts, int n, const char *why)
{
	char env[CFG_STR_MAX + QID_MAX + 8];
	int err;

	if ((err = spool_flush(s)) != 0)
		return err;
	if (s->disk && linked(s->fd) == 0) {
		logmsg(LOG_WARNING, "%s spool result=relinked reason=\"data file removed "
		    "while the session read it\"", s->id);
		s->disk = 0;	/* copy it back, as a memory spool would be */
	}
	if (!s->disk && (err = to_disk(s)) != 0)
		return err;
	if ((err = storage_fsync(s->fd)) != 0)
		return err;
	err = write_env(s->id, time(NULL), 0, time(NULL) + cfg.queue_retry, rcpts, n, why);
	if (!err && linked(s->fd) != 1)
		err = EIO;
	if (err && spool_path(env, sizeof env, s->id, ".env") == 0)
		unlink(env);	/* renamed but not durable, or no data: withdrawn */
	return err;
}

/* An envelope read back from disk; `buf` holds the recipient lines. */
struct envelope {
	time_t arrival;		/* when the message was accepted */
	long attempts;		/* retries so far */
	time_t next;		/* not before this time */
	int n;			/* pending recipients in rcpt[] */
	char **rcpt;		/* pointers into buf */
	const char *why;	/* last error ("E" line), "" if none */
	char *buf;		/* the file's text, NUL-ended */
};

/* valid_entry - "MAILBOX ADDR" (resolve.h), or a bare address (older
 * envelopes); the deliverer checks the mailbox again */
static int valid_entry(const char *s)
{
	char mailbox[MAILBOX_MAX], addr[ADDR_MAX];
	struct path p;

	if (!strchr(s, ' '))
		return rfc822_mailbox(s, &p) == 0;
	return resolve_entry(s, mailbox, addr) == 0 && rfc822_mailbox(addr, &p) == 0;
}

/* parse_env - split envelope text into fields; -1 if malformed */
static int parse_env(struct envelope *e, int max)
{
	char *line = e->buf, *nl;
	long long t, nx;

	e->n = 0;
	e->why = "";
	if (sscanf(line, "T %lld\nA %ld %lld\n", &t, &e->attempts, &nx) != 3 ||
	    t < 0 || t > TIME_SANE || nx < 0 || nx > TIME_SANE ||
	    e->attempts < 0 || e->attempts > 1000000)
		return -1;	/* written by a session: trust no number */
	e->arrival = t, e->next = nx;
	for (; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
		*nl = '\0';
		if (line[0] == 'E' && line[1] == ' ')
			e->why = line + 2;
		if (line[0] != 'R')
			continue;
		if (line[1] != ' ' || e->n >= max || !valid_entry(line + 2))
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

/* log_attempt - one line for a queue run's delivery attempt */
static void log_attempt(const char *id, const char *event, const char *rcpt,
    const struct deliver_result *r)
{
	char to[ADDR_MAX * 4], why[sizeof r->text * 4];

	rcpt = resolve_entry_addr(rcpt);
	log_escape(to, sizeof to, rcpt, strlen(rcpt));
	log_text(why, sizeof why, r->text);
	logmsg(r->status == DELIVER_OK ? LOG_INFO : LOG_WARNING,
	    "%s %s to=<%s> result=%s reason=\"%s\"", id, event, to,
	    deliver_status_word(r->status), why);
}

/* retry - try each pending recipient; returns how many remain */
static int retry(struct deliverer *d, const char *id, int data, struct envelope *e,
    int *perm, char *why, size_t cap)
{
	struct deliver_result r, *lm = calloc(e->n, sizeof *lm);
	int i, kept = 0;

	if (lm)
		route_retry(id, data, e->rcpt, e->n, lm);	/* the LMTP ones */
	for (i = 0; i < e->n; i++) {
		if (lm && lm[i].status)
			r = lm[i];
		else if (route_is_lmtp(e->rcpt[i]))
			r.status = DELIVER_TEMP, r.why = WHY_REMOTE,
			    snprintf(r.text, sizeof r.text, "LMTP route gone or no memory");
		else
			deliverer_deliver(d, data, -1, id, e->rcpt[i], 1, &r);
		log_attempt(id, "retry", e->rcpt[i], &r);
		if (r.status == DELIVER_PERM)
			*perm = 1;
		if (r.status != DELIVER_OK) {
			e->rcpt[kept++] = e->rcpt[i];
			str_copy(why, cap, r.text);
		}
	}
	free(lm);
	return kept;
}

/* to_postmaster - deliver spool file `data` (queue id `id`) to the postmaster */
static void to_postmaster(struct deliverer *d, const char *id, int data,
    struct deliver_result *r)
{
	char entry[ENTRY_MAX], *one[1] = { entry };
	struct target t[1];
	struct path p;

	/* a postmaster whose mailbox is behind LMTP gets it from there */
	if (rfc822_mailbox("postmaster", &p) == 0 &&
	    resolve_rcpt(id, &p, t, 1) == 1 && t[0].lmtp[0]) {
		snprintf(entry, sizeof entry, "%s %s", LMTP_MAILBOX, t[0].addr);
		route_retry(id, data, one, 1, r);
	} else {
		deliverer_deliver(d, data, -1, id, "postmaster", 1, r);
	}
}

/* give_up - hand an undeliverable message to the postmaster */
static int give_up(struct deliverer *d, const char *id, int data)
{
	struct deliver_result r = { 0 };

	to_postmaster(d, id, data, &r);
	log_attempt(id, "gaveup", "postmaster", &r);
	return r.status == DELIVER_OK;
}

/*
 * lost_data - an envelope whose data file is gone: the copies it names
 * are lost, so the postmaster gets a notice listing them, and the
 * envelope goes; 1 when the notice was delivered.  The notice:
 *   Return-Path: <>
 *   Subject: smtpd: queued message ID lost its data file
 *   (blank line, then one pending recipient per line)
 */
static int lost_data(struct deliverer *d, const char *id, const struct envelope *e)
{
	struct spool *s = calloc(1, sizeof *s);	/* zeroed: no spare memfd */
	char line[ADDR_MAX + 128], why[sizeof ((struct deliver_result *)0)->text * 4];
	struct deliver_result r;
	int i;

	if (!s || spool_create(s, 1) != 0) {
		free(s);
		return 0;
	}
	snprintf(line, sizeof line, "Return-Path: <>\nFrom: <postmaster@%s>\n"
	    "Subject: smtpd: queued message %s lost its data file\n\n"
	    "These recipients never got the message:\n", cfg.hostname, id);
	spool_put(s, line, strlen(line));
	for (i = 0; i < e->n; i++) {
		snprintf(line, sizeof line, "  <%s>\n", resolve_entry_addr(e->rcpt[i]));
		spool_put(s, line, strlen(line));
	}
	r.status = DELIVER_TEMP;
	snprintf(r.text, sizeof r.text, "4.3.0 cannot write the notice");
	if (spool_flush(s) == 0)
		to_postmaster(d, s->id, s->fd, &r);
	log_text(why, sizeof why, r.text);
	logmsg(LOG_ERR, "%s lost reason=data-file-missing nrcpt=%d notice=%s "
	    "result=%s reply=\"%s\"", id, e->n, s->id,
	    r.status == DELIVER_OK ? "delivered" : "deferred", why);
	spool_discard(s);
	free(s);
	return r.status == DELIVER_OK;
}

/* run_one - retry one queued message whose envelope is open as `fd` */
static void run_one(struct deliverer *d, const char *id, int fd, time_t now,
    int force)
{
	char path[CFG_STR_MAX + QID_MAX + 8], why[256];
	struct envelope e = { 0 };
	int data = -1, perm = 0;

	if (read_env(fd, &e) < 0) {
		logmsg(LOG_ERR, "%s queue result=skipped reason=\"bad envelope; left for the administrator\"", id);
		goto out;
	}
	if ((now < e.next && !force) || spool_path(path, sizeof path, id, "") < 0)
		goto out;
	if ((data = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 &&
	    errno != ENOENT) {
		logmsg(LOG_ERR, "%s queue result=skipped reason=\"data file unreadable: %s\"",
		    id, strerror(errno));
		goto out;
	}
	snprintf(why, sizeof why, "%s", data < 0 ? "data file missing" : e.why);
	if (data < 0 && lost_data(d, id, &e))
		e.n = 0;	/* the postmaster knows; nothing more to try */
	else if (data >= 0)
		e.n = retry(d, id, data, &e, &perm, why, sizeof why);
	if (data >= 0 && e.n > 0 && (perm || now - e.arrival > cfg.queue_lifetime) &&
	    give_up(d, id, data))
		e.n = 0;
	if (e.n == 0) {
		/* the envelope first: a run killed between the two leaves a
		 * data file without one, which clean_one() removes when stale;
		 * the other order left an envelope whose data was gone, and a
		 * "lost" notice for a message that had been delivered */
		char env[CFG_STR_MAX + QID_MAX + 8];

		spool_path(env, sizeof env, id, ".env");
		unlink(env);
		unlink(path);
	} else if (write_env(id, e.arrival, e.attempts + 1,
	    now + backoff(e.attempts + 1), e.rcpt, e.n, why) != 0) {
		logmsg(LOG_ERR, "%s queue result=error reason=\"cannot update envelope\"", id);
	}
out:
	if (data >= 0)
		close(data);
	free(e.buf);
	free(e.rcpt);
}

/* stale - is this leftover old enough that no session can own it? */
static int stale(const struct stat *st, time_t now)
{
	return now - st->st_mtime > 2 * cfg.data_timeout + cfg.cmd_timeout;
}

/*
 * clean_one - remove a crashed session's data file or envelope tmp.
 * A live session holds a lock on its files (locked_create), so we take
 * the lock ourselves first: failing that, the owner is alive.  Old age
 * is checked too, under the lock, which closes the instant between a
 * session's create and its flock.
 */
static void clean_one(const char *name, time_t now)
{
	char path[CFG_STR_MAX + 300];
	const char *dot = strchr(name, '.');
	char safe[(QID_MAX + 4) * 4];
	struct stat st, at;
	int fd;

	if (strlen(name) >= QID_MAX + 4 || (dot && strcmp(dot, ".tmp") != 0))
		return;
	if (!dot && snprintf(path, sizeof path, "%s/%s.env", cfg.spool_dir, name) > 0 &&
	    lstat(path, &st) == 0)
		return;		/* a queued message, not a leftover */
	if (snprintf(path, sizeof path, "%s/%s", cfg.spool_dir, name) >= (int)sizeof path ||
	    (fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0)
		return;
	log_escape(safe, sizeof safe, name, strlen(name));
	if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0 &&
	    S_ISREG(st.st_mode) && stale(&st, now) && lstat(path, &at) == 0 &&
	    at.st_ino == st.st_ino && at.st_dev == st.st_dev && unlink(path) == 0)
		logmsg(LOG_INFO, "%s cleanup result=removed reason=\"leftover spool file\"", safe);
	close(fd);
}

/* valid_id - a queue id as we make them: 1..31 letters and digits */
static int valid_id(const char *id)
{
	size_t n = strlen(id);

	return n > 0 && n < QID_MAX && id[strspn(id, "0123456789"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")] == '\0';
}

/* env_id - the queue id of an "ID.env" name into id; 0 if not one */
static int env_id(const char *name, char *id)
{
	const char *dot = strrchr(name, '.');

	if (!dot || strcmp(dot, ".env") != 0 || dot - name >= QID_MAX)
		return 0;
	snprintf(id, QID_MAX, "%.*s", (int)(dot - name), name);
	return valid_id(id);
}

/* open_env - open and lock ID.env; -1 when absent or another run has it */
static int open_env(const char *id)
{
	char path[CFG_STR_MAX + QID_MAX + 8];
	int fd;

	if (spool_path(path, sizeof path, id, ".env") < 0 ||
	    (fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * scan - one pass over the spool: retry each message (only `one` when
 * given; all of them regardless of back-off when `force`), clean up.
 * Returns the number of messages tried, or -1.
 */
static int scan(struct deliverer *d, time_t now, int force, const char *one)
{
	DIR *dir = opendir(cfg.spool_dir);
	struct dirent *de;
	int fd, tried = 0;

	if (!dir)
		return -1;
	while ((de = readdir(dir)) != NULL) {
		char id[QID_MAX];

		if (de->d_name[0] == '.')
			continue;
		if (!env_id(de->d_name, id)) {
			if (!one)
				clean_one(de->d_name, now);
			continue;
		}
		if ((one && strcmp(id, one) != 0) || (fd = open_env(id)) < 0)
			continue;
		run_one(d, id, fd, now, force);
		close(fd);
		tried++;
	}
	closedir(dir);
	return tried;
}

/* queue_run - the timer's pass: retry what is due, clean up; 0 or -1 */
int queue_run(struct deliverer *d, time_t now)
{
	return scan(d, now, 0, NULL) < 0 ? -1 : 0;
}

/* queue_retry_now - by hand: retry everything (or one id) now */
int queue_retry_now(struct deliverer *d, const char *one)
{
	if (one && !valid_id(one)) {
		errno = EINVAL;
		return -1;
	}
	return scan(d, time(NULL), 1, one);
}

/* sender_of - the Return-Path address of data file ID, for -Q */
static void sender_of(const char *id, char *dst, size_t cap, off_t *size)
{
	char path[CFG_STR_MAX + QID_MAX + 8], line[ADDR_MAX + 32];
	struct stat st;
	ssize_t n;
	int fd;

	snprintf(dst, cap, "?");
	*size = -1;
	if (spool_path(path, sizeof path, id, "") < 0 ||
	    (fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return;
	if (fstat(fd, &st) == 0)
		*size = st.st_size;
	n = read(fd, line, sizeof line - 1);
	close(fd);
	if (n < 15 || strncmp(line, "Return-Path: <", 14) != 0)
		return;
	line[n] = '\0';
	line[14 + strcspn(line + 14, ">\n")] = '\0';
	log_escape(dst, cap, line + 14, strlen(line + 14));
}

/* list_one - one -Q entry: id, age, size, sender, last error, recipients */
static void list_one(FILE *out, const char *id, int fd, time_t now)
{
	struct envelope e = { 0 };
	char from[ADDR_MAX * 4], to[ADDR_MAX * 4];
	off_t size;
	int i;

	if (read_env(fd, &e) == 0) {
		sender_of(id, from, sizeof from, &size);
		fprintf(out, "%s  age=%lds  size=%lld  attempts=%ld  from=<%s>\n", id,
		    (long)(now - e.arrival), (long long)size, e.attempts, from);
		fprintf(out, "    last error: %s\n", e.why[0] ? e.why : "-");
		for (i = 0; i < e.n; i++) {
			log_escape(to, sizeof to, resolve_entry_addr(e.rcpt[i]),
			    strlen(resolve_entry_addr(e.rcpt[i])));
			fprintf(out, "    to=<%s>\n", to);
		}
	} else {
		fprintf(out, "%s  bad envelope\n", id);
	}
	free(e.buf);
	free(e.rcpt);
}

/* queue_list - smtpd -Q: every queued message, like mailq; count or -1 */
int queue_list(FILE *out)
{
	DIR *dir = opendir(cfg.spool_dir);
	struct dirent *de;
	char id[QID_MAX], path[CFG_STR_MAX + QID_MAX + 8];
	int fd, n = 0;

	if (!dir)
		return -1;
	while ((de = readdir(dir)) != NULL) {
		if (!env_id(de->d_name, id) || spool_path(path, sizeof path, id, ".env") < 0 ||
		    (fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
			continue;
		list_one(out, id, fd, time(NULL));
		close(fd);
		n++;
	}
	closedir(dir);
	fprintf(out, "%d message%s in the queue\n", n, n == 1 ? "" : "s");
	return n;
}

/* queue_delete - smtpd -D ID: remove one queued message; 0 or -1 */
int queue_delete(const char *id)
{
	char path[CFG_STR_MAX + QID_MAX + 8];
	int fd;

	if (!valid_id(id)) {
		errno = EINVAL;
		return -1;
	}
	if ((fd = open_env(id)) < 0)
		return -1;	/* absent, or a queue run has it now */
	spool_path(path, sizeof path, id, ".env");	/* envelope first, as in run_one */
	if (unlink(path) < 0) {
		close(fd);
		return -1;
	}
	spool_path(path, sizeof path, id, "");
	unlink(path);
	fsync_dir();
	close(fd);
	logmsg(LOG_NOTICE, "%s deleted result=removed reason=\"by the administrator\"", id);
	return 0;
}

/* first_failure - keep the first failed delivery's outcome in *res */
static void first_failure(struct deliver_result *res, const struct deliver_result *r)
{
	if (res->status == DELIVER_OK)
		*res = *r;
}

/*
 * queue_accept - the end of data: deliver to each recipient now, queue
 * the ones that could not be served yet (`done`, when not NULL, holds
 * outcomes already known, status 0 for "deliver here").  ACCEPT_ALL and ACCEPT_QUEUED
 * allow the 250; otherwise *res says why nothing was accepted.
 */
int queue_accept(struct deliverer *d, struct spool *sp, char *const *rcpt, int n,
    const struct deliver_result *done, struct deliver_result *res)
{
	struct deliver_result r;
	char **pending = calloc(n, sizeof *pending);
	int i, ok = 0, npend = 0, err, out = ACCEPT_ALL;

	res->status = DELIVER_OK;
	for (i = 0; i < n; i++) {
		if (done && done[i].status)
			r = done[i];	/* delivered elsewhere (LMTP): route.c */
		else
			deliverer_deliver(d, sp->fd, sp->size, sp->id, rcpt[i], 0, &r);
		if (r.status == DELIVER_OK) {
			ok++;
			continue;
		}
		sp->lent |= r.why == WHY_AGENT;	/* it may read the file still */
		first_failure(res, &r);
		if (pending)
			pending[npend++] = rcpt[i];
	}
	if (ok == 0 || (ok < n && !pending)) {
		out = ACCEPT_NONE;
	} else if (ok < n && (err = spool_keep(sp, pending, npend, res->text)) != 0) {
		res->status = DELIVER_TEMP, res->why = deliver_why_errno(err);
		snprintf(res->text, sizeof res->text, "cannot queue: %s", strerror(err));
		out = ACCEPT_SPOOL;
	} else if (ok < n) {
		spool_close(sp);	/* kept for the queue run */
		logmsg(LOG_INFO, "%s queued pending=%d", sp->id, npend);
		out = ACCEPT_QUEUED;
	}
	free(pending);
	return out;
}

/* queue_child - smtpd -q (and the supervisor's timer): a deliverer, no
 * privileges, one queue run; by hand (`by_hand`), everything now */
int queue_child(int by_hand, const char *one)
{
	struct deliverer d;
	int r;

	if (proc_start_deliverer(&d) < 0)
		fatal("cannot start deliverer");
	if (!by_hand) {
		r = queue_run(&d, time(NULL)) < 0 ? 111 : 0;
	} else if ((r = queue_retry_now(&d, one)) < 0) {
		fprintf(stderr, "smtpd: queue: %s\n", strerror(errno));
		r = 111;
	} else {
		printf("smtpd: tried %d queued message%s\n", r, r == 1 ? "" : "s");
		r = 0;
	}
	deliverer_stop(&d);
	return r;
}

/*
 * spool_replace_head - a milter changed the header: the data file becomes
 * head[0..n) followed by the old file from offset `from` on.  Written to
 * a new file (memory, or spool_dir/ID.new renamed over ID), so a failure
 * leaves the old one intact; except that a memory spool whose whole new
 * content is in head (from at its end) is overwritten in place: two
 * system calls instead of seven, and a failure fails the message, whose
 * spool copy is then dropped anyway.  0, or an errno value.
 */
int spool_replace_head(struct spool *s, off_t from, const char *head, size_t n)
{
	char path[CFG_STR_MAX + QID_MAX + 8], tmp[CFG_STR_MAX + QID_MAX + 8];
	char buf[65536];
	int fd, err;

	if ((err = spool_flush(s)) != 0)
		return err;
	if (!s->disk && from >= s->size) {
		if ((err = storage_pwrite_all(s->fd, head, n, 0)) != 0 ||
		    ((off_t)n < s->size && ftruncate(s->fd, n) < 0))
			return err ? err : errno;
		s->size = n;
		return 0;
	}
	if (spool_path(path, sizeof path, s->id, "") < 0 ||
	    spool_path(tmp, sizeof tmp, s->id, ".new") < 0)
		return ENAMETOOLONG;
	fd = s->disk ? open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600) :
	    mem_fd();
	if (fd < 0)
		return errno;
	err = storage_write_all(fd, head, n);
	while (!err && from < s->size) {
		ssize_t r = pread(s->fd, buf, sizeof buf, from);

		if (r <= 0)
			err = r < 0 ? errno : EIO;
		else if ((err = storage_write_all(fd, buf, r)) == 0)
			from += r;
	}
	if (!err && s->disk && storage_rename(AT_FDCWD, tmp, AT_FDCWD, path) < 0)
		err = errno;
	if (err) {
		close(fd);
		if (s->disk)
			unlink(tmp);
		return err;
	}
	close(s->fd);
	s->fd = fd, s->size = lseek(fd, 0, SEEK_END);
	return 0;
}
