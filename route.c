/*
 * route.c - a transaction's recipients on their way to their mailboxes.
 *
 * Interface (the session calls one function per stage):
 *   route_rcpt()   at RCPT: resolve (resolve.c), drop mailboxes the
 *                  transaction already has (one copy per mailbox), ask
 *                  the deliverer about Maildir++ quota, and for LMTP
 *                  domains ask the LMTP server itself (RCPT TO), so the
 *                  client hears 550/452/451 while it still owns the mail;
 *   route_data()   at the end of data: stream the spooled message once
 *                  to each LMTP server and collect one reply per
 *                  recipient it accepted (RFC 2033 4.2);
 *   route_end()    after the transaction (RSET, or done): RSET the LMTP
 *                  sessions, which stay open for the next transaction;
 *   route_close()  at the end of the session;
 *   route_retry()  the queue run's LMTP deliveries.
 * Entries: each delivery is one "MAILBOX ADDR" string (resolve.h) in the
 * transaction's recipient list, the envelope's R lines and the
 * deliverer's requests.
 * Durability (DESIGN.md): an LMTP recipient counts as delivered only on
 * its 250 after the data; a 4xx, a lost connection or a timeout leaves
 * it pending (queued), a 5xx is a permanent failure (the give-up path).
 * An LMTP server that cannot be reached at RCPT is 451 4.4.1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include "strcopy.h"
#include "aliases.h"
#include "config.h"
#include "log.h"
#include "resolve.h"
#include "route.h"

#define TARGETS_MAX	ALIAS_FANOUT	/* deliveries one RCPT may stand for */

/* entry_key - the dedupe key of an entry (resolve.c's target key) */
static void entry_key(const char *entry, char *key, size_t cap)
{
	const char *sp = strchr(entry, ' '), *a, *at, *d;
	size_t n, base;

	if (!sp) {
		str_copy(key, cap, entry);
		return;
	}
	if (!route_is_lmtp(entry)) {
		n = strcspn(entry, ": ");
		snprintf(key, cap, "%.*s", (int)n, entry);
		return;
	}
	a = sp + 1;
	at = strrchr(a, '@');
	n = at ? (size_t)(at - a) : strlen(a);
	base = n;
	if (cfg.recipient_delimiter[0])
		for (d = a + 1; d < a + n; d++)
			if (strchr(cfg.recipient_delimiter, *d)) {
				base = d - a;
				break;
			}
	snprintf(key, cap, "@%.*s%s", (int)base, a, at ? at : "");
}

/* route_is_lmtp - is this entry an LMTP recipient? */
int route_is_lmtp(const char *entry)
{
	return strncmp(entry, LMTP_MAILBOX " ", sizeof LMTP_MAILBOX) == 0;
}

/* have_key - does the transaction already deliver to this mailbox? */
static int have_key(char *const *entries, int n, const char *key)
{
	char k[ADDR_MAX + 2];
	int i;

	for (i = 0; i < n; i++) {
		entry_key(entries[i], k, sizeof k);
		if (strcasecmp(k, key) == 0)
			return 1;
	}
	return 0;
}

/* log_lmtp - one line about an LMTP exchange; `what` is our own word
 * list ("result=failed", "command=mail result=failed", ...) */
static void log_lmtp(int prio, const char *id, const char *spec, const char *to,
    const char *what, const char *text)
{
	char srv[CFG_STR_MAX * 4], rcpt[ADDR_MAX * 4] = "", why[LMTP_REPLY_MAX * 4];

	log_escape(srv, sizeof srv, spec, strlen(spec));
	if (to)
		log_escape(rcpt, sizeof rcpt, to, strlen(to));
	log_text(why, sizeof why, text);
	logmsg(prio, "%s lmtp server=%s%s%s%s %s reply=\"%s\"", id, srv,
	    to ? " to=<" : "", rcpt, to ? ">" : "", what, why);
}

/* conn_for - the transaction's LMTP session to `spec`, opened and with
 * MAIL FROM sent; NULL when the server cannot be used now */
