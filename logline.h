/*
 * logline.h - the one way a line reaches the log, shared by smtpd (log.c
 * puts its event lines through it) and smtpd-tls, the TLS engine.
 */
#ifndef LOGLINE_H
#define LOGLINE_H

#include <stdarg.h>

void log_ident(const char *ident);
long log_pid(void);
void log_hold(int on);
void log_flush(void);
void log_pline(int to_stderr, int prio, const char *const *parts);
void log_vline(int to_stderr, int prio, const char *fmt, va_list ap);
void log_line(int to_stderr, int prio, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
