/*
 * filter_proto.h - pure codecs for the two filter protocols smtpd speaks:
 * Sendmail milter packets (version 6) and Postfix policy-delegation
 * replies.  No I/O, no allocation, no globals: milter.c and policy.c do
 * the talking, the unit tests and fuzz targets drive these directly.
 */
#ifndef FILTER_PROTO_H
#define FILTER_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define MILTER_VERSION	6
#define MILTER_CHUNK	65535	/* largest body chunk we send */
#define MILTER_PKT_MAX	(MILTER_CHUNK + 64)	/* largest packet we build */
#define MILTER_REPLY_MAX 131072	/* largest packet a milter may send */
#define MILTER_TEXT_MAX	1024	/* replycode / quarantine text we keep */

/* MTA -> filter commands (mfdef.h SMFIC_*) */
enum {
	MC_ABORT = 'A', MC_BODY = 'B', MC_CONNECT = 'C', MC_MACRO = 'D',
	MC_EOM = 'E', MC_HELO = 'H', MC_HEADER = 'L', MC_MAIL = 'M',
	MC_EOH = 'N', MC_OPTNEG = 'O', MC_QUIT = 'Q', MC_RCPT = 'R',
	MC_DATA = 'T',
};

/* filter -> MTA replies (SMFIR_*) */
enum {
	MR_ADDRCPT = '+', MR_DELRCPT = '-', MR_ADDRCPT_PAR = '2',
	MR_ACCEPT = 'a', MR_REPLBODY = 'b', MR_CONTINUE = 'c', MR_DISCARD = 'd',
	MR_CHGFROM = 'e', MR_ADDHEADER = 'h', MR_INSHEADER = 'i',
	MR_SETSYMLIST = 'l', MR_CHGHEADER = 'm', MR_PROGRESS = 'p',
	MR_QUARANTINE = 'q', MR_REJECT = 'r', MR_SKIP = 's', MR_TEMPFAIL = 't',
	MR_REPLYCODE = 'y', MR_OPTNEG = 'O',
};

/* actions the MTA allows (SMFIF_*) */
#define MA_ADDHDRS	0x001
#define MA_CHGBODY	0x002
#define MA_ADDRCPT	0x004
#define MA_DELRCPT	0x008
#define MA_CHGHDRS	0x010
#define MA_QUARANTINE	0x020
#define MA_CHGFROM	0x040
#define MA_ADDRCPT_PAR	0x080
#define MA_SETSYMLIST	0x100
#define MA_OFFERED	(MA_ADDHDRS | MA_CHGHDRS | MA_QUARANTINE)

/* protocol steps (SMFIP_*): skip a stage, or send no reply to it */
#define MP_NOCONNECT	0x000001
#define MP_NOHELO	0x000002
#define MP_NOMAIL	0x000004
#define MP_NORCPT	0x000008
#define MP_NOBODY	0x000010
#define MP_NOHDRS	0x000020
#define MP_NOEOH	0x000040
#define MP_NR_HDR	0x000080
#define MP_NOUNKNOWN	0x000100
#define MP_NODATA	0x000200
#define MP_SKIP		0x000400
#define MP_RCPT_REJ	0x000800
#define MP_NR_CONN	0x001000
#define MP_NR_HELO	0x002000
#define MP_NR_MAIL	0x004000
#define MP_NR_RCPT	0x008000
#define MP_NR_DATA	0x010000
#define MP_NR_UNKN	0x020000
#define MP_NR_EOH	0x040000
#define MP_NR_BODY	0x080000
#define MP_HDR_LEADSPC	0x100000
/* every step we can leave out or not wait for (no RCPT_REJ, no LEADSPC) */
#define MP_OFFERED	(0x0fffff & ~MP_RCPT_REJ)

/* A packet being built: 4-octet length, command, data. */
struct mpkt {
	size_t len;			/* octets in buf, length word included */
	int bad;			/* 1 when something did not fit */
	unsigned char buf[MILTER_PKT_MAX];
};

void mp_begin(struct mpkt *p, int cmd);
void mp_bytes(struct mpkt *p, const void *data, size_t n);
void mp_str(struct mpkt *p, const char *s);
void mp_u16(struct mpkt *p, unsigned v);
void mp_u32(struct mpkt *p, uint32_t v);
int mp_end(struct mpkt *p);

/* One decoded milter reply; pointers point into the packet. */
struct mreply {
	int cmd;			/* MR_* */
	uint32_t version, actions, proto;	/* MR_OPTNEG */
	uint32_t index;			/* MR_INSHEADER, MR_CHGHEADER */
	const char *name;		/* header name (h, i, m) */
	const char *value;		/* header value (h, i, m); "" deletes (m) */
	const char *text;		/* replycode line(s) or quarantine reason */
};

long mp_frame_len(const unsigned char hdr[4]);
int mp_decode(const unsigned char *pkt, size_t n, struct mreply *r);
int mp_reply_text_ok(const char *text);

/* A policy server's answer, parsed. */
enum {
	PA_DUNNO, PA_OK, PA_REJECT, PA_DEFER, PA_DEFER_IF_PERMIT, PA_CODE,
	PA_PREPEND, PA_BAD,
};
struct paction {
	int kind;			/* PA_* */
	int code;			/* PA_CODE: 4xx or 5xx */
	const char *text;		/* rest of the line (may be "") */
	size_t textlen;
};

size_t hdr_field(const char *p, size_t n, size_t *namelen);

int policy_parse(const char *line, size_t n, struct paction *a);

#endif
