/*
 * wakeup: what one wait for a peer costs the waiting process on this
 * machine, apart from any work of its own.
 *
 * A client writes a request of BYTES octets on a stream socket (a unix
 * socket pair, or loopback TCP with "tcp") and blocks in read() until
 * the answer; the answerer, another process, reads the whole request,
 * holds the answer back DELAY microseconds (a filter's scan time), then
 * writes one octet.  The client's own CPU (getrusage: user + system) and
 * voluntary context switches per exchange are printed.  That is the
 * floor of any filter client that must hand a filter the message and
 * wait for its verdict: one write, one read, one sleep and one wake-up.
 *
 * With PACE_US the client sleeps that long before each exchange, as an
 * SMTP session waits for its client between messages, so the answerer's
 * CPU has gone idle when the request comes; the same sleeps without the
 * exchanges are timed too and taken off.  PLACE pins the two processes:
 * "apart" (client on CPU 0, answerer on CPU 1), "same" (both on CPU 0),
 * or "free" (the scheduler's choice, the default).
 *
 *   cc -O2 -o wakeup bench/wakeup.c
 *   ./wakeup [EXCHANGES [DELAY_US [BYTES [unix|tcp [PACE_US [PLACE]]]]]]
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXBYTES (1 << 20)

static void answerer(int fd, long delay_us, long bytes)
{
	static char b[65536];
	struct timespec ts = { delay_us / 1000000, (delay_us % 1000000) * 1000 };

	for (;;) {
		for (long got = 0; got < bytes;) {
			long want = bytes - got < (long)sizeof b ? bytes - got : (long)sizeof b;
			ssize_t r = read(fd, b, want);
			if (r <= 0)
				_exit(r < 0);
			got += r;
		}
		if (delay_us > 0)
			nanosleep(&ts, NULL);
		if (write(fd, "a", 1) != 1)
			_exit(1);
	}
}

/* a connected loopback TCP pair, Nagle off on both ends (as smtpd's filter
 * connections); -1 on failure */
static int tcp_pair(int sv[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof a;
	int one = 1;
	int l = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &len) < 0)
		return -1;
	sv[0] = socket(AF_INET, SOCK_STREAM, 0);
	if (sv[0] < 0 || connect(sv[0], (struct sockaddr *)&a, sizeof a) < 0)
		return -1;
	sv[1] = accept(l, NULL, NULL);
	close(l);
	if (sv[1] < 0)
		return -1;
	setsockopt(sv[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(sv[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return 0;
}

/* pin - this process onto one CPU; nothing for a negative cpu */
static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) < 0)
		perror("sched_setaffinity");
}

static double cpu_ms(const struct rusage *r)
{
	return (r->ru_utime.tv_sec + r->ru_stime.tv_sec) * 1e3 +
	       (r->ru_utime.tv_usec + r->ru_stime.tv_usec) / 1e3;
}

static int exchange(int fd, const char *req, long bytes)
{
	char b[16];

	for (long put = 0; put < bytes;) {
		ssize_t w = write(fd, req + put, bytes - put);
		if (w <= 0)
			return -1;
		put += w;
	}
	return read(fd, b, sizeof b) == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 2000;
	long delay_us = argc > 2 ? atol(argv[2]) : 1000;
	long bytes = argc > 3 ? atol(argv[3]) : 7;
	int tcp = argc > 4 && strcmp(argv[4], "tcp") == 0;
	long pace_us = argc > 5 ? atol(argv[5]) : 0;
	struct timespec pace = { pace_us / 1000000, (pace_us % 1000000) * 1000 };
	double idle_ms = 0;
	const char *place = argc > 6 ? argv[6] : "free";
	int apart = strcmp(place, "apart") == 0, same = strcmp(place, "same") == 0;
	static char req[MAXBYTES];
	int sv[2];
	struct rusage r0, r1;

	if (n <= 0 || delay_us < 0 || bytes < 1 || bytes > MAXBYTES || pace_us < 0)
		return 2;
	if (tcp ? tcp_pair(sv) < 0 : socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 2;
	memset(req, 'x', bytes);
	pid_t pid = fork();
	if (pid < 0)
		return 2;
	if (pid == 0) {
		pin(apart ? 1 : same ? 0 : -1);
		close(sv[0]);
		answerer(sv[1], delay_us, bytes);
	}
	close(sv[1]);
	pin(apart || same ? 0 : -1);
	if (pace_us > 0) {
		getrusage(RUSAGE_SELF, &r0);
		for (long i = 0; i < n; i++)
			nanosleep(&pace, NULL);
		getrusage(RUSAGE_SELF, &r1);
		idle_ms = cpu_ms(&r1) - cpu_ms(&r0);
	}
	getrusage(RUSAGE_SELF, &r0);
	for (long i = 0; i < n; i++) {
		if (pace_us > 0)
			nanosleep(&pace, NULL);
		if (exchange(sv[0], req, bytes) < 0)
			return 1;
	}
	getrusage(RUSAGE_SELF, &r1);
	close(sv[0]);
	waitpid(pid, NULL, 0);
	printf("%s place=%s exchanges=%ld delay_us=%ld bytes=%ld pace_us=%ld "
	       "client_cpu_ms_per_exchange=%.4f voluntary_switches_per_exchange=%.2f\n",
	       tcp ? "tcp" : "unix", place, n, delay_us, bytes, pace_us,
	       (cpu_ms(&r1) - cpu_ms(&r0) - idle_ms) / n,
	       (double)(r1.ru_nvcsw - r0.ru_nvcsw) / n);
	return 0;
}
