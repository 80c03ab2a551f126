/*
 * check_starttls.c - unit tests for starttls.c (Check): the decoder of
 * the engine's SSL_* strings, split at every offset (it is called again
 * on the growing buffer), starttls_finish() over a socket pair, the
 * Received: comment, and finding the engine in the environment.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_common.h"
#include "config.h"
#include "starttls.h"
#include "tls/ticket.h"

#define S(lit)	lit, sizeof(lit) - 1

static const char good[] = "SSL_PROTOCOL=TLSv1.3\0SSL_CIPHER=TLS_AES_256_GCM_SHA384\0"
    "SSL_CIPHER_USEKEYSIZE=256\0SSL_TLS_SNI=mx.test\0";	/* + final NUL */

/* info_is - what the decoder made of the variables */
static void info_is(const struct tls_info *ti, const char *protocol, const char *cipher,
    const char *error, int bits)
{
	ck_assert_str_eq(ti->protocol, protocol);
	ck_assert_str_eq(ti->cipher, cipher);
	ck_assert_str_eq(ti->error, error);
	ck_assert_int_eq(ti->bits, bits);
}

START_TEST(test_good_every_split)
{
	struct tls_info ti;
	size_t len = sizeof good, i;	/* includes the empty string's NUL */

	for (i = 0; i < len; i++)
		ck_assert_int_eq(starttls_vars(&ti, good, i), VARS_MORE);
	ck_assert_int_eq(starttls_vars(&ti, good, len), VARS_DONE);
	info_is(&ti, "TLSv1.3", "TLS_AES_256_GCM_SHA384", "", 256);
	ck_assert_str_eq(ti.subject, "");	/* no client certificate */
}
END_TEST

/* an engine that verified a client certificate: milters get its names */
START_TEST(test_peer_cert_names)
{
	static const char v[] = "SSL_PROTOCOL=TLSv1.3\0"
	    "SSL_PEER_CERT_SUBJECT=/CN=client.test\0"
	    "SSL_PEER_CERT_ISSUER=/CN=Test \"CA\"\n\0";
	struct tls_info ti;

	ck_assert_int_eq(starttls_vars(&ti, v, sizeof v), VARS_DONE);
	ck_assert_str_eq(ti.subject, "/CN=client.test");
	ck_assert_str_eq(ti.issuer, "/CN=Test ?CA??");	/* safe text only */
}
END_TEST

static const struct {
	const char *in;
	size_t len;
	int want;
	const char *protocol, *cipher, *error;
	int bits;
} rows[] = {
	{ S("\0"), VARS_DONE, "", "", "", 0 },
	{ S("noequals\0\0"), VARS_BAD, "", "", "", 0 },
	{ S("=x\0\0"), VARS_BAD, "", "", "", 0 },
	{ S("SSL_PROTOCOL=TLS v1\r\n\0\0"), VARS_DONE, "TLS_v1__", "", "", 0 },
	{ S("SSL_CIPHER=a\"b\\c\0\0"), VARS_DONE, "", "a_b_c", "", 0 },
	{ S("SSL_CIPHER_USEKEYSIZE=99999\0\0"), VARS_DONE, "", "", "", 0 },
	{ S("SSL_CIPHER_USEKEYSIZE=12a\0\0"), VARS_DONE, "", "", "", 0 },
	{ S("SSL_CIPHER_USEKEYSIZE=128\0\0"), VARS_DONE, "", "", "", 128 },
	{ S("ERROR=bad \"quote\"\x01\0"), VARS_MORE, "", "", "bad ?quote??", 0 },
	{ S("SSL_PROTOCOLX=TLSv1.3\0OTHER=1\0\0"), VARS_DONE, "", "", "", 0 },
	{ S("SSL_PROTOCOL=TLSv1.3"), VARS_MORE, "", "", "", 0 },
};

START_TEST(test_rows)
{
	struct tls_info ti;

	ck_assert_int_eq(starttls_vars(&ti, rows[_i].in, rows[_i].len), rows[_i].want);
	if (rows[_i].want != VARS_BAD)
		info_is(&ti, rows[_i].protocol, rows[_i].cipher, rows[_i].error, rows[_i].bits);
}
END_TEST

START_TEST(test_long_values_truncated)
{
	char buf[600];
	struct tls_info ti;
	size_t n = 0;

	n += sprintf(buf, "SSL_CIPHER=");
	memset(buf + n, 'A', 300);
	n += 300;
	buf[n++] = '\0';
	buf[n++] = '\0';
	ck_assert_int_eq(starttls_vars(&ti, buf, n), VARS_DONE);
	ck_assert_uint_eq(strlen(ti.cipher), TLS_TOKEN_MAX - 1);
}
END_TEST

