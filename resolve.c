/*
 * resolve.c - recipient resolution, in one place (DESIGN.md, "Where mail
 * goes"): an RCPT address becomes the deliveries it stands for.
 *
 * Interface: resolve_rcpt() turns a parsed, local-domain address into
 * targets: a Maildir mailbox ("user" or "user:folder", checked by the
 * deliverer again) or an LMTP recipient; resolve_route() says how a
 * domain's mail is stored (cfg.delivery); resolve_entry() splits the
 * "MAILBOX ADDR" text that the transaction, the queue envelope and the
 * deliverer carry for each delivery.
 * Order, for Maildir domains: the name as given, then (with a
 * recipient_delimiter) its base without the tag; for each name: virtual
 * users, aliases (each leaf a virtual or system user), system users
 * (uid >= min_uid, own home: users.c); then the domain's catch-all.
 * For an LMTP domain the aliases still expand here, but the LMTP server
 * decides which names exist (at RCPT, see route.c), so a name that is
 * no alias is passed on as written, tag and all (Dovecot files "+tag"
 * itself with lmtp_save_to_detail_mailbox); catch-all does not apply.
 * Subaddress: "alice+lists" validates as alice and goes to the
 * Maildir++ folder ".lists" when the deliverer finds it; the tag is
 * lower-cased and must pass resolve_folder_ok(), else the copy goes to
 * the inbox.  A tag reached through an alias is dropped (the alias
 * names its mailboxes).
 * Dedupe key: the account name (or the LMTP address without its tag),
 * lower-case, so quoting, case, tags, aliases and the catch-all that
 * land in one mailbox give one copy.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include "strcopy.h"
#include "aliases.h"
#include "log.h"
#include "resolve.h"
#include "users.h"

/* resolve_folder_ok - may this tag name a Maildir++ folder? (lower-case
 * printable ASCII, no '/', no leading, trailing or double '.', no '&'
 * (IMAP's modified UTF-7), no ':' (our mailbox separator)) */
int resolve_folder_ok(const char *tag)
{
	size_t i, n = strlen(tag);

	if (n == 0 || n > FOLDER_MAX || tag[0] == '.' || tag[n - 1] == '.' ||
	    strstr(tag, ".."))
		return 0;
	for (i = 0; i < n; i++)
		if (tag[i] <= 0x20 || tag[i] >= 0x7f || strchr("/\\&:*%\"", tag[i]) ||
		    isupper((unsigned char)tag[i]))
			return 0;
	return 1;
}

/* resolve_route - the LMTP spec for a domain, or "" for Maildir; -1 if
 * cfg.delivery is malformed.  cfg.delivery: comma list of METHOD (the
 * default) and DOMAIN=METHOD; METHOD is maildir or lmtp:SPEC */
int resolve_route(const char *domain, char *spec, size_t cap)
{
	char list[CFG_STR_MAX], *item, *save = NULL, *eq, *m;
	const char *use = "maildir";
	int dom_hit = 0;

	str_copy(list, sizeof list, cfg.delivery);
	for (item = strtok_r(list, ", \t", &save); item; item = strtok_r(NULL, ", \t", &save)) {
		m = item;
		if ((eq = strchr(item, '=')) != NULL) {
			*eq = '\0', m = eq + 1;
			if (!domain || strcasecmp(item, domain) != 0)
				continue;
			dom_hit = 1;
		} else if (dom_hit) {
			continue;
		}
		if (strcmp(m, "maildir") != 0 && (strncmp(m, "lmtp:", 5) != 0 || !m[5]))
			return -1;
		use = m;
		if (dom_hit)
			break;
	}
	str_copy(spec, cap, strcmp(use, "maildir") == 0 ? "" : use + 5);
	return 0;
}

/* resolve_entry - "MAILBOX ADDR" into its parts (caller's buffers of
 * MAILBOX_MAX and ADDR_MAX); -1 if malformed */
int resolve_entry(const char *entry, char *mailbox, char *addr)
{
	const char *sp = strchr(entry, ' ');

	if (!sp || sp == entry || (size_t)(sp - entry) >= MAILBOX_MAX ||
	    strlen(sp + 1) >= ADDR_MAX || !sp[1])
		return -1;
	memcpy(mailbox, entry, sp - entry);
	mailbox[sp - entry] = '\0';
	strcpy(addr, sp + 1);
	return 0;
}

/* resolve_entry_addr - the address part of an entry (for logs, -Q) */
const char *resolve_entry_addr(const char *entry)
{
	const char *sp = strchr(entry, ' ');

	return sp ? sp + 1 : entry;
}

