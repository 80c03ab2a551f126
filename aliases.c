/*
 * aliases.c - the aliases file: parse, look up, expand, re-read.
 *
 * Interface: aliases_parse() turns the file's text into a table or a
 * "FILE:LINE: reason" error; aliases_expand() turns one local part (and
 * its domain) into the local parts it finally reaches;
 * aliases_current() is what the session asks at RCPT: it re-reads
 * cfg.aliases when the file changed and keeps the last good table when
 * the new text is broken (one log line says why).  The last good text
 * is also kept in spool_dir/.aliases.good, so a prefork worker that
 * never saw it still gets it.
 * Syntax (sendmail's, trimmed to what a receiver may do):
 *   # comment                       ('#' to the end of any line)
 *   name: target, target, ...       (blank lines end an entry)
 *       target, ...                 (a line starting with a blank continues)
 *   sales@example.org: alice        (a key for one domain only)
 * Targets are local parts, optionally "@" a local domain, or other
 * aliases.  Program (|cmd), :include:, file (/path) and remote targets
 * are errors: smtpd never runs programs and never relays.
 * Expansion: depth-first, at most ALIAS_DEPTH nested aliases and
 * ALIAS_FANOUT distinct leaves; an alias reached again on its own path
 * is a loop, except "name: name, ..." which means the mailbox itself.
 * Keys and leaves are compared case-insensitively (stored lower-case).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "aliases.h"
#include "config.h"
#include "log.h"

#define KEY_MAX		(LOCAL_MAX + 1 + DOMAIN_MAX)
#define ENTRIES_MAX	100000

struct entry {
	char *key;		/* "local" or "local@domain", lower-case */
	char **targets;		/* lower-case, validated */
	int ntargets;
	long line;		/* where the entry starts, for messages */
};

struct alias_table {
	struct entry *e;	/* sorted by key */
	size_t n, cap;
	char fname[CFG_STR_MAX];	/* for messages */
};

/* parse state of one file */
struct parser {
	struct alias_table *t;
	const char *fname;
	char *err;		/* caller's buffer */
	size_t errcap;
	char buf[ALIAS_LINE_MAX];	/* the logical entry being joined */
	size_t used;
	long line;		/* line of the entry in buf */
};

/* fail - record "FILE:LINE: reason"; always -1 */
static int fail(struct parser *p, long line, const char *why)
{
	snprintf(p->err, p->errcap, "%s:%ld: %s", p->fname, line, why);
	return -1;
}

/* local_char - may this octet appear in a key or target local part? */
static int local_char(int c)
{
	return isalnum(c) || c == '.' || c == '_' || c == '-' || c == '+' || c == '=';
}

/* lower - lower-case copy of a token into dst (cap octets); -1 if too long */
static int lower(char *dst, size_t cap, const char *s, size_t n)
{
	size_t i;

	if (n >= cap)
		return -1;
	for (i = 0; i < n; i++)
		dst[i] = tolower((unsigned char)s[i]);
	dst[n] = '\0';
	return 0;
}

/* check_local - NULL if s (a local part) is fine, else why not */
static const char *check_local(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return "empty name";
	if (n > LOCAL_MAX)
		return "name longer than 64 octets";
	for (i = 0; i < n; i++)
		if (!local_char((unsigned char)s[i]))
			return "name holds a character other than letters, digits and . _ - + =";
	return NULL;
}

/* check_target - NULL if a target may be used, else why not */
static const char *check_target(const char *s)
{
	const char *at = strchr(s, '@');
	const char *why;

	if (s[0] == '|')
		return "program targets (|command) are refused: smtpd never runs programs";
	if (strncasecmp(s, ":include:", 9) == 0)
		return ":include: is refused: list the targets in this file";
	if (s[0] == '/' || s[0] == '~' || s[0] == '.')
		return "file targets are refused: smtpd delivers only to mailboxes";
	if (s[0] == '"' || s[0] == '\\')
		return "quoted targets are not supported";
	if ((why = check_local(s, at ? (size_t)(at - s) : strlen(s))) != NULL)
		return why;
	if (at && (!rfc822_domain(at + 1, strlen(at + 1)) || !is_local_domain(at + 1)))
		return "remote target refused: smtpd never relays (domain is not in local_domains)";
	return NULL;
}

