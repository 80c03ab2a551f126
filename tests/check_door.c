/*
 * check_door.c - unit tests for the pure parts of the checks at the door:
 * netaddr.c (addresses, CIDR lists, reversed names), dnsbl.c (the
 * dnsbl_sites syntax, what an answer means, query names) and the wire
 * format half of dns.c (queries made, answers read, dns_server values).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "check_common.h"
#include "dns.h"
#include "dnsbl.h"
#include "netaddr.h"
#include "rate.h"


/* ---- netaddr ------------------------------------------------------------ */

static const struct { const char *addr, *list; int want; } match_cases[] = {
	{ "127.0.0.1", "127.0.0.0/8, ::1/128", 1 },
	{ "127.255.3.4", "127.0.0.0/8", 1 },
	{ "128.0.0.1", "127.0.0.0/8", 0 },
	{ "::1", "127.0.0.0/8, ::1/128", 1 },
	{ "::2", "127.0.0.0/8 ::1/128", 0 },
	{ "::ffff:127.0.0.1", "127.0.0.0/8", 1 },	/* v4-mapped is v4 */
	{ "192.0.2.7", "192.0.2.7", 1 },		/* bare address: /32 */
	{ "192.0.2.8", "192.0.2.7", 0 },
	{ "192.0.2.200", "192.0.2.128/25", 1 },
	{ "192.0.2.127", "192.0.2.128/25", 0 },
	{ "10.1.2.3", "0.0.0.0/0", 1 },
	{ "2001:db8::5", "2001:db8::/32", 1 },
	{ "2001:db9::5", "2001:db8::/32", 0 },
	{ "2001:db8:0:1::1", "2001:db8::/63", 1 },
	{ "2001:db8:0:2::1", "2001:db8::/63", 0 },
	{ "192.0.2.7", "2001:db8::/32,192.0.2.0/24", 1 },
	{ "192.0.2.7", "", 0 },
	{ "unknown", "0.0.0.0/0", 0 },
	{ "192.0.2.7", "192.0.2.0/33", 0 },		/* malformed list */
	{ "192.0.2.7", "nonsense, 192.0.2.0/24", 0 },
};

START_TEST(netaddr_match_table)
{
	ck_assert_msg(netaddr_match(match_cases[_i].addr, match_cases[_i].list) ==
	    match_cases[_i].want, "%s in %s", match_cases[_i].addr, match_cases[_i].list);
}
END_TEST

START_TEST(netaddr_list_check)
{
	char big[2048] = "";
	int i;

	ck_assert(netaddr_list_ok("127.0.0.0/8, ::1/128"));
	ck_assert(netaddr_list_ok(""));
	ck_assert(netaddr_list_ok(" , 10.0.0.0/8 ,"));
	ck_assert(!netaddr_list_ok("127.0.0.0/8, localhost"));
	ck_assert(!netaddr_list_ok("10.0.0.0/-1"));
	ck_assert(!netaddr_list_ok("10.0.0.0/"));
	ck_assert(!netaddr_list_ok("::1/129"));
	ck_assert(!netaddr_list_ok("10.0.0.0/8x"));
	for (i = 0; i < NETADDR_LIST_MAX + 1; i++)
		strcat(big, "10.0.0.1,");
	ck_assert(!netaddr_list_ok(big));
}
END_TEST

START_TEST(netaddr_reverse_names)
{
	struct netaddr na;
	char buf[NETADDR_REV_MAX];

	ck_assert_int_eq(netaddr_parse("192.0.2.99", &na), 0);
	ck_assert_int_eq(netaddr_reverse(&na, buf, sizeof buf), 10);
	ck_assert_str_eq(buf, "99.2.0.192");
	ck_assert_int_eq(netaddr_reverse(&na, buf, 10), 0);	/* no room */
	ck_assert_int_eq(netaddr_parse("2001:db8::567:89ab", &na), 0);
	ck_assert_int_eq(netaddr_reverse(&na, buf, sizeof buf), 63);
	ck_assert_str_eq(buf, "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2");
	ck_assert_int_eq(netaddr_reverse(&na, buf, 63), 0);
	ck_assert_int_eq(netaddr_parse("not an address", &na), -1);
	ck_assert_int_eq(netaddr_parse("::ffff:192.0.2.1", &na), 0);
	ck_assert_int_eq(netaddr_reverse(&na, buf, sizeof buf), 9);
	ck_assert_str_eq(buf, "1.2.0.192");
}
END_TEST

