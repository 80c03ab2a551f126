/*
 * fuzz/fuzz.h - what the libFuzzer harnesses share (see fuzz/fuzz.mk).
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <stdio.h>
#include <stdlib.h>

#include "deliver.h"

/* CHECK - an invariant: on failure name it on fd 2 and abort() */
#define CHECK(c) ((c) ? (void)0 : fuzz_fail(__FILE__, __LINE__, #c))

static inline void fuzz_fail(const char *file, int line, const char *what)
{
	dprintf(2, "%s:%d: CHECK failed: %s\n", file, line, what);
	abort();
}

/* common.c: a throw-away mail system for the session and queue harnesses */
extern char fuzz_spool[];			/* the spool directory */
void fuzz_setup(void);				/* temp dirs, users file, cfg */
void fuzz_deliverer(struct deliverer *d);	/* start a real deliverer */
void fuzz_before(void);				/* per run: before, */
void fuzz_after(struct deliverer *d);		/* after: checks, cleanup */

#endif