/* add_target - validate one target and append it to the entry */
static int add_target(struct parser *p, struct entry *e, const char *s, size_t n)
{
	char tmp[KEY_MAX + 1];
	const char *why;
	char **nt;

	while (n > 0 && isspace((unsigned char)*s))
		s++, n--;
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n == 0)
		return fail(p, p->line, "empty target (two commas, or a comma at the end)");
	if (lower(tmp, sizeof tmp, s, n) < 0)
		return fail(p, p->line, "target too long");
	if ((why = check_target(tmp)) != NULL)
		return fail(p, p->line, why);
	if (e->ntargets >= ALIAS_FANOUT)
		return fail(p, p->line, "more than 100 targets in one entry");
	if (!(nt = realloc(e->targets, (e->ntargets + 1) * sizeof *nt)) ||
	    !(nt[e->ntargets] = strdup(tmp))) {
		if (nt)
			e->targets = nt;
		return fail(p, p->line, "out of memory");
	}
	e->targets = nt;
	e->ntargets++;
	return 0;
}

/* check_key - NULL if "local[@domain]" is a fine key, else why not */
static const char *check_key(const char *k)
{
	const char *at = strchr(k, '@');
	const char *why = check_local(k, at ? (size_t)(at - k) : strlen(k));

	if (why)
		return why;
	if (at && !rfc822_domain(at + 1, strlen(at + 1)))
		return "bad domain in key";
	if (at && !is_local_domain(at + 1))
		return "key domain is not in local_domains: it could never match";
	return NULL;
}

/* new_entry - append an empty entry with this key; NULL on error */
static struct entry *new_entry(struct parser *p, const char *key)
{
	struct alias_table *t = p->t;
	struct entry *ne;

	if (t->n >= ENTRIES_MAX) {
		fail(p, p->line, "more than 100000 entries");
		return NULL;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;

		if (!(ne = realloc(t->e, cap * sizeof *ne))) {
			fail(p, p->line, "out of memory");
			return NULL;
		}
		t->e = ne, t->cap = cap;
	}
	ne = &t->e[t->n];
	memset(ne, 0, sizeof *ne);
	ne->line = p->line;
	if (!(ne->key = strdup(key))) {
		fail(p, p->line, "out of memory");
		return NULL;
	}
	t->n++;
	return ne;
}

/* finish_entry - parse the joined logical entry in p->buf */
static int finish_entry(struct parser *p)
{
	char key[KEY_MAX + 1], *colon, *s, *comma;
	size_t kn;
	struct entry *e;
	const char *why;

	if (p->used == 0)
		return 0;
	p->buf[p->used] = '\0';
	p->used = 0;
	if (!(colon = strchr(p->buf, ':')))
		return fail(p, p->line, "no ':' after the alias name");
	kn = colon - p->buf;
	while (kn > 0 && isspace((unsigned char)p->buf[kn - 1]))
		kn--;
	if (lower(key, sizeof key, p->buf, kn) < 0)
		return fail(p, p->line, "alias name too long");
	if ((why = check_key(key)) != NULL)
		return fail(p, p->line, why);
	if (!(e = new_entry(p, key)))
		return -1;
	for (s = colon + 1; (comma = strchr(s, ',')) != NULL; s = comma + 1)
		if (add_target(p, e, s, comma - s) < 0)
			return -1;
	return add_target(p, e, s, strlen(s));
}

/* physical_line - one line of the file: comment, continuation or start */
static int physical_line(struct parser *p, const char *s, size_t n, long lineno)
{
	const char *hash = memchr(s, '#', n);
	size_t i;

	if (hash)
		n = hash - s;
	for (i = 0; i < n; i++)
		if (s[i] == '\0' || (iscntrl((unsigned char)s[i]) && s[i] != '\t' &&
		    s[i] != '\r'))
			return fail(p, lineno, "control character in the file");
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n == 0)
		return hash ? 0 : finish_entry(p);	/* a comment keeps an entry open */
	if (s[0] == ' ' || s[0] == '\t') {
		if (p->used == 0)
			return fail(p, lineno, "continuation line without an entry above it");
	} else {
		if (finish_entry(p) < 0)
			return -1;
		p->line = lineno;
	}
	if (p->used + n + 1 >= sizeof p->buf)
		return fail(p, p->line, "entry longer than 4096 octets");
	if (p->used)
		p->buf[p->used++] = ' ';
	memcpy(p->buf + p->used, s, n);
	p->used += n;
	return 0;
}

