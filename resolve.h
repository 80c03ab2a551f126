/*
 * resolve.h - where a recipient's mail goes: the one place that decides.
 */
#ifndef RESOLVE_H
#define RESOLVE_H

#include "config.h"
#include "rfc822.h"

#define FOLDER_MAX	LOCAL_MAX		/* a subaddress folder name */
#define MAILBOX_MAX	(64 + 1 + FOLDER_MAX + 1)	/* "user[:folder]" */
#define ENTRY_MAX	(MAILBOX_MAX + ADDR_MAX)	/* "MAILBOX ADDR" */
#define LMTP_MAILBOX	"@lmtp"			/* the mailbox of LMTP targets */

/* one delivery a recipient resolves to */
struct target {
	char mailbox[MAILBOX_MAX];	/* "user[:folder]", or LMTP_MAILBOX */
	char addr[ADDR_MAX];		/* maildir: Delivered-To; lmtp: RCPT TO */
	char lmtp[CFG_STR_MAX];		/* LMTP server spec, "" for maildir */
	char key[ADDR_MAX];		/* what "the same mailbox" means (dedupe) */
};

/* results besides a count >= 1 */
enum { RESOLVE_UNKNOWN = 0, RESOLVE_TEMPFAIL = -1, RESOLVE_LOOP = -2 };

int resolve_rcpt(const char *id, const struct path *p, struct target *out, int max);
int resolve_route(const char *domain, char *spec, size_t cap);
int resolve_folder_ok(const char *tag);
int resolve_check(void);
const char *resolve_entry_addr(const char *entry);
int resolve_entry(const char *entry, char *mailbox, char *addr);

#endif
