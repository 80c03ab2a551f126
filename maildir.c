/*
 * maildir.c - Maildir delivery: unique names, tmp -> fsync -> new -> fsync.
 *
 * Interface: maildir_deliver() writes one message into DIR/new durably
 * and returns 0, or an errno value with nothing left behind.
 * Invariants (the Maildir specification, cr.yp.to/proto/maildir.html):
 *  - a file appears in new/ only complete and fsync'd; new/ itself is
 *    fsync'd before we report success, so the name survives a crash;
 *  - names are unique across processes and hosts: time, microseconds,
 *    pid, a per-process counter and the host name, plus ",S=<size>";
 *    the caller's tag (queue id and recipient) goes in too, so a retry
 *    after a crash can see that the copy had already landed;
 *  - files left in tmp/ by a crash are removed after 36 hours, as the
 *    specification asks, by an occasional scan during delivery;
 *  - no symlink is followed at the Maildir, tmp/, new/ or the file
 *    itself (O_NOFOLLOW at each step, openat from the directory fd).
 * Runs with the recipient's uid/gid; it never changes credentials.
 * Descriptor cache (m->keep, the deliverer): tmp/ and new/ of the last
 * MD_CACHE_N Maildirs stay open, keyed by (uid, gid, path) -- one
 * user's delivery never gets another's descriptors -- and are reused
 * only while lstat of the path still shows the directory (device and
 * inode) they were opened from; a symlink put there, or a Maildir
 * moved or recreated, fails that check and the path is opened afresh
 * (O_NOFOLLOW at each step, as always).  A cached delivery that fails
 * with ENOENT (tmp/ or new/ removed under us) is tried once more with
 * fresh descriptors.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "maildir.h"
#include "strcopy.h"
#include "storage.h"

/* open_dir - open a directory below `at` without following a symlink */
static int open_dir(int at, const char *name, int create)
{
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(at, name, 0700) < 0 && errno != EEXIST)
			return -1;
		fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	return fd;
}

/* maildir_open - open DIR/tmp and DIR/new, creating a missing Maildir */
int maildir_open(const char *dir, int *tmpfd, int *newfd)
{
	int top = open_dir(AT_FDCWD, dir, 1), curfd = -1, err = 0;

	if (top < 0)
		return errno == ELOOP || errno == ENOTDIR ? ELOOP : errno;
	if ((*tmpfd = open_dir(top, "tmp", 0)) < 0 && errno == ENOENT) {
		/* a new Maildir: make all three (cur/ is only checked here) */
		if ((*tmpfd = open_dir(top, "tmp", 1)) < 0)
			err = errno;
		if ((curfd = open_dir(top, "cur", 1)) < 0 && !err)
			err = errno;
	} else if (*tmpfd < 0) {
		err = errno;
	}
	if ((*newfd = open_dir(top, "new", 1)) < 0 && !err)
		err = errno;
	close(top);
	if (curfd >= 0)
		close(curfd);
	if (!err)
		return 0;
	if (*tmpfd >= 0)
		close(*tmpfd);
	if (*newfd >= 0)
		close(*newfd);
	return err == ENOTDIR ? ELOOP : err;
}

#define MD_CACHE_N	8	/* Maildirs kept open by the deliverer */

/* one Maildir's open tmp/ and new/, for one identity */
struct md_ent {
	int tmpfd, newfd;	/* -1 when the slot is free */
	uid_t uid;
	gid_t gid;
	dev_t dev;		/* the Maildir directory itself */
	ino_t ino;
	char path[4096];
};

static struct md_ent md_cache[MD_CACHE_N];
static unsigned md_next;	/* next slot to reuse, round robin */
static int md_ready;

/* md_drop - close one slot */
static void md_drop(struct md_ent *e)
{
	if (e->tmpfd >= 0)
		close(e->tmpfd), close(e->newfd);
	e->tmpfd = e->newfd = -1;
	e->path[0] = '\0';
}

/* maildir_forget - close every cached descriptor */
void maildir_forget(void)
{
	int i;

	for (i = 0; i < MD_CACHE_N; i++)
		if (md_ready)
			md_drop(&md_cache[i]);
}

/* md_lookup - the cached slot for (uid, gid, dir) if the path still
 * names the same directory (not a symlink); else NULL, slot dropped */
static struct md_ent *md_lookup(const struct maildir_msg *m, const char *dir)
{
	struct stat st;
	int i;

