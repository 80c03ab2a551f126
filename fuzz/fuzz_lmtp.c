/*
 * fuzz/fuzz_lmtp.c - the LMTP reply reader and the maildirsize decoder.
 * The input is (1) decoded line by line with lmtp_reply_line(), (2) sent
 * through a socket pair as a server's replies and read with
 * lmtp_read_reply() until it fails, and (3) parsed as a maildirsize file.
 * Checks: every code returned is 200..599 or -1; the text handed back is
 * NUL-ended printable ASCII that starts with the code; quota figures are
 * never negative.
 */
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "lmtp.h"
#include "quota.h"

/* check_text - a reply's kept text */
static void check_text(int code, const char *text, size_t cap)
{
	size_t i, n;

	CHECK(code == -1 || (code >= 200 && code <= 599));
	if (code < 0)
		return;
	CHECK((n = strnlen(text, cap)) < cap);
	for (i = 0; i < n; i++)
		CHECK(text[i] >= 0x20 && text[i] < 0x7f);
	CHECK(n >= 3 && (text[0] - '0') * 100 + (text[1] - '0') * 10 +
	    (text[2] - '0') == code);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *h = fuzz_heap(data, size), text[LMTP_REPLY_MAX];
	const char *s, *nl, *end;
	struct lmtp l;
	struct quota q;
	int sv[2], code, r, replies = 0;

	for (s = h, end = h + size; s < end; s = nl + 1) {
		if (!(nl = memchr(s, '\n', end - s)))
			nl = end;
		r = lmtp_reply_line(s, nl - s, &code);
		CHECK(r == LMTP_BAD || ((r == LMTP_LAST || r == LMTP_MORE) &&
		    code >= 200 && code <= 599));
	}
	if (quota_parse(h, size, &q) == 0)
		CHECK(q.bytes >= 0 && q.count >= 0 && q.max_bytes >= 0 && q.max_count >= 0);
	free(h);

	if (size > 60000)
		return 0;	/* the socket buffer must hold it all */
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK(write(sv[1], data, size) == (ssize_t)size);
	shutdown(sv[1], SHUT_WR);
	memset(&l, 0, sizeof l);
	l.fd = sv[0], l.timeout = 1;
	do {
		code = lmtp_read_reply(&l, text, sizeof text);
		check_text(code, text, sizeof text);
	} while (code > 0 && ++replies < 10000);
	close(sv[0]), close(sv[1]);
	return 0;
}
