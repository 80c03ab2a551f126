/*
 * check_smtpd.c - unit tests for the SMTP dialogue in smtpd.c (Check).
 *
 *   make tests/check_smtpd && ./tests/check_smtpd
 *
 * A forked writer feeds a scripted client byte stream into a pipe and
 * closes it; session_run() runs in the test process with its replies
 * going to a file, and the tests assert the reply codes in order
 * (codes() joins the final line of each reply).  Without a deliverer
 * (`none`) deliveries fail with 451; a real one comes from
 * deliverer_start().  As root the deliverer writes as 65534, so the
 * directories are 0755 and Maildir parents belong to 65534.
 * Set SMTPD_TEST_LOG=1 to see smtpd's log lines.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "deliver.h"
#include "smtpd.h"
#include "tests/check_common.h"

#define RUN(lit)	run(lit, sizeof(lit) - 1, &none)
#define EHLO	"EHLO client.example\r\n"
#define TXN	EHLO "MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.test>\r\n"

static struct deliverer none = { .pid = 0, .fd = -1 };
static char out[1 << 18];	/* everything the session wrote */

/* ---- helpers ----------------------------------------------------------- */

/* config_load: the standard settings, then extra "name=value" ones */
static void conf(const char *const *extra)
{
	static char store[40][320];
	char *argv[41];
	const char *std[] = { "t", "-e", "-o", "virtual_users=", "-o",
	    "local_domains=example.test", "-o", "spool_dir=", "-o",
	    "hostname=mx.test", "-o", "queue_retry=1", "-o", "postmaster=alice",
	    "-o", "rdns=0", "-o", "greet_wait=0" };	/* the door: tests/door */
	int n = 0, mode;
	size_t i;

	for (i = 0; i < N(std); i++, n++)
		argv[n] = strcpy(store[n], std[i]);
	strcat(store[3], P("users"));
	strcat(store[7], P("spool"));
	for (; extra && *extra; extra++, n++) {
		argv[n] = strcpy(store[n], "-o");
		n++;
		argv[n] = strcpy(store[n], *extra);
	}
	argv[n] = NULL;
	optind = 1;
	ck_assert_int_eq(config_load(n, argv, &mode), 0);
}

static void setup(void)
{
	FILE *f;
	int i;

	check_quiet();
	signal(SIGPIPE, SIG_IGN);
	check_test_dir();
	ck_assert_int_eq(mkdir(P("spool"), 0700), 0);
	home("alice");
	/* alice, carol (home missing: temporary failure), u000..u099 */
	ck_assert_ptr_nonnull(f = fopen(P("users"), "w"));
	fprintf(f, "alice:%ld:%ld:%s\n", (long)mail_uid, (long)mail_gid, P("alice/Maildir"));
	fprintf(f, "carol:%ld:%ld:%s\n", (long)mail_uid, (long)mail_gid, P("carol/Maildir"));
	for (i = 0; i < 100; i++)
		fprintf(f, "u%03d:%ld:%ld:%s\n", i, (long)mail_uid, (long)mail_gid,
		    P("alice/Maildir"));
	ck_assert_int_eq(fclose(f), 0);
	conf(NULL);
}

/*
 * run one session on `script`: a forked client writes it and closes the
 * pipe; with `hold` the script is written here and the pipe stays open
 * while the session runs (for timeouts).  Returns what the server wrote.
 */
static const char *run_(const char *script, size_t len, struct deliverer *d, int hold)
{
	int p[2], o;
	pid_t w = 0;
	ssize_t n;

	ck_assert_int_eq(pipe(p), 0);
	if (hold)
		ck_assert_int_eq(write(p[1], script, len), (ssize_t)len);
	else if ((w = fork()) == 0) {
		close(p[0]);
		while (len > 0 && (n = write(p[1], script, len)) > 0)
			script += n, len -= n;
		_exit(0);
	}
	ck_assert_int_ge(w, 0);
	if (!hold)
		close(p[1]);
	ck_assert_int_ge(o = open(P("out"), O_RDWR | O_CREAT | O_TRUNC, 0600), 0);
	ck_assert_int_eq(session_run(p[0], o, "TESTSESSION00001", "192.0.2.1", 0, d), 0);
	close(p[0]);	/* a writer still blocked gets EPIPE and exits */
	if (hold)
		close(p[1]);
	else
		ck_assert_int_eq(waitpid(w, NULL, 0), w);
	ck_assert_int_ge(n = pread(o, out, sizeof out - 1, 0), 0);
	out[n] = '\0';
	close(o);
	return out;
}
#define run(s, n, d)	run_(s, n, d, 0)

