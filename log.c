/*
 * log.c - logging to syslog(LOG_MAIL) or stderr, and the fatal pair.
 *
 * fatal() adds strerror(errno), fatalx() does not; both log at LOG_CRIT
 * and exit 111 (temporary failure, the daemontools convention), so an
 * inetd-style launcher never sees a crash as a permanent error.
 * Each line goes out through logline.c (syslog, or with log = stderr
 * one write(2) of "smtpd[PID]: ", the text and its newline), the code
 * the TLS engine's lines take too.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>

#include "strcopy.h"
#include "config.h"
#include "log.h"
#include "logline.h"

/* The id fatal lines carry: the session's or queue run's, set when it
 * starts (like openlog's ident, the one piece of logging state). */
static char log_id[40] = "-";

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

/* log_parts - one event line made of the NULL-ended list of pieces, for
 * the lines of every message (no format machinery) */
void log_parts(int prio, const char *const *parts)
{
	log_pline(strcmp(cfg.log, "stderr") == 0, prio, parts);
}

/* logmsg - log one event line */
void logmsg(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(strcmp(cfg.log, "stderr") == 0, prio, fmt, ap);
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