/* ---- dnsbl sites -------------------------------------------------------- */

START_TEST(dnsbl_parse_weights)
{
	struct dnsbl_site s[DNSBL_SITES_MAX];

	ck_assert_int_eq(dnsbl_parse("zen.example*3, bl.example*2,"
	    " list.dnswl.example=127.0.[0..255].[1..3]*-4", s, DNSBL_SITES_MAX), 3);
	ck_assert_str_eq(s[0].zone, "zen.example");
	ck_assert_int_eq(s[0].weight, 3);
	ck_assert_int_eq(s[0].filtered, 0);
	ck_assert_int_eq(s[1].weight, 2);
	ck_assert_str_eq(s[2].zone, "list.dnswl.example");
	ck_assert_int_eq(s[2].weight, -4);
	ck_assert_int_eq(s[2].filtered, 1);
	ck_assert_int_eq(dnsbl_parse("", s, DNSBL_SITES_MAX), 0);
	ck_assert_int_eq(dnsbl_parse(" , ", s, DNSBL_SITES_MAX), 0);
	ck_assert_int_eq(dnsbl_parse("Plain.Example", s, DNSBL_SITES_MAX), 1);
	ck_assert_str_eq(s[0].zone, "plain.example");
	ck_assert_int_eq(s[0].weight, 1);
	ck_assert_int_eq(dnsbl_parse("a.example=127.0.0.[2;4;10..11] b.example", s, 2), 2);
	ck_assert_int_eq(dnsbl_parse("a.example b.example c.example", s, 2), -1);
}
END_TEST

static const char *const bad_sites[] = {
	"zen.example*", "zen.example*x", "zen.example*--1", "zen.example*1001",
	"zen.example=127.0.0", "zen.example=127.0.0.256", "zen.example=127.0.0.[2",
	"zen.example=127.0.0.[2;]", "zen.example=127.0.0.[5..2]", "zen.example=127.0.0.2.1",
	"zen..example", ".zen.example", "zen.example.", "zen.example;x", "zen.ex ample=1",
	"z en.example*3x", "zen.example=127.0.0.[1;2;3;4;5;6;7;8;9]", "=127.0.0.2",
	"*3", "zen.example=[]",
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example",
};

START_TEST(dnsbl_parse_rejects)
{
	struct dnsbl_site s[DNSBL_SITES_MAX];

	ck_assert_msg(dnsbl_parse(bad_sites[_i], s, DNSBL_SITES_MAX) == -1, "%s",
	    bad_sites[_i]);
}
END_TEST

START_TEST(dnsbl_parse_long_zone)
{
	struct dnsbl_site s[1];
	char z[DNSBL_ZONE_MAX + 8];
	int i;

	for (i = 0; i < DNSBL_ZONE_MAX; i++)
		z[i] = (i % 10 == 4) ? '.' : 'a';
	z[DNSBL_ZONE_MAX] = '\0';
	ck_assert_int_eq(dnsbl_parse(z, s, 1), 1);
	strcat(z, "a");
	ck_assert_int_eq(dnsbl_parse(z, s, 1), -1);
}
END_TEST

