/*
 * check_filter.c - unit tests for filter_proto.c (Check): milter packets
 * built and decoded, every reply kind, the length word's bounds, header
 * field splitting, and the policy answer classifier.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check_common.h"
#include "filter_proto.h"

/* decode - mp_decode on a heap copy of exactly n octets (over-reads show) */
static int decode(const void *p, size_t n, struct mreply *r)
{
	static unsigned char *keep;

	free(keep);
	keep = malloc(n ? n : 1);
	memcpy(keep, p, n);
	return mp_decode(keep, n, r);
}

START_TEST(build_packet)
{
	struct mpkt p;

	mp_begin(&p, MC_OPTNEG);
	mp_u32(&p, 6);
	mp_u32(&p, MA_OFFERED);
	mp_u32(&p, 0x1fffff);
	ck_assert_int_eq(mp_end(&p), 0);
	ck_assert_uint_eq(p.len, 17);
	ck_assert_mem_eq(p.buf, "\0\0\0\x0dO\0\0\0\x06\0\0\0\x31\0\x1f\xff\xff", 17);
	mp_begin(&p, MC_CONNECT);
	mp_str(&p, "host");
	mp_bytes(&p, "4", 1);
	mp_u16(&p, 25);
	mp_str(&p, "192.0.2.1");
	ck_assert_int_eq(mp_end(&p), 0);
	ck_assert_mem_eq(p.buf, "\0\0\0\x13" "Chost\0" "4\0\x19" "192.0.2.1\0", 23);
}
END_TEST

START_TEST(packet_overflow)
{
	static struct mpkt p;
	static char big[MILTER_PKT_MAX];

	mp_begin(&p, MC_BODY);
	mp_bytes(&p, big, sizeof big);
	ck_assert_int_eq(mp_end(&p), -1);
}
END_TEST

START_TEST(frame_len)
{
	const unsigned char zero[4] = { 0 }, one[4] = { 0, 0, 0, 1 };
	const unsigned char max[4] = { 0, 2, 0, 0 }, over[4] = { 0, 2, 0, 1 };
	const unsigned char huge[4] = { 0xff, 0xff, 0xff, 0xff };

	ck_assert_int_eq(mp_frame_len(zero), -1);
	ck_assert_int_eq(mp_frame_len(one), 1);
	ck_assert_int_eq(mp_frame_len(max), MILTER_REPLY_MAX);
	ck_assert_int_eq(mp_frame_len(over), -1);
	ck_assert_int_eq(mp_frame_len(huge), -1);
}
END_TEST

START_TEST(decode_simple)
{
	struct mreply r;
	const char *ok = "acdprst";

	for (; *ok; ok++) {
		ck_assert_int_eq(decode(ok, 1, &r), 0);
		ck_assert_int_eq(r.cmd, *ok);
	}
	ck_assert_int_eq(decode("", 0, &r), -1);
	ck_assert_int_eq(decode("Z", 1, &r), -1);
	ck_assert_int_eq(decode("b", 1, &r), -1);	/* never offered */
	ck_assert_int_eq(decode("+<a@b>", 7, &r), -1);
	ck_assert_int_eq(decode("e<a@b>", 7, &r), -1);
}
END_TEST

START_TEST(decode_optneg)
{
	struct mreply r;

	ck_assert_int_eq(decode("O\0\0\0\x06\0\0\0\x11\0\0\0\x80", 13, &r), 0);
	ck_assert_uint_eq(r.version, 6);
	ck_assert_uint_eq(r.actions, 0x11);
	ck_assert_uint_eq(r.proto, 0x80);
	ck_assert_int_eq(decode("O\0\0\0\x06\0\0\0\x11\0\0\0", 12, &r), -1);
}
END_TEST

START_TEST(decode_replycode)
{
	struct mreply r;
	const char ok[] = "y550 5.7.1 Spam", multi[] = "y550-5.7.1 a\r\n550 5.7.1 b";

	ck_assert_int_eq(decode(ok, sizeof ok, &r), 0);
	ck_assert_str_eq(r.text, "550 5.7.1 Spam");
	ck_assert_int_eq(decode(multi, sizeof multi, &r), 0);
	ck_assert_int_eq(decode("y550 5.7.1 no nul", 17, &r), -1);
	ck_assert_int_eq(decode("y250 2.0.0 ok", 14, &r), -1);	/* wrong class */
	ck_assert_int_eq(decode("y354 go", 8, &r), -1);
	ck_assert_int_eq(decode("y55", 4, &r), -1);
	ck_assert_int_eq(decode("y550x", 6, &r), -1);
	ck_assert_int_eq(decode("y550 a\rb", 9, &r), -1);
	ck_assert_int_eq(decode("y550 a\r\n551 b", 14, &r), -1);	/* code changes */
	ck_assert_int_eq(decode("y550-a\r\n550-b", 14, &r), -1);	/* no last line */
	ck_assert_int_eq(decode("y450 4.7.1 later", 17, &r), 0);
}
END_TEST

