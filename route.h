/*
 * route.h - a transaction's recipients on their way: RCPT-time checks
 * (resolution, dedupe, quota, the LMTP server's word) and LMTP delivery.
 */
#ifndef ROUTE_H
#define ROUTE_H

#include "deliver.h"
#include "lmtp.h"
#include "rfc822.h"

#define ROUTE_LMTP_MAX	4	/* LMTP servers one transaction may use */

/* one LMTP session kept by a transaction */
struct route_conn {
	struct lmtp l;		/* l.fd < 0: not connected */
	int mail;		/* 1 once MAIL FROM was accepted (per txn) */
	int *idx;		/* entry indexes the server accepted, in order */
	int nidx, capidx;
};

struct route {
	struct route_conn c[ROUTE_LMTP_MAX];
	int nc;			/* connections in use (kept across txns) */
};

/* what a RCPT comes to; the session maps each to its reply */
enum route_result {
	ROUTE_OK, ROUTE_UNKNOWN, ROUTE_TEMP, ROUTE_FULL, ROUTE_LMTP_DOWN,
	ROUTE_LOOP, ROUTE_TOO_MANY, ROUTE_REFUSED
};

int route_rcpt(struct route *rt, struct deliverer *d, const char *id,
    const char *sender, const struct path *p, char **entries, int *n, int max);
int route_is_lmtp(const char *entry);
int route_loops(char *const *entries, int n, const char *value);
void route_data(struct route *rt, int spool, char *const *entries, int n,
    struct deliver_result *res);
void route_end(struct route *rt);
void route_close(struct route *rt);
void route_retry(const char *id, int spool, char *const *entries, int n,
    struct deliver_result *res);
size_t route_body_offset(int spool, char *sender, size_t cap);

#endif
