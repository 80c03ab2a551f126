/*
 * log.h - one line per event: "SESSION-ID event key=value ...".
 * Goes to syslog (LOG_MAIL) or stderr, as cfg.log says.  Callers escape
 * network-born values with rfc822_safe() and cap them before logging.
 */
#ifndef LOG_H
#define LOG_H

void log_init(const char *ident);
void logmsg(int prio, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif
