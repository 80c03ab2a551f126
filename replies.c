/*
 * replies.c - the reply table and the one function that formats it.
 *
 * Each row is a whole reply, "ddd x.y.z text", with printf conversions
 * for what varies.  Enhanced status codes (RFC 2034, 3463) are shown only
 * after EHLO: reply_format() drops the "x.y.z " for HELO clients.
 * Invariant: nothing in smtpd writes a reply text that is not here.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "replies.h"

static const char *const replies[R_COUNT] = {
	[R_GREETING] = "220 %s ESMTP smtpd",
	[R_HELO] = "250 %s",
	[R_EHLO] = "250-%s",		/* then R_EHLO_STARTTLS if offered */
	[R_EHLO_STARTTLS] = "250-STARTTLS",
	[R_EHLO_EXT] = "250-PIPELINING\r\n250-SIZE %ld\r\n250-8BITMIME\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250 CHUNKING",
	[R_OKAY] = "250 2.0.0 Ok",
	[R_SENDER_OK] = "250 2.1.0 Sender ok",
	[R_RCPT_OK] = "250 2.1.5 Recipient ok",
	[R_QUEUED] = "250 2.0.0 Ok: queued as %s",
	[R_DATA_GO] = "354 End data with <CR><LF>.<CR><LF>",
	[R_BDAT_OK] = "250 2.0.0 %ld octets received",
	[R_BYE] = "221 2.0.0 %s closing connection",
	[R_VRFY] = "252 2.5.0 Cannot VRFY user, but will accept message",
	[R_HELP] = "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP "
	    "QUIT VRFY HELP",
	[R_TOO_MANY_ERRORS] = "421 4.7.0 %s Too many errors, closing connection",
	[R_TIMEOUT] = "421 4.4.2 %s Timeout, closing connection",
	[R_SHUTDOWN] = "421 4.3.2 %s Service shutting down",
	[R_TEMP_LOOKUP] = "451 4.3.0 Recipient lookup failed, try again later",
	[R_TEMP_STORE] = "451 4.3.0 Local storage error, try again later",
	[R_NO_STORAGE] = "452 4.3.1 Insufficient system storage",
	[R_TOO_MANY_RCPTS] = "452 4.5.3 Too many recipients",
	[R_UNKNOWN_CMD] = "500 5.5.2 Syntax error, command unrecognized",
	[R_LINE_TOO_LONG] = "500 5.5.2 Line too long",
	[R_SYNTAX] = "501 5.5.4 Syntax error in parameters or arguments",
	[R_NO_ARGS] = "501 5.5.4 No arguments allowed",
	[R_BAD_SENDER] = "501 5.1.7 Bad sender address syntax",
	[R_BAD_RCPT] = "501 5.1.3 Bad recipient address syntax",
	[R_NOT_IMPL] = "502 5.5.1 Command not implemented",
	[R_SEQUENCE] = "503 5.5.1 Bad sequence of commands",
	[R_BDAT_MIXED] = "503 5.5.1 DATA not allowed after BDAT",
	[R_NO_SUCH_USER] = "550 5.1.1 No such user here",
	[R_RELAY] = "550 5.7.1 Relay access denied",
	[R_SIZE_MAIL] = "552 5.3.4 Message size exceeds fixed limit",
	[R_SIZE_DATA] = "552 5.3.4 Message size exceeds fixed limit",
	[R_NO_UTF8] = "553 5.6.7 Non-ASCII address requires SMTPUTF8",
	[R_PARAM_UNKNOWN] = "555 5.5.4 Unsupported parameter",
	[R_LOOP] = "554 5.4.6 Mail loop detected",
	[R_BARE_EOL] = "554 5.6.0 Bare CR or LF in message; use CR LF line ends",
	[R_TEXT_LINE] = "554 5.6.0 Message has a line longer than %ld octets",
	[R_TEMP_DELIVERY] = "451 4.3.0 Local delivery failed, try again later",
	[R_MAILBOX_FULL] = "452 4.2.2 Mailbox full",
	[R_NUL] = "500 5.5.2 NUL octet in command",
	[R_INTERNAL] = "451 4.3.0 Internal error",
	[R_UNAVAILABLE] = "421 4.3.0 Service not available",
	[R_BUSY] = "421 4.7.0 Too many connections, try again later",
	[R_LMTP_DOWN] = "451 4.4.1 Mailbox server unavailable, try again later",
	[R_ALIAS_CONFIG] = "451 4.3.5 Alias configuration error, try again later",
	[R_OVER_QUOTA] = "552 5.2.2 Mailbox full: message exceeds the quota",
	[R_REMOTE_REFUSED] = "554 5.0.0 Mailbox server refused the message",
	[R_TLS_GO] = "220 2.0.0 Ready to start TLS",
	[R_TLS_ACTIVE] = "503 5.5.1 TLS already active",
	[R_TLS_UNAVAILABLE] = "454 4.7.0 TLS not available due to temporary reason",
	[R_TLS_REQUIRED] = "530 5.7.0 Must issue a STARTTLS command first",
	[R_DATA_NUL] = "554 5.6.0 NUL octet in message",
	[R_BDAT_NO_SIZE] = "421 4.5.4 %s BDAT without a readable chunk size, closing connection",
	[R_FILTER] = "%s",	/* a milter's or policy server's own reply line */
	[R_MILTER_REJECT] = "550 5.7.1 Command rejected",
	[R_MILTER_TEMP] = "451 4.7.1 Service unavailable - try again later",
	[R_POLICY_REJECT] = "550 5.7.1 Access denied",
	[R_POLICY_TEMP] = "451 4.3.5 Policy service unavailable, try again later",
};

