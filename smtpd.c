/*
 * smtpd.c - start-up modes and the SMTP dialogue (RFC 5321).
 *
 * Interface: smtpd_main() (called by main.c) chooses a mode: serve one
 * session on fd 0/1 (inetd, xinetd, systemd Accept=yes, tcpserver, or
 * pipes), run the queue (-q), check the configuration (-n) or print
 * usage (-h).  session_run() speaks SMTP on any pair of descriptors.
 *
 * Shape (STYLE.md): one command table with the states in which each verb
 * is allowed; one bounded line reader; DATA and BDAT bytes go through one
 * byte-level state machine; transaction errors are sticky and become one
 * reply; every reply text lives in one table.
 * Extensions: PIPELINING (RFC 2920), SIZE (1870), 8BITMIME (6152),
 * ENHANCEDSTATUSCODES (2034, 3463), SMTPUTF8 (6531), CHUNKING (3030).
 * Invariant: the session never runs as root (drop_privileges() before
 * the first network byte when started as root) and the end of data is
 * CR LF . CR LF and nothing else: a bare CR or LF in a message rejects
 * it (no SMTP smuggling; we never normalise).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "deliver.h"
#include "log.h"
#include "queue.h"
#include "rfc822.h"
#include "proxy.h"
#include "smtpd.h"
#include "starttls.h"
#include "supervisor.h"
#include "tlsspawn.h"
#include "users.h"

#define IN_BUF		65536	/* network input buffer, octets */
#define OUT_BUF		8192	/* replies waiting for the input to run dry */
#define HDR_LINE_MAX	1024	/* header line kept for the loop checks */
#define BDAT_MAX	2147483647L	/* largest chunk size we parse */

/* Session states; a command table row lists where its verb is allowed. */
enum state {
	S_GREET = 1 << 0,	/* connected, no HELO/EHLO yet */
	S_READY = 1 << 1,	/* HELO done, no transaction */
	S_MAIL = 1 << 2,	/* MAIL accepted, no recipient yet */
	S_RCPT = 1 << 3,	/* at least one recipient */
	S_BDAT = 1 << 4,	/* inside a BDAT sequence (not LAST yet) */
	S_QUIT = 1 << 5,	/* closing: QUIT, 421, EOF */
};
#define S_ANY	(S_GREET | S_READY | S_MAIL | S_RCPT | S_BDAT)

/* Every reply smtpd sends; the text after the code is what clients see. */
enum reply_id {
	R_GREETING, R_HELO, R_EHLO, R_OKAY, R_SENDER_OK, R_RCPT_OK, R_QUEUED,
	R_DATA_GO, R_BDAT_OK, R_BYE, R_VRFY, R_HELP, R_TOO_MANY_ERRORS,
	R_TIMEOUT, R_SHUTDOWN, R_TEMP_LOOKUP, R_TEMP_STORE, R_NO_STORAGE,
	R_TOO_MANY_RCPTS, R_UNKNOWN_CMD, R_LINE_TOO_LONG, R_SYNTAX,
	R_NO_ARGS, R_BAD_SENDER, R_BAD_RCPT, R_NOT_IMPL, R_SEQUENCE,
	R_BDAT_MIXED, R_NO_SUCH_USER, R_RELAY, R_SIZE_MAIL, R_SIZE_DATA,
	R_NO_UTF8, R_PARAM_UNKNOWN, R_LOOP, R_BARE_EOL, R_TEXT_LINE,
	R_TEMP_DELIVERY, R_MAILBOX_FULL, R_NUL, R_EHLO_STARTTLS, R_EHLO_EXT,
	R_TLS_GO, R_TLS_ACTIVE, R_TLS_UNAVAILABLE, R_TLS_REQUIRED,
};

static const char *const replies[] = {
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
	[R_TLS_GO] = "220 2.0.0 Ready to start TLS",
	[R_TLS_ACTIVE] = "503 5.5.1 TLS already active",
	[R_TLS_UNAVAILABLE] = "454 4.7.0 TLS not available due to temporary reason",
	[R_TLS_REQUIRED] = "530 5.7.0 Must issue a STARTTLS command first",
};

/* The one exception to "no globals": a flag a signal handler sets. */
volatile sig_atomic_t smtpd_stop;

/* Where the DATA/BDAT machine stands, named by what was seen last. */
enum dstate {
	D_BOL,		/* start of a line: after CR LF (or the DATA line) */
	D_TEXT,		/* inside a line */
	D_CR,		/* CR inside a line */
	D_DOT,		/* CR LF . */
	D_DOT_CR,	/* CR LF . CR */
	D_END,		/* CR LF . CR LF: end of data */
};

/* One mail transaction: from MAIL to the end of data, RSET or HELO. */
struct txn {
	char sender[ADDR_MAX];	/* reverse-path address, "" for <> */
	int utf8;		/* MAIL had SMTPUTF8 */
	char **rcpt;		/* accepted addresses, rcpt_limit slots */
	int nrcpt;		/* used slots */
	struct spool spool;	/* data file; spool.fd < 0 until data */
	int bdat;		/* 1 once BDAT was used */
	enum dstate ds;		/* byte machine state */
	enum reply_id err;	/* first data error, R_OKAY if none */
	long line_len;		/* wire octets in the current line */
	off_t octets;		/* message octets as sent (CR LF, no stuffing) */
	int in_headers;		/* still in the header section */
	int hops;		/* Received: lines seen */
	int loop;		/* a Delivered-To: names a recipient */
	size_t hlen;		/* octets in hdr */
	char hdr[HDR_LINE_MAX];	/* start of the current header line */
};