static struct route_conn *conn_for(struct route *rt, const char *id,
    const char *spec, const char *sender)
{
	char text[LMTP_REPLY_MAX], arg[ADDR_MAX + 8];
	struct route_conn *c = NULL;
	int i, code;

	for (i = 0; i < rt->nc && !c; i++)
		if (strcmp(rt->c[i].l.spec, spec) == 0)
			c = &rt->c[i];
	if (!c && rt->nc < ROUTE_LMTP_MAX)
		c = &rt->c[rt->nc++], c->l.fd = -1, c->mail = 0;
	if (!c)
		return NULL;
	if (c->l.fd < 0 && (code = lmtp_open(&c->l, spec, cfg.hostname,
	    cfg.lmtp_timeout, text, sizeof text)) != 250) {
		str_copy(c->l.spec, sizeof c->l.spec, spec);
		log_lmtp(LOG_WARNING, id, spec, NULL, "result=failed", text);
		return NULL;
	}
	if (!c->mail) {
		snprintf(arg, sizeof arg, "FROM:<%s>", sender);
		if ((code = lmtp_command(&c->l, "MAIL", arg, text, sizeof text)) != 250) {
			log_lmtp(LOG_WARNING, id, spec, NULL, "command=mail result=failed", text);
			lmtp_close(&c->l);
			return NULL;
		}
		c->mail = 1, c->nidx = 0;
	}
	return c;
}

/* note_idx - remember that entry `i` was accepted on c, in order */
static int note_idx(struct route_conn *c, int i)
{
	int *p;

	if (c->nidx == c->capidx) {
		if (!(p = realloc(c->idx, (c->capidx + 16) * sizeof *p)))
			return -1;
		c->idx = p, c->capidx += 16;
	}
	c->idx[c->nidx++] = i;
	return 0;
}

/* lmtp_rcpt - RCPT TO on the target's LMTP session; a route_result */
static int lmtp_rcpt(struct route *rt, const char *id, const char *sender,
    const struct target *t, int index)
{
	char text[LMTP_REPLY_MAX], arg[ADDR_MAX + 8];
	struct route_conn *c = conn_for(rt, id, t->lmtp, sender);
	int code;

	if (!c)
		return ROUTE_LMTP_DOWN;
	snprintf(arg, sizeof arg, "TO:<%s>", t->addr);
	code = lmtp_command(&c->l, "RCPT", arg, text, sizeof text);
	if (code < 0) {
		lmtp_close(&c->l);
		c->mail = 0;
		return ROUTE_LMTP_DOWN;
	}
	if (code / 100 != 2)
		log_lmtp(LOG_INFO, id, t->lmtp, t->addr, "result=rejected", text);
	if (code / 100 == 2)
		return note_idx(c, index) < 0 ? ROUTE_TEMP : ROUTE_OK;
	if (code == 452 || code == 552)
		return ROUTE_FULL;
	return code / 100 == 5 ? ROUTE_REFUSED : ROUTE_TEMP;
}

/* check_target - may this target be added? a route_result */
static int check_target(struct route *rt, struct deliverer *d, const char *id,
    const char *sender, const struct target *t, const char *entry, int index)
{
	struct deliver_result r;

	if (t->lmtp[0])
		return lmtp_rcpt(rt, id, sender, t, index);
	if (!cfg.quota)
		return ROUTE_OK;
	switch (deliverer_quota(d, entry, &r)) {
	case DELIVER_OK:
		return ROUTE_OK;
	case DELIVER_TEMP:
		if (r.why == WHY_AGENT)
			return ROUTE_OK;	/* unknown now: checked again at delivery */
		return r.why == WHY_QUOTA ? ROUTE_FULL : ROUTE_TEMP;
	case DELIVER_PERM:
		return ROUTE_UNKNOWN;
	default:
		return r.why == WHY_QUOTA ? ROUTE_FULL : ROUTE_TEMP;
	}
}

/* orphan - forget that entry i was accepted (it could not be kept);
 * its slot stays, so later replies still pair with their recipients */
static void orphan(struct route *rt, int i)
{
	int k, j;

	for (k = 0; k < rt->nc; k++)
		for (j = 0; j < rt->c[k].nidx; j++)
			if (rt->c[k].idx[j] == i)
				rt->c[k].idx[j] = -1;
}

/* worse - which of two RCPT outcomes to report when none was accepted */
static int worse(int a, int b)
{
	static const int rank[] = { [ROUTE_OK] = 0, [ROUTE_UNKNOWN] = 1,
	    [ROUTE_REFUSED] = 2, [ROUTE_FULL] = 3, [ROUTE_TEMP] = 4,
	    [ROUTE_LMTP_DOWN] = 5, [ROUTE_LOOP] = 6, [ROUTE_TOO_MANY] = 7 };

	return rank[b] > rank[a] ? b : a;
}

