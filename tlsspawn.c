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

/* engine_argv - the engine's command line: mode "-n" or "-s"; hs[24] */
static void engine_argv(char **av, char *mode, char *hs)
{
	int n = 0;

	snprintf(hs, 24, "%ld", cfg.cmd_timeout);
	av[n++] = cfg.tls_engine;
	av[n++] = mode;
	if (strcmp(cfg.log, "stderr") == 0)
		av[n++] = "-e";
	av[n++] = "-u", av[n++] = cfg.session_user;
	av[n++] = "-T", av[n++] = hs;	/* the session waits as long, no longer */
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
 * tls_spawn - start a worker's engine, `tls_engine -s`, with fd 3 the
 * worker's request channel (the one descriptor of its "E" message).
 * Closes fd.  The engine is our child: reap() collects it.
 */
int tls_spawn(int fd)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	char *av[16], hs[24];
	pid_t pid;
	int r = -1;

	if (cfg.tls_cert[0]) {
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, fd, 3);
		spawn_attr(&attr);
		engine_argv(av, "-s", hs);
		r = posix_spawn(&pid, cfg.tls_engine, &fa, &attr, av, environ) == 0 ? 0 : -1;
		posix_spawn_file_actions_destroy(&fa);
		posix_spawnattr_destroy(&attr);
	}
	close(fd);
	return r;
}

/*
 * tls_check - can the engine load tls_cert and tls_key?  0 when TLS is
 * off or fine; -1 with the reason in why (the engine also prints its
 * own on stderr).
 */
int tls_check(char *why, size_t cap)
{
	char *av[16], hs[24];
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
	engine_argv(av, "-n", hs);
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