/* One SMTP connection; everything the dialogue needs, passed around. */
struct session {
	int in, out;		/* network descriptors */
	int state;		/* one S_* value */
	int esmtp;		/* EHLO used: enhanced codes, ESMTP in Received */
	int errors;		/* error replies so far (never reset) */
	unsigned long seq;	/* transactions so far, for queue ids */
	char id[QID_MAX];	/* session id, first on each log line */
	char addr[64];		/* client address text */
	char helo[DOMAIN_MAX + 1];	/* HELO/EHLO argument, safe text */
	struct deliverer *d;	/* our deliverer */
	struct starttls tls;	/* the TLS engine and what it negotiated */
	struct txn t;		/* current transaction; reset by txn_reset */
	size_t inpos, inlen;	/* unread input is inbuf[inpos, inlen) */
	size_t outlen;		/* octets waiting in outbuf */
	char inbuf[IN_BUF];
	char outbuf[OUT_BUF];
};

/* I/O -------------------------------------------------------------- */

/* what read_line() and fill() return */
enum { LINE_OK, LINE_LONG, LINE_EOF = -1, LINE_TIMEOUT = -2, LINE_SHUTDOWN = -3 };

/* writable - wait until fd takes more output; 0 on timeout or stop */
static int writable(int fd)
{
	struct pollfd pfd = { fd, POLLOUT, 0 };
	int r;

	do
		r = poll(&pfd, 1, cfg.cmd_timeout * 1000);
	while (r < 0 && errno == EINTR && !smtpd_stop);
	return r > 0;
}

/*
 * out_flush - write pending replies.  The descriptor is non-blocking, so
 * a client that stops reading is timed out like one that stops writing;
 * on failure the session is over.
 */
static void out_flush(struct session *s)
{
	size_t off = 0;

	while (off < s->outlen) {
		ssize_t w = write(s->out, s->outbuf + off, s->outlen - off);

		if (w < 0 && (errno == EINTR || (errno == EAGAIN && writable(s->out))))
			continue;
		if (w <= 0) {
			if (s->state != S_QUIT)
				logmsg(LOG_INFO, "%s lost client=%s reason=write: %s", s->id,
				    s->addr, w < 0 ? strerror(errno) : "closed");
			s->state = S_QUIT;
			break;
		}
		off += w;
	}
	s->outlen = 0;
}

/* out_put - queue reply octets; written when the input runs dry */
static void out_put(struct session *s, const char *p, size_t n)
{
	if (s->outlen + n > sizeof s->outbuf)
		out_flush(s);
	if (n > sizeof s->outbuf)
		n = sizeof s->outbuf;	/* cannot happen: replies are short */
	memcpy(s->outbuf + s->outlen, p, n);
	s->outlen += n;
}

/* fill - read more input, flushing replies first (RFC 2920 3.1) */
static int fill(struct session *s, long timeout)
{
	struct pollfd pfd = { s->in, POLLIN, 0 };
	ssize_t n;
	int r;

	out_flush(s);
	if (s->inpos == s->inlen)
		s->inpos = s->inlen = 0;
	do
		r = poll(&pfd, 1, timeout * 1000);
	while (r < 0 && errno == EINTR && !smtpd_stop);
	if (smtpd_stop)
		return LINE_SHUTDOWN;
	if (r == 0)
		return LINE_TIMEOUT;
	do
		n = read(s->in, s->inbuf + s->inlen, sizeof s->inbuf - s->inlen);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return 0;	/* spurious wake-up: the caller polls again */
	if (n <= 0)
		return LINE_EOF;
	s->inlen += n;
	return 0;
}

/* reply - send one reply from the table; count and log errors */
static void reply(struct session *s, enum reply_id id, ...)
{
	char line[1024];
	va_list ap;
	int n;

	const char *fmt = replies[id];

	/* enhanced codes only once ENHANCEDSTATUSCODES was offered (RFC 2034);
	 * the table's "ddd x.y.z text" lines lose "x.y.z " after HELO */
	if (!s->esmtp && strlen(fmt) > 6 && isdigit((unsigned char)fmt[4]) &&
	    fmt[5] == '.')
		fmt = replies[id] + 4 + strcspn(replies[id] + 4, " ") + 1;
	va_start(ap, id);
	n = vsnprintf(line + (fmt != replies[id] ? 4 : 0), sizeof line - 4, fmt, ap);
	va_end(ap);
	if (fmt != replies[id])
		memcpy(line, replies[id], 4);
	if (n < 0 || (size_t)n >= sizeof line - 4)
		snprintf(line, sizeof line, "451 4.3.0 Internal error");
	out_put(s, line, strlen(line));
	out_put(s, "\r\n", 2);
	if (line[0] == '4' || line[0] == '5') {
		logmsg(LOG_INFO, "%s reject client=%s reply=\"%s\"", s->id, s->addr, line);
		if (line[1] != '2' && ++s->errors >= cfg.error_limit) {
			reply(s, R_TOO_MANY_ERRORS, cfg.hostname);
			s->state = S_QUIT;
		}
	}
}


/* read_line - one command line, CR LF (or LF) stripped; bounded */
static int read_line(struct session *s, char *line, size_t cap, size_t *len)
{
	size_t n = 0;
	int too_long = 0, r;

	for (;;) {
		char *nl, *p = s->inbuf + s->inpos;
		size_t avail = s->inlen - s->inpos, take;

		nl = memchr(p, '\n', avail);
		take = nl ? (size_t)(nl - p) : avail;
		if (!too_long && n + take < cap) {
			memcpy(line + n, p, take);
			n += take;
		} else {
			too_long = 1;
		}
		s->inpos += take;
		if (nl) {
			s->inpos++;
			if (too_long)
				return LINE_LONG;
			if (n > 0 && line[n - 1] == '\r')
				n--;
			line[n] = '\0';
			*len = n;
			return LINE_OK;
		}
		if ((r = fill(s, cfg.cmd_timeout)) < 0)
			return r;
	}
}

