/*
 * conn.h - outbound stream connections where every wait has a timeout:
 * the one way the milter, policy and LMTP clients connect, write and read.
 */
#ifndef CONN_H
#define CONN_H

#include <stddef.h>

int conn_connect(const char *spec, long timeout, char *why, size_t cap);
int conn_write(int fd, const void *p, size_t n, long timeout);
long conn_read(int fd, void *p, size_t n, long timeout, int exact);

#endif
