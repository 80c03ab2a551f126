/*
 * filter.h - what the milter and policy clients share: filter
 * addresses, default actions, and the verdict handed back to the
 * session.  They connect and talk through conn.h.
 */
#ifndef FILTER_H
#define FILTER_H

#include <stddef.h>

#include "conn.h"
#include "filter_proto.h"

/* what a filter decided; the session turns it into a reply */
enum { FV_CONTINUE, FV_ACCEPT, FV_REJECT, FV_TEMPFAIL, FV_DISCARD };

/* default actions for a filter that is down or misbehaves */
enum { FD_TEMPFAIL, FD_ACCEPT, FD_REJECT };

struct verdict {
	int kind;			/* FV_* */
	char text[MILTER_TEXT_MAX];	/* the filter's own reply line, or "" */
};

int filter_next(const char **list, char *item, size_t cap);
void *filter_new(const char *list, size_t size, const char *what);
int filter_default(const char *setting);
void filter_fail(struct verdict *v, int action);

#endif