/* lost - the input ended (EOF, timeout, shutdown): say so, end session */
static void lost(struct session *s, int r)
{
	if (r == LINE_TIMEOUT)
		reply(s, R_TIMEOUT, cfg.hostname);
	else if (r == LINE_SHUTDOWN)
		reply(s, R_SHUTDOWN, cfg.hostname);
	logmsg(LOG_INFO, "%s lost client=%s reason=%s%s", s->id, s->addr,
	    r == LINE_TIMEOUT ? "timeout" : r == LINE_SHUTDOWN ? "shutdown" : "eof",
	    s->t.spool.fd >= 0 ? " during data" : "");
	s->state = S_QUIT;
}

/* Transactions ------------------------------------------------------ */

/* set_state - the one place the session state changes */
static void set_state(struct session *s, int state)
{
	s->state = state;
}

/* txn_reset - forget the transaction; remove any unfinished spool file */
static void txn_reset(struct session *s)
{
	struct txn *t = &s->t;
	int i;

	spool_discard(&t->spool);
	for (i = 0; i < t->nrcpt; i++)
		free(t->rcpt[i]);
	t->nrcpt = 0;
	t->sender[0] = '\0';
	t->utf8 = t->bdat = 0;	/* the byte machine is reset by data_start */
	if (s->state & (S_MAIL | S_RCPT | S_BDAT))
		set_state(s, S_READY);
}

/* Commands ---------------------------------------------------------- */

/* hello - HELO and EHLO: check the name, reset, remember the dialect */
static void hello(struct session *s, char *arg, int esmtp)
{
	if (!rfc822_helo(arg)) {
		reply(s, R_SYNTAX);
		return;
	}
	txn_reset(s);
	rfc822_safe(s->helo, sizeof s->helo, arg, strlen(arg));
	s->esmtp = esmtp;
	set_state(s, S_READY);
	logmsg(LOG_INFO, "%s %s=%s", s->id, esmtp ? "ehlo" : "helo", s->helo);
	if (esmtp) {
		reply(s, R_EHLO, cfg.hostname);
		if (starttls_offered(&s->tls))
			reply(s, R_EHLO_STARTTLS);
		reply(s, R_EHLO_EXT, cfg.size_limit);
	} else
		reply(s, R_HELO, cfg.hostname);
}

/* cmd_helo - HELO: plain SMTP, no enhanced codes */
static void cmd_helo(struct session *s, char *arg)
{
	hello(s, arg, 0);
}

/* cmd_ehlo - EHLO: list the extensions */
static void cmd_ehlo(struct session *s, char *arg)
{
	hello(s, arg, 1);
}

/* path_arg - skip "FROM:"/"TO:" and optional blanks; NULL if absent */
static const char *path_arg(const char *arg, const char *word)
{
	size_t n = strlen(word);

	if (strncasecmp(arg, word, n) != 0)
		return NULL;
	arg += n;
	while (*arg == ' ')
		arg++;
	return arg;
}

/* cmd_mail - MAIL FROM:<path> [SIZE=n] [BODY=..] [SMTPUTF8] */
static void cmd_mail(struct session *s, char *arg)
{
	const char *p = path_arg(arg, "FROM:"), *rest;
	struct params pr;
	struct path path;
	int r;

	if (cfg.tls_required && !s->tls.active) {
		reply(s, R_TLS_REQUIRED);
		return;
	}
	if (!p || rfc822_path(p, &path, &rest) < 0 || (*rest && *rest != ' ')) {
		reply(s, R_BAD_SENDER);
		return;
	}
	if ((r = rfc822_params(rest, &pr, 1)) != PARAM_OK) {
		reply(s, r == PARAM_UNKNOWN ? R_PARAM_UNKNOWN : R_SYNTAX);
		return;
	}
	if (pr.size > cfg.size_limit) {
		reply(s, R_SIZE_MAIL);
		return;
	}
	if (path.utf8 && !pr.smtputf8) {
		reply(s, R_NO_UTF8);
		return;
	}
	rfc822_address(&path, s->t.sender, sizeof s->t.sender);
	s->t.utf8 = pr.smtputf8;
	set_state(s, S_MAIL);
	reply(s, R_SENDER_OK);
}

/* known_rcpt - was this address accepted already in this transaction? */
static int known_rcpt(const struct txn *t, const char *addr)
{
	int i;

	for (i = 0; i < t->nrcpt; i++)
		if (strcasecmp(t->rcpt[i], addr) == 0)
			return 1;
	return 0;
}

/* check_rcpt - the recipient policy: syntax, no relay, known user */
static enum reply_id check_rcpt(struct session *s, const char *arg, char *addr)
{
	const char *p = path_arg(arg, "TO:"), *rest;
	char local[LOCAL_MAX + 1];
	struct params pr;
	struct path path;
	struct user u;
	int r;

	if (!p || rfc822_path(p, &path, &rest) < 0 || path.null ||
	    (*rest && *rest != ' '))
		return R_BAD_RCPT;
	if ((r = rfc822_params(rest, &pr, 0)) != PARAM_OK)
		return r == PARAM_UNKNOWN ? R_PARAM_UNKNOWN : R_SYNTAX;
	if (path.utf8 && !s->t.utf8)
		return R_NO_UTF8;
	if (path.domain[0] && !is_local_domain(path.domain))
		return R_RELAY;
	if (s->t.nrcpt >= cfg.rcpt_limit)
		return R_TOO_MANY_RCPTS;
	if (rfc822_local_unquote(&path, local, sizeof local) == 0)
		return R_NO_SUCH_USER;
	r = users_lookup(local, &u);
	if (r != USER_FOUND)
		return r == USER_TEMPFAIL ? R_TEMP_LOOKUP : R_NO_SUCH_USER;
	rfc822_address(&path, addr, ADDR_MAX);
	return R_RCPT_OK;
}

