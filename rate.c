/*
 * rate.c - the supervisor's per-address connection rate (conn_rate_limit):
 * how many connections one client address opened in the current minute.
 *
 * Interface: rate_over() counts one attempt and says whether the address
 * is over its limit.  A window starts with an address's first attempt
 * and lasts RATE_WINDOW seconds; refused attempts count too, so a client
 * that keeps hammering stays refused until it pauses.
 * Bounded: RATE_SLOTS addresses.  When all are in use, the slot whose
 * window began first is taken over (an attacker who cycles through more
 * addresses than that dilutes its own counts, never anyone's admission).
 * Pure: no I/O; the caller passes the time.
 */
#include <string.h>

#include "rate.h"

/* victim - of two slots, the one to reuse: a free one, else the older */
static struct rate_slot *victim(struct rate_slot *a, struct rate_slot *b)
{
	if (!a || a->addr.family == 0)
		return a ? a : b;
	if (b->addr.family == 0 || b->start < a->start)
		return b;
	return a;
}

/* rate_over - count an attempt from addr; 1 if over limit (0: no limit) */
int rate_over(struct rate *r, const char *addr, time_t now, long limit)
{
	struct rate_slot *slot = NULL, *spare = NULL;
	struct netaddr na;
	int i;

	if (limit <= 0 || netaddr_parse(addr, &na) < 0)
		return 0;
	for (i = 0; i < RATE_SLOTS && !slot; i++) {
		struct rate_slot *s = &r->s[i];

		if (s->addr.family == na.family && memcmp(s->addr.a, na.a, 16) == 0)
			slot = s;
		else
			spare = victim(spare, s);
	}
	if (!slot || now - slot->start >= RATE_WINDOW || now < slot->start) {
		slot = slot ? slot : spare;
		slot->addr = na;
		slot->start = now;
		slot->count = 0;
	}
	return ++slot->count > limit;
}
