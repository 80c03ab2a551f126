/*
 * proc.c - process plumbing: privileges, signals, socket activation,
 * detaching, and starting the deliverer.
 *
 * Interface: each start-up mode (inetd session, prefork worker, queue
 * run) calls proc_start_deliverer(), which forks the deliverer while we
 * still hold the privileges it needs and then drops the rest of us to
 * session_user for good (DESIGN.md, "Process model": one function changes privilege,
 * and checks that root cannot come back).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "proc.h"

/* proc_drop_privileges - become the session account for good, and check */
void proc_drop_privileges(const char *name)
{
	struct passwd *pw = getpwnam(name);

	if (!pw)
		fatalx("session_user %s does not exist", name);
	if (pw->pw_uid == 0)
		fatalx("session_user %s is root", name);
	if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		fatal("cannot become %s", name);
	if (setuid(0) == 0 || geteuid() == 0 || getegid() == 0)
		fatalx("could regain root after dropping privileges");
}

/*
 * proc_start_deliverer - fork the deliverer (it keeps the power to
 * become a user), then drop this process to session_user when root.
 * -1 with errno when the fork failed; privileges are untouched then.
 */
int proc_start_deliverer(struct deliverer *d)
{
	if (deliverer_start(d, 2) < 0)
		return -1;
	if (cfg.uid == 0)
		proc_drop_privileges(cfg.session_user);
	return 0;
}

/* proc_listen_fds - how many sockets systemd passed us (fds 3, 4, ...) */
int proc_listen_fds(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	long n;

	if (!pid || !fds || atol(pid) != (long)getpid())
		return 0;
	n = atol(fds);
	return n > 0 && n <= LISTEN_MAX ? (int)n : 0;
}

/* proc_is_listening - is fd a listening socket (systemd Accept=no)? */
int proc_is_listening(int fd)
{
	int on = 0;
	socklen_t len = sizeof on;

	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

/* proc_catch - install a handler without SA_RESTART, so poll() wakes up */
void proc_catch(int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

/* proc_block_signals - block (1) or unblock (0) the signals we handle */
void proc_block_signals(int block)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM), sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP), sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGUSR1);
	sigprocmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

/*
 * write_pid - the pid file, written as root without following a link:
 * a fresh PID_FILE.tmp (O_EXCL | O_NOFOLLOW; a leftover is unlinked,
 * which never follows a link either), then renamed over PID_FILE, which
 * replaces a symlink there instead of writing through it.
 */
static int write_pid(const char *pid_file)
{
	char tmp[CFG_STR_MAX + 8], line[32];
	int fd, n, err = 0;

	if (snprintf(tmp, sizeof tmp, "%s.tmp", pid_file) >= (int)sizeof tmp)
		return -1;
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	n = snprintf(line, sizeof line, "%ld\n", (long)getpid());
	if (write(fd, line, n) != n || close(fd) < 0 || rename(tmp, pid_file) < 0)
		err = -1;
	if (err)
		unlink(tmp);
	return err;
}

/* proc_close_fds - keep 0-2 only (syslog reconnects): a child that
 * needs none of its parent's sockets or pipes */
void proc_close_fds(void)
{
	int fd;

	closelog();
	if (close_range(3, ~0U, 0) < 0)
		for (fd = 3; fd < sysconf(_SC_OPEN_MAX); fd++)
			close(fd);
	log_init("smtpd");
}

/* proc_detach - background ourselves and write the pid file */
int proc_detach(const char *pid_file)
{
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	setsid();
	if (pid_file[0] && write_pid(pid_file) < 0)
		return -1;
	if (freopen("/dev/null", "r", stdin) == NULL ||
	    freopen("/dev/null", "w", stdout) == NULL)
		return -1;
	return 0;
}