/* finish - starttls_finish() on what an engine wrote, then EOF */
static int finish(struct starttls *t, const char *p, size_t n)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	memset(t, 0, sizeof *t);
	t->ctl = sv[0], t->rd = t->wr = -1;
	ck_assert_int_eq(write(sv[1], p, n), (ssize_t)n);
	close(sv[1]);
	return starttls_finish(t, 2);
}

START_TEST(test_finish)
{
	struct starttls t;
	char line[200];

	ck_assert_int_eq(finish(&t, good, sizeof good), 0);
	ck_assert(t.active);
	ck_assert_int_eq(t.ctl, -1);
	ck_assert_uint_gt(starttls_comment(line, sizeof line, &t.info), 0);
	ck_assert_str_eq(line, "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))");
	ck_assert_int_eq(finish(&t, S("ERROR=no shared cipher\0")), -1);
	ck_assert(!t.active);
	ck_assert_str_eq(t.info.error, "no shared cipher");
	ck_assert_int_eq(finish(&t, S("")), -1);
	ck_assert_str_eq(t.info.error, "engine ended");
	ck_assert_int_eq(finish(&t, S("SSL_CIPHER=X\0\0")), -1);	/* no protocol */
}
END_TEST

START_TEST(test_env)
{
	struct starttls t;
	int sv[2], p[2];
	char a[16], b[16], c[16];

	unsetenv("SSLCTLFD");
	starttls_open(&t);
	ck_assert(!starttls_offered(&t));
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(pipe(p), 0);
	snprintf(a, sizeof a, "%d", sv[0]);
	snprintf(b, sizeof b, "%d", p[0]);
	snprintf(c, sizeof c, "%d", p[1]);
	setenv("SSLCTLFD", a, 1), setenv("SSLREADFD", b, 1), setenv("SSLWRITEFD", c, 1);
	starttls_open(&t);
	ck_assert(starttls_offered(&t));
	ck_assert(fcntl(sv[0], F_GETFD) & FD_CLOEXEC);
	close(sv[1]);		/* the engine is gone: 454, not 220 */
	ck_assert_int_eq(starttls_begin(&t, 0), -1);
	starttls_close(&t);
	setenv("SSLWRITEFD", "99999", 1);	/* not an open fd */
	starttls_open(&t);
	ck_assert(!starttls_offered(&t));
	setenv("SSLWRITEFD", "3x", 1);
	starttls_open(&t);
	ck_assert(!starttls_offered(&t));
	unsetenv("SSLCTLFD"), unsetenv("SSLREADFD"), unsetenv("SSLWRITEFD");
}
END_TEST

/* the session ticket key records (tls/ticket.c): the supervisor's
 * message to an engine and the wrapper's -R file */
START_TEST(test_ticket_records)
{
	unsigned char buf[(TICKET_MAX + 1) * TICKET_REC];	/* one record too many, too */
	struct ticket_key k[TICKET_MAX], in;
	int i;

	in.name = 0x01020304;
	memset(in.key, 0xab, sizeof in.key);
	ticket_put(buf, &in);
	ck_assert(buf[0] == 1 && buf[3] == 4 && buf[4] == 0xab);	/* name big-endian */
	ck_assert_int_eq(ticket_parse(buf, TICKET_REC, k), 1);
	ck_assert(k[0].name == in.name && memcmp(k[0].key, in.key, TICKET_KEY) == 0);
	for (i = 1; i < TICKET_MAX + 1; i++) {	/* names 0x01020305, ... */
		in.name++;
		ticket_put(buf + i * TICKET_REC, &in);
	}
	ck_assert_int_eq(ticket_parse(buf, TICKET_MAX * TICKET_REC, k), TICKET_MAX);
	ck_assert_int_eq(ticket_parse(buf, (TICKET_MAX + 1) * TICKET_REC, k), -1);
	ck_assert_int_eq(ticket_parse(buf, TICKET_REC + 1, k), -1);	/* a partial record */
	ck_assert_int_eq(ticket_parse(buf, 0, k), -1);
	memcpy(buf + TICKET_REC, buf, 4);	/* the same name twice */
	ck_assert_int_eq(ticket_parse(buf, 2 * TICKET_REC, k), -1);
	memset(buf, 0, 4);			/* name 0: libtls's empty slot */
	ck_assert_int_eq(ticket_parse(buf, TICKET_REC, k), -1);
}
END_TEST

Suite *check_suite(void)
{
	Suite *s = suite_create("starttls");
	TCase *tc = tcase_create("vars");

	tcase_add_test(tc, test_peer_cert_names);
	tcase_add_test(tc, test_good_every_split);
	tcase_add_loop_test(tc, test_rows, 0, N(rows));
	tcase_add_test(tc, test_long_values_truncated);
	tcase_add_test(tc, test_finish);
	tcase_add_test(tc, test_env);
	tcase_add_test(tc, test_ticket_records);
	suite_add_tcase(s, tc);
	return s;
}
