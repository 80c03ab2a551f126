/*
 * dns.c - a small asynchronous DNS client for the checks at the door:
 * DNSBL/DNSWL lookups (RFC 5782) and reverse DNS with forward
 * confirmation, sent in parallel as soon as a client connects.
 *
 * Interface: dns_open() makes one UDP socket connected to the resolver
 * (the dns_server setting, "IP[:PORT]", else the first nameserver of
 * /etc/resolv.conf as libc's res_ninit() reads it); dns_ask() sends one
 * query at once; dns_receive() reads every answer that has arrived
 * without waiting (the caller polls d->fd); dns_resend() sends each
 * unanswered query once more; dns_close() forgets them all.
 * The wire format (RFC 1035 4.1) is made and read by two pure functions,
 * dns_query_make() and dns_reply_parse(); names in answers are expanded
 * with libc's dn_expand().  Recursion is the resolver's job: we set RD.
 * Invariants: an answer counts only when its id, type and question name
 * match a query we sent (a spoofed or late packet is dropped); every
 * buffer is fixed-size; a truncated answer (TC) is a failure, not a
 * retry over TCP: a DNS list's answer fits in 512 octets.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dns.h"

/* put16 - a 16-bit number in network order */
static void put16(unsigned char *p, unsigned v)
{
	p[0] = (v >> 8) & 0xff;
	p[1] = v & 0xff;
}

/* get16 - read a 16-bit number in network order */
static unsigned get16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

/*
 * dns_query_make - a standard query with RD for one name and type:
 * 12-octet header, the name as labels, QTYPE, QCLASS IN.  Returns its
 * length, 0 if the name is malformed (empty label, label over 63 octets,
 * name over 253) or does not fit.
 */
size_t dns_query_make(unsigned char *buf, size_t cap, unsigned id,
    const char *name, int type)
{
	size_t n = 12, nlen = strlen(name);
	const char *p = name;

	if (nlen == 0 || nlen > 253 || cap < 12 + nlen + 2 + 4)
		return 0;
	memset(buf, 0, 12);
	put16(buf, id);
	buf[2] = 0x01;			/* RD */
	put16(buf + 4, 1);		/* QDCOUNT */
	while (*p) {
		size_t len = strcspn(p, ".");

		if (len == 0 || len > 63)
			return 0;
		buf[n++] = (unsigned char)len;
		memcpy(buf + n, p, len);
		n += len, p += len;
		if (*p == '.' && *++p == '\0')
			break;		/* one trailing dot is fine */
	}
	buf[n++] = 0;
	put16(buf + n, type);
	put16(buf + n + 2, 1);		/* IN */
	return n + 4;
}

/* take_rr - keep one answer record of the type we care about */
static void take_rr(const unsigned char *pkt, size_t len, const unsigned char *rd,
    unsigned type, unsigned rdlen, struct dns_reply *r)
{
	if (type == DNS_T_A && rdlen == 4 && r->na < DNS_RR_MAX)
		memcpy(r->a[r->na++], rd, 4);
	else if (type == DNS_T_AAAA && rdlen == 16 && r->naaaa < DNS_RR_MAX)
		memcpy(r->aaaa[r->naaaa++], rd, 16);
	else if (type == DNS_T_PTR && r->nptr < 2 &&
	    dn_expand(pkt, pkt + len, rd, r->ptr[r->nptr], DNS_NAME_MAX) == (int)rdlen)
		r->nptr++;
}

/*
 * dns_reply_parse - read an answer: header, the one question, then the
 * answer section's A, AAAA and PTR records (CNAMEs are skipped: the
 * resolver already followed them and put the target's records after).
 * Returns 0, or -1 for anything malformed or not a response.
 */
int dns_reply_parse(const unsigned char *pkt, size_t len, struct dns_reply *r)
{
	const unsigned char *end = pkt + len, *p;
	unsigned an, i;
	int k;

	memset(r, 0, sizeof *r);
	if (len < 12 || !(pkt[2] & 0x80) || get16(pkt + 4) != 1)
		return -1;
	r->id = get16(pkt);
	r->truncated = (pkt[2] & 0x02) != 0;
	r->rcode = pkt[3] & 0x0f;
	an = get16(pkt + 6);
	if ((k = dn_expand(pkt, end, pkt + 12, r->qname, sizeof r->qname)) < 0 ||
	    end - (pkt + 12 + k) < 4)
		return -1;
	p = pkt + 12 + k;
	r->type = get16(p);
	p += 4;
	for (i = 0; i < an; i++) {
		unsigned type, rdlen;

		if ((k = dn_skipname(p, end)) < 0 || end - (p + k) < 10)
			return -1;
		p += k;
		type = get16(p);
		rdlen = get16(p + 8);
		p += 10;
		if ((size_t)(end - p) < rdlen)
			return -1;
		if (get16(p - 8) == 1)		/* class IN */
			take_rr(pkt, len, p, type, rdlen, r);
		p += rdlen;
	}
	return 0;
}

/* dns_server_parse - "IP", "IP:PORT", "[IPv6]:PORT" to a sockaddr; 0 ok */
int dns_server_parse(const char *text, void *sa, unsigned *salen)
{
	char host[64];
	const char *port = NULL, *colon = strrchr(text, ':');
	struct sockaddr_in *s4 = sa;
	struct sockaddr_in6 *s6 = sa;
	long pn = 53;
	char *e;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (!close || close - text - 1 >= (long)sizeof host ||
		    (close[1] && close[1] != ':'))
			return -1;
		snprintf(host, sizeof host, "%.*s", (int)(close - text - 1), text + 1);
		port = close[1] ? close + 2 : NULL;
	} else if (colon && strchr(text, ':') == colon) {
		if (colon - text >= (long)sizeof host)
			return -1;
		snprintf(host, sizeof host, "%.*s", (int)(colon - text), text);
		port = colon + 1;
	} else if (snprintf(host, sizeof host, "%s", text) >= (int)sizeof host) {
		return -1;
	}
	if (port && ((pn = strtol(port, &e, 10)) < 1 || pn > 65535 || *e ||
	    *port < '0' || *port > '9'))
		return -1;
	memset(sa, 0, sizeof(struct sockaddr_in6));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((unsigned short)pn);
		*salen = sizeof *s4;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
		return -1;
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons((unsigned short)pn);
	*salen = sizeof *s6;
	return 0;
}

