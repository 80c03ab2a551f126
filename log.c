/*
 * log.c - logging to syslog(LOG_MAIL) or stderr, and the fatal pair.
 *
 * fatal() adds strerror(errno), fatalx() does not; both log at LOG_CRIT
 * and exit 111 (temporary failure, the daemontools convention), so an
 * inetd-style launcher never sees a crash as a permanent error.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

/* log_init - open syslog unless logging to stderr */
void log_init(const char *ident)
{
	if (strcmp(cfg.log, "stderr") != 0)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

/* vlog - write one formatted line to the configured sink */
static void vlog(int prio, const char *fmt, va_list ap)
{
	char line[2048];

	vsnprintf(line, sizeof line, fmt, ap);
	if (strcmp(cfg.log, "stderr") == 0)
		fprintf(stderr, "smtpd[%ld]: %s\n", (long)getpid(), line);
	else
		syslog(prio, "%s", line);
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
	logmsg(LOG_CRIT, "fatal: %s: %s", what, strerror(saved));
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
	logmsg(LOG_CRIT, "fatal: %s", what);
	exit(111);
}
