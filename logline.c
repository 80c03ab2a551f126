/*
 * logline.c - the one way a line reaches the log, for smtpd (log.c) and
 * its TLS engine (tls/smtpd-tls.c) alike: syslog(prio), or on stderr
 * one write(2) of "IDENT[PID]: ", the text and its newline, so lines
 * from several processes never interleave.
 *
 * The pid is read once and again in each forked child (pthread_atfork,
 * in libc), not per line; the "IDENT[PID]: " prefix is made with it.
 * IDENT is "smtpd" unless log_ident() names another program.
 * Invariant: a line is at most TEXT_MAX octets of text; longer is cut.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "logline.h"

#define TEXT_MAX	2048	/* octets of one line's text, newline included */

static const char *ident = "smtpd";	/* the stderr prefix's program name */
static pid_t my_pid;		/* 0: not read yet (or a fork since) */
static char prefix[40];		/* "IDENT[PID]: " for stderr lines */
static size_t prefix_len;

/* log_ident - the program name on stderr lines (a string that stays) */
void log_ident(const char *name)
{
	ident = name;
	my_pid = 0;		/* the prefix is made again */
}

/* forked - the child's pid is read again on its first use */
static void forked(void)
{
	my_pid = 0;
}

/* log_pid - our pid, from a cache that fork() clears */
long log_pid(void)
{
	static int hooked;

	if (!hooked)
		hooked = pthread_atfork(NULL, NULL, forked) == 0;
	if (my_pid == 0) {
		my_pid = getpid();
		prefix_len = snprintf(prefix, sizeof prefix, "%.20s[%ld]: ", ident,
		    (long)my_pid);
		if (!hooked)	/* no fork hook: read the pid every time */
			return (long)(my_pid = 0, getpid());
	}
	return (long)my_pid;
}

/* log_vline - one formatted line to syslog, or to stderr */
void log_vline(int to_stderr, int prio, const char *fmt, va_list ap)
{
	char line[sizeof prefix + TEXT_MAX];
	size_t n;
	int r;

	if (!to_stderr) {
		vsnprintf(line, sizeof line, fmt, ap);
		syslog(prio, "%s", line);
		return;
	}
	log_pid();
	memcpy(line, prefix, prefix_len);
	r = vsnprintf(line + prefix_len, sizeof line - prefix_len - 1, fmt, ap);
	n = prefix_len + (r < 0 ? 0 : (size_t)r < sizeof line - prefix_len - 1 ? (size_t)r :
	    sizeof line - prefix_len - 2);
	line[n++] = '\n';
	while (write(2, line, n) < 0 && errno == EINTR)
		;
}

/* log_line - the same, with the arguments here */
void log_line(int to_stderr, int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(to_stderr, prio, fmt, ap);
	va_end(ap);
}
