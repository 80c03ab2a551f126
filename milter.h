/*
 * milter.h - the Sendmail milter client: one call per SMTP stage.
 * Every function takes NULL (no milters configured) and then does
 * nothing and answers FV_CONTINUE.
 */
#ifndef MILTER_H
#define MILTER_H

#include "filter.h"
#include "queue.h"
#include "starttls.h"

struct milters;

struct milters *milter_new(const char *sid, const char *client, int port);
void milter_connect(struct milters *ms, struct verdict *v);
void milter_tls(struct milters *ms, const struct tls_info *ti);
void milter_helo(struct milters *ms, const char *helo, struct verdict *v);
void milter_mail(struct milters *ms, const char *arg, struct verdict *v);
void milter_rcpt(struct milters *ms, const char *arg, struct verdict *v);
void milter_message(struct milters *ms, struct spool *sp, struct verdict *v);
void milter_abort(struct milters *ms);
void milter_end(struct milters *ms);

#endif
