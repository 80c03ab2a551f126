/*
 * tlsspawn.c - the supervisor's side of STARTTLS: start a TLS engine for
 * a worker whose client sent STARTTLS, and check that the engine can
 * load the certificate and key.
 *
 * Interface: tls_chan_recv() replaces recv() on a worker's channel and
 * also takes the descriptor an "E" request carries: the engine's end of
 * a socketpair whose other end the worker keeps; tls_spawn() starts
 * `tls_engine -s` on it.  From then on the worker hands each STARTTLS
 * session (socket, control socketpair, two pipes) to its engine itself.
 * tls_check() runs `tls_engine -n` (smtpd -n, supervisor start, SIGHUP).
 * Why the supervisor: it keeps the privileges it started with, so the
 * engine can read a key that only root may read, then drops to
 * session_user before its first network byte; the worker, which parses
 * the client's bytes, never holds the key.  The supervisor itself only
 * passes a descriptor on; it reads no network byte.  The engine is a
 * separate program (smtpd links libc only), started at a worker's first
 * STARTTLS, so sessions that never use TLS pay nothing.  It loads the
 * key once and serves the worker's TLS sessions one after the other, as
 * the worker serves its clients: exec and OpenSSL's start-up (~25 ms of
 * CPU here) are paid once per worker, not per session.  It ends with its
 * worker; SIGHUP replaces the workers, so the next STARTTLS reads renewed
 * files.
 * Resumption: we hold the session ticket keys (random, made here, the
 * current one and the one before; never on disk, never in argv or the
 * environment) and give them to each engine on its fd 4 (-K) at start;
 * tls_keys_rotate() makes a new one (at start, on SIGHUP, and every
 * half tls_session_lifetime) and tls_keys_push() sends it to a running
 * engine.  So a client resumes its session on whichever worker's engine
 * it lands.  Workers and the queue child forget the keys after the fork
 * (tls_keys_forget): they never hold them.
 * The engine runs as tls_user, not session_user: a session that a client
 * compromised cannot signal, trace or read the process holding the key.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "tls/ticket.h"
#include "tlsspawn.h"

extern char **environ;

/* The supervisor's ticket keys: keys[0] the current, keys[1] the one before. */
static struct ticket_key keys[2];
static int nkeys;		/* 0 until the first rotation */

/* tls_keys_rotate - a new random current key; the old one decrypts on */
int tls_keys_rotate(void)
{
	struct ticket_key k;
	uint32_t name = nkeys ? keys[0].name + 1 : 0;

	if (getrandom(k.key, sizeof k.key, 0) != sizeof k.key ||
	    (!nkeys && getrandom(&name, sizeof name, 0) != sizeof name))
		return -1;
	k.name = name ? name : 1;	/* 0 is libtls's empty slot */
	keys[1] = keys[0], keys[0] = k;
	nkeys = nkeys ? 2 : 1;
	explicit_bzero(&k, sizeof k);
	return 0;
}

/* tls_keys_forget - in a child that must not hold the keys */
void tls_keys_forget(void)
{
	explicit_bzero(keys, sizeof keys);
	nkeys = 0;
}

/* send_keys - the newest n keys as one message (ticket.h); 0 or -1 */
static int send_keys(int fd, int n)
{
	unsigned char msg[2 * TICKET_REC];
	int i, r;

	for (i = 0; i < n && i < nkeys; i++)
		ticket_put(msg + i * TICKET_REC, &keys[i]);
	r = send(fd, msg, i * TICKET_REC, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 ? -1 : 0;
	explicit_bzero(msg, sizeof msg);
	return r;
}

/* tls_keys_push - the current key to a running engine's channel */
int tls_keys_push(int fd)
{
	return fd >= 0 && nkeys ? send_keys(fd, 1) : 0;
}

/* tls_chan_recv - one message from a worker, and an "E" request's fd */
ssize_t tls_chan_recv(int chan, char *buf, size_t cap, int *fd)
{
	int fds[4];
	char cbuf[CMSG_SPACE(sizeof fds)];
	struct iovec iov = { buf, cap };
	struct msghdr m = { 0 };
	struct cmsghdr *c;
	ssize_t n;
	int i, k = 0;

	m.msg_iov = &iov, m.msg_iovlen = 1;
	m.msg_control = cbuf, m.msg_controllen = sizeof cbuf;
	*fd = -1;
	if ((n = recvmsg(chan, &m, MSG_CMSG_CLOEXEC)) < 0)
		return n;
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		k = k > 4 ? 4 : k;
		memcpy(fds, CMSG_DATA(c), k * sizeof(int));
	}
	if (n >= 1 && buf[0] == 'E' && k == 1 && !(m.msg_flags & MSG_CTRUNC))
		*fd = fds[0];
	else
		for (i = 0; i < k; i++)
			close(fds[i]);	/* not a well-formed request */
	return n;
}

/* engine_argv - the engine's command line: mode "-n" or "-s"; num[2][24] */
static void engine_argv(char **av, char *mode, char num[2][24])
{
	int n = 0;

	snprintf(num[0], 24, "%ld", cfg.cmd_timeout);
	snprintf(num[1], 24, "%ld", cfg.tls_session_lifetime);
	av[n++] = cfg.tls_engine;
	av[n++] = mode;
	if (strcmp(cfg.log, "stderr") == 0)
		av[n++] = "-e";
	if (strcmp(mode, "-s") == 0 && cfg.tls_session_lifetime > 0)
		av[n++] = "-K";		/* ticket keys on fd 4 */
	av[n++] = "-l", av[n++] = num[1];
	av[n++] = "-u", av[n++] = cfg.tls_user;
	av[n++] = "-T", av[n++] = num[0];	/* the session waits as long, no longer */
	av[n++] = "-c", av[n++] = cfg.tls_cert;
	av[n++] = "-k", av[n++] = cfg.tls_key;
	av[n] = NULL;
}

