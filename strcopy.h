/*
 * strcopy.h - str_copy(): snprintf(dst, cap, "%s", src) without the
 * format machinery (about 1,000 instructions a call in glibc, and the
 * per-message path made some thirty of them).
 */
#ifndef STRCOPY_H
#define STRCOPY_H

#include <string.h>

/* str_copy - copy src into dst[cap], truncated and NUL-ended when cap >
 * 0; returns strlen(src), as snprintf would, so ">= cap" means cut */
static inline size_t str_copy(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (cap > 0) {
		size_t k = n < cap ? n : cap - 1;

		memmove(dst, src, k);
		dst[k] = '\0';
	}
	return n;
}

#endif
