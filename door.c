/*
 * door.c - the checks at the door (DESIGN.md "At the door"): what smtpd
 * learns about a client between accept and the greeting, the way
 * Postfix's postscreen does it.
 *
 * Interface, in session order:
 *   door_start()   a client in trusted_networks skips everything; for any
 *                  other, fire the DNSBL/DNSWL queries (one per site) and
 *                  the PTR query in parallel, right away.  Returns 1 when
 *                  the greeting is to be held for the pregreet test (the
 *                  caller may send the "220-" teaser line first).
 *   door_wait()    hold the greeting: at least greet_wait seconds (on a
 *                  socket), and until the DNS answers that count are in or
 *                  dnsbl_timeout has passed.  A client that talks first is
 *                  a pregreet (DOOR_PREGREET: 554 5.5.1 and close); a PTR
 *                  answer triggers the forward lookup that confirms it.
 *                  Then the score: the weights of the sites whose answer
 *                  lists the client, plus rdns_missing_weight when there is
 *                  no confirmed name; one log line.
 *   door_refuses_rcpt()  at RCPT: listed, and the recipient is not the
 *                  postmaster (RFC 5321 4.5.1).
 *   door_name()    the confirmed name for Received: and the logs.
 * A DNS failure (timeout, SERVFAIL, NXDOMAIN, no resolver) is never a
 * listing; answers outside 127/8 or in 127.255.255.0/24 are logged once
 * per site and ignored.  Without dnsbl_sites or rdns_missing_weight the
 * PTR lookup gets only the greet_wait time: it never delays a client;
 * with them, the greeting waits for it (and the forward lookup) too.
 * The cache: each process remembers the last DOOR_CACHE_SLOTS complete
 * verdicts (score, listing sites, confirmed name) for dnsbl_cache_ttl
 * seconds, as postscreen does, so a client that reconnects at once costs
 * no DNS queries.  It is the one piece of state the door keeps between
 * sessions; a worker's cache dies with the worker (SIGHUP replaces them).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <syslog.h>
#include <time.h>

#include "config.h"
#include "dns.h"
#include "dnsbl.h"
#include "door.h"
#include "log.h"
#include "netaddr.h"
#include "nowms.h"

/* Query tags: what a query is for (dns_query.tag) */
#define TAG_SITE	0x100	/* a DNSBL site; the low byte is its index */
#define TAG_PTR		0x200	/* the client's PTR */
#define TAG_FWD		0x400	/* A/AAAA of a PTR name */
#define TAG_COUNTS	0x800	/* the greeting waits for this answer */

/* rdns_counts - does the greeting wait for the reverse lookup? */
static int rdns_counts(void)
{
	return cfg.rdns_missing_weight || cfg.dnsbl_sites[0] ? TAG_COUNTS : 0;
}

#define DOOR_CACHE_SLOTS	64	/* verdicts one process remembers */

/* One remembered verdict */
struct verdict {
	char addr[64];			/* client address text; "" = free */
	long long at;			/* when it was made, ms (monotonic) */
	int score, listed, looked_up;
	char site[DNSBL_ZONE_MAX + 1];
	char name[DNS_NAME_MAX];
	char hits[256];
};

/* The per-process verdict cache (see the file comment); door.c's only. */
static struct verdict cache[DOOR_CACHE_SLOTS];

/* is_socket - is fd a socket (the pregreet test needs a real client)? */
static int is_socket(int fd)
{
	int type;
	socklen_t len = sizeof type;

	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
}

/* ask_sites - one query per dnsbl_sites entry; 1 if any was sent */
static int ask_sites(struct door *dr, const struct netaddr *na)
{
	struct dnsbl_site sites[DNSBL_SITES_MAX];
	char name[DNS_NAME_MAX];
	int n = dnsbl_parse(cfg.dnsbl_sites, sites, DNSBL_SITES_MAX), i, any = 0;

	for (i = 0; i < n; i++) {
		if (dnsbl_query_name(&sites[i], na, name, sizeof name) == 0)
			continue;
		any |= dns_ask(dr->dns, name, DNS_T_A, TAG_SITE | TAG_COUNTS | i) >= 0;
	}
	return any;
}

