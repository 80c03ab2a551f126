/*
 * deliver.h - the deliverer: the one process that may become a local user.
 */
#ifndef DELIVER_H
#define DELIVER_H

#include <stddef.h>
#include <sys/types.h>

#define ROOM_SLOTS	8	/* mailboxes whose "room after it" we remember */
#define ROOM_MS		1000	/* for this long after the deliverer said so */

struct deliverer {
	pid_t pid;	/* the deliverer process, 0 when not running */
	int fd;		/* our end of the SOCK_SEQPACKET pair */
	int hung;	/* 1: it missed deliver_timeout and was killed */
	long timeout;	/* deliver_timeout set as SO_RCVTIMEO on fd; 0: none */
	unsigned long long room[ROOM_SLOTS];	/* hashes of entries with room */
	long long room_at[ROOM_SLOTS];	/* when it said so (ms), 0: unused */
	unsigned room_next;	/* the slot to reuse next */
};

/* results, as the first octet of a reply: qmail's ok/permanent/temporary */
enum { DELIVER_OK = '2', DELIVER_TEMP = '4', DELIVER_PERM = '5' };

/* why a delivery did not succeed, as the second octet of a reply */
enum deliver_why {
	WHY_NONE = '-',		/* delivered */
	WHY_ROOM = '+',		/* delivered, and the mailbox is not full after it */
	WHY_STORAGE = 'S',	/* ENOSPC: 452 4.3.1 */
	WHY_QUOTA = 'Q',	/* EDQUOT, or maildirsize full: 452 4.2.2 */
	WHY_OVERQUOTA = 'O',	/* this message would exceed the quota: 552 5.2.2 */
	WHY_REMOTE = 'M',	/* the LMTP server's answer (text has it) */
	WHY_IO = 'I',		/* any other storage error */
	WHY_SYMLINK = 'L',	/* the Maildir path holds a symlink */
	WHY_LOOKUP = 'U',	/* user lookup failed for now */
	WHY_NOUSER = 'N',	/* no such user */
	WHY_AGENT = 'A',	/* the deliverer is gone or broken */
};

/* One delivery's outcome: DELIVER_*, a WHY_* and text for the log. */
struct deliver_result {
	int status;		/* DELIVER_OK, DELIVER_TEMP, DELIVER_PERM */
	int why;		/* WHY_* */
	char text[256];		/* file name when delivered, else the reason */
};

int deliverer_start(struct deliverer *d, int keep_fd);
int deliverer_deliver(struct deliverer *d, int spoolfd, long long size, const char *qid,
    const char *rcpt, int retry, struct deliver_result *res);
int deliverer_quota(struct deliverer *d, const char *entry,
    struct deliver_result *res);
int deliver_why_errno(int err);
const char *deliver_status_word(int status);
void deliverer_stop(struct deliverer *d);
int deliverer_alive(const struct deliverer *d);

#endif
