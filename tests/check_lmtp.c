/*
 * check_lmtp.c - unit tests for lmtp.c (Check): the reply decoder, the
 * bounded reader (multi-line, too long, changing codes, EOF, timeout)
 * and the data stream (CR LF, dot-stuffing, Return-Path skipped).
 * The server side is a socket pair the test writes into beforehand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lmtp.h"
#include "tests/check_common.h"

static struct lmtp l;
static int peer;	/* the "server" end */
static char text[LMTP_REPLY_MAX];

static void setup(void)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	memset(&l, 0, sizeof l);
	l.fd = sv[0], l.timeout = 1, peer = sv[1];
}

static void teardown(void)
{
	if (l.fd >= 0)
		close(l.fd);
	close(peer);
}

/* say - the server sends s */
static void say(const char *s)
{
	ck_assert_int_eq(write(peer, s, strlen(s)), (ssize_t)strlen(s));
}

START_TEST(decode_lines)
{
	int code = 0;

	ck_assert_int_eq(lmtp_reply_line("250 2.1.5 Ok", 12, &code), LMTP_LAST);
	ck_assert_int_eq(code, 250);
	ck_assert_int_eq(lmtp_reply_line("452-4.2.2 full", 14, &code), LMTP_MORE);
	ck_assert_int_eq(code, 452);
	ck_assert_int_eq(lmtp_reply_line("354", 3, &code), LMTP_LAST);
	ck_assert_int_eq(lmtp_reply_line("25", 2, &code), LMTP_BAD);
	ck_assert_int_eq(lmtp_reply_line("650 x", 5, &code), LMTP_BAD);
	ck_assert_int_eq(lmtp_reply_line("1xx x", 5, &code), LMTP_BAD);
	ck_assert_int_eq(lmtp_reply_line("250x", 4, &code), LMTP_BAD);
	ck_assert_int_eq(lmtp_reply_line("250 a\0b", 7, &code), LMTP_BAD);
}
END_TEST

START_TEST(multi_line)
{
	say("250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n550 5.1.1 \x01no\r\n");
	ck_assert_int_eq(lmtp_read_reply(&l, text, sizeof text), 250);
	ck_assert_str_eq(text, "250 8BITMIME");
	ck_assert_int_eq(lmtp_read_reply(&l, text, sizeof text), 550);
	ck_assert_str_eq(text, "550 5.1.1 ?no");
}
END_TEST

START_TEST(changing_code)
{
	say("250-a\r\n251 b\r\n");
	ck_assert_int_eq(lmtp_read_reply(&l, text, sizeof text), -1);
}
END_TEST

START_TEST(too_long)
{
	char big[LMTP_LINE_MAX + 10];

	memset(big, 'x', sizeof big);
	memcpy(big, "250 ", 4);
	big[sizeof big - 1] = '\0';
	say(big);
	say("\r\n");
	ck_assert_int_eq(lmtp_read_reply(&l, text, sizeof text), -1);
}
END_TEST

START_TEST(too_many_lines)
{
	int i;

	for (i = 0; i < LMTP_LINES_MAX; i++)
		say("250-x\r\n");
	say("250 y\r\n");
	ck_assert_int_eq(lmtp_read_reply(&l, text, sizeof text), -1);
}
END_TEST

START_TEST(eof_and_timeout)
{
	say("250-half");
	shutdown(peer, SHUT_WR);
	ck_assert_int_eq(lmtp_read_reply(&l, text, sizeof text), -1);
	teardown();
	setup();
	ck_assert_int_eq(lmtp_read_reply(&l, text, sizeof text), -1);	/* 1 s */
}
END_TEST

START_TEST(command_refuses_line_breaks)
{
	ck_assert_int_eq(lmtp_command(&l, "RCPT", "TO:<a@b>\r\nDATA", text, sizeof text), -1);
	say("250 2.1.0 Ok\r\n");
	ck_assert_int_eq(lmtp_command(&l, "MAIL", "FROM:<a@b>", text, sizeof text), 250);
}
END_TEST

START_TEST(data_stream)
{
	static const char spool[] = "Return-Path: <a@b>\nSubject: x\n\n.dot\nline\n..two\nend";
	static const char want[] = "MAIL FROM:<a@b>\r\nDATA\r\nSubject: x\r\n\r\n..dot\r\n"
	    "line\r\n...two\r\nend\r\n.\r\n";
	char path[] = "/tmp/check_lmtp.XXXXXX", got[512];
	int fd = mkstemp(path);
	ssize_t n, have = 0;

	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(write(fd, spool, sizeof spool - 1), (ssize_t)sizeof spool - 1);
	say("250 ok\r\n354 go\r\n250 2.0.0 <a@x> saved\r\n");
	ck_assert_int_eq(lmtp_command(&l, "MAIL", "FROM:<a@b>", text, sizeof text), 250);
	ck_assert_int_eq(lmtp_data(&l, fd, 19, text, sizeof text), 0);
	ck_assert_int_eq(lmtp_read_reply(&l, text, sizeof text), 250);
	while (have < (ssize_t)sizeof want - 1 &&
	    (n = read(peer, got + have, sizeof got - 1 - have)) > 0)
		have += n;
	got[have] = '\0';
	ck_assert_str_eq(got, want);
	close(fd);
}
END_TEST

START_TEST(data_refused)
{
	say("451 4.3.0 later\r\n");
	ck_assert_int_eq(lmtp_data(&l, 0, 0, text, sizeof text), 451);
	ck_assert_str_eq(text, "451 4.3.0 later");
}
END_TEST

START_TEST(open_unix_fails)
{
	struct lmtp m;

	ck_assert_int_eq(lmtp_open(&m, "unix:/nonexistent/lmtp", "h", 1, text,
	    sizeof text), -1);
	ck_assert_int_eq(m.fd, -1);
	ck_assert_int_eq(lmtp_open(&m, "127.0.0.1:1", "h", 1, text, sizeof text), -1);
	ck_assert_int_eq(lmtp_open(&m, "nocolon", "h", 1, text, sizeof text), -1);
}
END_TEST

Suite *check_suite(void)
{
	Suite *s = suite_create("lmtp");
	TCase *tc = check_tcase(s, "client", setup, teardown, 0);
	const TTest *tests[] = { decode_lines, multi_line, changing_code, too_long, too_many_lines,
	    eof_and_timeout, command_refuses_line_breaks, data_stream,
	    data_refused, open_unix_fails };

	check_add(tc, tests, N(tests));
	return s;
}