	if (!md_ready) {
		for (i = 0; i < MD_CACHE_N; i++)
			md_cache[i].tmpfd = md_cache[i].newfd = -1;
		md_ready = 1;
	}
	for (i = 0; i < MD_CACHE_N; i++) {
		struct md_ent *e = &md_cache[i];

		if (e->tmpfd < 0 || e->uid != m->uid || e->gid != m->gid ||
		    strcmp(e->path, dir) != 0)
			continue;
		if (m->dirst)	/* the caller's lstat of this very path, just now */
			st = *m->dirst;
		else if (fstatat(AT_FDCWD, dir, &st, AT_SYMLINK_NOFOLLOW) < 0)
			st.st_mode = 0;
		if (S_ISDIR(st.st_mode) && st.st_dev == e->dev && st.st_ino == e->ino)
			return e;
		md_drop(e);
		return NULL;
	}
	return NULL;
}

/* md_open - tmp/ and new/ for a delivery: cached (m->keep) or fresh;
 * *slot is the cache slot used, or NULL when the caller must close */
static int md_open(const struct maildir_msg *m, const char *dir, int *tmpfd,
    int *newfd, struct md_ent **slot)
{
	struct md_ent *e;
	struct stat st;
	int err;

	*slot = NULL;
	if (m->keep && (e = md_lookup(m, dir)) != NULL) {
		*tmpfd = e->tmpfd, *newfd = e->newfd, *slot = e;
		return 0;
	}
	if ((err = maildir_open(dir, tmpfd, newfd)) != 0 || !m->keep ||
	    strlen(dir) >= sizeof e->path ||
	    fstatat(*tmpfd, "..", &st, 0) < 0)	/* the Maildir we did open */
		return err;
	e = &md_cache[md_next++ % MD_CACHE_N];
	md_drop(e);
	e->tmpfd = *tmpfd, e->newfd = *newfd, e->uid = m->uid, e->gid = m->gid;
	e->dev = st.st_dev, e->ino = st.st_ino;
	strcpy(e->path, dir);
	*slot = e;
	return 0;
}

/* safe_host - host name with '/' and ':' encoded as the spec asks */
static void safe_host(char *dst, size_t cap, const char *host)
{
	size_t n = 0;

	for (; *host && n + 5 < cap; host++) {
		if (*host == '/' || *host == ':') {
			n += snprintf(dst + n, cap - n, "\\%03o", (unsigned char)*host);
		} else if ((unsigned char)*host > 32 && *host != 127) {
			dst[n++] = *host;
		}
	}
	dst[n] = '\0';
}

/* maildir_unique - "SECS.MusecPpidQseq[_TAG].host" (Maildir unique name) */
int maildir_unique(char *dst, size_t cap, const char *host, unsigned long seq,
    const char *tag)
{
	char h[128], sec[24], usec[24], pid[24], sq[24];
	struct timeval tv;
	const char *parts[] = { sec, ".M", usec, "P", pid, "Q", sq, tag ? "_" : "",
	    tag ? tag : "", ".", h, NULL };

	gettimeofday(&tv, NULL);
	safe_host(h, sizeof h, host);
	str_uint(sec, (unsigned long long)tv.tv_sec, 10, 0, 0);
	str_uint(usec, (unsigned long long)tv.tv_usec, 10, 6, 0);
	str_uint(pid, (unsigned long long)log_pid(), 10, 0, 0);
	str_uint(sq, seq, 10, 0, 0);
	return str_join(dst, cap, parts) >= cap ? -1 : 0;
}

/* dir_has - does DIR/sub hold a name containing "_TAG."? */
static int dir_has(const char *dir, const char *sub, const char *mark)
{
	char path[4096];
	struct dirent *de;
	DIR *d;
	int found = 0;

	if (snprintf(path, sizeof path, "%s/%s", dir, sub) >= (int)sizeof path ||
	    !(d = opendir(path)))
		return 0;
	while (!found && (de = readdir(d)) != NULL)
		found = strstr(de->d_name, mark) != NULL;
	closedir(d);
	return found;
}

/* maildir_has_tag - was a copy with this tag already delivered? */
int maildir_has_tag(const char *dir, const char *tag)
{
	char mark[MAILDIR_NAME_MAX];

	if (snprintf(mark, sizeof mark, "_%s.", tag) >= (int)sizeof mark)
		return 0;
	return dir_has(dir, "new", mark) || dir_has(dir, "cur", mark);
}

/* copy_body - head, then the spool bytes [off, off+len) (the first
 * prelen of them from pre), into fd */
