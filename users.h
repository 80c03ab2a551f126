/*
 * users.h - recipient lookup: virtual users file, then the passwd database.
 */
#ifndef USERS_H
#define USERS_H

#include <sys/types.h>

#include "config.h"

struct user {
	char name[64];			/* account name as found */
	uid_t uid;
	gid_t gid;
	char maildir[CFG_STR_MAX + 64];	/* absolute Maildir path */
};

enum { USER_UNKNOWN, USER_FOUND, USER_TEMPFAIL };

int users_virtual(const char *local, struct user *u);
int users_lookup(const char *local, struct user *u);
int users_resolve(const char *address, struct user *u);
void users_new_epoch(void);

#endif
