/*
 * maildir.h - durable delivery into one Maildir.
 */
#ifndef MAILDIR_H
#define MAILDIR_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#define MAILDIR_NAME_MAX 256	/* longest file name we make */
#define MAILDIR_PRE_MAX	16384	/* longest maildir_msg.pre */
#define MAILDIR_TMP_AGE	129600	/* seconds: the spec's 36 hours for tmp/ */

/* What one delivery writes: `head`, then src bytes [off, off + len). */
struct maildir_msg {
	const char *head;	/* per-recipient header lines */
	size_t headlen;
	int srcfd;		/* spool file holding the rest */
	off_t srcoff;
	off_t srclen;
	const char *pre;	/* the first prelen of those bytes, read already */
	size_t prelen;		/* (at most MAILDIR_PRE_MAX), or 0 */
	unsigned long seq;	/* caller's counter, for unique names */
	const char *tag;	/* marks the (message, recipient); NULL: none */
	int keep;		/* 1: keep tmp/ and new/ open for uid/gid (deliverer) */
	uid_t uid;		/* the identity we run as now, the cache's key */
	gid_t gid;
	const struct stat *dirst;	/* lstat of the dir just taken, or NULL */
};

int maildir_deliver(const char *dir, const struct maildir_msg *m,
    const char *host, char *name, size_t cap);
int maildir_open(const char *dir, int *tmpfd, int *newfd);
void maildir_forget(void);
int maildir_clean_tmp(int tmpfd, time_t now);
int maildir_unique(char *dst, size_t cap, const char *host, unsigned long seq,
    const char *tag);
int maildir_has_tag(const char *dir, const char *tag);

#endif
