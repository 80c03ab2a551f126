/*
 * tlsspawn.h - the supervisor starts TLS engines for its workers.
 */
#ifndef TLSSPAWN_H
#define TLSSPAWN_H

#include <stddef.h>
#include <sys/types.h>

ssize_t tls_chan_recv(int chan, char *buf, size_t cap, int *fd);
int tls_spawn(int fd, int *keys);
int tls_keys_rotate(void);
int tls_keys_push(int fd);
void tls_keys_forget(void);
int tls_check(char *why, size_t cap);

#endif
