/*
 * check_rfc822.c - unit tests for rfc822.c (Check).
 *
 * cc -Wall -Wextra -I. -o /tmp/check_rfc822 tests/check_rfc822.c tests/check_common.c rfc822.c \
 *     $(pkg-config --cflags --libs check)
 *
 * Tables run as Check loop tests: every row is a test of its own, and a
 * failure names the offending input with its control and 8-bit octets
 * escaped.  Length-bounded functions get their input in a heap block
 * with no NUL after it, so an over-read shows under -fsanitize=address.
 */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rfc822.h"
#include "tests/check_common.h"

#define BIG		(10 * 1024)
#define T_EXAMPLE	((time_t)1795382859)	/* 2026-11-22 21:27:39 UTC */
#define D_EXAMPLE	"Sun, 22 Nov 2026 21:27:39 +0000"

/* ---- helpers ----------------------------------------------------------- */

/* printable rendering of a hostile string, for failure messages */
static const char *show(const char *s)
{
	static char buf[4][160];
	static int slot;
	char *b = buf[slot++ & 3], *o = b;

	if (s == NULL)
		return "(null)";
	for (; *s && o < b + sizeof buf[0] - 8; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 32 || c >= 127 || c == '\\')
			o += sprintf(o, "\\x%02x", c);
		else
			*o++ = (char)c;
	}
	strcpy(o, *s ? "..." : "");
	return b;
}

/* call f(s, strlen(s)) with s copied to a heap block without its NUL */
static int on_heap(int (*f)(const char *, size_t), const char *s)
{
	size_t n = strlen(s);
	char *b = malloc(n ? n : 1);
	int r;

	ck_assert_ptr_nonnull(b);
	memcpy(b, s, n);
	r = f(b, n);
	free(b);
	return r;
}