static int copy_body(int fd, const struct maildir_msg *m)
{
	char buf[65536];
	off_t off = m->srcoff, end = m->srcoff + m->srclen;
	size_t have = 0;
	int err;

	if (m->headlen < sizeof buf / 2)	/* head and body in one write */
		memcpy(buf, m->head, have = m->headlen);
	else if ((err = storage_write_all(fd, m->head, m->headlen)) != 0)
		return err;
	if (m->prelen && m->prelen <= MAILDIR_PRE_MAX && (off_t)m->prelen <= m->srclen) {
		memcpy(buf + have, m->pre, m->prelen);	/* have < 32 KiB: it fits */
		have += m->prelen, off += m->prelen;
	}
	if (end - off > (off_t)(sizeof buf - have)) {	/* big: the rest in the kernel */
		if ((err = storage_write_all(fd, buf, have)) != 0)
			return err;
		have = 0;
		if ((err = storage_copy(fd, m->srcfd, &off, end)) != ENOSYS)
			return err;
	}
	while (off < end) {
		size_t room = sizeof buf - have;
		size_t want = end - off > (off_t)room ? room : (size_t)(end - off);
		ssize_t r = pread(m->srcfd, buf + have, want, off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? errno : EIO;	/* spool shrank: never deliver short */
		if ((err = storage_write_all(fd, buf, have + r)) != 0)
			return err;
		off += r, have = 0;
	}
	return have ? storage_write_all(fd, buf, have) : 0;
}

/*
 * write_tmp - create tmp/NAME and make its bytes durable.
 * fsync before the rename: otherwise a crash could leave a name in new/
 * pointing at a file whose data never reached the disk.
 */
static int write_tmp(int tmpfd, const char *name, const struct maildir_msg *m)
{
	int fd = openat(tmpfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int err;

	if (fd < 0)
		return errno;
	err = copy_body(fd, m);
	if (!err)
		err = storage_fsync(fd);
	if (close(fd) < 0 && !err)	/* NFS reports write errors at close */
		err = errno;
	if (err)
		unlinkat(tmpfd, name, 0);
	return err;
}

/*
 * publish - rename tmp/NAME to new/FINAL, then fsync new/ so the entry
 * itself survives a crash: only then is the 250 a promise we can keep.
 */
static int publish(int tmpfd, int newfd, const char *name, const char *final)
{
	int err;

	if ((err = storage_rename(tmpfd, name, newfd, final)) != 0)
		return err;
	if ((err = storage_fsync(newfd)) != 0) {
		unlinkat(newfd, final, 0);	/* we report failure: show nothing */
		return err;
	}
	return 0;
}

/* maildir_clean_tmp - remove tmp/ files untouched for 36 hours */
int maildir_clean_tmp(int tmpfd, time_t now)
{
	int fd = dup(tmpfd), removed = 0;
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	struct stat st;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' ||
		    fstatat(tmpfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (now - st.st_atime > MAILDIR_TMP_AGE && now - st.st_mtime > MAILDIR_TMP_AGE &&
		    unlinkat(tmpfd, de->d_name, 0) == 0)
			removed++;
	}
	closedir(d);
	return removed;
}

/* deliver_in - one durable delivery into open tmp/ and new/ */
static int deliver_in(int tmpfd, int newfd, const struct maildir_msg *m,
    const char *host, char *name, size_t cap)
{
	char tmpname[MAILDIR_NAME_MAX], size[24];
	const char *parts[] = { tmpname, ",S=", size, NULL };
	int err;

	if (m->seq % 128 == 1)
		maildir_clean_tmp(tmpfd, time(NULL));
	if (maildir_unique(tmpname, sizeof tmpname, host, m->seq, m->tag) < 0)
		return EINVAL;
	str_uint(size, (unsigned long long)(m->headlen + m->srclen), 10, 0, 0);
	if (str_join(name, cap, parts) >= cap)
		return EINVAL;
	if ((err = write_tmp(tmpfd, tmpname, m)) == 0 &&
	    (err = publish(tmpfd, newfd, tmpname, name)) != 0)
		unlinkat(tmpfd, tmpname, 0);	/* gone already if renamed */
	return err;
}

/* maildir_deliver - one durable delivery; 0 or an errno value */
int maildir_deliver(const char *dir, const struct maildir_msg *m,
    const char *host, char *name, size_t cap)
{
	struct md_ent *slot;
	int tmpfd, newfd, err;

	if ((err = md_open(m, dir, &tmpfd, &newfd, &slot)) != 0)
		return err;
	err = deliver_in(tmpfd, newfd, m, host, name, cap);
	if (slot && err == ENOENT) {	/* tmp/ or new/ went away: afresh */
		md_drop(slot);
		if ((err = md_open(m, dir, &tmpfd, &newfd, &slot)) != 0)
			return err;
		err = deliver_in(tmpfd, newfd, m, host, name, cap);
	}
	if (!slot)
		close(tmpfd), close(newfd);
	return err;
}