/* has_enhanced - does the row carry "ddd x.y.z " after its code? */
static int has_enhanced(const char *fmt)
{
	return strlen(fmt) > 6 && isdigit((unsigned char)fmt[4]) && fmt[5] == '.';
}

/*
 * filter_line - R_FILTER: the whole line is a filter's own, already
 * checked ("4xx"/"5xx", printable); its "x.y.z " goes for HELO clients.
 */
static size_t filter_line(char *dst, size_t cap, int enhanced, const char *fmt,
    va_list ap)
{
	int n = vsnprintf(dst, cap, fmt, ap);
	size_t skip;

	if (n < 4 || (size_t)n >= cap)
		return snprintf(dst, cap, "%s", replies[R_INTERNAL]);
	skip = strcspn(dst + 4, " ");
	if (!enhanced && has_enhanced(dst) && dst[4 + skip] == ' ') {
		memmove(dst + 4, dst + 5 + skip, n - 4 - skip);
		n -= skip + 1;
	}
	return n;
}

/*
 * reply_format - one reply line, without CR LF, into dst; its length.
 * Without `enhanced` the "x.y.z " after the code is left out.  A reply
 * that does not fit becomes R_INTERNAL (cannot happen: rows are short).
 */
size_t reply_format(char *dst, size_t cap, enum reply_id id, int enhanced,
    va_list ap)
{
	const char *fmt = replies[id];
	size_t skip = 0;
	int n;

	if (cap < 64)
		return 0;
	if (fmt[0] == '%')
		return filter_line(dst, cap, enhanced, fmt, ap);
	if (!enhanced && has_enhanced(fmt))
		skip = strcspn(fmt + 4, " ") + 1;
	memcpy(dst, fmt, 4);
	n = vsnprintf(dst + 4, cap - 4, fmt + 4 + skip, ap);
	if (n < 0 || (size_t)n >= cap - 4)
		n = snprintf(dst, cap, "%s", replies[R_INTERNAL]) - 4;
	return 4 + (size_t)n;
}

/* reply_text - reply_format() with enhanced codes, for callers outside
 * the dialogue (the worker's and the start-up code's 421s) */
size_t reply_text(char *dst, size_t cap, enum reply_id id, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, id);
	n = reply_format(dst, cap, id, 1, ap);
	va_end(ap);
	return n;
}

/* reply_is_error - a 4xx or 5xx reply */
int reply_is_error(const char *line)
{
	return line[0] == '4' || line[0] == '5';
}

/*
 * reply_counts_as_error - does this reply count toward error_limit?
 * A x2x reply (421, 452, 552) reports our state or a limit, not a
 * client's mistake, so it never brings a session closer to 421.
 */
int reply_counts_as_error(const char *line)
{
	return reply_is_error(line) && line[1] != '2';
}
