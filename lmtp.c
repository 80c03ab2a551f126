/*
 * lmtp.c - an LMTP client (RFC 2033) for delivery to Dovecot and friends.
 *
 * Interface: lmtp_open() connects ("unix:/path" or "HOST:PORT", through
 * conn.c, so the connection is non-blocking and every wait timed), reads
 * the greeting and says LHLO; lmtp_command() sends MAIL, RCPT, RSET or
 * QUIT and returns the reply code; lmtp_data() streams a spooled message
 * (LF line ends, Return-Path line first, which is skipped: the server
 * writes its own from MAIL FROM) as CR LF with dot-stuffing, and after
 * it the caller reads one reply per accepted recipient with
 * lmtp_read_reply(), in RCPT order (RFC 2033 4.2).
 * The reader is bounded (STYLE.md 22): lines of LMTP_LINE_MAX octets,
 * replies of LMTP_LINES_MAX lines, one timeout per wait; a line that is
 * too long, a bad code, codes that change inside one reply, EOF or a
 * timeout all mean the same thing: -1, and the caller closes the
 * connection and treats every open recipient as 4xx (queued).
 * lmtp_reply_line() is the pure decoder of one line (fuzz/fuzz_lmtp.c).
 * Reply text handed back is the last line with anything but printable
 * ASCII replaced by '?', so it can go into our own replies and logs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "lmtp.h"

#define OUT_MAX		65536	/* octets of message buffered before write */
#define IN_CHUNK	32768	/* octets of spool read at once */

/* lmtp_reply_line - "ddd-text" (LMTP_MORE) or "ddd[ text]" (LMTP_LAST) */
int lmtp_reply_line(const char *line, size_t n, int *code)
{
	size_t i;

	if (n < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' ||
	    line[1] > '9' || line[2] < '0' || line[2] > '9')
		return LMTP_BAD;
	for (i = 3; i < n; i++)
		if (line[i] == '\0' || line[i] == '\n')
			return LMTP_BAD;
	*code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (n == 3 || line[3] == ' ')
		return LMTP_LAST;
	return line[3] == '-' ? LMTP_MORE : LMTP_BAD;
}

/* fill - read more into rbuf; -1 on EOF, error, timeout or a full buffer */
static int fill(struct lmtp *l)
{
	long n;

	if (l->rpos > 0) {
		memmove(l->rbuf, l->rbuf + l->rpos, l->rlen - l->rpos);
		l->rlen -= l->rpos, l->rpos = 0;
	}
	if (l->rlen >= sizeof l->rbuf || (n = conn_read(l->fd, l->rbuf + l->rlen,
	    sizeof l->rbuf - l->rlen, l->timeout, 0)) <= 0)
		return -1;
	l->rlen += n;
	return 0;
}

/* get_line - next CR LF (or LF) line, at most LMTP_LINE_MAX; length or -1 */
static ssize_t get_line(struct lmtp *l, const char **line)
{
	char *nl;
	size_t n;

	for (;;) {
		nl = memchr(l->rbuf + l->rpos, '\n', l->rlen - l->rpos);
		if (nl)
			break;
		if (l->rlen - l->rpos >= LMTP_LINE_MAX || fill(l) < 0)
			return -1;
	}
	n = nl - (l->rbuf + l->rpos) + 1;
	if (n > LMTP_LINE_MAX)
		return -1;
	*line = l->rbuf + l->rpos;
	l->rpos += n;
	n--;
	if (n > 0 && (*line)[n - 1] == '\r')
		n--;
	return n;
}

