/*
 * check_conn.c - unit tests for conn.c (Check): connecting to inet and
 * unix listeners, refused and timed-out connects, reads and writes that
 * time out against a peer that never answers or never reads, and the
 * end of file before an exact read is complete.
 * Timeouts are 1 second; the tests assert the result, never the time.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "conn.h"
#include "tests/check_common.h"

static char spec[200], why[128];

/* inet_listener - a socket on 127.0.0.1, a free port; listening or only
 * bound; spec names it */
static int inet_listener(int listening)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	if (listening)
		ck_assert_int_eq(listen(fd, 0), 0);
	snprintf(spec, sizeof spec, "inet:127.0.0.1:%d", ntohs(sa.sin_port));
	return fd;
}

/* unix_listener - a socket at tmp/sock, listening or only bound */
static int unix_listener(int listening)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", P("sock"));
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	if (listening)
		ck_assert_int_eq(listen(fd, 0), 0);
	snprintf(spec, sizeof spec, "unix:%s", sa.sun_path);
	return fd;
}

/* read_times_out - a connection nobody answers: the read gives up */
static void read_times_out(int fd)
{
	char buf[16];

	ck_assert_int_ge(fd, 0);
	errno = 0;
	ck_assert_int_eq(conn_read(fd, buf, sizeof buf, 1, 0), -1);
	ck_assert_int_eq(errno, ETIMEDOUT);
	close(fd);
}

START_TEST(inet_connects_then_read_times_out)
{
	int l = inet_listener(1);

	read_times_out(conn_connect(spec, 5, why, sizeof why));
	close(l);
}
END_TEST

/* no Nagle: a request written right after an unanswered one goes out now */
START_TEST(inet_no_delay)
{
	int l = inet_listener(1), fd = conn_connect(spec, 5, why, sizeof why), on = 0;
	socklen_t len = sizeof on;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
	ck_assert_int_ne(on, 0);
	close(fd);
	close(l);
}
END_TEST

START_TEST(unix_connects_then_read_times_out)
{
	int l = unix_listener(1);

	read_times_out(conn_connect(spec, 5, why, sizeof why));
	close(l);
}
END_TEST

START_TEST(name_with_several_addresses)
{
	int l = inet_listener(1);
	char byname[200];

	/* localhost may be ::1 first, where nobody listens: the next is tried */
	snprintf(byname, sizeof byname, "inet:localhost:%s", strrchr(spec, ':') + 1);
	read_times_out(conn_connect(byname, 5, why, sizeof why));
	close(l);
}
END_TEST

START_TEST(refused)
{
	int l = inet_listener(0);

	ck_assert_int_eq(conn_connect(spec, 5, why, sizeof why), -1);
	ck_assert_str_eq(why, strerror(ECONNREFUSED));
	close(l);
	l = unix_listener(0);
	ck_assert_int_eq(conn_connect(spec, 5, why, sizeof why), -1);
	ck_assert_str_eq(why, strerror(ECONNREFUSED));
	close(l);
	ck_assert_int_eq(conn_connect("unix:/nonexistent/sock", 5, why, sizeof why), -1);
	ck_assert_str_eq(why, strerror(ENOENT));
}
END_TEST

START_TEST(bad_addresses)
{
	const char *bad[] = { "tcp:127.0.0.1:25", "inet:127.0.0.1", "inet::25",
	    "inet:127.0.0.1:", "inet:[::1]25", "127.0.0.1:25", "" };
	char longpath[300];
	size_t i;

	for (i = 0; i < N(bad); i++) {
		why[0] = '\0';
		ck_assert_int_eq(conn_connect(bad[i], 5, why, sizeof why), -1);
		ck_assert_str_eq(why, "bad address");
	}
	memset(longpath, 'a', sizeof longpath - 1);
	memcpy(longpath, "unix:/", 6);
	longpath[sizeof longpath - 1] = '\0';
	ck_assert_int_eq(conn_connect(longpath, 5, why, sizeof why), -1);
	ck_assert_str_eq(why, "bad address");
}
END_TEST

/* a listener that never accepts: once its queue is full the kernel drops
 * the handshake, and the connect must time out */
START_TEST(connect_times_out)
{
	int l = inet_listener(1), fds[8], i, n = 0;

	for (i = 0; i < 8; i++) {
		fds[n] = conn_connect(spec, 1, why, sizeof why);
		if (fds[n] < 0)
			break;
		n++;
	}
	ck_assert_int_lt(i, 8);
	ck_assert_str_eq(why, "connect timeout");
	while (n > 0)
		close(fds[--n]);
	close(l);
}
END_TEST

/* a peer that never reads: the write fills the buffers and gives up */
START_TEST(write_times_out)
{
	int l = inet_listener(1), fd = conn_connect(spec, 5, why, sizeof why);
	size_t big = 64 << 20;
	char *buf = calloc(1, big);

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_ge(fd, 0);
	errno = 0;
	ck_assert_int_eq(conn_write(fd, buf, big, 1), -1);
	ck_assert_int_eq(errno, ETIMEDOUT);
	free(buf);
	close(fd);
	close(l);
}
END_TEST

START_TEST(reads_and_eof)
{
	int sv[2];
	char buf[8] = "";

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(conn_write(sv[1], "abc", 3, 1), 0);
	ck_assert_int_eq(conn_read(sv[0], buf, sizeof buf, 1, 0), 3);
	ck_assert_int_eq(memcmp(buf, "abc", 3), 0);
	ck_assert_int_eq(conn_write(sv[1], "defg", 4, 1), 0);
	ck_assert_int_eq(conn_read(sv[0], buf, 4, 1, 1), 4);
	ck_assert_int_eq(memcmp(buf, "defg", 4), 0);
	ck_assert_int_eq(conn_write(sv[1], "hi", 2, 1), 0);
	close(sv[1]);
	errno = 0;
	ck_assert_int_eq(conn_read(sv[0], buf, 4, 1, 1), -1);
	ck_assert_int_eq(errno, ECONNRESET);
	close(sv[0]);
}
END_TEST

Suite *check_suite(void)
{
	Suite *s = suite_create("conn");
	TCase *tc = check_tcase(s, "conn", check_test_dir, check_test_rmdir, 60);
	const TTest *tests[] = { inet_connects_then_read_times_out,
	    unix_connects_then_read_times_out, name_with_several_addresses,
	    refused, bad_addresses, connect_times_out, write_times_out,
	    reads_and_eof, inet_no_delay };

	check_add(tc, tests, N(tests));
	return s;
}