/* system_server - the first nameserver of /etc/resolv.conf (res_ninit) */
static int system_server(struct sockaddr_storage *ss, unsigned *salen)
{
	struct __res_state st;
	int ok = -1;

	memset(&st, 0, sizeof st);
	if (res_ninit(&st) != 0)
		return -1;
	if (st.nscount > 0 && st.nsaddr_list[0].sin_family == AF_INET) {
		memcpy(ss, &st.nsaddr_list[0], sizeof st.nsaddr_list[0]);
		*salen = sizeof st.nsaddr_list[0];
		ok = 0;
	} else if (st.nscount > 0 && st._u._ext.nsaddrs[0]) {
		memcpy(ss, st._u._ext.nsaddrs[0], sizeof(struct sockaddr_in6));
		*salen = sizeof(struct sockaddr_in6);
		ok = 0;
	}
	res_nclose(&st);
	return ok;
}

/* dns_open - a non-blocking UDP socket connected to the resolver */
int dns_open(struct dns *d, const char *server)
{
	struct sockaddr_storage ss;
	unsigned salen;
	int r = server && *server ? dns_server_parse(server, &ss, &salen) :
	    system_server(&ss, &salen);

	d->n = 0;
	d->resent = 0;
	d->fd = -1;
	if (r < 0)
		return -1;
	d->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (d->fd < 0)
		return -1;
	if (connect(d->fd, (struct sockaddr *)&ss, salen) < 0) {
		close(d->fd);
		d->fd = -1;
		return -1;
	}
	return 0;
}

/* new_id - an unpredictable 16-bit id, different from those in flight */
static unsigned new_id(const struct dns *d)
{
	unsigned id;
	int i, again;

	do {
		if (getrandom(&id, sizeof id, GRND_NONBLOCK) != sizeof id)
			id = (unsigned)rand();
		id &= 0xffff;
		for (again = 0, i = 0; i < d->n; i++)
			again |= d->q[i].id == id;
	} while (again);
	return id;
}

/* send_query - put one query on the wire; a failure ends it at once */
static void send_query(struct dns *d, struct dns_query *q)
{
	unsigned char pkt[DNS_NAME_MAX + 16];
	size_t n = dns_query_make(pkt, sizeof pkt, q->id, q->name, q->type);

	if (n == 0 || d->fd < 0 || send(d->fd, pkt, n, 0) != (ssize_t)n)
		q->done = q->failed = 1;
}

/* dns_ask - send a query now; its index, or -1 when the table is full */
int dns_ask(struct dns *d, const char *name, int type, int tag)
{
	struct dns_query *q;

	if (d->n == DNS_QUERIES_MAX || strlen(name) >= DNS_NAME_MAX)
		return -1;
	q = &d->q[d->n];
	memset(q, 0, sizeof *q);
	snprintf(q->name, sizeof q->name, "%s", name);
	q->type = type;
	q->tag = tag;
	q->id = new_id(d);
	d->n++;
	send_query(d, q);
	return d->n - 1;
}

/* match - the query this answer belongs to, or NULL */
static struct dns_query *match(struct dns *d, const struct dns_reply *r)
{
	int i;

	for (i = 0; i < d->n; i++) {
		struct dns_query *q = &d->q[i];

		if (!q->done && q->id == r->id && q->type == r->type &&
		    strcasecmp(q->name, r->qname) == 0)
			return q;
	}
	return NULL;
}

/*
 * dns_receive - read every answer waiting on the socket (never blocks).
 * Returns how many queries it completed.  An ICMP "port unreachable"
 * (ECONNREFUSED: no resolver there) fails every open query at once.
 */
int dns_receive(struct dns *d)
{
	unsigned char pkt[DNS_PKT_MAX];
	struct dns_reply r;
	int done = 0, i;

	for (;;) {
		ssize_t n = recv(d->fd, pkt, sizeof pkt, 0);
		struct dns_query *q;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ECONNREFUSED) {
			for (i = 0; i < d->n; i++)
				if (!d->q[i].done)
					d->q[i].done = d->q[i].failed = 1, done++;
			return done;
		}
		if (n < 0)
			return done;
		if (dns_reply_parse(pkt, (size_t)n, &r) < 0 || !(q = match(d, &r)))
			continue;
		q->r = r;
		q->done = 1;
		q->failed = r.truncated || (r.rcode != DNS_R_NOERROR &&
		    r.rcode != DNS_R_NXDOMAIN);
		done++;
	}
}

/* dns_resend - send every unanswered query once more (UDP may lose one) */
void dns_resend(struct dns *d)
{
	int i;

	if (d->resent)
		return;
	d->resent = 1;
	for (i = 0; i < d->n; i++)
		if (!d->q[i].done)
			send_query(d, &d->q[i]);
}

/* dns_pending - unanswered queries whose tag has a bit of tagmask */
int dns_pending(const struct dns *d, int tagmask)
{
	int i, n = 0;

	for (i = 0; i < d->n; i++)
		n += !d->q[i].done && (d->q[i].tag & tagmask);
	return n;
}

/* dns_close - close the socket; answers still on their way are dropped */
void dns_close(struct dns *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	d->n = 0;
}
