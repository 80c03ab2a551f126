/*
 * fuzz/fuzz_rfc822.c - every parser and formatter in rfc822.h on one input.
 *
 * String functions get a NUL-ended copy; length-bounded ones a heap block
 * of exactly the input's size (no NUL after it, so an over-read shows).
 * For rfc822_received the input splits at NUL octets into helo, addr and
 * rcpt.  Invariants: see the CHECKs; the main ones are that a parsed path
 * stays inside struct path's bounds and survives the trip through
 * rfc822_address -> rfc822_mailbox (what the deliverer re-parses), and
 * that no output holds a control octet except the Received: folding.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "rfc822.h"

/* printable - no octet < 32 or 127 in s[0..n) */
static int printable(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 32 || s[i] == 127)
			return 0;
	return 1;
}

/*
 * invisible_in - does valid UTF-8 s[0..n) hold a code point rfc822_safe
 * replaces: C1, NBSP, soft hyphen, U+1680, U+180E, U+2000-200F,
 * U+2028-202F, U+205F-206F, U+3000, U+FEFF, U+FFF9-FFFB (an oracle
 * written apart from rfc822.c's)
 */
static int invisible_in(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, k;
	unsigned long cp;

	while (i < n) {
		k = u[i] < 0x80 ? 1 : u[i] < 0xE0 ? 2 : u[i] < 0xF0 ? 3 : 4;
		cp = k == 1 ? u[i] : u[i] & (0xFF >> (k + 1));
		for (size_t j = 1; j < k; j++)
			cp = cp << 6 | (u[i + j] & 0x3F);
		if ((cp >= 0x80 && cp <= 0xA0) || cp == 0xAD || cp == 0x1680 ||
		    cp == 0x180E || (cp >= 0x2000 && cp <= 0x200F) ||
		    (cp >= 0x2028 && cp <= 0x202F) || (cp >= 0x205F && cp <= 0x206F) ||
		    cp == 0x3000 || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB))
			return 1;
		i += k;
	}
	return 0;
}

/* check_path - a parsed Path or Mailbox */
static void check_path(const struct path *p)
{
	char addr[ADDR_MAX], local[LOCAL_MAX + 1], small[8];
	struct path q;
	size_t n, cap;

	CHECK(strnlen(p->local, sizeof p->local) <= LOCAL_MAX + 2);
	CHECK(strnlen(p->domain, sizeof p->domain) <= DOMAIN_MAX);
	n = rfc822_address(p, addr, sizeof addr);
	if (p->null) {
		CHECK(n == 0 && addr[0] == '\0');
		return;
	}
	CHECK(n > 0 && strlen(addr) == n && printable(addr, n));
	CHECK(rfc822_mailbox(addr, &q) == 0);
	CHECK(strcmp(q.local, p->local) == 0 && strcmp(q.domain, p->domain) == 0);
	CHECK(q.quoted == p->quoted);
	n = rfc822_local_unquote(p, local, sizeof local);	/* as check_rcpt */
	CHECK(n < sizeof local && (n == 0 || strlen(local) == n));
	for (cap = 0; cap <= sizeof small; cap++) {
		n = rfc822_local_unquote(p, small, cap);
		CHECK(n == 0 || (n < cap && strlen(small) == n));
		n = rfc822_address(p, small, cap);
		CHECK(n == 0 || (n < cap && strlen(small) == n));
	}
}

/* check_safe - rfc822_safe into a buffer of cap octets */
static void check_safe(const char *raw, size_t size, size_t cap)
{
	char *dst = malloc(cap ? cap : 1);
	size_t n;

	CHECK(dst != NULL);
	n = rfc822_safe(dst, cap, raw, size);
	if (cap == 0) {
		CHECK(n == 0);
	} else {
		CHECK(n < cap && strlen(dst) == n && printable(dst, n) &&
		    rfc822_utf8_valid(dst, n));
		if (cap > size)		/* never longer: one '?' per bad octet or
					 * per invisible code point (U+2028...) */
			CHECK(n <= size);
	}
	free(dst);
}

