/*
 * milter.c - the Sendmail milter client (protocol version 6), so rspamd,
 * clamav-milter, OpenDKIM and friends can judge mail before we answer.
 *
 * Interface (milter.h): the session makes one call per stage.
 * milter_new() at connect (nothing is sent yet), milter_helo(),
 * milter_mail(), milter_rcpt(), milter_message() after the end of data
 * and before the reply, milter_abort() when a transaction ends without
 * a message (RSET, HELO, a refused DATA), milter_end() at the end of the
 * session.  Milters are the `milters` setting's list, asked in order;
 * the first that rejects wins.
 *
 * Connections open at session start (milter_connect: negotiate (O),
 * connect (C)) and again at the next MAIL after a failure, when the
 * connect and HELO (H) stages are replayed.  A connect-stage refusal is
 * the session's: smtpd greets, then answers every command but QUIT,
 * NOOP and RSET with it; a HELO-stage refusal is the reply to that
 * HELO/EHLO.  After STARTTLS the HELO stage carries the TLS macros
 * ({tls_version}, {cipher}, {cipher_bits}, {cert_subject} and
 * {cert_issuer} where the engine gives them).  After the end of data the
 * spooled message is streamed back to each milter: T, one L per header
 * field (our own Received: first, as milters expect), N, the body in
 * B chunks of at most 65,535 octets with CR LF line ends, E.
 *
 * Header changes (add, insert at an index, change or delete the Nth
 * field of a name) are collected from every milter at E and applied
 * once, by rewriting the spool's header section (spool_replace_head), so
 * every stored copy (Maildir or queue) carries them; our Return-Path
 * stays first and the deliverer's Delivered-To goes above it all.  A
 * quarantine verdict is stored with an X-Quarantine: header.  Body
 * replacement, recipient and sender changes are never offered.
 *
 * Invariants: every wait has a timeout (milter_connect_timeout,
 * milter_command_timeout, milter_content_timeout); a milter that is down,
 * times out, or breaks the protocol (malformed packet, a reply or change
 * it did not negotiate, a replycode not 4xx/5xx) is closed and gets
 * milter_default_action; memory is bounded (one packet buffer, a header
 * section of at most MILTER_HEAD_MAX octets, MOD_MAX changes).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "milter.h"
#include "rfc822.h"

#define MILTER_MAX	8		/* milters in the list */
#define MILTER_HEAD_MAX	(1024 * 1024)	/* header section we handle, octets */
#define MOD_MAX		256		/* header changes per message */
#define MOD_BYTES	262144		/* octets of header changes per message */

/* One header change a milter asked for at end of message. */
struct mod {
	int cmd;		/* MR_ADDHEADER, MR_INSHEADER, MR_CHGHEADER */
	unsigned long index;	/* insert position, or Nth field of the name */
	char *name, *value;
};

/* One milter: its address and connection. */
struct milter {
	char spec[CFG_STR_MAX];	/* inet:HOST:PORT or unix:/path */
	int fd;			/* connection, -1 when closed */
	unsigned long actions;	/* negotiated MA_* */
	unsigned long proto;	/* negotiated MP_* */
	int done;		/* accepted (or failed, default accept): txn */
	int in_txn;		/* has seen MAIL since the last abort */
	int skip_body;		/* answered SKIP to a body chunk */
	size_t inpos, inlen;	/* unread replies are in[inpos, inlen) */
	unsigned char in[4096];	/* replies as read, usually several at once */
	size_t outlen;		/* octets queued in out */
	unsigned char out[16384];	/* packets that get no reply, not yet sent */
};

/* Everything the client keeps for one SMTP session. */
struct milters {
	const char *sid;	/* session id for log lines */
	char client[64];	/* client address text */
	int port;		/* client port, 0 if unknown */
	char helo[DOMAIN_MAX + 1];	/* last HELO/EHLO name, "" before */
	char tls_version[TLS_TOKEN_MAX];	/* "" before STARTTLS */
	char cipher[TLS_TOKEN_MAX];
	char cipher_bits[16];
	char cert_subject[TLS_DN_MAX];	/* "" when the engine gave none */
	char cert_issuer[TLS_DN_MAX];
	int deflt;		/* FD_* from milter_default_action */
	int n;			/* milters in m[] */
	struct milter m[MILTER_MAX];
	char qid[QID_MAX];	/* queue id of the message at hand */
	struct mod mods[MOD_MAX];	/* changes for the message at hand */
	int nmods;
	size_t modbytes;
	char quarantine[MILTER_TEXT_MAX];	/* reason, "" if none */
	char changes[512];	/* header changes for the verdict's log line */
	struct mpkt pkt;	/* the packet being sent */
	struct mpkt mac;	/* the macros sent before it */
	unsigned char rbuf[MILTER_REPLY_MAX];	/* the packet being read */
};

/* Each stage: its command, the steps that skip it or its reply. */
struct stage {
	int cmd;
	unsigned long skip, noreply;
	const char *name;
	int content;		/* 1: content timeout, else command timeout */
};

