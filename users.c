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
 * Cache: the last UCACHE_N answers of each source (the virtual users
 * file; getpwnam and the home check) are kept and reused while the file
 * behind them has the same device, inode, mtime and size (one stat(2)
 * per lookup and source), and at most UCACHE_TTL seconds for NSS sources
 * that are not files.  Every process keeps its own: the deliverer never
 * takes the session's word for a user.  Only answers that come from the
 * file are kept: a temporary failure, or a home that is missing, is asked
 * again next time; the settings (min_uid, maildir) apply on every use.
 * Epochs: a process that calls users_new_epoch() (the session, once per
 * read of client input) trusts each stat(2) until its next call, so a
 * batch of pipelined commands costs one stat per source, not one per
 * RCPT; without a call (the deliverer, the queue run) every lookup stats.
 */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "strcopy.h"
#include "rfc822.h"
#include "users.h"

#define UCACHE_N	8	/* answers kept per source */
#define UCACHE_TTL	60	/* seconds, for sources stat(2) cannot see */

/* what a file looked like when its answers were cached */
struct stamp {
	int have;		/* 1 once stat(2) succeeded */
	dev_t dev;
	ino_t ino;
	struct timespec mtim;
	off_t size;
	time_t born;		/* when the cache was (re)started */
	char path[CFG_STR_MAX];	/* the file (virtual_users may change) */
	unsigned long epoch;	/* users_new_epoch() count at the stat */
};

/* one cached answer: a virtual user, or a passwd entry and its home */
struct uent {
	char key[64];		/* lower-cased name; "" = free slot */
	int found;		/* USER_FOUND or USER_UNKNOWN */
	int home;		/* system: 1 the home is fine (only then kept) */
	struct user u;		/* system: maildir holds pw_dir */
};

static struct stamp vstamp, pstamp;
static struct uent vcache[UCACHE_N], pcache[UCACHE_N];
static unsigned vnext, pnext;	/* next slot to reuse, round robin */
static unsigned long epoch;	/* 0: no epochs, stat on every lookup */

/* users_new_epoch - stat results held so far are not trusted any more */
void users_new_epoch(void)
{
	if (++epoch == 0)
		epoch = 1;
}

/* stamp_fresh - is `path` unchanged since the stamp? re-stamps it; a
 * change (or a first look) empties `c` */
static void stamp_fresh(struct stamp *s, const char *path, struct uent *c)
{
	struct stat st;
	time_t now;
	int ok;

	if (epoch && s->have && s->epoch == epoch && strcmp(s->path, path) == 0)
		return;	/* stat'ed in this epoch already */
	now = time(NULL);
	ok = stat(path, &st) == 0;
	if (ok && s->have && st.st_dev == s->dev && st.st_ino == s->ino &&
	    st.st_size == s->size && st.st_mtim.tv_sec == s->mtim.tv_sec &&
	    st.st_mtim.tv_nsec == s->mtim.tv_nsec && now - s->born < UCACHE_TTL &&
	    now >= s->born && strcmp(s->path, path) == 0) {
		s->epoch = epoch;
		return;
	}
	memset(c, 0, sizeof(struct uent) * UCACHE_N);
	memset(s, 0, sizeof *s);
	if (!ok)
		return;		/* never cache what we could not stamp */
	s->have = 1, s->dev = st.st_dev, s->ino = st.st_ino;
	s->mtim = st.st_mtim, s->size = st.st_size, s->born = now, s->epoch = epoch;
	str_copy(s->path, sizeof s->path, path);
}

/* ucache_find - the cached answer for a lower-cased key, or NULL */
static struct uent *ucache_find(const struct stamp *s, struct uent *c, const char *key)
{
	int i;

	if (!s->have)
		return NULL;
	for (i = 0; i < UCACHE_N; i++)
		if (c[i].key[0] && strcmp(c[i].key, key) == 0)
			return &c[i];
	return NULL;
}