/* cmp_entry - order by key, for qsort and bsearch */
static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->key, ((const struct entry *)b)->key);
}

/* sort_check - sort the table; two entries with one key are an error */
static int sort_check(struct parser *p)
{
	struct alias_table *t = p->t;
	size_t i;
	char why[64 + KEY_MAX];

	if (t->n)
		qsort(t->e, t->n, sizeof *t->e, cmp_entry);
	for (i = 1; i < t->n; i++) {
		if (strcmp(t->e[i - 1].key, t->e[i].key) != 0)
			continue;
		snprintf(why, sizeof why, "duplicate alias %s (first at line %ld)",
		    t->e[i].key, t->e[i - 1].line < t->e[i].line ? t->e[i - 1].line :
		    t->e[i].line);
		return fail(p, t->e[i - 1].line > t->e[i].line ? t->e[i - 1].line :
		    t->e[i].line, why);
	}
	return 0;
}

/* aliases_parse - the whole file's text into a table; NULL + err if bad */
struct alias_table *aliases_parse(const char *text, size_t len,
    const char *fname, char *err, size_t cap)
{
	struct parser *p = calloc(1, sizeof *p);
	struct alias_table *t = calloc(1, sizeof *t);
	const char *s = text, *end = text + len, *nl;
	long lineno = 0;
	int r = 0;

	if (!p || !t) {
		snprintf(err, cap, "%s: out of memory", fname);
		free(p), free(t);
		return NULL;
	}
	p->t = t, p->fname = fname, p->err = err, p->errcap = cap;
	snprintf(t->fname, sizeof t->fname, "%s", fname);
	while (r == 0 && s < end) {
		nl = memchr(s, '\n', end - s);
		r = physical_line(p, s, (nl ? nl : end) - s, ++lineno);
		s = nl ? nl + 1 : end;
	}
	if (r == 0)
		r = finish_entry(p);
	if (r == 0)
		r = sort_check(p);
	free(p);
	if (r < 0) {
		aliases_free(t);
		return NULL;
	}
	return t;
}

/* aliases_free - release a table (NULL is fine) */
void aliases_free(struct alias_table *t)
{
	size_t i;
	int j;

	if (!t)
		return;
	for (i = 0; i < t->n; i++) {
		for (j = 0; j < t->e[i].ntargets; j++)
			free(t->e[i].targets[j]);
		free(t->e[i].targets);
		free(t->e[i].key);
	}
	free(t->e);
	free(t);
}

/* aliases_count - entries in a table */
size_t aliases_count(const struct alias_table *t)
{
	return t ? t->n : 0;
}

/* find - the entry for "local@domain", else for "local"; NULL if none */
static const struct entry *find(const struct alias_table *t, const char *local,
    const char *domain)
{
	char key[KEY_MAX + 2];
	struct entry k = { key, NULL, 0, 0 };
	const struct entry *e = NULL;
	size_t n = strlen(local);

	if (!t || !t->n || lower(key, sizeof key, local, n) < 0)
		return NULL;
	if (domain && domain[0] && n + 1 + strlen(domain) < sizeof key) {
		key[n] = '@';
		lower(key + n + 1, sizeof key - n - 1, domain, strlen(domain));
		e = bsearch(&k, t->e, t->n, sizeof *t->e, cmp_entry);
		key[n] = '\0';
	}
	return e ? e : bsearch(&k, t->e, t->n, sizeof *t->e, cmp_entry);
}

/* state of one expansion */
struct walk {
	const struct alias_table *t;
	struct alias_leaf *out;
	int n, max;
	const struct entry *stack[ALIAS_DEPTH];
	int depth;
};

/* leaf - add a final local part once; ALIAS_WIDE when out of room */
static int leaf(struct walk *w, const char *local, size_t n)
{
	int i;

	if (n > LOCAL_MAX)
		return ALIAS_WIDE;
	for (i = 0; i < w->n; i++)
		if (strlen(w->out[i].local) == n && strncmp(w->out[i].local, local, n) == 0)
			return 0;
	if (w->n >= w->max)
		return ALIAS_WIDE;
	memcpy(w->out[w->n].local, local, n);
	w->out[w->n++].local[n] = '\0';
	return 0;
}

