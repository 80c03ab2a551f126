/*
 * smtpd.c - the SMTP dialogue (RFC 5321), and nothing else.
 *
 * Interface: session_run() speaks SMTP on any pair of descriptors; it
 * knows nothing of who started it (main.c for inetd style, worker.c for
 * the prefork supervisor).  smtpd_stop, set from a signal handler, ends
 * the session with 421.
 *
 * Shape (DESIGN.md, "Code shape"): one command table with the states in which each verb
 * is allowed; one bounded line reader; DATA and BDAT bytes go through one
 * byte-level state machine; transaction errors are sticky and become one
 * reply; every reply text lives in one table.
 * Extensions: PIPELINING (RFC 2920), SIZE (1870), 8BITMIME (6152),
 * ENHANCEDSTATUSCODES (2034, 3463), SMTPUTF8 (6531), CHUNKING (3030),
 * STARTTLS (3207) through a UCSPI-TLS engine (starttls.c).
 * Invariant: the session never runs as root (its starter dropped the
 * privileges before the first network byte) and the end of data is
 * CR LF . CR LF and nothing else (data.c).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "strcopy.h"
#include "config.h"
#include "data.h"
#include "deliver.h"
#include "door.h"
#include "route.h"
#include "log.h"
#include "milter.h"
#include "policy.h"
#include "queue.h"
#include "replies.h"
#include "rfc822.h"
#include "smtpd.h"
#include "peer.h"
#include "starttls.h"
#include "users.h"
#include "nowms.h"

#define IN_BUF		65536	/* network input buffer, octets */
#define OUT_BUF		8192	/* replies waiting for the input to run dry */
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

/* The one exception to "no globals": a flag a signal handler sets. */
volatile sig_atomic_t smtpd_stop;

/* One mail transaction: from MAIL to the end of data, RSET or HELO. */
struct txn {
	char sender[ADDR_MAX];	/* reverse-path address, "" for <> */
	int utf8;		/* MAIL had SMTPUTF8 */
	char **rcpt;		/* accepted addresses, rcpt_limit slots */
	int nrcpt;		/* used slots */
	struct spool spool;	/* data file; spool.fd < 0 until data */
	int bdat;		/* 1 once BDAT was used */
	struct data data;	/* the byte machine; reset by data_begin */
	struct timespec start;	/* when DATA/BDAT began, for time= */
	int discard;		/* a milter said discard: 250, store nothing */
};

/* One SMTP connection; everything the dialogue needs, passed around. */
struct session {
	int in, out;		/* network descriptors */
	int state;		/* one S_* value */
	int esmtp;		/* EHLO used: enhanced codes, ESMTP in Received */
	int errors;		/* error replies so far (never reset) */
	unsigned long seq;	/* transactions so far, for queue ids */
	int messages;		/* messages accepted (never reset) */
	struct timespec start;	/* connection time, for time= */
	char id[QID_MAX];	/* session id, first on each log line */
	char addr[PEER_ADDR_MAX];	/* client address text */
	char helo[DOMAIN_MAX + 1];	/* HELO/EHLO argument, safe text */
	struct deliverer *d;	/* our deliverer */
	struct door door;	/* what the checks at the door found (door.c) */
	long long deadline;	/* session_timeout's end, ms (monotonic); 0 = none */
	long long data_deadline;/* DATA/BDAT request's end, ms; 0 outside data */
	struct route route;	/* LMTP sessions, kept across transactions */
	struct starttls tls;	/* the TLS engine and what it negotiated */
	struct milters *milter;	/* milter client, NULL when none are set */
	struct policy *policy;	/* policy client, NULL when none are set */
	struct verdict gate;	/* a milter's connect-stage refusal; never reset */
	struct txn t;		/* current transaction; reset by txn_reset */
	size_t inpos, inlen;	/* unread input is inbuf[inpos, inlen) */
	size_t outlen;		/* octets waiting in outbuf */
	char inbuf[IN_BUF];	/* the two buffers come last: session_new */
	char outbuf[OUT_BUF];	/* does not zero them (inlen, outlen do) */
};

/* nothing but the two buffers (and padding) may follow inbuf */
_Static_assert(sizeof(struct session) - offsetof(struct session, inbuf) <
    IN_BUF + OUT_BUF + 64, "session buffers must come last");

