/*
 * rfc822.h - pure text work for smtpd: no I/O, no allocation, no globals.
 */
#ifndef RFC822_H
#define RFC822_H

#include <stddef.h>
#include <time.h>

#define LOCAL_MAX	64	/* RFC 5321 4.5.3.1.1 */
#define DOMAIN_MAX	255	/* RFC 5321 4.5.3.1.2 */
#define PATH_MAX_LEN	256	/* RFC 5321 4.5.3.1.3, including < > */
#define ADDR_MAX	(LOCAL_MAX + 3 + DOMAIN_MAX + 2) /* local@domain + NUL */

/* A parsed RFC 5321 Path.  `local` is as written (quotes kept). */
struct path {
	int null;			/* 1 for the null reverse-path <> */
	int utf8;			/* 1 when any octet is non-ASCII */
	int quoted;			/* 1 when the local part is a quoted-string */
	char local[LOCAL_MAX + 3];	/* local part as written, NUL-ended */
	char domain[DOMAIN_MAX + 1];	/* domain or [literal]; "" if none */
};

/* ESMTP parameters of MAIL and RCPT (RFC 1870, 6152, 6531) */
struct params {
	long size;			/* SIZE=, -1 when not given */
	int body;			/* BODY_NONE, BODY_7BIT, BODY_8BITMIME */
	int smtputf8;			/* 1 when SMTPUTF8 was given */
};
enum { BODY_NONE, BODY_7BIT, BODY_8BITMIME };

/* results of rfc822_params() */
enum { PARAM_OK, PARAM_SYNTAX, PARAM_UNKNOWN };

int rfc822_path(const char *s, struct path *p, const char **end);
int rfc822_mailbox(const char *s, struct path *p);
int rfc822_domain(const char *s, size_t len);
int rfc822_addr_literal(const char *s, size_t len);
int rfc822_helo(const char *s, int utf8);
int rfc822_params(const char *s, struct params *p, int is_mail);
int rfc822_utf8_valid(const char *s, size_t len);
size_t rfc822_local_unquote(const struct path *p, char *dst, size_t cap);
size_t rfc822_address(const struct path *p, char *dst, size_t cap);
size_t rfc822_safe(char *dst, size_t cap, const char *src, size_t len);
size_t rfc822_date(char *dst, size_t cap, time_t t);
int rfc822_header_is(const char *line, size_t len, const char *name);

/* What a Received: line says; see rfc822_received() */
struct received {
	const char *helo;		/* client's HELO/EHLO argument, raw */
	const char *addr;		/* client's IP address text */
	const char *by;			/* our host name */
	const char *with;		/* SMTP, ESMTP, UTF8SMTP, ... */
	const char *id;			/* queue id */
	const char *rcpt;		/* the one recipient, or NULL */
	time_t when;
	const char *tls;		/* "(using ...)" comment after STARTTLS, or NULL */
	int utf8;			/* SMTPUTF8 transaction: 8-bit HELO kept */
};
size_t rfc822_received(char *dst, size_t cap, const struct received *r);

#endif
