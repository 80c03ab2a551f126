/*
 * tlsspawn.c - the supervisor's side of STARTTLS: start a TLS engine for
 * a worker whose client sent STARTTLS, and check that the engine can
 * load the certificate and key.
 *
 * Interface: tls_chan_recv() replaces recv() on a worker's channel and
 * also takes the descriptors a 'T' request carries (the client's
 * socket, the engine's end of the control socketpair, the clear-text
 * pipe ends); tls_spawn() runs `tls_engine` on them; tls_check() runs
 * `tls_engine -n` (smtpd -n, supervisor start, SIGHUP).
 * Why the supervisor: it keeps the privileges it started with, so the
 * engine can read a key that only root may read, then drops to
 * session_user before its first network byte; the worker, which parses
 * the client's bytes, never holds the key.  The supervisor itself only
 * passes descriptors on; it reads no network byte.  The engine is a
 * separate program (smtpd links libc only), started per STARTTLS, so
 * sessions that never use TLS pay nothing, and every start reads the
 * files again, so a renewed certificate is used at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "tlsspawn.h"

extern char **environ;

#define FD_FLOOR	10	/* received fds are moved above the targets 0-5 */

/* tls_chan_recv - one message from a worker, and a 'T' request's fds */
ssize_t tls_chan_recv(int chan, char *buf, size_t cap, int fds[TLS_FDS], int *nfds)
{
	char cbuf[CMSG_SPACE(TLS_FDS * sizeof(int))];
	struct iovec iov = { buf, cap };
	struct msghdr m = { 0 };
	struct cmsghdr *c;
	ssize_t n;
	int i, k = 0;

	m.msg_iov = &iov, m.msg_iovlen = 1;
	m.msg_control = cbuf, m.msg_controllen = sizeof cbuf;
	*nfds = 0;
	if ((n = recvmsg(chan, &m, MSG_CMSG_CLOEXEC)) < 0)
		return n;
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		int got[TLS_FDS];

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		memcpy(got, CMSG_DATA(c), k * sizeof(int));
		for (i = 0; i < k; i++)
			fds[i] = got[i];
	}
	if (n < 1 || buf[0] != 'T' || k != TLS_FDS || (m.msg_flags & MSG_CTRUNC)) {
		for (i = 0; i < k; i++)
			close(fds[i]);	/* not a well-formed request */
		k = 0;
	}
	*nfds = k;
	return n;
}

/* engine_argv - the engine's command line for the current settings */
static void engine_argv(char **av, int check)
{
	int n = 0;

	av[n++] = cfg.tls_engine;
	if (check)
		av[n++] = "-n";
	else if (strcmp(cfg.log, "stderr") == 0)
		av[n++] = "-e";
	av[n++] = "-u", av[n++] = cfg.session_user;
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
 * tls_spawn - start an engine on fds {socket, control, to-app,
 * from-app}: as the engine's fd 0 and 1, 3, 4 and 5.  Closes fds.
 */
int tls_spawn(int fds[TLS_FDS])
{
	static const int target[TLS_FDS] = { 0, 3, 4, 5 };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	char *av[12];
	int hi[TLS_FDS], i, r = -1;
	pid_t pid;

	for (i = 0; i < TLS_FDS; i++) {		/* no target may clobber a source */
		hi[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, FD_FLOOR);
		close(fds[i]);
	}
	if (cfg.tls_cert[0] && hi[0] >= 0 && hi[1] >= 0 && hi[2] >= 0 && hi[3] >= 0) {
		posix_spawn_file_actions_init(&fa);
		for (i = 0; i < TLS_FDS; i++)
			posix_spawn_file_actions_adddup2(&fa, hi[i], target[i]);
		posix_spawn_file_actions_adddup2(&fa, hi[0], 1);
		spawn_attr(&attr);
		engine_argv(av, 0);
		r = posix_spawn(&pid, cfg.tls_engine, &fa, &attr, av, environ) == 0 ? 0 : -1;
		posix_spawn_file_actions_destroy(&fa);
		posix_spawnattr_destroy(&attr);
	}
	for (i = 0; i < TLS_FDS; i++)
		if (hi[i] >= 0)
			close(hi[i]);
	return r;	/* the supervisor's reap() collects the engine */
}

/*
 * tls_check - can the engine load tls_cert and tls_key?  0 when TLS is
 * off or fine; -1 with the reason in why (the engine also prints its
 * own on stderr).
 */
int tls_check(char *why, size_t cap)
{
	char *av[12];
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
	engine_argv(av, 1);
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