static const struct stage st_conn = { MC_CONNECT, MP_NOCONNECT, MP_NR_CONN, "connect", 0 };
static const struct stage st_helo = { MC_HELO, MP_NOHELO, MP_NR_HELO, "helo", 0 };
static const struct stage st_mail = { MC_MAIL, MP_NOMAIL, MP_NR_MAIL, "mail", 0 };
static const struct stage st_rcpt = { MC_RCPT, MP_NORCPT, MP_NR_RCPT, "rcpt", 0 };
static const struct stage st_data = { MC_DATA, MP_NODATA, MP_NR_DATA, "data", 0 };
static const struct stage st_hdr = { MC_HEADER, MP_NOHDRS, MP_NR_HDR, "header", 1 };
static const struct stage st_eoh = { MC_EOH, MP_NOEOH, MP_NR_EOH, "eoh", 1 };
static const struct stage st_body = { MC_BODY, MP_NOBODY, MP_NR_BODY, "body", 1 };
static const struct stage st_eom = { MC_EOM, 0, 0, "eom", 1 };
static const struct stage st_neg = { MC_OPTNEG, 0, 0, "negotiate", 0 };

/* log_verdict - "SID milter milter=SPEC stage=S result=R [reply=...]" */
static void log_verdict(struct milters *ms, struct milter *m, const char *stage,
    const char *result, const char *text)
{
	char spec[CFG_STR_MAX * 4], reply[MILTER_TEXT_MAX * 4];

	log_escape(spec, sizeof spec, m->spec, strlen(m->spec));
	log_text(reply, sizeof reply, text);
	logmsg(LOG_INFO, "%s milter client=%s milter=%s stage=%s result=%s%s%s%s%s%s",
	    ms->sid, ms->client, spec, stage, result, *text ? " reply=\"" : "", reply,
	    *text ? "\"" : "", ms->changes[0] ? " headers=" : "", ms->changes);
	ms->changes[0] = '\0';
}

/* m_close - drop the connection; the next MAIL opens a new one */
static void m_close(struct milter *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1, m->in_txn = 0, m->skip_body = 0;
	m->inpos = m->inlen = m->outlen = 0;
}

/*
 * send_pkt - a packet the milter will not answer is queued (what it
 * negotiated away costs no write of its own); one it answers goes out
 * with everything queued before it, in one write when it fits.
 */
static int send_pkt(struct milter *m, const struct mpkt *p, int answered, long t)
{
	size_t n;

	if (m->outlen + p->len <= sizeof m->out) {
		memcpy(m->out + m->outlen, p->buf, p->len);
		m->outlen += p->len;
		if (!answered)
			return 0;
		n = m->outlen;
		m->outlen = 0;
		return conn_write(m->fd, m->out, n, t);
	}
	n = m->outlen;
	m->outlen = 0;
	if (n > 0 && conn_write(m->fd, m->out, n, t) < 0)
		return -1;
	return conn_write(m->fd, p->buf, p->len, t);
}

/* take - n octets of the milter's replies into dst; 0, or -1 (errno) */
static int take(struct milter *m, unsigned char *dst, size_t n, long timeout)
{
	while (n > 0) {
		size_t k;

		if (m->inpos == m->inlen) {
			long r = conn_read(m->fd, m->in, sizeof m->in, timeout, 0);

			if (r < 0)
				return -1;
			m->inpos = 0, m->inlen = r;
		}
		k = m->inlen - m->inpos < n ? m->inlen - m->inpos : n;
		memcpy(dst, m->in + m->inpos, k);
		m->inpos += k, dst += k, n -= k;
	}
	return 0;
}

/*
 * m_fail - a milter is down or broke the protocol: log it, close it,
 * and put the default action into v (continue: this milter is skipped
 * for the rest of the transaction).
 */
static void m_fail(struct milters *ms, struct milter *m, const char *stage,
    const char *why, struct verdict *v)
{
	char spec[CFG_STR_MAX * 4];
	static const char *const act[] = { "tempfail", "accept", "reject" };

	log_escape(spec, sizeof spec, m->spec, strlen(m->spec));
	logmsg(LOG_WARNING, "%s milter client=%s milter=%s stage=%s result=error reason=\"%s\" action=%s",
	    ms->sid, ms->client, spec, stage, why, act[ms->deflt]);
	m_close(m);
	m->done = 1;
	filter_fail(v, ms->deflt);
}

/* timeout_for - seconds a stage may take */
static long timeout_for(const struct stage *st)
{
	return st->content ? cfg.milter_content_timeout : cfg.milter_command_timeout;
}

/* read_reply - one packet into ms->rbuf, decoded; 0, or -1 with why */
static int read_reply(struct milters *ms, struct milter *m, long timeout,
    struct mreply *r, const char **why)
{
	unsigned char hdr[4];
	long len;

	if (take(m, hdr, 4, timeout) < 0 ||
	    ((len = mp_frame_len(hdr)) > 0 && take(m, ms->rbuf, len, timeout) < 0)) {
		*why = errno == ETIMEDOUT ? "timeout" : errno == ECONNRESET ?
		    "connection closed" : "read error";
		return -1;
	}
	if (len < 0 || mp_decode(ms->rbuf, len, r) < 0) {
		*why = len < 0 ? "bad packet length" : "malformed reply";
		return -1;
	}
	return 0;
}

