/*
 * conn.c - outbound stream connections where every wait has a timeout:
 * the milter and policy clients' filters and the LMTP server.
 *
 * Interface: conn_connect() opens "inet:HOST:PORT" (HOST a name or an
 * address, [v6] in brackets) or "unix:/path" within a timeout, trying
 * the addresses a name has in turn; the descriptor is non-blocking and
 * close-on-exec.  conn_write() sends all n octets and conn_read() reads
 * exactly n octets, or what arrives first, each within a timeout (the
 * descriptor may also be blocking: reads poll first, writes to a blocking
 * one wait in send).
 * Invariant: every wait is bounded; no SIGPIPE (MSG_NOSIGNAL).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "nowms.h"

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

/*
 * start - a non-blocking socket with its connect under way; fd or -1.
 * TCP_NODELAY: our writes are whole requests already; Nagle would only
 * hold a short one (the end of a message, a packet written right after
 * one that gets no answer) until the peer's delayed ACK, up to 40 ms.
 */
static int start(int family, const struct sockaddr *sa, socklen_t len)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), e, on = 1;

	if (fd >= 0 && family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
	if (fd >= 0 && connect(fd, sa, len) < 0 && errno != EINPROGRESS) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* one - connect to one address by the deadline; fd, or -1 with why */
static int one(int family, const struct sockaddr *sa, socklen_t salen,
    long long deadline, char *why, size_t cap)
{
	int fd = start(family, sa, salen), err = 0, r;
	socklen_t len = sizeof err;

	if (fd < 0) {
		snprintf(why, cap, "%s", strerror(errno));
		return -1;
	}
	r = wait_fd(fd, POLLOUT, deadline);
	if (r <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
		snprintf(why, cap, "%s", r == 0 ? "connect timeout" :
		    strerror(err ? err : errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* conn_connect - connect within timeout seconds; fd, or -1 with why (the
 * last address's reason when a name has several) */
int conn_connect(const char *spec, long timeout, char *why, size_t cap)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	long long deadline = now_ms() + timeout * 1000;
	char host[256], port[32];
	int fd = -1, r;

	if (strncmp(spec, "unix:", 5) == 0 && strlen(spec + 5) < sizeof un.sun_path) {
		strcpy(un.sun_path, spec + 5);
		return one(AF_UNIX, (struct sockaddr *)&un, sizeof un, deadline, why, cap);
	}
	if (strncmp(spec, "inet:", 5) != 0 ||
	    split_inet(spec + 5, host, sizeof host, port, sizeof port) < 0) {
		snprintf(why, cap, "bad address");
		return -1;
	}
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(why, cap, "%s", gai_strerror(r));
		return -1;
	}
	for (ai = res; ai && fd < 0; ai = ai->ai_next)
		fd = one(ai->ai_family, ai->ai_addr, ai->ai_addrlen, deadline, why, cap);
	freeaddrinfo(res);
	return fd;
}

/* conn_write - all n octets within timeout seconds; 0, or -1 (errno) */
int conn_write(int fd, const void *p, size_t n, long timeout)
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
 * conn_read - read within timeout seconds: exactly n octets (exact),
 * or whatever arrives first.  Octets read, or -1 with errno (ETIMEDOUT;
 * ECONNRESET for an end of file before the octets were complete).
 */
long conn_read(int fd, void *p, size_t n, long timeout, int exact)
{
	long long deadline = now_ms() + timeout * 1000;
	char *b = p;
	size_t got = 0;

	while (got < n) {
		ssize_t r;

		/* poll first: an answer is rarely there yet, so this
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