/* the code of each reply's last line, space-separated; checks framing */
static const char *codes(const char *o)
{
	static char c[8192];
	size_t n = 0;
	const char *e;

	c[0] = '\0';
	for (; *o; o = e + 2) {
		ck_assert_msg((e = strstr(o, "\r\n")) != NULL, "unterminated reply: %s", o);
		ck_assert_msg(e - o >= 3 && isdigit((unsigned char)o[0]) &&
		    isdigit((unsigned char)o[1]) && isdigit((unsigned char)o[2]) &&
		    (e - o == 3 || o[3] == ' ' || o[3] == '-'), "bad reply line: %.*s",
		    (int)(e - o), o);
		if (o[3] == '-')
			continue;
		ck_assert_uint_lt(n + 5, sizeof c);
		n += snprintf(c + n, sizeof c - n, "%s%.3s", n ? " " : "", o);
	}
	return c;
}

/* does the output hold this exact reply line? */
static int has_line(const char *o, const char *line)
{
	size_t n = strlen(line);
	const char *p;

	for (p = o; (p = strstr(p, line)) != NULL; p++)
		if ((p == o || p[-1] == '\n') && strncmp(p + n, "\r\n", 2) == 0)
			return 1;
	return 0;
}

static int ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), k = strlen(tail);

	return n >= k && strcmp(s + n - k, tail) == 0;
}

#define HAS(o, l)	ck_assert_msg(has_line(o, l), "no reply \"%s\" in:\n%s", l, o)
#define CODES(o, c)	ck_assert_str_eq(codes(o), c)

/* ---- greeting, EHLO, HELO -------------------------------------------- */

START_TEST(test_greeting_quit)
{
	ck_assert_str_eq(RUN(""), "220 mx.test ESMTP smtpd\r\n");
	CODES(RUN("QUIT\r\nNOOP\r\n"), "220 221");
	HAS(out, "221 mx.test closing connection");
}
END_TEST

START_TEST(test_ehlo_keywords)
{
	static const char *const kw[] = { "PIPELINING", "SIZE 52428800", "8BITMIME",
	    "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING" };
	char l[64];
	size_t i;

	CODES(RUN(EHLO), "220 250");
	ck_assert_ptr_nonnull(strstr(out, "\r\n250-mx.test\r\n"));
	for (i = 0; i < N(kw); i++) {
		snprintf(l, sizeof l, "250-%s", kw[i]);
		if (!has_line(out, l))
			snprintf(l, sizeof l, "250 %s", kw[i]);
		HAS(out, l);
	}
}
END_TEST

START_TEST(test_helo_plain_codes)
{
	CODES(RUN("HELO client.example\r\nFOO\r\nRSET\r\n" EHLO "FOO\r\nRSET\r\n"
	    "HELO again\r\nNOOP\r\n"), "220 250 500 250 250 500 250 250 250");
	HAS(out, "250 mx.test");
	HAS(out, "500 Syntax error, command unrecognized");
	HAS(out, "250 Ok");
	HAS(out, "500 5.5.2 Syntax error, command unrecognized");
	HAS(out, "250 2.0.0 Ok");
	ck_assert(ends_with(out, "\r\n250 mx.test\r\n250 Ok\r\n"));	/* HELO again */
}
END_TEST

