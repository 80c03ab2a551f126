/*
 * starttls.c - the session's side of STARTTLS (RFC 3207): finding the
 * TLS engine, asking it to start, reading what it negotiated.
 *
 * Interface: starttls_open() at session start finds an engine: the
 * UCSPI-TLS descriptors SSLCTLFD, SSLREADFD, SSLWRITEFD that a wrapper
 * (smtpd-tls -- smtpd) put in the environment, or, in a prefork worker
 * (starttls_worker() was called and tls_cert is set), the worker's own
 * engine (smtpd-tls -s), which the supervisor starts at the worker's
 * first STARTTLS and which then takes each session's descriptors.  starttls_begin() runs before
 * the 220 reply: it gets the engine (asking the supervisor if need be),
 * checks it is alive and writes 'Y'.  The engine then waits for the
 * client's ClientHello, which cannot come before our 220.
 * starttls_finish() runs after it: it reads the SSL_* variables
 * (NUL-terminated NAME=value strings ended by an empty one) with a
 * bound on size and time; from then on the session reads t->rd and
 * writes t->wr.  starttls_vars() is the pure decoder (fuzz/fuzz_tlsvars.c).
 * Invariants: smtpd links no TLS library and never sees a key; values
 * from the engine are reduced to safe tokens before they reach a header
 * or a log line.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "starttls.h"

/*
 * A prefork worker's two channels: to the supervisor (set once by
 * starttls_worker() before the first session) and to its own engine
 * (made at the first STARTTLS, kept until the worker exits).  Process
 * state, not session state: the engine outlives sessions.
 */
static int engine_chan = -1;
static int engine_fd = -1;

/* starttls_worker - this process is a prefork worker talking on chan */
void starttls_worker(int chan)
{
	engine_chan = chan;
}

