/*
 * quota.h - Maildir++ quota: the maildirsize file Courier and Dovecot keep.
 */
#ifndef QUOTA_H
#define QUOTA_H

#include <stddef.h>
#include <sys/stat.h>

#define QUOTA_FILE_MAX	65536	/* octets of maildirsize we read; more: stale */

struct quota {
	long long max_bytes;	/* limit on octets, 0 = none */
	long long max_count;	/* limit on messages, 0 = none */
	long long bytes;	/* octets in use (sum of the lines) */
	long long count;	/* messages in use */
};

/* results of quota_read() and quota_check() */
enum { QUOTA_NONE, QUOTA_OK, QUOTA_FULL, QUOTA_OVER };

int quota_parse(const char *text, size_t len, struct quota *q);
int quota_read(const char *maildir, struct quota *q);
int quota_check(const struct quota *q, long long add_bytes);
int quota_add(const char *maildir, long long bytes, long long count);
int quota_read_at(const char *maildir, const struct stat *dir, struct quota *q);
int quota_add_at(const char *maildir, const struct stat *dir, long long bytes,
    long long count);

#endif
