/*
 * smtpd.h - the SMTP session's interface, for main and the tests.
 */
#ifndef SMTPD_H
#define SMTPD_H

#include "deliver.h"

#include <signal.h>
#include <stddef.h>

/* Set from a signal handler when the session must end now with 421. */
extern volatile sig_atomic_t smtpd_stop;

int smtpd_main(int argc, char **argv);
int session_run(int in, int out, const char *addr, struct deliverer *d);
int connection_addr(int fd, char *addr, size_t cap);
void drop_privileges(const char *name);
int queue_child(void);

#endif
