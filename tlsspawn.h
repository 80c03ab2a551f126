/*
 * tlsspawn.h - the supervisor starts TLS engines for its workers.
 */
#ifndef TLSSPAWN_H
#define TLSSPAWN_H

#include <stddef.h>
#include <sys/types.h>

#define TLS_FDS	4	/* socket, control, clear text to and from the app */

ssize_t tls_chan_recv(int chan, char *buf, size_t cap, int fds[TLS_FDS], int *nfds);
int tls_spawn(int fds[TLS_FDS]);
int tls_check(char *why, size_t cap);

#endif