/* keep_mod - remember a header change; -1 if over the caps */
static int keep_mod(struct milters *ms, const struct mreply *r)
{
	struct mod *d = &ms->mods[ms->nmods];
	size_t n = strlen(r->name) + strlen(r->value) + 2;

	if (ms->nmods >= MOD_MAX || ms->modbytes + n > MOD_BYTES)
		return -1;
	if (!(d->name = strdup(r->name)) || !(d->value = strdup(r->value))) {
		free(d->name);
		return -1;
	}
	d->cmd = r->cmd, d->index = r->index;
	ms->modbytes += n, ms->nmods++;
	return 0;
}

/*
 * note_change - "add:NAME", "ins:NAME", "chg:NAME" or "del:NAME" onto the
 * list the milter's verdict line carries (one line per verdict, its
 * changes in it; a list too long for the line ends in "...")
 */
static void note_change(struct milters *ms, const struct mreply *r)
{
	char name[256];
	size_t n = strlen(ms->changes);
	const char *what = r->cmd == MR_ADDHEADER ? "add" : r->cmd == MR_INSHEADER ?
	    "ins" : *r->value ? "chg" : "del";

	log_escape(name, sizeof name, r->name, strlen(r->name));
	if (n + strlen(name) + 8 < sizeof ms->changes)
		snprintf(ms->changes + n, sizeof ms->changes - n, "%s%s:%s", n ? "," : "",
		    what, name);
	else if (n + 4 < sizeof ms->changes && strcmp(ms->changes + n - 3, "..."))
		strcpy(ms->changes + n, "...");
}

/* eom_extra - h, i, m, q at E (if negotiated); 1 handled, 0 not one, -1 bad */
static int eom_extra(struct milters *ms, struct milter *m, const struct mreply *r)
{
	unsigned long need = r->cmd == MR_ADDHEADER || r->cmd == MR_INSHEADER ?
	    MA_ADDHDRS : r->cmd == MR_CHGHEADER ? MA_CHGHDRS :
	    r->cmd == MR_QUARANTINE ? MA_QUARANTINE : 0;

	if (!need)
		return 0;
	if (!(m->actions & need))
		return -1;
	if (r->cmd == MR_QUARANTINE) {
		snprintf(ms->quarantine, sizeof ms->quarantine, "%s", r->text);
		log_verdict(ms, m, "eom", "quarantine", r->text);
		return 1;
	}
	if (keep_mod(ms, r) < 0)
		return -1;
	note_change(ms, r);
	return 1;
}

/*
 * exchange - send ms->pkt to m for a stage and read the final reply
 * (progress resets the wait; header changes are kept at E).  0 with r
 * filled (MR_CONTINUE when the milter negotiated no reply), or -1 with
 * why: the milter failed.
 */
static int exchange(struct milters *ms, struct milter *m, const struct stage *st,
    const struct mpkt *out, struct mreply *r, const char **why)
{
	long t = timeout_for(st);
	int k;

	if (out->bad || send_pkt(m, out, !(st->noreply & m->proto), t) < 0) {
		*why = errno == ETIMEDOUT ? "timeout" : "write error";
		return -1;
	}
	if (st->noreply & m->proto) {
		r->cmd = MR_CONTINUE;
		return 0;
	}
	for (;;) {
		if (read_reply(ms, m, t, r, why) < 0)
			return -1;
		if (r->cmd == MR_PROGRESS)
			continue;
		if (st->cmd == MC_EOM && (k = eom_extra(ms, m, r)) != 0) {
			if (k < 0) {
				*why = "change not negotiated or too many";
				return -1;
			}
			continue;
		}
		if (r->cmd == MR_OPTNEG ? st->cmd != MC_OPTNEG : st->cmd == MC_OPTNEG) {
			*why = "reply out of place";
			return -1;
		}
		if (r->cmd == MR_SKIP && st->cmd != MC_BODY) {
			*why = "skip out of place";
			return -1;
		}
		if (r->cmd == MR_ADDHEADER || r->cmd == MR_INSHEADER ||
		    r->cmd == MR_CHGHEADER || r->cmd == MR_QUARANTINE) {
			*why = "change before end of message";
			return -1;
		}
		return 0;
	}
}

/*
 * with_macros - the D packet for a stage (name, value pairs; it gets no
 * reply) followed by the command in ms->pkt, in ms->mac: one write.
 */
static const struct mpkt *with_macros(struct milters *ms, int cmd,
    const char *const *kv, int n)
{
	char c = (char)cmd;
	int i;

	mp_end(&ms->pkt);
	if (n == 0)
		return &ms->pkt;
	mp_begin(&ms->mac, MC_MACRO);
	mp_bytes(&ms->mac, &c, 1);
	for (i = 0; i < 2 * n; i++)
		mp_str(&ms->mac, kv[i]);
	mp_end(&ms->mac);
	mp_bytes(&ms->mac, ms->pkt.buf, ms->pkt.len);
	return &ms->mac;
}

/*
 * to_verdict - a final reply into a verdict for the session; logs all
 * but continue.  accept and discard end this milter's part in the
 * transaction (discard ends the transaction for everyone).
 */
