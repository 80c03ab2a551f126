/*
 * smtpd.h - the SMTP session's interface, for main and the tests.
 */
#ifndef SMTPD_H
#define SMTPD_H

#include "deliver.h"

int smtpd_main(int argc, char **argv);
int session_run(int in, int out, const char *addr, struct deliverer *d);

#endif