static void reply(struct session *s, enum reply_id id, ...);

/* set_state - the one place the session state changes */
static void set_state(struct session *s, int state)
{
	s->state = state;
}

/* I/O -------------------------------------------------------------- */

/* what read_line() and fill() return */
enum { LINE_OK, LINE_LONG, LINE_EOF = -1, LINE_TIMEOUT = -2, LINE_SHUTDOWN = -3,
	LINE_DEADLINE = -4, LINE_SLOW = -5 };

/*
 * wait_ms - how long fill() may wait: the read timeout, cut short by the
 * session's deadline and the data request's; *why is what ends it then.
 */
static long long wait_ms(const struct session *s, long timeout, int *why)
{
	long long now = now_ms(), w = timeout * 1000LL;

	*why = LINE_TIMEOUT;
	if (s->deadline && s->deadline - now <= w)
		w = s->deadline - now, *why = LINE_DEADLINE;
	if (s->data_deadline && s->data_deadline - now <= w)
		w = s->data_deadline - now, *why = LINE_SLOW;
	return w < 0 ? 0 : w;
}

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

	log_flush();	/* the lines of the events these replies answer first */

	while (off < s->outlen) {
		ssize_t w = write(s->out, s->outbuf + off, s->outlen - off);

		if (w < 0 && (errno == EINTR || (errno == EAGAIN && writable(s->out))))
			continue;
		if (w <= 0) {
			if (s->state != S_QUIT)
				logmsg(LOG_INFO, "%s lost client=%s reason=\"write: %s\"", s->id,
				    s->addr, w < 0 ? strerror(errno) : "closed");
			set_state(s, S_QUIT);
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
	int r, why;

	out_flush(s);
	if (s->inpos == s->inlen)
		s->inpos = s->inlen = 0;
	do
		r = poll(&pfd, 1, (int)wait_ms(s, timeout, &why));
	while (r < 0 && errno == EINTR && !smtpd_stop);
	if (smtpd_stop)
		return LINE_SHUTDOWN;
	if (r == 0 || (why != LINE_TIMEOUT && wait_ms(s, timeout, &why) == 0))
		return why;	/* a trickle of bytes does not push a deadline back */
	do
		n = read(s->in, s->inbuf + s->inlen, sizeof s->inbuf - s->inlen);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return 0;	/* spurious wake-up: the caller polls again */
	if (n <= 0)
		return LINE_EOF;
	s->inlen += n;
	users_new_epoch();	/* lookups trust one stat of passwd per read */
	if (s->data_deadline)	/* min_data_rate: each octet buys time */
		s->data_deadline += n * 1000LL / cfg.min_data_rate;
	return 0;
}

/* log_reject - one line for a 4xx/5xx reply */
static void log_reject(struct session *s, const char *line)
{
	char text[1024 * 4];

	log_text(text, sizeof text, line);
	logmsg(LOG_INFO, "%s reject client=%s reply=\"%s\"", s->id, s->addr, text);
}

/*
 * reply_line - send one reply from the table; count errors and apply the
 * error cap.  `quiet`: the caller logs the refusal itself, in its own
 * line (RCPT, the end of data), so it is not logged twice.
 */
static void reply_line(struct session *s, int quiet, enum reply_id id, va_list ap)
{
	char line[1024];
	size_t n = reply_format(line, sizeof line, id, s->esmtp, ap);

	out_put(s, line, n);
	out_put(s, "\r\n", 2);
	if (!reply_is_error(line))
		return;
	if (!quiet)
		log_reject(s, line);
	if (reply_counts_as_error(line) && ++s->errors >= cfg.error_limit) {
		reply(s, R_TOO_MANY_ERRORS, cfg.hostname);
		set_state(s, S_QUIT);
	}
}

/* reply - send one reply from the table, logging a refusal */
static void reply(struct session *s, enum reply_id id, ...)
{
	va_list ap;

	va_start(ap, id);
	reply_line(s, 0, id, ap);
	va_end(ap);
}

/* reply_logged - send one reply whose refusal the caller logs */
static void reply_logged(struct session *s, enum reply_id id, ...)
{
	va_list ap;

	va_start(ap, id);
	reply_line(s, 1, id, ap);
	va_end(ap);
}

/* reply_words - the reply a table row gives, as log text */
static void reply_words(const struct session *s, char *dst, size_t cap,
    enum reply_id id, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, id);
	reply_format(line, sizeof line, id, s->esmtp, ap);
	va_end(ap);
	log_text(dst, cap, line);
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
	else if (r == LINE_DEADLINE)
		reply(s, R_SESSION_DEADLINE, cfg.hostname);
	else if (r == LINE_SLOW)
		reply(s, R_DATA_RATE, cfg.hostname);
	logmsg(LOG_INFO, "%s lost client=%s reason=%s stage=%s", s->id, s->addr,
	    r == LINE_TIMEOUT ? "timeout" : r == LINE_SHUTDOWN ? "shutdown" :
	    r == LINE_DEADLINE ? "session-deadline" : r == LINE_SLOW ? "data-rate" : "eof",
	    s->t.spool.fd >= 0 ? "data" : "command");
	set_state(s, S_QUIT);
}