static void to_verdict(struct milters *ms, struct milter *m, const struct stage *st,
    const struct mreply *r, struct verdict *v)
{
	const char *text = "";

	v->kind = FV_CONTINUE, v->text[0] = '\0';
	switch (r->cmd) {
	case MR_ACCEPT:
		v->kind = FV_ACCEPT, m->done = 1;
		break;
	case MR_REJECT:
		v->kind = FV_REJECT;
		break;
	case MR_TEMPFAIL:
		v->kind = FV_TEMPFAIL;
		break;
	case MR_DISCARD:
		v->kind = FV_DISCARD, m->done = 1;
		break;
	case MR_REPLYCODE:
		v->kind = r->text[0] == '5' ? FV_REJECT : FV_TEMPFAIL;
		snprintf(v->text, sizeof v->text, "%.*s", (int)strcspn(r->text, "\r"), r->text);
		if (v->text[3] == '-')
			v->text[3] = ' ';	/* first line only: one reply line */
		text = v->text;
		break;
	case MR_SKIP:
		m->skip_body = 1;
		return;
	default:
		if (st->cmd != MC_EOM)
			return;		/* continue */
		v->kind = FV_ACCEPT;	/* continue at the end: the same */
	}
	log_verdict(ms, m, st->name, v->kind == FV_ACCEPT ? "accept" :
	    v->kind == FV_DISCARD ? "discard" : v->kind == FV_REJECT ? "reject" :
	    "tempfail", text);
}

/*
 * ask - one stage for one milter: macros, then the command in ms->pkt
 * (already built by the caller).  Skipped when the milter asked not to
 * get it, is done, or is closed.  v: the verdict.
 */
static void ask(struct milters *ms, struct milter *m, const struct stage *st,
    const char *const *kv, int nkv, struct verdict *v)
{
	struct mreply r;
	const char *why = "write error";

	v->kind = FV_CONTINUE, v->text[0] = '\0';
	if (m->fd < 0 || m->done || (st->skip & m->proto))
		return;
	if (exchange(ms, m, st, with_macros(ms, st->cmd, kv, nkv), &r, &why) < 0)
		m_fail(ms, m, st->name, why, v);
	else
		to_verdict(ms, m, st, &r, v);
}

/* negotiate - O: offer version 6, our actions and steps; take the answer */
static int negotiate(struct milters *ms, struct milter *m, const char **why)
{
	struct mreply r;

	mp_begin(&ms->pkt, MC_OPTNEG);
	mp_u32(&ms->pkt, MILTER_VERSION);
	mp_u32(&ms->pkt, MA_OFFERED);
	mp_u32(&ms->pkt, MP_OFFERED);
	m->proto = 0;
	mp_end(&ms->pkt);
	if (exchange(ms, m, &st_neg, &ms->pkt, &r, why) < 0)
		return -1;
	if (r.version < 2 || r.version > MILTER_VERSION) {
		*why = "unsupported protocol version";
		return -1;
	}
	/* what it asks for beyond our offer it does not get: any use of it
	 * later is a protocol error (exchange, eom_extra) */
	m->actions = r.actions & MA_OFFERED;
	m->proto = r.proto & MP_OFFERED;
	return 0;
}

/* family - the connect packet's family octet for an address text */
static char family(const char *addr)
{
	return strchr(addr, ':') ? '6' : strchr(addr, '.') ? '4' : 'U';
}

/*
 * ask_helo - the HELO stage for one milter, with the TLS macros once
 * STARTTLS is on (a macro the engine did not give is left out)
 */
static void ask_helo(struct milters *ms, struct milter *m, struct verdict *v)
{
	const char *all[] = { "{tls_version}", ms->tls_version, "{cipher}", ms->cipher,
		"{cipher_bits}", ms->cipher_bits, "{cert_subject}", ms->cert_subject,
		"{cert_issuer}", ms->cert_issuer };
	const char *kv[10];
	int i, n = 0;

	for (i = 0; i < 10 && ms->tls_version[0]; i += 2)
		if (all[i + 1][0])
			kv[2 * n] = all[i], kv[2 * n + 1] = all[i + 1], n++;
	mp_begin(&ms->pkt, MC_HELO);
	mp_str(&ms->pkt, ms->helo);
	ask(ms, m, &st_helo, kv, n, v);
}

/* m_open - connect, negotiate, replay connect and HELO; v: the verdict */
static void m_open(struct milters *ms, struct milter *m, struct verdict *v)
{
	char why_buf[128], port[16], unk[80];
	const char *why = why_buf;
	const char *conn[] = { "j", cfg.hostname, "{daemon_name}", "smtpd", "_", unk,
		"{client_addr}", ms->client, "{client_port}", port,
		"{client_name}", "unknown" };
	char fam = family(ms->client);

	v->kind = FV_CONTINUE, v->text[0] = '\0';
	m->done = 0;
	if ((m->fd = conn_connect(m->spec, cfg.milter_connect_timeout, why_buf,
	    sizeof why_buf)) < 0 || negotiate(ms, m, &why) < 0) {
		m_fail(ms, m, m->fd < 0 ? "connect" : "negotiate", why, v);
		return;
	}
	snprintf(port, sizeof port, "%d", ms->port);
	snprintf(unk, sizeof unk, "unknown [%s]", ms->client);
	mp_begin(&ms->pkt, MC_CONNECT);
	mp_str(&ms->pkt, "unknown");
	mp_bytes(&ms->pkt, &fam, 1);
	if (fam != 'U') {
		mp_u16(&ms->pkt, ms->port);
		mp_str(&ms->pkt, ms->client);
	}
	ask(ms, m, &st_conn, conn, 6, v);
	if (v->kind != FV_CONTINUE || m->fd < 0 || !ms->helo[0])
		return;
	ask_helo(ms, m, v);
}