/* cmd_rcpt - RCPT TO:<path>: checked now, so unknown users never bounce */
static void cmd_rcpt(struct session *s, char *arg)
{
	char addr[ADDR_MAX], safe[ADDR_MAX];
	enum reply_id r = check_rcpt(s, arg, addr);

	rfc822_safe(safe, sizeof safe, arg, strlen(arg));
	logmsg(LOG_INFO, "%s rcpt %s result=%s", s->id, safe,
	    r == R_RCPT_OK ? "ok" : "rejected");
	if (r == R_RCPT_OK && !known_rcpt(&s->t, addr)) {
		if (!(s->t.rcpt[s->t.nrcpt] = strdup(addr)))
			r = R_TEMP_STORE;
		else
			s->t.nrcpt++;
	}
	if (r == R_RCPT_OK)
		set_state(s, S_RCPT);
	reply(s, r);
}

/* cmd_rset - RSET: abandon the transaction */
static void cmd_rset(struct session *s, char *arg)
{
	(void)arg;
	txn_reset(s);
	reply(s, R_OKAY);
}

/* cmd_noop - NOOP (an argument is allowed and ignored, 4.1.1.9) */
static void cmd_noop(struct session *s, char *arg)
{
	(void)arg;
	reply(s, R_OKAY);
}

/* cmd_quit - QUIT */
static void cmd_quit(struct session *s, char *arg)
{
	if (*arg) {
		reply(s, R_NO_ARGS);
		return;
	}
	reply(s, R_BYE, cfg.hostname);
	set_state(s, S_QUIT);
}

/*
 * cmd_starttls - STARTTLS (RFC 3207): 220, then the engine's handshake.
 * Whatever the client pipelined after the command is thrown away, never
 * executed (4.2; the 2011 injection bugs), and the session starts over
 * as if just connected: no HELO, no transaction.
 */
static void cmd_starttls(struct session *s, char *arg)
{
	char safe[2 * TLS_REASON_MAX];

	if (*arg) {
		reply(s, R_NO_ARGS);
		return;
	}
	if (s->tls.active) {
		reply(s, R_TLS_ACTIVE);
		return;
	}
	if (!starttls_offered(&s->tls)) {
		reply(s, R_NOT_IMPL);
		return;
	}
	if (starttls_begin(&s->tls, s->in) < 0) {
		reply(s, R_TLS_UNAVAILABLE);
		return;
	}
	reply(s, R_TLS_GO);
	out_flush(s);
	s->inpos = s->inlen = 0;	/* discard: plain text after STARTTLS */
	if (s->state == S_QUIT || starttls_finish(&s->tls, cfg.cmd_timeout) < 0) {
		rfc822_safe(safe, sizeof safe, s->tls.info.error, strlen(s->tls.info.error));
		logmsg(LOG_INFO, "%s starttls client=%s result=failed reason=\"%s\"", s->id,
		    s->addr, safe);
		set_state(s, S_QUIT);
		return;
	}
	s->in = s->tls.rd, s->out = s->tls.wr;
	fcntl(s->out, F_SETFL, fcntl(s->out, F_GETFL) | O_NONBLOCK);
	txn_reset(s);
	s->helo[0] = '\0';
	set_state(s, S_GREET);
	logmsg(LOG_INFO, "%s starttls client=%s protocol=%s cipher=%s bits=%d", s->id,
	    s->addr, s->tls.info.protocol, s->tls.info.cipher, s->tls.info.bits);
}

/* cmd_vrfy - VRFY: we never confirm addresses (RFC 5321 3.5.3) */
static void cmd_vrfy(struct session *s, char *arg)
{
	if (!*arg)
		reply(s, R_SYNTAX);
	else
		reply(s, R_VRFY);
}

/* cmd_help - HELP */
static void cmd_help(struct session *s, char *arg)
{
	(void)arg;
	reply(s, R_HELP);
}

/* cmd_not_impl - EXPN, TURN, SEND, SOML, SAML, ETRN */
static void cmd_not_impl(struct session *s, char *arg)
{
	(void)arg;
	reply(s, R_NOT_IMPL);
}

/* cmd_unknown - anything else */
static void cmd_unknown(struct session *s, char *arg)
{
	(void)arg;
	reply(s, R_UNKNOWN_CMD);
}

/* Message data ------------------------------------------------------- */

/* data_error - record the first error of the transaction (sticky) */
static void data_error(struct txn *t, enum reply_id r)
{
	if (t->err == R_OKAY)
		t->err = r;
}

/* header_line - loop checks on one complete header line (RFC 5321 6.3) */
static void header_line(struct txn *t)
{
	const char *v;
	size_t n;
	int i;

	if (t->hlen == 0) {
		t->in_headers = 0;	/* the empty line ends the header */
		return;
	}
	if (rfc822_header_is(t->hdr, t->hlen, "Received") && ++t->hops > cfg.hop_limit)
		t->loop = 1;
	if (!rfc822_header_is(t->hdr, t->hlen, "Delivered-To"))
		return;
	v = memchr(t->hdr, ':', t->hlen) + 1;
	n = t->hlen - (v - t->hdr);
	while (n > 0 && (*v == ' ' || *v == '\t'))
		v++, n--;
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	for (i = 0; i < t->nrcpt; i++)
		if (strlen(t->rcpt[i]) == n && strncasecmp(t->rcpt[i], v, n) == 0)
			t->loop = 1;
}

