/*
 * log.c - logging to syslog(LOG_MAIL) or stderr, and the fatal pair.
 *
 * fatal() adds strerror(errno), fatalx() does not; both log at LOG_CRIT
 * and exit 111 (temporary failure, the daemontools convention), so an
 * inetd-style launcher never sees a crash as a permanent error.
 * The pid is read once and again in each forked child (pthread_atfork,
 * in libc), not per line; with log = stderr each line is one write(2)
 * of "smtpd[PID]: " (made once per process), the text and its newline.
 * Held lines: between log_hold(1) and log_hold(0) (a session), stderr
 * lines wait in a buffer and go out in one write(2) at log_flush(), which
 * the session calls before each reply it sends, so a line is never
 * later than the reply that follows its event; fatal(), exit() and a
 * full buffer flush too, and a forked child drops its copy.  syslog
 * lines are never held.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "strcopy.h"
#include "config.h"
#include "log.h"

/* The id fatal lines carry: the session's or queue run's, set when it
 * starts (like openlog's ident, the one piece of logging state). */
static char log_id[40] = "-";

static pid_t my_pid;		/* 0: not read yet (or a fork since) */
static char prefix[40];		/* "smtpd[PID]: " for stderr lines */
static size_t prefix_len;
static char held[16384];	/* stderr lines waiting for log_flush() */
static size_t held_len;
static int holding, hooked;

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
		prefix_len = snprintf(prefix, sizeof prefix, "smtpd[%ld]: ", (long)my_pid);
		if (!hooked)	/* no fork hook: read the pid every time */
			return (long)(my_pid = 0, getpid());
	}
	return (long)my_pid;
}

/* log_set_id - the id for fatal() lines from now on */
void log_set_id(const char *id)
{
	str_copy(log_id, sizeof log_id, id);
}

/* log_init - open syslog unless logging to stderr */
void log_init(const char *ident)
{
	log_pid();
	if (strcmp(cfg.log, "stderr") != 0)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

/* log_sink_ok - can our lines go anywhere?  syslog() drops every line
 * without a word when /dev/log is missing (a container, a minimal host) */
int log_sink_ok(void)
{
	struct stat st;

	if (strcmp(cfg.log, "stderr") == 0)
		return 1;
	return stat("/dev/log", &st) == 0 && S_ISSOCK(st.st_mode);
}

/* escape - copy src into dst as \xHH where `bad` says so; NUL-ended */
static size_t escape(char *dst, size_t cap, const char *src, size_t len,
    int keep_space)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, n = 0;

	if (cap == 0)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = src[i];
		int bad = c < 0x20 || c >= 0x7f || c == '=' || c == '"' ||
		    c == '<' || c == '>' || c == '\\' || (c == ' ' && !keep_space);

		if (n + (bad ? 4 : 1) >= cap)
			break;		/* capped: a value never runs on */
		if (!bad) {
			dst[n++] = c;
			continue;
		}
		dst[n++] = '\\', dst[n++] = 'x';
		dst[n++] = hex[c >> 4], dst[n++] = hex[c & 15];
	}
	dst[n] = '\0';
	return n;
}

/* log_escape - a network-born value as one safe token */
size_t log_escape(char *dst, size_t cap, const char *src, size_t len)
{
	return escape(dst, cap, src, len, 0);
}

/* log_text - our own text for reply="..." / reason="...": spaces kept */
size_t log_text(char *dst, size_t cap, const char *src)
{
	return escape(dst, cap, src, strlen(src), 1);
}

/* put_line - a stderr line (prefix, text of len r, room for '\n') out or held */
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

/* vlog - write one formatted line to the configured sink */
static void vlog(int prio, const char *fmt, va_list ap)
{
	char line[sizeof prefix + 2048];
	int r;

	if (strcmp(cfg.log, "stderr") != 0) {
		vsnprintf(line, sizeof line, fmt, ap);
		syslog(prio, "%s", line);
		return;
	}
	log_pid();
	memcpy(line, prefix, prefix_len);
	r = vsnprintf(line + prefix_len, sizeof line - prefix_len - 1, fmt, ap);
	put_line(line, sizeof line, r < 0 ? 0 : (size_t)r);
}

/* log_parts - one event line made of the NULL-ended list of pieces, for
 * the lines of every message (no format machinery) */
void log_parts(int prio, const char *const *parts)
{
	char line[sizeof prefix + 2048];

	if (strcmp(cfg.log, "stderr") != 0) {
		str_join(line, sizeof line, parts);
		syslog(prio, "%s", line);
		return;
	}
	log_pid();
	memcpy(line, prefix, prefix_len);
	put_line(line, sizeof line, str_join(line + prefix_len, sizeof line - prefix_len - 1,
	    parts));
}

/* logmsg - log one event line */
void logmsg(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(prio, fmt, ap);
	va_end(ap);
}

/* fatal - log with errno text and exit 111 */
void fatal(const char *fmt, ...)
{
	char what[1024];
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	log_hold(0);
	logmsg(LOG_CRIT, "%s fatal reason=\"%s: %s\"", log_id, what, strerror(saved));
	exit(111);
}

/* fatalx - log without errno and exit 111 */
void fatalx(const char *fmt, ...)
{
	char what[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	log_hold(0);
	logmsg(LOG_CRIT, "%s fatal reason=\"%s\"", log_id, what);
	exit(111);
}
