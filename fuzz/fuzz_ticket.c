/*
 * fuzz/fuzz_ticket.c - the session ticket key message an engine reads
 * from the supervisor on fd 4, or from a -R key file: ticket_parse() on
 * the raw input, in a heap block of exactly its size (an over-read shows).
 * Check: -1 or a count of 1..TICKET_MAX, and then exactly that many whole
 * records, names non-zero and distinct, each record written back by
 * ticket_put() equal to the input octets.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "tls/ticket.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ticket_key k[TICKET_MAX];
	unsigned char rec[TICKET_REC], *h = fuzz_heap(data, size);
	int n, i, j;

	n = ticket_parse(h, size, k);
	CHECK(n == -1 || (n >= 1 && n <= TICKET_MAX));
	CHECK(n == -1 || size == (size_t)n * TICKET_REC);
	for (i = 0; i < n; i++) {
		CHECK(k[i].name != 0);
		for (j = 0; j < i; j++)
			CHECK(k[j].name != k[i].name);
		ticket_put(rec, &k[i]);
		CHECK(memcmp(rec, h + i * TICKET_REC, TICKET_REC) == 0);
	}
	free(h);
	return 0;
}