/* route_rcpt - one RCPT: its entries appended to entries[*n]; a result */
int route_rcpt(struct route *rt, struct deliverer *d, const char *id,
    const char *sender, const struct path *p, char **entries, int *n, int max)
{
	struct target t[TARGETS_MAX];
	char entry[ENTRY_MAX];
	int nt = resolve_rcpt(id, p, t, TARGETS_MAX), i, r, got = 0, res = ROUTE_OK;

	if (nt == RESOLVE_TEMPFAIL)
		return ROUTE_TEMP;
	if (nt == RESOLVE_LOOP)
		return ROUTE_LOOP;
	if (nt == RESOLVE_UNKNOWN)
		return ROUTE_UNKNOWN;
	if (*n + nt > max)
		return ROUTE_TOO_MANY;	/* all of an alias, or none of it */
	for (i = 0; i < nt; i++) {
		if (have_key(entries, *n, t[i].key)) {
			got++;	/* one copy per mailbox: this RCPT is still fine */
			continue;
		}
		snprintf(entry, sizeof entry, "%s %s", t[i].mailbox, t[i].addr);
		if ((r = check_target(rt, d, id, sender, &t[i], entry, *n)) != ROUTE_OK) {
			res = worse(res, r);
			continue;
		}
		if (!(entries[*n] = strdup(entry))) {
			orphan(rt, *n);	/* the LMTP server's reply will be ignored */
			return ROUTE_TEMP;
		}
		(*n)++, got++;
	}
	return got ? ROUTE_OK : res;
}

/* route_loops - does a Delivered-To: value (an address) resolve to a
 * mailbox the transaction delivers to?  Compared by mailbox, so case,
 * quoting, tags and aliases do not hide a loop */
int route_loops(char *const *entries, int n, const char *value)
{
	struct target t[TARGETS_MAX];
	const char *a;
	struct path p;
	int nt, i;

	for (i = 0; i < n; i++)	/* the address as given, any case */
		if (strcasecmp((a = strchr(entries[i], ' ')) ? a + 1 : entries[i], value) == 0)
			return 1;
	if (rfc822_mailbox(value, &p) < 0 || p.null ||
	    (p.domain[0] && !is_local_domain(p.domain)))
		return 0;
	nt = resolve_rcpt("loop-check", &p, t, TARGETS_MAX);
	for (i = 0; i < nt; i++)
		if (have_key(entries, n, t[i].key))
			return 1;
	return 0;
}

/* set_result - an LMTP reply (code, text; code < 0: lost) as a result */
static void set_result(struct deliver_result *r, int code, const char *text)
{
	r->status = code / 100 == 2 ? DELIVER_OK : code / 100 == 5 ? DELIVER_PERM :
	    DELIVER_TEMP;
	r->why = code / 100 == 2 ? WHY_NONE : code == 452 ? WHY_QUOTA :
	    code == 552 ? WHY_OVERQUOTA : WHY_REMOTE;
	str_copy(r->text, sizeof r->text, code < 0 ? "LMTP server lost" : text);
}

/* data_one - the message to one LMTP session; results for its entries */
static void data_one(struct route_conn *c, int spool, size_t off, int n,
    struct deliver_result *res)
{
	char text[LMTP_REPLY_MAX];
	int k, i, r, code;

	if (c->nidx == 0 || c->l.fd < 0)
		return;
	code = lmtp_data(&c->l, spool, off, text, sizeof text);
	for (k = 0; k < c->nidx; k++) {
		r = code == 0 ? lmtp_read_reply(&c->l, text, sizeof text) : code;
		if (r < 0)
			code = -1;	/* lost: every recipient left is pending */
		if ((i = c->idx[k]) < 0 || i >= n)
			continue;
		set_result(&res[i], r, text);
	}
	if (code < 0)
		lmtp_close(&c->l);
	c->mail = 0, c->nidx = 0;
}

/* route_body_offset - where the spool's Return-Path line ends (the LMTP
 * server writes its own), with the sender from it; 0 if malformed */