/* ucache_put - keep an answer (replacing the oldest) */
static void ucache_put(const struct stamp *s, struct uent *c, unsigned *next,
    const struct uent *e)
{
	if (!s->have || strlen(e->key) >= sizeof c->key)
		return;
	c[*next % UCACHE_N] = *e;
	*next = (*next + 1) % UCACHE_N;
}

/* lower - a name lower-cased into key (cap 64); 0 if too long */
static int lower(char *key, const char *name)
{
	size_t i;

	for (i = 0; name[i] && i + 1 < 64; i++)
		key[i] = tolower((unsigned char)name[i]);
	key[i] = '\0';
	return name[i] == '\0';
}

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

/* virtual_scan - search the virtual users file (no system users) */
static int virtual_scan(const char *local, struct user *u)
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

/* users_virtual - a virtual user, from the cache while the file is the
 * same */
int users_virtual(const char *local, struct user *u)
{
	struct uent e, *hit;
	int r, keep;

	if (!cfg.virtual_users[0])
		return USER_UNKNOWN;
	stamp_fresh(&vstamp, cfg.virtual_users, vcache);
	memset(&e, 0, sizeof e);
	if ((keep = lower(e.key, local)) && (hit = ucache_find(&vstamp, vcache, e.key))) {
		if (hit->found == USER_FOUND)
			*u = hit->u;
		return hit->found;
	}
	if ((r = virtual_scan(local, u)) == USER_TEMPFAIL)
		return r;
	e.found = r;
	if (r == USER_FOUND)
		e.u = *u;
	if (keep)
		ucache_put(&vstamp, vcache, &vnext, &e);
	return r;
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

/* passwd_entry - getpwnam and the home check for a lower-cased name,
 * cached: e->found, e->u (uid, gid, pw_dir in maildir), e->home */
static int passwd_entry(const char *name, struct uent *e)
{
	struct uent *hit;
	struct passwd *pw;

	stamp_fresh(&pstamp, "/etc/passwd", pcache);
	if ((hit = ucache_find(&pstamp, pcache, name)) != NULL) {
		*e = *hit;
		return 0;
	}
	memset(e, 0, sizeof *e);
	str_copy(e->key, sizeof e->key, name);
	errno = 0;
	if (!(pw = getpwnam(name))) {
		if (errno && errno != ENOENT)
			return -1;
		e->found = USER_UNKNOWN;
		ucache_put(&pstamp, pcache, &pnext, e);
		return 0;
	}
	if (strlen(pw->pw_dir) >= sizeof e->u.maildir || strlen(pw->pw_name) >= sizeof e->u.name)
		return e->found = USER_UNKNOWN, 0;
	e->found = USER_FOUND;
	strcpy(e->u.name, pw->pw_name), strcpy(e->u.maildir, pw->pw_dir);
	e->u.uid = pw->pw_uid, e->u.gid = pw->pw_gid;
	if ((e->home = real_home(pw)) == 1)
		ucache_put(&pstamp, pcache, &pnext, e);
	return 0;
}

/* system_lookup - getpwnam on the lower-cased name: only real people
 * (uid >= min_uid, a home of their own) when we run as root */
static int system_lookup(const char *local, struct user *u)
{
	char name[64];
	struct uent e;

	if (!lower(name, local))
		return USER_UNKNOWN;
	if (passwd_entry(name, &e) < 0)
		return USER_TEMPFAIL;
	if (e.found != USER_FOUND)
		return USER_UNKNOWN;
	if (e.u.uid == 0 || (cfg.uid != 0 && e.u.uid != cfg.uid) ||
	    (cfg.uid == 0 && (long)e.u.uid < cfg.min_uid))
		return USER_UNKNOWN;
	if (e.home <= 0)
		return e.home < 0 ? USER_TEMPFAIL : USER_UNKNOWN;
	if (snprintf(u->maildir, sizeof u->maildir, "%s/%s", e.u.maildir,
	    cfg.maildir) >= (int)sizeof u->maildir)
		return USER_UNKNOWN;
	strcpy(u->name, name);
	u->uid = e.u.uid;
	u->gid = e.u.gid;
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
