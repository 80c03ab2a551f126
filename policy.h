/*
 * policy.h - the Postfix policy-delegation client, asked at RCPT.
 * Every function takes NULL (no policy_services) and does nothing.
 */
#ifndef POLICY_H
#define POLICY_H

#include "filter.h"
#include "queue.h"

struct policy;

/* What one RCPT query tells the policy server. */
struct policy_req {
	const char *helo;	/* HELO/EHLO name, "" before */
	const char *sender;	/* envelope sender, "" for <> */
	const char *rcpt;	/* the recipient address */
	int esmtp;		/* 1 after EHLO */
	long size;		/* SIZE= of MAIL, 0 if none */
	int nrcpt;		/* recipients accepted so far */
	unsigned long seq;	/* transaction number in the session */
};

struct policy *policy_new(const char *sid, const char *client);
void policy_rcpt(struct policy *p, const struct policy_req *rq, struct verdict *v);
void policy_headers(struct policy *p, struct spool *sp);
void policy_reset(struct policy *p);
void policy_end(struct policy *p);

#endif
