/*
 * strcopy.h - str_copy(): snprintf(dst, cap, "%s", src) without the
 * format machinery, str_join() for "%s%s..." and str_uint() for the
 * numbers in names (about 1,000 instructions a call in glibc, and the
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

/* str_uint - v in base 10 or 16 (upper case digits when `upper`), at
 * least `pad` digits (zero-padded, pad <= 20), NUL-ended into dst, which
 * holds 24 octets; returns the length */
static inline size_t str_uint(char *dst, unsigned long long v, unsigned base, size_t pad,
    int upper)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	size_t n = 0, i;

	do
		tmp[n++] = digits[v % base];
	while ((v /= base) != 0);
	while (n < pad && n < 20)
		tmp[n++] = '0';
	for (i = 0; i < n; i++)
		dst[i] = tmp[n - 1 - i];
	dst[n] = '\0';
	return n;
}

/* str_join - the NULL-ended list of strings one after another in dst[cap]
 * (truncated, NUL-ended when cap > 0); returns the whole length, as
 * snprintf would, so ">= cap" means cut */
static inline size_t str_join(char *dst, size_t cap, const char *const *parts)
{
	size_t len = 0;

	for (; *parts; parts++) {
		size_t n = strlen(*parts);

		if (len + 1 < cap)
			memcpy(dst + len, *parts, n < cap - 1 - len ? n : cap - 1 - len);
		len += n;
	}
	if (cap > 0)
		dst[len < cap ? len : cap - 1] = '\0';
	return len;
}

#endif