START_TEST(dnsbl_answers)
{
	struct dnsbl_site s[2];
	static const unsigned char a2[4] = { 127, 0, 0, 2 }, a10[4] = { 127, 0, 0, 10 },
	    a12[4] = { 127, 0, 0, 12 }, ref[4] = { 127, 255, 255, 254 },
	    out[4] = { 192, 0, 2, 1 }, wl[4] = { 127, 0, 15, 3 }, wl4[4] = { 127, 0, 15, 4 };

	ck_assert_int_eq(dnsbl_parse("bl.example wl.example=127.0.[0..255].[1..3]*-4", s, 2), 2);
	ck_assert_int_eq(dnsbl_answer(&s[0], a2), DNSBL_LISTED);
	ck_assert_int_eq(dnsbl_answer(&s[0], ref), DNSBL_ERROR);
	ck_assert_int_eq(dnsbl_answer(&s[0], out), DNSBL_ERROR);
	ck_assert_int_eq(dnsbl_answer(&s[1], wl), DNSBL_LISTED);
	ck_assert_int_eq(dnsbl_answer(&s[1], wl4), DNSBL_NO);
	ck_assert_int_eq(dnsbl_answer(&s[1], ref), DNSBL_ERROR);	/* filter or not */
	ck_assert_int_eq(dnsbl_parse("bl.example=127.0.0.[2;10..11]", s, 1), 1);
	ck_assert_int_eq(dnsbl_answer(&s[0], a2), DNSBL_LISTED);
	ck_assert_int_eq(dnsbl_answer(&s[0], a10), DNSBL_LISTED);
	ck_assert_int_eq(dnsbl_answer(&s[0], a12), DNSBL_NO);
}
END_TEST

START_TEST(dnsbl_names)
{
	struct dnsbl_site s[1];
	struct netaddr na;
	char buf[256];

	ck_assert_int_eq(dnsbl_parse("bl.example", s, 1), 1);
	netaddr_parse("192.0.2.99", &na);
	ck_assert_int_eq(dnsbl_query_name(&s[0], &na, buf, sizeof buf), 21);
	ck_assert_str_eq(buf, "99.2.0.192.bl.example");
	ck_assert_int_eq(dnsbl_query_name(&s[0], &na, buf, 21), 0);
	netaddr_parse("2001:db8::1", &na);
	ck_assert_int_gt(dnsbl_query_name(&s[0], &na, buf, sizeof buf), 0);
	ck_assert_str_eq(buf, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
	    ".bl.example");
}
END_TEST

/* ---- dns wire format ---------------------------------------------------- */

/* answer - a response to query q with the given answer records appended */
static size_t answer(unsigned char *pkt, const unsigned char *q, size_t qlen,
    int rcode, const unsigned char *rrs, size_t rrlen, int nrr)
{
	memcpy(pkt, q, qlen);
	pkt[2] |= 0x80;
	pkt[3] = (unsigned char)(0x80 | rcode);
	pkt[7] = (unsigned char)nrr;
	memcpy(pkt + qlen, rrs, rrlen);
	return qlen + rrlen;
}

START_TEST(dns_query_wire)
{
	unsigned char q[300];
	size_t n = dns_query_make(q, sizeof q, 0xbeef, "2.0.0.127.bl.example", DNS_T_A);
	static const unsigned char want[] = {
		0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
		1, '2', 1, '0', 1, '0', 3, '1', '2', '7', 2, 'b', 'l',
		7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1,
	};
	char l64[80];

	ck_assert_uint_eq(n, sizeof want);
	ck_assert(memcmp(q, want, n) == 0);
	ck_assert_uint_eq(dns_query_make(q, sizeof q, 1, "a..b", DNS_T_A), 0);
	ck_assert_uint_eq(dns_query_make(q, sizeof q, 1, "", DNS_T_A), 0);
	ck_assert_uint_eq(dns_query_make(q, 20, 1, "2.0.0.127.bl.example", DNS_T_A), 0);
	memset(l64, 'a', 64);
	l64[64] = '\0';
	ck_assert_uint_eq(dns_query_make(q, sizeof q, 1, l64, DNS_T_A), 0);
	ck_assert_uint_gt(dns_query_make(q, sizeof q, 1, "example.", DNS_T_A), 0);
}
END_TEST