/* keep_text - the reply line as safe text for our replies and logs */
static void keep_text(char *dst, size_t cap, const char *s, size_t n)
{
	size_t i;

	if (cap == 0)
		return;
	for (i = 0; i < n && i + 1 < cap; i++)
		dst[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	dst[i] = '\0';
}

/* lmtp_read_reply - one whole reply: its code, or -1 (close and defer) */
int lmtp_read_reply(struct lmtp *l, char *text, size_t cap)
{
	const char *line;
	ssize_t n;
	int lines, code, first = 0, r;

	if (l->fd < 0)
		return -1;
	for (lines = 0; lines < LMTP_LINES_MAX; lines++) {
		if ((n = get_line(l, &line)) < 0 ||
		    (r = lmtp_reply_line(line, n, &code)) == LMTP_BAD ||
		    (first && code != first))
			return -1;
		first = code;
		if (r == LMTP_LAST) {
			keep_text(text, cap, line, n);
			return code;
		}
	}
	return -1;
}

/* write_all - the whole buffer within the timeout; -1 on failure */
static int write_all(struct lmtp *l, const char *p, size_t n)
{
	return conn_write(l->fd, p, n, l->timeout);
}

/* lmtp_open - connect, greeting, LHLO; 250 when ready, else code or -1 */
int lmtp_open(struct lmtp *l, const char *spec, const char *helo, int timeout,
    char *text, size_t cap)
{
	char addr[LMTP_SPEC_MAX + 8], why[128];
	int code;

	memset(l, 0, sizeof *l);
	l->timeout = timeout;
	snprintf(l->spec, sizeof l->spec, "%s", spec);
	snprintf(addr, sizeof addr, "%s%s", strncmp(spec, "unix:", 5) == 0 ? "" :
	    "inet:", l->spec);
	l->fd = conn_connect(addr, timeout, why, sizeof why);
	snprintf(text, cap, "cannot connect to %s", spec);
	if (l->fd < 0)
		return -1;
	if ((code = lmtp_read_reply(l, text, cap)) != 220 ||
	    (code = lmtp_command(l, "LHLO", helo, text, cap)) != 250) {
		lmtp_close(l);
		return code;
	}
	return 250;
}

/* lmtp_command - "VERB ARG" CR LF and its reply code, or -1 */
int lmtp_command(struct lmtp *l, const char *verb, const char *arg,
    char *text, size_t cap)
{
	char line[LMTP_LINE_MAX];
	int n = snprintf(line, sizeof line, arg ? "%s %s\r\n" : "%s\r\n", verb, arg);

	if (l->fd < 0 || n < 0 || (size_t)n >= sizeof line ||
	    strcspn(line, "\r\n") != (size_t)n - 2 || write_all(l, line, n) < 0) {
		snprintf(text, cap, "LMTP connection lost");
		return -1;
	}
	return lmtp_read_reply(l, text, cap);
}

/* put - append a byte to the out buffer, flushing when full */
static int put(struct lmtp *l, char *out, size_t *used, char c)
{
	if (*used == OUT_MAX) {
		if (write_all(l, out, *used) < 0)
			return -1;
		*used = 0;
	}
	out[(*used)++] = c;
	return 0;
}

/* stream - the spool from off to EOF: LF -> CR LF, leading dots doubled */
static int stream(struct lmtp *l, int fd, off_t off, char *out, char *in)
{
	size_t used = 0;
	int bol = 1;
	ssize_t n, i;

	while ((n = pread(fd, in, IN_CHUNK, off)) > 0) {
		off += n;
		for (i = 0; i < n; i++) {
			if ((bol && in[i] == '.' && put(l, out, &used, '.') < 0) ||
			    (in[i] == '\n' && put(l, out, &used, '\r') < 0) ||
			    put(l, out, &used, in[i]) < 0)
				return -1;
			bol = in[i] == '\n';
		}
	}
	if (n < 0 || (!bol && (put(l, out, &used, '\r') < 0 || put(l, out, &used, '\n') < 0)))
		return -1;
	return write_all(l, out, used) < 0 || write_all(l, ".\r\n", 3) < 0 ? -1 : 0;
}

/* lmtp_data - DATA, 354, the message; 0 = now read one reply per recipient */
int lmtp_data(struct lmtp *l, int fd, off_t off, char *text, size_t cap)
{
	char *out, *in;
	int code = lmtp_command(l, "DATA", NULL, text, cap);

	if (code != 354)
		return code;
	out = malloc(OUT_MAX);
	in = malloc(IN_CHUNK);
	code = (out && in) ? stream(l, fd, off, out, in) : -1;
	free(out), free(in);
	if (code < 0)
		snprintf(text, cap, "LMTP connection lost while sending data");
	return code;
}

/* lmtp_close - QUIT politely when we can, then close */
void lmtp_close(struct lmtp *l)
{
	if (l->fd < 0)
		return;
	(void)!send(l->fd, "QUIT\r\n", 6, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(l->fd);
	l->fd = -1;
}
