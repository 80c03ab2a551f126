/*
 * netaddr.h - IP addresses as bytes: parsing, CIDR lists, reversed names.
 */
#ifndef NETADDR_H
#define NETADDR_H

#include <stddef.h>

#define NETADDR_LIST_MAX	64	/* networks in one list */
#define NETADDR_REV_MAX		74	/* "b.a.9.8...." for IPv6, NUL included */

struct netaddr {
	int family;		/* AF_INET or AF_INET6 */
	unsigned char a[16];	/* network byte order; 4 used for IPv4 */
};

int netaddr_parse(const char *text, struct netaddr *out);
int netaddr_match(const char *addr, const char *list);
int netaddr_list_ok(const char *list);
int netaddr_reverse(const struct netaddr *na, char *dst, size_t cap);

#endif
