/*
 * dnsbl.h - DNS block- and allowlist sites, postscreen's syntax and
 * scoring (dnsbl.c).
 */
#ifndef DNSBL_H
#define DNSBL_H

#include <stddef.h>

#include "netaddr.h"

#define DNSBL_SITES_MAX	16	/* sites in dnsbl_sites */
#define DNSBL_ZONE_MAX	180	/* zone length: 63 nibble octets + zone <= 253 */
#define DNSBL_RANGES	8	/* ranges in one octet's [..] list */
#define DNSBL_WEIGHT_MAX 1000	/* |weight| */

/* One octet of an answer filter: a list of lo..hi ranges */
struct dnsbl_octet {
	int n;				/* ranges used */
	unsigned char lo[DNSBL_RANGES], hi[DNSBL_RANGES];
};

/* One dnsbl_sites entry: zone[=filter][*weight] */
struct dnsbl_site {
	char zone[DNSBL_ZONE_MAX + 1];	/* e.g. zen.spamhaus.org */
	int weight;			/* added to the score; < 0 for allowlists */
	int filtered;			/* has =d.d.d.d */
	struct dnsbl_octet oct[4];	/* the filter, when filtered */
};

enum { DNSBL_NO = 0, DNSBL_LISTED = 1, DNSBL_ERROR = -1 };

int dnsbl_parse(const char *spec, struct dnsbl_site *sites, int max);
int dnsbl_answer(const struct dnsbl_site *s, const unsigned char a[4]);
int dnsbl_query_name(const struct dnsbl_site *s, const struct netaddr *na,
    char *dst, size_t cap);

#endif
