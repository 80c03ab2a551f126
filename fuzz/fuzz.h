/*
 * fuzz/fuzz.h - what the libFuzzer harnesses share (see fuzz/fuzz.mk).
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver.h"

/* CHECK - an invariant: on failure name it on fd 2 and abort() */
#define CHECK(c) ((c) ? (void)0 : fuzz_fail(__FILE__, __LINE__, #c))

static inline void fuzz_fail(const char *file, int line, const char *what)
{
	dprintf(2, "%s:%d: CHECK failed: %s\n", file, line, what);
	abort();
}

/* fuzz_heap - the input copied to a heap block of exactly its size (no NUL
 * after it, so a read past the end is caught); free() it */
static inline void *fuzz_heap(const void *data, size_t size)
{
	void *h = malloc(size ? size : 1);

	CHECK(h != NULL);
	return memcpy(h, data, size);
}

/* common.c: a throw-away mail system for the session and queue harnesses */
extern char fuzz_spool[];			/* the spool directory */
void fuzz_setup(void);				/* temp dirs, users file, cfg */
void fuzz_deliverer(struct deliverer *d);	/* start a real deliverer */
void fuzz_before(void);				/* per run: before, */
void fuzz_after(struct deliverer *d);		/* after: checks, cleanup */

#endif