/* milter_new - the session's milter state; NULL when none are set */
struct milters *milter_new(const char *sid, const char *client, int port)
{
	const char *list = cfg.milters;
	struct milters *ms = filter_new(list, sizeof *ms, "milter");

	if (!ms)
		return NULL;
	ms->sid = sid, ms->port = port;
	snprintf(ms->client, sizeof ms->client, "%s", client);
	ms->deflt = filter_default(cfg.milter_default_action);
	while (ms->n < MILTER_MAX && filter_next(&list, ms->m[ms->n].spec,
	    sizeof ms->m->spec))
		ms->m[ms->n++].fd = -1;
	return ms;
}

/* refused - does a verdict end the stage for everyone? */
static int refused(const struct verdict *v)
{
	return v->kind == FV_REJECT || v->kind == FV_TEMPFAIL || v->kind == FV_DISCARD;
}

/*
 * gate - a connect- or HELO-stage verdict as the session takes it: a
 * milter's reject or tempfail stands; accept and discard go on, and so
 * does a milter that failed (closed: the next MAIL tries it again and
 * gives milter_default_action there)
 */
static void gate(const struct milter *m, struct verdict *v)
{
	if ((v->kind != FV_REJECT && v->kind != FV_TEMPFAIL) || m->fd < 0)
		v->kind = FV_CONTINUE, v->text[0] = '\0';
}

/*
 * milter_connect - at session start: open each milter in order (connect
 * stage); v: the first refusal, which holds for the whole session
 */
void milter_connect(struct milters *ms, struct verdict *v)
{
	int i;

	v->kind = FV_CONTINUE, v->text[0] = '\0';
	for (i = 0; ms && i < ms->n && !refused(v); i++) {
		m_open(ms, &ms->m[i], v);
		gate(&ms->m[i], v);
	}
}

/* milter_tls - STARTTLS is on: what the next HELO stage tells milters */
void milter_tls(struct milters *ms, const struct tls_info *ti)
{
	if (!ms)
		return;
	snprintf(ms->tls_version, sizeof ms->tls_version, "%s", ti->protocol);
	snprintf(ms->cipher, sizeof ms->cipher, "%s", ti->cipher);
	snprintf(ms->cipher_bits, sizeof ms->cipher_bits, "%d", ti->bits);
	snprintf(ms->cert_subject, sizeof ms->cert_subject, "%s", ti->subject);
	snprintf(ms->cert_issuer, sizeof ms->cert_issuer, "%s", ti->issuer);
}

/*
 * milter_helo - remember the name, ask the milters that are open; v: the
 * first refusal, the reply to this HELO/EHLO
 */
void milter_helo(struct milters *ms, const char *helo, struct verdict *v)
{
	int i;

	v->kind = FV_CONTINUE, v->text[0] = '\0';
	if (!ms)
		return;
	snprintf(ms->helo, sizeof ms->helo, "%s", helo);
	for (i = 0; i < ms->n && !refused(v); i++) {
		ask_helo(ms, &ms->m[i], v);
		gate(&ms->m[i], v);
	}
}

/*
 * envelope_packet - M or R from a MAIL/RCPT argument ("FROM:<a@b> K=V"):
 * the path, then each ESMTP parameter as its own string; the address
 * without brackets goes to addr for the macro.
 */
static void envelope_packet(struct mpkt *p, int cmd, const char *arg, char *addr,
    size_t cap)
{
	const char *lt, *gt, *q;
	char word[1024];

	arg += strcspn(arg, ":");
	arg += *arg == ':';
	arg += strspn(arg, " ");
	lt = strchr(arg, '<');
	gt = lt ? strchr(lt, '>') : NULL;
	if (!gt)
		gt = arg + strcspn(arg, " ") - 1;
	snprintf(addr, cap, "%.*s", (int)(lt ? gt - lt - 1 : 0), lt ? lt + 1 : "");
	mp_begin(p, cmd);
	snprintf(word, sizeof word, "%.*s", (int)(gt + 1 - arg), arg);
	mp_str(p, word);
	for (q = gt + 1; *(q += strspn(q, " ")); q += strcspn(q, " ")) {
		snprintf(word, sizeof word, "%.*s", (int)strcspn(q, " "), q);
		mp_str(p, word);
	}
}

