/*
 * supervisor.h - the prefork supervisor (smtpd -l, systemd Accept=no).
 */
#ifndef SUPERVISOR_H
#define SUPERVISOR_H

int supervisor_run(int argc, char **argv);

#endif