/* ask_ptr - the reverse lookup: NAME.in-addr.arpa or NIBBLES.ip6.arpa */
static void ask_ptr(struct door *dr, const struct netaddr *na)
{
	char rev[NETADDR_REV_MAX], name[DNS_NAME_MAX];
	int counts = rdns_counts();

	if (!cfg.rdns || netaddr_reverse(na, rev, sizeof rev) == 0)
		return;
	snprintf(name, sizeof name, "%s.%s", rev,
	    na->family == AF_INET ? "in-addr.arpa" : "ip6.arpa");
	if (dns_ask(dr->dns, name, DNS_T_PTR, TAG_PTR | counts) >= 0)
		dr->looked_up = 1;
}

/* recall - a fresh verdict for addr from the cache; 1 if found */
static int recall(struct door *dr, const char *addr)
{
	int i;

	for (i = 0; i < DOOR_CACHE_SLOTS && cfg.dnsbl_cache_ttl; i++) {
		const struct verdict *v = &cache[i];

		if (strcmp(v->addr, addr) != 0 || dr->t0 - v->at >= cfg.dnsbl_cache_ttl * 1000)
			continue;
		dr->score = v->score, dr->listed = v->listed, dr->looked_up = v->looked_up;
		snprintf(dr->site, sizeof dr->site, "%s", v->site);
		snprintf(dr->name, sizeof dr->name, "%s", v->name);
		snprintf(dr->hits, sizeof dr->hits, "%s", v->hits);
		return dr->cached = 1;
	}
	return 0;
}

/* remember - keep a complete verdict, in its address's slot or the oldest */
static void remember(const struct door *dr, const char *addr)
{
	struct verdict *v = &cache[0];
	int i;

	if (!cfg.dnsbl_cache_ttl || strlen(addr) >= sizeof v->addr)
		return;
	for (i = 0; i < DOOR_CACHE_SLOTS; i++) {
		if (strcmp(cache[i].addr, addr) == 0) {
			v = &cache[i];
			break;
		}
		if (cache[i].at < v->at)
			v = &cache[i];
	}
	snprintf(v->addr, sizeof v->addr, "%s", addr);
	v->at = dr->t0;
	v->score = dr->score, v->listed = dr->listed, v->looked_up = dr->looked_up;
	snprintf(v->site, sizeof v->site, "%s", dr->site);
	snprintf(v->name, sizeof v->name, "%s", dr->name);
	snprintf(v->hits, sizeof v->hits, "%s", dr->hits);
}

/* door_start - trusted or not; fire the queries; 1 if the greeting is held */
int door_start(struct door *dr, int in, const char *addr)
{
	struct netaddr na;

	memset(dr, 0, sizeof *dr);
	dr->t0 = now_ms();
	if (netaddr_match(addr, cfg.trusted_networks) || netaddr_parse(addr, &na) < 0) {
		dr->trusted = netaddr_match(addr, cfg.trusted_networks);
		return 0;
	}
	if (recall(dr, addr))
		return cfg.greet_wait > 0 && is_socket(in);
	if ((cfg.dnsbl_sites[0] || cfg.rdns) && (dr->dns = malloc(sizeof *dr->dns))) {
		if (dns_open(dr->dns, cfg.dns_server) < 0) {
			free(dr->dns);
			dr->dns = NULL;
		} else {
			ask_sites(dr, &na);
			ask_ptr(dr, &na);
		}
	}
	return cfg.greet_wait > 0 && is_socket(in);
}

/* valid_host - a PTR name we would write into Received: */
static int valid_host(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n < 254 && strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") == n && s[0] != '.' &&
	    s[0] != '-' && !strstr(s, "..");
}

/* forward - a PTR answer came: ask for the addresses of its names */
static void forward(struct door *dr, const struct dns_query *q, int family)
{
	int i, counts = rdns_counts();

	for (i = 0; i < q->r.nptr; i++)
		if (valid_host(q->r.ptr[i]))
			dns_ask(dr->dns, q->r.ptr[i], family == AF_INET ? DNS_T_A : DNS_T_AAAA,
			    TAG_FWD | counts);
}

