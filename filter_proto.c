/*
 * filter_proto.c - pure codecs for the milter and policy protocols.
 *
 * Milter (Sendmail's libmilter protocol, version 6; constants from its
 * mfdef.h): every packet is a 4-octet big-endian length that counts the
 * command octet, the command octet, then data; strings are NUL-ended.
 * mp_begin .. mp_end build a packet in a fixed buffer; mp_frame_len
 * checks a length word; mp_decode turns one reply packet into a struct
 * mreply whose pointers point into the packet, after checking that every
 * string it names is NUL-terminated inside the packet.
 *
 * Policy delegation (Postfix SMTPD_POLICY_README): the answer is
 * "name=value" lines ended by an empty line; policy_parse finds the
 * action= line and classifies it.
 *
 * Invariant: nothing here reads past the length it is given; text that
 * will become an SMTP reply or a header is checked to be printable
 * ASCII (CR LF only between the lines of a multi-line reply).
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "filter_proto.h"

#define POLICY_TEXT_MAX	512	/* action text we pass on */

/* mp_begin - start packet `cmd`, leaving room for the length word */
void mp_begin(struct mpkt *p, int cmd)
{
	p->len = 4, p->bad = 0;
	p->buf[p->len++] = (unsigned char)cmd;
}

/* mp_bytes - append n octets, or mark the packet bad if they do not fit */
void mp_bytes(struct mpkt *p, const void *data, size_t n)
{
	if (p->bad || n > sizeof p->buf - p->len) {
		p->bad = 1;
		return;
	}
	memcpy(p->buf + p->len, data, n);
	p->len += n;
}

/* mp_str - append a NUL-terminated string */
void mp_str(struct mpkt *p, const char *s)
{
	mp_bytes(p, s, strlen(s) + 1);
}

/* mp_u16 - append a 16-bit number, network order (the connect port) */
void mp_u16(struct mpkt *p, unsigned v)
{
	unsigned char b[2] = { (v >> 8) & 0xff, v & 0xff };

	mp_bytes(p, b, 2);
}

/* mp_u32 - append a 32-bit number, network order */
void mp_u32(struct mpkt *p, uint32_t v)
{
	unsigned char b[4] = { v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff };

	mp_bytes(p, b, 4);
}

/* mp_end - fill in the length word; -1 if the packet overflowed */
int mp_end(struct mpkt *p)
{
	uint32_t n = p->len - 4;

	if (p->bad)
		return -1;
	p->buf[0] = n >> 24, p->buf[1] = (n >> 16) & 0xff;
	p->buf[2] = (n >> 8) & 0xff, p->buf[3] = n & 0xff;
	return 0;
}

/* get_u32 - a network-order 32-bit number */
static uint32_t get_u32(const unsigned char *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* mp_frame_len - a reply's length word; -1 if 0 or over MILTER_REPLY_MAX */
long mp_frame_len(const unsigned char hdr[4])
{
	uint32_t n = get_u32(hdr);

	return (n == 0 || n > MILTER_REPLY_MAX) ? -1 : (long)n;
}

/* take_str - the NUL-ended string at *off inside d[0..n); NULL if none */
static const char *take_str(const unsigned char *d, size_t n, size_t *off)
{
	const unsigned char *nul;
	const char *s;

	if (*off >= n || !(nul = memchr(d + *off, '\0', n - *off)))
		return NULL;
	s = (const char *)d + *off;
	*off = nul - d + 1;
	return s;
}

/* header_name_ok - RFC 5322 2.2 field name: printable, no colon */
static int header_name_ok(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < 33 || *s > 126 || *s == ':')
			return 0;
	return 1;
}

/* header_value_ok - printable or tab; CR/LF only as a fold (then WSP) */
static int header_value_ok(const char *s)
{
	for (; *s; s++) {
		unsigned char c = *s;

		if (c == '\r' && s[1] == '\n')
			s++, c = '\n';
		if (c == '\n' && s[1] != ' ' && s[1] != '\t')
			return 0;
		if (c != '\n' && c != '\t' && (c < 32 || c == 127))
			return 0;
	}
	return 1;
}

/* decode_header - h: name value; i, m: index name value */
static int decode_header(const unsigned char *d, size_t n, struct mreply *r)
{
	size_t off = 0;

	if (r->cmd != MR_ADDHEADER) {
		if (n < 4)
			return -1;
		r->index = get_u32(d);
		off = 4;
	}
	if (!(r->name = take_str(d, n, &off)) || !(r->value = take_str(d, n, &off)))
		return -1;
	if (!header_name_ok(r->name) || !header_value_ok(r->value))
		return -1;
	return 0;
}

/*
 * mp_reply_text_ok - a replycode: "4xx" or "5xx", then " " or "-" and
 * printable text; lines of a multi-line reply are joined by CR LF, each
 * starting with the same code, the last one with "ddd ".
 */
int mp_reply_text_ok(const char *t)
{
	const char *line = t;

	if ((t[0] != '4' && t[0] != '5') || !isdigit((unsigned char)t[1]) ||
	    !isdigit((unsigned char)t[2]))
		return 0;
	for (;;) {
		const char *p = line + 4;

		if (strncmp(line, t, 3) != 0 || (line[3] != ' ' && line[3] != '-'))
			return 0;
		while (*p >= 32 && *p < 127)
			p++;
		if (*p == '\0')
			return line[3] == ' ' && p - t < MILTER_TEXT_MAX;
		if (p[0] != '\r' || p[1] != '\n' || line[3] != '-')
			return 0;
		line = p + 2;
	}
}

