/*
 * log.h - one line per event: "ID event key=value ...".
 * Goes to syslog (LOG_MAIL) or stderr, as cfg.log says.  Every value
 * that came from the network goes through log_escape() (a token: no
 * space, '=', '"', '<', '>', control or non-ASCII octet survives), our
 * own free text through log_text() (spaces kept), so no value can fake
 * a field.  The format is documented in smtpd(8).
 */
#ifndef LOG_H
#define LOG_H

#include <stddef.h>

#include "logline.h"	/* log_pid, log_hold, log_flush: the line writer */

#include "logline.h"	/* log_pid() */

void log_init(const char *ident);
int log_sink_ok(void);
void log_set_id(const char *id);
size_t log_escape(char *dst, size_t cap, const char *src, size_t len);
size_t log_text(char *dst, size_t cap, const char *src);
void log_parts(int prio, const char *const *parts);
void logmsg(int prio, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif
