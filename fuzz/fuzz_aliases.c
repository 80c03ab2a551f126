/*
 * fuzz/fuzz_aliases.c - the aliases file parser and expansion: the input
 * (in a heap block of exactly its size, so an over-read shows) is parsed
 * as an aliases file; when accepted, the first few names in it are
 * expanded.  Checks: a refusal names "aliases:LINE:" with LINE no larger
 * than the input's line count + 1; every expansion returns a count within
 * the room given, or one of the ALIAS_* errors, and each leaf is a
 * non-empty NUL-ended local part of letters, digits and . _ - + =.
 */
#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include "aliases.h"
#include "config.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	strcpy(cfg.hostname, "mx.example.org");
	strcpy(cfg.local_domains, "example.org,example.net");
	return 0;
}

/* check_leaves - what aliases_expand() wrote */
static void check_leaves(const struct alias_leaf *out, int n, int max)
{
	int i;
	size_t j, len;

	CHECK(n <= max && n >= ALIAS_WIDE);
	for (i = 0; i < n; i++) {
		CHECK((len = strnlen(out[i].local, sizeof out[i].local)) > 0);
		CHECK(len < sizeof out[i].local);
		for (j = 0; j < len; j++)
			CHECK(isalnum((unsigned char)out[i].local[j]) ||
			    strchr("._-+=", out[i].local[j]));
	}
}

/* expand_some - expand the names at the start of each line */
static void expand_some(const struct alias_table *t, const char *s, size_t size)
{
	struct alias_leaf out[8];
	char name[LOCAL_MAX + 1];
	size_t i = 0, n;
	int tries = 0;

	while (i < size && tries++ < 16) {
		for (n = 0; i + n < size && n < LOCAL_MAX && (isalnum((unsigned char)s[i + n]) ||
		    strchr("._-+=", s[i + n]) && s[i + n]); n++)
			name[n] = s[i + n];
		name[n] = '\0';
		if (n) {
			check_leaves(out, aliases_expand(t, name, "example.org", out, 8), 8);
			check_leaves(out, aliases_expand(t, name, "", out, 1), 1);
		}
		while (i < size && s[i] != '\n')
			i++;
		i++;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *h = fuzz_heap(data, size), err[ALIAS_ERR_MAX];
	struct alias_table *t;
	size_t lines = 1, i;
	long at;

	for (i = 0; i < size; i++)
		lines += h[i] == '\n';
	t = aliases_parse(h, size, "aliases", err, sizeof err);
	if (!t) {
		CHECK(strncmp(err, "aliases:", 8) == 0);
		at = strtol(err + 8, NULL, 10);
		CHECK(at >= 1 && (size_t)at <= lines);
	} else {
		expand_some(t, h, size);
		aliases_free(t);
	}
	free(h);
	return 0;
}
