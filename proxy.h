/*
 * proxy.h - the PROXY protocol, v1 and v2, as HAProxy sends it.
 */
#ifndef PROXY_H
#define PROXY_H

#include <stddef.h>

#define PROXY_V1_MAX	107	/* longest v1 line, CR LF included */
#define PROXY_V2_SIG	"\r\n\r\n\0\r\nQUIT\n"
#define PROXY_V2_SIGLEN	12

int proxy_v1_parse(const char *line, size_t len, char *addr, size_t cap, int *port);
int proxy_v2_parse(const unsigned char *h, size_t len, char *addr, size_t cap,
    int *port);
int proxy_read(int fd, long timeout, char *addr, size_t cap, int *port);

#endif