/* walk_entry - expand one alias entry depth-first into w->out */
static int walk_entry(struct walk *w, const struct entry *e, const char *domain)
{
	char local[LOCAL_MAX + 1];
	const struct entry *sub;
	int i, r;

	for (i = 0; i < w->depth; i++)
		if (w->stack[i] == e)
			return ALIAS_LOOP;
	if (w->depth >= ALIAS_DEPTH)
		return ALIAS_DEEP;
	w->stack[w->depth++] = e;
	for (i = 0; i < e->ntargets; i++) {
		const char *tg = e->targets[i], *at = strchr(tg, '@');
		size_t n = at ? (size_t)(at - tg) : strlen(tg);

		if (n > LOCAL_MAX)
			return ALIAS_WIDE;	/* the parser never lets this through */
		memcpy(local, tg, n);
		local[n] = '\0';
		sub = find(w->t, local, at ? at + 1 : domain);
		if (sub && sub != e)
			r = walk_entry(w, sub, at ? at + 1 : domain);
		else
			r = leaf(w, local, n);	/* a user, or "name: name" */
		if (r < 0)
			return r;
	}
	w->depth--;
	return 0;
}

/* aliases_expand - local parts `local`@`domain` reaches; ALIAS_* if not */
int aliases_expand(const struct alias_table *t, const char *local,
    const char *domain, struct alias_leaf *out, int max)
{
	struct walk w;
	const struct entry *e = find(t, local, domain);
	int r;

	if (!e)
		return ALIAS_NONE;
	memset(&w, 0, sizeof w);
	w.t = t, w.out = out, w.max = max;
	if ((r = walk_entry(&w, e, domain)) < 0)
		return r;
	return w.n ? w.n : ALIAS_NONE;
}

/* aliases_verify - expand every entry once: the first that loops, nests
 * too deep or reaches too many mailboxes is "FILE:LINE: why"; -1 then */
int aliases_verify(const struct alias_table *t, char *err, size_t cap)
{
	struct alias_leaf *out = malloc(ALIAS_FANOUT * sizeof *out);
	char local[KEY_MAX + 1], *at;
	size_t i;
	int r = 0;

	for (i = 0; out && r >= 0 && i < t->n; i++) {
		snprintf(local, sizeof local, "%s", t->e[i].key);
		if ((at = strchr(local, '@')) != NULL)
			*at++ = '\0';
		r = aliases_expand(t, local, at ? at : "", out, ALIAS_FANOUT);
		if (r < 0)
			snprintf(err, cap, "%s:%ld: alias %s %s", t->fname, t->e[i].line,
			    t->e[i].key, r == ALIAS_LOOP ? "loops back to itself" :
			    r == ALIAS_DEEP ? "nests more than 8 aliases deep" :
			    "reaches more than 100 mailboxes");
	}
	free(out);
	return r < 0 ? -1 : 0;
}

/* aliases_leaves - call fn for each final local part of every entry
 * (for "smtpd -n": are they all mailboxes?) */
void aliases_leaves(const struct alias_table *t,
    void (*fn)(const char *file, long line, const char *key, const char *leaf))
{
	struct alias_leaf *out = malloc(ALIAS_FANOUT * sizeof *out);
	char local[KEY_MAX + 1], *at;
	size_t i;
	int n, k;

	for (i = 0; out && i < t->n; i++) {
		snprintf(local, sizeof local, "%s", t->e[i].key);
		if ((at = strchr(local, '@')) != NULL)
			*at++ = '\0';
		n = aliases_expand(t, local, at ? at : "", out, ALIAS_FANOUT);
		for (k = 0; k < n; k++)
			fn(t->fname, t->e[i].line, t->e[i].key, out[k].local);
	}
	free(out);
}

/* read_all - a whole regular file into a malloc'd buffer, bounded */
static char *read_all(int fd, const struct stat *st, size_t *len)
{
	char *buf;
	size_t got = 0;
	ssize_t n;

	if (!S_ISREG(st->st_mode) || st->st_size > ALIAS_FILE_MAX) {
		errno = S_ISREG(st->st_mode) ? EFBIG : EINVAL;
		return NULL;
	}
	if (!(buf = malloc(st->st_size + 1)))
		return NULL;
	while (got < (size_t)st->st_size &&
	    ((n = read(fd, buf + got, st->st_size - got)) > 0 || (n < 0 && errno == EINTR)))
		if (n > 0)
			got += n;
	*len = got;
	return buf;
}

