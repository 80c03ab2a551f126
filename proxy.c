/*
 * proxy.c - read the PROXY protocol header that a load balancer puts in
 * front of the client's bytes (haproxy.org's proxy-protocol.txt, v1 and v2).
 *
 * Interface: proxy_read() reads exactly the header from fd, no byte more
 * (the client cannot speak before our greeting), and writes the original
 * client address into addr and its source port into *port (left alone
 * for LOCAL / UNKNOWN).  The two parsers are pure functions.
 * Results: 1 = address taken from the header, 0 = a LOCAL / UNKNOWN
 * header (keep the connection's own address), -1 = malformed: the caller
 * closes the connection.  Only called for peers in proxy_trusted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy.h"

/* v1_field - copy the next space-separated field; its end or NULL */
static const char *v1_field(const char *p, const char *end, char *dst, size_t cap)
{
	size_t n = 0;

	while (p < end && *p != ' ') {
		if (n + 1 >= cap)
			return NULL;
		dst[n++] = *p++;
	}
	dst[n] = '\0';
	if (n == 0)
		return NULL;
	return p < end ? p + 1 : p;
}

/* v1_port - is s a decimal port 0..65535 without leading junk? */
static int v1_port(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	return *s >= '0' && *s <= '9' && *end == '\0' && v >= 0 && v <= 65535 &&
	    strlen(s) <= 5;
}

/*
 * canonical - the one spelling of a binary address (inet_ntop; a
 * v4-mapped IPv6 address as plain IPv4), so "::1" and "0:0:0:0:0:0:0:1"
 * are one client for max_per_addr and in Received:; 1, or -1.
 */
static int canonical(int af, const unsigned char *bin, char *addr, size_t cap)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (af == AF_INET6 && memcmp(bin, mapped, sizeof mapped) == 0)
		return inet_ntop(AF_INET, bin + 12, addr, cap) ? 1 : -1;
	return inet_ntop(af, bin, addr, cap) ? 1 : -1;
}

/* proxy_v1_parse - "PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n" */
int proxy_v1_parse(const char *line, size_t len, char *addr, size_t cap, int *port)
{
	char proto[8], src[64], dst[64], sport[8], dport[8];
	unsigned char bin[16];
	const char *p = line + 6, *end = line + len - 2;
	int af;

	if (len < 8 || len > PROXY_V1_MAX || memcmp(line, "PROXY ", 6) != 0 ||
	    memcmp(end, "\r\n", 2) != 0 || memchr(line, '\0', len))
		return -1;
	if (!(p = v1_field(p, end, proto, sizeof proto)))
		return -1;
	if (strcmp(proto, "UNKNOWN") == 0)
		return 0;
	af = strcmp(proto, "TCP4") == 0 ? AF_INET : strcmp(proto, "TCP6") == 0 ? AF_INET6 : -1;
	if (af < 0 || !(p = v1_field(p, end, src, sizeof src)) ||
	    !(p = v1_field(p, end, dst, sizeof dst)) ||
	    !(p = v1_field(p, end, sport, sizeof sport)) ||
	    !(p = v1_field(p, end, dport, sizeof dport)) || p != end)
		return -1;
	if (inet_pton(af, dst, bin) != 1 || inet_pton(af, src, bin) != 1 ||
	    !v1_port(sport) || !v1_port(dport))
		return -1;
	*port = atoi(sport);
	return canonical(af, bin, addr, cap);
}

/* proxy_v2_parse - the binary header: signature, ver/cmd, family, len */
int proxy_v2_parse(const unsigned char *h, size_t len, char *addr, size_t cap,
    int *port)
{
	size_t body;

	if (len < 16 || memcmp(h, PROXY_V2_SIG, PROXY_V2_SIGLEN) != 0 ||
	    (h[12] & 0xF0) != 0x20)
		return -1;
	body = (size_t)h[14] << 8 | h[15];
	if (len != 16 + body || (h[12] & 0x0F) > 1)
		return -1;
	if ((h[12] & 0x0F) == 0)
		return 0;			/* LOCAL: health check by the proxy */
	switch (h[13]) {
	case 0x11:				/* TCP over IPv4 */
		if (body < 12)
			return -1;
		*port = h[24] << 8 | h[25];	/* after src and dst addresses */
		return canonical(AF_INET, h + 16, addr, cap);
	case 0x21:				/* TCP over IPv6 */
		if (body < 36)
			return -1;
		*port = h[48] << 8 | h[49];
		return canonical(AF_INET6, h + 16, addr, cap);
	case 0x00:				/* UNSPEC */
		return 0;
	default:
		return -1;
	}
}

/* read_exact - n bytes within the timeout; -1 on EOF, error or timeout */
static int read_exact(int fd, unsigned char *buf, size_t n, long timeout)
{
	struct pollfd pfd = { fd, POLLIN, 0 };
	size_t got = 0;

	while (got < n) {
		ssize_t r;

		if (poll(&pfd, 1, timeout * 1000) <= 0)
			return -1;
		r = recv(fd, buf + got, n - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += r;
	}
	return 0;
}

/* proxy_read - read and parse the header on fd; see the file comment */
int proxy_read(int fd, long timeout, char *addr, size_t cap, int *port)
{
	unsigned char h[16 + 65535];
	size_t n = 15;		/* "PROXY UNKNOWN\r\n", the shortest header */

	if (read_exact(fd, h, n, timeout) < 0)
		return -1;
	if (memcmp(h, PROXY_V2_SIG, PROXY_V2_SIGLEN) == 0) {
		if (read_exact(fd, h + 15, 1, timeout) < 0)
			return -1;
		n = 16 + ((size_t)h[14] << 8 | h[15]);
		if (read_exact(fd, h + 16, n - 16, timeout) < 0)
			return -1;
		return proxy_v2_parse(h, n, addr, cap, port);
	}
	if (memcmp(h, "PROXY ", 6) != 0)
		return -1;
	while (!(h[n - 2] == '\r' && h[n - 1] == '\n')) {
		if (n == PROXY_V1_MAX || read_exact(fd, h + n, 1, timeout) < 0)
			return -1;
		n++;
	}
	return proxy_v1_parse((const char *)h, n, addr, cap, port);
}
