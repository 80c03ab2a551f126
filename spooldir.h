/*
 * spooldir.h - the spool directory's safe set-up (see spooldir.c).
 */
#ifndef SPOOLDIR_H
#define SPOOLDIR_H

#include <stddef.h>

int spooldir_setup(char *why, size_t cap);
int spooldir_check(char *why, size_t cap);

#endif