/* buf = n copies of c */
static char *rep(char *buf, char c, size_t n)
{
	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

/* buf = a valid domain of exactly n >= 3 octets (labels of 62 octets) */
static char *domain_of(char *buf, size_t n)
{
	rep(buf, 'a', n);
	for (size_t i = 62; i < n; i += 63)
		buf[i] = '.';
	if (buf[n - 1] == '.')
		buf[n - 1] = 'a', buf[n - 2] = '.';
	return buf;
}

/* buf = a valid General-address-literal "[x:yyy...]" of n >= 5 octets */
static char *literal_of(char *buf, size_t n)
{
	rep(buf, 'y', n);
	memcpy(buf, "[x:", 3);
	buf[n - 1] = ']';
	return buf;
}

/* rfc822_path (or, mailbox=1, rfc822_mailbox) on sprintf'd text */
static int parse_f(int mailbox, const char *fmt, const char *a, const char *b)
{
	static char s[4 * BIG];
	struct path p;
	const char *end;
	int n = snprintf(s, sizeof s, fmt, a, b), r;

	ck_assert_int_lt(n, (int)sizeof s);
	r = mailbox ? rfc822_mailbox(s, &p) : rfc822_path(s, &p, &end);
	/* what is accepted must be whole and within the limits */
	ck_assert_msg(r != 0 || ((mailbox || end == s + n) &&
	    strlen(p.local) <= LOCAL_MAX && strlen(p.domain) <= DOMAIN_MAX),
	    "accepted %s with a %zu-octet local part, %zu-octet domain", show(s),
	    strlen(p.local), strlen(p.domain));
	return r;
}
#define path_f(...)	parse_f(0, __VA_ARGS__)
#define mailbox_f(...)	parse_f(1, __VA_ARGS__)

/* the parse of a path that must be good */
static struct path parsed(const char *s)
{
	struct path p;
	const char *end;

	ck_assert_msg(rfc822_path(s, &p, &end) == 0, "rejected %s", show(s));
	return p;
}

static void use_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

struct yn { const char *in; int want; };

/* yn_is - the table row c holds for f (named fname), the input on the heap */
static void yn_is(int (*f)(const char *, size_t), const char *fname, const struct yn *c)
{
	ck_assert_msg(on_heap(f, c->in) == c->want, "%s(%s) != %d", fname, show(c->in),
	    c->want);
}

/* ---- rfc822_path ------------------------------------------------------- */

static const struct {
	const char *in, *local, *domain, *rest;
	int null, quoted, utf8;
} path_ok[] = {
	{ "<a@b.c>", "a", "b.c", "", 0, 0, 0 },
	{ "<john.doe@example.org> SIZE=10", "john.doe", "example.org", " SIZE=10", 0, 0, 0 },
	{ "<a@b>", "a", "b", "", 0, 0, 0 },
	{ "<a@b.c>>", "a", "b.c", ">", 0, 0, 0 },
	{ "<>", "", "", "", 1, 0, 0 },
	{ "<> BODY=8BITMIME", "", "", " BODY=8BITMIME", 1, 0, 0 },
	{ "<postmaster>", "postmaster", "", "", 0, 0, 0 },
	{ "<POSTMASTER>", "POSTMASTER", "", "", 0, 0, 0 },
	{ "<PostMaster> x", "PostMaster", "", " x", 0, 0, 0 },
	{ "<postmaster@example.com>", "postmaster", "example.com", "", 0, 0, 0 },
	{ "<!#$%&'*+-/=?^_`{|}~@x.y>", "!#$%&'*+-/=?^_`{|}~", "x.y", "", 0, 0, 0 },
	{ "<a.b.c@d-e.f>", "a.b.c", "d-e.f", "", 0, 0, 0 },
	{ "<\"john doe\"@x.y>", "\"john doe\"", "x.y", "", 0, 1, 0 },
	{ "<\"a\\\"b\"@c>", "\"a\\\"b\"", "c", "", 0, 1, 0 },
	{ "<\"a\\\\b\"@c>", "\"a\\\\b\"", "c", "", 0, 1, 0 },
	{ "<\"a\\ b\"@c>", "\"a\\ b\"", "c", "", 0, 1, 0 },
	{ "<\"a@b<>,;:()[].\"@c>", "\"a@b<>,;:()[].\"", "c", "", 0, 1, 0 },
	{ "<a@[1.2.3.4]>", "a", "[1.2.3.4]", "", 0, 0, 0 },
	{ "<a@[IPv6:2001:db8::1]>", "a", "[IPv6:2001:db8::1]", "", 0, 0, 0 },
	{ "<a@[x-tag:stuff]>", "a", "[x-tag:stuff]", "", 0, 0, 0 },
	/* source routes: accepted and ignored */
	{ "<@x.y,@z.w:a@b.c>", "a", "b.c", "", 0, 0, 0 },
	{ "<@x.y:a@b>", "a", "b", "", 0, 0, 0 },
	/* SMTPUTF8: valid UTF-8 in atext, qtext and labels */
	{ "<\xc3\xa9@b.c>", "\xc3\xa9", "b.c", "", 0, 0, 1 },
	{ "<a@b\xc3\xbc" "cher.de>", "a", "b\xc3\xbc" "cher.de", "", 0, 0, 1 },
	{ "<\"\xe2\x82\xac x\"@b>", "\"\xe2\x82\xac x\"", "b", "", 0, 1, 1 },
	{ "<\xf0\x9f\x98\x80@\xf0\x9f\x98\x80.de>", "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80.de", "", 0, 0, 1 },
};

START_TEST(path_accepts)
{
	struct path p;
	const char *end = NULL;

	memset(&p, 0x55, sizeof p);
	ck_assert_msg(rfc822_path(path_ok[_i].in, &p, &end) == 0, "rejected %s",
	    show(path_ok[_i].in));
	ck_assert_msg(end && strcmp(end, path_ok[_i].rest) == 0, "%s: *end at %s",
	    show(path_ok[_i].in), show(end));
	ck_assert_str_eq(p.local, path_ok[_i].local);
	ck_assert_str_eq(p.domain, path_ok[_i].domain);
	ck_assert_int_eq(p.null, path_ok[_i].null);
	ck_assert_int_eq(p.quoted, path_ok[_i].quoted);
	ck_assert_int_eq(p.utf8, path_ok[_i].utf8);
}
END_TEST

static const char *const path_bad[] = {
	"", "<", ">", "a@b.c>", " <a@b.c>", "<a@b.c", "<a@b.c ", "<a@b.c\r\n",
	"<a@b@c>", "<@b.c>", "<a@>", "<a>", "<abuse>", "<postmaste>",
	"<\"postmaster\">", "<postmaster@>", "< a@b.c>", "<a@b.c >", "<a b@c>",
	/* dot-string */
	"<a..b@c>", "<.a@c>", "<a.@c>", "<.@c>",
	/* specials outside quotes */
	"<a(b)@c>", "<a,b@c>", "<a[b@c>", "<a]b@c>", "<a\\b@c>", "<a:b@c>",
	"<a;b@c>", "<a<b@c>", "<a\"b\"@c>", "<\"a\"b@c>", "<\"a\".b@c>",
	/* quoted strings */
	"<\"unterminated@b>", "<\"a\\\"@b>", "<\"a\tb\"@c>", "<\"a\\\x01\"@c>",
	"<\"a\rb\"@c>", "<\"a\\\"", "<\"\\\xc3\xa9\"@c>", "<\"\x7f\"@c>",
	/* domains */
	"<a@-b.c>", "<a@b-.c>", "<a@b..c>", "<a@b.>", "<a@.b>", "<a@b_c.d>",
	"<a@b c>", "<a@b.c.>", "<a@-", "<a@b\n>",
	/* address literals */
	"<a@[1.2.3.4>", "<a@[300.1.1.1]>", "<a@1.2.3.4]>", "<a@[]>",
	"<a@[IPv6:::1>", "<a@[IPv6:1::2::3]>", "<a@[1.2.3.4]x>",
	/* SMTPUTF8 text may not hold line breaks or controls of any script */
	"<\"a\xe2\x80\xa8" "b\"@c>", "<a\xc2\x85@c>", "<a@b\xe2\x80\xa9.c>",
	"<\"a\xc2\x85X-Injected: y\"@c>",
	"<a@[1.2.3.4\xc3\xa9]>",
	/* source routes */
	"<@:a@b>", "<@x.y,a@b>", "<@x.y:>", "<@x.y,:a@b>", "<@x.y,@:a@b>",
	"<@-x.y:a@b>", "<@x.y:a@b", "<@x.y:<a@b>>", "<@x.y>", "<@x.y",
	/* control characters and 8-bit */
	"<a\r@b>", "<a\n@b>", "<a\x01@b>", "<a\x7f@b>", "<a@b\x1b>", "<a\t@b>",
	"<\xc3@b>", "<\xc0\x80@b>", "<\xed\xa0\x80@b>", "<\x80@b>", "<a@b\x80>",
	"<a@\xe2\x82.de>", "<\xf4\x90\x80\x80@b>", "<\xff@b>",
};

START_TEST(path_rejects)
{
	struct path p;
	const char *end = NULL;

	ck_assert_msg(rfc822_path(path_bad[_i], &p, &end) == -1, "accepted %s",
	    show(path_bad[_i]));
}
END_TEST

START_TEST(path_length_limits)
{
	char l[80], d[300];

	ck_assert_int_eq(path_f("<%s@%s>", rep(l, 'a', 64), "b"), 0);
	ck_assert_int_eq(path_f("<%s@%s>", rep(l, 'a', 65), "b"), -1);
	/* the quotes count: 62 + 2 is fine, 63 + 2 is not */
	ck_assert_int_eq(path_f("<\"%s\"@%s>", rep(l, 'x', 62), "b"), 0);
	ck_assert_int_eq(path_f("<\"%s\"@%s>", rep(l, 'x', 63), "b"), -1);
	ck_assert_int_eq(path_f("<a@%s.%s>", rep(d, 'd', 63), "c"), 0);
	ck_assert_int_eq(path_f("<a@%s.%s>", rep(d, 'd', 64), "c"), -1);
	/* "<a@" + domain + ">" is at most 256 octets */
	ck_assert_int_eq(path_f("<%s@%s>", "a", domain_of(d, 252)), 0);
	ck_assert_int_eq(path_f("<%s@%s>", "a", domain_of(d, 253)), -1);
	ck_assert_int_eq(path_f("<%s@%s>", "a", literal_of(d, 252)), 0);
	ck_assert_int_eq(path_f("<%s@%s>", "a", literal_of(d, 256)), -1);
	/* local part and domain each within limits, the whole path not */
	ck_assert_int_eq(path_f("<%s@%s>", rep(l, 'a', 64), domain_of(d, 189)), 0);
	ck_assert_int_eq(path_f("<%s@%s>", rep(l, 'a', 64), domain_of(d, 190)), -1);
}
END_TEST

START_TEST(path_hostile_10k)
{
	static char big[BIG + 1], dom[BIG + 1];

	rep(big, 'a', BIG);
	ck_assert_int_eq(path_f("<%s@%s>", big, "b"), -1);
	ck_assert_int_eq(path_f("<%s@%s>", "a", domain_of(dom, BIG)), -1);
	ck_assert_int_eq(path_f("<\"%s%s>", big, ""), -1);	/* unterminated " */
	ck_assert_int_eq(path_f("<%s@[%s]>", "a", big), -1);
	ck_assert_int_eq(path_f("<%s@%s", "a", big), -1);	/* no '>' */
	ck_assert_int_eq(path_f("<@%s:%s@b>", domain_of(dom, BIG), "a"), -1);
	ck_assert_int_eq(path_f("%s%s", rep(big, '<', BIG), ""), -1);
}
END_TEST

/* ---- rfc822_mailbox ---------------------------------------------------- */

/* every mailbox of path_ok, without its brackets, is a mailbox */
START_TEST(mailbox_accepts)
{
	char s[80];
	size_t n = strlen(path_ok[_i].in);
	struct path p;

	if (path_ok[_i].null || path_ok[_i].rest[0] || path_ok[_i].in[1] == '@')
		return;		/* "<>", text after '>', source route */
	memcpy(s, path_ok[_i].in + 1, n - 2);
	s[n - 2] = '\0';
	ck_assert_msg(rfc822_mailbox(s, &p) == 0, "rejected %s", show(s));
	ck_assert_str_eq(p.local, path_ok[_i].local);
	ck_assert_str_eq(p.domain, path_ok[_i].domain);
	ck_assert(p.null == 0 && p.quoted == path_ok[_i].quoted &&
	    p.utf8 == path_ok[_i].utf8);
}
END_TEST

static const char *const mailbox_bad[] = {
	"", "a", "postmaste", "@b", "a@", "<a@b.c>", "a@b.c>", "<a@b.c",
	"a@b.c ", " a@b.c", "a@b.c\r\n", "a@b.c\n", "a@b@c", "<>", "@x:a@b",
	"a..b@c", "a@b.", "a@[1.2.3.4", "\"a@b", "a\x01@b", "\xc3@b",
	"postmaster ", "postmaster\r", "a@b\x7f",
};

START_TEST(mailbox_rejects)
{
	struct path p;

	ck_assert_msg(rfc822_mailbox(mailbox_bad[_i], &p) == -1, "accepted %s",
	    show(mailbox_bad[_i]));
}
END_TEST

START_TEST(mailbox_limits)
{
	static char s[BIG + 1];
	char l[80];

	ck_assert_int_eq(mailbox_f("%s@%s", rep(l, 'a', 64), "b"), 0);
	ck_assert_int_eq(mailbox_f("%s@%s", rep(l, 'a', 65), "b"), -1);
	ck_assert_int_eq(mailbox_f("%s@%s", "a", domain_of(s, 255)), 0);
	ck_assert_int_eq(mailbox_f("%s@%s", "a", domain_of(s, 256)), -1);
	ck_assert_int_eq(mailbox_f("%s@%s", "a", literal_of(s, 255)), 0);
	ck_assert_int_eq(mailbox_f("%s@%s", "a", literal_of(s, 256)), -1);
	ck_assert_int_eq(mailbox_f("%s@%s", "a", domain_of(s, BIG)), -1);
	ck_assert_int_eq(mailbox_f("%s@%s", rep(s, 'a', BIG), "b"), -1);
}
END_TEST

/* ---- rfc822_domain ----------------------------------------------------- */

static const struct yn domain_cases[] = {
	{ "example.com", 1 }, { "a", 1 }, { "EXAMPLE.COM", 1 }, { "a-b.c", 1 },
	{ "xn--bcher-kva.de", 1 }, { "a.b-c", 1 }, { "1.2.3.4", 1 },
	{ "3com.net", 1 }, { "b\xc3\xbc" "cher.de", 1 }, { "\xe2\x82\xac.eu", 1 },
	{ "", 0 }, { ".", 0 }, { "-a", 0 }, { "a-", 0 }, { "a.-b", 0 },
	{ "a.b-", 0 }, { "a..b", 0 }, { ".a", 0 }, { "a.", 0 }, { "a_b", 0 },
	{ "a b", 0 }, { "a\r", 0 }, { "a\n.b", 0 }, { "a\x7f", 0 },
	{ "[1.2.3.4]", 0 }, { "a@b", 0 }, { "b\xc3.de", 0 },
	{ "\xc0\x80.de", 0 }, { "\xed\xa0\x80.de", 0 }, { "a\x80", 0 },
	{ "\xff", 0 },
};

START_TEST(domain_table)
{
	yn_is(rfc822_domain, "rfc822_domain", &domain_cases[_i]);
}
END_TEST

START_TEST(domain_limits)
{
	static char d[BIG + 1];
	char u[80];

	ck_assert_int_eq(on_heap(rfc822_domain, rep(d, 'a', 63)), 1);
	ck_assert_int_eq(on_heap(rfc822_domain, rep(d, 'a', 64)), 0);
	ck_assert_int_eq(on_heap(rfc822_domain, domain_of(d, 255)), 1);
	ck_assert_int_eq(on_heap(rfc822_domain, domain_of(d, 256)), 0);
	ck_assert_int_eq(on_heap(rfc822_domain, domain_of(d, BIG)), 0);
	/* labels count octets: 32 x U+00E9 is 64 octets, 31 of them + "a" 63 */
	for (int i = 0; i < 32; i++)
		memcpy(u + 2 * i, "\xc3\xa9", 2);
	u[64] = '\0';
	ck_assert_int_eq(on_heap(rfc822_domain, u), 0);
	strcpy(u + 62, "a");
	ck_assert_int_eq(on_heap(rfc822_domain, u), 1);
	/* only s[0..len) counts */
	ck_assert_int_eq(rfc822_domain("a.b.c", 3), 1);
	ck_assert_int_eq(rfc822_domain("a-", 1), 1);
	ck_assert_int_eq(rfc822_domain("a.b", 2), 0);
	ck_assert_int_eq(rfc822_domain("abc", 0), 0);
}
END_TEST

/* ---- rfc822_addr_literal ----------------------------------------------- */

static const struct yn literal_cases[] = {
	/* IPv4 */
	{ "[1.2.3.4]", 1 }, { "[0.0.0.0]", 1 }, { "[255.255.255.255]", 1 },
	{ "[256.1.1.1]", 0 }, { "[300.1.1.1]", 0 }, { "[1.2.3.256]", 0 },
	{ "[1.2.3]", 0 }, { "[1.2.3.4.5]", 0 }, { "[1.2.3.]", 0 }, { "[.1.2.3]", 0 },
	{ "[1..2.3]", 0 }, { "[1234.1.1.1]", 0 }, { "[ 1.2.3.4]", 0 },
	{ "[1.2.3.4 ]", 0 }, { "[-1.2.3.4]", 0 }, { "[+1.2.3.4]", 0 },
	{ "[1.2.3.4a]", 0 }, { "[0x1.2.3.4]", 0 }, { "[1.2.3.4\n]", 0 },
	{ "1.2.3.4", 0 }, { "[1.2.3.4", 0 }, { "1.2.3.4]", 0 }, { "[]", 0 },
	{ "[", 0 }, { "", 0 }, { "[1.2.3.4]]", 0 }, { "[[1.2.3.4]", 0 },
	/* IPv6 */
	{ "[IPv6:::1]", 1 }, { "[IPv6:::]", 1 }, { "[IPv6:2001:db8::1]", 1 },
	{ "[ipv6:2001:DB8:0:0:0:0:0:1]", 1 }, { "[IPV6:fe80::]", 1 },
	{ "[IPv6:1:2:3:4:5:6:7:8]", 1 }, { "[IPv6:ffff:FFFF::ffff]", 1 },
	{ "[IPv6:::ffff:1.2.3.4]", 1 }, { "[IPv6:::1.2.3.4]", 1 },
	{ "[IPv6:1:2:3:4:5:6:1.2.3.4]", 1 },
	{ "[IPv6:]", 0 }, { "[IPv6:1:2:3:4:5:6:7]", 0 },
	{ "[IPv6:1:2:3:4:5:6:7:8:9]", 0 }, { "[IPv6:1::2::3]", 0 },
	{ "[IPv6:12345::]", 0 }, { "[IPv6:g::1]", 0 }, { "[IPv6::1]", 0 },
	{ "[IPv6:1:]", 0 }, { "[IPv6:1.2.3.4]", 0 }, { "[IPv6:::ffff:300.1.1.1]", 0 },
	{ "[IPv6:::1.2.3]", 0 }, { "[IPv6:1:2:3:4:5:6:7:1.2.3.4]", 0 },
	{ "[IPv6:::1", 0 }, { "[IPv6: ::1]", 0 }, { "[IPv6:zzz]", 0 },
	{ "[IPv6:::1\r]", 0 }, { "[IPv6:::::]", 0 }, { "[ipv6:zzz]", 0 },
	{ "[IPV6:1::2::3]", 0 },
	/* General-address-literal */
	{ "[x-tag:abc]", 1 }, { "[tag:!\"#~]", 1 }, { "[X1:a:b:c]", 1 },
	{ "[tag:a b]", 0 }, { "[tag:a[b]", 0 }, { "[tag:a\\b]", 0 },
	{ "[tag:a]b]", 0 }, { "[tag-:x]", 0 }, { "[tag:]", 0 }, { "[:x]", 0 },
	{ "[t_g:x]", 0 }, { "[tag:a\x01]", 0 }, { "[tag:a\x7f]", 0 },
	{ "[tag:\xc3\xa9]", 0 }, { "[t\xc3\xa9g:x]", 0 }, { "[tag:x", 0 },
};

START_TEST(literal_table)
{
	yn_is(rfc822_addr_literal, "rfc822_addr_literal", &literal_cases[_i]);
}
END_TEST

START_TEST(literal_hostile)
{
	static char big[BIG + 1];

	rep(big, '1', BIG);
	big[0] = '[', big[BIG - 1] = ']';
	ck_assert_int_eq(on_heap(rfc822_addr_literal, big), 0);
	memcpy(big, "[IPv6:", 6);
	ck_assert_int_eq(on_heap(rfc822_addr_literal, big), 0);
	ck_assert_int_eq(rfc822_addr_literal("[1.2.3.4]", 8), 0);
}
END_TEST

/* ---- rfc822_helo ------------------------------------------------------- */

static const struct yn helo_cases[] = {
	{ "a", 1 }, { "mx.example.org", 1 }, { "[192.0.2.1]", 1 },
	{ "[IPv6:::1]", 1 }, { "under_score.example", 1 }, { "b\xc3\xbc" "cher.de", 1 },
	{ "under_score!", 0 }, { "a.", 0 }, { ".a", 0 }, { "a..b", 0 }, { "-a.b", 0 },
	{ "a-.b", 0 }, { "a:b", 0 }, { "a=b", 0 }, { "a>b", 0 }, { "\"a\"", 0 },
	{ "[300.1.1.1]", 0 }, { "[1.2.3.4", 0 }, { "[IPvb8:=1]", 0 }, { "[x-tag:a<b>]", 0 },
	{ "", 0 }, { "x y", 0 }, { "x\r", 0 }, { "x\n", 0 }, { "x\r\nBcc: y", 0 },
	{ "x\t", 0 }, { "\x01", 0 }, { "x\x7f", 0 }, { "\x1b[31m", 0 },
	{ "\xc3", 0 }, { "\xc0\x80", 0 }, { "\xed\xa0\x80", 0 }, { "\x80", 0 },
	{ "a\xe2\x82", 0 },
	/* the audit's name: C1 NEL and the Unicode line and paragraph separators */
	{ "evil\xc2\x85X-Injected:\xe2\x80\xa8Y-Injected:", 0 },
	{ "a\xc2\x85" "b", 0 }, { "a\xe2\x80\xa8" "b", 0 }, { "a\xe2\x80\xa9" "b", 0 },
	{ "a\xc2\x9b" "b", 0 }, { "a\xe2\x80\x8b" "b", 0 }, { "a\xef\xbb\xbf" "b", 0 },
};

/* EHLO, which an SMTPUTF8 client may use for its U-label name */
START_TEST(helo_table)
{
	ck_assert_msg(rfc822_helo(helo_cases[_i].in, 1) == helo_cases[_i].want,
	    "rfc822_helo(%s) != %d", show(helo_cases[_i].in), helo_cases[_i].want);
}
END_TEST

/* HELO: ASCII only (no extensions, so never SMTPUTF8) */
START_TEST(helo_ascii_only)
{
	ck_assert_int_eq(rfc822_helo("mx.example.org", 0), 1);
	ck_assert_int_eq(rfc822_helo("b\xc3\xbc" "cher.de", 0), 0);
	ck_assert_int_eq(rfc822_helo("[IPv6:2001:db8::1]", 0), 1);
}
END_TEST

START_TEST(helo_length)
{
	static char h[BIG + 1];
	int i;

	for (i = 0; i < 255; i++)
		h[i] = i % 2 ? '.' : 'h';	/* h.h.h...h: 255 octets */
	h[255] = '\0';
	ck_assert_int_eq(rfc822_helo(h, 1), 1);
	h[255] = 'h', h[256] = '\0';
	ck_assert_int_eq(rfc822_helo(h, 1), 0);
	ck_assert_int_eq(rfc822_helo(rep(h, 'h', 63), 1), 1);	/* a label: 63 */
	ck_assert_int_eq(rfc822_helo(rep(h, 'h', 64), 1), 0);
	ck_assert_int_eq(rfc822_helo(rep(h, 'h', BIG), 1), 0);
}
END_TEST

/* ---- rfc822_params ----------------------------------------------------- */

#define MAIL 1
#define RCPT 0
#define OK(s, size, body, u8)	{ s, MAIL, PARAM_OK, size, body, u8 }
#define BAD(s, is_mail, r)	{ s, is_mail, r, -1, BODY_NONE, 0 }
static const struct {
	const char *in;
	int is_mail, want;
	long size;
	int body, smtputf8;
} param_cases[] = {
	OK("", -1, BODY_NONE, 0), OK("   ", -1, BODY_NONE, 0),
	OK("SIZE=1000", 1000, BODY_NONE, 0), OK("  size=0", 0, BODY_NONE, 0),
	OK("SIZE=007", 7, BODY_NONE, 0),
	OK("SIZE=00000000000000000001", 1, BODY_NONE, 0),	/* 20 digits */
	OK("BODY=7BIT", -1, BODY_7BIT, 0), OK("body=8bitmime", -1, BODY_8BITMIME, 0),
	OK("Body=8BitMime", -1, BODY_8BITMIME, 0),
	OK("SMTPUTF8", -1, BODY_NONE, 1), OK("smtputf8", -1, BODY_NONE, 1),
	OK("SIZE=10  BODY=8BITMIME   SMTPUTF8", 10, BODY_8BITMIME, 1),
	OK(" SMTPUTF8 BODY=7BIT SIZE=5", 5, BODY_7BIT, 1),
	{ "", RCPT, PARAM_OK, -1, BODY_NONE, 0 },
	/* malformed */
	BAD("SIZE=", MAIL, PARAM_SYNTAX), BAD("SIZE", MAIL, PARAM_SYNTAX),
	BAD("SIZE=12a", MAIL, PARAM_SYNTAX), BAD("SIZE=-1", MAIL, PARAM_SYNTAX),
	BAD("SIZE=+1", MAIL, PARAM_SYNTAX), BAD("SIZE= 1", MAIL, PARAM_SYNTAX),
	BAD("SIZE=000000000000000000001", MAIL, PARAM_SYNTAX),	/* 21 digits */
	BAD("SIZE=99999999999999999999", MAIL, PARAM_SYNTAX),	/* > LONG_MAX */
	BAD("BODY=BINARYMIME", MAIL, PARAM_SYNTAX), BAD("BODY=", MAIL, PARAM_SYNTAX),
	BAD("BODY", MAIL, PARAM_SYNTAX), BAD("BODY=8BITMIMEX", MAIL, PARAM_SYNTAX),
	BAD("SMTPUTF8=yes", MAIL, PARAM_SYNTAX), BAD("SMTPUTF8=", MAIL, PARAM_SYNTAX),
	BAD("=x", MAIL, PARAM_SYNTAX), BAD("=", MAIL, PARAM_SYNTAX),
	BAD("=x", RCPT, PARAM_SYNTAX), BAD("NOTIFY=\r", RCPT, PARAM_SYNTAX),
	BAD("SIZE=1\r", MAIL, PARAM_SYNTAX), BAD("SIZE=1\r\n", MAIL, PARAM_SYNTAX),
	BAD("SIZE=1\tBODY=7BIT", MAIL, PARAM_SYNTAX), BAD("\x01", MAIL, PARAM_SYNTAX),
	BAD("BODY=7BIT\x7f", MAIL, PARAM_SYNTAX), BAD("SIZE=1\x1b", MAIL, PARAM_SYNTAX),
	/* repeated */
	BAD("SIZE=1 SIZE=2", MAIL, PARAM_SYNTAX),
	BAD("BODY=7BIT body=7bit", MAIL, PARAM_SYNTAX),
	BAD("SMTPUTF8 SMTPUTF8", MAIL, PARAM_SYNTAX),
	/* unknown */
	BAD("FOO=bar", MAIL, PARAM_UNKNOWN), BAD("RET=HDRS", MAIL, PARAM_UNKNOWN),
	BAD("AUTH=<>", MAIL, PARAM_UNKNOWN), BAD("X-FOO", MAIL, PARAM_UNKNOWN),
	BAD("SIZE=1 ENVID=x", MAIL, PARAM_UNKNOWN),
	BAD("NOTIFY=NEVER", RCPT, PARAM_UNKNOWN), BAD("SIZE=10", RCPT, PARAM_UNKNOWN),
	BAD("SMTPUTF8", RCPT, PARAM_UNKNOWN), BAD("BODY=7BIT", RCPT, PARAM_UNKNOWN),
};

START_TEST(params_table)
{
	struct params p = { 12345, 99, 99 };
	int r = rfc822_params(param_cases[_i].in, &p, param_cases[_i].is_mail);

	ck_assert_msg(r == param_cases[_i].want, "rfc822_params(%s, %s) = %d",
	    show(param_cases[_i].in), param_cases[_i].is_mail ? "MAIL" : "RCPT", r);
	if (r == PARAM_OK) {
		ck_assert_int_eq(p.size, param_cases[_i].size);
		ck_assert_int_eq(p.body, param_cases[_i].body);
		ck_assert_int_eq(p.smtputf8, param_cases[_i].smtputf8);
	}
}
END_TEST

START_TEST(params_size_fits_in_long)
{
	char buf[64];
	struct params p;

	snprintf(buf, sizeof buf, "SIZE=%ld", LONG_MAX);
	ck_assert_int_eq(rfc822_params(buf, &p, MAIL), PARAM_OK);
	ck_assert_int_eq(p.size, LONG_MAX);
	buf[strlen(buf) - 1]++;		/* LONG_MAX ends in 7: now LONG_MAX + 1 */
	ck_assert_int_eq(rfc822_params(buf, &p, MAIL), PARAM_SYNTAX);
}
END_TEST

START_TEST(params_hostile_10k)
{
	static char buf[BIG + 1];
	struct params p;

	memcpy(rep(buf, '9', BIG), "SIZE=", 5);
	ck_assert_int_eq(rfc822_params(buf, &p, MAIL), PARAM_SYNTAX);
	for (size_t i = 0; i + 4 <= BIG; i += 4)
		memcpy(buf + i, "X=1 ", 4);
	ck_assert_int_eq(rfc822_params(buf, &p, MAIL), PARAM_UNKNOWN);
	ck_assert_int_eq(rfc822_params(rep(buf, ' ', BIG), &p, MAIL), PARAM_OK);
}
END_TEST

/* ---- rfc822_utf8_valid ------------------------------------------------- */

static const struct yn utf8_cases[] = {
	{ "", 1 }, { "plain ascii\r\n\x01\x7f", 1 },
	{ "\xc3\xa9", 1 }, { "\xe2\x82\xac", 1 }, { "\xf0\x9f\x98\x80", 1 },
	{ "\xc2\x80", 1 }, { "\xdf\xbf", 1 }, { "\xe0\xa0\x80", 1 },
	{ "\xed\x9f\xbf", 1 }, { "\xee\x80\x80", 1 }, { "\xef\xbf\xbf", 1 },
	{ "\xf0\x90\x80\x80", 1 }, { "\xf4\x8f\xbf\xbf", 1 },
	/* overlong */
	{ "\xc0\x80", 0 }, { "\xc1\xbf", 0 }, { "\xe0\x80\x80", 0 },
	{ "\xe0\x9f\xbf", 0 }, { "\xf0\x80\x80\x80", 0 }, { "\xf0\x8f\xbf\xbf", 0 },
	/* surrogates, also as a CESU-8 pair */
	{ "\xed\xa0\x80", 0 }, { "\xed\xbf\xbf", 0 },
	{ "\xed\xa0\xbd\xed\xb8\x80", 0 },
	/* above U+10FFFF, impossible lead octets */
	{ "\xf4\x90\x80\x80", 0 }, { "\xf5\x80\x80\x80", 0 },
	{ "\xf8\x88\x80\x80\x80", 0 }, { "\xfe", 0 }, { "\xff", 0 },
	/* lone continuation, truncated, interrupted */
	{ "\x80", 0 }, { "\xbf", 0 }, { "a\x80z", 0 }, { "\xc3", 0 },
	{ "\xe2\x82", 0 }, { "\xf0\x9f\x98", 0 }, { "\xc3" "A", 0 },
	{ "\xe2\x82" "A", 0 }, { "\xc3\xa9\xa9", 0 },
};

START_TEST(utf8_table)
{
	yn_is(rfc822_utf8_valid, "rfc822_utf8_valid", &utf8_cases[_i]);
}
END_TEST

START_TEST(utf8_reads_only_len_octets)
{
	ck_assert_int_eq(rfc822_utf8_valid("\xc3\xa9", 1), 0);	/* truncated */
	ck_assert_int_eq(rfc822_utf8_valid("a\xff", 1), 1);
	ck_assert_int_eq(rfc822_utf8_valid("\xff", 0), 1);
}
END_TEST

/* ---- rfc822_local_unquote and rfc822_address --------------------------- */

static const struct { const char *path, *unquoted, *address; } forms[] = {
	{ "<\"a\\\"b\"@c>", "a\"b", "\"a\\\"b\"@c" },
	{ "<\"john\"@x>", "john", "\"john\"@x" },
	{ "<john.doe@x>", "john.doe", "john.doe@x" },
	{ "<\"a\\\\b\"@x>", "a\\b", "\"a\\\\b\"@x" },
	{ "<\"a b\"@x>", "a b", "\"a b\"@x" },
	{ "<\"\\a\\b\"@x>", "ab", "\"\\a\\b\"@x" },
	{ "<PostMaster>", "PostMaster", "PostMaster" },
	{ "<a@[1.2.3.4]>", "a", "a@[1.2.3.4]" },
	{ "<@x.y:a@b>", "a", "a@b" },
	{ "<\xc3\xa9@b>", "\xc3\xa9", "\xc3\xa9@b" },
};

/* form_is - f writes the form of path's address that want shows, all of it */
static void form_is(size_t (*f)(const struct path *, char *, size_t), const char *path,
    size_t cap, const char *want)
{
	struct path p = parsed(path);
	char dst[ADDR_MAX];

	memset(dst, 'Z', sizeof dst);
	ck_assert_uint_eq(f(&p, dst, cap), strlen(want));
	ck_assert_str_eq(dst, want);
}

START_TEST(unquote_table)
{
	form_is(rfc822_local_unquote, forms[_i].path, LOCAL_MAX + 3, forms[_i].unquoted);
}
END_TEST

START_TEST(unquote_capacity)
{
	struct path p = parsed("<\"john\"@x>");
	char dst[8];

	ck_assert_uint_eq(rfc822_local_unquote(&p, dst, 5), 4);
	ck_assert_str_eq(dst, "john");
	ck_assert_uint_eq(rfc822_local_unquote(&p, dst, 4), 0);
	ck_assert_uint_eq(rfc822_local_unquote(&p, dst, 0), 0);
	p = parsed("<\"a\\\"b\"@x>");
	ck_assert_uint_eq(rfc822_local_unquote(&p, dst, 4), 3);
	ck_assert_str_eq(dst, "a\"b");
}
END_TEST

START_TEST(address_table)
{
	form_is(rfc822_address, forms[_i].path, ADDR_MAX, forms[_i].address);
}
END_TEST

START_TEST(address_null_and_capacity)
{
	struct path p = parsed("<>");
	char dst[ADDR_MAX], l[80], d[200], s[300];

	dst[0] = 'Z';
	ck_assert_uint_eq(rfc822_address(&p, dst, sizeof dst), 0);
	ck_assert_str_eq(dst, "");
	p = parsed("<a@b.c>");
	ck_assert_uint_eq(rfc822_address(&p, dst, 6), 5);
	ck_assert_str_eq(dst, "a@b.c");
	ck_assert_uint_eq(rfc822_address(&p, dst, 5), 0);
	ck_assert_uint_eq(rfc822_address(&p, dst, 0), 0);
	/* the longest path's address fits ADDR_MAX */
	snprintf(s, sizeof s, "<%s@%s>", rep(l, 'a', 64), domain_of(d, 189));
	p = parsed(s);
	ck_assert_uint_eq(rfc822_address(&p, dst, sizeof dst), 64 + 1 + 189);
}
END_TEST

/* ---- rfc822_safe ------------------------------------------------------- */

static const struct { const char *src; size_t len, cap; const char *want; } safe_cases[] = {
	{ "abc", 3, 64, "abc" }, { "", 0, 64, "" }, { "abc", 2, 64, "ab" },
	{ "a\r\nb", 4, 64, "a??b" }, { "x\r\nBcc: y", 9, 64, "x??Bcc: y" },
	{ "\t\x01\x1b\x1f\x7f", 5, 64, "?????" }, { "a\0b", 3, 64, "a?b" },
	{ "\xc3\xa9t\xc3\xa9", 5, 64, "\xc3\xa9t\xc3\xa9" },
	{ "\xf0\x9f\x98\x80", 4, 64, "\xf0\x9f\x98\x80" },
	/* bad UTF-8: every octet of it becomes '?' */
	{ "\xc3", 1, 64, "?" }, { "\xc3" "A", 2, 64, "?A" }, { "\x80", 1, 64, "?" },
	{ "\xc0\x80", 2, 64, "??" }, { "\xed\xa0\x80", 3, 64, "???" },
	{ "\xe2\x82", 2, 64, "??" }, { "\xff\xfe", 2, 64, "??" },
	/* truncation to cap - 1, never inside a UTF-8 sequence */
	{ "abcdef", 6, 4, "abc" }, { "abc", 3, 1, "" },
	{ "a\xc3\xa9", 3, 3, "a" }, { "a\xc3\xa9", 3, 4, "a\xc3\xa9" },
	{ "\xe2\x82\xac", 3, 3, "" }, { "\xe2\x82\xac", 3, 4, "\xe2\x82\xac" },
	{ "\xf0\x9f\x98\x80z", 5, 4, "" },
	/* line breaks of Unicode readers and invisible controls: one '?' each */
	{ "a\xc2\x85" "b", 4, 64, "a?b" }, { "a\xe2\x80\xa8" "b", 5, 64, "a?b" },
	{ "a\xe2\x80\xa9" "b", 5, 64, "a?b" }, { "\xc2\x80\xc2\x9f", 4, 64, "??" },
	{ "a\xe2\x80\xae" "b", 5, 64, "a?b" }, { "\xc2\xa0", 2, 64, "?" },
};

START_TEST(safe_table)
{
	char dst[64];
	size_t n;

	memset(dst, 'Z', sizeof dst);
	n = rfc822_safe(dst, safe_cases[_i].cap, safe_cases[_i].src, safe_cases[_i].len);
	ck_assert_msg(n == strlen(safe_cases[_i].want) && strcmp(dst, safe_cases[_i].want) == 0,
	    "rfc822_safe(%s, cap %zu) = %s", show(safe_cases[_i].src), safe_cases[_i].cap,
	    show(dst));
}
END_TEST

START_TEST(safe_hostile_10k)
{
	static char src[BIG + 1];
	char dst[100] = "ZZZ", q[100];
	char *raw = malloc(BIG);	/* no NUL after it */

	ck_assert_uint_eq(rfc822_safe(dst, 0, "abc", 3), 0);
	ck_assert_str_eq(dst, "ZZZ");	/* cap 0: untouched */
	ck_assert_uint_eq(rfc822_safe(dst, sizeof dst, rep(src, '\n', BIG), BIG), 99);
	ck_assert_str_eq(dst, rep(q, '?', 99));
	ck_assert_ptr_nonnull(raw);
	memset(raw, 'x', BIG);
	ck_assert_uint_eq(rfc822_safe(dst, sizeof dst, raw, BIG), 99);
	ck_assert_uint_eq(strlen(dst), 99);
	free(raw);
}
END_TEST

/* ---- rfc822_date ------------------------------------------------------- */

START_TEST(date_utc)
{
	char dst[64];

	use_tz("UTC0");
	ck_assert_uint_eq(rfc822_date(dst, sizeof dst, T_EXAMPLE), 31);
	ck_assert_str_eq(dst, D_EXAMPLE);
	ck_assert_uint_eq(rfc822_date(dst, sizeof dst, 0), strlen(dst));
	/* RFC 5322 day is 1*2DIGIT: either form is right */
	ck_assert_msg(strcmp(dst, "Thu, 01 Jan 1970 00:00:00 +0000") == 0 ||
	    strcmp(dst, "Thu, 1 Jan 1970 00:00:00 +0000") == 0, "epoch: %s", dst);
	ck_assert_uint_eq(rfc822_date(dst, 32, T_EXAMPLE), 31);
	ck_assert_uint_eq(rfc822_date(dst, 31, T_EXAMPLE), 0);
	ck_assert_uint_eq(rfc822_date(dst, 0, T_EXAMPLE), 0);
}
END_TEST

START_TEST(date_local_offsets)
{
	char dst[64];

	use_tz("IST-5:30");
	rfc822_date(dst, sizeof dst, T_EXAMPLE);
	ck_assert_str_eq(dst, "Mon, 23 Nov 2026 02:57:39 +0530");
	use_tz("EST5");
	rfc822_date(dst, sizeof dst, T_EXAMPLE);
	ck_assert_str_eq(dst, "Sun, 22 Nov 2026 16:27:39 -0500");
	use_tz("NST3:30");
	rfc822_date(dst, sizeof dst, T_EXAMPLE);
	ck_assert_str_eq(dst, "Sun, 22 Nov 2026 17:57:39 -0330");
}
END_TEST

/* ---- rfc822_header_is -------------------------------------------------- */

static const struct { const char *line, *name; int want; } header_cases[] = {
	{ "Received: x", "Received", 1 }, { "received :x", "Received", 1 },
	{ "RECEIVED\t:x", "received", 1 }, { "Received \t :", "Received", 1 },
	{ "Received:", "Received", 1 }, { "Subject: Received: x", "Subject", 1 },
	{ "Received-SPF: x", "Received", 0 }, { "X-Received: x", "Received", 0 },
	{ "Received x", "Received", 0 }, { "Received", "Received", 0 },
	{ "", "Received", 0 }, { "Rec: x", "Received", 0 },
	{ " Received: x", "Received", 0 }, { "\tReceived: x", "Received", 0 },
	{ "Receivedx: y", "Received", 0 }, { "Received\r\n: x", "Received", 0 },
	{ "Received\n", "Received", 0 },
};

START_TEST(header_table)
{
	size_t len = strlen(header_cases[_i].line);
	char *b = malloc(len ? len : 1);	/* no NUL after the line */
	int r;

	ck_assert_ptr_nonnull(b);
	memcpy(b, header_cases[_i].line, len);
	r = rfc822_header_is(b, len, header_cases[_i].name);
	free(b);
	ck_assert_msg(r == header_cases[_i].want, "rfc822_header_is(%s, %s) = %d",
	    show(header_cases[_i].line), header_cases[_i].name, r);
}
END_TEST

START_TEST(header_reads_only_len_octets)
{
	ck_assert_int_eq(rfc822_header_is("Received: x", 8, "Received"), 0);
	ck_assert_int_eq(rfc822_header_is("Received: x", 9, "Received"), 1);
	ck_assert_int_eq(rfc822_header_is("Rec", 3, "Received"), 0);
}
END_TEST

/* ---- rfc822_received --------------------------------------------------- */

#define BY	"\tby smtpd.example.net (smtpd) with ESMTP id ABC123"

static struct received sample(void)
{
	struct received r = { "mx.example.org", "192.0.2.1", "smtpd.example.net",
	    "ESMTP", "ABC123", "a@b.c", T_EXAMPLE, NULL, 0, NULL };

	use_tz("UTC0");
	return r;
}

static void received_is(const struct received *r, const char *want)
{
	char dst[512];

	memset(dst, 'Z', sizeof dst);
	ck_assert_uint_eq(rfc822_received(dst, sizeof dst, r), strlen(want));
	ck_assert_str_eq(dst, want);
}

static int count_char(const char *s, char c)
{
	int n = 0;

	for (; *s; s++)
		n += *s == c;
	return n;
}

START_TEST(received_format)
{
	struct received r = sample();

	received_is(&r, "Received: from mx.example.org ([192.0.2.1])\n"
	    BY "\n\tfor <a@b.c>; " D_EXAMPLE "\n");
	r.rcpt = NULL;
	received_is(&r, "Received: from mx.example.org ([192.0.2.1])\n"
	    BY "; " D_EXAMPLE "\n");
	r.addr = "2001:db8::1";
	r.helo = NULL;
	received_is(&r, "Received: from unknown ([IPv6:2001:db8::1])\n"
	    BY "; " D_EXAMPLE "\n");
	r.helo = "";
	received_is(&r, "Received: from unknown ([IPv6:2001:db8::1])\n"
	    BY "; " D_EXAMPLE "\n");
	/* after STARTTLS: Postfix's "(using ...)" line after "from" */
	r.tls = "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))";
	r.with = "ESMTPS";
	received_is(&r, "Received: from unknown ([IPv6:2001:db8::1])\n"
	    "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\n"
	    "\tby smtpd.example.net (smtpd) with ESMTPS id ABC123; " D_EXAMPLE "\n");
	r.tls = NULL;
	r.with = "ESMTP";
	/* the client's confirmed PTR name, or "unknown" after a lookup */
	r.helo = "mx.example.org";
	r.name = "mail.example.org";
	received_is(&r, "Received: from mx.example.org (mail.example.org [IPv6:2001:db8::1])\n"
	    BY "; " D_EXAMPLE "\n");
	r.name = "unknown";
	r.addr = "192.0.2.1";
	received_is(&r, "Received: from mx.example.org (unknown [192.0.2.1])\n"
	    BY "; " D_EXAMPLE "\n");
	r.name = "bad\r\nX-Injected: 1";	/* cannot happen (door.c checks), still safe */
	received_is(&r, "Received: from mx.example.org (bad??X-Injected: 1 [192.0.2.1])\n"
	    BY "; " D_EXAMPLE "\n");
	r.name = "";
	received_is(&r, "Received: from mx.example.org ([192.0.2.1])\n"
	    BY "; " D_EXAMPLE "\n");
}
END_TEST

START_TEST(received_header_injection)
{
	struct received r = sample();
	char dst[512];

	r.helo = "x\r\nBcc: y\n\tz\x1b\xc0\x80";
	ck_assert_uint_ne(rfc822_received(dst, sizeof dst, &r), 0);
	ck_assert_int_eq(count_char(dst, '\r'), 0);
	ck_assert_int_eq(count_char(dst, '\n'), 3);
	ck_assert_str_eq(dst, "Received: from x??Bcc: y??z??? ([192.0.2.1])\n"
	    BY "\n\tfor <a@b.c>; " D_EXAMPLE "\n");
}
END_TEST

/* a non-ASCII HELO goes into Received: only in an SMTPUTF8 transaction */
START_TEST(received_8bit_helo)
{
	struct received r = sample();

	r.helo = "b\xc3\xbc" "cher.de";
	received_is(&r, "Received: from b?cher.de ([192.0.2.1])\n"
	    BY "\n\tfor <a@b.c>; " D_EXAMPLE "\n");
	r.utf8 = 1;
	received_is(&r, "Received: from b\xc3\xbc" "cher.de ([192.0.2.1])\n"
	    BY "\n\tfor <a@b.c>; " D_EXAMPLE "\n");
	r.helo = "evil\xc2\x85X-Injected:\xe2\x80\xa8Y-Injected:";
	received_is(&r, "Received: from evil?X-Injected:?Y-Injected: ([192.0.2.1])\n"
	    BY "\n\tfor <a@b.c>; " D_EXAMPLE "\n");
}
END_TEST

START_TEST(received_capacity)
{
	struct received r = sample();
	char dst[512];
	size_t n = rfc822_received(dst, sizeof dst, &r);

	ck_assert_uint_gt(n, 0);
	ck_assert_uint_eq(rfc822_received(dst, n + 1, &r), n);
	ck_assert_uint_eq(strlen(dst), n);
	ck_assert_uint_eq(rfc822_received(dst, n, &r), 0);
	ck_assert_uint_eq(rfc822_received(dst, 10, &r), 0);
	ck_assert_uint_eq(rfc822_received(dst, 0, &r), 0);
}
END_TEST

START_TEST(received_hostile_10k_helo)
{
	static char helo[BIG + 1], dst[4 * BIG];
	struct received r = sample();
	size_t n;

	r.helo = rep(helo, '\n', BIG);
	ck_assert_uint_eq(rfc822_received(dst, 200, &r), 0);
	n = rfc822_received(dst, sizeof dst, &r);
	if (n != 0) {		/* whether HELO gets shortened is its business */
		ck_assert_uint_eq(strlen(dst), n);
		ck_assert_int_eq(count_char(dst, '\n'), 3);
	}
}
END_TEST

/* ---- suite ------------------------------------------------------------- */

/* every test, in TCase order; n > 1 runs a table row by row */
Suite *check_suite(void)
{
	const struct { const char *tcase; const TTest *test; size_t n; } all[] = {
		{ "path", path_accepts, N(path_ok) }, { "path", path_rejects, N(path_bad) },
		{ "path", path_length_limits, 1 }, { "path", path_hostile_10k, 1 },
		{ "mailbox", mailbox_accepts, N(path_ok) },
		{ "mailbox", mailbox_rejects, N(mailbox_bad) },
		{ "mailbox", mailbox_limits, 1 },
		{ "domain", domain_table, N(domain_cases) }, { "domain", domain_limits, 1 },
		{ "addr_literal", literal_table, N(literal_cases) },
		{ "addr_literal", literal_hostile, 1 },
		{ "helo", helo_table, N(helo_cases) }, { "helo", helo_length, 1 },
		{ "helo", helo_ascii_only, 1 }, { "received", received_8bit_helo, 1 },
		{ "params", params_table, N(param_cases) },
		{ "params", params_size_fits_in_long, 1 }, { "params", params_hostile_10k, 1 },
		{ "utf8_valid", utf8_table, N(utf8_cases) },
		{ "utf8_valid", utf8_reads_only_len_octets, 1 },
		{ "local_unquote", unquote_table, N(forms) },
		{ "local_unquote", unquote_capacity, 1 },
		{ "address", address_table, N(forms) },
		{ "address", address_null_and_capacity, 1 },
		{ "safe", safe_table, N(safe_cases) },
		{ "safe", safe_hostile_10k, 1 },
		{ "date", date_utc, 1 }, { "date", date_local_offsets, 1 },
		{ "header_is", header_table, N(header_cases) },
		{ "header_is", header_reads_only_len_octets, 1 },
		{ "received", received_format, 1 }, { "received", received_header_injection, 1 },
		{ "received", received_capacity, 1 }, { "received", received_hostile_10k_helo, 1 },
	};
	Suite *s = suite_create("rfc822");
	TCase *tc = NULL;

	for (size_t i = 0; i < N(all); i++) {
		if (i == 0 || strcmp(all[i].tcase, all[i - 1].tcase) != 0)
			suite_add_tcase(s, tc = tcase_create(all[i].tcase));
		tcase_add_loop_test(tc, all[i].test, 0, (int)all[i].n);
	}
	return s;
}

