/*
 * check_data.c - unit tests for data.c, the DATA/BDAT byte machine (Check).
 *
 * Every case is fed three ways: whole, split in two at every offset, and
 * one octet at a time.  The verdict, the stored octets and the number of
 * octets consumed (the machine must stop right after CR LF . CR LF and
 * leave what follows for the command reader) must be the same each time.
 * The smuggling rows are the eight known end-of-data tricks (bare LF and
 * bare CR around the dot, in every combination): none may end the data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "data.h"
#include "tests/check_common.h"

#define STORE	(1 << 16)

/* The sink: a test buffer instead of the spool. */
struct buf {
	size_t len;
	char b[STORE];
};

/* to_buf - data_sink that appends to a struct buf */
static void to_buf(void *arg, const char *p, size_t n)
{
	struct buf *b = arg;

	ck_assert_uint_le(b->len + n, sizeof b->b);
	memcpy(b->b + b->len, p, n);
	b->len += n;
}

struct result {
	enum data_result r;	/* verdict */
	size_t used;		/* octets consumed */
	int ended;		/* the machine saw CR LF . CR LF */
	struct buf out;		/* stored octets */
};

/* feed - run `in` through a fresh machine in pieces of at most `step`
 * octets, the first piece `first` long (0: use step) */
static void feed(struct result *res, const char *in, size_t len, int bdat,
    size_t first, size_t step)
{
	static char *const rcpt[] = { "alice@example.test" };
	struct data d;
	size_t off = 0;

	memset(res, 0, sizeof *res);
	data_start(&d, bdat, rcpt, 1, to_buf, &res->out);
	while (off < len && d.ds != D_END) {
		size_t want = first && off == 0 ? first : step, k, took;

		k = len - off < want ? len - off : want;
		took = data_bytes(&d, in + off, k);
		ck_assert_uint_le(took, k);
		off += took;
		if (took < k)
			break;		/* the machine stopped: end of data */
	}
	res->used = off;
	res->ended = d.ds == D_END;
	res->r = data_result(&d);
}

struct row {
	const char *name;
	const char *in;		/* wire octets */
	int bdat;
	enum data_result r;
	const char *stored;	/* NULL: not checked (errors stop storing) */
	size_t tail;		/* octets left unread after the end */
};

static const struct row rows[] = {
	{ "plain", "Subject: a\r\n\r\nbody\r\n.\r\n", 0, DATA_OK,
	    "Subject: a\n\nbody\n", 0 },
	{ "empty", ".\r\n", 0, DATA_OK, "", 0 },
	{ "dot-stuffed", "..x\r\n...\r\n.\r\n", 0, DATA_OK, ".x\n..\n", 0 },
	{ "commands after", "a\r\n.\r\nRSET\r\n", 0, DATA_OK, "a\n", 6 },
	{ "dot inside line", "a.b\r\n.a\r\n.\r\n", 0, DATA_OK, "a.b\na\n", 0 },
	{ "smuggle LF.LF", "a\r\n\n.\nMAIL FROM:<x>\r\n.\r\n", 0, DATA_BARE_EOL, NULL, 0 },
	{ "smuggle CR.CR", "a\r\n\r.\rMAIL\r\n.\r\n", 0, DATA_BARE_EOL, NULL, 0 },
	{ "smuggle CRLF.LF", "a\r\n.\nMAIL\r\n.\r\n", 0, DATA_BARE_EOL, NULL, 0 },
	{ "smuggle LF.CRLF", "a\n.\r\nMAIL\r\n.\r\n", 0, DATA_BARE_EOL, NULL, 0 },
	{ "smuggle CR.CRLF", "a\r.\r\nMAIL\r\n.\r\n", 0, DATA_BARE_EOL, NULL, 0 },
	{ "smuggle CRLF.CR", "a\r\n.\rMAIL\r\n.\r\n", 0, DATA_BARE_EOL, NULL, 0 },
	{ "smuggle LF.CR", "a\n.\rMAIL\r\n.\r\n", 0, DATA_BARE_EOL, NULL, 0 },
	{ "smuggle CR.LF", "a\r.\nMAIL\r\n.\r\n", 0, DATA_BARE_EOL, NULL, 0 },
	{ "bare LF in text", "a\nb\r\n.\r\n", 0, DATA_BARE_EOL, NULL, 0 },
	{ "bare CR in text", "a\rb\r\n.\r\n", 0, DATA_BARE_EOL, NULL, 0 },
	{ "CR CR LF", "a\r\r\n.\r\n", 0, DATA_BARE_EOL, NULL, 0 },
	{ "delivered-to loop", "Delivered-To: ALICE@example.test\r\n\r\nx\r\n.\r\n", 0,
	    DATA_LOOP, NULL, 0 },
	{ "delivered-to other", "Delivered-To: bob@example.test\r\n\r\nx\r\n.\r\n", 0,
	    DATA_OK, "Delivered-To: bob@example.test\n\nx\n", 0 },
	{ "delivered-to in body", "\r\nDelivered-To: alice@example.test\r\n.\r\n", 0,
	    DATA_OK, "\nDelivered-To: alice@example.test\n", 0 },
	{ "bdat keeps dots", ".a\r\n.\r\n", 1, DATA_OK, ".a\n.\n", 0 },
	{ "bdat lone CR at end", "a\r", 1, DATA_BARE_EOL, NULL, 0 },
	{ "bdat bare LF", "a\nb\r\n", 1, DATA_BARE_EOL, NULL, 0 },
};