/* Transactions ------------------------------------------------------ */


/* txn_reset - forget the transaction; remove any unfinished spool file
 * (a memory one is kept, emptied, for the session's next message) */
static void txn_reset(struct session *s)
{
	struct txn *t = &s->t;
	int i;

	milter_abort(s->milter);
	policy_reset(s->policy);
	spool_recycle(&t->spool);
	route_end(&s->route);
	for (i = 0; i < t->nrcpt; i++)
		free(t->rcpt[i]);
	t->nrcpt = 0;
	t->sender[0] = '\0';
	t->utf8 = t->bdat = t->discard = 0;	/* data_begin resets the byte machine */
	if (s->state & (S_MAIL | S_RCPT | S_BDAT))
		set_state(s, S_READY);
}

/*
 * filter_reply - the reply for a filter's verdict: R_OKAY to go on
 * (a discard only marks the transaction), the filter's own line
 * (R_FILTER, text in v), or our default for a refusal without text.
 */
static enum reply_id filter_reply(struct session *s, const struct verdict *v,
    enum reply_id reject, enum reply_id temp)
{
	if (v->kind == FV_DISCARD)
		s->t.discard = 1;
	if (v->kind != FV_REJECT && v->kind != FV_TEMPFAIL)
		return R_OKAY;
	if (v->text[0])
		return R_FILTER;
	return v->kind == FV_REJECT ? reject : temp;
}

/* Commands ---------------------------------------------------------- */

/* hello - HELO and EHLO: check the name, reset, remember the dialect */
static void hello(struct session *s, char *arg, int esmtp)
{
	char name[DOMAIN_MAX * 4 + 1];
	struct verdict v;
	enum reply_id r;

	if (!rfc822_helo(arg, esmtp)) {
		reply(s, R_SYNTAX);
		return;
	}
	txn_reset(s);
	rfc822_safe(s->helo, sizeof s->helo, arg, strlen(arg));
	s->esmtp = esmtp;
	milter_helo(s->milter, s->helo, &v);
	if ((r = filter_reply(s, &v, R_MILTER_REJECT, R_MILTER_TEMP)) != R_OKAY) {
		set_state(s, S_GREET);	/* another HELO may pass */
		reply(s, r, v.text);
		return;
	}
	set_state(s, S_READY);
	log_escape(name, sizeof name, arg, strlen(arg));
	logmsg(LOG_INFO, "%s %s client=%s name=%s", s->id, esmtp ? "ehlo" : "helo",
	    s->addr, name);
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
	struct verdict v;
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
	milter_mail(s->milter, arg, &v);
	if ((r = filter_reply(s, &v, R_MILTER_REJECT, R_MILTER_TEMP)) != R_OKAY) {
		reply(s, r, v.text);
		return;
	}
	rfc822_address(&path, s->t.sender, sizeof s->t.sender);
	s->t.utf8 = pr.smtputf8;
	set_state(s, S_MAIL);
	reply(s, R_SENDER_OK);
}

