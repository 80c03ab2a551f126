/*
 * lmtp.h - an LMTP client (RFC 2033): hand messages to Dovecot & co.
 */
#ifndef LMTP_H
#define LMTP_H

#include <stddef.h>
#include <sys/types.h>

#define LMTP_LINE_MAX	1024	/* octets of one reply line, CR LF included */
#define LMTP_LINES_MAX	64	/* lines of one multi-line reply */
#define LMTP_REPLY_MAX	256	/* the reply text we keep (last line) */
#define LMTP_SPEC_MAX	256	/* "unix:/path" or "HOST:PORT" */

struct lmtp {
	int fd;				/* connection, -1 when closed */
	int timeout;			/* seconds for each wait */
	size_t rlen, rpos;		/* bytes in rbuf, next to decode */
	char rbuf[LMTP_LINE_MAX * 2];	/* what the server sent, not yet read */
	char spec[LMTP_SPEC_MAX];	/* where we are connected */
};

/* results of lmtp_reply_line() */
enum { LMTP_LAST = 0, LMTP_MORE = 1, LMTP_BAD = -1 };

int lmtp_reply_line(const char *line, size_t n, int *code);
int lmtp_read_reply(struct lmtp *l, char *text, size_t cap);
int lmtp_open(struct lmtp *l, const char *spec, const char *helo, int timeout,
    char *text, size_t cap);
int lmtp_command(struct lmtp *l, const char *verb, const char *arg,
    char *text, size_t cap);
int lmtp_data(struct lmtp *l, int fd, off_t off, char *text, size_t cap);
void lmtp_close(struct lmtp *l);

#endif
