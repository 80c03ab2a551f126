/*
 * spooldir.c - the spool directory made safe before anything uses it.
 *
 * Interface: spooldir_setup() runs at every start (every connection
 * under inetd) as the starting user; spooldir_check() is its read-only
 * twin for "smtpd -n".  Both return 0, or -1 with the reason in `why`.
 * Why this is careful: root works on a path that others may reach.  A
 * chown or chmod by path can be raced (a symlink swapped in between the
 * check and the call), so we never act on the path: the parent is opened
 * once and checked, the spool is created and opened below it with
 * O_NOFOLLOW | O_DIRECTORY, checked with fstat, and fixed with fchown
 * and fchmod through that descriptor.
 * Refused: a spool whose parent others (group or world, or a non-root
 * owner) can write, since they could swap or pre-create it; a spool
 * owned by anyone but root, the session account or (not root) ourselves;
 * a spool writable by group or others, which may hold planted envelopes
 * (the administrator checks it and runs chmod 0700 on it).
 * Result: spool_dir is a directory, owned by the session account (by us
 * when not root), mode 0700.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "spooldir.h"

/* owner - who must own the spool: the session account (root) or us */
static int owner(uid_t *uid, gid_t *gid, char *why, size_t cap)
{
	struct passwd *pw;

	if (cfg.uid != 0) {
		*uid = cfg.uid, *gid = getgid();
		return 0;
	}
	if (!(pw = getpwnam(cfg.session_user)) || pw->pw_uid == 0) {
		snprintf(why, cap, "session_user %s is missing or root", cfg.session_user);
		return -1;
	}
	*uid = pw->pw_uid, *gid = pw->pw_gid;
	return 0;
}

/* open_parent - the spool's parent directory, checked; its name in *base */
static int open_parent(const char **base, char *why, size_t cap)
{
	char dir[CFG_STR_MAX];
	char *slash;
	struct stat st;
	int fd;

	snprintf(dir, sizeof dir, "%s", cfg.spool_dir);
	while ((slash = strrchr(dir, '/')) && slash[1] == '\0' && slash != dir)
		*slash = '\0';	/* "spool/" is "spool" */
	slash = strrchr(dir, '/');
	*base = cfg.spool_dir + (slash ? slash - dir + 1 : 0);
	if (!slash)
		strcpy(dir, ".");	/* a relative name: below the cwd */
	else if (slash == dir)
		dir[1] = '\0';	/* "/spool": the root directory */
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(why, cap, "parent of %s: %s", cfg.spool_dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) || (st.st_uid != 0 && st.st_uid != cfg.uid)) {
		snprintf(why, cap, "parent of %s is writable by others (owner %ld, mode %04o)",
		    cfg.spool_dir, (long)st.st_uid, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	return fd;
}

/* check_spool - is the open spool ours to use? 0, or -1 and why */
static int check_spool(const struct stat *st, uid_t uid, char *why, size_t cap)
{
	if (!S_ISDIR(st->st_mode)) {
		snprintf(why, cap, "%s is not a directory", cfg.spool_dir);
		return -1;
	}
	if (st->st_uid != uid && st->st_uid != 0) {
		snprintf(why, cap, "%s is owned by uid %ld, not %s", cfg.spool_dir,
		    (long)st->st_uid, cfg.uid == 0 ? cfg.session_user : "us");
		return -1;
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(why, cap, "%s is writable by others (mode %04o): check what is "
		    "in it, then chmod 0700", cfg.spool_dir, (unsigned)(st->st_mode & 07777));
		return -1;
	}
	return 0;
}

/* spool_open - parent checked, spool created if asked, opened, checked */
static int spool_open(int create, uid_t uid, char *why, size_t cap)
{
	const char *base;
	struct stat st;
	int parent = open_parent(&base, why, cap), fd;

	if (parent < 0)
		return -1;
	if (create && mkdirat(parent, base, 0700) < 0 && errno != EEXIST) {
		snprintf(why, cap, "cannot create %s: %s", cfg.spool_dir, strerror(errno));
		close(parent);
		return -1;
	}
	fd = openat(parent, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	close(parent);
	if (fd < 0 && errno == ENOENT && !create)
		return -2;	/* made at the first start */
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(why, cap, "%s: %s%s", cfg.spool_dir, strerror(errno),
		    errno == ELOOP || errno == ENOTDIR ? " (a symlink or no directory)" : "");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (check_spool(&st, uid, why, cap) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* spooldir_setup - create or adopt the spool, by descriptor only */
int spooldir_setup(char *why, size_t cap)
{
	struct stat st;
	uid_t uid;
	gid_t gid;
	int fd, err = 0;

	if (owner(&uid, &gid, why, cap) < 0 || (fd = spool_open(1, uid, why, cap)) < 0)
		return -1;
	if (fstat(fd, &st) < 0 ||
	    ((st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid) < 0) ||
	    ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) < 0))
		err = errno;
	close(fd);
	if (err) {
		snprintf(why, cap, "%s: %s", cfg.spool_dir, strerror(err));
		return -1;
	}
	return 0;
}

/* spooldir_check - spooldir_setup without changing anything (smtpd -n) */
int spooldir_check(char *why, size_t cap)
{
	uid_t uid;
	gid_t gid;
	int fd;

	if (owner(&uid, &gid, why, cap) < 0 || (fd = spool_open(0, uid, why, cap)) == -1)
		return -1;
	if (fd >= 0)
		close(fd);
	return 0;
}