START_TEST(dns_reply_records)
{
	unsigned char q[300], pkt[600];
	size_t qn = dns_query_make(q, sizeof q, 77, "2.0.0.127.bl.example", DNS_T_A);
	/* two A records, names compressed to the question (offset 12) */
	static const unsigned char rrs[] = {
		0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 2,
		0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 10,
	};
	struct dns_reply r;
	size_t n = answer(pkt, q, qn, 0, rrs, sizeof rrs, 2);

	ck_assert_int_eq(dns_reply_parse(pkt, n, &r), 0);
	ck_assert_uint_eq(r.id, 77);
	ck_assert_int_eq(r.rcode, 0);
	ck_assert_int_eq(r.type, DNS_T_A);
	ck_assert_str_eq(r.qname, "2.0.0.127.bl.example");
	ck_assert_int_eq(r.na, 2);
	ck_assert_int_eq(r.a[1][3], 10);
	ck_assert_int_eq(dns_reply_parse(pkt, n - 1, &r), -1);	/* cut record */
	ck_assert_int_eq(dns_reply_parse(q, qn, &r), -1);	/* a query, not an answer */
	n = answer(pkt, q, qn, DNS_R_NXDOMAIN, rrs, 0, 0);
	ck_assert_int_eq(dns_reply_parse(pkt, n, &r), 0);
	ck_assert_int_eq(r.rcode, DNS_R_NXDOMAIN);
	ck_assert_int_eq(r.na, 0);
}
END_TEST

START_TEST(dns_reply_ptr)
{
	unsigned char q[300], pkt[600];
	size_t qn = dns_query_make(q, sizeof q, 5, "7.2.0.192.in-addr.arpa", DNS_T_PTR);
	struct dns_reply r;
	size_t n;
	unsigned char good[64];
	/* mail.example. written out in full, the honest form */
	static const unsigned char full[] = {
		0xc0, 12, 0, 12, 0, 1, 0, 0, 0, 60, 0, 14,
		4, 'm', 'a', 'i', 'l', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0,
	};

	memcpy(good, full, sizeof full);
	n = answer(pkt, q, qn, 0, good, sizeof full, 1);
	ck_assert_int_eq(dns_reply_parse(pkt, n, &r), 0);
	ck_assert_int_eq(r.nptr, 1);
	ck_assert_str_eq(r.ptr[0], "mail.example");
	/* a PTR name that points at itself (a loop) is not taken */
	good[12] = 0xc0, good[13] = (unsigned char)(qn + 12);
	n = answer(pkt, q, qn, 0, good, sizeof full, 1);
	ck_assert_int_eq(dns_reply_parse(pkt, n, &r), 0);
	ck_assert_int_eq(r.nptr, 0);
	/* a record longer than the packet is refused */
	n = answer(pkt, q, qn, 0, full, sizeof full - 1, 1);
	ck_assert_int_eq(dns_reply_parse(pkt, n, &r), -1);
}
END_TEST

START_TEST(dns_server_values)
{
	struct sockaddr_in6 sa;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
	unsigned len;

	ck_assert_int_eq(dns_server_parse("127.0.0.1", &sa, &len), 0);
	ck_assert_int_eq(ntohs(s4->sin_port), 53);
	ck_assert_int_eq(dns_server_parse("127.0.0.1:5353", &sa, &len), 0);
	ck_assert_int_eq(s4->sin_family, AF_INET);
	ck_assert_int_eq(ntohs(s4->sin_port), 5353);
	ck_assert_int_eq(dns_server_parse("::1", &sa, &len), 0);
	ck_assert_int_eq(sa.sin6_family, AF_INET6);
	ck_assert_int_eq(ntohs(sa.sin6_port), 53);
	ck_assert_int_eq(dns_server_parse("[::1]:54", &sa, &len), 0);
	ck_assert_int_eq(ntohs(sa.sin6_port), 54);
	ck_assert_int_eq(dns_server_parse("[::1]x", &sa, &len), -1);
	ck_assert_int_eq(dns_server_parse("127.0.0.1:0", &sa, &len), -1);
	ck_assert_int_eq(dns_server_parse("127.0.0.1:65536", &sa, &len), -1);
	ck_assert_int_eq(dns_server_parse("127.0.0.1:-5", &sa, &len), -1);
	ck_assert_int_eq(dns_server_parse("localhost", &sa, &len), -1);
	ck_assert_int_eq(dns_server_parse("", &sa, &len), -1);
}
END_TEST