/* emit - message octets into the spool, within the size limit */
static void emit(struct txn *t, const char *p, size_t n)
{
	t->octets += n;
	if (t->octets > cfg.size_limit)
		data_error(t, R_SIZE_DATA);
	if (t->err == R_OKAY)
		spool_put(&t->spool, p, n);
}

/* hdr_put - keep the start of a header line for header_line() */
static void hdr_put(struct txn *t, const char *p, size_t n)
{
	size_t k = n < sizeof t->hdr - t->hlen ? n : sizeof t->hdr - t->hlen;

	memcpy(t->hdr + t->hlen, p, k);
	t->hlen += k;
}

/* end_line - CR LF seen (line_len counts the CR): store LF, check */
static void end_line(struct txn *t)
{
	if (cfg.textline_limit && t->line_len + 1 > cfg.textline_limit)
		data_error(t, R_TEXT_LINE);
	if (t->in_headers) {
		header_line(t);
		t->hlen = 0;
	}
	t->octets++;		/* the CR we do not store */
	emit(t, "\n", 1);
	t->line_len = 0;
}

/* text_run - length of the run of octets that need no decision */
static size_t text_run(const char *p, size_t n)
{
	const char *cr = memchr(p, '\r', n), *lf;
	size_t lim = cr ? (size_t)(cr - p) : n;

	lf = memchr(p, '\n', lim);	/* memchr: the one per-octet pass */
	return lf ? (size_t)(lf - p) : lim;
}

/*
 * data_bytes - feed octets through the DATA/BDAT machine.  Returns how
 * many were consumed: all of them, or up to the end of DATA.  Only
 * CR LF . CR LF ends DATA; a bare CR or LF marks the message bad and
 * never starts a line, so "\n.\n" and "\r.\r" are just text.  In BDAT
 * the dot has no meaning (RFC 3030 2) but line ends are checked alike.
 */
static size_t data_bytes(struct txn *t, const char *p, size_t n)
{
	size_t i = 0, k;

	while (i < n && t->ds != D_END) {
		char c = p[i];

		switch (t->ds) {
		case D_BOL:
			if (c == '.' && !t->bdat) {
				t->ds = D_DOT, i++;	/* not counted: it is removed */
				continue;
			}
			/* fall through */
		case D_TEXT:
			if ((k = text_run(p + i, n - i)) > 0) {
				if (t->in_headers)
					hdr_put(t, p + i, k);
				emit(t, p + i, k);
				t->line_len += k, i += k, t->ds = D_TEXT;
				continue;
			}
			t->ds = (c == '\r') ? D_CR : D_TEXT;
			if (c == '\n')
				data_error(t, R_BARE_EOL);
			break;
		case D_CR:
			if (c == '\n') {
				end_line(t);
				t->ds = D_BOL, i++;
				continue;
			}
			data_error(t, R_BARE_EOL);
			t->ds = (c == '\r') ? D_CR : D_TEXT;
			break;
		case D_DOT:
			if (c == '\r') {
				t->ds = D_DOT_CR;
				break;
			}
			t->ds = D_TEXT;		/* unstuff: drop the first dot */
			continue;
		case D_DOT_CR:
			if (c == '\n') {
				t->ds = D_END;
				break;
			}
			data_error(t, R_BARE_EOL);	/* "." CR then not LF */
			t->ds = D_TEXT;
			continue;
		case D_END:
			break;
		}
		t->line_len++, i++;
	}
	return i;
}

/* data_start - open the spool, write Return-Path and Received; R_OKAY */
static enum reply_id data_start(struct session *s)
{
	struct txn *t = &s->t;
	char head[2 * ADDR_MAX + 2 * CFG_STR_MAX + DOMAIN_MAX + 512]; /* fits any */
	char using[3 * TLS_TOKEN_MAX];
	struct received rc;
	size_t n, k;
	int err;

	if ((err = spool_create(&t->spool, ++s->seq)) != 0) {
		logmsg(LOG_ERR, "%s spool: %s", s->id, strerror(err));
		return err == ENOSPC ? R_NO_STORAGE : R_TEMP_STORE;
	}
	rc.helo = s->helo, rc.addr = s->addr, rc.by = cfg.hostname;
	rc.with = !s->esmtp ? "SMTP" : t->utf8 ? "UTF8SMTP" : "ESMTP";
	rc.tls = NULL;
	if (s->tls.active) {	/* RFC 3848 */
		rc.with = !s->esmtp ? "SMTP" : t->utf8 ? "UTF8SMTPS" : "ESMTPS";
		if (starttls_comment(using, sizeof using, &s->tls.info) > 0)
			rc.tls = using;
	}
	rc.id = t->spool.id, rc.when = time(NULL);
	rc.rcpt = t->nrcpt == 1 ? t->rcpt[0] : NULL;
	n = snprintf(head, sizeof head, "Return-Path: <%s>\n", t->sender);
	n += (k = rfc822_received(head + n, sizeof head - n, &rc));
	if (k == 0)
		fatalx("Received: line does not fit");	/* cannot happen */
	spool_put(&t->spool, head, n);
	t->ds = D_BOL, t->err = R_OKAY, t->line_len = 0, t->octets = 0;
	t->in_headers = 1, t->hlen = 0, t->hops = 0, t->loop = 0;
	return R_OKAY;
}

