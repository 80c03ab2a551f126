/*
 * rfc822.c - pure text work: paths, parameters, header lines, dates.
 *
 * No I/O, no allocation, no globals: every function reads its arguments
 * and writes only into the caller's buffer, with the capacity given.
 * Implements RFC 5321 4.1.2 (Path, Mailbox, Local-part, Domain,
 * address literals incl. 4.1.3), RFC 1870 / 6152 / 6531 MAIL parameters,
 * RFC 5322 3.3 dates and the Received: trace line of RFC 5321 4.4.
 * Invariant: nothing produced here ever holds a control character
 * except the LF + TAB folding that rfc822_received() writes itself.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rfc822.h"
#include "strcopy.h"

/* utf8_decode - length of the valid UTF-8 sequence at s (max n), or 0 */
static size_t utf8_decode(const unsigned char *s, size_t n, unsigned long *cp)
{
	size_t len, i;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		len = 2, *cp = s[0] & 0x1F;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
		len = 3, *cp = s[0] & 0x0F;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		len = 4, *cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		*cp = (*cp << 6) | (s[i] & 0x3F);
	}
	if ((len == 3 && *cp < 0x800) || (len == 4 && *cp < 0x10000) ||
	    *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF))
		return 0;
	return len;
}

/* utf8_len - length of the valid UTF-8 sequence at s (max n), or 0 */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned long cp;

	return utf8_decode(s, n, &cp);
}

/*
 * invisible - a code point that breaks lines for Unicode-aware readers
 * or hides text: C1 controls (U+0085 NEL among them), U+2028 / U+2029,
 * spaces other than ' ', zero-width and bidi marks, the BOM.  Never
 * part of an address, a HELO name or a header we write.
 */
static int invisible(unsigned long cp)
{
	return (cp >= 0x80 && cp <= 0xA0) || cp == 0xAD || cp == 0x1680 ||
	    cp == 0x180E || (cp >= 0x2000 && cp <= 0x200F) ||
	    (cp >= 0x2028 && cp <= 0x202F) || (cp >= 0x205F && cp <= 0x206F) ||
	    cp == 0x3000 || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB);
}

/* text_len - like utf8_len for non-ASCII, but 0 for invisible code points */
static size_t text_len(const unsigned char *s, size_t n)
{
	unsigned long cp;
	size_t k = utf8_decode(s, n, &cp);

	return k && !invisible(cp) ? k : 0;
}

/* rfc822_utf8_valid - is s[0..len) well-formed UTF-8? */
int rfc822_utf8_valid(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, n;

	while (i < len) {
		if ((n = utf8_len(u + i, len - i)) == 0)
			return 0;
		i += n;
	}
	return 1;
}