/* walk state for one RCPT */
struct res {
	const char *id;
	const char *addr;	/* the RCPT address, canonical text */
	const char *domain;
	const char *lmtp;	/* the domain's LMTP spec, "" for Maildir */
	struct target *out;
	int n, max;
};

/* add - one target, unless its mailbox is already there */
static int add(struct res *r, const char *mailbox, const char *addr, const char *key)
{
	struct target *t;
	int i;

	for (i = 0; i < r->n; i++)
		if (strcasecmp(r->out[i].key, key) == 0)
			return 0;
	if (r->n >= r->max)
		return RESOLVE_TEMPFAIL;
	t = &r->out[r->n++];
	str_copy(t->mailbox, sizeof t->mailbox, mailbox);
	str_copy(t->addr, sizeof t->addr, addr);
	str_copy(t->lmtp, sizeof t->lmtp, r->lmtp);
	str_copy(t->key, sizeof t->key, key);
	return 0;
}

/* add_user - a Maildir user (and folder); USER_* from users_lookup */
static int add_user(struct res *r, const char *name, const char *tag)
{
	char mailbox[MAILBOX_MAX];
	struct user u;
	int found = users_lookup(name, &u);

	if (found != USER_FOUND)
		return found;
	if (tag && resolve_folder_ok(tag))
		snprintf(mailbox, sizeof mailbox, "%s:%s", u.name, tag);
	else
		str_copy(mailbox, sizeof mailbox, u.name);
	return add(r, mailbox, r->addr, u.name) < 0 ? USER_TEMPFAIL : USER_FOUND;
}

/* add_lmtp - an LMTP recipient name@domain; key without the tag */
static int add_lmtp(struct res *r, const char *name, size_t base)
{
	char addr[ADDR_MAX], key[ADDR_MAX];
	const char *at = r->domain[0] ? "@" : "";

	snprintf(addr, sizeof addr, "%s%s%s", name, at, r->domain);
	snprintf(key, sizeof key, "@%.*s%s%s", (int)base, name, at, r->domain);
	return add(r, LMTP_MAILBOX, addr, key) < 0 ? USER_TEMPFAIL : USER_FOUND;
}

/* expand_alias - an alias's leaves; USER_FOUND, USER_UNKNOWN (no alias),
 * USER_TEMPFAIL, or RESOLVE_LOOP */
static int expand_alias(struct res *r, const char *name)
{
	struct alias_leaf leaves[ALIAS_FANOUT];
	char safe[LOCAL_MAX * 4 + 1];
	int n = aliases_expand(aliases_current(r->id), name, r->domain, leaves,
	    ALIAS_FANOUT), i, found = 0, f;

	if (n == ALIAS_NONE)
		return USER_UNKNOWN;
	log_escape(safe, sizeof safe, name, strlen(name));
	if (n < 0) {
		logmsg(LOG_ERR, "%s alias name=%s result=rejected reason=%s", r->id, safe,
		    n == ALIAS_LOOP ? "loop" : n == ALIAS_DEEP ? "too-deep" : "too-many-targets");
		return RESOLVE_LOOP;
	}
	for (i = 0; i < n; i++) {
		f = r->lmtp[0] ? add_lmtp(r, leaves[i].local, strlen(leaves[i].local)) :
		    add_user(r, leaves[i].local, NULL);
		if (f == USER_TEMPFAIL)
			return USER_TEMPFAIL;
		if (f == USER_FOUND)
			found++;
		else
			logmsg(LOG_WARNING, "%s alias name=%s target=%s result=rejected "
			    "reason=no-such-user", r->id, safe, leaves[i].local);
	}
	return found ? USER_FOUND : USER_UNKNOWN;
}

/* one_name - virtual users, aliases, system users for one name */
static int one_name(struct res *r, const char *name, const char *tag)
{
	struct user u;
	int f;

	if ((f = users_virtual(name, &u)) != USER_UNKNOWN)
		return f == USER_FOUND ? add_user(r, name, tag) : f;
	if ((f = expand_alias(r, name)) != USER_UNKNOWN)
		return f;
	return add_user(r, name, tag);
}

/* split_tag - length of the base of `local` before a delimiter, or 0 */
static size_t split_tag(const char *local)
{
	size_t i;

	if (!cfg.recipient_delimiter[0])
		return 0;
	for (i = 1; local[i]; i++)
		if (strchr(cfg.recipient_delimiter, local[i]))
			return i;
	return 0;
}

