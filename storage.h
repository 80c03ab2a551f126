/*
 * storage.h - the storage seam: every call that can lose a message.
 *
 * maildir.c and queue.c write through this table, so the tests can force
 * ENOSPC, EDQUOT and EIO at each step of either path (DESIGN.md, "Durability").
 */
#ifndef STORAGE_H
#define STORAGE_H

#include <stddef.h>
#include <sys/types.h>

struct storage_ops {
	ssize_t (*write)(int fd, const void *buf, size_t n);
	ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
	int (*fsync)(int fd);
	int (*renameat)(int olddir, const char *old, int newdir, const char *new);
	ssize_t (*copy)(int out, int in, off_t *off, size_t n);	/* NULL: none */
};

extern const struct storage_ops *storage;

void storage_set_ops(const struct storage_ops *ops);
int storage_write_all(int fd, const char *p, size_t n);
int storage_pwrite_all(int fd, const char *p, size_t n, off_t off);
int storage_fsync(int fd);
int storage_rename(int olddir, const char *old, int newdir, const char *new);
int storage_copy(int out, int in, off_t *off, off_t end);

#endif
