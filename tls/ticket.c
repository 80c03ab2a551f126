/*
 * ticket.c - the session ticket key records (ticket.h): what the
 * supervisor sends each engine and what a -R key file holds.
 *
 * A message (or file) is 1 to TICKET_MAX records of TICKET_REC octets,
 * newest first: a 4-octet key name, big-endian, then TICKET_KEY octets
 * of key.  Names are never 0 (libtls's empty slots carry name 0) and
 * differ within a message.  Nothing else: no header, no trailer.
 */
#include <string.h>

#include "ticket.h"

/* ticket_put - one record: name big-endian, then the key */
void ticket_put(unsigned char *rec, const struct ticket_key *k)
{
	rec[0] = k->name >> 24, rec[1] = k->name >> 16;
	rec[2] = k->name >> 8, rec[3] = k->name;
	memcpy(rec + 4, k->key, TICKET_KEY);
}

/* ticket_parse - n octets into out[], newest first; the count, or -1 */
int ticket_parse(const unsigned char *buf, size_t n, struct ticket_key *out)
{
	size_t k = n / TICKET_REC, i, j;

	if (n == 0 || n % TICKET_REC || k > TICKET_MAX)
		return -1;
	for (i = 0; i < k; i++) {
		const unsigned char *r = buf + i * TICKET_REC;

		out[i].name = (uint32_t)r[0] << 24 | (uint32_t)r[1] << 16 |
		    (uint32_t)r[2] << 8 | r[3];
		memcpy(out[i].key, r + 4, TICKET_KEY);
		if (out[i].name == 0)
			return -1;
		for (j = 0; j < i; j++)
			if (out[j].name == out[i].name)
				return -1;
	}
	return (int)k;
}
