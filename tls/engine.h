/*
 * engine.h - smtpd-tls, the TLS engine: shared between its start-up
 * (smtpd-tls.c) and its handshake and relay (relay.c).
 */
#ifndef ENGINE_H
#define ENGINE_H

#include <stddef.h>

struct tls;

#define RELAY_BUF	16384	/* octets buffered each way (one TLS record) */
#define VARS_MAX	1024	/* octets of SSL_* variables sent to the app */

/* What the relay needs to know; filled by main, read-only afterwards. */
struct engine {
	struct tls *server;	/* configured server context, or NULL */
	const char *load_error;	/* why server is NULL */
	int net_in, net_out;	/* the client's socket (often the same fd) */
	int ctl;		/* control: app writes y/Y, we send variables */
	int to_app;		/* clear text for the app (its SSLREADFD) */
	int from_app;		/* clear text from the app (its SSLWRITEFD) */
	int chan;		/* -s: the next request's channel, else -1 */
	int ask;		/* -s: the start octet came with the request */
	long hs_timeout;	/* seconds the handshake may take */
	long idle_timeout;	/* seconds without traffic before we end */
};

/* relay.c */
int engine_serve(const struct engine *e);

#endif
