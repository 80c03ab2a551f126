/*
 * fuzz/fuzz_dnsbl.c - the door's parsers: the first input byte picks
 * one, the rest is its input.
 *   0: dnsbl_parse (a dnsbl_sites value), then dnsbl_answer and
 *      dnsbl_query_name on every site it accepted
 *   1: dns_reply_parse (a UDP answer from a resolver)
 *   2: netaddr_match / netaddr_list_ok (a trusted_networks value) and
 *      dns_server_parse
 * Checks: results in range; names NUL-ended within their buffers; a
 * parsed site's zone is non-empty, lower case and short enough.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "dns.h"
#include "dnsbl.h"
#include "fuzz.h"
#include "netaddr.h"

/* sites - the dnsbl_sites parser and what follows from a site */
static void sites(const char *text)
{
	struct dnsbl_site s[4];
	struct netaddr na;
	char name[256];
	unsigned char a[4] = { 127, 0, 0, 0 };
	int n = dnsbl_parse(text, s, 4), i, k;

	CHECK(n >= -1 && n <= 4);
	netaddr_parse("2001:db8::1", &na);
	for (i = 0; i < n; i++) {
		size_t zl = strlen(s[i].zone);

		CHECK(zl > 0 && zl <= DNSBL_ZONE_MAX);
		for (k = 0; k < (int)zl; k++)
			CHECK(!isupper((unsigned char)s[i].zone[k]));
		CHECK(s[i].weight >= -DNSBL_WEIGHT_MAX && s[i].weight <= DNSBL_WEIGHT_MAX);
		for (k = 0; k < 256; k++) {
			a[3] = (unsigned char)k;
			CHECK(dnsbl_answer(&s[i], a) >= -1 && dnsbl_answer(&s[i], a) <= 1);
		}
		k = dnsbl_query_name(&s[i], &na, name, sizeof name);
		CHECK(k > 0 && k < 254 && strlen(name) == (size_t)k);
	}
}

/* reply - the answer parser on exactly the input's octets */
static void reply(const uint8_t *data, size_t size)
{
	unsigned char *p = fuzz_heap(data, size);
	struct dns_reply r;
	int i;

	if (dns_reply_parse(p, size, &r) == 0) {
		CHECK(r.na >= 0 && r.na <= DNS_RR_MAX && r.naaaa <= DNS_RR_MAX);
		CHECK(r.nptr >= 0 && r.nptr <= 2);
		CHECK(memchr(r.qname, '\0', sizeof r.qname) != NULL);
		for (i = 0; i < r.nptr; i++)
			CHECK(memchr(r.ptr[i], '\0', sizeof r.ptr[i]) != NULL);
	}
	free(p);
}

/* networks - a CIDR list against a few addresses; a server value */
static void networks(const char *text)
{
	struct sockaddr_in6 sa;
	unsigned len;
	int ok = netaddr_list_ok(text);

	CHECK(ok == 0 || ok == 1);
	CHECK(netaddr_match("127.0.0.1", text) >= 0);
	CHECK(netaddr_match("2001:db8::7", text) >= 0);
	if (dns_server_parse(text, &sa, &len) == 0)
		CHECK(len == sizeof(struct sockaddr_in) || len == sizeof sa);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;

	if (size < 1)
		return 0;
	text = malloc(size);
	CHECK(text != NULL);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	switch (data[0] % 3) {
	case 0: sites(text); break;
	case 1: reply(data + 1, size - 1); break;
	default: networks(text); break;
	}
	free(text);
	return 0;
}