size_t route_body_offset(int spool, char *sender, size_t cap)
{
	char buf[ADDR_MAX + 32], *nl, *gt;
	ssize_t n = pread(spool, buf, sizeof buf - 1, 0);

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (strncmp(buf, "Return-Path: <", 14) != 0 || !(nl = strchr(buf, '\n')) ||
	    !(gt = memrchr(buf, '>', nl - buf)) || gt < buf + 13)
		return 0;
	snprintf(sender, cap, "%.*s", (int)(gt - buf - 14), buf + 14);
	return nl - buf + 1;
}

/* route_data - end of data: each LMTP server gets the message once;
 * res[i] set for the LMTP entries, the others left alone */
void route_data(struct route *rt, int spool, char *const *entries, int n,
    struct deliver_result *res)
{
	char sender[ADDR_MAX];
	size_t off = 0;
	int i, any = 0;

	(void)entries;
	for (i = 0; i < rt->nc; i++)
		any |= rt->c[i].nidx > 0;
	if (any)	/* no LMTP recipient: no need to read the spool here */
		off = route_body_offset(spool, sender, sizeof sender);
	for (i = 0; i < rt->nc; i++) {
		if (off == 0 && rt->c[i].nidx) {
			lmtp_close(&rt->c[i].l);	/* cannot happen: our own spool */
			rt->c[i].nidx = 0;
			continue;
		}
		data_one(&rt->c[i], spool, off, n, res);
	}
}

/* route_end - the transaction is over: RSET sessions that have a MAIL */
void route_end(struct route *rt)
{
	char text[LMTP_REPLY_MAX];
	int i;

	for (i = 0; i < rt->nc; i++) {
		struct route_conn *c = &rt->c[i];

		if (c->mail && c->l.fd >= 0 &&
		    lmtp_command(&c->l, "RSET", NULL, text, sizeof text) != 250)
			lmtp_close(&c->l);
		c->mail = 0, c->nidx = 0;
	}
}

/* route_close - the session is over */
void route_close(struct route *rt)
{
	int i;

	for (i = 0; i < rt->nc; i++) {
		lmtp_close(&rt->c[i].l);
		free(rt->c[i].idx);
	}
	memset(rt, 0, sizeof *rt);
}

/* entry_spec - the LMTP server of a pending LMTP entry; -1 if none */
static int entry_spec(const char *entry, char *spec, size_t cap)
{
	char mailbox[MAILBOX_MAX], addr[ADDR_MAX];
	struct path p;

	if (!route_is_lmtp(entry) || resolve_entry(entry, mailbox, addr) < 0 ||
	    rfc822_mailbox(addr, &p) < 0 || resolve_route(p.domain, spec, cap) < 0 ||
	    !spec[0])
		return -1;
	return 0;
}

/* retry_rcpt - RCPT TO for one pending entry on c (NULL: server down) */
static void retry_rcpt(struct route_conn *c, const char *entry, int i,
    struct deliver_result *res)
{
	char arg[ADDR_MAX + 8], text[LMTP_REPLY_MAX];
	int code = -1;

	snprintf(arg, sizeof arg, "TO:<%s>", strchr(entry, ' ') + 1);
	if (c && c->l.fd >= 0)
		code = lmtp_command(&c->l, "RCPT", arg, text, sizeof text);
	if (code / 100 == 2 && note_idx(c, i) == 0)
		return;
	set_result(&res[i], code, code >= 0 ? text : "LMTP server unavailable");
}

/* route_retry - the queue run's LMTP entries: res[i] set for them
 * (res[i].status 0 on entry: not done yet), the others left alone */
void route_retry(const char *id, int spool, char *const *entries, int n,
    struct deliver_result *res)
{
	char spec[CFG_STR_MAX], other[CFG_STR_MAX], sender[ADDR_MAX];
	size_t off = route_body_offset(spool, sender, sizeof sender);
	struct route rt = { 0 };
	struct route_conn *c;
	int i, k;

	for (i = 0; i < n && off; i++) {
		if (res[i].status || entry_spec(entries[i], spec, sizeof spec) < 0)
			continue;
		c = conn_for(&rt, id, spec, sender);
		for (k = i; k < n; k++)
			if (!res[k].status && entry_spec(entries[k], other, sizeof other) == 0 &&
			    strcmp(other, spec) == 0)
				retry_rcpt(c, entries[k], k, res);
		if (c)
			data_one(c, spool, off, n, res);
	}
	route_close(&rt);
}
