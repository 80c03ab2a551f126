/*
 * users.c - who a recipient is: name -> uid, gid and Maildir path.
 *
 * Interface: users_lookup() for a bare local part, users_resolve() for a
 * whole RCPT address (domain check and the postmaster alias included).
 * Sources, in order: the virtual users file (cfg.virtual_users, lines
 * "name:uid:gid:/path/to/Maildir", '#' comments), then getpwnam(), so
 * NSS users work.  Names match case-insensitively (RFC 5321 2.4 lets the
 * receiver decide; mail administrators expect it).
 * Invariants: never returns uid 0 when we run as root (no delivery as
 * root); as root, a system account is a recipient only with uid >=
 * min_uid and an existing home directory it owns (service accounts such
 * as daemon, nobody, postgres are not mailboxes); when not root, only our
 * own account or virtual users (whose mail we then write as ourselves).
 */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "rfc822.h"
#include "users.h"

/* parse_id - a decimal uid/gid field; -1 if bad */
static long parse_id(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end != '\0' || v < 0 || v > 0x7FFFFFFFL)
		return -1;
	return v;
}

/* virtual_line - does one "name:uid:gid:path" line name `local`? */
static int virtual_line(char *line, const char *local, struct user *u)
{
	char *f[4], *p = line;
	long uid, gid;
	int i;

	line[strcspn(line, "\r\n")] = '\0';
	for (i = 0; i < 4; i++) {
		f[i] = p;
		p = (i < 3) ? strchr(p, ':') : NULL;
		if (i < 3 && !p)
			return 0;
		if (p)
			*p++ = '\0';
	}
	if (strcasecmp(f[0], local) != 0 || f[3][0] != '/')
		return 0;
	uid = parse_id(f[1]);
	gid = parse_id(f[2]);
	if (uid < 0 || gid < 0 || strlen(f[0]) >= sizeof u->name ||
	    strlen(f[3]) >= sizeof u->maildir)
		return 0;
	strcpy(u->name, f[0]);
	strcpy(u->maildir, f[3]);
	u->uid = uid;
	u->gid = gid;
	return 1;
}

/* users_virtual - search the virtual users file (no system users) */
int users_virtual(const char *local, struct user *u)
{
	char line[CFG_STR_MAX * 2];
	FILE *f;
	int found = 0;

	if (!cfg.virtual_users[0])
		return USER_UNKNOWN;
	if (!(f = fopen(cfg.virtual_users, "r")))
		return USER_TEMPFAIL;
	while (!found && fgets(line, sizeof line, f))
		if (line[0] != '#')
			found = virtual_line(line, local, u);
	if (ferror(f))
		found = -1;
	fclose(f);
	if (found < 0)
		return USER_TEMPFAIL;
	return found ? USER_FOUND : USER_UNKNOWN;
}

/* real_home - 1 if the home exists, is a directory and belongs to uid;
 * 0 if not; -1 if we cannot tell now */
static int real_home(const struct passwd *pw)
{
	struct stat st;

	if (pw->pw_dir[0] != '/')
		return 0;
	if (stat(pw->pw_dir, &st) < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
	return S_ISDIR(st.st_mode) && st.st_uid == pw->pw_uid;
}

/* system_lookup - getpwnam on the lower-cased name: only real people
 * (uid >= min_uid, a home of their own) when we run as root */
static int system_lookup(const char *local, struct user *u)
{
	char name[64];
	struct passwd *pw;
	size_t i;
	int home;

	for (i = 0; local[i] && i + 1 < sizeof name; i++)
		name[i] = tolower((unsigned char)local[i]);
	if (local[i])
		return USER_UNKNOWN;
	name[i] = '\0';
	errno = 0;
	if (!(pw = getpwnam(name)))
		return errno && errno != ENOENT ? USER_TEMPFAIL : USER_UNKNOWN;
	if (pw->pw_uid == 0 || (cfg.uid != 0 && pw->pw_uid != cfg.uid) ||
	    (cfg.uid == 0 && (long)pw->pw_uid < cfg.min_uid))
		return USER_UNKNOWN;
	if ((home = real_home(pw)) <= 0)
		return home < 0 ? USER_TEMPFAIL : USER_UNKNOWN;
	if (snprintf(u->maildir, sizeof u->maildir, "%s/%s", pw->pw_dir,
	    cfg.maildir) >= (int)sizeof u->maildir)
		return USER_UNKNOWN;
	strcpy(u->name, name);
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	return USER_FOUND;
}

/* users_lookup - find a local user by local part */
int users_lookup(const char *local, struct user *u)
{
	int r;

	if (local[0] == '\0' || strchr(local, '/') || strchr(local, ':'))
		return USER_UNKNOWN;
	if (strcasecmp(local, "postmaster") == 0)
		local = cfg.postmaster;
	if ((r = users_virtual(local, u)) == USER_UNKNOWN)
		r = system_lookup(local, u);
	if (r == USER_FOUND && cfg.uid == 0 && u->uid == 0)
		return USER_UNKNOWN;	/* never deliver as root */
	return r;
}

/* users_resolve - a whole address: syntax, local domain, then user */
int users_resolve(const char *address, struct user *u)
{
	char local[LOCAL_MAX + 1];
	struct path p;

	if (rfc822_mailbox(address, &p) < 0 || p.null)
		return USER_UNKNOWN;
	if (p.domain[0] && !is_local_domain(p.domain))
		return USER_UNKNOWN;
	if (rfc822_local_unquote(&p, local, sizeof local) == 0)
		return USER_UNKNOWN;
	return users_lookup(local, u);
}