START_TEST(decode_headers)
{
	struct mreply r;
	const char add[] = "hX-Spam\0yes", ins[] = "i\0\0\0\x02X-A\0v",
	    chg[] = "m\0\0\0\x01Subject\0", fold[] = "hX-F\0a\r\n\tb";

	ck_assert_int_eq(decode(add, sizeof add, &r), 0);
	ck_assert_str_eq(r.name, "X-Spam");
	ck_assert_str_eq(r.value, "yes");
	ck_assert_int_eq(decode(ins, sizeof ins, &r), 0);
	ck_assert_uint_eq(r.index, 2);
	ck_assert_int_eq(decode(chg, sizeof chg, &r), 0);
	ck_assert_str_eq(r.value, "");
	ck_assert_int_eq(decode(fold, sizeof fold, &r), 0);
	ck_assert_int_eq(decode("hX-Spam\0yes", 11, &r), -1);	/* value not ended */
	ck_assert_int_eq(decode("hBad name\0v", 12, &r), -1);
	ck_assert_int_eq(decode("hX:Y\0v", 7, &r), -1);
	ck_assert_int_eq(decode("h\0v", 4, &r), -1);
	ck_assert_int_eq(decode("hX\0a\nb", 7, &r), -1);	/* LF not a fold */
	ck_assert_int_eq(decode("hX\0a\rb", 7, &r), -1);
	ck_assert_int_eq(decode("i\0\0\0X\0v", 8, &r), -1);	/* index cut */
	ck_assert_int_eq(decode("q\0", 2, &r), 0);
	ck_assert_int_eq(decode("qa\nb", 5, &r), -1);
}
END_TEST

START_TEST(header_fields)
{
	const char *h = "Subject: a\n\tb\nTo: x\n\nbody";
	size_t name;

	ck_assert_uint_eq(hdr_field(h, strlen(h), &name), 14);
	ck_assert_uint_eq(name, 7);
	ck_assert_uint_eq(hdr_field(h + 14, strlen(h) - 14, &name), 6);
	ck_assert_uint_eq(hdr_field(h + 20, strlen(h) - 20, &name), 0);
	ck_assert_uint_eq(hdr_field("not a header\n", 13, &name), 0);
	ck_assert_uint_eq(hdr_field(": x\n", 4, &name), 0);
	ck_assert_uint_eq(hdr_field("X: open", 7, &name), 7);
	ck_assert_uint_eq(hdr_field("X: y\n", 5, &name), 5);
	ck_assert_uint_eq(hdr_field("X", 1, &name), 0);
}
END_TEST

/* action - classify one "action=..." answer */
static int action(const char *s, struct paction *a)
{
	return policy_parse(s, strlen(s), a);
}

/* the answers policy_parse() classifies: 0 and a kind, or -1 (incomplete) */
static const struct { const char *in; int ret, kind; } answers[] = {
	{ "action=DUNNO\n\n", 0, PA_DUNNO }, { "action=ok\r\n\r\n", 0, PA_OK },
	{ "action=REJECT not here\n\n", 0, PA_REJECT },
	{ "action=DEFER_IF_PERMIT Greylisted\n\n", 0, PA_DEFER_IF_PERMIT },
	{ "action=DEFER\n\n", 0, PA_DEFER },
	{ "action=552 5.2.2 Mailbox is full\n\n", 0, PA_CODE },
	{ "action=PREPEND X-Greylist: delayed\n\n", 0, PA_PREPEND },
	{ "action=PREPEND nocolon\n\n", 0, PA_BAD }, { "action=250 fine\n\n", 0, PA_BAD },
	{ "action=DUNNOX\n\n", 0, PA_BAD },
	{ "action=REJECT a\tb\n\n", 0, PA_BAD },	/* a tab in the text */
	{ "action=DUNNO\n", -1, 0 },			/* no empty line */
	{ "foo=bar\n\n", -1, 0 },			/* no action */
	{ "garbage\n\n", -1, 0 }, { "\n", -1, 0 },
	{ "x=1\naction=OK\n\n", 0, PA_OK },
};

START_TEST(policy_answers)
{
	struct paction a;

	for (size_t i = 0; i < N(answers); i++) {
		ck_assert_msg(action(answers[i].in, &a) == answers[i].ret, "row %zu", i);
		ck_assert_msg(answers[i].ret || a.kind == answers[i].kind, "row %zu: kind %d",
		    i, a.kind);
	}
	ck_assert_int_eq(action("action=REJECT not here\n\n", &a), 0);
	ck_assert_int_eq((int)a.textlen, 8);
	ck_assert_int_eq(action("action=552 5.2.2 Mailbox is full\n\n", &a), 0);
	ck_assert_int_eq(a.code, 552);
}
END_TEST

Suite *check_suite(void)
{
	Suite *s = suite_create("filter_proto");
	TCase *tc = tcase_create("all");

	tcase_add_test(tc, build_packet);
	tcase_add_test(tc, packet_overflow);
	tcase_add_test(tc, frame_len);
	tcase_add_test(tc, decode_simple);
	tcase_add_test(tc, decode_optneg);
	tcase_add_test(tc, decode_replycode);
	tcase_add_test(tc, decode_headers);
	tcase_add_test(tc, header_fields);
	tcase_add_test(tc, policy_answers);
	suite_add_tcase(s, tc);
	return s;
}
