/*
 * aliases.h - the aliases file: "name: target, target" lines, local
 * targets only, expanded recursively with loop and depth checks.
 */
#ifndef ALIASES_H
#define ALIASES_H

#include <stddef.h>

#include "rfc822.h"

#define ALIAS_DEPTH	8		/* nested aliases before we give up */
#define ALIAS_FANOUT	100		/* mailboxes one alias may reach */
#define ALIAS_FILE_MAX	(4L << 20)	/* octets of an aliases file */
#define ALIAS_LINE_MAX	4096		/* octets of one logical entry */
#define ALIAS_ERR_MAX	(256 + 128)	/* "FILE:LINE: reason" */

struct alias_table;

/* one leaf of an expansion: a local part that is no alias */
struct alias_leaf {
	char local[LOCAL_MAX + 1];
};

/* results of aliases_expand() besides a count >= 1 */
enum { ALIAS_NONE = 0, ALIAS_LOOP = -1, ALIAS_DEEP = -2, ALIAS_WIDE = -3 };

struct alias_table *aliases_parse(const char *text, size_t len,
    const char *fname, char *err, size_t cap);
void aliases_free(struct alias_table *t);
size_t aliases_count(const struct alias_table *t);
int aliases_expand(const struct alias_table *t, const char *local,
    const char *domain, struct alias_leaf *out, int max);
int aliases_verify(const struct alias_table *t, char *err, size_t cap);
void aliases_leaves(const struct alias_table *t,
    void (*fn)(const char *file, long line, const char *key, const char *leaf));
struct alias_table *aliases_load(const char *path, char *err, size_t cap);
const struct alias_table *aliases_current(const char *id);

#endif