/* milter_mail - MAIL: open what is closed, then ask each in order */
void milter_mail(struct milters *ms, const char *arg, struct verdict *v)
{
	char addr[ADDR_MAX + 2];
	const char *kv[] = { "{mail_addr}", addr };
	int i;

	v->kind = FV_CONTINUE, v->text[0] = '\0';
	if (!ms)
		return;
	ms->qid[0] = '\0';
	for (i = 0; i < ms->n && !refused(v); i++) {
		struct milter *m = &ms->m[i];

		m->done = 0, m->skip_body = 0;
		if (m->fd < 0)
			m_open(ms, m, v);
		if (refused(v))
			break;
		envelope_packet(&ms->pkt, MC_MAIL, arg, addr, sizeof addr);
		m->in_txn = 1;
		ask(ms, m, &st_mail, kv, 1, v);
	}
	if (refused(v))
		milter_abort(ms);	/* no transaction after all */
}

/* milter_rcpt - RCPT (one we accept ourselves): ask each in order */
void milter_rcpt(struct milters *ms, const char *arg, struct verdict *v)
{
	char addr[ADDR_MAX + 2];
	const char *kv[] = { "{rcpt_addr}", addr };
	int i;

	v->kind = FV_CONTINUE, v->text[0] = '\0';
	if (!ms)
		return;
	for (i = 0; i < ms->n && !refused(v); i++) {
		envelope_packet(&ms->pkt, MC_RCPT, arg, addr, sizeof addr);
		ask(ms, &ms->m[i], &st_rcpt, kv, 1, v);
	}
}

/* milter_abort - the transaction ended without a message: tell them */
void milter_abort(struct milters *ms)
{
	const char *why;
	int i;

	if (!ms)
		return;
	for (i = 0; i < ms->n; i++) {
		struct milter *m = &ms->m[i];

		if (m->fd >= 0 && m->in_txn) {
			mp_begin(&ms->pkt, MC_ABORT);
			if (mp_end(&ms->pkt) < 0 || send_pkt(m, &ms->pkt, 0,
			    cfg.milter_command_timeout) < 0) {
				why = "abort not sent";
				logmsg(LOG_WARNING, "%s milter client=%s stage=abort result=error reason=\"%s\"",
				    ms->sid, ms->client, why);
				m_close(m);
			}
		}
		m->in_txn = 0, m->done = 0, m->skip_body = 0;
	}
}

/* milter_end - QUIT to every open milter, close, free */
void milter_end(struct milters *ms)
{
	int i;

	if (!ms)
		return;
	for (i = 0; i < ms->n; i++) {
		if (ms->m[i].fd >= 0) {
			mp_begin(&ms->pkt, MC_QUIT);
			if (mp_end(&ms->pkt) == 0)
				send_pkt(&ms->m[i], &ms->pkt, 1, 1);
		}
		m_close(&ms->m[i]);
	}
	free(ms);
}

/* Message ------------------------------------------------------------ */

/* The spooled message as the milters see it. */
struct msg {
	struct spool *sp;
	char *buf;		/* the file from offset 0, as far as read */
	size_t len;		/* octets in buf */
	off_t start;		/* after our Return-Path line */
	char *head;		/* header section (in buf), LF line ends */
	size_t hlen;		/* its length, up to the empty line or body */
	off_t body;		/* offset of the body (after the empty line) */
};

/* section_end - where the header section in h[0..n) ends; n if open */
static size_t section_end(const char *h, size_t n)
{
	size_t off = 0, k, name;

	while (off < n && (k = hdr_field(h + off, n - off, &name)) > 0) {
		if (off + k == n)
			return n;	/* may go on beyond what we have */
		off += k;
	}
	return off;
}

/* load_head - read the header section; 0, or -1 (too large, I/O) */
static int load_head(struct msg *g)
{
	size_t cap = 0, end = 0;
	char *nl = NULL;
	ssize_t r;

	for (;;) {
		if (g->len == cap) {
			char *p = cap >= MILTER_HEAD_MAX ? NULL : realloc(g->buf, cap + 65536);

			if (!p)
				return -1;
			g->buf = p, cap += 65536;
		}
		if ((r = pread(g->sp->fd, g->buf + g->len, cap - g->len, g->len)) < 0)
			return -1;
		g->len += r;
		if (!nl && !(nl = memchr(g->buf, '\n', g->len)))
			return -1;	/* cannot happen: Return-Path is short */
		g->start = nl - g->buf + 1;
		end = section_end(g->buf + g->start, g->len - g->start);
		if (g->start + end < g->len || r == 0 || (off_t)g->len >= g->sp->size)
			break;
	}
	g->head = g->buf + g->start;
	g->hlen = end;
	g->body = g->start + end;
	if ((size_t)g->body < g->len && g->buf[g->body] == '\n')
		g->body++;	/* the empty line: neither header nor body */
	return 0;
}
/* each - send ms->pkt for a stage to every milter still in; v: verdict */
static void each(struct milters *ms, const struct stage *st, const char *const *kv,
    int nkv, struct verdict *v)
{
	int i;

	v->kind = FV_CONTINUE, v->text[0] = '\0';
	for (i = 0; i < ms->n && !refused(v); i++) {
		struct milter *m = &ms->m[i];

		if (st->cmd == MC_BODY && m->skip_body)
			continue;
		if (m->in_txn)
			ask(ms, m, st, kv, nkv, v);
	}
}

