/*
 * netaddr.c - client addresses as bytes, CIDR network lists and the
 * reversed names DNS lists and PTR lookups use.
 *
 * Interface: netaddr_parse() reads IPv4 or IPv6 text (an IPv4-mapped
 * IPv6 address becomes the IPv4 one, so ::ffff:192.0.2.1 and 192.0.2.1
 * are the same client); netaddr_match() answers whether an address lies
 * in a list like "127.0.0.0/8, ::1/128, 192.0.2.7" (comma or blank
 * separated; a bare address is a /32 or /128); netaddr_reverse() writes
 * "4.3.2.1" or the 32 reversed nibbles of an IPv6 address (RFC 5782 2.1
 * and 2.4), without a trailing zone.
 * Pure functions: no I/O, no allocation; a malformed list never matches
 * and netaddr_list_ok() lets the configuration refuse it at start.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "netaddr.h"

/* netaddr_parse - IPv4 or IPv6 text to bytes; 0 ok, -1 not an address */
int netaddr_parse(const char *text, struct netaddr *out)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	memset(out, 0, sizeof *out);
	if (inet_pton(AF_INET, text, out->a) == 1) {
		out->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, out->a) != 1)
		return -1;
	out->family = AF_INET6;
	if (memcmp(out->a, mapped, sizeof mapped) == 0) {
		memmove(out->a, out->a + 12, 4);
		memset(out->a + 4, 0, 12);
		out->family = AF_INET;
	}
	return 0;
}

/* parse_net - "ADDR[/BITS]" (len octets of text) into a network and prefix */
static int parse_net(const char *p, size_t len, struct netaddr *net, int *bits)
{
	char text[64], *slash, *end;
	long b;
	int max;

	if (len == 0 || len >= sizeof text)
		return -1;
	memcpy(text, p, len);
	text[len] = '\0';
	if ((slash = strchr(text, '/')))
		*slash = '\0';
	if (netaddr_parse(text, net) < 0)
		return -1;
	max = net->family == AF_INET ? 32 : 128;
	if (net->family == AF_INET && strchr(text, ':'))
		max = 32;	/* ::ffff:a.b.c.d/N: N counts the IPv4 bits */
	*bits = max;
	if (!slash)
		return 0;
	b = strtol(slash + 1, &end, 10);
	if (slash[1] < '0' || slash[1] > '9' || *end || b > max)
		return -1;
	*bits = (int)b;
	return 0;
}

/* prefix_equal - do the first `bits` bits of a and b agree? */
static int prefix_equal(const unsigned char *a, const unsigned char *b, int bits)
{
	int whole = bits / 8, rest = bits % 8;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));

	if (memcmp(a, b, whole) != 0)
		return 0;
	return rest == 0 || ((a[whole] ^ b[whole]) & mask) == 0;
}

/*
 * walk - go through a list: 1 as soon as a network holds addr (when
 * addr is given), -1 on a malformed entry or too many, else 0.
 */
static int walk(const char *list, const struct netaddr *addr)
{
	struct netaddr net;
	int bits, n = 0;

	while (*list) {
		size_t len;

		list += strspn(list, ", \t");
		if (!*list)
			break;
		len = strcspn(list, ", \t");
		if (++n > NETADDR_LIST_MAX || parse_net(list, len, &net, &bits) < 0)
			return -1;
		if (addr && net.family == addr->family &&
		    prefix_equal(net.a, addr->a, bits))
			return 1;
		list += len;
	}
	return 0;
}

/* netaddr_match - is the address text in the list? 1 yes, 0 no or bad */
int netaddr_match(const char *addr, const char *list)
{
	struct netaddr na;

	if (netaddr_parse(addr, &na) < 0)
		return 0;
	return walk(list, &na) == 1;
}

/* netaddr_list_ok - is every entry of the list a network? */
int netaddr_list_ok(const char *list)
{
	return walk(list, NULL) == 0;
}

/* netaddr_reverse - "d.c.b.a" or 32 reversed nibbles; length, 0 if no room */
int netaddr_reverse(const struct netaddr *na, char *dst, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	int i;

	if (na->family == AF_INET) {
		int k = snprintf(dst, cap, "%u.%u.%u.%u", na->a[3], na->a[2],
		    na->a[1], na->a[0]);

		return k < 0 || (size_t)k >= cap ? 0 : k;
	}
	if (cap < 64)
		return 0;
	for (i = 15; i >= 0; i--) {
		dst[n++] = hex[na->a[i] & 0x0f];
		dst[n++] = '.';
		dst[n++] = hex[na->a[i] >> 4];
		dst[n++] = '.';
	}
	dst[--n] = '\0';	/* no trailing dot */
	return (int)n;
}
