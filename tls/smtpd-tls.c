/*
 * smtpd-tls.c - the TLS engine's start-up: options, the key, privileges,
 * and the UCSPI-TLS wrapper.
 *
 *   smtpd-tls [-enKs] [-u user] [-t idle] [-T handshake] [-l lifetime] [-R keyfile]
 *             -c CERT -k KEY [-- prog args]
 *
 * With a program (the wrapper, for inetd, xinetd, systemd Accept=yes and
 * tcpserver): the client's socket is fd 0/1 (or fd 3 when systemd passes
 * LISTEN_FDS).  We read the certificate chain and key, fork, and exec the
 * program with the socket on fd 0/1 and SSLCTLFD, SSLREADFD, SSLWRITEFD
 * naming our control socket and the two clear-text pipes; the program
 * speaks plain text on the socket until it asks for TLS.  This process
 * drops to the unprivileged account before it reads a network byte and
 * exits with the program's exit status once both are done.
 * -s (one engine per prefork worker, started by smtpd's supervisor at
 * the worker's first STARTTLS): requests come on fd 3 from the worker,
 * each a "T" with four descriptors (SCM_RIGHTS): the client's socket,
 * the control socket, the pipe to the application and the one from it
 * ("Y" instead of "T": start at once, as if 'Y' had come on the control
 * socket).
 * We serve them one after the other, as the worker serves its clients;
 * the key is loaded once, so a TLS session costs a handshake, not an
 * exec and OpenSSL's start-up (~25 ms of CPU).  A new request ends what
 * is left of the previous session (the worker is done with it).  EOF on
 * fd 3 (the worker exited: retirement, SIGHUP) ends us.
 * Without a program or -s: one session, the socket on fd 0/1, the
 * control socket on fd 3, clear text to the application on fd 4 and
 * from it on fd 5.
 * -n only checks that the certificate and key load and match.
 * Resumption (session tickets, -l seconds, 0 = none): the ticket keys
 * come from the supervisor on fd 4 (-K with -s: one message at start,
 * then one per rotation, ticket.h), so every engine of one supervisor
 * resumes every other's sessions; or from a key file (-R, mode 0600,
 * read before the drop) for the wrapper.  Without keys, no tickets.
 *
 * Policy (libtls): TLS 1.2 and 1.3 only, the "secure" cipher list (all
 * with forward secrecy), no client certificate asked, and libtls's own
 * refusal of renegotiation; OpenSSL 3 has no TLS compression.  The key
 * is read at every start, so a renewed certificate needs no restart.
 * If the key cannot be loaded the wrapper still runs the program but
 * closes the control fd at once: smtpd then answers STARTTLS with 454.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <tls.h>

#include "engine.h"
#include "keys.h"
#include "../logline.h"

extern char **environ;

#define DEFAULT_USER	"smtpd-tls"	/* smtpd's default tls_user */
#define KEYS_FD		4		/* -K: ticket keys from the supervisor */
#define SESSION_ID	"smtpd-tls"	/* the same in every engine: resumable */

/* Options; set once in main. */
struct options {
	const char *cert, *key;	/* PEM files */
	const char *user;	/* account to drop to when started as root */
	const char *keyfile;	/* -R: ticket keys, or NULL */
	long lifetime;		/* -l: seconds a session may be resumed */
	int key_chan;		/* -K: ticket keys come on KEYS_FD */
	int check;		/* -n */
	int serve;		/* -s */
	int to_stderr;		/* -e */
	char **prog;		/* the wrapped program, or NULL */
};

static int log_stderr;		/* -e: log lines go to stderr, not syslog */
static char log_id[17];		/* this engine's id, first on its log lines */

/* elog - one log line, "ID event key=value ...", through smtpd's logline.c */
#define elog(fmt, ...)	log_line(log_stderr, LOG_ERR, "%s " fmt, log_id, __VA_ARGS__)

/* die - log and exit 111 (temporary failure, as smtpd does) */
static void die(const char *what, const char *why)
{
	elog("tls result=failed reason=\"%s: %s\"", what, why);
	exit(111);
}

/* resumable - tickets on? a lifetime and a source of shared keys */
static int resumable(const struct options *o)
{
	return o->lifetime > 0 && (o->keyfile || o->key_chan);
}

/* load - a server context with our policy, cert and key; NULL + why */
static struct tls *load(const struct options *o, char *why, size_t cap)
{
	struct tls_config *tc = tls_config_new();
	struct tls *srv = tls_server();