/* check_row - one case, fed whole, split at every offset, octet by octet */
static void check_row(const struct row *t)
{
	size_t len = strlen(t->in), cut;
	struct result *whole = malloc(sizeof *whole), *part = malloc(sizeof *part);

	ck_assert_ptr_nonnull(whole);
	ck_assert_ptr_nonnull(part);
	feed(whole, t->in, len, t->bdat, 0, len);
	ck_assert_msg(whole->r == t->r, "%s: verdict %d, want %d", t->name, whole->r, t->r);
	ck_assert_msg(whole->used == len - t->tail, "%s: consumed %zu of %zu", t->name,
	    whole->used, len);
	ck_assert_msg(whole->ended == !t->bdat, "%s: end of data %s", t->name,
	    whole->ended ? "seen" : "missed");
	if (t->stored)
		ck_assert_msg(whole->out.len == strlen(t->stored) &&
		    memcmp(whole->out.b, t->stored, whole->out.len) == 0,
		    "%s: stored %.*s", t->name, (int)whole->out.len, whole->out.b);
	for (cut = 0; cut <= len; cut++) {
		if (cut == len)
			feed(part, t->in, len, t->bdat, 0, 1);	/* octet by octet */
		else
			feed(part, t->in, len, t->bdat, cut ? cut : 1, len);
		ck_assert_msg(part->r == whole->r && part->used == whole->used &&
		    part->ended == whole->ended && part->out.len == whole->out.len &&
		    memcmp(part->out.b, whole->out.b, part->out.len) == 0,
		    "%s: split at %zu differs", t->name, cut);
	}
	free(whole);
	free(part);
}

START_TEST(test_rows)
{
	check_row(&rows[_i]);
}
END_TEST

/* line - a DATA line of n octets before CR LF, then the end */
static char *line(size_t n)
{
	char *s = malloc(n + 8);

	ck_assert_ptr_nonnull(s);
	memset(s, 'x', n);
	strcpy(s + n, "\r\n.\r\n");
	return s;
}

/* text lines: 998 + CR LF is the RFC 5321 limit; one more is too long */
START_TEST(test_text_line_limit)
{
	struct result *r = malloc(sizeof *r);
	char *ok = line(998), *bad = line(999);

	feed(r, ok, strlen(ok), 0, 0, 7);
	ck_assert_int_eq(r->r, DATA_OK);
	feed(r, bad, strlen(bad), 0, 0, 7);
	ck_assert_int_eq(r->r, DATA_TEXT_LINE);
	ck_assert(r->ended);
	free(ok);
	free(bad);
	free(r);
}
END_TEST

/* too many Received: lines is a loop; the count stops at the header's end */
START_TEST(test_hops)
{
	static char in[STORE];
	struct result *r = malloc(sizeof *r);
	size_t n = 0;
	long i;

	for (i = 0; i <= cfg.hop_limit; i++)
		n += sprintf(in + n, "Received: from h%ld\r\n", i);
	strcpy(in + n, "\r\nx\r\n.\r\n");
	feed(r, in, strlen(in), 0, 0, 13);
	ck_assert_int_eq(r->r, DATA_LOOP);
	n = sprintf(in, "Subject: x\r\n\r\n");
	for (i = 0; i <= cfg.hop_limit; i++)
		n += sprintf(in + n, "Received: in the body %ld\r\n", i);
	strcpy(in + n, ".\r\n");
	feed(r, in, strlen(in), 0, 0, 13);
	ck_assert_int_eq(r->r, DATA_OK);
	free(r);
}
END_TEST

/* lines - k lines of 100 wire octets each, then the end of data */
static char *lines(size_t k)
{
	char *s = malloc(k * 100 + 8), *p = s;

	ck_assert_ptr_nonnull(s);
	while (k-- > 0) {
		memset(p, 'x', 98);
		memcpy(p + 98, "\r\n", 2);
		p += 100;
	}
	strcpy(p, ".\r\n");
	return s;
}

/* the size limit counts wire octets (CR LF as two): 40000 is allowed */
START_TEST(test_size)
{
	struct result *r = malloc(sizeof *r);
	char *in = lines(400);

	feed(r, in, strlen(in), 0, 0, 4096);
	ck_assert_int_eq(r->r, DATA_OK);
	ck_assert_uint_eq(r->out.len, 400 * 99);
	free(in);
	in = lines(401);
	feed(r, in, strlen(in), 0, 0, 4096);
	ck_assert_int_eq(r->r, DATA_SIZE);
	ck_assert(r->ended);
	free(in);
	free(r);
}
END_TEST

/* check_suite - the machine's tests, with small limits for speed */
Suite *check_suite(void)
{
	char *argv[] = { "check_data", "-o", "size_limit=40000", "-o", "hop_limit=5", NULL };
	Suite *s = suite_create("data");
	TCase *tc = check_tcase(s, "machine", NULL, NULL, 0);
	int mode;

	if (config_load(5, argv, &mode) < 0)
		exit(1);
	tcase_add_loop_test(tc, test_rows, 0, N(rows));
	tcase_add_test(tc, test_text_line_limit);
	tcase_add_test(tc, test_hops);
	tcase_add_test(tc, test_size);
	return s;
}
