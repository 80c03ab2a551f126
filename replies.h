/*
 * replies.h - every reply smtpd sends, in one table an administrator can
 * grep (DESIGN.md, "Code shape").  The session, the worker and the start-up code all
 * take their texts from here.
 */
#ifndef REPLIES_H
#define REPLIES_H

#include <stdarg.h>
#include <stddef.h>

enum reply_id {
	R_GREETING, R_HELO, R_EHLO, R_OKAY, R_SENDER_OK, R_RCPT_OK, R_QUEUED,
	R_DATA_GO, R_BDAT_OK, R_BYE, R_VRFY, R_HELP, R_TOO_MANY_ERRORS,
	R_TIMEOUT, R_SHUTDOWN, R_TEMP_LOOKUP, R_TEMP_STORE, R_NO_STORAGE,
	R_TOO_MANY_RCPTS, R_UNKNOWN_CMD, R_LINE_TOO_LONG, R_SYNTAX,
	R_NO_ARGS, R_BAD_SENDER, R_BAD_RCPT, R_NOT_IMPL, R_SEQUENCE,
	R_BDAT_MIXED, R_NO_SUCH_USER, R_RELAY, R_SIZE_MAIL, R_SIZE_DATA,
	R_NO_UTF8, R_PARAM_UNKNOWN, R_LOOP, R_BARE_EOL, R_TEXT_LINE,
	R_TEMP_DELIVERY, R_MAILBOX_FULL, R_NUL, R_INTERNAL, R_UNAVAILABLE,
	R_BUSY, R_LMTP_DOWN, R_ALIAS_CONFIG, R_OVER_QUOTA, R_REMOTE_REFUSED,
	R_EHLO_STARTTLS, R_EHLO_EXT, R_TLS_GO, R_TLS_ACTIVE, R_TLS_UNAVAILABLE,
	R_TLS_REQUIRED,
	R_DATA_NUL, R_BDAT_NO_SIZE, R_FILTER, R_MILTER_REJECT, R_MILTER_TEMP,
	R_POLICY_REJECT, R_POLICY_TEMP,
	R_COUNT
};

size_t reply_format(char *dst, size_t cap, enum reply_id id, int enhanced,
    va_list ap);
size_t reply_text(char *dst, size_t cap, enum reply_id id, ...);
int reply_is_error(const char *line);
int reply_counts_as_error(const char *line);

#endif
