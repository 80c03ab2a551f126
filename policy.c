/*
 * policy.c - the Postfix SMTP access policy delegation client
 * (SMTPD_POLICY_README): postgrey, SPF policy daemons, Dovecot's
 * quota-status.
 *
 * Interface (policy.h): policy_rcpt() asks each server of
 * `policy_services` in order about one recipient we would accept
 * (protocol_state=RCPT); policy_data() asks each of
 * `policy_data_services` about the whole message after the end of data
 * (protocol_state=END-OF-MESSAGE, size = its octets, queue_id, and the
 * recipient when there is exactly one, as Postfix does).  A server in
 * both lists is one connection.  The request is "name=value" lines and
 * an empty line, the answer an action= line and an empty line.
 * policy_headers() writes the PREPEND headers into the spool at the
 * start of data (a PREPEND at the end of data comes too late: ignored);
 * policy_reset() forgets them when the transaction ends.
 *
 * Actions: OK (accept, ask no further server), DUNNO, DEFER_IF_REJECT,
 * WARN, INFO (go on), REJECT [text] (550 5.7.1), DEFER [text]
 * (450 4.7.1), DEFER_IF_PERMIT [text] (450 4.2.0: nothing later can
 * permit), "4xx/5xx text" (as given; an enhanced code is added when
 * missing), PREPEND name: value (added to the message, go on).
 * Anything else, a timeout, or a garbled answer: policy_default_action.
 * Connections stay open across requests and sessions' transactions; a
 * reused connection the server closed is reopened once.
 * Invariant: every wait is bounded by policy_timeout; an answer larger
 * than POLICY_ANSWER_MAX is garbage; at most PREPEND_MAX headers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "policy.h"
#include "rfc822.h"

#define POLICY_MAX	8	/* servers in the list */
#define POLICY_ANSWER_MAX 4096	/* octets of one answer */
#define PREPEND_MAX	8	/* PREPEND headers per transaction */
#define PREPEND_LEN	1000	/* octets of one, with its LF */

struct server {
	char spec[CFG_STR_MAX];	/* inet:HOST:PORT or unix:/path */
	int fd;			/* connection, -1 when closed */
	int when;		/* ASK_RCPT | ASK_DATA: the lists it is in */
};

enum { ASK_RCPT = 1, ASK_DATA = 2 };

struct policy {
	const char *sid;	/* session id for log lines */
	char client[64];	/* client address text */
	int deflt;		/* FD_* */
	int n;
	struct server srv[POLICY_MAX];
	int nprepend;
	char prepend[PREPEND_MAX][PREPEND_LEN];
};

/* add_list - the servers of a list, each once, marked with when */
static void add_list(struct policy *p, const char *list, int when)
{
	char item[CFG_STR_MAX];
	int i;

	while (filter_next(&list, item, sizeof item)) {
		for (i = 0; i < p->n && strcmp(p->srv[i].spec, item) != 0; i++)
			;
		if (i == POLICY_MAX)
			return;
		if (i == p->n) {
			snprintf(p->srv[i].spec, sizeof p->srv[i].spec, "%s", item);
			p->srv[p->n++].fd = -1;
		}
		p->srv[i].when |= when;
	}
}

/* policy_new - the session's policy state; NULL when none are set */
struct policy *policy_new(const char *sid, const char *client)
{
	/* one of the two lists names a server, or there is nothing to do */
	const char *list = cfg.policy_services[strspn(cfg.policy_services, ", \t")] ?
	    cfg.policy_services : cfg.policy_data_services;
	struct policy *p = filter_new(list, sizeof *p, "policy");

	if (!p)
		return NULL;
	p->sid = sid;
	snprintf(p->client, sizeof p->client, "%s", client);
	p->deflt = filter_default(cfg.policy_default_action);
	add_list(p, cfg.policy_services, ASK_RCPT);
	add_list(p, cfg.policy_data_services, ASK_DATA);
	return p;
}

/* request - the query text; its length, 0 if too long */
static size_t request(const struct policy *p, const struct policy_req *rq,
    char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "request=smtpd_access_policy\n"
	    "protocol_state=%s\nprotocol_name=%s\nhelo_name=%s\nqueue_id=%s\n"
	    "sender=%s\nrecipient=%s\nrecipient_count=%d\nclient_address=%s\n"
	    "client_name=unknown\nreverse_client_name=unknown\n"
	    "instance=%s.%lu\nsize=%ld\n\n", rq->qid ? "END-OF-MESSAGE" : "RCPT",
	    rq->esmtp ? "ESMTP" : "SMTP", rq->helo, rq->qid ? rq->qid : "", rq->sender,
	    rq->rcpt, rq->nrcpt, p->client, p->sid, rq->seq, rq->size);

	return (n < 0 || (size_t)n >= cap) ? 0 : (size_t)n;
}

/* answer - read up to the empty line; its length, -1, or -2 (closed at once) */
static long answer(int fd, char *buf, size_t cap, const char **why)
{
	size_t len = 0;

	while (len < cap) {
		long r = conn_read(fd, buf + len, cap - len, cfg.policy_timeout, 0);

		if (r < 0) {
			*why = errno == ETIMEDOUT ? "timeout" : errno == ECONNRESET ?
			    "connection closed" : "read error";
			return len == 0 && errno == ECONNRESET ? -2 : -1;
		}
		len += r;
		if ((len >= 2 && memcmp(buf + len - 2, "\n\n", 2) == 0) ||
		    (len >= 4 && memcmp(buf + len - 4, "\r\n\r\n", 4) == 0))
			return len;
	}
	*why = "answer too long";
	return -1;
}

/* query - send the request, read the answer, reconnecting once */
static long query(struct server *s, const char *req, size_t n, char *buf,
    size_t cap, char *err, size_t errcap)
{
	const char *why = "";
	int fresh, tries;
	long r = -1;

	for (tries = 0; tries < 2; tries++) {
		fresh = s->fd < 0;
		if (fresh && (s->fd = conn_connect(s->spec, cfg.policy_timeout, err,
		    errcap)) < 0)
			return -1;
		if (conn_write(s->fd, req, n, cfg.policy_timeout) < 0) {
			why = errno == ETIMEDOUT ? "timeout" : "write error";
			r = -2;
		} else {
			r = answer(s->fd, buf, cap, &why);
		}
		if (r >= 0)
			return r;
		snprintf(err, errcap, "%s", why);
		close(s->fd);
		s->fd = -1;
		if (fresh || r != -2)
			return -1;	/* only a stale kept connection is retried */
	}
	return -1;
}

/* has_enhanced - does text start with an RFC 3463 code "d.ddd.ddd "? */
static int has_enhanced(const char *t, size_t n)
{
	size_t i = 0;
	int dots = 0;

	if (n < 6 || (t[0] != '2' && t[0] != '4' && t[0] != '5') || t[1] != '.')
		return 0;
	for (i = 2; i < n && t[i] != ' '; i++) {
		if (t[i] == '.')
			dots++;
		else if (t[i] < '0' || t[i] > '9')
			return 0;
	}
	return dots == 1;
}

/*
 * to_verdict - the one map from a policy action to a verdict; the reply
 * lines policy answers produce are these:
 *   REJECT text           550 5.7.1 text
 *   DEFER text            450 4.7.1 text
 *   DEFER_IF_PERMIT text  450 4.2.0 text
 *   4xx/5xx [x.y.z] text  as given (4.7.1 / 5.7.1 added when missing)
 * with "Access denied" / "Try again later" when the text is empty.
 */
static void to_verdict(const struct paction *a, struct verdict *v)
{
	int len = (int)a->textlen;
	const char *t = a->text;

	v->kind = FV_CONTINUE, v->text[0] = '\0';
	if (a->kind == PA_OK)
		v->kind = FV_ACCEPT;
	if (a->kind == PA_REJECT || (a->kind == PA_CODE && a->code >= 500))
		v->kind = FV_REJECT;
	if (a->kind == PA_DEFER || a->kind == PA_DEFER_IF_PERMIT || (a->kind == PA_CODE &&
	    a->code < 500))
		v->kind = FV_TEMPFAIL;
	if (v->kind != FV_REJECT && v->kind != FV_TEMPFAIL)
		return;
	if (len == 0) {
		t = v->kind == FV_REJECT ? "Access denied" : "Try again later";
		len = (int)strlen(t);
	}
	if (a->kind == PA_CODE)
		snprintf(v->text, sizeof v->text, "%d %s%.*s", a->code,
		    has_enhanced(t, len) ? "" : a->code >= 500 ? "5.7.1 " : "4.7.1 ",
		    len, t);
	else
		snprintf(v->text, sizeof v->text, "%s %.*s", a->kind == PA_REJECT ?
		    "550 5.7.1" : a->kind == PA_DEFER ? "450 4.7.1" : "450 4.2.0", len, t);
}

