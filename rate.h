/*
 * rate.h - connections per minute per client address (rate.c).
 */
#ifndef RATE_H
#define RATE_H

#include <time.h>

#include "netaddr.h"

#define RATE_SLOTS	1024	/* addresses remembered */
#define RATE_WINDOW	60	/* seconds: the limit is per minute */

struct rate_slot {
	struct netaddr addr;	/* family 0: free */
	time_t start;		/* when this address's window began */
	long count;		/* connection attempts in the window */
};

struct rate {
	struct rate_slot s[RATE_SLOTS];
};

int rate_over(struct rate *r, const char *addr, time_t now, long limit);

#endif
