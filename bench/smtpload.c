/*
 * smtpload.c - a small SMTP load generator for bench/launch-bench.sh.
 *
 * C threads, each running one connection at a time, for D seconds:
 *   -m conn : connect, read 220, EHLO, QUIT, read 221, close
 *   -m msg  : connect, 220, EHLO, MAIL, RCPT, DATA, S-octet message, QUIT
 * No pipelining: one command, one reply (what a plain client does).
 * Prints one line of key=value pairs: operations, rate, latency
 * percentiles, errors, and the client's own CPU time, so the caller can
 * tell whether the client was the bottleneck.
 *
 * Build: cc -O2 -pthread -o smtpload smtpload.c
 * Usage: smtpload -p PORT [-h 127.0.0.1] [-c 8] [-d 5] [-m conn|msg]
 *                 [-s 4096] [-r rcpt@domain] [-w warmup-seconds]
 * Only loopback addresses are accepted.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "writeall.h"

#define MAX_THREADS	256
#define MAX_SAMPLES	(1 << 20)

static struct sockaddr_storage server;
static socklen_t server_len;
static int msg_mode;
static char *message;		/* CRLF message, dot-stuffed, with ".\r\n" */
static size_t message_len;
static char rcpt[256] = "alice@example.test";
static double t_start, t_warm, t_end;

struct worker {
	pthread_t tid;
	long ops, errors;
	long nsamples;
	float *lat;		/* seconds per operation */
	char err[128];		/* first error seen */
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct conn {
	int fd;
	char buf[4096];
	size_t len, pos;
};

/* reply - read one (multi-line) reply; its code, or -1 */
static int reply(struct conn *c)
{
	char line[1024];
	size_t n = 0;

	for (;;) {
		if (c->pos == c->len) {
			ssize_t r = read(c->fd, c->buf, sizeof c->buf);

			if (r <= 0)
				return -1;
			c->len = r, c->pos = 0;
		}
		char ch = c->buf[c->pos++];

		if (n < sizeof line - 1)
			line[n++] = ch;
		if (ch == '\n') {
			line[n] = '\0';
			if (n >= 4 && line[3] == ' ')
				return atoi(line);
			if (n < 4 || line[3] != '-')
				return -1;
			n = 0;
		}
	}
}

static int cmd(struct conn *c, const char *line, int want)
{
	if (write_all(c->fd, line, strlen(line)) < 0)
		return -1;
	return reply(c) == want ? 0 : -1;
}

/* one_op - one whole session; 0 on success, else a static reason */
static const char *one_op(void)
{
	struct conn c = { .fd = -1 };
	struct timeval tv = { 10, 0 };
	int one = 1;
	const char *why = NULL;
	char line[300];

	c.fd = socket(server.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c.fd < 0)
		return "socket";
	setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(c.fd, (struct sockaddr *)&server, server_len) < 0)
		why = "connect";
	else if (reply(&c) != 220)
		why = "greeting";
	else if (cmd(&c, "EHLO bench.client.test\r\n", 250) < 0)
		why = "EHLO";
	else if (msg_mode) {
		snprintf(line, sizeof line, "RCPT TO:<%s>\r\n", rcpt);
		if (cmd(&c, "MAIL FROM:<bench@client.test>\r\n", 250) < 0)
			why = "MAIL";
		else if (cmd(&c, line, 250) < 0)
			why = "RCPT";
		else if (cmd(&c, "DATA\r\n", 354) < 0)
			why = "DATA";
		else if (write_all(c.fd, message, message_len) < 0 || reply(&c) != 250)
			why = "end of data";
	}
	if (!why && cmd(&c, "QUIT\r\n", 221) < 0)
		why = "QUIT";
	close(c.fd);
	return why;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	double t;

	while ((t = now()) < t_end) {
		const char *why = one_op();
		double t2 = now();

		if (t < t_warm)
			continue;	/* warm-up: not counted */
		if (why) {
			if (!w->errors)
				snprintf(w->err, sizeof w->err, "%s: %s", why,
				    errno ? strerror(errno) : "bad reply");
			w->errors++;
			continue;
		}
		if (t2 > t_end)
			break;		/* finished after the deadline: not counted */
		w->ops++;
		if (w->nsamples < MAX_SAMPLES / MAX_THREADS)
			w->lat[w->nsamples++] = (float)(t2 - t);
	}
	return NULL;
}

static int cmpf(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return x < y ? -1 : x > y;
}

static void make_message(size_t size)
{
	size_t cap = size + 512, n;
	int i = 0;

	message = malloc(cap);
	if (!message)
		exit(1);
	n = snprintf(message, cap, "From: <bench@client.test>\r\nTo: <%s>\r\n"
	    "Subject: launch benchmark\r\n\r\n", rcpt);
	while (n + 80 < size) {
		n += snprintf(message + n, cap - n, "%06d %.*s\r\n", i++, 64,
		    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghij");
	}
	while (n + 2 < size)
		message[n++] = 'z';
	n += snprintf(message + n, cap - n, "\r\n.\r\n");
	message_len = n;
}

static void usage(void)
{
	fprintf(stderr, "usage: smtpload -p PORT [-h 127.0.0.1|::1] [-c conc] [-d secs] "
	    "[-m conn|msg] [-s size] [-r rcpt] [-w warmup]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	int port = 0, conc = 8, opt, i;
	double dur = 5, warm = 0;
	size_t size = 4096;
	struct worker *w;
	struct rusage ru;
	long ops = 0, errors = 0, ns = 0;
	float *all;
	const char *first_err = "";

	while ((opt = getopt(argc, argv, "h:p:c:d:m:s:r:w:")) != -1) {
		switch (opt) {
		case 'h': host = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'c': conc = atoi(optarg); break;
		case 'd': dur = atof(optarg); break;
		case 'm': msg_mode = strcmp(optarg, "msg") == 0; break;
		case 's': size = strtoul(optarg, NULL, 10); break;
		case 'r': snprintf(rcpt, sizeof rcpt, "%s", optarg); break;
		case 'w': warm = atof(optarg); break;
		default: usage();
		}
	}
	if (port <= 0 || conc < 1 || conc > MAX_THREADS || dur <= 0 || dur > 600)
		usage();
	memset(&server, 0, sizeof server);
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&server)->sin_addr) == 1) {
		struct sockaddr_in *s = (struct sockaddr_in *)&server;

		if ((ntohl(s->sin_addr.s_addr) >> 24) != 127) {
			fprintf(stderr, "smtpload: loopback only\n");
			return 2;
		}
		s->sin_family = AF_INET, s->sin_port = htons(port);
		server_len = sizeof *s;
	} else if (strcmp(host, "::1") == 0) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&server;

		inet_pton(AF_INET6, host, &s->sin6_addr);
		s->sin6_family = AF_INET6, s->sin6_port = htons(port);
		server_len = sizeof *s;
	} else {
		fprintf(stderr, "smtpload: loopback only\n");
		return 2;
	}
	make_message(size);
	w = calloc(conc, sizeof *w);
	for (i = 0; i < conc; i++)
		w[i].lat = malloc(sizeof(float) * (MAX_SAMPLES / MAX_THREADS));
	t_start = now();
	t_warm = t_start + warm;
	t_end = t_warm + dur;
	for (i = 0; i < conc; i++)
		pthread_create(&w[i].tid, NULL, run, &w[i]);
	for (i = 0; i < conc; i++)
		pthread_join(w[i].tid, NULL);
	getrusage(RUSAGE_SELF, &ru);
	all = malloc(sizeof(float) * (MAX_SAMPLES / MAX_THREADS) * conc);
	for (i = 0; i < conc; i++) {
		ops += w[i].ops;
		errors += w[i].errors;
		if (w[i].errors && !*first_err)
			first_err = w[i].err;
		memcpy(all + ns, w[i].lat, sizeof(float) * w[i].nsamples);
		ns += w[i].nsamples;
	}
	qsort(all, ns, sizeof *all, cmpf);
	printf("ops=%ld secs=%.2f rate=%.1f p50_ms=%.2f p99_ms=%.2f errors=%ld "
	    "cpu_user=%.2f cpu_sys=%.2f wall=%.2f first_error=\"%s\"\n",
	    ops, dur, ops / dur, ns ? all[ns / 2] * 1e3 : 0.0,
	    ns ? all[(long)(ns * 0.99)] * 1e3 : 0.0, errors,
	    ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
	    ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, now() - t_start, first_err);
	return 0;
}
