/*
 * filter.c - connecting to filters and talking to them with timeouts.
 *
 * Interface: filter_connect() opens "inet:HOST:PORT" (HOST may be
 * [v6]) or "unix:/path" within a timeout; filter_write() and
 * filter_read() move octets with a timeout on every wait (the descriptor
 * is non-blocking, so a filter that stops reading cannot hang us);
 * filter_next() walks a comma list of addresses; filter_default() reads
 * a *_default_action setting and filter_fail() applies it.
 * Invariant: every wait is bounded; no SIGPIPE (MSG_NOSIGNAL).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "filter.h"

/* now_ms - a monotonic clock in milliseconds */
static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* wait_fd - poll for ev until the deadline; 1 ready, 0 timeout, -1 error */
static int wait_fd(int fd, short ev, long long deadline)
{
	struct pollfd pfd = { fd, ev, 0 };
	int r;

	for (;;) {
		long long left = deadline - now_ms();

		if (left <= 0)
			return 0;
		r = poll(&pfd, 1, left > 600000 ? 600000 : (int)left);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

/* split_inet - "HOST:PORT" or "[V6]:PORT" into host and port */
static int split_inet(const char *s, char *host, size_t hcap, char *port, size_t pcap)
{
	const char *colon;
	size_t n;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -1;
		n = close - s - 1, s++, colon = close + 1;
	} else {
		if (!(colon = strrchr(s, ':')))
			return -1;
		n = colon - s;
	}
	if (n == 0 || n >= hcap || strlen(colon + 1) == 0 || strlen(colon + 1) >= pcap)
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	strcpy(port, colon + 1);
	return 0;
}

/* open_sock - a non-blocking socket for the address; connect started */
static int open_sock(const char *spec, char *why, size_t cap)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	char host[256], port[32];
	int fd = -1, r = -1;

	if (strncmp(spec, "unix:", 5) == 0 && strlen(spec + 5) < sizeof un.sun_path) {
		strcpy(un.sun_path, spec + 5);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd >= 0)
			r = connect(fd, (struct sockaddr *)&un, sizeof un);
	} else if (strncmp(spec, "inet:", 5) == 0 &&
	    split_inet(spec + 5, host, sizeof host, port, sizeof port) == 0) {
		if ((r = getaddrinfo(host, port, &hints, &ai)) != 0) {
			snprintf(why, cap, "%s", gai_strerror(r));
			return -1;
		}
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd >= 0)
			r = connect(fd, ai->ai_addr, ai->ai_addrlen);
		freeaddrinfo(ai);
	} else {
		snprintf(why, cap, "bad address");
		return -1;
	}
	if (fd >= 0 && r < 0 && errno != EINPROGRESS) {
		snprintf(why, cap, "%s", strerror(errno));
		close(fd);
		return -1;
	}
	if (fd < 0)
		snprintf(why, cap, "%s", strerror(errno));
	return fd;
}

/* filter_connect - connect within timeout seconds; fd, or -1 with why */
int filter_connect(const char *spec, long timeout, char *why, size_t cap)
{
	int fd = open_sock(spec, why, cap), err = 0, r;
	socklen_t len = sizeof err;

	if (fd < 0)
		return -1;
	r = wait_fd(fd, POLLOUT, now_ms() + timeout * 1000);
	if (r <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
		snprintf(why, cap, "%s", r == 0 ? "connect timeout" :
		    strerror(err ? err : errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* filter_write - all n octets within timeout seconds; 0, or -1 (errno) */
int filter_write(int fd, const void *p, size_t n, long timeout)
{
	long long deadline = now_ms() + timeout * 1000;
	const char *b = p;

	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);

		if (w > 0) {
			b += w, n -= w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN)
			return -1;
		if (wait_fd(fd, POLLOUT, deadline) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
	return 0;
}

/*
 * filter_read - read within timeout seconds: exactly n octets (exact),
 * or whatever arrives first.  Octets read, or -1 with errno (ETIMEDOUT;
 * ECONNRESET for an end of file before the octets were complete).
 */
long filter_read(int fd, void *p, size_t n, long timeout, int exact)
{
	long long deadline = now_ms() + timeout * 1000;
	char *b = p;
	size_t got = 0;

	while (got < n) {
		ssize_t r;

		/* poll first: a filter's answer is rarely there yet, so this
		 * saves the read that would fail with EAGAIN */
		if (wait_fd(fd, POLLIN, deadline) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		r = read(fd, b + got, n - got);
		if (r > 0) {
			got += r;
			if (!exact)
				break;
			continue;
		}
		if (r == 0) {
			errno = ECONNRESET;
			return -1;
		}
		if (errno != EINTR && errno != EAGAIN)
			return -1;
	}
	return got;
}

/* filter_next - the next item of a comma list, blanks trimmed; 0 at end */
int filter_next(const char **list, char *item, size_t cap)
{
	const char *p = *list, *end;
	size_t n;

	while (*p == ',' || *p == ' ' || *p == '\t')
		p++;
	if (!*p)
		return 0;
	end = p + strcspn(p, ",");
	n = end - p;
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	*list = end;
	if (n >= cap)
		n = cap - 1;	/* cannot happen: items are shorter than settings */
	memcpy(item, p, n);
	item[n] = '\0';
	return 1;
}

/* filter_default - "tempfail" (also anything unknown), "accept", "reject" */
int filter_default(const char *setting)
{
	if (strcasecmp(setting, "accept") == 0)
		return FD_ACCEPT;
	if (strcasecmp(setting, "reject") == 0)
		return FD_REJECT;
	return FD_TEMPFAIL;
}

/* filter_fail - the verdict for a filter that failed, per the default */
void filter_fail(struct verdict *v, int action)
{
	v->kind = action == FD_ACCEPT ? FV_CONTINUE :
	    action == FD_REJECT ? FV_REJECT : FV_TEMPFAIL;
	v->text[0] = '\0';
}