/* route_reply - the one map from a route_rcpt() outcome to a reply */
static enum reply_id route_reply(int r)
{
	switch (r) {
	case ROUTE_OK:
		return R_RCPT_OK;
	case ROUTE_TEMP:
		return R_TEMP_LOOKUP;
	case ROUTE_FULL:
		return R_MAILBOX_FULL;
	case ROUTE_LMTP_DOWN:
		return R_LMTP_DOWN;
	case ROUTE_LOOP:
		return R_ALIAS_CONFIG;
	case ROUTE_TOO_MANY:
		return R_TOO_MANY_RCPTS;
	default:
		return R_NO_SUCH_USER;
	}
}

/*
 * filter_rcpt - a recipient in our domains, before it is looked up: the policy
 * servers, then the milters
 */
static enum reply_id filter_rcpt(struct session *s, const char *arg,
    const char *addr, struct verdict *v)
{
	struct policy_req rq = { s->helo, s->t.sender, addr, s->esmtp, 0,
		s->t.nrcpt, s->seq, NULL };
	enum reply_id r;

	policy_rcpt(s->policy, &rq, v);
	if ((r = filter_reply(s, v, R_POLICY_REJECT, R_POLICY_TEMP)) != R_OKAY)
		return r;
	milter_rcpt(s->milter, arg, v);
	if ((r = filter_reply(s, v, R_MILTER_REJECT, R_MILTER_TEMP)) != R_OKAY)
		return r;
	return R_RCPT_OK;
}

/* check_rcpt - the recipient policy: syntax, no relay, then route.c
 * (which adds the deliveries to the transaction) */
static enum reply_id check_rcpt(struct session *s, const char *arg,
    struct verdict *v)
{
	char addr[ADDR_MAX];
	const char *p = path_arg(arg, "TO:"), *rest;
	char local[LOCAL_MAX + 1];
	struct params pr;
	struct path path;
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
	if (door_refuses_rcpt(&s->door,		/* listed, and not postmaster */
	    rfc822_local_unquote(&path, local, sizeof local) ? local : ""))
		return R_DNSBL;
	rfc822_address(&path, addr, ADDR_MAX);
	if ((r = filter_rcpt(s, arg, addr, v)) != R_RCPT_OK)
		return r;
	return route_reply(route_rcpt(&s->route, s->d, s->id, s->t.sender, &path,
	    s->t.rcpt, &s->t.nrcpt, cfg.rcpt_limit));
}


/* log_rcpt - the one line per RCPT, with the refusal when there is one */
static void log_rcpt(struct session *s, const char *arg, enum reply_id r,
    const char *text)
{
	char to[CMDLINE_MAX * 4 + 1], why[1024 * 4];
	const char *p = path_arg(arg, "TO:"), *end;
	struct path path;
	size_t n;

	p = p ? p : arg;
	n = rfc822_path(p, &path, &end) == 0 ? (size_t)(end - p) : strlen(p);
	if (n >= 2 && p[0] == '<' && p[n - 1] == '>')
		p++, n -= 2;
	log_escape(to, sizeof to, p, n);
	if (r == R_RCPT_OK) {
		const char *parts[] = { s->id, " rcpt client=", s->addr, " to=<", to,
		    "> result=accepted", NULL };

		log_parts(LOG_INFO, parts);
		return;
	}
	if (r == R_DNSBL)
		reply_words(s, why, sizeof why, r, s->addr, s->door.site);
	else
		reply_words(s, why, sizeof why, r, text);
	logmsg(LOG_INFO, "%s rcpt client=%s to=<%s> result=rejected reply=\"%s\"",
	    s->id, s->addr, to, why);
}

/* cmd_rcpt - RCPT TO:<path>: checked now, so unknown users never bounce */
static void cmd_rcpt(struct session *s, char *arg)
{
	struct verdict v = { FV_CONTINUE, "" };
	enum reply_id r = check_rcpt(s, arg, &v);

	log_rcpt(s, arg, r, v.text);
	if (r == R_RCPT_OK)
		set_state(s, S_RCPT);
	if (r == R_DNSBL)
		reply_logged(s, r, s->addr, s->door.site);
	else
		reply_logged(s, r, v.text);
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
	char why[TLS_REASON_MAX * 4];

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
		log_text(why, sizeof why, s->tls.info.error);
		logmsg(LOG_INFO, "%s starttls client=%s result=failed reason=\"%s\"", s->id,
		    s->addr, why);
		set_state(s, S_QUIT);
		return;
	}
	s->in = s->tls.rd, s->out = s->tls.wr;
	fcntl(s->out, F_SETFL, fcntl(s->out, F_GETFL) | O_NONBLOCK);
	txn_reset(s);
	s->helo[0] = '\0';
	set_state(s, S_GREET);
	milter_tls(s->milter, &s->tls.info);
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

