/*
 * door.h - the checks at the door, run while the greeting is held:
 * trusted networks, the pregreet test, DNSBL/DNSWL scoring and reverse
 * DNS (door.c).
 */
#ifndef DOOR_H
#define DOOR_H

#include "dns.h"
#include "dnsbl.h"

struct dns;

/* What the door learnt about one client; lives as long as the session */
struct door {
	int trusted;			/* in trusted_networks: no checks at all */
	int looked_up;			/* reverse DNS was asked */
	int score;			/* DNSBL/DNSWL score (and rdns_missing_weight) */
	int listed;			/* score >= dnsbl_threshold: refuse RCPT */
	char site[DNSBL_ZONE_MAX + 1];	/* the site named in the refusal */
	char name[DNS_NAME_MAX];	/* forward-confirmed PTR name, or "" */
	char hits[256];			/* the listing sites, "ZONE*W,...", for the log */
	int cached;			/* the verdict came from the cache */
	long long t0;			/* door_start's time, ms (monotonic) */
	struct dns *dns;		/* queries while the greeting is held */
};

enum { DOOR_OK, DOOR_PREGREET, DOOR_GONE };

int door_start(struct door *dr, int in, const char *addr);
int door_wait(struct door *dr, int in, const char *id, const char *addr);
int door_refuses_rcpt(const struct door *dr, const char *local);
const char *door_name(const struct door *dr);
void door_end(struct door *dr);

#endif
