/*
 * tlsspawn.h - the supervisor starts TLS engines for its workers.
 */
#ifndef TLSSPAWN_H
#define TLSSPAWN_H

#include <stddef.h>
#include <sys/types.h>

ssize_t tls_chan_recv(int chan, char *buf, size_t cap, int *fd);
int tls_spawn(int fd);
int tls_check(char *why, size_t cap);

#endif
