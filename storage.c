/*
 * storage.c - the storage seam shared by the Maildir and the spool.
 *
 * Interface: storage_write_all(), storage_pwrite_all(), storage_fsync()
 * and storage_rename() return 0 or an errno value; storage_set_ops()
 * swaps the system calls behind them (tests only).  Nothing else in
 * smtpd calls write(2), pwrite(2), fsync(2), renameat(2) or sendfile(2)
 * on message data.  storage_copy() moves a big message's body from the
 * spool into its Maildir file in the kernel (sendfile: no copy through
 * our buffer); a table without `copy` (the tests' fault tables) makes the
 * callers use write.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "storage.h"

static ssize_t copy_file(int out, int in, off_t *off, size_t n)
{
	return sendfile(out, in, off, n < 0x40000000 ? n : 0x40000000);
}

static const struct storage_ops real_ops = { write, pwrite, fsync, renameat, copy_file };
const struct storage_ops *storage = &real_ops;

/* storage_set_ops - replace the storage calls (tests); NULL restores */
void storage_set_ops(const struct storage_ops *ops)
{
	storage = ops ? ops : &real_ops;
}

/* storage_write_all - write n octets, retrying short writes; 0 or errno */
int storage_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = storage->write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? errno : EIO;
		p += w, n -= w;
	}
	return 0;
}

/* storage_pwrite_all - write n octets at offset off, retrying short
 * writes; 0 or errno */
int storage_pwrite_all(int fd, const char *p, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t w = storage->pwrite(fd, p, n, off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? errno : EIO;
		p += w, n -= w, off += w;
	}
	return 0;
}

/* storage_copy - in's octets [*off, end) appended to out in the kernel;
 * 0, an errno value, or ENOSYS when it cannot be done this way at all
 * (no copy in the table, or the kernel refuses these two files at the
 * first call): then the caller copies with write */
int storage_copy(int out, int in, off_t *off, off_t end)
{
	int first = 1;

	if (!storage->copy)
		return ENOSYS;
	while (*off < end) {
		ssize_t r = storage->copy(out, in, off, end - *off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && first && (errno == EINVAL || errno == ENOSYS || errno == EXDEV))
			return ENOSYS;
		if (r <= 0)
			return r < 0 ? errno : EIO;	/* the spool shrank: never short */
		first = 0;
	}
	return 0;
}

/* storage_fsync - fsync through the seam; 0 or errno */
int storage_fsync(int fd)
{
	return storage->fsync(fd) < 0 ? errno : 0;
}

/* storage_rename - renameat through the seam; 0 or errno */
int storage_rename(int olddir, const char *old, int newdir, const char *new)
{
	return storage->renameat(olddir, old, newdir, new) < 0 ? errno : 0;
}