/* to_spool - the byte machine's sink: the transaction's spool */
static void to_spool(void *arg, const char *p, size_t n)
{
	spool_put(arg, p, n);
}

/*
 * why_reply - the one map from a reason (deliver.h WHY_*) to a temporary
 * reply; `spool`: the failure was in our own spool, not a mailbox.
 */
static enum reply_id why_reply(int why, int spool)
{
	switch (why) {
	case WHY_STORAGE:
		return R_NO_STORAGE;
	case WHY_QUOTA:
		return spool ? R_NO_STORAGE : R_MAILBOX_FULL;
	case WHY_REMOTE:
		return R_LMTP_DOWN;
	default:
		return spool ? R_TEMP_STORE : R_TEMP_DELIVERY;
	}
}

/* storage_reply - a spool errno as a reply */
static enum reply_id storage_reply(int err)
{
	return why_reply(deliver_why_errno(err), 1);
}

/* data_begin - open the spool, write Return-Path and Received; R_OKAY */
static enum reply_id data_begin(struct session *s, int bdat)
{
	struct txn *t = &s->t;
	char head[2 * ADDR_MAX + 2 * CFG_STR_MAX + 2 * DOMAIN_MAX + 512]; /* fits any */
	char using[3 * TLS_TOKEN_MAX];
	struct received rc;
	size_t n;
	int err;

	if ((err = spool_create(&t->spool, ++s->seq)) != 0) {
		logmsg(LOG_ERR, "%s spool client=%s reason=\"%s\"", s->id, s->addr,
		    strerror(err));
		return storage_reply(err);
	}
	rc.helo = s->helo, rc.addr = s->addr, rc.by = cfg.hostname;
	rc.with = !s->esmtp ? "SMTP" : t->utf8 ? "UTF8SMTP" : "ESMTP";
	rc.tls = NULL;
	if (s->tls.active) {	/* RFC 3848, RFC 6531 */
		rc.with = !s->esmtp ? "SMTP" : t->utf8 ? "UTF8SMTPS" : "ESMTPS";
		if (starttls_comment(using, sizeof using, &s->tls.info) > 0)
			rc.tls = using;
	}
	rc.id = t->spool.id, rc.when = time(NULL), rc.utf8 = t->utf8;
	rc.name = door_name(&s->door);
	rc.rcpt = t->nrcpt == 1 ? strchr(t->rcpt[0], ' ') + 1 : NULL;
	{
		const char *parts[] = { "Return-Path: <", t->sender, ">\n", NULL };

		n = str_join(head, sizeof head, parts);
		spool_put(&t->spool, head, n < sizeof head ? n : sizeof head - 1);
	}
	policy_headers(s->policy, &t->spool);	/* PREPEND, above our Received */
	if ((n = rfc822_received(head, sizeof head, &rc)) == 0)
		fatalx("Received: line does not fit");	/* cannot happen */
	spool_put(&t->spool, head, n);
	t->bdat = bdat;
	data_start(&t->data, bdat, t->rcpt, t->nrcpt, to_spool, &t->spool);
	clock_gettime(CLOCK_MONOTONIC, &t->start);
	return R_OKAY;
}

/*
 * data_clock - start (1) or stop (0) a DATA/BDAT request's deadline:
 * data_timeout from now, and min_data_rate adds time per octet (fill)
 */
static void data_clock(struct session *s, int on)
{
	s->data_deadline = on && cfg.min_data_rate ?
	    now_ms() + cfg.data_timeout * 1000LL : 0;
}