/* log_result - "SID policy policy=SPEC to=<R> result=R [reply=...]" */
static void log_result(const struct policy *p, const struct server *s,
    const char *rcpt, const char *result, const char *text)
{
	char spec[CFG_STR_MAX * 4], to[ADDR_MAX * 4], rep[MILTER_TEXT_MAX * 4];

	log_escape(spec, sizeof spec, s->spec, strlen(s->spec));
	log_escape(to, sizeof to, rcpt, strlen(rcpt));
	log_text(rep, sizeof rep, text);
	logmsg(LOG_INFO, "%s policy client=%s policy=%s to=<%s> result=%s%s%s%s", p->sid,
	    p->client, spec,
	    to, result, *text ? " reply=\"" : "", rep, *text ? "\"" : "");
}

/* keep_prepend - remember a PREPEND header for the start of data */
static void keep_prepend(struct policy *p, const struct paction *a)
{
	size_t name;

	if (p->nprepend < PREPEND_MAX && a->textlen + 2 <= PREPEND_LEN &&
	    hdr_field(a->text, a->textlen, &name) > 0)
		snprintf(p->prepend[p->nprepend++], PREPEND_LEN, "%.*s\n",
		    (int)a->textlen, a->text);
}

/* ask_one - one server about one recipient; v: its verdict */
static void ask_one(struct policy *p, struct server *s, const char *req, size_t n,
    const char *rcpt, int stage_data, struct verdict *v)
{
	char buf[POLICY_ANSWER_MAX], why[128], esc[512];
	char spec[CFG_STR_MAX * 4], to[ADDR_MAX * 4];
	static const char *const act[] = { "tempfail", "accept", "reject" };
	struct paction a;
	long len = query(s, req, n, buf, sizeof buf, why, sizeof why);

	if (len < 0 || policy_parse(buf, len, &a) < 0 || a.kind == PA_BAD) {
		if (len >= 0) {
			snprintf(why, sizeof why, "bad answer");
			close(s->fd);
			s->fd = -1;
		}
		log_escape(spec, sizeof spec, s->spec, strlen(s->spec));
		log_escape(to, sizeof to, rcpt, strlen(rcpt));
		log_text(esc, sizeof esc, why);
		logmsg(LOG_WARNING, "%s policy client=%s policy=%s to=<%s> result=error reason=\"%s\" action=%s",
		    p->sid, p->client, spec, to, esc, act[p->deflt]);
		filter_fail(v, p->deflt);
		return;
	}
	if (a.kind == PA_PREPEND && !stage_data)
		keep_prepend(p, &a);
	to_verdict(&a, v);
	if (v->kind != FV_CONTINUE || a.kind == PA_PREPEND)
		log_result(p, s, rcpt, v->kind == FV_ACCEPT ? "ok" : v->kind == FV_REJECT ?
		    "reject" : v->kind == FV_TEMPFAIL ? "defer" : "prepend", v->text);
}

/* ask_all - each server asked at this stage, in order; stop at OK or a refusal */
static void ask_all(struct policy *p, const struct policy_req *rq, int when,
    struct verdict *v)
{
	char req[2 * ADDR_MAX + DOMAIN_MAX + 640];
	size_t n;
	int i;

	v->kind = FV_CONTINUE, v->text[0] = '\0';
	if (!p)
		return;
	if ((n = request(p, rq, req, sizeof req)) == 0) {
		filter_fail(v, p->deflt);	/* cannot happen: fields are bounded */
		return;
	}
	for (i = 0; i < p->n && v->kind == FV_CONTINUE; i++)
		if (p->srv[i].when & when)
			ask_one(p, &p->srv[i], req, n, rq->rcpt, when == ASK_DATA, v);
}

/* policy_rcpt - RCPT: the servers of policy_services about one recipient */
void policy_rcpt(struct policy *p, const struct policy_req *rq, struct verdict *v)
{
	ask_all(p, rq, ASK_RCPT, v);
}

/* policy_data - end of data: the servers of policy_data_services */
void policy_data(struct policy *p, const struct policy_req *rq, struct verdict *v)
{
	ask_all(p, rq, ASK_DATA, v);
}

/* policy_headers - write the PREPEND headers (start of data) */
void policy_headers(struct policy *p, struct spool *sp)
{
	int i;

	for (i = 0; p && i < p->nprepend; i++)
		spool_put(sp, p->prepend[i], strlen(p->prepend[i]));
}

/* policy_reset - the transaction ended: forget its PREPEND headers */
void policy_reset(struct policy *p)
{
	if (p)
		p->nprepend = 0;
}

/* policy_end - close the connections, free */
void policy_end(struct policy *p)
{
	int i;

	if (!p)
		return;
	for (i = 0; i < p->n; i++)
		if (p->srv[i].fd >= 0)
			close(p->srv[i].fd);
	free(p);
}