/* check_received - the trace line built from fields of the input */
static void check_received(const char *s, size_t size)
{
	char out[2048], tiny[64];
	struct received r = { 0 };
	const char *f[3] = { s, NULL, NULL }, *p;
	size_t n, i;

	for (i = 1, p = s; i < 3; i++) {	/* split at NUL octets */
		p += strlen(p) + 1;
		if (p > s + size)
			break;
		f[i] = p;
	}
	r.helo = f[0], r.addr = f[1] ? f[1] : "192.0.2.1", r.rcpt = f[2];
	r.by = "mx.test", r.with = "ESMTP", r.id = "QID", r.when = 1795382859;
	n = rfc822_received(out, sizeof out, &r);
	CHECK(n > 0 && strlen(out) == n && out[n - 1] == '\n');
	CHECK(strncmp(out, "Received: from ", 15) == 0);
	for (i = 0; i < n; i++) {
		unsigned char c = out[i];

		if (c == '\n')
			CHECK(i == n - 1 || out[i + 1] == '\t');
		else if (c == '\t')
			CHECK(i > 0 && out[i - 1] == '\n');
		else
			CHECK(c >= 32 && c != 127);
	}
	n = rfc822_received(tiny, sizeof tiny, &r);
	CHECK(n == 0 || (n < sizeof tiny && strlen(tiny) == n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), *raw = malloc(size ? size : 1);
	const char *end;
	struct path p;
	struct params pr;
	size_t caps[] = { 0, 1, 2, 3, 4, 5, 16, size + 1 }, i;
	int r;

	CHECK(s != NULL && raw != NULL);
	memcpy(s, data, size), s[size] = '\0';
	memcpy(raw, data, size);

	if (rfc822_path(s, &p, &end) == 0) {
		CHECK(end > s && end - s <= PATH_MAX_LEN && end[-1] == '>');
		check_path(&p);
	}
	if (rfc822_mailbox(s, &p) == 0) {
		CHECK(!p.null);
		check_path(&p);
	}
	if (rfc822_domain(raw, size))
		CHECK(size <= DOMAIN_MAX && printable(raw, size));
	if (rfc822_addr_literal(raw, size))
		CHECK(size >= 3 && raw[0] == '[' && raw[size - 1] == ']' &&
		    printable(raw, size));
	if (rfc822_helo(s, size & 1))
		CHECK(strlen(s) <= DOMAIN_MAX && printable(s, strlen(s)) &&
		    !strchr(s, ' '));
	for (i = 0; i < 2; i++) {		/* MAIL, then RCPT */
		r = rfc822_params(s, &pr, i == 0);
		CHECK(r == PARAM_OK || r == PARAM_SYNTAX || r == PARAM_UNKNOWN);
		if (r == PARAM_OK)
			CHECK(pr.size >= -1 && pr.body >= BODY_NONE &&
			    pr.body <= BODY_8BITMIME && (pr.smtputf8 & ~1) == 0);
	}
	if (rfc822_utf8_valid(raw, size) && printable(raw, size) &&
	    !invisible_in(raw, size)) {
		char *copy = malloc(size + 1);	/* valid text is kept as is */

		CHECK(copy != NULL);
		CHECK(rfc822_safe(copy, size + 1, raw, size) == size &&
		    memcmp(copy, raw, size) == 0);
		free(copy);
	}
	for (i = 0; i < sizeof caps / sizeof caps[0]; i++)
		check_safe(raw, size, caps[i]);
	if (rfc822_header_is(raw, size, "Received"))
		CHECK(size > 8 && memchr(raw, ':', size) != NULL);
	if (rfc822_header_is(raw, size, "Delivered-To"))
		CHECK(size > 12 && memchr(raw, ':', size) != NULL);
	check_received(s, size);
	free(s);
	free(raw);
	return 0;
}