/* read_data - DATA octets up to CR LF . CR LF; 0, or LINE_EOF/TIMEOUT */
static int read_data(struct session *s)
{
	int r;

	data_clock(s, 1);
	for (;;) {
		s->inpos += data_bytes(&s->t.data, s->inbuf + s->inpos,
		    s->inlen - s->inpos);
		if (s->t.data.ds == D_END)
			break;
		if ((r = fill(s, cfg.data_timeout)) < 0)
			return r;
	}
	data_clock(s, 0);
	return 0;
}

/* read_chunk - exactly n BDAT octets (n may be 0); 0 or LINE_EOF/TIMEOUT */
static int read_chunk(struct session *s, long n, int keep)
{
	int r;

	data_clock(s, 1);
	while (n > 0) {
		size_t avail = s->inlen - s->inpos;
		size_t take = (long)avail < n ? avail : (size_t)n;

		if (keep)
			data_bytes(&s->t.data, s->inbuf + s->inpos, take);
		s->inpos += take, n -= take;
		if (n > 0 && (r = fill(s, cfg.data_timeout)) < 0)
			return r;
	}
	data_clock(s, 0);
	return 0;
}

/* data_reply - the byte machine's verdict as a reply */
static enum reply_id data_reply(enum data_result r)
{
	switch (r) {
	case DATA_OK:
		return R_OKAY;
	case DATA_BARE_EOL:
		return R_BARE_EOL;
	case DATA_TEXT_LINE:
		return R_TEXT_LINE;
	case DATA_SIZE:
		return R_SIZE_DATA;
	case DATA_LOOP:
		return R_LOOP;
	case DATA_NUL:
		return R_DATA_NUL;
	}
	return R_INTERNAL;
}

/* delivery_reply - a failed delivery as a reply: permanent -> 550 */
static enum reply_id delivery_reply(const struct deliver_result *res)
{
	if (res->status == DELIVER_PERM)
		return res->why == WHY_OVERQUOTA ? R_OVER_QUOTA :
		    res->why == WHY_REMOTE ? R_REMOTE_REFUSED : R_NO_SUCH_USER;
	return why_reply(res->why, 0);
}

/* deliver_all - hand the message over; the reply it earns */
static enum reply_id deliver_all(struct session *s)
{
	struct deliver_result res, *done = calloc(s->t.nrcpt, sizeof *done);
	struct txn *t = &s->t;
	enum reply_id r;

	if (!done)
		return R_TEMP_STORE;
	route_data(&s->route, t->spool.fd, t->rcpt, t->nrcpt, done);
	switch (queue_accept(s->d, &t->spool, t->rcpt, t->nrcpt, done, &res)) {
	case ACCEPT_ALL:
	case ACCEPT_QUEUED:
		r = R_QUEUED;
		break;
	case ACCEPT_SPOOL:
		r = why_reply(res.why, 1);
		break;
	default:
		r = delivery_reply(&res);
	}
	free(done);
	return r;
}

/* elapsed - seconds since ts, for time= */
static double elapsed(const struct timespec *ts)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - ts->tv_sec) + (now.tv_nsec - ts->tv_nsec) / 1e9;
}

/* log_message - the one summary line per message */
static void log_message(struct session *s, enum reply_id r, const char *text)
{
	struct txn *t = &s->t;
	char from[ADDR_MAX * 4], helo[sizeof s->helo * 4], why[1024 * 4];
	char size[24], nrcpt[24], sec[24], ms[24];
	long long msec = (long long)(elapsed(&t->start) * 1000 + 0.5);
	const char *parts[] = { s->id, " message qid=", t->spool.id, " client=", s->addr,
	    " helo=", helo, " from=<", from, "> size=", size, " nrcpt=", nrcpt,
	    " result=", r != R_QUEUED ? "rejected" : t->discard ? "discarded" : "accepted",
	    " reply=\"", why, "\" time=", sec, ".", ms, NULL };

	str_uint(size, (unsigned long long)t->data.octets, 10, 0, 0);
	str_uint(nrcpt, (unsigned long long)t->nrcpt, 10, 0, 0);
	str_uint(sec, (unsigned long long)(msec / 1000), 10, 0, 0);	/* %.3f */
	str_uint(ms, (unsigned long long)(msec % 1000), 10, 3, 0);
	log_escape(from, sizeof from, t->sender, strlen(t->sender));
	if (!log_escape(helo, sizeof helo, s->helo, strlen(s->helo)))
		strcpy(helo, "-");
	if (r == R_TEXT_LINE)
		reply_words(s, why, sizeof why, r, cfg.textline_limit);
	else
		reply_words(s, why, sizeof why, r, r == R_FILTER ? text : t->spool.id);
	log_parts(r == R_QUEUED ? LOG_INFO : LOG_NOTICE, parts);
}