/* ---- rate ------------------------------------------------------------- */

START_TEST(rate_per_minute)
{
	struct rate *r = calloc(1, sizeof *r);
	int i;

	ck_assert_ptr_nonnull(r);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(rate_over(r, "192.0.2.7", 1000 + i, 3), 0);
	ck_assert_int_eq(rate_over(r, "192.0.2.7", 1010, 3), 1);	/* 4th */
	ck_assert_int_eq(rate_over(r, "192.0.2.8", 1010, 3), 0);	/* another */
	ck_assert_int_eq(rate_over(r, "::ffff:192.0.2.7", 1020, 3), 1);	/* same */
	ck_assert_int_eq(rate_over(r, "192.0.2.7", 1060, 3), 0);	/* new minute */
	ck_assert_int_eq(rate_over(r, "192.0.2.7", 1060, 0), 0);	/* no limit */
	ck_assert_int_eq(rate_over(r, "junk", 1060, 1), 0);
	free(r);
}
END_TEST

START_TEST(rate_table_full)
{
	struct rate *r = calloc(1, sizeof *r);
	char a[64];
	int i;

	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(rate_over(r, "2001:db8::1", 500, 1), 0);
	ck_assert_int_eq(rate_over(r, "2001:db8::1", 501, 1), 1);
	/* more addresses than slots: the oldest window is reused, nobody else's */
	for (i = 0; i < RATE_SLOTS; i++) {
		snprintf(a, sizeof a, "10.0.%d.%d", i / 256, i % 256);
		ck_assert_int_eq(rate_over(r, a, 502, 1), 0);
	}
	ck_assert_int_eq(rate_over(r, "10.0.0.0", 503, 1), 1);
	ck_assert_int_eq(rate_over(r, "2001:db8::1", 503, 1), 0);	/* forgotten */
	free(r);
}
END_TEST

/* check_suite - the door's pure parts (main() is check_common.c's) */
Suite *check_suite(void)
{
	Suite *s = suite_create("door");
	TCase *tc = tcase_create("netaddr");

	tcase_add_loop_test(tc, netaddr_match_table, 0, N(match_cases));
	tcase_add_test(tc, netaddr_list_check);
	tcase_add_test(tc, netaddr_reverse_names);
	suite_add_tcase(s, tc);
	tc = tcase_create("dnsbl");
	tcase_add_test(tc, dnsbl_parse_weights);
	tcase_add_loop_test(tc, dnsbl_parse_rejects, 0, N(bad_sites));
	tcase_add_test(tc, dnsbl_parse_long_zone);
	tcase_add_test(tc, dnsbl_answers);
	tcase_add_test(tc, dnsbl_names);
	suite_add_tcase(s, tc);
	tc = tcase_create("dns");
	tcase_add_test(tc, dns_query_wire);
	tcase_add_test(tc, dns_reply_records);
	tcase_add_test(tc, dns_reply_ptr);
	tcase_add_test(tc, dns_server_values);
	suite_add_tcase(s, tc);
	tc = tcase_create("rate");
	tcase_add_test(tc, rate_per_minute);
	tcase_add_test(tc, rate_table_full);
	suite_add_tcase(s, tc);
	return s;
}