	/* the cipher list is tls_config_new()'s default, "secure": setting
	 * it again would build and free one more SSL context per start */
	if (!tc || !srv)
		snprintf(why, cap, "out of memory");
	else if (tls_config_set_protocols(tc, TLS_PROTOCOL_TLSv1_2 | TLS_PROTOCOL_TLSv1_3) < 0 ||
	    tls_config_set_keypair_file(tc, o->cert, o->key) < 0 ||
	    (resumable(o) && (tls_config_set_session_lifetime(tc, o->lifetime) < 0 ||
	    tls_config_set_session_id(tc, (const unsigned char *)SESSION_ID,
	    sizeof SESSION_ID - 1) < 0)))
		snprintf(why, cap, "%s", tls_config_error(tc));
	else if (tls_configure(srv, tc) < 0)	/* checks that key and cert match */
		snprintf(why, cap, "%s: not a PEM private key, or not the key of %s",
		    tls_error(srv), o->cert);
	else
		why = NULL;
	if (tc)
		tls_config_clear_keys(tc);	/* the SSL context keeps its own copy */
	tls_config_free(tc);		/* srv holds a reference */
	if (why) {
		tls_free(srv);
		return NULL;
	}
	keys_use(tc, log_id, log_stderr);	/* tc lives as long as srv */
	return srv;
}

/* drop - become the unprivileged account for good (root only) */
static void drop(const char *name)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return;
	if (!(pw = getpwnam(name)))
		die("no such user", name);
	if (pw->pw_uid == 0)
		die("will not run as root", name);
	if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		die("cannot drop privileges", strerror(errno));
	if (setuid(0) == 0 || geteuid() == 0 || getegid() == 0)
		die("cannot drop privileges", "root could be regained");
}

/* usage - the command line, then exit 100 (permanent: a bad call) */
static void usage(void)
{
	fprintf(stderr, "usage: smtpd-tls [-enKs] [-u user] [-t idle] [-T handshake] "
	    "[-l lifetime] [-R keyfile] -c cert -k key [-- prog args...]\n");
	exit(100);
}

/* seconds - a positive number of seconds from an option */
static long seconds(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < 1 || v > 86400)
		usage();
	return v;
}

/* options - parse argv into o and the engine's timeouts */
static void options(int argc, char **argv, struct options *o, struct engine *e)
{
	int c;

	o->user = DEFAULT_USER;
	o->lifetime = 3600;
	e->hs_timeout = 60, e->idle_timeout = 1200;
	while ((c = getopt(argc, argv, "+enKsc:k:u:t:T:l:R:")) != -1) {
		switch (c) {
		case 'e': o->to_stderr = 1; break;
		case 'K': o->key_chan = 1; break;
		case 'R': o->keyfile = optarg; break;
		case 'l': o->lifetime = strcmp(optarg, "0") ? seconds(optarg) : 0; break;
		case 'n': o->check = 1; break;
		case 's': o->serve = 1; break;
		case 'c': o->cert = optarg; break;
		case 'k': o->key = optarg; break;
		case 'u': o->user = optarg; break;
		case 't': e->idle_timeout = seconds(optarg); break;
		case 'T': e->hs_timeout = seconds(optarg); break;
		default: usage();
		}
	}
	if (!o->cert || !o->key || (o->key_chan && !o->serve))
		usage();
	if (optind < argc)
		o->prog = argv + optind;
}