/* is_atext - RFC 5322 atext, ASCII part */
static int is_atext(int c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* scan_utf8 - length of a valid non-ASCII sequence at s, or 0 */
static size_t scan_utf8(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	if (u[0] < 0x80)
		return 0;
	return text_len(u, strnlen(s, 4));
}

/* dot_string - length of an RFC 5321 Dot-string at s, or 0 */
static size_t dot_string(const char *s, int *utf8)
{
	size_t i = 0, n;
	int atom = 0;	/* octets in the current atom */

	for (;;) {
		if (is_atext((unsigned char)s[i])) {
			i++, atom++;
		} else if ((n = scan_utf8(s + i)) > 0) {
			i += n, atom++, *utf8 = 1;
		} else if (s[i] == '.' && atom > 0) {
			i++, atom = 0;
			if (!is_atext((unsigned char)s[i]) && !scan_utf8(s + i))
				return 0;
		} else {
			return atom ? i : 0;
		}
	}
}

/* quoted_string - length of an RFC 5321 Quoted-string at s, or 0 */
static size_t quoted_string(const char *s, int *utf8)
{
	size_t i = 1, n;

	if (s[0] != '"')
		return 0;
	for (;;) {
		unsigned char c = s[i];

		if (c == '"')
			return i + 1;
		if (c == '\\' && s[i + 1] >= 32 && s[i + 1] <= 126)
			i += 2;
		else if (c >= 32 && c <= 126 && c != '\\')
			i++;
		else if ((n = scan_utf8(s + i)) > 0)
			i += n, *utf8 = 1;
		else
			return 0;
	}
}

#define L_UTF8		1	/* UTF-8 letters allowed (U-labels) */
#define L_UNDERSCORE	2	/* '_' tolerated (HELO names) */

/* label_len - length of one domain label at s (letters, digits, '-',
 * more as flags say), 0 if none; *utf8 set when it has UTF-8 */
static size_t label_len(const char *s, size_t len, int flags, int *utf8)
{
	size_t i = 0, n;

	while (i < len) {
		if (isalnum((unsigned char)s[i]) || s[i] == '-' ||
		    (s[i] == '_' && (flags & L_UNDERSCORE)))
			i++;
		else if ((flags & L_UTF8) && (unsigned char)s[i] >= 0x80 &&
		    (n = text_len((const unsigned char *)s + i, len - i)) > 0)
			i += n, *utf8 = 1;
		else
			break;
	}
	if (i == 0 || i > 63 || s[0] == '-' || s[i - 1] == '-')
		return 0;
	return i;
}

/* labels - is s[0..len) a Domain: labels (label_len, flags) and dots? */
static int labels(const char *s, size_t len, int flags, int *utf8)
{
	size_t i = 0, n;

	if (len == 0 || len > DOMAIN_MAX)
		return 0;
	for (;;) {
		if ((n = label_len(s + i, len - i, flags, utf8)) == 0)
			return 0;
		i += n;
		if (i == len)
			return 1;
		if (s[i++] != '.')
			return 0;
	}
}

/* domain_utf8 - rfc822_domain that also reports non-ASCII labels */
static int domain_utf8(const char *s, size_t len, int *utf8)
{
	return labels(s, len, L_UTF8, utf8);
}

/* rfc822_domain - is s[0..len) an RFC 5321 Domain? */
int rfc822_domain(const char *s, size_t len)
{
	int utf8 = 0;

	return domain_utf8(s, len, &utf8);
}

/* ipv4 - is s[0..len) a dotted quad? */
static int ipv4(const char *s, size_t len)
{
	size_t i = 0;
	int part;

	for (part = 0; part < 4; part++) {
		int v = 0, digits = 0;

		while (i < len && isdigit((unsigned char)s[i]) && digits < 3)
			v = v * 10 + (s[i++] - '0'), digits++;
		if (digits == 0 || v > 255)
			return 0;
		if (part < 3 && (i >= len || s[i++] != '.'))
			return 0;
	}
	return i == len;
}

/* ipv6 - is s[0..len) IPv6 text (RFC 5321 4.1.3 IPv6-addr)? */
static int ipv6(const char *s, size_t len)
{
	size_t i = 0;
	int groups = 0, gap = 0;

	if (len >= 2 && s[0] == ':' && s[1] == ':')
		gap = 1, i = 2;
	else if (len >= 1 && s[0] == ':')
		return 0;
	while (i < len) {
		size_t start = i;

		while (i < len && isxdigit((unsigned char)s[i]) && i - start < 4)
			i++;
		if (i < len && s[i] == '.' && groups <= 6 && i > start)
			return ipv4(s + start, len - start) && groups + 2 <= (gap ? 7 : 8) &&
			    (gap || groups == 6);
		if (i == start)
			return 0;
		groups++;
		if (i == len)
			break;
		if (s[i] != ':')
			return 0;
		if (i + 1 < len && s[i + 1] == ':') {
			if (gap)
				return 0;
			gap = 1, i += 2;
			if (i == len)
				break;
		} else if (++i == len) {
			return 0;
		}
	}
	return gap ? groups <= 7 : groups == 8;
}

/* general_literal - "tag:dcontent" of RFC 5321 4.1.3 */
static int general_literal(const char *s, size_t len)
{
	const char *colon = memchr(s, ':', len);
	size_t i, taglen;
	int utf8 = 0;

	if (!colon)
		return 0;
	taglen = colon - s;
	if (taglen == 0 || label_len(s, taglen, L_UTF8, &utf8) != taglen || utf8)
		return 0;
	if (taglen + 1 == len)
		return 0;
	for (i = taglen + 1; i < len; i++)
		if (s[i] < 33 || s[i] > 126 || s[i] == '[' || s[i] == ']' ||
		    s[i] == '\\')
			return 0;
	return 1;
}

/* rfc822_addr_literal - is s[0..len) "[...]" per RFC 5321 4.1.3? */
int rfc822_addr_literal(const char *s, size_t len)
{
	if (len < 3 || s[0] != '[' || s[len - 1] != ']')
		return 0;
	s++, len -= 2;
	if (ipv4(s, len))
		return 1;
	if (len > 5 && strncasecmp(s, "IPv6:", 5) == 0)
		return ipv6(s + 5, len - 5);
	return general_literal(s, len);
}

/* domain_part - length of the Domain or address-literal at s, or 0 */
static size_t domain_part(const char *s, size_t stop, int *utf8)
{
	size_t n = strcspn(s, " >\t\r\n");

	if (s[0] == '[') {
		const char *close = memchr(s, ']', strnlen(s, stop));

		if (!close)
			return 0;
		n = close - s + 1;
		return rfc822_addr_literal(s, n) ? n : 0;
	}
	if (n > stop)
		return 0;
	return domain_utf8(s, n, utf8) ? n : 0;
}

/* source_route - length of "@a,@b:" at s (RFC 5321 A-d-l), 0 if none */
static size_t source_route(const char *s, int *bad)
{
	size_t i = 0;
	int utf8 = 0;

	if (s[0] != '@')
		return 0;
	for (;;) {
		size_t n;

		if (s[i] != '@') {
			*bad = 1;
			return 0;
		}
		i++;
		n = strcspn(s + i, ",:>");
		if (!domain_utf8(s + i, n, &utf8) && !rfc822_addr_literal(s + i, n)) {
			*bad = 1;
			return 0;
		}
		i += n;
		if (s[i] == ':')
			return i + 1;
		if (s[i] != ',') {
			*bad = 1;
			return 0;
		}
		i++;
	}
}

/* local_part - parse the local part at s into p; its length or 0 */
static size_t local_part(const char *s, struct path *p)
{
	size_t n;

	p->quoted = (s[0] == '"');
	n = p->quoted ? quoted_string(s, &p->utf8) : dot_string(s, &p->utf8);
	if (n == 0 || n > LOCAL_MAX)
		return 0;
	memcpy(p->local, s, n);
	p->local[n] = '\0';
	return n;
}

/* mailbox - parse Local-part [@ Domain] at s; length or 0 */
static size_t mailbox(const char *s, struct path *p)
{
	size_t i, n;

	if ((i = local_part(s, p)) == 0)
		return 0;
	if (s[i] != '@')
		return strcasecmp(p->local, "postmaster") == 0 ? i : 0;
	i++;
	if ((n = domain_part(s + i, DOMAIN_MAX, &p->utf8)) == 0)
		return 0;
	memcpy(p->domain, s + i, n);
	p->domain[n] = '\0';
	return i + n;
}

/* rfc822_path - parse "<...>" at s (RFC 5321 4.1.2 Path / "<>") */
int rfc822_path(const char *s, struct path *p, const char **end)
{
	size_t i = 1, n;
	int bad = 0;

	memset(p, 0, sizeof *p);
	if (s[0] != '<')
		return -1;
	if (s[1] == '>') {
		p->null = 1;
		*end = s + 2;
		return 0;
	}
	i += source_route(s + 1, &bad);
	if (bad || (n = mailbox(s + i, p)) == 0)
		return -1;
	i += n;
	if (s[i] != '>' || i + 1 > PATH_MAX_LEN)
		return -1;
	*end = s + i + 1;
	return 0;
}

/* rfc822_mailbox - parse a whole "local@domain" (or "postmaster") */
int rfc822_mailbox(const char *s, struct path *p)
{
	size_t n;

	memset(p, 0, sizeof *p);
	n = mailbox(s, p);
	return (n > 0 && s[n] == '\0') ? 0 : -1;
}

/*
 * rfc822_helo - is s a HELO/EHLO argument: an RFC 5321 Domain or an
 * IPv4 / IPv6 address-literal (4.1.1.1, 4.1.3; the general form with a
 * tag, which no client uses, would let '"', '<', '>' and '=' in)?  Labels are letters, digits and '-' (and
 * '_', which some hosts use); with utf8 (EHLO: an SMTPUTF8 client may
 * give its U-label name, RFC 6531) also UTF-8 letters, but never the
 * invisible code points above.  Nothing accepted holds a blank, '=',
 * '"', '<', '>' or a control, so the name is one token everywhere.
 */
int rfc822_helo(const char *s, int utf8)
{
	size_t len = strlen(s);
	int seen = 0;

	if (len == 0 || len > DOMAIN_MAX)
		return 0;
	if (s[0] == '[')	/* IPv4 or IPv6 only: no General-address-literal */
		return len >= 3 && s[len - 1] == ']' && (ipv4(s + 1, len - 2) ||
		    (len > 7 && strncasecmp(s + 1, "IPv6:", 5) == 0 && ipv6(s + 6, len - 7)));
	return labels(s, len, L_UNDERSCORE | (utf8 ? L_UTF8 : 0), &seen);
}

/* param_value - apply one MAIL parameter; PARAM_* result */
static int param_value(struct params *p, const char *key, size_t klen,
    const char *val, size_t vlen, int has_val)
{
	if (klen == 4 && strncasecmp(key, "SIZE", 4) == 0) {
		char digits[21];
		size_t i;

		if (!has_val || vlen == 0 || vlen > 20 || p->size != -1)
			return PARAM_SYNTAX;
		for (i = 0; i < vlen; i++)
			if (!isdigit((unsigned char)val[i]))
				return PARAM_SYNTAX;
		memcpy(digits, val, vlen);
		digits[vlen] = '\0';
		errno = 0;
		p->size = strtol(digits, NULL, 10);
		return errno ? PARAM_SYNTAX : PARAM_OK;
	}
	if (klen == 4 && strncasecmp(key, "BODY", 4) == 0) {
		if (!has_val || p->body != BODY_NONE)
			return PARAM_SYNTAX;
		if (vlen == 4 && strncasecmp(val, "7BIT", 4) == 0)
			p->body = BODY_7BIT;
		else if (vlen == 8 && strncasecmp(val, "8BITMIME", 8) == 0)
			p->body = BODY_8BITMIME;
		else
			return PARAM_SYNTAX;
		return PARAM_OK;
	}
	if (klen == 8 && strncasecmp(key, "SMTPUTF8", 8) == 0) {
		if (has_val || p->smtputf8)
			return PARAM_SYNTAX;
		p->smtputf8 = 1;
		return PARAM_OK;
	}
	return PARAM_UNKNOWN;
}

/* one_param - check "keyword[=value]" of length len; PARAM_* result */
static int one_param(struct params *p, const char *s, size_t len, int is_mail)
{
	const char *eq = memchr(s, '=', len);
	size_t klen = eq ? (size_t)(eq - s) : len, i;

	if (klen == 0 || !isalnum((unsigned char)s[0]))
		return PARAM_SYNTAX;
	for (i = 0; i < klen; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return PARAM_SYNTAX;
	for (i = klen; i < len; i++)
		if ((unsigned char)s[i] < 33 || s[i] == 127)
			return PARAM_SYNTAX;
	if (!is_mail)
		return PARAM_UNKNOWN;
	return param_value(p, s, klen, eq ? eq + 1 : "", eq ? len - klen - 1 : 0,
	    eq != NULL);
}

/* rfc822_params - parse ESMTP parameters after a MAIL/RCPT path */
int rfc822_params(const char *s, struct params *p, int is_mail)
{
	p->size = -1;
	p->body = BODY_NONE;
	p->smtputf8 = 0;
	for (;;) {
		size_t len;
		int r;

		while (*s == ' ')
			s++;
		if (*s == '\0')
			return PARAM_OK;
		len = strcspn(s, " ");
		if ((r = one_param(p, s, len, is_mail)) != PARAM_OK)
			return r;
		s += len;
	}
}

/* rfc822_local_unquote - the local part without quoting, for lookups */
size_t rfc822_local_unquote(const struct path *p, char *dst, size_t cap)
{
	const char *s = p->local;
	size_t n = 0;

	if (p->quoted)
		s++;
	for (; *s && !(p->quoted && *s == '"' && s[1] == '\0'); s++) {
		if (p->quoted && *s == '\\')
			s++;
		if (n + 1 >= cap)
			return 0;
		dst[n++] = *s;
	}
	if (cap == 0)
		return 0;
	dst[n] = '\0';
	return n;
}

/* rfc822_address - "local@domain", "local" or "" for the null path */
size_t rfc822_address(const struct path *p, char *dst, size_t cap)
{
	int n;

	if (p->null) {
		if (cap)
			dst[0] = '\0';
		return 0;
	}
	if (p->domain[0])
		n = snprintf(dst, cap, "%s@%s", p->local, p->domain);
	else
		n = snprintf(dst, cap, "%s", p->local);
	return (n < 0 || (size_t)n >= cap) ? 0 : (size_t)n;
}

/* safe_copy - rfc822_safe; with ascii, non-ASCII code points become '?' */
static size_t safe_copy(char *dst, size_t cap, const char *src, size_t len, int ascii)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0, n = 0, k, bad;

	if (cap == 0)
		return 0;
	while (i < len) {
		k = (s[i] < 32 || s[i] == 127) ? 0 : text_len(s + i, len - i);
		bad = k == 0 ? 1 : 0;	/* octets a '?' stands for */
		if (k == 0 && s[i] >= 0x80 && (bad = utf8_len(s + i, len - i)) == 0)
			bad = 1;	/* malformed: one '?' per octet */
		if (k > 1 && ascii)
			bad = k, k = 0;
		if (n + (k ? k : 1) >= cap)
			break;
		if (k == 0) {
			dst[n++] = '?';
			i += bad;
			continue;
		}
		memcpy(dst + n, s + i, k);
		n += k, i += k;
	}
	dst[n] = '\0';
	return n;
}

/*
 * rfc822_safe - copy text for a header: controls, bad UTF-8 and the
 * invisible code points (line breaks to Unicode readers) become '?'
 */
size_t rfc822_safe(char *dst, size_t cap, const char *src, size_t len)
{
	return safe_copy(dst, cap, src, len, 0);
}

/* put2 - two decimal digits */
static char *put2(char *p, int v)
{
	*p++ = '0' + v / 10 % 10;
	*p++ = '0' + v % 10;
	return p;
}

/*
 * rfc822_date - RFC 5322 3.3 date-time in local time, e.g.
 *     Tue, 1 Dec 2026 02:16:24 +0000
 * digits by hand (snprintf cost some 2,000 instructions a call).
 */
size_t rfc822_date(char *dst, size_t cap, time_t t)
{
	static const char days[] = "SunMonTueWedThuFriSat";
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	struct tm tm;
	char buf[40], *p = buf;
	long off;
	int y;

	if (!localtime_r(&t, &tm))
		return 0;
	off = tm.tm_gmtoff / 60;
	memcpy(p, days + 3 * tm.tm_wday, 3), p += 3;
	*p++ = ',', *p++ = ' ';
	if (tm.tm_mday >= 10)
		*p++ = '0' + tm.tm_mday / 10;
	*p++ = '0' + tm.tm_mday % 10, *p++ = ' ';
	memcpy(p, months + 3 * tm.tm_mon, 3), p += 3;
	*p++ = ' ';
	y = tm.tm_year + 1900;
	if (y < 1000 || y > 9999)
		return 0;
	p = put2(put2(p, y / 100), y % 100);
	*p++ = ' ';
	p = put2(p, tm.tm_hour), *p++ = ':';
	p = put2(p, tm.tm_min), *p++ = ':';
	p = put2(p, tm.tm_sec), *p++ = ' ';
	*p++ = off < 0 ? '-' : '+';
	p = put2(put2(p, (int)(labs(off) / 60)), (int)(labs(off) % 60));
	if ((size_t)(p - buf) >= cap)
		return 0;
	memcpy(dst, buf, p - buf);
	dst[p - buf] = '\0';
	return p - buf;
}

/* rfc822_header_is - does the header line start with field `name`? */
int rfc822_header_is(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);

	if (len <= n || strncasecmp(line, name, n) != 0)
		return 0;
	while (n < len && (line[n] == ' ' || line[n] == '\t'))
		n++;
	return n < len && line[n] == ':';
}

