/*
 * deliver.h - the deliverer: the one process that may become a local user.
 */
#ifndef DELIVER_H
#define DELIVER_H

#include <stddef.h>
#include <sys/types.h>

struct deliverer {
	pid_t pid;	/* the deliverer process, 0 when not running */
	int fd;		/* our end of the SOCK_SEQPACKET pair */
};

/* results, as the first octet of a reply: qmail's ok/permanent/temporary */
enum { DELIVER_OK = '2', DELIVER_TEMP = '4', DELIVER_PERM = '5' };

int deliverer_start(struct deliverer *d, int keep_fd);
int deliverer_deliver(struct deliverer *d, int spoolfd, const char *qid,
    const char *rcpt, int retry, char *why, size_t cap);
void deliverer_stop(struct deliverer *d);
int deliverer_alive(const struct deliverer *d);

#endif