/*
 * filter_data - after the end of data: the policy servers asked then
 * (policy_data_services), then the milters; the reply id, R_OKAY to go on
 */
static enum reply_id filter_data(struct session *s, struct verdict *v)
{
	struct txn *t = &s->t;
	struct policy_req rq = { s->helo, t->sender, t->nrcpt == 1 ?
		strchr(t->rcpt[0], ' ') + 1 : "", s->esmtp, (long)t->data.octets,
		t->nrcpt, s->seq, t->spool.id };
	enum reply_id r;

	policy_data(s->policy, &rq, v);
	if ((r = filter_reply(s, v, R_POLICY_REJECT, R_POLICY_TEMP)) != R_OKAY)
		return r;
	milter_message(s->milter, &t->spool, v);
	return filter_reply(s, v, R_MILTER_REJECT, R_MILTER_TEMP);
}

/* data_end - turn the transaction's outcome into exactly one reply */
static void data_end(struct session *s)
{
	struct txn *t = &s->t;
	enum reply_id r = data_reply(data_result(&t->data));
	struct verdict v = { FV_CONTINUE, "" };

	if (r == R_OKAY && spool_flush(&t->spool) != 0)
		r = storage_reply(t->spool.err);
	if (r == R_OKAY && !t->discard)
		r = filter_data(s, &v);
	if (r == R_OKAY)
		r = t->discard ? R_QUEUED : deliver_all(s);
	log_message(s, r, v.text);
	if (r == R_QUEUED)
		reply_logged(s, r, t->spool.id);
	else if (r == R_FILTER)
		reply_logged(s, r, v.text);
	else if (r == R_TEXT_LINE)
		reply_logged(s, r, cfg.textline_limit);
	else
		reply_logged(s, r);
	s->messages += r == R_QUEUED;
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
	if ((deny = data_begin(s, 0)) != R_OKAY) {
		reply(s, deny);
		return;
	}
	reply(s, R_DATA_GO);
	if ((r = read_data(s)) < 0)
		lost(s, r);
	else
		data_end(s);
}

/*
 * bdat_arg - parse "SIZE [LAST]": the size, or -1 when none can be read
 * (no digits, or over BDAT_MAX); *bad when anything else follows it
 */
static long bdat_arg(const char *arg, int *last, int *bad)
{
	long n = 0;

	*last = 0, *bad = 0;
	if (!isdigit((unsigned char)*arg))
		return -1;
	for (; isdigit((unsigned char)*arg); arg++) {
		if (n > (BDAT_MAX - (*arg - '0')) / 10)
			return -1;
		n = n * 10 + (*arg - '0');
	}
	if (strcasecmp(arg, " LAST") == 0)
		*last = 1;
	else if (*arg != '\0')
		*bad = 1;
	return n;
}

/*
 * cmd_bdat - BDAT n [LAST] (RFC 3030): chunks, no dot-stuffing.  Once a
 * size was read, that many octets are the chunk, whatever else is wrong:
 * they are read (and thrown away when refused), never taken as commands.
 * Without a readable size the stream cannot be followed: 421 and close.
 * A bad BDAT inside a message fails the message (a chunk is missing).
 */
