/*
 * tlsload.c - STARTTLS load generator for bench/tls-bench.py (libtls).
 *
 *   tlsload HOST PORT CONCURRENCY SECONDS MODE CAFILE
 *
 * CONCURRENCY processes each run sessions back to back for SECONDS:
 * connect, greeting, EHLO, STARTTLS, handshake (the chain is verified
 * against CAFILE, name mx.test), EHLO, then by MODE:
 *   hs     QUIT                    (handshakes per second)
 *   msg    one 4 KB message, QUIT  (messages per second over STARTTLS)
 *   plain  no STARTTLS: EHLO, QUIT (what a non-TLS session costs)
 * Prints "sessions N failures F seconds S".  Every read has a timeout.
 */
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tls.h>

#define MSG_SIZE 4096

struct conn {
	int fd;
	struct tls *tls;	/* NULL until STARTTLS */
	char buf[4096];
	size_t len;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int c_write(struct conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = c->tls ? tls_write(c->tls, p, n) : write(c->fd, p, n);

		if (c->tls && (w == TLS_WANT_POLLIN || w == TLS_WANT_POLLOUT))
			continue;
		if (w <= 0)
			return -1;
		p += w, n -= w;
	}
	return 0;
}

/* reply - read one whole reply; its code, or -1 */
static int reply(struct conn *c)
{
	for (;;) {
		char *line = c->buf, *nl;

		while ((nl = memchr(line, '\n', c->len - (line - c->buf)))) {
			if (nl - line >= 4 && line[3] == ' ') {
				int code = atoi(line);

				c->len -= nl + 1 - c->buf;
				memmove(c->buf, nl + 1, c->len);
				return code;
			}
			line = nl + 1;
		}
		struct pollfd p = { c->fd, POLLIN, 0 };
		ssize_t n;

		if (c->len == sizeof c->buf || poll(&p, 1, 30000) <= 0)
			return -1;
		n = c->tls ? tls_read(c->tls, c->buf + c->len, sizeof c->buf - c->len) :
		    read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
		if (c->tls && (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT))
			continue;
		if (n <= 0)
			return -1;
		c->len += n;
	}
}

static int cmd(struct conn *c, const char *line, int want)
{
	return c_write(c, line, strlen(line)) == 0 && reply(c) == want ? 0 : -1;
}

static int dial(const char *host, const char *port)
{
	struct addrinfo hints = { 0 }, *ai;
	int fd;

	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return -1;
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* session - one whole session; 0 if every reply was as expected */
static int session(const char *host, const char *port, const char *mode,
    struct tls_config *tc, const char *msg)
{
	struct conn c = { .fd = dial(host, port) };
	int ok = -1;

	if (c.fd < 0)
		return -1;
	if (reply(&c) != 220 || cmd(&c, "EHLO load.test\r\n", 250) < 0)
		goto out;
	if (strcmp(mode, "plain") != 0) {
		if (cmd(&c, "STARTTLS\r\n", 220) < 0 || !(c.tls = tls_client()) ||
		    tls_configure(c.tls, tc) < 0 ||
		    tls_connect_socket(c.tls, c.fd, "mx.test") < 0 ||
		    tls_handshake(c.tls) < 0 || cmd(&c, "EHLO load.test\r\n", 250) < 0)
			goto out;
	}
	if (strcmp(mode, "msg") == 0 &&
	    (cmd(&c, "MAIL FROM:<load@load.test>\r\n", 250) < 0 ||
	     cmd(&c, "RCPT TO:<alice@example.test>\r\n", 250) < 0 ||
	     cmd(&c, "DATA\r\n", 354) < 0 || cmd(&c, msg, 250) < 0))
		goto out;
	ok = cmd(&c, "QUIT\r\n", 221);
out:
	if (c.tls) {
		tls_close(c.tls);
		tls_free(c.tls);
	}
	close(c.fd);
	return ok;
}

/* message - a 4 KB message ending in CR LF . CR LF */
static char *message(void)
{
	static char m[MSG_SIZE + 64];
	size_t n = snprintf(m, sizeof m, "Subject: tls bench\r\n\r\n");

	while (n < MSG_SIZE - 80)
		n += snprintf(m + n, sizeof m - n, "%.70s\r\n",
		    "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz");
	snprintf(m + n, sizeof m - n, ".\r\n");
	return m;
}

int main(int argc, char **argv)
{
	struct tls_config *tc;
	long ok = 0, bad = 0;
	int conc, i, p[2];
	double secs, t0;

	if (argc != 7) {
		fprintf(stderr, "usage: tlsload HOST PORT CONC SECS hs|msg|plain CAFILE\n");
		return 100;
	}
	conc = atoi(argv[3]), secs = atof(argv[4]);
	signal(SIGPIPE, SIG_IGN);
	if (tls_init() < 0 || !(tc = tls_config_new()) ||
	    tls_config_set_ca_file(tc, argv[6]) < 0)
		return 111;
	if (pipe(p) < 0)
		return 111;
	t0 = now();
	for (i = 0; i < conc; i++) {
		if (fork() == 0) {
			long n[2] = { 0, 0 };
			const char *msg = message();

			while (now() - t0 < secs)
				n[session(argv[1], argv[2], argv[5], tc, msg) == 0 ? 0 : 1]++;
			if (write(p[1], n, sizeof n) != sizeof n)
				_exit(1);
			_exit(0);
		}
	}
	close(p[1]);
	for (i = 0; i < conc; i++) {
		long n[2];

		if (read(p[0], n, sizeof n) == sizeof n)
			ok += n[0], bad += n[1];
		wait(NULL);
	}
	printf("sessions %ld failures %ld seconds %.3f\n", ok, bad, now() - t0);
	return 0;
}
