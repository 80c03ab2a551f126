/*
 * fuzz/fuzz_session.c - a whole SMTP session; the input is the byte
 * stream a client sends (pipelined, as a file: EOF ends the session).
 *
 * The first octet is also a knob.  Bit 0: odd ("EHLO", "MAIL", "QUIT",
 * "ehlo"...) gets a real deliverer, so accepted mail lands in alice's
 * Maildir; even ("HELO", "RCPT", ...) gets none and every delivery fails
 * temporarily.  Bits 1-6: the session's read()s return at most that many
 * octets ("E": 34, "H": 36; 0: all there is), as TCP segments would, so
 * lines, CR LF pairs and chunks get split (linked with --wrap=read).
 * Checks: each reply is a well-formed reply line; no more messages are
 * accepted than the input has CR LF . CR LF (or LF . CR LF right after
 * a DATA line) and LAST octets for (smuggling); and in fuzz_after: no
 * spool file or descriptor left behind, the deliverer alive, delivered
 * mail without CR.
 */
#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "smtpd.h"

static int in, out;		/* the client's bytes; our replies */
static size_t piece;		/* longest read() of `in`, 0 = no limit */
static struct deliverer real;

ssize_t __real_read(int fd, void *buf, size_t n);

ssize_t __wrap_read(int fd, void *buf, size_t n)
{
	return __real_read(fd, buf, fd == in && piece && n > piece ? piece : n);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_setup();
	fuzz_deliverer(&real);
	CHECK((in = memfd_create("client", 0)) >= 0);
	CHECK((out = memfd_create("replies", 0)) >= 0);
	return 0;
}

/* count - occurrences of pat (lower case) in s[0..n), any case, overlapping */
static size_t count(const char *s, size_t n, const char *pat)
{
	size_t k = strlen(pat), i, j, c = 0;

	for (i = 0; i + k <= n; i++) {
		for (j = 0; j < k && tolower((unsigned char)s[i + j]) == pat[j]; j++)
			;
		c += j == k;
	}
	return c;
}

/* check_replies - "NNN text" / "NNN-text" lines, CR LF, printable, < 512;
 * each message accepted had an end of data of its own in the input */
static void check_replies(const uint8_t *data, size_t size)
{
	struct stat st;
	char *buf, *p, *end, *nl, *q;

	CHECK(fstat(out, &st) == 0);
	if (st.st_size == 0)
		return;
	buf = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, out, 0);
	CHECK(buf != MAP_FAILED);
	for (p = buf, end = buf + st.st_size; p < end; p = nl + 1) {
		nl = memchr(p, '\n', end - p);
		CHECK(nl != NULL && nl - p >= 5 && nl - p < 512 && nl[-1] == '\r');
		CHECK(isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) &&
		    isdigit((unsigned char)p[2]) && (p[3] == ' ' || p[3] == '-'));
		for (q = p; q < nl - 1; q++)
			CHECK((unsigned char)*q >= 32 && *q != 127);
	}
	CHECK(count(buf, st.st_size, "queued as") <=
	    count((const char *)data, size, "\n.\r\n") +
	    count((const char *)data, size, "last"));
	munmap(buf, st.st_size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct deliverer none = { 0, -1, 0 };

	fuzz_before();
	CHECK(ftruncate(in, 0) == 0 && ftruncate(out, 0) == 0);
	CHECK(pwrite(in, data, size, 0) == (ssize_t)size);
	lseek(in, 0, SEEK_SET);
	lseek(out, 0, SEEK_SET);
	piece = size > 0 ? (data[0] >> 1) & 63 : 0;
	session_run(in, out, "FUZZSESSION00001", "127.0.0.1", 25,
	    size > 0 && (data[0] & 1) ? &real : &none);
	check_replies(data, size);
	fuzz_after(&real);
	return 0;
}
