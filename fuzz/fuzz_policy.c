/*
 * fuzz/fuzz_policy.c - the policy answer parser: policy_parse on the raw
 * input, in a heap block of exactly its size.
 * Check: a classified action's text lies inside the input, is printable
 * and within its cap; a numeric action is 4xx or 5xx.
 */
#include <stdint.h>
#include <string.h>

#include "filter_proto.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *p = fuzz_heap(data, size);
	struct paction a;
	size_t i;

	if (policy_parse(p, size, &a) == 0 && a.kind != PA_BAD) {
		CHECK(a.textlen <= 512);
		if (a.textlen > 0) {
			CHECK(a.text >= p && a.text + a.textlen <= p + size);
			for (i = 0; i < a.textlen; i++)
				CHECK(a.text[i] >= 32 && a.text[i] < 127);
		}
		if (a.kind == PA_CODE)
			CHECK(a.code >= 400 && a.code <= 599);
	}
	free(p);
	return 0;
}