/*
 * rfc822_received - the trace line of RFC 5321 4.4, as stored (LF ends):
 *   Received: from HELO ([ADDR])        (NAME NULL: no lookup made)
 *   Received: from HELO (NAME [ADDR])   (NAME: confirmed PTR, or "unknown")
 *   	(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))
 *   	by BY (smtpd) with WITH id ID
 *   	for <RCPT>; DATE
 * The "for" clause only with one recipient, so Bcc stays private; the
 * "(using ...)" line (Postfix's shape) only after STARTTLS: r->tls is
 * our own text, built from checked tokens by starttls_comment().
 */
size_t rfc822_received(char *dst, size_t cap, const struct received *r)
{
	char helo[DOMAIN_MAX + 1], addr[64], rcpt[ADDR_MAX], date[64], name[DOMAIN_MAX + 2];
	const char *v6 = strchr(r->addr, ':') ? "IPv6:" : "";
	size_t n;

	if (r->helo && r->helo[0])	/* 8-bit only in an SMTPUTF8 message */
		safe_copy(helo, sizeof helo, r->helo, strlen(r->helo), !r->utf8);
	else
		strcpy(helo, "unknown");
	rfc822_safe(addr, sizeof addr, r->addr, strlen(r->addr));
	if (r->rcpt)
		rfc822_safe(rcpt, sizeof rcpt, r->rcpt, strlen(r->rcpt));
	if (rfc822_date(date, sizeof date, r->when) == 0)
		return 0;
	name[0] = '\0';
	if (r->name && r->name[0]) {
		rfc822_safe(name, sizeof name - 1, r->name, strlen(r->name));
		strcat(name, " ");
	}
	{
		const char *parts[] = { "Received: from ", helo, " (", name, "[", v6, addr,
		    "])\n", r->tls ? "\t" : "", r->tls ? r->tls : "", r->tls ? "\n" : "",
		    "\tby ", r->by, " (smtpd) with ", r->with, " id ", r->id,
		    r->rcpt ? "\n\tfor <" : "", r->rcpt ? rcpt : "", r->rcpt ? ">" : "",
		    "; ", date, "\n", NULL };

		n = str_join(dst, cap, parts);	/* no format machinery per message */
	}
	return n >= cap ? 0 : n;
}
