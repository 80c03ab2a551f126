/*
 * data.c - the DATA/BDAT byte machine (DESIGN.md, "Code shape").
 *
 * Interface: data_start() resets the machine for one message,
 * data_bytes() feeds it octets as they arrive (in any split) and says
 * how many it consumed, data_result() gives the verdict at the end.
 * In one pass it finds the end of DATA, removes dot-stuffing, turns
 * CR LF into LF for the Maildir, counts the size, measures text lines,
 * and counts Received: / matches Delivered-To: lines for loops.
 * Invariants (RFC 5321 4.1.1.4, 4.5.2, 4.5.3.1.6; RFC 3030):
 *  - only CR LF . CR LF ends DATA; a bare CR or LF marks the message bad
 *    and never starts a line, so "\n.\n", "\r.\r" and friends are text
 *    (no SMTP smuggling), and nothing is ever normalised;
 *  - in BDAT the dot has no meaning, but line ends are checked alike;
 *  - errors are sticky: the first one wins and the machine keeps
 *    reading to the real end, so the session stays in step;
 *  - a line is measured while it arrives, so a line too long is one
 *    whether or not its CR LF ever comes (the end of a BDAT message);
 *  - a NUL octet is refused like a bare CR or LF (554 5.6.0): it is not
 *    text (RFC 5322 2.3), and Maildir readers treat it as the end.
 */
#include <string.h>
#include <strings.h>

#include "config.h"
#include "data.h"
#include "route.h"
#include "rfc822.h"

/* data_start - ready the machine for one message */
void data_start(struct data *d, int bdat, char *const *rcpt, int nrcpt,
    data_sink *sink, void *arg)
{
	memset(d, 0, sizeof *d);
	d->ds = D_BOL;
	d->err = DATA_OK;
	d->bdat = bdat;
	d->in_headers = 1;
	d->rcpt = rcpt, d->nrcpt = nrcpt;
	d->sink = sink, d->arg = arg;
}

/* data_error - record the first problem (sticky) */
static void data_error(struct data *d, enum data_result r)
{
	if (d->err == DATA_OK)
		d->err = r;
}

/* delivered_to_us - does a Delivered-To: value name one of our mailboxes?
 * (route.c resolves it: IUSER1@ and iuser1+x@ are one mailbox) */
static int delivered_to_us(struct data *d, const char *v, size_t n)
{
	char addr[ADDR_MAX];

	while (n > 0 && (*v == ' ' || *v == '\t'))
		v++, n--;
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n >= sizeof addr || d->nrcpt == 0 || d->dto++ >= DATA_DTO_MAX)
		return 0;
	memcpy(addr, v, n);
	addr[n] = '\0';
	return route_loops(d->rcpt, d->nrcpt, addr);
}

/* header_line - loop checks on one complete header line (RFC 5321 6.3) */
static void header_line(struct data *d)
{
	const char *colon;

	if (d->hlen == 0) {
		d->in_headers = 0;	/* the empty line ends the header */
		return;
	}
	if (rfc822_header_is(d->hdr, d->hlen, "Received") && ++d->hops > cfg.hop_limit)
		d->loop = 1;
	if (!rfc822_header_is(d->hdr, d->hlen, "Delivered-To"))
		return;
	colon = memchr(d->hdr, ':', d->hlen) + 1;
	if (delivered_to_us(d, colon, d->hlen - (colon - d->hdr)))
		d->loop = 1;
}

/* out_flush - what emit() gathered, to the sink */
static void out_flush(struct data *d)
{
	if (d->outlen)
		d->sink(d->arg, d->out, d->outlen);
	d->outlen = 0;
}

/* put_lf - one LF for the sink, not counted (data_finish's completion) */
static void put_lf(struct data *d)
{
	if (d->outlen == sizeof d->out)
		out_flush(d);
	d->out[d->outlen++] = '\n';
}

/* emit - message octets to the sink (gathered in out), within the size
 * limit */
static void emit(struct data *d, const char *p, size_t n)
{
	d->octets += n;
	if (d->octets > cfg.size_limit)
		data_error(d, DATA_SIZE);
	if (d->err != DATA_OK)
		return;
	if (d->outlen + n > sizeof d->out) {
		out_flush(d);
		if (n > sizeof d->out / 2) {	/* a long run: straight through */
			d->sink(d->arg, p, n);
			return;
		}
	}
	memcpy(d->out + d->outlen, p, n);
	d->outlen += n;
}

/* hdr_put - keep the start of a header line for header_line() */
static void hdr_put(struct data *d, const char *p, size_t n)
{
	size_t k = n < sizeof d->hdr - d->hlen ? n : sizeof d->hdr - d->hlen;

	memcpy(d->hdr + d->hlen, p, k);
	d->hlen += k;
}