/* catchall - the domain's catch-all user, or USER_UNKNOWN */
static int catchall(struct res *r)
{
	char list[CFG_STR_MAX], *item, *save = NULL, *colon;

	str_copy(list, sizeof list, cfg.catchall);
	for (item = strtok_r(list, ", \t", &save); item; item = strtok_r(NULL, ", \t", &save)) {
		if (!(colon = strchr(item, ':')))
			continue;
		*colon = '\0';
		if (strcasecmp(item, r->domain[0] ? r->domain : cfg.hostname) == 0)
			return add_user(r, colon + 1, NULL);
	}
	return USER_UNKNOWN;
}

/* resolve_rcpt - the targets for one local address: a count >= 1, or
 * RESOLVE_UNKNOWN (550), RESOLVE_TEMPFAIL (451), RESOLVE_LOOP (550) */
int resolve_rcpt(const char *id, const struct path *p, struct target *out, int max)
{
	char local[LOCAL_MAX + 1], addr[ADDR_MAX], spec[CFG_STR_MAX], tag[LOCAL_MAX + 1];
	struct res r = { id, addr, p->domain, spec, out, 0, max };
	size_t base, i;
	int f;

	if (rfc822_local_unquote(p, local, sizeof local) == 0 ||
	    rfc822_address(p, addr, sizeof addr) == 0 ||
	    resolve_route(p->domain, spec, sizeof spec) < 0)
		return RESOLVE_UNKNOWN;
	if (spec[0]) {
		if ((f = expand_alias(&r, local)) == USER_UNKNOWN)
			f = add_lmtp(&r, local, split_tag(local) ? split_tag(local) : strlen(local));
	} else if ((f = one_name(&r, local, NULL)) == USER_UNKNOWN &&
	    (base = split_tag(local)) != 0) {
		for (i = 0; local[base + 1 + i]; i++)
			tag[i] = tolower((unsigned char)local[base + 1 + i]);
		tag[i] = '\0';
		local[base] = '\0';
		f = one_name(&r, local, tag);
	}
	if (f == USER_UNKNOWN && !spec[0])
		f = catchall(&r);
	if (f == RESOLVE_LOOP)
		return RESOLVE_LOOP;
	if (f == USER_TEMPFAIL)
		return RESOLVE_TEMPFAIL;
	return f == USER_FOUND ? r.n : RESOLVE_UNKNOWN;
}

/* check_leaf - "smtpd -n": an alias target that is nobody's mailbox */
static void check_leaf(const char *file, long line, const char *key, const char *leaf)
{
	struct user u;

	if (users_lookup(leaf, &u) != USER_FOUND)
		fprintf(stderr, "%s:%ld: warning: alias %s: target %s is not a mailbox "
		    "here (fine only for LMTP domains)\n", file, line, key, leaf);
}

/* check_aliases - "smtpd -n": the aliases file parses and expands */
static int check_aliases(void)
{
	char err[ALIAS_ERR_MAX];
	struct alias_table *t;

	if (!cfg.aliases[0])
		return 0;
	if (!(t = aliases_load(cfg.aliases, err, sizeof err)) ||
	    aliases_verify(t, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		aliases_free(t);
		return 1;
	}
	aliases_leaves(t, check_leaf);
	aliases_free(t);
	return 0;
}

/* resolve_check - "smtpd -n": aliases, delivery, catch-all, postmaster;
 * problems on stderr, 1 if any is an error */
int resolve_check(void)
{
	char spec[CFG_STR_MAX], list[CFG_STR_MAX], *item, *save = NULL, *colon;
	struct target t[ALIAS_FANOUT];
	struct path p;
	struct user u;
	int bad = check_aliases(), n;

	if (resolve_route(NULL, spec, sizeof spec) < 0) {
		fprintf(stderr, "smtpd: delivery = %s: each item must be maildir, "
		    "lmtp:unix:/path, lmtp:HOST:PORT, or DOMAIN= one of those\n", cfg.delivery);
		bad = 1;
	}
	str_copy(list, sizeof list, cfg.catchall);
	for (item = strtok_r(list, ", \t", &save); item; item = strtok_r(NULL, ", \t", &save))
		if (!(colon = strchr(item, ':')) || users_lookup(colon + 1, &u) != USER_FOUND) {
			fprintf(stderr, "smtpd: catchall %s: want DOMAIN:USER with a "
			    "local USER\n", item);
			bad = 1;
		}
	if (rfc822_mailbox("postmaster", &p) < 0 ||
	    (n = resolve_rcpt("check", &p, t, ALIAS_FANOUT)) <= 0) {
		fprintf(stderr, "smtpd: postmaster (account %s, or the alias) cannot "
		    "receive mail\n", cfg.postmaster);
		bad = 1;
	}
	return bad;
}
