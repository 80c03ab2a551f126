/*
 * storage.c - the storage seam shared by the Maildir and the spool.
 *
 * Interface: storage_write_all(), storage_fsync() and storage_rename()
 * return 0 or an errno value; storage_set_ops() swaps the system calls
 * behind them (tests only).  Nothing else in smtpd calls write(2),
 * fsync(2) or renameat(2) on message data.
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "storage.h"

static const struct storage_ops real_ops = { write, fsync, renameat };
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
