/*
 * supervisor.h - the prefork supervisor (smtpd -l, systemd Accept=no).
 */
#ifndef SUPERVISOR_H
#define SUPERVISOR_H

#include <stddef.h>

/* what a worker's message says; see supervisor_message() */
enum { WMSG_BAD, WMSG_SPARE };

int supervisor_run(int argc, char **argv);
int supervisor_message(const char *buf, size_t n);

#endif
