/*
 * fuzz/fuzz_milter.c - the milter reply decoder: the input is a stream of
 * packets as a milter would send them (4-octet length, command, data);
 * each frame goes through mp_frame_len and mp_decode in a heap block of
 * exactly its size, so an over-read shows.  Then the input as a spooled
 * header section through hdr_field.
 * Check: every string a decoded reply names lies inside its packet and
 * is NUL-ended there; a replycode is 4xx/5xx; hdr_field stays in bounds.
 */
#include <stdint.h>
#include <string.h>

#include "filter_proto.h"
#include "fuzz.h"

/* inside - s is NULL or a NUL-ended string within p[0..n) */
static void inside(const char *s, const unsigned char *p, size_t n)
{
	if (!s)
		return;
	CHECK((const unsigned char *)s >= p && (const unsigned char *)s < p + n);
	CHECK(memchr(s, '\0', p + n - (const unsigned char *)s) != NULL);
}

/* frames - walk the input as packets */
static void frames(const uint8_t *data, size_t size)
{
	while (size >= 4) {
		long len = mp_frame_len(data);
		struct mreply r;
		unsigned char *pkt;

		CHECK(len == -1 || (len >= 1 && len <= MILTER_REPLY_MAX));
		if (len < 0 || (size_t)len > size - 4)
			return;
		CHECK((pkt = malloc(len)) != NULL);
		memcpy(pkt, data + 4, len);
		if (mp_decode(pkt, len, &r) == 0) {
			inside(r.name, pkt, len);
			inside(r.value, pkt, len);
			inside(r.text, pkt, len);
			if (r.cmd == MR_REPLYCODE)
				CHECK(r.text[0] == '4' || r.text[0] == '5');
		}
		free(pkt);
		data += 4 + len, size -= 4 + len;
	}
}

/* headers - split the input into header fields like milter.c does */
static void headers(const uint8_t *data, size_t size)
{
	char *h = fuzz_heap(data, size);
	size_t off = 0, k, name;

	while (off < size && (k = hdr_field(h + off, size - off, &name)) > 0) {
		CHECK(k <= size - off && name < k && h[off + name] == ':');
		off += k;
	}
	free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	frames(data, size);
	headers(data, size);
	return 0;
}
