/*
 * fuzz/fuzz_tlsvars.c - what a TLS engine sends on the control fd:
 * starttls_vars() on the raw input (in a heap block of exactly its size,
 * so an over-read shows), then starttls_finish() reading the same bytes
 * through a socket pair (the bounded reader, EOF without the final empty
 * string), then starttls_comment() on whatever was decoded.
 * Check: a known result; every field NUL-ended; protocol and cipher hold
 * only token characters; the reason no quote, backslash or control.
 */
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "starttls.h"

/* safe - fields are NUL-ended and hold only what headers and logs take */
static void safe(const struct tls_info *ti)
{
	const char *p;

	CHECK(memchr(ti->protocol, '\0', sizeof ti->protocol) != NULL);
	CHECK(memchr(ti->cipher, '\0', sizeof ti->cipher) != NULL);
	CHECK(memchr(ti->error, '\0', sizeof ti->error) != NULL);
	for (p = ti->protocol; *p; p++)
		CHECK(strchr("._-/+", *p) || (*p >= '0' && *p <= '9') ||
		    ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z'));
	for (p = ti->cipher; *p; p++)
		CHECK(*p > ' ' && *p < 0x7f && *p != '"' && *p != '\\' && *p != '=');
	for (p = ti->error; *p; p++)
		CHECK(*p >= ' ' && *p < 0x7f && *p != '"' && *p != '\\');
	CHECK(ti->bits >= 0 && ti->bits <= 9999);
}

/* through_socket - the same bytes as the engine would write them */
static void through_socket(const uint8_t *data, size_t size)
{
	struct starttls t;
	char line[3 * TLS_TOKEN_MAX];
	int sv[2], r;

	if (size > 65536 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return;
	memset(&t, 0, sizeof t);
	t.ctl = sv[0], t.rd = t.wr = -1;
	if (size && write(sv[1], data, size) != (ssize_t)size) {
		close(sv[0]), close(sv[1]);
		return;
	}
	close(sv[1]);		/* EOF after the input */
	r = starttls_finish(&t, 1);
	CHECK(r == 0 || r == -1);
	CHECK(t.ctl == -1);
	CHECK(r == -1 || (t.active && t.info.protocol[0]));
	CHECK(r == 0 || t.info.error[0]);
	safe(&t.info);
	if (r == 0)
		CHECK(starttls_comment(line, sizeof line, &t.info) > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *h = fuzz_heap(data, size);
	struct tls_info ti;
	int r;

	r = starttls_vars(&ti, h, size);
	CHECK(r == VARS_DONE || r == VARS_MORE || r == VARS_BAD);
	safe(&ti);
	free(h);
	through_socket(data, size);
	return 0;
}
