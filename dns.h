/*
 * dns.h - a small asynchronous DNS client: many UDP queries at once to
 * one resolver, answers collected while the session waits for something
 * else (dns.c).
 */
#ifndef DNS_H
#define DNS_H

#include <stddef.h>

#define DNS_NAME_MAX	256	/* a domain name as text, NUL included */
#define DNS_PKT_MAX	1232	/* largest UDP answer we read (EDNS's safe size) */
#define DNS_QUERIES_MAX	40	/* queries in flight for one client */
#define DNS_RR_MAX	8	/* A, AAAA or PTR records kept per answer */

enum { DNS_T_A = 1, DNS_T_PTR = 12, DNS_T_AAAA = 28 };
enum { DNS_R_NOERROR = 0, DNS_R_SERVFAIL = 2, DNS_R_NXDOMAIN = 3 };

/* What one answer packet said; filled by dns_reply_parse() */
struct dns_reply {
	unsigned id;			/* the query id it answers */
	int rcode;			/* DNS_R_*, or another RCODE */
	int truncated;			/* TC bit set */
	int type;			/* question type */
	char qname[DNS_NAME_MAX];	/* question name, as sent */
	int na;				/* A records */
	unsigned char a[DNS_RR_MAX][4];
	int naaaa;			/* AAAA records */
	unsigned char aaaa[DNS_RR_MAX][16];
	int nptr;			/* PTR names */
	char ptr[2][DNS_NAME_MAX];
};

/* One query in flight */
struct dns_query {
	char name[DNS_NAME_MAX];	/* question name, no trailing dot */
	int type;			/* DNS_T_* */
	unsigned id;			/* 16-bit query id */
	int done;			/* answered (or could not be sent) */
	int failed;			/* no usable answer: send error, TC, bad rcode */
	int tag;			/* the caller's: which site or step */
	struct dns_reply r;		/* the answer once done && !failed */
};

/* The client: one socket, connected to the resolver */
struct dns {
	int fd;				/* UDP socket, -1 if none */
	int n;				/* queries used */
	int resent;			/* the one retransmission done */
	struct dns_query q[DNS_QUERIES_MAX];
};

size_t dns_query_make(unsigned char *buf, size_t cap, unsigned id,
    const char *name, int type);
int dns_reply_parse(const unsigned char *pkt, size_t len, struct dns_reply *r);
int dns_server_parse(const char *text, void *sa, unsigned *salen);
int dns_open(struct dns *d, const char *server);
int dns_ask(struct dns *d, const char *name, int type, int tag);
int dns_receive(struct dns *d);
void dns_resend(struct dns *d);
int dns_pending(const struct dns *d, int tagmask);
void dns_close(struct dns *d);

#endif