/* read_data - DATA octets up to CR LF . CR LF; 0, or LINE_EOF/TIMEOUT */
static int read_data(struct session *s)
{
	int r;

	for (;;) {
		s->inpos += data_bytes(&s->t, s->inbuf + s->inpos, s->inlen - s->inpos);
		if (s->t.ds == D_END)
			return 0;
		if ((r = fill(s, cfg.data_timeout)) < 0)
			return r;
	}
}

/* read_chunk - exactly n BDAT octets (n may be 0); 0 or LINE_EOF/TIMEOUT */
static int read_chunk(struct session *s, long n, int keep)
{
	int r;

	while (n > 0) {
		size_t avail = s->inlen - s->inpos;
		size_t take = (long)avail < n ? avail : (size_t)n;

		if (keep)
			data_bytes(&s->t, s->inbuf + s->inpos, take);
		s->inpos += take, n -= take;
		if (n > 0 && (r = fill(s, cfg.data_timeout)) < 0)
			return r;
	}
	return 0;
}

/*
 * delivery_reply - the one map from a deliverer result to an SMTP reply:
 * temporary -> 451, or 452 for storage and quota; permanent -> 550.
 */
static enum reply_id delivery_reply(int result, const char *why)
{
	switch (result) {
	case DELIVER_OK:
		return R_QUEUED;
	case DELIVER_PERM:
		return R_NO_SUCH_USER;
	default:
		if (strncmp(why, "4.3.1", 5) == 0)
			return R_NO_STORAGE;
		if (strncmp(why, "4.2.2", 5) == 0)
			return R_MAILBOX_FULL;
		return R_TEMP_DELIVERY;
	}
}

/* deliver_all - hand the message to the deliverer for each recipient */
static enum reply_id deliver_all(struct session *s)
{
	struct txn *t = &s->t;
	char why[256], first[256] = "";
	char **pending = calloc(t->nrcpt, sizeof *pending);
	int i, ok = 0, npend = 0, fail = DELIVER_OK, err;
	enum reply_id r = R_QUEUED;

	for (i = 0; i < t->nrcpt; i++) {
		int res = deliverer_deliver(s->d, t->spool.fd, t->spool.id, t->rcpt[i],
		    0, why, sizeof why);

		if (res == DELIVER_OK) {
			ok++;
			continue;
		}
		if (fail == DELIVER_OK)
			fail = res, snprintf(first, sizeof first, "%s", why);
		if (pending)
			pending[npend++] = t->rcpt[i];
	}
	if (ok == 0 || (ok < t->nrcpt && !pending)) {
		r = delivery_reply(fail, first);
	} else if (ok < t->nrcpt && (err = spool_keep(&t->spool, pending, npend)) != 0) {
		logmsg(LOG_ERR, "%s cannot queue: %s", t->spool.id, strerror(err));
		r = err == ENOSPC ? R_NO_STORAGE : R_TEMP_STORE;
	} else if (ok < t->nrcpt) {
		spool_close(&t->spool);	/* kept for smtpd -q */
		logmsg(LOG_INFO, "%s queued pending=%d", t->spool.id, npend);
	}
	free(pending);
	return r;
}

/* data_end - turn the transaction's outcome into exactly one reply */
static void data_end(struct session *s)
{
	struct txn *t = &s->t;
	enum reply_id r = t->err;

	if (r == R_OKAY && t->ds == D_CR)
		r = R_BARE_EOL;		/* BDAT ended on a lone CR */
	if (r == R_OKAY && t->loop)
		r = R_LOOP;
	if (r == R_OKAY && spool_flush(&t->spool) != 0)
		r = t->spool.err == ENOSPC ? R_NO_STORAGE : R_TEMP_STORE;
	if (r == R_OKAY)
		r = deliver_all(s);
	logmsg(LOG_INFO, "%s message id=%s from=<%s> size=%lld nrcpt=%d client=%s result=%.3s",
	    s->id, t->spool.id, t->sender, (long long)t->octets, t->nrcpt,
	    s->addr, replies[r]);
	if (r == R_QUEUED)
		reply(s, r, t->spool.id);
	else if (r == R_TEXT_LINE)
		reply(s, r, cfg.textline_limit);
	else
		reply(s, r);
	txn_reset(s);
}

/* cmd_data - DATA: 354, then the message up to CR LF . CR LF */
static void cmd_data(struct session *s, char *arg)
{
	enum reply_id deny;
	int r;

	if (s->state == S_BDAT) {
		reply(s, R_BDAT_MIXED);
		return;
	}
	if (*arg) {
		reply(s, R_NO_ARGS);
		return;
	}
	if ((deny = data_start(s)) != R_OKAY) {
		reply(s, deny);
		return;
	}
	reply(s, R_DATA_GO);
	if ((r = read_data(s)) < 0)
		lost(s, r);
	else
		data_end(s);
}

/* bdat_arg - parse "SIZE [LAST]"; -1 if malformed */
static long bdat_arg(const char *arg, int *last)
{
	long n = 0;

	if (!isdigit((unsigned char)*arg))
		return -1;
	for (; isdigit((unsigned char)*arg); arg++) {
		if (n > (BDAT_MAX - 9) / 10)
			return -1;
		n = n * 10 + (*arg - '0');
	}
	*last = 0;
	if (*arg == '\0')
		return n;
	if (strcasecmp(arg, " LAST") != 0)
		return -1;
	*last = 1;
	return n;
}

