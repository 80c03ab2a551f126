/*
 * relay.c - the engine's work after start-up: wait for the application
 * to ask for TLS, do the handshake, tell the application what was
 * negotiated, then copy clear text both ways.
 *
 * Interface: engine_serve(), called once the private key is loaded and
 * privileges are dropped.  UCSPI-TLS (the s6-networking / ucspi-ssl
 * convention): until the application writes one octet to the control
 * fd, we never touch the network, so the application speaks plain text
 * on the socket itself.  'y' starts TLS; 'Y' also asks for the
 * variables: NUL-terminated NAME=value strings, then an empty string.
 * When the handshake fails we send "ERROR=reason" (for 'Y') and close
 * the control fd without the empty string; the application logs it.
 * Invariants: every buffer is fixed (RELAY_BUF each way); every wait
 * has a timeout (handshake: hs_timeout; afterwards idle_timeout without
 * traffic; LINGER seconds once one side has finished); each direction
 * closes on its own (half-close): the client's close_notify or FIN
 * becomes EOF for the application, and the application's EOF becomes
 * our close_notify and a FIN, while the other direction keeps flowing.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <tls.h>

#include "engine.h"
#include "keys.h"

#define LINGER	10	/* seconds we wait for the client once the app ended */

/* One relayed connection: two buffers and where each side stands. */
struct relay {
	struct tls *c;		/* the client's TLS connection */
	const struct engine *e;
	int to_app, from_app;	/* -1 once closed */
	int net_eof;		/* client sent close_notify, FIN, or broke */
	int app_eof;		/* application closed its output */
	int closed;		/* we sent close_notify and FIN */
	int broken;		/* TLS error: stop writing to the network */
	int abandon;		/* -s: the next session's request is waiting */
	int app_drained;	/* the last read emptied from_app: poll first */
	short net_want;		/* poll events libtls asked for */
	short app_want;		/* POLLOUT on to_app when down is stuck */
	size_t uplen;		/* octets in up (application -> client) */
	size_t downlen;		/* octets in down (client -> application) */
	char up[RELAY_BUF];
	char down[RELAY_BUF];
};

/*
 * The client's socket as libtls reads it: OpenSSL reads a record's
 * 5-octet header, then its body, each a read(2) of its own; here one
 * read fills a buffer and those small reads come out of it.  A system
 * call is dear on this kind of VM (most of the engine's CPU was kernel
 * time), and a flight of several records now costs one.
 */
struct netin {
	const struct engine *e;
	size_t off, len;	/* unread octets: buf[off, len) */
	int drained;		/* the last read emptied the socket: poll first */
	unsigned char buf[RELAY_BUF + 512];	/* a whole record and its header */
};
static struct netin netin;	/* one session at a time */

/* now - monotonic seconds */
static time_t now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* nonblock - set O_NONBLOCK on fd (our fds carry no other F_SETFL flag) */
static void nonblock(int fd)
{
	fcntl(fd, F_SETFL, O_NONBLOCK);
}

/* net_read - libtls's read callback: from netin's buffer, refilled whole */
static ssize_t net_read(struct tls *c, void *buf, size_t cap, void *arg)
{
	struct netin *in = arg;
	ssize_t n;

	(void)c;
	if (in->off == in->len) {
		if (in->drained)	/* it would say EAGAIN: skip the system call */
			return TLS_WANT_POLLIN;
		n = read(in->e->net_in, in->buf, sizeof in->buf);
		in->drained = n < 0 || (n > 0 && (size_t)n < sizeof in->buf);
		if (n <= 0)
			return n < 0 && (errno == EAGAIN || errno == EINTR) ? TLS_WANT_POLLIN : n;
		in->off = 0, in->len = n;
	}
	n = in->len - in->off < cap ? in->len - in->off : cap;
	memcpy(buf, in->buf + in->off, n);
	in->off += n;
	return n;
}

/* net_write - libtls's write callback: straight to the socket */
static ssize_t net_write(struct tls *c, const void *buf, size_t len, void *arg)
{
	const struct netin *in = arg;
	ssize_t n = write(in->e->net_out, buf, len);

	(void)c;
	return n < 0 && (errno == EAGAIN || errno == EINTR) ? TLS_WANT_POLLOUT : n;
}

/* want - poll events for a libtls TLS_WANT_* result, 0 for others */
static short want(ssize_t r)
{
	return r == TLS_WANT_POLLIN ? POLLIN : r == TLS_WANT_POLLOUT ? POLLOUT : 0;
}

/* net_wait - wait for the network as libtls asked; 0 on timeout */
static int net_wait(const struct engine *e, short ev, time_t deadline)
{
	struct pollfd p[2] = { { e->net_in, ev & POLLIN, 0 },
			       { e->net_out, ev & POLLOUT, 0 } };
	long left = deadline - now();
	int r;

	if (left <= 0)
		return 0;
	do
		r = poll(p, 2, left * 1000);
	while (r < 0 && errno == EINTR);
	netin.drained = 0;
	return r > 0;
}

