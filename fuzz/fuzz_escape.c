/*
 * fuzz/fuzz_escape.c - network text on its way into headers and logs.
 *
 * The input is taken as a HELO/EHLO name and as a MAIL path, the way the
 * session takes them, and what is accepted goes where the session puts it:
 * the Received: line (as an SMTP and an SMTPUTF8 message), a log value
 * (log_escape) and a log text (log_text).  The raw input goes through the
 * same functions too, as a hostile value that skipped the parsers.
 * Invariants (issue 11, finding 2):
 *  - an accepted HELO name is one token: no blank, '=', '"', '<', '>',
 *    control, C1 control or U+2028/U+2029; HELO (not EHLO) is ASCII;
 *  - Received: holds no control octet but its own LF TAB folding (exactly
 *    the lines it means to write), no C1 control and no U+2028/U+2029, and
 *    is ASCII unless the message is SMTPUTF8 (or the recipient is not);
 *  - a log_escape value is printable ASCII with no blank, '=', '"', '<' or
 *    '>' (nothing can fake a field); a log_text has no control and no '"'.
 */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "fuzz.h"
#include "log.h"
#include "rfc822.h"

/* unicode_break - does s hold U+0085, U+2028 or U+2029 (or any C1)? */
static int unicode_break(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i;

	for (i = 0; i + 1 < n; i++) {
		if (u[i] == 0xC2 && u[i + 1] >= 0x80 && u[i + 1] <= 0x9F)
			return 1;
		if (i + 2 < n && u[i] == 0xE2 && u[i + 1] == 0x80 &&
		    (u[i + 2] == 0xA8 || u[i + 2] == 0xA9))
			return 1;
	}
	return 0;
}

/* stray_controls - lines in s, or -1 for a control octet that is not
 * part of the LF TAB folding */
static int stray_controls(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	int lines = 0;

	for (; *u; u++) {
		if (*u == '\n') {
			lines++;
			continue;
		}
		if (*u == '\t' && u > (const unsigned char *)s && u[-1] == '\n')
			continue;
		if (*u < 32 || *u == 127)
			return -1;
	}
	return lines;
}

/* check_received - the trace line for this HELO, both kinds of message */
static void check_received(const char *helo, const char *rcpt)
{
	char dst[4096];
	struct received r = { helo, "192.0.2.1", "mx.test", "ESMTP", "ID1", rcpt,
	    1700000000, NULL, 0 };
	size_t i, n;
	int ascii_rcpt = 1;

	for (i = 0; rcpt && rcpt[i]; i++)
		ascii_rcpt &= (unsigned char)rcpt[i] < 0x80;	/* else: SMTPUTF8 only */
	for (r.utf8 = 0; r.utf8 < 2; r.utf8++) {
		n = rfc822_received(dst, sizeof dst, &r);
		CHECK(n > 0 && strlen(dst) == n);
		CHECK(stray_controls(dst) == (rcpt ? 3 : 2));
		CHECK(!unicode_break(dst, n));
		for (i = 0; !r.utf8 && ascii_rcpt && i < n; i++)
			CHECK((unsigned char)dst[i] < 0x80);
	}
}

/* check_log - both log escapes of s[0..n) */
static void check_log(const char *s, size_t n)
{
	static char dst[65536 * 4 + 1];
	size_t i, k = log_escape(dst, sizeof dst, s, n);

	CHECK(k == strlen(dst));
	for (i = 0; i < k; i++)
		CHECK(dst[i] > ' ' && dst[i] < 127 && !strchr("=\"<>", dst[i]));
	if (memchr(s, '\0', n))
		return;		/* log_text takes a C string */
	k = log_text(dst, sizeof dst, s);
	for (i = 0; i < k; i++)
		CHECK((unsigned char)dst[i] >= ' ' && dst[i] != 127 && dst[i] != '"');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), addr[ADDR_MAX];
	const char *end;
	struct path p;
	int utf8;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	for (utf8 = 0; utf8 < 2; utf8++) {
		if (!rfc822_helo(s, utf8))
			continue;
		CHECK(!strpbrk(s, " =\"<>\t\r\n") && !unicode_break(s, strlen(s)));
		CHECK(utf8 || rfc822_utf8_valid(s, strlen(s)));
		if (!utf8)
			for (end = s; *end; end++)
				CHECK((unsigned char)*end < 0x80);
		check_received(s, NULL);
		check_log(s, strlen(s));
	}
	if (rfc822_path(s, &p, &end) == 0 && rfc822_address(&p, addr, sizeof addr) > 0) {
		CHECK(!unicode_break(addr, strlen(addr)));
		check_received("client.example", addr);
		check_log(addr, strlen(addr));
	}
	check_received(s, s);	/* raw, as if a parser had let it through */
	check_log(s, size);
	free(s);
	return 0;
}