/* spawn_attr - signals back to their defaults, none blocked */
static void spawn_attr(posix_spawnattr_t *a)
{
	sigset_t def, none;

	sigemptyset(&def);
	sigaddset(&def, SIGPIPE), sigaddset(&def, SIGUSR1), sigaddset(&def, SIGHUP);
	sigemptyset(&none);
	posix_spawnattr_init(a);
	posix_spawnattr_setsigdefault(a, &def);
	posix_spawnattr_setsigmask(a, &none);
	posix_spawnattr_setflags(a, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
}

/*
 * key_channel - with resumption on: a socketpair whose one end becomes
 * the engine's fd 4, holding the current and the previous key already;
 * *ours gets the other end (for tls_keys_push), else -1.  0 or -1.
 */
static int key_channel(int sp[2], int *ours)
{
	*ours = sp[0] = sp[1] = -1;
	if (cfg.tls_session_lifetime == 0)
		return 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return -1;
	if (send_keys(sp[0], 2) < 0) {
		close(sp[0]), close(sp[1]);
		return -1;
	}
	*ours = sp[0];
	return 0;
}

/* above4 - fd moved above 4 (closing the old one); -1 stays -1 */
static int above4(int fd)
{
	int n;

	if (fd < 0 || fd > 4)
		return fd;
	n = fcntl(fd, F_DUPFD_CLOEXEC, 5);
	close(fd);
	return n;
}

/*
 * tls_spawn - start a worker's engine, `tls_engine -s`, with fd 3 the
 * worker's request channel (the one descriptor of its "E" message) and
 * fd 4 its ticket keys; *keys gets our end of those (or -1).  Closes
 * fd.  The engine is our child: reap() collects it.
 */
int tls_spawn(int fd, int *keys_out)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	char *av[20], num[2][24];
	pid_t pid;
	int r = -1, sp[2];

	*keys_out = -1;
	fd = above4(fd);	/* dup2 to 3 and 4 must not clobber the other */
	if (fd >= 0 && cfg.tls_cert[0] && key_channel(sp, keys_out) == 0) {
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, fd, 3);
		if ((sp[1] = above4(sp[1])) >= 0)
			posix_spawn_file_actions_adddup2(&fa, sp[1], 4);
		spawn_attr(&attr);
		engine_argv(av, "-s", num);
		r = posix_spawn(&pid, cfg.tls_engine, &fa, &attr, av, environ) == 0 ? 0 : -1;
		posix_spawn_file_actions_destroy(&fa);
		posix_spawnattr_destroy(&attr);
		if (sp[1] >= 0)
			close(sp[1]);
		if (r < 0 && *keys_out >= 0) {
			close(*keys_out);
			*keys_out = -1;
		}
	}
	if (fd >= 0)
		close(fd);
	return r;
}

/*
 * user_check - as root the engine drops to tls_user: an account of its
 * own, neither root nor session_user (whose processes parse network
 * bytes and could otherwise signal or trace the one holding the key)
 */
static int user_check(char *why, size_t cap)
{
	struct passwd *pw;
	uid_t tls_uid;

	if (cfg.uid != 0)
		return 0;	/* not root: everything runs as us */
	if (!(pw = getpwnam(cfg.tls_user)) || pw->pw_uid == 0) {
		snprintf(why, cap, "tls_user %s %s (create it: INSTALL)", cfg.tls_user,
		    pw ? "is root" : "does not exist");
		return -1;
	}
	tls_uid = pw->pw_uid;
	if ((pw = getpwnam(cfg.session_user)) && pw->pw_uid == tls_uid) {
		snprintf(why, cap, "tls_user %s has the uid of session_user %s",
		    cfg.tls_user, cfg.session_user);
		return -1;
	}
	return 0;
}

/*
 * tls_check - can the engine load tls_cert and tls_key?  0 when TLS is
 * off or fine; -1 with the reason in why (the engine also prints its
 * own on stderr).
 */
int tls_check(char *why, size_t cap)
{
	char *av[20], num[2][24];
	pid_t pid;
	int st = 0;

	if (!cfg.tls_cert[0] && !cfg.tls_key[0])
		return 0;
	if (!cfg.tls_cert[0] || !cfg.tls_key[0]) {
		snprintf(why, cap, "tls_cert and tls_key must be set together");
		return -1;
	}
	if (access(cfg.tls_engine, X_OK) < 0) {
		snprintf(why, cap, "tls_engine %s: %s", cfg.tls_engine, strerror(errno));
		return -1;
	}
	if (user_check(why, cap) < 0)
		return -1;
	engine_argv(av, "-n", num);
	if ((pid = fork()) == 0) {
		if (dup2(2, 1) >= 0)	/* its "ok" line is for -n's reader */
			execv(cfg.tls_engine, av);
		_exit(111);
	}
	while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;	/* the supervisor's SIGCHLD handler interrupts */
	if (pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		snprintf(why, cap, "%s cannot use tls_cert %s with tls_key %s",
		    cfg.tls_engine, cfg.tls_cert, cfg.tls_key);
		return -1;
	}
	return 0;
}
