/*
 * policy.h - the Postfix policy-delegation client, asked at RCPT and at
 * the end of data.
 * Every function takes NULL (no policy_services) and does nothing.
 */
#ifndef POLICY_H
#define POLICY_H

#include "filter.h"
#include "queue.h"

struct policy;

/* What one query tells the policy server. */
struct policy_req {
	const char *helo;	/* HELO/EHLO name, "" before */
	const char *sender;	/* envelope sender, "" for <> */
	const char *rcpt;	/* the recipient; at end of data "" unless one */
	int esmtp;		/* 1 after EHLO */
	long size;		/* RCPT: SIZE= of MAIL, 0 if none; data: octets */
	int nrcpt;		/* recipients accepted so far */
	unsigned long seq;	/* transaction number in the session */
	const char *qid;	/* queue id at end of data, NULL at RCPT */
};

struct policy *policy_new(const char *sid, const char *client);
void policy_rcpt(struct policy *p, const struct policy_req *rq, struct verdict *v);
void policy_data(struct policy *p, const struct policy_req *rq, struct verdict *v);
void policy_headers(struct policy *p, struct spool *sp);
void policy_reset(struct policy *p);
void policy_end(struct policy *p);

#endif
