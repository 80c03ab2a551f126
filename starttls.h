/*
 * starttls.h - the session's side of STARTTLS (RFC 3207) through a
 * UCSPI-TLS engine (smtpd-tls or any engine that speaks the convention).
 */
#ifndef STARTTLS_H
#define STARTTLS_H

#include <stddef.h>

#define TLS_VARS_MAX	2048	/* octets of SSL_* variables we accept */
#define TLS_TOKEN_MAX	64	/* protocol and cipher names, octets */
#define TLS_REASON_MAX	160	/* an engine's failure reason, octets */
#define TLS_DN_MAX	256	/* a client certificate's subject or issuer */

/* What the engine told us; filled by starttls_vars(). */
struct tls_info {
	char protocol[TLS_TOKEN_MAX];	/* SSL_PROTOCOL, e.g. TLSv1.3 */
	char cipher[TLS_TOKEN_MAX];	/* SSL_CIPHER */
	int bits;			/* SSL_CIPHER_USEKEYSIZE, 0 if unknown */
	char subject[TLS_DN_MAX];	/* SSL_PEER_CERT_SUBJECT, "" if none */
	char issuer[TLS_DN_MAX];	/* SSL_PEER_CERT_ISSUER, "" if none */
	char error[TLS_REASON_MAX];	/* ERROR: why the handshake failed */
};

/* One session's engine; zeroed, then starttls_open() at session start. */
struct starttls {
	int ctl, rd, wr;	/* engine fds; -1 while there is none */
	int spawn;		/* the supervisor starts an engine on request */
	int active;		/* TLS is on: read rd, write wr */
	struct tls_info info;	/* valid once active */
};

/* the results of starttls_vars() */
enum { VARS_MORE = 0, VARS_DONE = 1, VARS_BAD = -1 };

void starttls_open(struct starttls *t);
int starttls_offered(const struct starttls *t);
int starttls_begin(struct starttls *t, int net);
int starttls_finish(struct starttls *t, long timeout);
void starttls_close(struct starttls *t);
int starttls_vars(struct tls_info *ti, const char *buf, size_t len);
size_t starttls_comment(char *dst, size_t cap, const struct tls_info *ti);
void starttls_worker(int chan);

#endif