/* confirm - does a forward answer hold the client's address? */
static void confirm(struct door *dr, const struct dns_query *q, const struct netaddr *na)
{
	int i, hit = 0;

	for (i = 0; i < q->r.na && na->family == AF_INET; i++)
		hit |= memcmp(q->r.a[i], na->a, 4) == 0;
	for (i = 0; i < q->r.naaaa && na->family == AF_INET6; i++)
		hit |= memcmp(q->r.aaaa[i], na->a, 16) == 0;
	if (hit && !dr->name[0])
		snprintf(dr->name, sizeof dr->name, "%s", q->name);
}

/* answers - look at answers that arrived since last time (seen[] marks) */
static void answers(struct door *dr, const struct netaddr *na, char *seen)
{
	int i;

	dns_receive(dr->dns);
	for (i = 0; i < dr->dns->n; i++) {
		const struct dns_query *q = &dr->dns->q[i];

		if (!q->done || seen[i])
			continue;
		seen[i] = 1;
		if (q->failed)
			continue;
		if (q->tag & TAG_PTR)
			forward(dr, q, na->family);
		else if (q->tag & TAG_FWD)
			confirm(dr, q, na);
	}
}

/* peek - the client sent something (or hung up) before our greeting */
static int peek(int in)
{
	char buf[64];
	ssize_t n = recv(in, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -1;		/* spurious: keep waiting */
	return n > 0 ? DOOR_PREGREET : DOOR_GONE;
}

/*
 * hold - wait until greet_end and until the answers that count are in
 * (or dns_end); watch the client for talk.  in < 0: no pregreet test.
 */
static int hold(struct door *dr, int in, const struct netaddr *na,
    long long greet_end, long long dns_end)
{
	char seen[DNS_QUERIES_MAX] = { 0 };
	long long resend_at = dr->t0 + cfg.dnsbl_timeout * 1000LL / 3;

	for (;;) {
		struct pollfd pfd[2] = { { in, POLLIN, 0 }, { -1, POLLIN, 0 } };
		long long now = now_ms(), until;
		int counts = dr->dns ? dns_pending(dr->dns, TAG_COUNTS) : 0, r;

		if (now >= greet_end && (counts == 0 || now >= dns_end))
			return DOOR_OK;
		until = now < greet_end ? greet_end : dns_end;
		if (dr->dns && dns_pending(dr->dns, ~0)) {
			pfd[1].fd = dr->dns->fd;
			if (now >= resend_at)
				dns_resend(dr->dns);
			else if (resend_at < until)
				until = resend_at;
		}
		if (poll(pfd, 2, (int)(until - now)) < 0) {
			if (errno == EINTR)
				return DOOR_OK;	/* a signal: the session acts on it */
			continue;
		}
		if (pfd[0].revents && (r = peek(in)) >= 0)
			return r;
		if (pfd[1].revents)
			answers(dr, na, seen);
	}
}

/* bad_answer - a site answered something that is never a listing */
static void bad_answer(const char *id, const char *addr, const char *zone,
    const unsigned char *a)
{
	logmsg(LOG_WARNING, "%s dnsbl client=%s site=%s answer=%u.%u.%u.%u "
	    "reason=not-a-listing", id, addr, zone, a[0], a[1], a[2], a[3]);
}

/* judge - does this site's answer list the client? failures are debug */
static int judge(const struct dns_query *q, const struct dnsbl_site *site,
    const char *id, const char *addr)
{
	int i, listed = 0, bad = -1;

	if (!q->done || q->failed) {
		logmsg(LOG_DEBUG, "%s dnsbl client=%s site=%s reason=%s", id, addr,
		    site->zone, !q->done ? "timeout" : q->r.truncated ? "truncated" :
		    q->r.rcode == DNS_R_SERVFAIL ? "servfail" : "no-answer");
		return 0;
	}
	for (i = 0; i < q->r.na; i++) {
		int v = dnsbl_answer(site, q->r.a[i]);

		listed |= v == DNSBL_LISTED;
		if (v == DNSBL_ERROR && bad < 0)
			bad = i;
	}
	if (bad >= 0)
		bad_answer(id, addr, site->zone, q->r.a[bad]);	/* once per site */
	return listed;
}

/* add_hit - count a listing: score, the log's list, the reply's site */
static void add_hit(struct door *dr, const char *zone, int weight, int *best)
{
	size_t n = strlen(dr->hits), cap = sizeof dr->hits;

	dr->score += weight;
	if (n + strlen(zone) + 16 < cap)
		snprintf(dr->hits + n, cap - n, "%s%s*%d", n ? "," : "", zone, weight);
	if (weight > *best) {
		*best = weight;
		snprintf(dr->site, sizeof dr->site, "%s", zone);
	}
}

/* score - add up the weights of the sites that list the client; decide */
static void score(struct door *dr, const char *id, const char *addr)
{
	struct dnsbl_site sites[DNSBL_SITES_MAX];
	int n = dnsbl_parse(cfg.dnsbl_sites, sites, DNSBL_SITES_MAX), i, best = 0;

	for (i = 0; i < dr->dns->n; i++) {
		const struct dns_query *q = &dr->dns->q[i];
		const struct dnsbl_site *site = &sites[q->tag & 0xff];

		if ((q->tag & TAG_SITE) && (q->tag & 0xff) < n && judge(q, site, id, addr))
			add_hit(dr, site->zone, site->weight, &best);
	}
	if (cfg.rdns_missing_weight && dr->looked_up && !dr->name[0])
		add_hit(dr, "rdns", (int)cfg.rdns_missing_weight, &best);
	dr->listed = dr->score >= cfg.dnsbl_threshold && dr->site[0];
}

/* verdict_log - the dnsbl line (when lists count) and the rdns line */
static void verdict_log(const struct door *dr, const char *id, const char *addr)
{
	if (cfg.dnsbl_sites[0] || cfg.rdns_missing_weight)
		logmsg(dr->listed ? LOG_NOTICE : LOG_INFO, "%s dnsbl client=%s score=%d "
		    "threshold=%ld sites=%s cached=%s result=%s", id, addr, dr->score,
		    cfg.dnsbl_threshold, dr->hits[0] ? dr->hits : "-",
		    dr->cached ? "yes" : "no", dr->listed ? "listed" : "pass");
	if (dr->looked_up)
		logmsg(LOG_INFO, "%s rdns client=%s name=%s", id, addr,
		    dr->name[0] ? dr->name : "unknown");
}

/*
 * door_wait - hold the greeting, then judge; DOOR_OK, DOOR_PREGREET (the
 * caller answers 554 5.5.1 and closes) or DOOR_GONE (the client left).
 */
int door_wait(struct door *dr, int in, const char *id, const char *addr)
{
	struct netaddr na;
	int held = !dr->trusted && cfg.greet_wait > 0 && is_socket(in);
	long long greet_end = dr->t0 + (held ? cfg.greet_wait * 1000LL : 0);
	int r;

	if (dr->trusted || netaddr_parse(addr, &na) < 0)
		return DOOR_OK;
	r = hold(dr, held ? in : -1, &na, greet_end, dr->t0 + cfg.dnsbl_timeout * 1000LL);
	if (r == DOOR_PREGREET)
		logmsg(LOG_NOTICE, "%s refused client=%s reason=pregreet after=%.3f", id,
		    addr, (now_ms() - dr->t0) / 1000.0);
	if (r == DOOR_OK && dr->dns) {
		score(dr, id, addr);
		if (dns_pending(dr->dns, ~0) == 0)
			remember(dr, addr);	/* complete: nothing timed out */
	}
	if (r == DOOR_OK && (dr->dns || dr->cached))
		verdict_log(dr, id, addr);
	door_end(dr);
	return r;
}

/* door_refuses_rcpt - listed, and not a recipient for the postmaster */
int door_refuses_rcpt(const struct door *dr, const char *local)
{
	return dr->listed && strcasecmp(local, "postmaster") != 0;
}

/* door_name - the name for Received: NAME, "unknown", or NULL (not asked) */
const char *door_name(const struct door *dr)
{
	if (dr->name[0])
		return dr->name;
	return dr->looked_up ? "unknown" : NULL;
}

/* door_end - drop the DNS client (late answers are not read) */
void door_end(struct door *dr)
{
	if (!dr->dns)
		return;
	dns_close(dr->dns);
	free(dr->dns);
	dr->dns = NULL;
}