/* load_fd - parse an open aliases file */
static struct alias_table *load_fd(int fd, const char *path, struct stat *st,
    char *err, size_t cap)
{
	struct alias_table *t;
	size_t len = 0;
	char *text;

	if (fstat(fd, st) < 0 || !(text = read_all(fd, st, &len))) {
		snprintf(err, cap, "%s:0: %s", path, strerror(errno));
		return NULL;
	}
	t = aliases_parse(text, len, path, err, cap);
	free(text);
	return t;
}

/* aliases_load - read and parse a file; NULL and "FILE:LINE: why" if bad */
struct alias_table *aliases_load(const char *path, char *err, size_t cap)
{
	struct alias_table *t;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		snprintf(err, cap, "%s:0: %s", path, strerror(errno));
		return NULL;
	}
	t = load_fd(fd, path, &st, err, cap);
	close(fd);
	return t;
}

/* same_file - is this the version we already tried? */
static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
	    a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	    a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	    a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	    a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* snapshot_path - where the last good text is kept for every process */
static int snapshot_path(char *dst, size_t cap, const char *suffix)
{
	return snprintf(dst, cap, "%s/.aliases.good%s", cfg.spool_dir, suffix) <
	    (int)cap ? 0 : -1;
}

/* save_snapshot - the text of a table just accepted, for other processes
 * (prefork workers each keep a table; one that first meets a broken
 * file takes the newest good one any process saw from here) */
static void save_snapshot(void)
{
	char tmp[CFG_STR_MAX + 32], dst[CFG_STR_MAX + 32], buf[65536];
	int in, out, ok = 1;
	ssize_t n;

	if (!cfg.spool_dir[0] || snapshot_path(tmp, sizeof tmp, ".tmp") < 0 ||
	    snapshot_path(dst, sizeof dst, "") < 0 ||
	    (in = open(cfg.aliases, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return;
	if ((out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0644)) < 0) {
		close(in);
		return;
	}
	while ((n = read(in, buf, sizeof buf)) > 0)
		ok &= write(out, buf, n) == n;
	ok &= n == 0 && fchmod(out, 0644) == 0;
	ok &= close(out) == 0;
	close(in);
	if (!ok || rename(tmp, dst) < 0)
		unlink(tmp);
}

/* load_snapshot - the newest good table any process saw, or NULL */
static struct alias_table *load_snapshot(void)
{
	char path[CFG_STR_MAX + 32], err[ALIAS_ERR_MAX];
	struct alias_table *t;

	if (!cfg.spool_dir[0] || snapshot_path(path, sizeof path, "") < 0 ||
	    !(t = aliases_load(path, err, sizeof err)))
		return NULL;
	snprintf(t->fname, sizeof t->fname, "%s", cfg.aliases);
	return t;
}

/* aliases_current - the table to use now, re-read when the file changed;
 * a broken file keeps the last good table (ours, or the snapshot) */
const struct alias_table *aliases_current(const char *id)
{
	static struct alias_table *good;
	static struct stat tried;	/* the version last parsed, good or not */
	static int have_tried;
	char err[ALIAS_ERR_MAX], safe[4 * ALIAS_ERR_MAX], file[4 * CFG_STR_MAX];
	struct alias_table *t;
	struct stat st;
	int fd;

	if (!cfg.aliases[0])
		return NULL;
	if (stat(cfg.aliases, &st) < 0)
		memset(&st, 0, sizeof st);	/* "missing" is a version too */
	if (have_tried && same_file(&st, &tried))
		return good;
	if ((fd = open(cfg.aliases, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		snprintf(err, sizeof err, "%s:0: %s", cfg.aliases, strerror(errno));
		t = NULL;
		memset(&st, 0, sizeof st);
	} else {
		t = load_fd(fd, cfg.aliases, &st, err, sizeof err);
		close(fd);
	}
	have_tried = 1, tried = st;
	log_escape(file, sizeof file, cfg.aliases, strlen(cfg.aliases));
	if (t) {
		aliases_free(good);
		good = t;
		save_snapshot();
		logmsg(LOG_INFO, "%s aliases file=%s entries=%zu result=loaded", id,
		    file, t->n);
		return good;
	}
	if ((t = load_snapshot()) != NULL) {
		aliases_free(good);
		good = t;
	}
	log_text(safe, sizeof safe, err);
	logmsg(LOG_ERR, "%s aliases file=%s result=rejected kept=%zu reason=\"%s\"",
	    id, file, aliases_count(good), safe);
	return good;
}