static void cmd_bdat(struct session *s, char *arg)
{
	enum reply_id deny = R_OKAY;
	int last, bad, r;
	long n = bdat_arg(arg, &last, &bad);

	if (n < 0) {
		reply(s, R_BDAT_NO_SIZE, cfg.hostname);
		set_state(s, S_QUIT);
		return;
	}
	if (bad)
		deny = R_SYNTAX;
	else if (!(s->state & (S_RCPT | S_BDAT)))
		deny = R_SEQUENCE;
	else if (s->state == S_RCPT && (deny = data_begin(s, 1)) == R_OKAY)
		set_state(s, S_BDAT);
	/* a refused chunk is still read, so the session stays in step */
	if ((r = read_chunk(s, n, deny == R_OKAY)) < 0) {
		lost(s, r);
	} else if (deny != R_OKAY) {
		if (s->state == S_BDAT)
			txn_reset(s);
		reply(s, deny);
	} else if (last) {
		data_finish(&s->t.data);
		data_end(s);
	} else {
		reply(s, R_BDAT_OK, n);
	}
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
	if (s->gate.kind != FV_CONTINUE && c->fn != cmd_quit && c->fn != cmd_noop &&
	    c->fn != cmd_rset && c->fn != cmd_bdat)	/* BDAT must eat its chunk */
		reply(s, filter_reply(s, &s->gate, R_MILTER_REJECT, R_MILTER_TEMP),
		    s->gate.text);
	else if (!(c->states & s->state))
		reply(s, R_SEQUENCE);
	else
		c->fn(s, arg);
}

/* session_new - a session on in/out for client addr, or NULL */
static struct session *session_new(int in, int out, const char *id, const char *addr,
    struct deliverer *d)
{
	struct session *s = malloc(sizeof *s);	/* 72 KiB of buffers not zeroed */

	if (s)
		memset(s, 0, offsetof(struct session, inbuf));
	if (!s || !(s->t.rcpt = calloc(cfg.rcpt_limit, sizeof *s->t.rcpt))) {
		free(s);
		return NULL;
	}
	s->in = in, s->out = out, s->d = d, s->t.spool.fd = -1;
	str_copy(s->id, sizeof s->id, id);
	str_copy(s->addr, sizeof s->addr, addr);
	clock_gettime(CLOCK_MONOTONIC, &s->start);
	set_state(s, S_GREET);
	starttls_open(&s->tls);
	return s;
}

/*
 * greet - the checks at the door (door.c) while the greeting is held,
 * then the greeting; a client that talked first gets 554 and is closed.
 */
static void greet(struct session *s)
{
	if (cfg.session_timeout)
		s->deadline = now_ms() + cfg.session_timeout * 1000LL;
	if (door_start(&s->door, s->in, s->addr) && cfg.greet_multiline) {
		reply(s, R_GREET_TEASER, cfg.hostname);
		out_flush(s);
	}
	switch (door_wait(&s->door, s->in, s->id, s->addr)) {
	case DOOR_PREGREET:
		s->esmtp = 1;	/* no dialogue to negotiate: keep 5.5.1, as postscreen */
		reply_logged(s, R_PREGREET);	/* door.c logged the refusal */
		set_state(s, S_QUIT);
		break;
	case DOOR_GONE:
		lost(s, LINE_EOF);
		break;
	default:
		milter_connect(s->milter, &s->gate);	/* a refusal: see dispatch */
		reply(s, R_GREETING, cfg.hostname);
	}
}

/* session_run - one SMTP session on in/out; returns the exit status */
int session_run(int in, int out, const char *id, const char *addr, int port,
    struct deliverer *d)
{
	char line[CMDLINE_MAX + 1], helo[DOMAIN_MAX * 4 + 1];
	struct session *s = session_new(in, out, id, addr, d);
	size_t len = 0;
	int r;

	if (!s)
		fatal("session memory");
	log_set_id(s->id);
	fcntl(out, F_SETFL, fcntl(out, F_GETFL) | O_NONBLOCK);
	log_hold(1);	/* a batch of pipelined commands: its lines in one write */
	logmsg(LOG_INFO, "%s connect client=%s", s->id, s->addr);
	s->milter = milter_new(s->id, s->addr, port);
	s->policy = policy_new(s->id, s->addr);
	greet(s);
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
	spool_free(&s->t.spool);
	starttls_close(&s->tls);
	milter_end(s->milter);
	policy_end(s->policy);
	log_escape(helo, sizeof helo, s->helo, strlen(s->helo));
	logmsg(LOG_INFO, "%s disconnect client=%s helo=%s messages=%d errors=%d time=%.3f",
	    s->id, s->addr, helo[0] ? helo : "-", s->messages, s->errors,
	    elapsed(&s->start));
	log_hold(0);
	route_close(&s->route);
	free(s->t.rcpt);
	free(s);
	return 0;
}
