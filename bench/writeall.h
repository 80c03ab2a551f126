/*
 * writeall.h - the benchmark programs' one write loop (ceiling.c and
 * smtpload.c are built standalone, each from its single file).
 */
#ifndef BENCH_WRITEALL_H
#define BENCH_WRITEALL_H

#include <errno.h>
#include <unistd.h>

/* write_all - write n octets, retrying short writes; 0 or -1 */
static inline int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w, n -= w;
	}
	return 0;
}

#endif
