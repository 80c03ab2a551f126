/*
 * faultfs.c - LD_PRELOAD shim for smtpd's tests: make file operations
 * fail on chosen paths, to test how smtpd handles storage failures.
 *
 * Built only for tests:
 *   cc -shared -fPIC -o tests/faultfs.so tests/faultfs.c -ldl
 *
 * Environment:
 *   FAULTFS_MATCH  substring; only files whose path contains it fail
 *                  (unset or empty: the shim does nothing)
 *   FAULTFS_OP     comma list of: fsync (fsync, fdatasync), write
 *                  (write, pwrite, writev), rename (rename, renameat,
 *                  renameat2, link, linkat); default "fsync"
 *   FAULTFS_ERRNO  ENOSPC, EDQUOT, EIO, or a number; default EIO
 *
 * For operations on a descriptor the path is /proc/self/fd/N's target;
 * for rename and link either path matching is enough.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static int op_enabled(const char *op)
{
	const char *ops = getenv("FAULTFS_OP");
	size_t n = strlen(op);

	if (!ops || !*ops)
		ops = "fsync";
	while (*ops) {
		size_t len = strcspn(ops, ",");

		if (len == n && strncmp(ops, op, n) == 0)
			return 1;
		ops += len;
		if (*ops == ',')
			ops++;
	}
	return 0;
}

static int fault_errno(void)
{
	const char *e = getenv("FAULTFS_ERRNO");

	if (!e || !*e)
		return EIO;
	if (strcmp(e, "ENOSPC") == 0)
		return ENOSPC;
	if (strcmp(e, "EDQUOT") == 0)
		return EDQUOT;
	if (strcmp(e, "EIO") == 0)
		return EIO;
	if (strcmp(e, "EROFS") == 0)
		return EROFS;
	if (strcmp(e, "EACCES") == 0)
		return EACCES;
	if (atoi(e) > 0)
		return atoi(e);
	return EIO;
}

static int path_matches(const char *path)
{
	const char *m = getenv("FAULTFS_MATCH");

	return m && *m && path && strstr(path, m) != NULL;
}

static int fd_matches(int fd)
{
	char link[64], target[4096];
	ssize_t n;

	if (fd < 0)
		return 0;
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof target - 1);
	if (n < 0)
		return 0;
	target[n] = '\0';
	return path_matches(target);
}

/* fail_fd - should this operation on fd fail?  Sets errno when so. */
static int fail_fd(const char *op, int fd)
{
	int saved = errno;

	if (op_enabled(op) && fd_matches(fd)) {
		errno = fault_errno();
		return 1;
	}
	errno = saved;
	return 0;
}

/* full_path - an absolute form of path, relative to dfd when not absolute */
static const char *full_path(int dfd, const char *path, char *buf, size_t cap)
{
	char link[64], dir[4096];
	ssize_t n;

	if (!path || path[0] == '/')
		return path;
	if (dfd == AT_FDCWD) {
		if (!getcwd(dir, sizeof dir))
			return path;
	} else {
		snprintf(link, sizeof link, "/proc/self/fd/%d", dfd);
		n = readlink(link, dir, sizeof dir - 1);
		if (n < 0)
			return path;
		dir[n] = '\0';
	}
	snprintf(buf, cap, "%s/%s", dir, path);
	return buf;
}

static int fail_paths_at(int dfd1, const char *a, int dfd2, const char *b)
{
	char abuf[8192], bbuf[8192];
	int saved = errno;

	if (!op_enabled("rename")) {
		errno = saved;
		return 0;
	}
	a = full_path(dfd1, a, abuf, sizeof abuf);
	b = full_path(dfd2, b, bbuf, sizeof bbuf);
	if (path_matches(a) || path_matches(b)) {
		errno = fault_errno();
		return 1;
	}
	errno = saved;
	return 0;
}

#define REAL(ret, name, args) \
	static ret (*real_##name) args; \
	if (!real_##name) \
		*(void **)(&real_##name) = dlsym(RTLD_NEXT, #name)

int fsync(int fd)
{
	REAL(int, fsync, (int));
	if (fail_fd("fsync", fd))
		return -1;
	return real_fsync(fd);
}

int fdatasync(int fd)
{
	REAL(int, fdatasync, (int));
	if (fail_fd("fsync", fd))
		return -1;
	return real_fdatasync(fd);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	REAL(ssize_t, write, (int, const void *, size_t));
	if (fail_fd("write", fd))
		return -1;
	return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	REAL(ssize_t, pwrite, (int, const void *, size_t, off_t));
	if (fail_fd("write", fd))
		return -1;
	return real_pwrite(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	REAL(ssize_t, writev, (int, const struct iovec *, int));
	if (fail_fd("write", fd))
		return -1;
	return real_writev(fd, iov, cnt);
}

int rename(const char *from, const char *to)
{
	REAL(int, rename, (const char *, const char *));
	if (fail_paths_at(AT_FDCWD, from, AT_FDCWD, to))
		return -1;
	return real_rename(from, to);
}

int renameat(int dfd1, const char *from, int dfd2, const char *to)
{
	REAL(int, renameat, (int, const char *, int, const char *));
	if (fail_paths_at(dfd1, from, dfd2, to))
		return -1;
	return real_renameat(dfd1, from, dfd2, to);
}

int renameat2(int dfd1, const char *from, int dfd2, const char *to,
    unsigned int flags)
{
	REAL(int, renameat2, (int, const char *, int, const char *,
	    unsigned int));
	if (fail_paths_at(dfd1, from, dfd2, to))
		return -1;
	return real_renameat2(dfd1, from, dfd2, to, flags);
}

int link(const char *from, const char *to)
{
	REAL(int, link, (const char *, const char *));
	if (fail_paths_at(AT_FDCWD, from, AT_FDCWD, to))
		return -1;
	return real_link(from, to);
}

int linkat(int dfd1, const char *from, int dfd2, const char *to, int flags)
{
	REAL(int, linkat, (int, const char *, int, const char *, int));
	if (fail_paths_at(dfd1, from, dfd2, to))
		return -1;
	return real_linkat(dfd1, from, dfd2, to, flags);
}