/* every row of the table; verbs in any case */
START_TEST(test_command_table)
{
	CODES(RUN("ehlo client.example\r\nnoop\r\nNoOp ignored args\r\nrSeT\r\n"
	    "vrfy alice\r\nVRFY\r\nhelp\r\nHELP MAIL\r\neXpN staff\r\nTURN\r\netrn x\r\n"
	    "SEND FROM:<s@example.org>\r\nSOML FROM:<s@example.org>\r\n"
	    "SAML FROM:<s@example.org>\r\nWHAT\r\nNOOPX\r\nquit\r\n"),
	    "220 250 250 250 250 252 501 214 214 502 502 502 502 502 502 500 500 221");
	HAS(out, "252 2.5.0 Cannot VRFY user, but will accept message");
	HAS(out, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP");
	HAS(out, "502 5.5.1 Command not implemented");
	HAS(out, "221 2.0.0 mx.test closing connection");
}
END_TEST

/* ---- sequence and syntax errors ------------------------------------------ */

START_TEST(test_bad_sequence)
{
	CODES(RUN("MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.test>\r\n"
	    "DATA\r\n" EHLO "RCPT TO:<alice@example.test>\r\nDATA\r\n"
	    "MAIL FROM:<s@example.org>\r\nDATA\r\nMAIL FROM:<t@example.org>\r\n"
	    "QUIT\r\n"), "220 503 503 503 250 503 503 250 503 503 221");
	HAS(out, "503 Bad sequence of commands");
	HAS(out, "503 5.5.1 Bad sequence of commands");
}
END_TEST

START_TEST(test_bdat_sequence)
{
	CODES(RUN(TXN "BDAT 5\r\nhelloMAIL FROM:<t@example.org>\r\nDATA\r\n"
	    "BDAT 3 LAST\r\nxyzQUIT\r\n"), "220 250 250 250 250 503 503 451 221");
	HAS(out, "250 2.0.0 5 octets received");
	HAS(out, "503 5.5.1 Bad sequence of commands");
	HAS(out, "503 5.5.1 DATA not allowed after BDAT");
	HAS(out, "451 4.3.0 Local delivery failed, try again later");
}
END_TEST

START_TEST(test_bad_arguments)
{
	CODES(RUN("HELO\r\nEHLO\r\n" EHLO "MAIL FROM:garbage\r\nMAIL FROM:\r\n"
	    "MAIL TO:<s@example.org>\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<>\r\n"
	    "RCPT TO:alice@example.test\r\nRCPT TO:<alice@example.test>\r\nDATA x\r\n"
	    "QUIT x\r\nBDAT 4 x\r\nQUITNOOP\r\nBDAT x\r\nQUIT\r\n"),
	    "220 501 501 250 501 501 501 250 501 501 250 501 501 501 250 421");
	HAS(out, "421 4.5.4 mx.test BDAT without a readable chunk size, closing connection");
	HAS(out, "501 Syntax error in parameters or arguments");
	HAS(out, "501 5.1.7 Bad sender address syntax");
	HAS(out, "501 5.1.3 Bad recipient address syntax");
	HAS(out, "501 5.5.4 No arguments allowed");
	HAS(out, "501 5.5.4 Syntax error in parameters or arguments");
}
END_TEST

START_TEST(test_mail_parameters)
{
	CODES(RUN(EHLO "MAIL FROM:<s@example.org> FOO=BAR\r\n"
	    "MAIL FROM:<s@example.org> SIZE=52428801\r\n"
	    "MAIL FROM:<\xc3\xa9t\xc3\xa9@example.org>\r\n"
	    "MAIL FROM:<s@example.org> SIZE=52428800 BODY=8BITMIME\r\nRSET\r\n"
	    "MAIL FROM:<\xc3\xa9t\xc3\xa9@example.org> SMTPUTF8\r\n"
	    "RCPT TO:<alice@example.test> FOO=BAR\r\nQUIT\r\n"),
	    "220 250 555 552 553 250 250 250 555 221");
	HAS(out, "555 5.5.4 Unsupported parameter");
	HAS(out, "552 5.3.4 Message size exceeds fixed limit");
	HAS(out, "553 5.6.7 Non-ASCII address requires SMTPUTF8");
}
END_TEST

START_TEST(test_rcpt_policy)
{
	CODES(RUN(TXN "RCPT TO:<alice@elsewhere.test>\r\nRCPT TO:<nosuch@example.test>\r\n"
	    "RCPT TO:<ALICE@Example.Test>\r\nRCPT TO:<postmaster>\r\n"
	    "RCPT TO:<\xc3\xa9@example.test>\r\nQUIT\r\n"),
	    "220 250 250 250 550 550 250 250 553 221");
	HAS(out, "550 5.7.1 Relay access denied");
	HAS(out, "550 5.1.1 No such user here");
}
END_TEST

START_TEST(test_rcpt_limit)
{
	char *s = malloc(8192), want[2048];
	size_t n = 0, w = 0;
	int i;

	ck_assert_ptr_nonnull(s);
	n += sprintf(s + n, EHLO "MAIL FROM:<s@example.org>\r\n");
	w += sprintf(want + w, "220 250 250");
	for (i = 0; i < 100; i++) {
		n += sprintf(s + n, "RCPT TO:<u%03d@example.test>\r\n", i);
		w += sprintf(want + w, " 250");
	}
	n += sprintf(s + n, "RCPT TO:<alice@example.test>\r\nDATA\r\n.\r\nQUIT\r\n");
	sprintf(want + w, " 452 354 451 221");
	CODES(run(s, n, &none), want);
	HAS(out, "452 4.5.3 Too many recipients");
	free(s);
}
END_TEST

/* ---- the line reader ------------------------------------------------------ */

/* a NUL or a line over cmdline_limit gets 500; the session goes on */
START_TEST(test_line_reader)
{
	char *s = malloc(20000);
	size_t n = 0;

	ck_assert_ptr_nonnull(s);
	n += sprintf(s + n, "%s", EHLO);
	n += sprintf(s + n, "NOOP %0505d\r\n", 0);	/* 512 octets: the limit */
	n += sprintf(s + n, "NOOP %0506d\r\n", 0);	/* 513 */
	n += sprintf(s + n, "MAIL FROM:<%010000d@example.org>\r\n", 0);
	memcpy(s + n, "NO\0OP\r\nMAIL FROM:<s@example.org>\0\r\nNOOP\r\nQUIT\r\n", 47);
	CODES(run(s, n + 47, &none), "220 250 250 500 500 500 500 250 221");
	HAS(out, "500 5.5.2 Line too long");
	HAS(out, "500 5.5.2 NUL octet in command");
	free(s);
}
END_TEST

START_TEST(test_error_limit)
{
	const char *lim[] = { "error_limit=3", NULL };

	conf(lim);
	CODES(RUN(EHLO "FOO\r\nRCPT TO:<alice@example.test>\r\nBAR\r\nNOOP\r\nQUIT\r\n"),
	    "220 250 500 503 500 421");
	HAS(out, "421 4.7.0 mx.test Too many errors, closing connection");
}
END_TEST

START_TEST(test_command_timeout)
{
	const char *lim[] = { "cmd_timeout=1", NULL };
	struct timespec t0, t1;
	double secs;

	conf(lim);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CODES(run_(EHLO, strlen(EHLO), &none, 1), "220 250 421");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert_msg(secs > 0.9 && secs < 1.9, "timed out after %.2f s, want 1", secs);
	HAS(out, "421 4.4.2 mx.test Timeout, closing connection");
}
END_TEST

/* ---- BDAT, pipelining, smuggling ------------------------------------------ */

START_TEST(test_bdat_refused_consumes_chunk)
{
	size_t big = 100000, n = 0;
	char *s = malloc(big + 1000);

	ck_assert_ptr_nonnull(s);
	n += sprintf(s, EHLO "BDAT 6\r\nQUIT\r\nNOOP\r\nBDAT %zu\r\n", big);
	while (big >= 6)
		n += sprintf(s + n, "QUIT\r\n"), big -= 6;
	n += sprintf(s + n, "%.*sMAIL FROM:<s@example.org>\r\nBDAT 4 LAST\r\n"
	    "RSETNOOP\r\nQUIT\r\n", (int)big, "xxxxx");
	CODES(run(s, n, &none), "220 250 503 250 503 250 503 250 221");
	free(s);
}
END_TEST

START_TEST(test_pipelining)
{
	CODES(RUN(TXN "RCPT TO:<nosuch@example.test>\r\nRCPT TO:<u001@example.test>\r\n"
	    "DATA\r\nSubject: p\r\n\r\nhi\r\n.\r\nMAIL FROM:<t@example.org>\r\n"
	    "RCPT TO:<alice@example.test>\r\nBDAT 4 LAST\r\nhi\r\nNOOP\r\nQUIT\r\n"),
	    "220 250 250 250 550 250 354 451 250 250 451 250 221");
	ck_assert_int_eq(count(P("spool"), NULL, 0), 0);
}
END_TEST

/* a bare LF (or CR) around a dot never ends DATA: no smuggled command */
static const char *const smuggle[] = {
	"\n.\r\n", "\r\n.\n", "\n.\n", "\r.\r\n", "\r\n.\r", "\r\n.\rX\n",
};

START_TEST(test_smuggling)
{
	char s[512];
	int n;

	n = snprintf(s, sizeof s, TXN "DATA\r\nSubject: s\r\n\r\nbody%s"
	    "MAIL FROM:<x@example.org>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
	    "smuggled\r\n.\r\nQUIT\r\n", smuggle[_i]);
	CODES(run(s, n, &none), "220 250 250 250 354 554 221");
	HAS(out, "554 5.6.0 Bare CR or LF in message; use CR LF line ends");
}
END_TEST

/* ---- deliveries with a real deliverer -------------------------------------- */

static char *only_message(const char *maildir)
{
	char dir[512], name[300], path[900], *b;
	struct stat st;
	int fd;

	snprintf(dir, sizeof dir, "%s/new", P(maildir));
	ck_assert_int_eq(count(dir, name, sizeof name), 1);
	snprintf(path, sizeof path, "%s/%s", dir, name);
	ck_assert_int_ge(fd = open(path, O_RDONLY), 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_uint_eq(st.st_uid, mail_uid);
	ck_assert_ptr_nonnull(b = calloc(1, st.st_size + 1));
	ck_assert_int_eq(read(fd, b, st.st_size), st.st_size);
	close(fd);
	return b;
}

/* the queue id from "250 2.0.0 Ok: queued as ID" */
static void queued_id(char *id, size_t cap)
{
	const char *p = strstr(out, "250 2.0.0 Ok: queued as ");
	size_t n;

	ck_assert_msg(p != NULL, "not queued:\n%s", out);
	p += strlen("250 2.0.0 Ok: queued as ");
	n = strcspn(p, "\r");
	ck_assert(n > 0 && n < cap);
	memcpy(id, p, n), id[n] = '\0';
	while (n-- > 0)
		ck_assert(isalnum((unsigned char)id[n]));
}

START_TEST(test_data_delivered)
{
	static const char head[] = "Return-Path: <s@example.org>\n"
	    "Delivered-To: alice@example.test\nReceived: from client.example "
	    "([192.0.2.1])\n\tby mx.test (smtpd) with ESMTP id ";
	const char *s = TXN "DATA\r\nSubject: hi\r\n\r\n..leading dot\r\n\xe9 8-bit\r\n"
	    ".\r\nQUIT\r\n";
	struct deliverer d;
	char id[64], rcv[128], *msg;

	ck_assert_int_eq(deliverer_start(&d, 2), 0);
	CODES(run(s, strlen(s), &d), "220 250 250 250 354 250 221");
	deliverer_stop(&d);
	queued_id(id, sizeof id);
	msg = only_message("alice/Maildir");
	ck_assert_msg(strncmp(msg, head, sizeof head - 1) == 0, "head:\n%s", msg);
	snprintf(rcv, sizeof rcv, "with ESMTP id %s\n\tfor <alice@example.test>; ", id);
	ck_assert_ptr_nonnull(strstr(msg, rcv));
	ck_assert_msg(ends_with(msg, "\nSubject: hi\n\n.leading dot\n\xe9 8-bit\n"),
	    "body:\n%s", msg);
	ck_assert_int_eq(count(P("spool"), NULL, 0), 0);
	free(msg);
}
END_TEST

START_TEST(test_bdat_delivered)
{
	const char *c1 = "Subject: b\r\n\r\n..no dot", *c2 = "-stuffing\r\n";
	char s[512], l[64], *msg;
	struct deliverer d;
	int n;

	n = snprintf(s, sizeof s, TXN "BDAT %zu\r\n%sBDAT %zu LAST\r\n%sQUIT\r\n",
	    strlen(c1), c1, strlen(c2), c2);
	ck_assert_int_eq(deliverer_start(&d, 2), 0);
	CODES(run(s, n, &d), "220 250 250 250 250 250 221");
	deliverer_stop(&d);
	snprintf(l, sizeof l, "250 2.0.0 %zu octets received", strlen(c1));
	HAS(out, l);
	msg = only_message("alice/Maildir");
	ck_assert_msg(ends_with(msg, "\nSubject: b\n\n..no dot-stuffing\n"), "body:\n%s", msg);
	ck_assert_int_eq(count(P("spool"), NULL, 0), 0);
	free(msg);
}
END_TEST

/* carol's Maildir parent is missing: kept for her; alone she gets 451 */
START_TEST(test_partial_kept)
{
	const char *s = TXN "RCPT TO:<carol@example.test>\r\nDATA\r\nSubject: k\r\n\r\n"
	    "x\r\n.\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<carol@example.test>\r\n"
	    "DATA\r\n\r\n.\r\nQUIT\r\n";
	struct deliverer d;
	char id[64], rel[128], env[512], *msg;
	FILE *f;
	size_t n;

	ck_assert_int_eq(deliverer_start(&d, 2), 0);
	CODES(run(s, strlen(s), &d), "220 250 250 250 250 354 250 250 250 354 451 221");
	deliverer_stop(&d);
	queued_id(id, sizeof id);
	HAS(out, "451 4.3.0 Local delivery failed, try again later");
	msg = only_message("alice/Maildir");
	ck_assert(ends_with(msg, "\nSubject: k\n\nx\n"));
	free(msg);
	ck_assert_int_eq(count(P("spool"), NULL, 0), 2);	/* ID and ID.env */
	snprintf(rel, sizeof rel, "spool/%s.env", id);
	ck_assert_ptr_nonnull(f = fopen(P(rel), "r"));
	n = fread(env, 1, sizeof env - 1, f);
	env[n] = '\0';
	fclose(f);
	ck_assert_msg(strstr(env, "\nA 0 ") && strstr(env, "\nR carol carol@example.test\nE ") &&
	    !strstr(env, "alice"), "envelope:\n%s", env);
}
END_TEST

/* a host name whose first label is one digit is still in the greeting */
START_TEST(test_greeting_numeric_host)
{
	const char *h[] = { "hostname=1.mx.test", NULL };

	conf(h);
	ck_assert_str_eq(RUN("QUIT\r\n"),
	    "220 1.mx.test ESMTP smtpd\r\n221 1.mx.test closing connection\r\n");
}
END_TEST

Suite *check_suite(void)
{
	Suite *s = suite_create("smtpd");
	TCase *tc = check_tcase(s, "session", setup, check_test_rmdir, 30);
	const TTest *tests[] = { test_greeting_quit, test_ehlo_keywords, test_helo_plain_codes,
	    test_command_table, test_bad_sequence, test_bdat_sequence, test_bad_arguments,
	    test_mail_parameters, test_rcpt_policy, test_rcpt_limit, test_line_reader,
	    test_error_limit, test_command_timeout, test_bdat_refused_consumes_chunk,
	    test_pipelining, test_data_delivered, test_bdat_delivered, test_partial_kept,
	    test_greeting_numeric_host };

	check_add(tc, tests, N(tests));
	tcase_add_loop_test(tc, test_smuggling, 0, N(smuggle));
	return s;
}

