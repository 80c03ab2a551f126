/*
 * smtpd.h - the SMTP dialogue's interface: one entry, one stop flag.
 */
#ifndef SMTPD_H
#define SMTPD_H

#include "deliver.h"

#include <signal.h>
#include <stddef.h>

/* Set from a signal handler when the session must end now with 421. */
extern volatile sig_atomic_t smtpd_stop;

int session_run(int in, int out, const char *id, const char *addr, int port,
    struct deliverer *d);

#endif
