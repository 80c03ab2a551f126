/*
 * data.h - the DATA/BDAT byte machine: one pass over the message octets.
 */
#ifndef DATA_H
#define DATA_H

#include <stddef.h>
#include <sys/types.h>

#define DATA_HDR_MAX	1024	/* header line kept for the loop checks */
#define DATA_DTO_MAX	32	/* Delivered-To: lines resolved per message */

/* Where the machine stands, named by what was seen last. */
enum dstate {
	D_BOL,		/* start of a line: after CR LF (or the DATA line) */
	D_TEXT,		/* inside a line */
	D_CR,		/* CR inside a line */
	D_DOT,		/* CR LF . */
	D_DOT_CR,	/* CR LF . CR */
	D_END,		/* CR LF . CR LF: end of data */
};

/* What the message turned out to be; the first problem sticks. */
enum data_result {
	DATA_OK,
	DATA_BARE_EOL,		/* a CR or LF not in CR LF */
	DATA_TEXT_LINE,		/* a line over textline_limit */
	DATA_SIZE,		/* over size_limit */
	DATA_LOOP,		/* hop_limit or a Delivered-To of ours */
	DATA_NUL,		/* a NUL octet: refused like a bare CR or LF */
};

/* Where the stored octets go (the spool, or a test's buffer). */
typedef void data_sink(void *arg, const char *p, size_t n);

struct data {
	enum dstate ds;		/* byte machine state */
	enum data_result err;	/* first problem; DATA_OK if none */
	int bdat;		/* 1: BDAT (no dot-stuffing, no end line) */
	long line_len;		/* wire octets in the current line */
	off_t octets;		/* message octets as sent (CR LF, no stuffing) */
	int in_headers;		/* still in the header section */
	int hops;		/* Received: lines seen */
	int loop;		/* a Delivered-To: names a recipient */
	int dto;		/* Delivered-To: lines resolved (DATA_DTO_MAX) */
	char *const *rcpt;	/* the recipients, for Delivered-To */
	int nrcpt;
	data_sink *sink;	/* gets the octets to store (LF line ends) */
	void *arg;
	size_t hlen;		/* octets in hdr */
	char hdr[DATA_HDR_MAX];	/* start of the current header line */
	size_t outlen;		/* octets in out */
	char out[4096];		/* octets for the sink, given at the end of each
				 * data_bytes() call: one call per 4 KiB, not two per line */
};

void data_start(struct data *d, int bdat, char *const *rcpt, int nrcpt,
    data_sink *sink, void *arg);
size_t data_bytes(struct data *d, const char *p, size_t n);
void data_finish(struct data *d);
enum data_result data_result(const struct data *d);

#endif
