/*
 * queue.h - the spool: message bytes and envelopes on disk, queue ids,
 * the durability contract, and the retry run.
 */
#ifndef QUEUE_H
#define QUEUE_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "deliver.h"

#define QID_MAX		32	/* queue id and its NUL */
#define SPOOL_BUF	65536	/* octets buffered before a write(2) */

/* A struct spool starts zeroed (no spare); spool_create() sets the rest. */
struct spool {
	int fd;			/* data file, -1 when none; reset per txn */
	int err;		/* first write error (errno), sticky; 0 = none */
	int disk;		/* 1: data is in the named file spool_dir/ID */
	off_t size;		/* octets written, including buffered */
	int lent;		/* 1: a deliverer we gave up on may still read fd */
	int has_spare;		/* 1: spare is an emptied memory file to reuse */
	int spare;		/* kept from this session's last transaction */
	size_t used;		/* octets waiting in buf */
	char id[QID_MAX];	/* queue id, also the data file's name */
	char buf[SPOOL_BUF];
};

int queue_id(char *dst, size_t cap, unsigned long seq);
int spool_create(struct spool *s, unsigned long seq);
void spool_put(struct spool *s, const char *p, size_t n);
int spool_flush(struct spool *s);
void spool_discard(struct spool *s);
void spool_recycle(struct spool *s);
void spool_free(struct spool *s);
int spool_keep(struct spool *s, char *const *rcpts, int n, const char *why);
void spool_close(struct spool *s);
int spool_replace_head(struct spool *s, off_t from, const char *head, size_t n);

/* queue_accept() outcomes */
enum { ACCEPT_ALL, ACCEPT_QUEUED, ACCEPT_NONE, ACCEPT_SPOOL };
int queue_accept(struct deliverer *d, struct spool *sp, char *const *rcpt, int n,
    const struct deliver_result *done, struct deliver_result *res);
int queue_run(struct deliverer *d, time_t now);
int queue_retry_now(struct deliverer *d, const char *one);
int queue_list(FILE *out);
int queue_delete(const char *id);
int queue_child(int by_hand, const char *one);

#endif
