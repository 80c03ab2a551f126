/*
 * check_harden.c - unit tests for the audit's smaller findings (issue 11).
 *
 *   make tests/check_harden && ./tests/check_harden
 *
 * supervisor_message(): what a (possibly compromised) worker may say;
 * proxy_v1_parse()/proxy_v2_parse(): one spelling per client address;
 * comma lists in the configuration: trimmed when loaded; "0 = off" settings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_common.h"
#include "config.h"
#include "proxy.h"
#include "supervisor.h"

/* ---- supervisor_message ------------------------------------------------ */

static const struct { const char *msg; size_t len; int want; } msgs[] = {
	{ "S", 1, WMSG_SPARE }, { "", 0, WMSG_BAD }, { "SS", 2, WMSG_BAD },
	{ "S\0", 2, WMSG_BAD }, { "s", 1, WMSG_BAD }, { "A", 1, WMSG_BAD },
	{ "I", 1, WMSG_BAD }, { "B 192.0.2.7", 11, WMSG_BAD },	/* the old ones */
	{ "B", 1, WMSG_BAD }, { "X", 1, WMSG_BAD }, { "\xff", 1, WMSG_BAD },
};

START_TEST(test_worker_messages)
{
	ck_assert_int_eq(supervisor_message(msgs[_i].msg, msgs[_i].len), msgs[_i].want);
}
END_TEST

/* ---- PROXY: the canonical form of the source address ------------------- */

static const struct { const char *line, *want; } v1[] = {
	{ "PROXY TCP6 0:0:0:0:0:0:0:1 ::1 1 2\r\n", "::1" },
	{ "PROXY TCP4 192.0.2.9 192.0.2.1 1 25\r\n", "192.0.2.9" },
	{ "PROXY TCP6 ::1 ::1 1 2\r\n", "::1" },
	{ "PROXY TCP6 2001:DB8:0:0::7 ::1 1 2\r\n", "2001:db8::7" },
	{ "PROXY TCP6 ::ffff:192.0.2.7 ::1 1 2\r\n", "192.0.2.7" },
	{ "PROXY TCP4 192.0.2.7 192.0.2.1 1 2\r\n", "192.0.2.7" },
};

START_TEST(test_proxy_v1_canonical)
{
	char addr[64];
	int port = -1;

	ck_assert_int_eq(proxy_v1_parse(v1[_i].line, strlen(v1[_i].line), addr,
	    sizeof addr, &port), 1);
	ck_assert_str_eq(addr, v1[_i].want);
	ck_assert_int_eq(port, 1);	/* the source port */
}
END_TEST

START_TEST(test_proxy_v2_mapped)
{
	unsigned char h[16 + 36] = { 0 };
	char addr[64];
	int port = -1;

	memcpy(h, PROXY_V2_SIG, PROXY_V2_SIGLEN);
	h[12] = 0x21, h[13] = 0x21, h[15] = 36;
	h[16 + 10] = h[16 + 11] = 0xff;
	h[16 + 12] = 192, h[16 + 13] = 0, h[16 + 14] = 2, h[16 + 15] = 7;
	h[16 + 32] = 0xc3, h[16 + 33] = 0x50;	/* source port 50000 */
	ck_assert_int_eq(proxy_v2_parse(h, sizeof h, addr, sizeof addr, &port), 1);
	ck_assert_str_eq(addr, "192.0.2.7");
	ck_assert_int_eq(port, 50000);
}
END_TEST

/* ---- comma lists ------------------------------------------------------- */

START_TEST(test_lists_trimmed)
{
	ck_assert_int_eq(config_set("local_domains", " localhost , example.org ,, "), 0);
	ck_assert_str_eq(cfg.local_domains, "localhost,example.org");
	ck_assert(is_local_domain("example.org"));
	ck_assert(is_local_domain("localhost"));
	ck_assert(!is_local_domain(" example.org"));
	ck_assert_int_eq(config_set("proxy_trusted", "127.0.0.1,\t::1"), 0);
	ck_assert_str_eq(cfg.proxy_trusted, "127.0.0.1,::1");
	ck_assert(in_list("::1", cfg.proxy_trusted));
	ck_assert_int_eq(config_set("local_domains", ""), 0);
	ck_assert_str_eq(cfg.local_domains, "");
}
END_TEST

/* 0 = off, else the range: libtls refuses a session lifetime under 4, and
 * 1 to 3 once made every STARTTLS fail; a plain range keeps 0 nowhere */
START_TEST(test_zero_or_range)
{
	static const struct { const char *in; long want; } t[] = {
		{ "0", 0 }, { "1", 4 }, { "3", 4 }, { "4", 4 }, { "3600", 3600 },
		{ "86401", 86400 }, { "-5", 4 },
	};
	size_t i;

	for (i = 0; i < N(t); i++) {
		ck_assert_int_eq(config_set("tls_session_lifetime", t[i].in), 0);
		ck_assert_int_eq(cfg.tls_session_lifetime, t[i].want);
	}
	ck_assert_int_eq(config_set("max_per_addr", "0"), 0);
	ck_assert_int_eq(cfg.max_per_addr, 1);		/* an N row: its minimum */
}
END_TEST

Suite *check_suite(void)
{
	Suite *s = suite_create("harden");
	TCase *tc = check_tcase(s, "findings", NULL, NULL, 0);

	tcase_add_loop_test(tc, test_worker_messages, 0, N(msgs));
	tcase_add_loop_test(tc, test_proxy_v1_canonical, 0, N(v1));
	tcase_add_test(tc, test_proxy_v2_mapped);
	tcase_add_test(tc, test_lists_trimmed);
	tcase_add_test(tc, test_zero_or_range);
	return s;
}
