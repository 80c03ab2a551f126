/*
 * filter.c - what the milter and policy clients share above the
 * connection (conn.c): their lists of addresses and default actions.
 *
 * Interface: filter_next() walks a comma list of addresses;
 * filter_new() allocates a session's client state when the list names
 * any; filter_default() reads a *_default_action setting and filter_fail()
 * applies it.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filter.h"
#include "log.h"

/* filter_next - the next item of a comma list, blanks trimmed; 0 at end */
int filter_next(const char **list, char *item, size_t cap)
{
	const char *p = *list, *end;
	size_t n;

	while (*p == ',' || *p == ' ' || *p == '\t')
		p++;
	if (!*p)
		return 0;
	end = p + strcspn(p, ",");
	n = end - p;
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	*list = end;
	if (n >= cap)
		n = cap - 1;	/* cannot happen: items are shorter than settings */
	memcpy(item, p, n);
	item[n] = '\0';
	return 1;
}

/* filter_new - a session's client state, size octets zeroed, when the
 * list names a filter; NULL when it names none */
void *filter_new(const char *list, size_t size, const char *what)
{
	void *p;

	if (!list[strspn(list, ", \t")])
		return NULL;	/* what filter_next() skips */
	if (!(p = calloc(1, size)))
		fatal("%s memory", what);
	return p;
}

/* filter_default - "tempfail" (also anything unknown), "accept", "reject" */
int filter_default(const char *setting)
{
	if (strcasecmp(setting, "accept") == 0)
		return FD_ACCEPT;
	if (strcasecmp(setting, "reject") == 0)
		return FD_REJECT;
	return FD_TEMPFAIL;
}

/* filter_fail - the verdict for a filter that failed, per the default */
void filter_fail(struct verdict *v, int action)
{
	v->kind = action == FD_ACCEPT ? FV_CONTINUE :
	    action == FD_REJECT ? FV_REJECT : FV_TEMPFAIL;
	v->text[0] = '\0';
}
