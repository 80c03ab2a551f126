/*
 * logline.c - the one way a line reaches the log, for smtpd (log.c) and
 * its TLS engine (tls/smtpd-tls.c) alike: syslog(prio), or on stderr
 * one write(2) of "IDENT[PID]: ", the text and its newline, so lines
 * from several processes never interleave.
 *
 * The pid is read once and again in each forked child (pthread_atfork,
 * in libc), not per line; the "IDENT[PID]: " prefix is made with it.
 * IDENT is "smtpd" unless log_ident() names another program.
 * Held lines: between log_hold(1) and log_hold(0) (a session), stderr
 * lines wait in a buffer and go out in one write(2) at log_flush(), which
 * the session calls before each reply it sends and before each delivery
 * request, so a line is never later than the reply that follows its
 * event nor than the deliverer's line; exit(), log_hold(0) and
 * a full buffer flush too, and a forked child drops its copy.  syslog
 * lines are never held.
 * Invariant: a line is at most TEXT_MAX octets of text; longer is cut.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "logline.h"
#include "strcopy.h"

#define TEXT_MAX	2048	/* octets of one line's text, newline included */

static const char *ident = "smtpd";	/* the stderr prefix's program name */
static pid_t my_pid;		/* 0: not read yet (or a fork since) */
static char prefix[40];		/* "IDENT[PID]: " for stderr lines */
static size_t prefix_len;
static char held[16384];	/* stderr lines waiting for log_flush() */
static size_t held_len;
static int holding, hooked;

/* log_ident - the program name on stderr lines (a string that stays) */
void log_ident(const char *name)
{
	ident = name;
	my_pid = 0;		/* the prefix is made again */
}

/* forked - the child's pid is read again on its first use; the lines
 * held are the parent's to write */
static void forked(void)
{
	my_pid = 0;
	holding = 0, held_len = 0;
}

/* log_flush - write the held lines, if any, in one write(2) */
void log_flush(void)
{
	size_t off = 0;
	ssize_t w;

	while (off < held_len) {
		if ((w = write(2, held + off, held_len - off)) < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;	/* nowhere to log: the lines are lost, as unheld ones */
		off += w;
	}
	held_len = 0;
}

/* log_hold - hold stderr lines (1) until log_flush(), or stop (0, flushing) */
void log_hold(int on)
{
	static int registered;

	log_pid();	/* the fork hook first: a child must not inherit the lines */
	if (!on || !hooked) {
		holding = 0;
		log_flush();
		return;
	}
	if (!registered)
		registered = atexit(log_flush) == 0;
	holding = registered;
}

/* log_pid - our pid, from a cache that fork() clears */
long log_pid(void)
{
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

/* put_line - a stderr line (prefix, text of length r, room for '\n' in
 * line[cap]) out, or held */
static void put_line(char *line, size_t cap, size_t r)
{
	size_t n = prefix_len + (r < cap - prefix_len - 1 ? r : cap - prefix_len - 2);

	line[n++] = '\n';
	if (holding && held_len + n > sizeof held)
		log_flush();
	if (holding && n <= sizeof held) {
		memcpy(held + held_len, line, n);
		held_len += n;
		return;
	}
	while (write(2, line, n) < 0 && errno == EINTR)
		;
}

/* log_vline - one formatted line to syslog, or to stderr */
void log_vline(int to_stderr, int prio, const char *fmt, va_list ap)
{
	char line[sizeof prefix + TEXT_MAX];
	int r;

	if (!to_stderr) {
		vsnprintf(line, sizeof line, fmt, ap);
		syslog(prio, "%s", line);
		return;
	}
	log_pid();
	memcpy(line, prefix, prefix_len);
	r = vsnprintf(line + prefix_len, sizeof line - prefix_len - 1, fmt, ap);
	put_line(line, sizeof line, r < 0 ? 0 : (size_t)r);
}

/* log_pline - one line made of the NULL-ended list of pieces (no format
 * machinery: the lines of every message) */
void log_pline(int to_stderr, int prio, const char *const *parts)
{
	char line[sizeof prefix + TEXT_MAX];

	if (!to_stderr) {
		str_join(line, sizeof line, parts);
		syslog(prio, "%s", line);
		return;
	}
	log_pid();
	memcpy(line, prefix, prefix_len);
	put_line(line, sizeof line, str_join(line + prefix_len,
	    sizeof line - prefix_len - 1, parts));
}

/* log_line - the same, with the arguments here */
void log_line(int to_stderr, int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(to_stderr, prio, fmt, ap);
	va_end(ap);
}