/* handshake - accept the client's TLS; NULL (reason in why) on failure */
static struct tls *handshake(const struct engine *e, char *why, size_t cap)
{
	struct tls *c = NULL;
	time_t deadline = now() + e->hs_timeout;
	int r, one = 1;

	if (!e->server) {
		snprintf(why, cap, "%s", e->load_error);
		return NULL;
	}
	nonblock(e->net_in);
	nonblock(e->net_out);
	/* records go out whole: no Nagle wait between the handshake's last
	 * flight, the session tickets and the first reply (delayed ACKs
	 * cost 40 ms each otherwise); not a TCP socket: no harm */
	setsockopt(e->net_out, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	memset(&netin, 0, offsetof(struct netin, buf));
	netin.e = e;
	if (tls_accept_cbs(e->server, &c, net_read, net_write, &netin) < 0) {
		snprintf(why, cap, "%s", tls_error(e->server));
		return NULL;
	}
	while ((r = tls_handshake(c)) == TLS_WANT_POLLIN || r == TLS_WANT_POLLOUT)
		if (!net_wait(e, want(r), deadline)) {
			snprintf(why, cap, "handshake timed out");
			tls_free(c);
			return NULL;
		}
	if (r < 0) {
		snprintf(why, cap, "%s", tls_error(c) ? tls_error(c) : "handshake failed");
		tls_free(c);
		return NULL;
	}
	return c;
}

/* put_var - append "NAME=value\0" to buf; skipped when value is empty */
static size_t put_var(char *buf, size_t len, const char *name, const char *value)
{
	int n;

	if (!value || !*value)
		return len;
	n = snprintf(buf + len, VARS_MAX - len, "%s=%s", name, value);
	if (n < 0 || (size_t)n + 2 > VARS_MAX - len)
		return len;	/* leaves room for the final empty string */
	return len + n + 1;
}

/* send_vars - the SSL_* variables, then the empty string ending them */
static void send_vars(int ctl, struct tls *c)
{
	char buf[VARS_MAX], bits[16];
	size_t len = 0;

	snprintf(bits, sizeof bits, "%d", tls_conn_cipher_strength(c));
	len = put_var(buf, len, "SSL_PROTOCOL", tls_conn_version(c));
	len = put_var(buf, len, "SSL_CIPHER", tls_conn_cipher(c));
	len = put_var(buf, len, "SSL_CIPHER_USEKEYSIZE", bits);
	len = put_var(buf, len, "SSL_TLS_SNI", tls_conn_servername(c));
	buf[len++] = '\0';
	if (write(ctl, buf, len) < 0) {
		/* the application is gone; the relay will notice */
	}
}

/* send_error - tell an application that asked with 'Y' why TLS failed */
static void send_error(int ctl, const char *why)
{
	char buf[VARS_MAX];
	size_t len = put_var(buf, 0, "ERROR", why);

	if (len && write(ctl, buf, len) < 0) {
		/* nothing more we can do */
	}
}

/* wait_start - the octet on the control fd; 0 when the app never asks */
static int wait_start(int ctl)
{
	char c;
	ssize_t n;

	do
		n = read(ctl, &c, 1);
	while (n < 0 && errno == EINTR);
	return n == 1 && (c == 'y' || c == 'Y') ? c : 0;
}

/* net_to_down - decrypt what the client sent into down; 1 on progress */
static int net_to_down(struct relay *r)
{
	ssize_t n;

	if (r->net_eof || r->downlen == sizeof r->down)
		return 0;
	n = tls_read(r->c, r->down + r->downlen, sizeof r->down - r->downlen);
	if (n > 0) {
		r->downlen += n;
		return 1;
	}
	if (want(n)) {
		r->net_want |= want(n);
		return 0;
	}
	r->net_eof = 1;		/* close_notify, FIN, or a TLS error */
	if (n < 0)
		r->broken = 1;
	return 1;
}

/* down_to_app - pass clear text on to the application; 1 on progress */
static int down_to_app(struct relay *r)
{
	ssize_t n;

	if (r->to_app < 0) {
		r->downlen = 0;		/* nobody reads any more: drop */
		return 0;
	}
	if (r->downlen == 0) {
		if (!r->net_eof)
			return 0;
		close(r->to_app);	/* half-close: EOF for the application */
		r->to_app = -1;
		return 1;
	}
	n = write(r->to_app, r->down, r->downlen);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		r->app_want = POLLOUT;
		return 0;
	}
	if (n <= 0) {
		close(r->to_app);	/* the application stopped reading */
		r->to_app = -1;
		return 1;
	}
	memmove(r->down, r->down + n, r->downlen - n);
	r->downlen -= n;
	return 1;
}

