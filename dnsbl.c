/*
 * dnsbl.c - DNS block- and allowlist sites in postscreen's syntax, and
 * what an answer means (RFC 5782; Postfix's postscreen(8)).
 *
 *   dnsbl_sites = zen.example*3, bl.example*2,
 *                 wl.example=127.0.[0..255].[1..3]*-4
 *
 * Each entry is ZONE, an optional "=" filter on the A record the list
 * returns (four octets, each a number or a "[" list "]" of numbers and
 * LO..HI ranges separated by ";"), and an optional "*" weight (default
 * 1; negative for an allowlist).  Entries are separated by commas or
 * blanks.  A client's score is the sum of the weights of the sites that
 * list it; at or above dnsbl_threshold it is refused at RCPT.
 * Interface: dnsbl_parse() reads the setting (pure; fuzzed), dnsbl_answer()
 * judges one A record, dnsbl_query_name() builds "4.3.2.1.ZONE" or the
 * reversed IPv6 nibbles followed by the zone.
 * Invariant: an answer outside 127.0.0.0/8, or in 127.255.255.0/24 (the
 * lists' "refused / over the free limit / typo'd zone" codes), is never
 * a listing, whatever the filter says.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsbl.h"

/* number - a decimal 0..max at *p; advances *p; -1 if none */
static long number(const char **p, long max)
{
	long v = 0;
	int digits = 0;

	while (isdigit((unsigned char)**p)) {
		v = v * 10 + (**p - '0');
		if (v > max || ++digits > 6)
			return -1;
		(*p)++;
	}
	return digits ? v : -1;
}

/* range - "N" or "LO..HI" into one slot of an octet's list */
static int range(const char **p, struct dnsbl_octet *o)
{
	long lo = number(p, 255), hi = lo;

	if (lo < 0 || o->n == DNSBL_RANGES)
		return -1;
	if ((*p)[0] == '.' && (*p)[1] == '.') {
		*p += 2;
		if ((hi = number(p, 255)) < lo)
			return -1;
	}
	o->lo[o->n] = (unsigned char)lo;
	o->hi[o->n++] = (unsigned char)hi;
	return 0;
}

/* octet - "N" or "[R;R;...]" */
static int octet(const char **p, struct dnsbl_octet *o)
{
	o->n = 0;
	if (**p != '[')
		return range(p, o);
	(*p)++;
	for (;;) {
		if (range(p, o) < 0)
			return -1;
		if (**p == ']') {
			(*p)++;
			return 0;
		}
		if (*(*p)++ != ';')
			return -1;
	}
}

/* filter - "d.d.d.d" of octet patterns */
static int filter(const char **p, struct dnsbl_site *s)
{
	int i;

	for (i = 0; i < 4; i++) {
		if (i > 0 && *(*p)++ != '.')
			return -1;
		if (octet(p, &s->oct[i]) < 0)
			return -1;
	}
	s->filtered = 1;
	return 0;
}

/* zone - the domain: labels of letters, digits, '-' and '_' */
static int zone(const char **p, struct dnsbl_site *s)
{
	size_t n = 0, label = 0;

	while (isalnum((unsigned char)**p) || **p == '-' || **p == '_' || **p == '.') {
		if (**p == '.' ? label == 0 : ++label > 63)
			return -1;
		if (**p == '.')
			label = 0;
		if (n == DNSBL_ZONE_MAX)
			return -1;
		s->zone[n++] = (char)tolower((unsigned char)*(*p)++);
	}
	s->zone[n] = '\0';
	return n == 0 || label == 0 ? -1 : 0;	/* empty, or ends in '.' */
}

/* weight - "*N" or "*-N" */
static int weight(const char **p, struct dnsbl_site *s)
{
	int neg = **p == '-';
	long v;

	*p += neg;
	if ((v = number(p, DNSBL_WEIGHT_MAX)) < 0)
		return -1;
	s->weight = (int)(neg ? -v : v);
	return 0;
}

/* entry - one ZONE[=FILTER][*WEIGHT] */
static int entry(const char **p, struct dnsbl_site *s)
{
	memset(s, 0, sizeof *s);
	s->weight = 1;
	if (zone(p, s) < 0)
		return -1;
	if (**p == '=') {
		(*p)++;
		if (filter(p, s) < 0)
			return -1;
	}
	if (**p == '*') {
		(*p)++;
		if (weight(p, s) < 0)
			return -1;
	}
	return **p == '\0' || **p == ',' || isspace((unsigned char)**p) ? 0 : -1;
}

/*
 * dnsbl_parse - read a dnsbl_sites value into sites[max]; the number of
 * sites (0 for an empty value), or -1 if any entry is malformed or there
 * are more than max.
 */
int dnsbl_parse(const char *spec, struct dnsbl_site *sites, int max)
{
	const char *p = spec;
	int n = 0;

	for (;;) {
		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		if (*p == '\0')
			return n;
		if (n == max || entry(&p, &sites[n]) < 0)
			return -1;
		n++;
	}
}

/* in_octet - does v fall in one of the octet's ranges? */
static int in_octet(const struct dnsbl_octet *o, unsigned char v)
{
	int i;

	for (i = 0; i < o->n; i++)
		if (v >= o->lo[i] && v <= o->hi[i])
			return 1;
	return 0;
}

/*
 * dnsbl_answer - what one A record from this site means: DNSBL_LISTED,
 * DNSBL_NO (the filter does not match), or DNSBL_ERROR (outside 127/8 or
 * 127.255.255.x: the list refused us; never a listing).
 */
int dnsbl_answer(const struct dnsbl_site *s, const unsigned char a[4])
{
	int i;

	if (a[0] != 127 || (a[1] == 255 && a[2] == 255))
		return DNSBL_ERROR;
	if (!s->filtered)
		return DNSBL_LISTED;
	for (i = 0; i < 4; i++)
		if (!in_octet(&s->oct[i], a[i]))
			return DNSBL_NO;
	return DNSBL_LISTED;
}

/* dnsbl_query_name - "REVERSED.ZONE" for this client; length, 0 if no room */
int dnsbl_query_name(const struct dnsbl_site *s, const struct netaddr *na,
    char *dst, size_t cap)
{
	char rev[NETADDR_REV_MAX];
	int n;

	if (netaddr_reverse(na, rev, sizeof rev) == 0)
		return 0;
	n = snprintf(dst, cap, "%s.%s", rev, s->zone);
	return n < 0 || (size_t)n >= cap ? 0 : n;
}
