/*
 * peer.h - who the client is: socket address, UCSPI variable, PROXY.
 */
#ifndef PEER_H
#define PEER_H

#include <stddef.h>

#define PEER_ADDR_MAX	64	/* client address text and its NUL */

int peer_identify(int fd, const char *id, char *addr, size_t cap, int *port);

#endif