/* send_fds - one message with n descriptors (SCM_RIGHTS); 0 or -1 */
static int send_fds(int chan, const char *msg, const int *fds, int n)
{
	char cbuf[CMSG_SPACE(4 * sizeof(int))];
	struct iovec iov = { (char *)msg, 1 };
	struct msghdr m = { 0 };
	struct cmsghdr *c;

	m.msg_iov = &iov, m.msg_iovlen = 1;
	m.msg_control = cbuf, m.msg_controllen = CMSG_SPACE(n * sizeof(int));
	c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET, c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(n * sizeof(int));
	memcpy(CMSG_DATA(c), fds, n * sizeof(int));
	return sendmsg(chan, &m, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

/* engine_start - ask the supervisor to start our engine; 0 or -1 */
static int engine_start(void)
{
	char ans = 'N';
	ssize_t n = -1;
	int sp[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return -1;
	if (send_fds(engine_chan, "E", &sp[1], 1) == 0)
		do
			n = recv(engine_chan, &ans, 1, 0);
		while (n < 0 && errno == EINTR);
	close(sp[1]);
	if (n != 1 || ans != 'Y') {
		close(sp[0]);
		return -1;
	}
	engine_fd = sp[0];
	return 0;
}

/*
 * request - hand this session to our engine, started at once ("Y"): the
 * socket, the engine's ends of a control socketpair and two pipes; we
 * keep the other ends.  An engine that died is replaced once.
 */
static int request(struct starttls *t, int net)
{
	int sp[2], down[2], up[2], fds[4], tries, r = -1;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return -1;
	if (pipe2(down, O_CLOEXEC) < 0 || pipe2(up, O_CLOEXEC) < 0) {
		close(sp[0]), close(sp[1]);	/* down may leak on EMFILE only */
		return -1;
	}
	fds[0] = net, fds[1] = sp[1], fds[2] = down[1], fds[3] = up[0];
	for (tries = 0; tries < 2 && r < 0; tries++) {
		if (engine_fd < 0 && engine_start() < 0)
			break;
		if ((r = send_fds(engine_fd, "Y", fds, 4)) < 0) {
			close(engine_fd);	/* gone: start a new one */
			engine_fd = -1;
		}
	}
	close(sp[1]), close(down[1]), close(up[0]);
	t->ctl = sp[0], t->rd = down[0], t->wr = up[1];
	if (r < 0)
		starttls_close(t);
	return r;
}

/* env_fd - a descriptor number from the environment, or -1 */
static int env_fd(const char *name)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (!v || !*v)
		return -1;
	n = strtol(v, &end, 10);
	if (*end || n < 0 || n > 65535 || fcntl((int)n, F_GETFD) < 0)
		return -1;
	fcntl((int)n, F_SETFD, FD_CLOEXEC);	/* the deliverer runs no program */
	return (int)n;
}

/* starttls_open - find the engine for a new session */
void starttls_open(struct starttls *t)
{
	memset(t, 0, sizeof *t);
	t->ctl = t->rd = t->wr = -1;
	if (engine_chan >= 0) {
		t->spawn = cfg.tls_cert[0] != '\0';
		return;
	}
	t->ctl = env_fd("SSLCTLFD");
	t->rd = env_fd("SSLREADFD");
	t->wr = env_fd("SSLWRITEFD");
	if (t->ctl < 0 || t->rd < 0 || t->wr < 0)
		t->ctl = t->rd = t->wr = -1;
}

/* starttls_offered - may EHLO list STARTTLS (and the verb run)? */
int starttls_offered(const struct starttls *t)
{
	return !t->active && (t->ctl >= 0 || t->spawn);
}

/* starttls_close - drop the engine's descriptors (session end) */
void starttls_close(struct starttls *t)
{
	if (t->ctl >= 0)
		close(t->ctl);
	if (t->rd >= 0)
		close(t->rd);
	if (t->wr >= 0)
		close(t->wr);
	t->ctl = t->rd = t->wr = -1;
}

/* engine_gone - has the engine closed the control fd already? */
static int engine_gone(int ctl)
{
	struct pollfd p = { ctl, POLLIN, 0 };

	/* a live engine writes nothing before our 'Y': readable means EOF */
	return poll(&p, 1, 0) != 0;
}

/*
 * starttls_begin - get the engine and ask it to start; -1: 454.  Our
 * own engine gets the start with the request ("Y" for "T" then 'Y'):
 * one wake-up less per session.
 */
int starttls_begin(struct starttls *t, int net)
{
	if (t->spawn)
		return request(t, net);
	if (t->ctl < 0 || engine_gone(t->ctl) || write(t->ctl, "Y", 1) != 1) {
		if (t->spawn)
			starttls_close(t);	/* a fresh engine next time */
		return -1;
	}
	return 0;
}

/* read_vars - the engine's answer into buf, bounded; VARS_* */
static int read_vars(struct starttls *t, char *buf, long timeout)
{
	time_t end = time(NULL) + timeout;
	size_t len = 0;
	int r = VARS_MORE;

	while (r == VARS_MORE && len < TLS_VARS_MAX) {
		struct pollfd p = { t->ctl, POLLIN, 0 };
		long left = end - time(NULL);
		ssize_t n;
		int k = left > 0 ? poll(&p, 1, left * 1000) : 0;

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			snprintf(t->info.error, sizeof t->info.error, "handshake timed out");
			return VARS_BAD;
		}
		if ((n = read(t->ctl, buf + len, TLS_VARS_MAX - len)) <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			break;
		}
		len += n;
		r = starttls_vars(&t->info, buf, len);
	}
	if (r == VARS_MORE || r == VARS_BAD)
		starttls_vars(&t->info, buf, len);	/* keep any ERROR= */
	return r;
}

/* starttls_finish - after 220: the handshake's outcome; 0 or -1 */
int starttls_finish(struct starttls *t, long timeout)
{
	char buf[TLS_VARS_MAX];
	int r = read_vars(t, buf, timeout);

	close(t->ctl);
	t->ctl = -1;
	if (r != VARS_DONE || !t->info.protocol[0]) {
		if (!t->info.error[0])
			snprintf(t->info.error, sizeof t->info.error, "%s",
			    r == VARS_DONE ? "engine sent no protocol" : "engine ended");
		return -1;
	}
	t->active = 1;
	return 0;
}

/* token - copy a name like TLSv1.3 or ECDHE-RSA-AES256-GCM-SHA384 safely */
static void token(char *dst, size_t cap, const char *v, size_t n)
{
	size_t i;

	if (n >= cap)
		n = cap - 1;
	for (i = 0; i < n; i++)
		dst[i] = isalnum((unsigned char)v[i]) || strchr("._-/+", v[i]) ? v[i] : '_';
	dst[n] = '\0';
}

/* reason - copy free text: printable ASCII, no quote or backslash */
static void reason(char *dst, size_t cap, const char *v, size_t n)
{
	size_t i;

	if (n >= cap)
		n = cap - 1;
	for (i = 0; i < n; i++)
		dst[i] = v[i] >= 0x20 && v[i] < 0x7f && v[i] != '"' && v[i] != '\\' ? v[i] : '?';
	dst[n] = '\0';
}

/* one_var - store one NAME=value we know; others are ignored */
static void one_var(struct tls_info *ti, const char *s, size_t n)
{
	const char *eq = memchr(s, '=', n);
	size_t k, vlen;
	const char *v;

	k = eq - s, v = eq + 1, vlen = n - k - 1;
	if (k == 12 && memcmp(s, "SSL_PROTOCOL", 12) == 0)
		token(ti->protocol, sizeof ti->protocol, v, vlen);
	else if (k == 10 && memcmp(s, "SSL_CIPHER", 10) == 0)
		token(ti->cipher, sizeof ti->cipher, v, vlen);
	else if (k == 21 && memcmp(s, "SSL_CIPHER_USEKEYSIZE", 21) == 0)
		ti->bits = vlen > 0 && vlen < 5 && strspn(v, "0123456789") >= vlen ?
		    atoi(v) : 0;
	else if (k == 5 && memcmp(s, "ERROR", 5) == 0)
		reason(ti->error, sizeof ti->error, v, vlen);
	else if (k == 21 && memcmp(s, "SSL_PEER_CERT_SUBJECT", 21) == 0)
		reason(ti->subject, sizeof ti->subject, v, vlen);
	else if (k == 20 && memcmp(s, "SSL_PEER_CERT_ISSUER", 20) == 0)
		reason(ti->issuer, sizeof ti->issuer, v, vlen);
}

/*
 * starttls_vars - decode the engine's strings in buf[0, len): VARS_DONE
 * at the empty string that ends them, VARS_MORE while it has not come,
 * VARS_BAD for a string without '='.  Pure: call it again on the whole
 * buffer as it grows.
 */
int starttls_vars(struct tls_info *ti, const char *buf, size_t len)
{
	size_t off = 0;

	memset(ti, 0, sizeof *ti);
	while (off < len) {
		const char *s = buf + off, *nul = memchr(s, '\0', len - off);
		size_t n;

		if (!nul)
			return VARS_MORE;
		if ((n = nul - s) == 0)
			return VARS_DONE;
		if (!memchr(s, '=', n) || s[0] == '=')
			return VARS_BAD;
		one_var(ti, s, n);
		off += n + 1;
	}
	return VARS_MORE;
}

/* starttls_comment - "(using TLSv1.3 with cipher X (256/256 bits))" */
size_t starttls_comment(char *dst, size_t cap, const struct tls_info *ti)
{
	char bits[32] = "";
	int n;

	if (ti->bits > 0)
		snprintf(bits, sizeof bits, " (%d/%d bits)", ti->bits, ti->bits);
	n = snprintf(dst, cap, "(using %s with cipher %s%s)", ti->protocol,
	    ti->cipher[0] ? ti->cipher : "unknown", bits);
	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}