/* end_line - CR LF seen (line_len counts the CR): store LF, check */
static void end_line(struct data *d)
{
	if (cfg.textline_limit && d->line_len + 1 > cfg.textline_limit)
		data_error(d, DATA_TEXT_LINE);
	if (d->in_headers) {
		header_line(d);
		d->hlen = 0;
	}
	d->octets++;		/* the CR we do not store */
	emit(d, "\n", 1);
	d->line_len = 0;
}

/* text_run - length of the run of octets that need no decision */
static size_t text_run(const char *p, size_t n)
{
	const char *cr = memchr(p, '\r', n), *lf, *nul;
	size_t lim = cr ? (size_t)(cr - p) : n;

	lf = memchr(p, '\n', lim);	/* memchr: the per-octet passes */
	lim = lf ? (size_t)(lf - p) : lim;
	nul = memchr(p, '\0', lim);
	return nul ? (size_t)(nul - p) : lim;
}

/* in_text - D_BOL/D_TEXT: a run of text, or the one octet that ends it */
static size_t in_text(struct data *d, const char *p, size_t n)
{
	size_t k = text_run(p, n);

	if (k > 0) {
		if (d->in_headers)
			hdr_put(d, p, k);
		emit(d, p, k);
		d->line_len += k;
		if (cfg.textline_limit && d->line_len + 2 > cfg.textline_limit)
			data_error(d, DATA_TEXT_LINE);	/* with its CR LF, too long */
		d->ds = D_TEXT;
	}
	if (k + 1 < n && p[k] == '\r' && p[k + 1] == '\n') {
		d->line_len++;	/* CR LF here: what D_CR would do, in one go */
		end_line(d);
		d->ds = D_BOL;
		return k + 2;
	}
	if (k > 0)
		return k;
	d->ds = (p[0] == '\r') ? D_CR : D_TEXT;
	if (p[0] == '\n')
		data_error(d, DATA_BARE_EOL);
	if (p[0] == '\0')
		data_error(d, DATA_NUL);
	d->line_len++;
	return 1;
}

/* step - one decision at p[0] (or a text run); octets consumed */
static size_t step(struct data *d, const char *p, size_t n)
{
	char c = p[0];

	switch (d->ds) {
	case D_BOL:
		if (c == '.' && !d->bdat) {
			d->ds = D_DOT;	/* not counted: it is removed */
			return 1;
		}
		return in_text(d, p, n);
	case D_TEXT:
		return in_text(d, p, n);
	case D_CR:
		if (c == '\n') {
			end_line(d);
			d->ds = D_BOL;
			return 1;
		}
		data_error(d, DATA_BARE_EOL);
		d->ds = (c == '\r') ? D_CR : D_TEXT;
		d->line_len++;
		return 1;
	case D_DOT:
		if (c == '\r') {
			d->ds = D_DOT_CR;
			d->line_len++;
			return 1;
		}
		d->ds = D_TEXT;		/* unstuff: drop the first dot */
		return 0;
	case D_DOT_CR:
		if (c == '\n') {
			d->ds = D_END;
			d->line_len++;
			return 1;
		}
		data_error(d, DATA_BARE_EOL);	/* "." CR then not LF */
		d->ds = D_TEXT;
		return 0;
	case D_END:
		break;
	}
	return 0;
}

/*
 * data_bytes - feed octets through the machine.  Returns how many were
 * consumed: all of them, or up to and including the end of DATA.
 */
size_t data_bytes(struct data *d, const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && d->ds != D_END)
		i += step(d, p + i, n - i);
	out_flush(d);	/* the sink has every octet when we return */
	return i;
}

/*
 * data_finish - BDAT LAST ended the message.  An unterminated last line
 * is completed: it was measured as it came (in_text), and it is stored
 * with its LF, as if CR LF had been sent (RFC 5322 text ends lines with
 * CR LF; a Maildir file ends with LF).  size= counts only what was sent.
 * A lone CR at the end stays a bare CR (data_result).
 */
void data_finish(struct data *d)
{
	if (d->ds != D_TEXT)
		return;
	if (d->in_headers) {
		header_line(d);
		d->hlen = 0;
	}
	if (d->err == DATA_OK)
		put_lf(d);
	out_flush(d);
	d->ds = D_BOL;
	d->line_len = 0;
}

/*
 * data_result - the verdict once the input ended: the first problem, a
 * BDAT message that ended on a lone CR, or a loop.
 */
enum data_result data_result(const struct data *d)
{
	if (d->err != DATA_OK)
		return d->err;
	if (d->ds == D_CR)
		return DATA_BARE_EOL;
	if (d->loop)
		return DATA_LOOP;
	return DATA_OK;
}