/* send_headers - T, then one L per field, then N; stops at a refusal */
static void send_headers(struct milters *ms, struct msg *g, struct verdict *v)
{
	const char *kv[] = { "i", ms->qid };
	size_t off = 0, k, name, vs, vlen;

	mp_begin(&ms->pkt, MC_DATA);
	each(ms, &st_data, kv, 1, v);
	while (!refused(v) && off < g->hlen &&
	    (k = hdr_field(g->head + off, g->hlen - off, &name)) > 0) {
		const char *f = g->head + off;

		vs = name + 1 + (name + 1 < k && f[name + 1] == ' ');
		vlen = k - vs - (f[k - 1] == '\n');
		if (name + vlen > MILTER_CHUNK)
			vlen = name > MILTER_CHUNK ? 0 : MILTER_CHUNK - name;	/* cut */
		mp_begin(&ms->pkt, MC_HEADER);
		mp_bytes(&ms->pkt, f, name > MILTER_CHUNK ? MILTER_CHUNK : name);
		mp_bytes(&ms->pkt, "", 1);
		mp_bytes(&ms->pkt, f + vs, vlen);
		mp_bytes(&ms->pkt, "", 1);
		each(ms, &st_hdr, NULL, 0, v);
		off += k;
	}
	if (!refused(v)) {
		mp_begin(&ms->pkt, MC_EOH);
		each(ms, &st_eoh, kv, 1, v);
	}
}

/*
 * body_chunks - body octets into B packets, LF made CR LF, a line's text
 * copied in one go; a packet is sent when it holds MILTER_CHUNK - 1 or
 * more octets (so a CR LF always fits)
 */
static void body_chunks(struct milters *ms, const char *in, size_t r, size_t *n,
    struct verdict *v)
{
	unsigned char *out = ms->pkt.buf + 5;
	const char *end = in + r, *lf;
	size_t run;

	while (in < end && !refused(v)) {
		if (*n >= MILTER_CHUNK - 1) {
			ms->pkt.len = 5 + *n, ms->pkt.bad = 0, ms->pkt.buf[4] = MC_BODY;
			each(ms, &st_body, NULL, 0, v);
			*n = 0;
		} else if (*in == '\n') {
			out[(*n)++] = '\r', out[(*n)++] = '\n', in++;
		} else {
			lf = memchr(in, '\n', end - in);
			run = (lf ? lf : end) - in;
			if (run > MILTER_CHUNK - 1 - *n)
				run = MILTER_CHUNK - 1 - *n;
			memcpy(out + *n, in, run);
			*n += run, in += run;
		}
	}
}

/* send_body - the body: what load_head read, then the rest of the file */
static void send_body(struct milters *ms, struct msg *g, struct verdict *v)
{
	char in[16384];
	off_t off = g->len;
	size_t n = 0;
	ssize_t r;

	v->kind = FV_CONTINUE, v->text[0] = '\0';
	if ((size_t)g->body < g->len)
		body_chunks(ms, g->buf + g->body, g->len - g->body, &n, v);
	else
		off = g->body;
	while (!refused(v) && off < g->sp->size &&
	    (r = pread(g->sp->fd, in, sizeof in, off)) > 0) {
		off += r;
		body_chunks(ms, in, r, &n, v);
	}
	if (n > 0 && !refused(v)) {
		ms->pkt.len = 5 + n, ms->pkt.bad = 0, ms->pkt.buf[4] = MC_BODY;
		each(ms, &st_body, NULL, 0, v);
	}
}
/* put - append to a bounded output buffer; -1 when it is full */
static int put(char *dst, size_t cap, size_t *len, const char *p, size_t n)
{
	if (n > cap - *len)
		return -1;
	memcpy(dst + *len, p, n);
	*len += n;
	return 0;
}

/* put_field - "Name: value\n", the value's CR LF folds made LF */
static int put_field(char *dst, size_t cap, size_t *len, const char *name,
    const char *value)
{
	int bad = put(dst, cap, len, name, strlen(name)) | put(dst, cap, len, ":", 1);
	size_t k;

	if (*value != ' ' && *value != '\t')
		bad |= put(dst, cap, len, " ", 1);
	for (; *value; value += k + (value[k] == '\r')) {
		k = strcspn(value, "\r");
		bad |= put(dst, cap, len, value, k);
	}
	return bad | put(dst, cap, len, "\n", 1);
}

/* put_inserts - the insert changes whose index is pos (or >= pos at end) */
static int put_inserts(struct milters *ms, char *o, size_t cap, size_t *n,
    unsigned long pos, int last)
{
	int i, bad = 0;

	for (i = 0; i < ms->nmods; i++) {
		struct mod *d = &ms->mods[i];

		if (d->cmd == MR_INSHEADER && (d->index == pos || (last && d->index > pos)))
			bad |= put_field(o, cap, n, d->name, d->value);
	}
	return bad;
}

