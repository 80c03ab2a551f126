/*
 * ticket.h - session ticket keys as they travel to the engine: from the
 * supervisor over the engine's fd 4 (-K), or in a key file (-R).  Pure;
 * shared by smtpd-tls, smtpd's supervisor (tlsspawn.c) and the fuzzer.
 */
#ifndef TICKET_H
#define TICKET_H

#include <stddef.h>
#include <stdint.h>

#define TICKET_KEY	48	/* octets of one key (libtls: AES-256 + HMAC) */
#define TICKET_REC	(4 + TICKET_KEY)	/* name (big-endian), key */
#define TICKET_MAX	4	/* keys in one message or file, newest first */

struct ticket_key {
	uint32_t name;		/* key name in the ticket; never 0 */
	unsigned char key[TICKET_KEY];
};

int ticket_parse(const unsigned char *buf, size_t n, struct ticket_key *out);
void ticket_put(unsigned char *rec, const struct ticket_key *k);

#endif