/* app_to_up - read what the application writes; 1 on progress */
static int app_to_up(struct relay *r)
{
	ssize_t n;

	if (r->app_eof || r->uplen == sizeof r->up || r->app_drained)
		return 0;
	n = read(r->from_app, r->up + r->uplen, sizeof r->up - r->uplen);
	r->app_drained = n < 0 || (n > 0 && (size_t)n < sizeof r->up - r->uplen);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		r->app_eof = 1;
		return 1;
	}
	r->uplen += n;
	return 1;
}

/* up_to_net - encrypt to the client; close_notify + FIN after app EOF */
static int up_to_net(struct relay *r)
{
	ssize_t n;

	if (r->closed)
		return 0;
	if (r->broken) {
		r->uplen = 0, r->closed = 1;
		return 1;
	}
	if (r->uplen == 0) {
		if (!r->app_eof)
			return 0;
		if (want(n = tls_close(r->c))) {
			r->net_want |= want(n);
			return 0;
		}
		shutdown(r->e->net_out, SHUT_WR);
		r->closed = 1;
		return 1;
	}
	n = tls_write(r->c, r->up, r->uplen);
	if (want(n)) {
		r->net_want |= want(n);
		return 0;
	}
	if (n <= 0) {
		r->broken = 1;
		return 1;
	}
	memmove(r->up, r->up + n, r->uplen - n);
	r->uplen -= n;
	return 1;
}

/* relay_wait - poll every side that can move; 0 on timeout */
static int relay_wait(struct relay *r, long timeout)
{
	struct pollfd p[6];
	int n = 0, k;

	p[n].fd = r->e->net_in, p[n++].events = r->net_want & POLLIN;
	p[n].fd = r->e->net_out, p[n++].events = r->net_want & POLLOUT;
	p[n].fd = r->app_eof || r->uplen == sizeof r->up ? -1 : r->from_app;
	p[n++].events = POLLIN;
	p[n].fd = r->to_app, p[n++].events = r->app_want;	/* POLLERR: reader gone */
	p[n].fd = r->e->chan, p[n++].events = POLLIN;
	p[n].fd = keys_fd(), p[n++].events = POLLIN;	/* -K: new keys */
	do
		k = poll(p, n, timeout * 1000);
	while (k < 0 && errno == EINTR);
	netin.drained = r->app_drained = 0;	/* poll said what is ready */
	if (p[5].revents) {
		keys_read();
		if (k == 1)
			return 1;	/* nothing else moved: poll again */
	}
	/* a new request means the worker is done with this session: what
	 * the client has not read yet (it is slow or gone) is dropped */
	r->abandon = p[4].revents != 0;
	if (p[3].revents & (POLLERR | POLLHUP)) {
		close(r->to_app);
		r->to_app = -1;
	}
	return k > 0;
}

/* relay - copy until both directions are finished or time runs out */
static void relay(struct relay *r)
{
	for (;;) {
		int moved;

		r->net_want = r->app_want = 0;
		moved = net_to_down(r) | down_to_app(r);
		moved |= app_to_up(r) | up_to_net(r);
		if ((r->closed && r->to_app < 0) || r->abandon)
			return;		/* both directions are done */
		if (moved)
			continue;
		if (!relay_wait(r, r->closed ? LINGER : r->e->idle_timeout))
			return;
	}
}

/* close_all - the session's descriptors still open, each once */
static void close_all(const struct engine *e, int ctl, int to_app, int from_app)
{
	if (ctl >= 0)
		close(ctl);
	if (to_app >= 0)
		close(to_app);
	if (from_app >= 0)
		close(from_app);
	close(e->net_in);
	if (e->net_out != e->net_in)
		close(e->net_out);
}

/*
 * engine_serve - one session: wait for the start octet, handshake,
 * relay; closes every descriptor of e before it returns (-s serves the
 * next session in the same process).  Returns an exit code.
 */
int engine_serve(const struct engine *e)
{
	static struct relay r;	/* 32 KB of buffers: not on the stack */
	char why[256];
	int ask = e->ask ? e->ask : wait_start(e->ctl);

	memset(&r, 0, offsetof(struct relay, up));
	r.e = e, r.to_app = e->to_app, r.from_app = e->from_app;
	if (ask && !(r.c = handshake(e, why, sizeof why)) && ask == 'Y')
		send_error(e->ctl, why);	/* then EOF: the app gives up */
	if (r.c) {
		if (ask == 'Y')
			send_vars(e->ctl, r.c);
		close(e->ctl);
		nonblock(r.to_app);
		nonblock(r.from_app);
		relay(&r);
		tls_free(r.c);
		close_all(e, -1, r.to_app, r.from_app);
		return 0;
	}
	close_all(e, e->ctl, r.to_app, r.from_app);
	return ask ? 1 : 0;	/* 0: the application ended without STARTTLS */
}