/* cmd_bdat - BDAT n [LAST] (RFC 3030): chunks, no dot-stuffing */
static void cmd_bdat(struct session *s, char *arg)
{
	enum reply_id deny = R_OKAY;
	int last, r;
	long n = bdat_arg(arg, &last);

	if (n < 0) {
		reply(s, R_SYNTAX);	/* the chunk size is unknown: cannot skip */
		return;
	}
	if (!(s->state & (S_RCPT | S_BDAT)))
		deny = R_SEQUENCE;
	else if (s->state == S_RCPT && (deny = data_start(s)) == R_OKAY)
		s->t.bdat = 1, set_state(s, S_BDAT);
	/* a refused chunk is still read, so the session stays in step */
	if ((r = read_chunk(s, n, deny == R_OKAY)) < 0)
		lost(s, r);
	else if (deny != R_OKAY)
		reply(s, deny);
	else if (last)
		data_end(s);
	else
		reply(s, R_BDAT_OK, n);
}

/* Dispatch ----------------------------------------------------------- */

struct command {
	const char *verb;			/* NULL: the unknown verb */
	void (*fn)(struct session *, char *);	/* handler, gets the argument */
	int states;				/* S_* where the verb is allowed */
};

static const struct command commands[] = {
	{ "HELO", cmd_helo, S_ANY },
	{ "EHLO", cmd_ehlo, S_ANY },
	{ "MAIL", cmd_mail, S_READY },
	{ "RCPT", cmd_rcpt, S_MAIL | S_RCPT },
	{ "DATA", cmd_data, S_RCPT | S_BDAT },
	{ "BDAT", cmd_bdat, S_ANY },	/* checks itself: must eat the chunk */
	{ "RSET", cmd_rset, S_ANY },
	{ "NOOP", cmd_noop, S_ANY },
	{ "QUIT", cmd_quit, S_ANY },
	{ "STARTTLS", cmd_starttls, S_GREET | S_READY },
	{ "VRFY", cmd_vrfy, S_ANY },
	{ "HELP", cmd_help, S_ANY },
	{ "EXPN", cmd_not_impl, S_ANY },
	{ "TURN", cmd_not_impl, S_ANY },
	{ "ETRN", cmd_not_impl, S_ANY },
	{ "SEND", cmd_not_impl, S_ANY },
	{ "SOML", cmd_not_impl, S_ANY },
	{ "SAML", cmd_not_impl, S_ANY },
	{ NULL, cmd_unknown, S_ANY },
};

/* dispatch - one command line: find the row, check the state, run it */
static void dispatch(struct session *s, char *line, size_t len)
{
	const struct command *c;
	size_t vlen = strcspn(line, " ");
	char *arg = line + vlen;

	if (strlen(line) != len) {
		reply(s, R_NUL);
		return;
	}
	if (*arg == ' ')
		arg++;
	for (c = commands; c->verb; c++)
		if (strlen(c->verb) == vlen && strncasecmp(line, c->verb, vlen) == 0)
			break;
	if (!(c->states & s->state))
		reply(s, R_SEQUENCE);
	else
		c->fn(s, arg);
}

/* client_addr - the peer: tcpserver's TCPREMOTEIP, else getpeername */
static void client_addr(char *dst, size_t cap, int fd)
{
	const char *env = getenv("TCPREMOTEIP");
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	const void *a = NULL;

	if (env && *env && strlen(env) < cap &&
	    env[strspn(env, "0123456789abcdefABCDEF:.")] == '\0') {
		strcpy(dst, env);
		return;
	}
	snprintf(dst, cap, "unknown");
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET)
		a = &((struct sockaddr_in *)&ss)->sin_addr;
	else if (ss.ss_family == AF_INET6)
		a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
	if (a && inet_ntop(ss.ss_family, a, dst, cap) && strncmp(dst, "::ffff:", 7) == 0 &&
	    strchr(dst, '.'))
		memmove(dst, dst + 7, strlen(dst + 7) + 1);	/* v4-mapped */
}

/* connection_addr - the client's address, from the PROXY header if on */
int connection_addr(int fd, char *addr, size_t cap)
{
	char real[64];
	int r;

	client_addr(addr, cap, fd);
	if (!cfg.proxy_trusted[0])
		return 0;
	snprintf(real, sizeof real, "%s", addr);
	if (!in_list(real, cfg.proxy_trusted)) {
		logmsg(LOG_WARNING, "refused client=%s reason=untrusted-proxy-peer", real);
		return -1;
	}
	if ((r = proxy_read(fd, cfg.cmd_timeout, addr, cap)) < 0) {
		logmsg(LOG_WARNING, "refused client=%s reason=bad-proxy-header", real);
		return -1;
	}
	if (r == 0)
		snprintf(addr, cap, "%s", real);
	logmsg(LOG_INFO, "proxy client=%s via=%s", addr, real);
	return 0;
}

/* session_run - one SMTP session on in/out; returns the exit status */
int session_run(int in, int out, const char *addr, struct deliverer *d)
{
	char line[CMDLINE_MAX + 1];
	struct session *s = calloc(1, sizeof *s);
	size_t len = 0;
	int r;

	if (!s || !(s->t.rcpt = calloc(cfg.rcpt_limit, sizeof *s->t.rcpt)))
		fatal("session memory");
	s->in = in, s->out = out, s->d = d, s->t.spool.fd = -1;
	fcntl(out, F_SETFL, fcntl(out, F_GETFL) | O_NONBLOCK);
	s->state = S_GREET;
	starttls_open(&s->tls);
	snprintf(s->addr, sizeof s->addr, "%s", addr);
	queue_id(s->id, sizeof s->id, 0);
	logmsg(LOG_INFO, "%s connect client=%s", s->id, s->addr);
	reply(s, R_GREETING, cfg.hostname);
	while (s->state != S_QUIT) {
		r = read_line(s, line, cfg.cmdline_limit, &len);
		if (r < 0)
			lost(s, r);
		else if (r == LINE_LONG)
			reply(s, R_LINE_TOO_LONG);
		else
			dispatch(s, line, len);
	}
	out_flush(s);
	txn_reset(s);
	starttls_close(&s->tls);
	logmsg(LOG_INFO, "%s disconnect client=%s helo=%s errors=%d", s->id,
	    s->addr, s->helo[0] ? s->helo : "-", s->errors);
	free(s->t.rcpt);
	free(s);
	return 0;
}