/* fds_open - make sure 0, 1 and 2 exist, so new fds never land there */
static void fds_open(void)
{
	int fd;

	for (fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
			exit(111);
}

/* setfd - export one of the program's fds: kept across exec, in env */
static void setfd(const char *name, int fd)
{
	char num[16];

	snprintf(num, sizeof num, "%d", fd);
	if (fcntl(fd, F_SETFD, 0) < 0 || setenv(name, num, 1) < 0)
		die("cannot pass descriptors", strerror(errno));
}

/*
 * run_prog - start the program: socket on 0/1, SSL*FD in its
 * environment, SIGPIPE back to default.  posix_spawn (a vfork), not
 * fork: copying this process's page tables, libcrypto's mappings and
 * all, cost more CPU than anything else we do before the exec.
 */
static pid_t run_prog(char **prog, int net, int ctl, int rd, int wr)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t def;
	pid_t pid;
	int r;

	posix_spawn_file_actions_init(&fa);
	if (net != 0) {		/* systemd's fd 3 becomes the program's 0/1 */
		posix_spawn_file_actions_adddup2(&fa, net, 0);
		posix_spawn_file_actions_adddup2(&fa, net, 1);
		posix_spawn_file_actions_addclose(&fa, net);
		unsetenv("LISTEN_FDS"), unsetenv("LISTEN_PID"), unsetenv("LISTEN_FDNAMES");
	}
	setfd("SSLCTLFD", ctl);		/* we close our copies after the spawn */
	setfd("SSLREADFD", rd);
	setfd("SSLWRITEFD", wr);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigdefault(&attr, &def);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
	r = posix_spawnp(&pid, prog[0], &fa, &attr, prog, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (r != 0)
		die("cannot run program", strerror(r));
	return pid;
}

/* systemd_fd - 3 when systemd passed the connection (Accept=yes), else 0 */
static int systemd_fd(void)
{
	const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");

	return pid && n && atol(pid) == (long)getpid() && atoi(n) == 1 ? 3 : 0;
}

/*
 * wrap - the UCSPI-TLS wrapper: start the program, serve it, return
 * its exit status.  ctl is a socketpair; the clear text goes through
 * two pipes, so each direction can be closed alone.
 */
static int wrap(struct engine *e, const struct options *o)
{
	int sp[2], down[2], up[2], st = 0, net = systemd_fd();
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0 ||
	    pipe2(down, O_CLOEXEC) < 0 || pipe2(up, O_CLOEXEC) < 0)
		die("cannot make pipes", strerror(errno));
	pid = run_prog(o->prog, net, sp[1], down[0], up[1]);
	close(sp[1]), close(down[0]), close(up[1]);
	e->net_in = e->net_out = net;
	e->ctl = sp[0], e->to_app = down[1], e->from_app = up[0];
	if (!e->server) {	/* the program will answer STARTTLS with 454 */
		close(e->ctl), close(e->to_app), close(e->from_app);
		close(0), close(1), close(net);
	} else {
		drop(o->user);
		engine_serve(e);	/* closes the socket and the pipes */
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 111;
}

/* recv_request - "T" or "Y" and four descriptors; 0 at EOF, -1 bad */
static int recv_request(int chan, int fds[4], int *ask)
{
	char c, cbuf[CMSG_SPACE(4 * sizeof(int))];
	struct iovec iov = { &c, 1 };
	struct msghdr m = { 0 };
	struct cmsghdr *cm;
	ssize_t n;
	int k = 0, i;

	m.msg_iov = &iov, m.msg_iovlen = 1;
	m.msg_control = cbuf, m.msg_controllen = sizeof cbuf;
	do
		n = recvmsg(chan, &m, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n == 0 ? 0 : -2;
	for (cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			memcpy(fds, CMSG_DATA(cm), (k > 4 ? 4 : k) * sizeof(int));
		}
	*ask = c == 'Y' ? 'Y' : 0;	/* "Y": start now, as if 'Y' came on ctl */
	if ((c == 'T' || c == 'Y') && k == 4 && !(m.msg_flags & MSG_CTRUNC))
		return 1;
	for (i = 0; i < k && i < 4; i++)
		close(fds[i]);
	return -1;
}

/* wait_request - until chan is readable; new ticket keys meanwhile */
static void wait_request(int chan)
{
	struct pollfd p[2] = { { chan, POLLIN, 0 }, { -1, POLLIN, 0 } };

	while (p[1].fd = keys_fd(), poll(p, 2, -1) >= 0 || errno == EINTR) {
		if (p[1].revents)
			keys_read();
		if (p[0].revents)
			return;
	}
}

/* serve_requests - -s: one session after the other, until EOF on chan */
static int serve_requests(struct engine *e, int chan)
{
	int fds[4], r;

	e->chan = chan;
	while (wait_request(chan), (r = recv_request(chan, fds, &e->ask)) != 0) {
		if (r == -2)
			return 111;
		if (r < 0)
			continue;
		e->net_in = e->net_out = fds[0];
		e->ctl = fds[1], e->to_app = fds[2], e->from_app = fds[3];
		engine_serve(e);	/* closes all four */
	}
	return 0;
}

/* main - options, key, then the wrapper or the supervisor's engine */
int main(int argc, char **argv)
{
	struct options o = { 0 };
	struct engine e = { .chan = -1 };
	char why[512];
	int st;

	options(argc, argv, &o, &e);
	log_stderr = o.to_stderr || o.check;
	snprintf(log_id, sizeof log_id, "%08lX%08lX", (unsigned long)time(NULL) & 0xffffffffUL,
	    (unsigned long)getpid() & 0xffffffffUL);
	log_ident("smtpd-tls");
	if (!log_stderr)
		openlog("smtpd-tls", LOG_PID | LOG_NDELAY, LOG_MAIL);
	signal(SIGPIPE, SIG_IGN);
	fds_open();
	if (tls_init() < 0)
		die("tls_init", "failed");
	if ((e.server = load(&o, why, sizeof why)) && resumable(&o)) {
		const char *bad = o.keyfile ? keys_file(o.keyfile) :
		    keys_channel(KEYS_FD) < 0 ? "no ticket key channel on fd 4" : NULL;

		if (bad)
			die(o.keyfile ? o.keyfile : "-K", bad);
	}
	if (!e.server) {
		e.load_error = why;
		elog("tls cert=%s key=%s result=failed reason=\"%s\"", o.cert, o.key, why);
		if (o.check || !o.prog)
			return 1;	/* -s: the supervisor's requests fail (454) */
	}
	if (o.check) {
		printf("smtpd-tls: %s and %s: ok\n", o.cert, o.key);
		tls_free(e.server);
		return 0;
	}
	if (o.prog) {
		st = wrap(&e, &o);
	} else if (o.serve) {
		drop(o.user);
		st = serve_requests(&e, 3);
	} else {
		e.net_in = 0, e.net_out = 1, e.ctl = 3, e.to_app = 4, e.from_app = 5;
		drop(o.user);
		st = engine_serve(&e);
	}
	tls_free(e.server);
	return st;
}