/* change_for - the last change aimed at this field (Nth of its name) */
static struct mod *change_for(struct milters *ms, const char *f, size_t name,
    unsigned long *seen)
{
	struct mod *hit = NULL;
	int i;

	for (i = 0; i < ms->nmods; i++) {
		struct mod *d = &ms->mods[i];

		if (d->cmd == MR_CHGHEADER && strlen(d->name) == name &&
		    strncasecmp(d->name, f, name) == 0 && ++seen[i] == d->index)
			hit = d;
	}
	return hit;
}

/* put_tail - changes past the last field: late changes, adds, quarantine */
static int put_tail(struct milters *ms, char *o, size_t cap, size_t *n,
    const unsigned long *seen)
{
	int i, bad = 0;

	for (i = 0; i < ms->nmods; i++) {
		struct mod *d = &ms->mods[i];

		if ((d->cmd == MR_CHGHEADER && seen[i] < d->index && *d->value) ||
		    d->cmd == MR_ADDHEADER)
			bad |= put_field(o, cap, n, d->name, d->value);
	}
	if (ms->quarantine[0])
		bad |= put_field(o, cap, n, "X-Quarantine", ms->quarantine);
	return bad;
}

/*
 * rewrite - apply the header changes to the spool: Return-Path, then the
 * fields as the milters saw them with the changes made, then the rest of
 * the file as it was (from buf when load_head read all of it: the spool
 * is then written once, in place).  0, or an errno value.
 */
static int rewrite(struct milters *ms, struct msg *g)
{
	size_t tail = (off_t)g->len == g->sp->size ? g->len - g->start - g->hlen : 0;
	size_t cap = g->start + g->hlen + 2 * ms->modbytes + 8 * MOD_MAX +
	    2 * MILTER_TEXT_MAX + tail, n = 0, off = 0, k, name;
	unsigned long pos = 0, seen[MOD_MAX] = { 0 };
	char *o = malloc(cap);
	int bad = 0, err;

	if (!o)
		return ENOMEM;
	memcpy(o, g->buf, g->start);	/* our Return-Path line */
	n = g->start;
	while (off < g->hlen && (k = hdr_field(g->head + off, g->hlen - off, &name)) > 0) {
		const char *f = g->head + off;
		struct mod *d;

		bad |= put_inserts(ms, o, cap, &n, pos++, 0);
		if (!(d = change_for(ms, f, name, seen)))
			bad |= put(o, cap, &n, f, k);
		else if (*d->value)
			bad |= put_field(o, cap, &n, d->name, d->value);
		off += k;
	}
	bad |= put_inserts(ms, o, cap, &n, pos, 1);
	bad |= put_tail(ms, o, cap, &n, seen);
	bad |= put(o, cap, &n, g->head + g->hlen, tail);
	err = bad ? EOVERFLOW : spool_replace_head(g->sp, g->start + g->hlen + tail, o, n);
	free(o);
	return err;
}

/* end_of_message - E to each milter still in; the first refusal wins */
static void end_of_message(struct milters *ms, struct verdict *v)
{
	const char *kv[] = { "i", ms->qid };
	int i;

	v->kind = FV_CONTINUE, v->text[0] = '\0';
	for (i = 0; i < ms->n && !refused(v); i++) {
		struct milter *m = &ms->m[i];

		if (!m->in_txn)
			continue;
		mp_begin(&ms->pkt, MC_EOM);
		ask(ms, m, &st_eom, kv, 1, v);
		m->in_txn = 0;	/* the transaction is over for this milter */
	}
}

/* free_mods - forget the message's header changes */
static void free_mods(struct milters *ms)
{
	int i;

	for (i = 0; i < ms->nmods; i++) {
		free(ms->mods[i].name);
		free(ms->mods[i].value);
	}
	ms->nmods = 0, ms->modbytes = 0, ms->quarantine[0] = '\0';
}

/*
 * milter_message - after the end of data, before the reply: stream the
 * spooled message to the milters and apply their header changes.
 * v: continue (store it), reject, tempfail or discard.
 */
void milter_message(struct milters *ms, struct spool *sp, struct verdict *v)
{
	struct msg g = { sp, NULL, 0, 0, NULL, 0, 0 };
	int err;

	v->kind = FV_CONTINUE, v->text[0] = '\0';
	if (!ms)
		return;
	snprintf(ms->qid, sizeof ms->qid, "%s", sp->id);
	free_mods(ms);
	if (load_head(&g) < 0) {
		logmsg(LOG_WARNING, "%s milter client=%s stage=data result=error reason=\"header section unreadable or too large\"",
		    ms->sid, ms->client);
		filter_fail(v, ms->deflt);
	} else {
		send_headers(ms, &g, v);
		if (!refused(v))
			send_body(ms, &g, v);
		if (!refused(v))
			end_of_message(ms, v);
	}
	if (!refused(v) && (ms->nmods > 0 || ms->quarantine[0]) &&
	    (err = rewrite(ms, &g)) != 0) {
		logmsg(LOG_ERR, "%s milter client=%s stage=eom result=error reason=\"header changes not stored: %s\"",
		    ms->sid, ms->client, strerror(err));
		v->kind = FV_TEMPFAIL, v->text[0] = '\0';
	}
	if (v->kind == FV_ACCEPT)
		v->kind = FV_CONTINUE;
	free_mods(ms);
	free(g.buf);
}