/* Start-up ----------------------------------------------------------- */

/* drop_privileges - become the session account for good, and check it */
void drop_privileges(const char *name)
{
	struct passwd *pw = getpwnam(name);

	if (!pw)
		fatalx("session_user %s does not exist", name);
	if (pw->pw_uid == 0)
		fatalx("session_user %s is root", name);
	if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		fatal("cannot become %s", name);
	if (setuid(0) == 0 || geteuid() == 0 || getegid() == 0)
		fatalx("could regain root after dropping privileges");
}

/* spool_setup - make sure the spool exists and the session owns it */
static int spool_setup(void)
{
	struct passwd *pw;
	struct stat st;

	if (mkdir(cfg.spool_dir, 0700) < 0 && errno != EEXIST)
		return -1;
	if (lstat(cfg.spool_dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return -1;
	if (cfg.uid != 0)
		return 0;
	if (!(pw = getpwnam(cfg.session_user)))
		return -1;
	if (st.st_uid != pw->pw_uid && chown(cfg.spool_dir, pw->pw_uid, pw->pw_gid) < 0)
		return -1;
	return 0;
}

/* check_config - "smtpd -n": print the settings and what is wrong */
static int check_config(void)
{
	char why[4 * CFG_STR_MAX];
	struct user u;
	int bad = 0;

	config_print();
	if (users_lookup("postmaster", &u) != USER_FOUND) {
		fprintf(stderr, "smtpd: postmaster account %s cannot receive mail\n",
		    cfg.postmaster);
		bad = 1;
	}
	if (tls_check(why, sizeof why) < 0) {
		fprintf(stderr, "smtpd: %s\n", why);
		bad = 1;
	}
	if (cfg.uid == 0 && (!getpwnam(cfg.session_user) ||
	    getpwnam(cfg.session_user)->pw_uid == 0)) {
		fprintf(stderr, "smtpd: session_user %s unusable\n", cfg.session_user);
		bad = 1;
	}
	return bad;
}

/* usage - the options and every setting with its help */
static void usage(FILE *f)
{
	fprintf(f, "usage: smtpd [-eqnh] [-c file] [-o name=value]...\n"
	    "  (no mode)  serve one SMTP session on fd 0/1 (inetd style)\n"
	    "  -q         run the queue once: retry deferred deliveries\n"
	    "  -n         print the effective settings, check them, exit\n"
	    "  -c file    read \"name = value\" settings from file\n"
	    "  -o n=v     set one setting (after -c)\n"
	    "  -e         log to stderr instead of syslog (LOG_MAIL)\n"
	    "  -h         this help\nsettings:\n");
	config_help(f);
}

/* queue_child - smtpd -q: a deliverer, no privileges, one queue run */
int queue_child(void)
{
	struct deliverer d;
	int r;

	if (deliverer_start(&d, 2) < 0)
		fatal("cannot start deliverer");
	if (cfg.uid == 0)
		drop_privileges(cfg.session_user);
	r = queue_run(&d, time(NULL)) < 0 ? 111 : 0;
	deliverer_stop(&d);
	return r;
}

/* on_term - SIGTERM in a single session: answer 421 and end */
static void on_term(int sig)
{
	(void)sig;
	smtpd_stop = 1;
}

/* inetd_session - one connection on fd (0/1, or 3 under Accept=yes) */
static int inetd_session(int in, int out)
{
	struct deliverer d;
	struct sigaction sa;
	char addr[64];
	int r;

	if (deliverer_start(&d, 2) < 0)
		fatal("cannot start deliverer");
	if (cfg.uid == 0)
		drop_privileges(cfg.session_user);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;	/* no SA_RESTART: poll() must wake */
	sigaction(SIGTERM, &sa, NULL);
	r = connection_addr(in, addr, sizeof addr) < 0 ? 0 :
	    session_run(in, out, addr, &d);
	deliverer_stop(&d);
	return r;
}

/* listening - is fd a listening socket (systemd Accept=no)? */
static int listening(int fd)
{
	int on = 0;
	socklen_t len = sizeof on;

	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

/* smtpd_main - parse the configuration and run the chosen mode */
int smtpd_main(int argc, char **argv)
{
	static const char unavailable[] = "421 4.3.0 Service not available\r\n";
	int mode, nfds;

	if (config_load(argc, argv, &mode) < 0) {
		usage(stderr);
		return 100;
	}
	if (mode == MODE_HELP) {
		usage(stdout);
		return 0;
	}
	if (mode == MODE_CHECK)
		return check_config();
	log_init("smtpd");
	signal(SIGPIPE, SIG_IGN);
	umask(077);
	nfds = sd_listen_fds();
	if (spool_setup() < 0) {
		logmsg(LOG_CRIT, "cannot use spool %s: %s", cfg.spool_dir, strerror(errno));
		if (mode == MODE_SESSION && !cfg.listen[0])
			(void)!write(nfds ? 3 : 1, unavailable, sizeof unavailable - 1);
		return 111;
	}
	if (mode == MODE_QUEUE)
		return queue_child();
	if (cfg.listen[0] || (nfds > 0 && listening(3)))
		return supervisor_run(argc, argv);
	if (nfds > 0)
		return inetd_session(3, 3);	/* systemd Accept=yes */
	return inetd_session(0, 1);
}