/*
 * mp_decode - one reply packet (command octet and data, no length word).
 * Returns 0 and fills r, or -1 for a malformed packet.  Whether the
 * reply is allowed at this stage and was negotiated is the caller's call.
 */
int mp_decode(const unsigned char *pkt, size_t n, struct mreply *r)
{
	const unsigned char *d = pkt + 1;
	size_t off = 0;

	if (n < 1)
		return -1;
	memset(r, 0, sizeof *r);
	r->cmd = pkt[0];
	n--;
	switch (r->cmd) {
	case MR_OPTNEG:
		if (n < 12)
			return -1;
		r->version = get_u32(d), r->actions = get_u32(d + 4);
		r->proto = get_u32(d + 8);
		return 0;	/* a macro list may follow; we did not ask */
	case MR_ACCEPT: case MR_CONTINUE: case MR_DISCARD: case MR_PROGRESS:
	case MR_REJECT: case MR_SKIP: case MR_TEMPFAIL:
		return 0;
	case MR_REPLYCODE:
		if (!(r->text = take_str(d, n, &off)) || !mp_reply_text_ok(r->text))
			return -1;
		return 0;
	case MR_QUARANTINE:
		if (!(r->text = take_str(d, n, &off)) || strlen(r->text) >= MILTER_TEXT_MAX ||
		    !header_value_ok(r->text) || strpbrk(r->text, "\r\n"))
			return -1;
		return 0;
	case MR_ADDHEADER: case MR_INSHEADER: case MR_CHGHEADER:
		return decode_header(d, n, r);
	default:
		return -1;	/* unknown, or a change we never offer */
	}
}

/* word_is - does the action start with `w`, then end or a blank? */
static int word_is(const char *p, size_t n, const char *w)
{
	size_t k = strlen(w);

	return n >= k && strncasecmp(p, w, k) == 0 && (n == k || p[k] == ' ' ||
	    p[k] == '\t');
}

/* text_after - the text after the action word and blanks; printable? */
static int text_after(const char *p, size_t n, size_t k, struct paction *a)
{
	size_t i;

	while (k < n && (p[k] == ' ' || p[k] == '\t'))
		k++;
	a->text = p + k, a->textlen = n - k;
	if (a->textlen > POLICY_TEXT_MAX)
		return -1;
	for (i = k; i < n; i++)
		if ((unsigned char)p[i] < 32 || (unsigned char)p[i] > 126)
			return -1;
	return 0;
}

/* classify - one action value (after "action=") into a struct paction */
static void classify(const char *p, size_t n, struct paction *a)
{
	static const struct { const char *w; int kind; } words[] = {
		{ "OK", PA_OK }, { "DUNNO", PA_DUNNO }, { "REJECT", PA_REJECT },
		{ "DEFER_IF_PERMIT", PA_DEFER_IF_PERMIT }, { "DEFER", PA_DEFER },
		{ "DEFER_IF_REJECT", PA_DUNNO }, { "PREPEND", PA_PREPEND },
		{ "WARN", PA_DUNNO }, { "INFO", PA_DUNNO },
	};
	size_t i;

	a->kind = PA_BAD, a->text = "", a->textlen = 0;
	if (n >= 3 && (p[0] == '4' || p[0] == '5') && isdigit((unsigned char)p[1]) &&
	    isdigit((unsigned char)p[2]) && (n == 3 || p[3] == ' ')) {
		a->code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
		if (text_after(p, n, 3, a) == 0)
			a->kind = PA_CODE;
		return;
	}
	for (i = 0; i < sizeof words / sizeof words[0]; i++) {
		if (!word_is(p, n, words[i].w))
			continue;
		if (text_after(p, n, strlen(words[i].w), a) == 0)
			a->kind = words[i].kind;
		break;
	}
	if (a->kind == PA_PREPEND && (a->textlen == 0 || !memchr(a->text, ':', a->textlen)))
		a->kind = PA_BAD;	/* PREPEND needs "name: value" */
}

/*
 * policy_parse - an answer: "name=value" lines (LF, or CR LF) up to and
 * including the empty line.  Returns 0 with the action classified (PA_BAD
 * for an unknown or unusable one), or -1 when there is no action= line,
 * a line is not name=value, or the empty line is missing.
 */
int policy_parse(const char *buf, size_t n, struct paction *a)
{
	const char *p = buf, *end = buf + n;
	int found = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', end - p);
		size_t len;

		if (!nl)
			return -1;
		len = nl - p;
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len == 0)
			return found ? 0 : -1;
		if (!memchr(p, '=', len))
			return -1;
		if (!found && len >= 7 && strncasecmp(p, "action=", 7) == 0) {
			classify(p + 7, len - 7, a);
			found = 1;
		}
		p = nl + 1;
	}
	return -1;
}

/*
 * hdr_field - the header field at p[0..n) (LF line ends, as spooled):
 * its length including continuation lines and the last LF; the name's
 * length in *namelen.  0 when p starts the end of the header section: an
 * empty line, a line that is not "name:", or nothing left.  A field
 * whose last line has no LF (end of data) runs to n.
 */
size_t hdr_field(const char *p, size_t n, size_t *namelen)
{
	size_t i = 0, k;

	while (i < n && p[i] > 32 && p[i] < 127 && p[i] != ':')
		i++;
	if (i == 0 || i >= n || p[i] != ':')
		return 0;
	*namelen = i;
	for (;;) {
		const char *nl = memchr(p + i, '\n', n - i);

		if (!nl)
			return n;
		k = nl - p + 1;
		if (k >= n || (p[k] != ' ' && p[k] != '\t'))
			return k;
		i = k;
	}
}
