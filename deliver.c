/*
 * deliver.c - the deliverer process and the session's side of its pipe.
 *
 * Interface: deliverer_start() forks it, deliverer_deliver() sends one
 * (queue id, recipient, spool fd) request and waits for the one-line
 * result, deliverer_stop() ends it.
 * Invariants (DESIGN.md, "Process model"):
 *  - the deliverer reads no network bytes: it gets a queue id and a
 *    recipient address, validates both again itself, and reads the
 *    spool file through the descriptor it is handed (SCM_RIGHTS), so it
 *    never opens a path the session chose;
 *  - started as root it keeps only the power to become a user: for each
 *    delivery it takes the user's gid, groups and uid as its effective
 *    identity and writes (no fork per message, since a fork costs more
 *    than the durable write itself on our machines).  It takes root back
 *    lazily: the next request for the same user needs no switch; a
 *    request for another user, or a lookup that fails as the user, goes
 *    through root first.  The saved uid stays root either way, so this
 *    grants nothing; every file is still touched as its owner;
 *  - it keeps the Maildirs' tmp/ and new/ open (maildir.c), keyed by the
 *    user's uid and gid and the path, checked against the path;
 *  - it never writes as root: users_resolve() refuses uid 0.
 * Exactly once: each copy's file name carries a tag made of the queue id
 * and a hash of the recipient.  A retry (queue run) first looks for that
 * tag in new/ and cur/, so a deliverer killed after the rename but before
 * its reply does not cause a second copy.
 * Mailboxes: RCPT is an entry "MAILBOX ADDR" (resolve.h): the account
 * (and Maildir++ folder) the session resolved, checked again here, and
 * the address for Delivered-To; a bare address (the postmaster on the
 * give-up path) is resolved here.  Maildir++ quota (quota.c) is checked
 * before each write and the delivery appended to maildirsize after it.
 * Protocol: SOCK_SEQPACKET, one datagram each way.  Request "D QID SIZE
 * RCPT" (first try) or "R QID SIZE RCPT" (retry), with the spool fd, SIZE
 * the spool's length as the session knows it or "-"; "Q QID - RCPT"
 * without one asks whether the mailbox is full now (RCPT time);
 * reply "CW TEXT" where C is DELIVER_OK/TEMP/PERM, W a WHY_* reason
 * code (the session maps it to a reply; it never parses TEXT), and TEXT
 * the Maildir file name or the reason, for the log.
 * Room: a delivery's reply says (WHY_ROOM) when the mailbox is not full
 * even with that message counted; for ROOM_MS after it the session takes
 * that as the answer to the RCPT-time quota question for the same entry
 * instead of asking again (a round trip and a maildirsize read per
 * message in a pipelined session).  The word belongs to this worker's
 * deliverer: another worker's delivery can fill the mailbox meanwhile, so
 * for at most ROOM_MS a RCPT may be accepted for a mailbox already full.
 * The RCPT-time answer only spares a transaction that would fail: the
 * deliverer still reads the quota before every write and refuses an
 * over-quota copy (452/552 at end of data); tests/route/test_quota.py.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "strcopy.h"
#include "config.h"
#include "deliver.h"
#include "log.h"
#include "maildir.h"
#include "quota.h"
#include "resolve.h"
#include "rfc822.h"
#include "users.h"
#include "nowms.h"

#define REQ_MAX		(ENTRY_MAX + 64)
#define REPLY_MAX	(MAILDIR_NAME_MAX + 64)
#define FIRSTLINE_MAX	(ADDR_MAX + 32)	/* "Return-Path: <...>\n" */

static int find_mailbox(const char *entry, struct user *u, char *addr, char *tag);

/* the effective identity now (root start): 0/0 is root */
static uid_t as_uid;
static gid_t as_gid;

/* unbecome - back to root (before a lookup, before another user);
 * failure is fatal */
static void unbecome(void)
{
	if (cfg.uid != 0 || (as_uid == 0 && as_gid == 0))
		return;
	if (seteuid(0) < 0 || setegid(0) < 0 || setgroups(0, NULL) < 0)
		fatal("cannot take back root after delivery");
	as_uid = 0, as_gid = 0;
}

/* become - take the user's identity for file-system work (root only);
 * nothing to do when we are that user already */
static int become(const struct user *u)
{
	if (cfg.uid != 0 || (as_uid == u->uid && as_gid == u->gid))
		return 0;
	unbecome();
	if (setgroups(1, &u->gid) < 0 || setegid(u->gid) < 0 ||
	    seteuid(u->uid) < 0) {
		as_uid = (uid_t)-1, as_gid = (gid_t)-1;	/* half changed: unbecome all */
		return -1;
	}
	as_uid = u->uid, as_gid = u->gid;
	return 0;
}

/* lookup - find_mailbox as whoever we are now; as root when that
 * fails (a file the user may not read) or needs the aliases */
static int lookup(const char *entry, struct user *u, char *addr, char *tag)
{
	int r;

	if (!strchr(entry, ' '))
		unbecome();	/* resolve_rcpt reads the aliases file */
	if ((r = find_mailbox(entry, u, addr, tag)) != USER_FOUND && (as_uid || as_gid)) {
		unbecome();
		r = find_mailbox(entry, u, addr, tag);
	}
	return r;
}

/* deliver_why_errno - the one map from a storage errno to a reason */
int deliver_why_errno(int err)
{
	switch (err) {
	case ENOSPC:
		return WHY_STORAGE;
	case EDQUOT:
		return WHY_QUOTA;
	case ELOOP:
		return WHY_SYMLINK;
	default:
		return WHY_IO;
	}
}

/* deliver_status_word - DELIVER_* as the log's result= word */
const char *deliver_status_word(int status)
{
	return status == DELIVER_OK ? "delivered" :
	    status == DELIVER_PERM ? "failed" : "deferred";
}

/* result - fill a reply line: status, reason, text */
static void result(char *out, size_t cap, int status, int why, const char *text)
{
	if (cap < 4)
		return;
	out[0] = status, out[1] = why, out[2] = ' ';
	str_copy(out + 3, cap - 3, text);
}

/* first_line - length of the Return-Path line at buf[n], or 0 if bad */
static size_t first_line(const char *buf, size_t n)
{
	const char *nl = memchr(buf, '\n', n < FIRSTLINE_MAX ? n : FIRSTLINE_MAX);

	if (!nl || n < 14 || strncmp(buf, "Return-Path: <", 14) != 0)
		return 0;
	return nl - buf + 1;
}

/* rcpt_hash - FNV-1a, 64 bits, of a recipient or entry, case folded */
static unsigned long long rcpt_hash(const char *rcpt)
{
	unsigned long long h = 0xcbf29ce484222325ULL;

	for (; *rcpt; rcpt++)
		h = (h ^ (unsigned char)tolower((unsigned char)*rcpt)) * 0x100000001b3ULL;
	return h;
}

/* make_tag - "QID-HASH": the (message, recipient) pair, for file names */
static void make_tag(char *dst, size_t cap, const char *qid, const char *rcpt)
{
	char q[33], h[24];
	const char *parts[] = { q, "-", h, NULL };
	size_t n = strnlen(qid, 32);

	memcpy(q, qid, n);	/* "%.32s-%016llx" */
	q[n] = '\0';
	str_uint(h, rcpt_hash(rcpt), 16, 16, 0);
	str_join(dst, cap, parts);
}

/* log_delivery - the one line per delivery attempt */
static void log_delivery(const char *qid, const char *rcpt, const char *user,
    const char *out)
{
	char to[ADDR_MAX * 4], why[REPLY_MAX * 4];
	int ok = out[0] == DELIVER_OK;

	const char *parts[] = { qid, " delivery to=<", to, "> user=", user, " result=",
	    deliver_status_word(out[0]), ok ? " file=\"" : " reason=\"", why, "\"", NULL };

	log_escape(to, sizeof to, rcpt, strlen(rcpt));
	log_text(why, sizeof why, out + 3);
	log_parts(ok ? LOG_INFO : LOG_WARNING, parts);	/* ID delivery to= user= result= */
}

/* prepare - the spool's Return-Path line plus our Delivered-To line; the
 * start of the spool is read once, into `pre` (a small message whole).
 * The size is our own finding: a short read that ends where the session
 * said the spool ends (the session's figure only confirms the end of
 * file; a lie or a short read means fstat), else fstat, which must show
 * a regular file */
static int prepare(struct maildir_msg *m, char *head, size_t cap, int spool,
    long long said, const char *rcpt)
{
	static char pre[MAILDIR_PRE_MAX];	/* the deliverer is one thread */
	struct stat st;
	ssize_t n;
	size_t first;

	if ((n = pread(spool, pre, sizeof pre, 0)) <= 0 || (first = first_line(pre, n)) == 0)
		return -1;	/* a pipe, socket or tty fails pread (ESPIPE) */
	if ((size_t)n < sizeof pre && n == said)	/* the end, as the session said */
		st.st_size = n;
	else if (fstat(spool, &st) < 0 || !S_ISREG(st.st_mode))
		return -1;
	memcpy(head, pre, first);
	{
		const char *parts[] = { "Delivered-To: ", rcpt, "\n", NULL };
		size_t k = str_join(head + first, cap - first, parts);

		m->headlen = first + (k < cap - first ? k : cap - first - 1);
	}
	m->head = head, m->srcfd = spool, m->srcoff = first;
	m->srclen = st.st_size - first;
	m->pre = pre + first;
	m->prelen = (off_t)(n - first) < m->srclen ? (size_t)(n - first) : (size_t)m->srclen;
	m->dirst = NULL;
	return 0;
}

/* find_mailbox - the entry's user, Delivered-To address and folder tag
 * ("" for the inbox); a bare address (the postmaster, an old envelope)
 * is resolved here.  USER_* */
static int find_mailbox(const char *entry, struct user *u, char *addr, char *tag)
{
	char mailbox[MAILBOX_MAX], *colon;
	struct target t[1];
	struct path p;
	int r;

	if (!strchr(entry, ' ')) {
		if (rfc822_mailbox(entry, &p) < 0 ||
		    (r = resolve_rcpt("deliverer", &p, t, 1)) == RESOLVE_UNKNOWN ||
		    r == RESOLVE_LOOP || t[0].lmtp[0])
			return USER_UNKNOWN;
		if (r < 0)
			return USER_TEMPFAIL;
		str_copy(mailbox, sizeof mailbox, t[0].mailbox);
		str_copy(addr, ADDR_MAX, entry);
	} else if (resolve_entry(entry, mailbox, addr) < 0 ||
	    rfc822_mailbox(addr, &p) < 0) {
		return USER_UNKNOWN;
	}
	tag[0] = '\0';
	if ((colon = strchr(mailbox, ':')) != NULL) {
		*colon = '\0';
		if (resolve_folder_ok(colon + 1))
			strcpy(tag, colon + 1);
	}
	return mailbox[0] == '@' ? USER_UNKNOWN : users_lookup(mailbox, u);
}

/* folder_dir - the Maildir++ folder for a tag when it exists (checked
 * as the user), else the inbox */
static void folder_dir(const struct user *u, const char *tag, char *dir, size_t cap)
{
	struct stat st;

	if (tag[0] && snprintf(dir, cap, "%s/.%s", u->maildir, tag) < (int)cap &&
	    lstat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		return;
	str_copy(dir, cap, u->maildir);
}

/* quota_refuses - Maildir++ quota for `size` more octets (0: "full now?");
 * 1 and the result line when it says no; else *room says whether the
 * mailbox is still not full with those octets and one message added.
 * dir: the Maildir's lstat, or NULL (quota.c's list of missing files) */
static int quota_refuses(const struct user *u, const struct stat *dir, long long size,
    char *out, size_t cap, int *room)
{
	struct quota q;
	int r;

	*room = 1;
	if (!cfg.quota || quota_read_at(u->maildir, dir, &q) != QUOTA_OK)
		return 0;
	if ((r = quota_check(&q, size)) == QUOTA_OK) {
		q.bytes += size, q.count++;
		*room = quota_check(&q, 0) == QUOTA_OK;
		return 0;
	}
	if (r == QUOTA_FULL)
		result(out, cap, DELIVER_TEMP, WHY_QUOTA, "mailbox full (maildirsize)");
	else
		result(out, cap, DELIVER_PERM, WHY_OVERQUOTA, "message exceeds the quota");
	return 1;
}

/* store - as the user: quota, folder, the Maildir write, maildirsize */
static void store(const struct user *u, const char *tag, struct maildir_msg *m,
    int retry, char *out, size_t cap)
{
	char dir[sizeof u->maildir + FOLDER_MAX + 4], name[MAILDIR_NAME_MAX];
	struct stat st, *md = NULL;
	int err, room;

	if (retry && maildir_has_tag(u->maildir, m->tag)) {
		result(out, cap, DELIVER_OK, WHY_NONE, "already-delivered");
		return;
	}
	folder_dir(u, tag, dir, sizeof dir);
	if (retry && strcmp(dir, u->maildir) != 0 && maildir_has_tag(dir, m->tag)) {
		result(out, cap, DELIVER_OK, WHY_NONE, "already-delivered");
		return;
	}
	/* one lstat of the Maildir serves quota.c and maildir.c's cache check */
	if (cfg.quota && lstat(u->maildir, &st) == 0 && S_ISDIR(st.st_mode))
		md = &st;
	if (quota_refuses(u, md, (long long)m->headlen + m->srclen, out, cap, &room))
		return;
	m->dirst = strcmp(dir, u->maildir) == 0 ? md : NULL;
	err = maildir_deliver(dir, m, cfg.hostname, name, sizeof name);
	m->dirst = NULL;
	if (err != 0) {
		result(out, cap, DELIVER_TEMP, deliver_why_errno(err), strerror(err));
		return;
	}
	if (cfg.quota)
		quota_add_at(u->maildir, md, (long long)m->headlen + m->srclen, 1);
	result(out, cap, DELIVER_OK, room ? WHY_ROOM : WHY_NONE, name);
}

/* deliver_one - write the spool into the mailbox of one entry; result */
static void deliver_one(int spool, const char *qid, long long said, const char *entry,
    int retry, unsigned long seq, char *out, size_t cap)
{
	char head[FIRSTLINE_MAX + ADDR_MAX + 32], addr[ADDR_MAX], tag[FOLDER_MAX + 1];
	char mtag[64];
	struct maildir_msg m;
	struct user u;
	int r;

	if ((r = lookup(entry, &u, addr, tag)) != USER_FOUND) {
		if (r == USER_TEMPFAIL)
			result(out, cap, DELIVER_TEMP, WHY_LOOKUP, "user lookup failed");
		else
			result(out, cap, DELIVER_PERM, WHY_NOUSER, "no such user");
		log_delivery(qid, resolve_entry_addr(entry), "-", out);
		return;
	}
	if (prepare(&m, head, sizeof head, spool, said, addr) < 0) {
		result(out, cap, DELIVER_TEMP, WHY_IO, "spool file unreadable");
		log_delivery(qid, addr, u.name, out);
		return;
	}
	m.seq = seq;
	make_tag(mtag, sizeof mtag, qid, entry);
	m.tag = mtag;
	m.keep = 1, m.uid = u.uid, m.gid = u.gid;
	if (become(&u) < 0) {
		result(out, cap, DELIVER_TEMP, WHY_IO, "cannot take user identity");
		unbecome();
	} else {
		store(&u, tag, &m, retry, out, cap);
	}
	log_delivery(qid, addr, u.name, out);
}

/* quota_one - "Q": is the entry's mailbox full now? (RCPT time) */
static void quota_one(const char *entry, char *out, size_t cap)
{
	char addr[ADDR_MAX], tag[FOLDER_MAX + 1];
	struct user u;
	int r = lookup(entry, &u, addr, tag), room;

	if (r != USER_FOUND) {
		result(out, cap, r == USER_TEMPFAIL ? DELIVER_TEMP : DELIVER_PERM,
		    r == USER_TEMPFAIL ? WHY_LOOKUP : WHY_NOUSER, "no such user");
		return;
	}
	if (become(&u) < 0) {
		result(out, cap, DELIVER_TEMP, WHY_IO, "cannot take user identity");
		unbecome();
	} else if (!quota_refuses(&u, NULL, 0, out, cap, &room)) {
		result(out, cap, DELIVER_OK, WHY_ROOM, "ok");
	}
}

/* recv_request - one request datagram and its spool fd; -1 at EOF */
static int recv_request(int fd, char *buf, size_t cap, int *spool)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { buf, cap - 1 };
	struct msghdr mh = { 0 };
	struct cmsghdr *c;
	ssize_t n;

	mh.msg_iov = &iov, mh.msg_iovlen = 1;
	mh.msg_control = ctl, mh.msg_controllen = sizeof ctl;
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	*spool = -1;
	if (!(c = CMSG_FIRSTHDR(&mh)))
		return 0;	/* a quota question carries no spool */
	if (c->cmsg_type != SCM_RIGHTS || (mh.msg_flags & MSG_CTRUNC) ||
	    c->cmsg_len != CMSG_LEN(sizeof(int)))
		fatalx("deliverer: bad descriptor in a request");
	memcpy(spool, CMSG_DATA(c), sizeof(int));
	return 0;
}

/* valid_qid - queue ids are 1..32 letters and digits */
static int valid_qid(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 32)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z')))
			return 0;
	return 1;
}

/* size_token - "-" or a decimal length at s (up to a space): -1 if
 * unknown, -2 if malformed; *next is past its space */
static long long size_token(char *s, char **next)
{
	char *sp = strchr(s, ' ');
	long long v = 0;

	if (!sp)
		return -2;
	*next = sp + 1;
	if (sp - s == 1 && s[0] == '-')
		return -1;
	if (sp == s || sp - s > 18)
		return -2;
	for (; s < sp; s++) {
		if (*s < '0' || *s > '9')
			return -2;
		v = v * 10 + (*s - '0');
	}
	return v;
}

/* serve - the deliverer's loop: one request, one reply, until EOF */
static void serve(int fd)
{
	char req[REQ_MAX], out[REPLY_MAX];
	unsigned long seq = 0;
	int spool;

	while (recv_request(fd, req, sizeof req, &spool) == 0) {
		char *qid = req + 2, *sp = strchr(qid, ' '), *entry = NULL;
		long long said = -2;

		if (sp)
			said = size_token(sp + 1, &entry);
		if (!strchr("DRQ", req[0]) || !req[0] || req[1] != ' ' || !sp ||
		    !valid_qid(qid, sp - qid) || said == -2 ||
		    ((req[0] == 'Q') != (spool < 0)))
			fatalx("deliverer: malformed request");
		*sp = '\0';
		log_set_id(qid);
		if (req[0] == 'Q')
			quota_one(entry, out, sizeof out);
		else
			deliver_one(spool, qid, said, entry, req[0] == 'R', ++seq, out,
			    sizeof out);
		if (spool >= 0)
			close(spool);
		if (send(fd, out, strlen(out), 0) < 0)
			fatal("deliverer: reply");
	}
	_exit(0);
}

/*
 * isolate - what the deliverer keeps: fds 0 and 1 on /dev/null, fd 2 only
 * when it is keep_fd and no socket (a log file; under inetd it is the
 * client's connection, which must not reach root), and its channel.
 * Every other descriptor is closed, however high (close_range).  The
 * channel keeps its number: a stdio stream of ours may still name a
 * closed number, and must never end up writing into the channel.
 * syslog's socket goes too and is opened again when next needed.
 * Returns the channel (moved above fd 2 if it was there).
 */
static int isolate(int chan, int keep_fd)
{
	struct stat st;
	int nul, fd;

	closelog();
	if (chan < 3 && (chan = fcntl(chan, F_DUPFD, 3)) < 0)
		fatal("deliverer: channel");	/* started with fds 0-2 closed */
	if ((nul = open("/dev/null", O_RDWR)) < 0)
		fatal("deliverer: /dev/null");
	dup2(nul, 0), dup2(nul, 1);
	if (keep_fd != 2 || fstat(2, &st) < 0 || S_ISSOCK(st.st_mode))
		dup2(nul, 2);
	if ((chan > 3 && close_range(3, chan - 1, 0) < 0) ||
	    close_range(chan + 1, ~0U, 0) < 0)
		for (fd = 3; fd < sysconf(_SC_OPEN_MAX); fd++)
			if (fd != chan)
				close(fd);
	log_init("smtpd");
	return chan;
}

/* deliverer_start - fork the deliverer; keep_fd (2: the log) may stay */
int deliverer_start(struct deliverer *d, int keep_fd)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	if ((d->pid = fork()) < 0) {
		close(sv[0]), close(sv[1]);
		return -1;
	}
	if (d->pid == 0) {
		int chan = isolate(sv[1], keep_fd);	/* no network descriptor */

		signal(SIGPIPE, SIG_IGN);
		umask(077);
		serve(chan);
	}
	close(sv[1]);
	d->fd = sv[0];
	d->hung = 0;
	d->timeout = 0;	/* SO_RCVTIMEO not set yet */
	memset(d->room_at, 0, sizeof d->room_at);	/* a new process: no word yet */
	return 0;
}

/* send_request - "D|R QID RCPT" with the spool fd attached; 0 or -1 */
static int send_request(int fd, int spoolfd, const char *req, size_t len)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { (void *)req, len };
	struct msghdr mh = { 0 };
	struct cmsghdr *c;

	mh.msg_iov = &iov, mh.msg_iovlen = 1;
	if (spoolfd < 0)	/* a quota question */
		return sendmsg(fd, &mh, MSG_NOSIGNAL) < 0 ? -1 : 0;
	mh.msg_control = ctl, mh.msg_controllen = sizeof ctl;
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET, c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &spoolfd, sizeof(int));
	return sendmsg(fd, &mh, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

/* valid_reply - status octet, reason octet, space */
static int valid_reply(const char *rep, ssize_t n)
{
	return n >= 3 && (rep[0] == DELIVER_OK || rep[0] == DELIVER_TEMP ||
	    rep[0] == DELIVER_PERM) && rep[1] > ' ' && rep[2] == ' ';
}

/*
 * recv_reply - the deliverer's answer, waited for at most deliver_timeout
 * seconds (a Maildir on a hung network mount must not hold the session
 * forever); -2 on timeout, after which the deliverer is written off (we
 * cannot kill root's process; it exits when it finds our end closed):
 * the message stays the sender's (4xx) or goes to the queue.  The bound
 * is the socket's SO_RCVTIMEO, set once per value (no poll per reply).
 */
static ssize_t recv_reply(struct deliverer *d, char *rep, size_t cap)
{
	struct timeval tv = { cfg.deliver_timeout, 0 };
	ssize_t n;

	if (d->timeout != cfg.deliver_timeout) {
		if (setsockopt(d->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
			return -1;
		d->timeout = cfg.deliver_timeout;
	}
	do
		n = recv(d->fd, rep, cap, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		d->hung = 1;
		return -2;
	}
	return n;
}

/* ask - one request ("C QID SIZE ENTRY", spool fd or -1) and its reply */
static int ask(struct deliverer *d, int spoolfd, long long size, int verb,
    const char *qid, const char *rcpt, struct deliver_result *res)
{
	char req[REQ_MAX], rep[REPLY_MAX];
	ssize_t n;
	char v[2] = { (char)verb, '\0' }, num[24] = "-";
	const char *parts[] = { v, " ", qid, " ", num, " ", rcpt, NULL };
	size_t len;

	if (size >= 0)
		str_uint(num, (unsigned long long)size, 10, 0, 0);
	len = str_join(req, sizeof req, parts);	/* "%c %s %lld %s" */

	res->status = DELIVER_TEMP, res->why = WHY_AGENT;
	snprintf(res->text, sizeof res->text, "delivery agent unavailable");
	if (len >= sizeof req) {
		res->status = DELIVER_PERM, res->why = WHY_NOUSER;
		return res->status;
	}
	if (spoolfd >= 0)
		log_flush();	/* the session's lines before the deliverer's */
	if (!deliverer_alive(d) || send_request(d->fd, spoolfd, req, len) < 0)
		goto broken;
	if ((n = recv_reply(d, rep, sizeof rep - 1)) == -2) {
		snprintf(res->text, sizeof res->text, "delivery agent timed out after %lds",
		    cfg.deliver_timeout);
		logmsg(LOG_ERR, "%s delivery result=deferred reason=\"%s\"", qid, res->text);
		goto broken;
	}
	if (!valid_reply(rep, n))
		goto broken;
	rep[n < (ssize_t)sizeof res->text + 3 ? n : (ssize_t)sizeof res->text + 2] = '\0';
	res->status = rep[0], res->why = rep[1];
	memcpy(res->text, rep + 3, strlen(rep + 3) + 1);
	return res->status;
broken:
	if (d->fd >= 0) {
		close(d->fd);	/* it died or went mad: never talk to it again */
		d->fd = -1;
	}
	return res->status;
}

/* room_slot - the slot of a fresh "room" word for this hash, or -1 */
static int room_slot(const struct deliverer *d, unsigned long long h)
{
	long long now = now_ms();
	int i;

	for (i = 0; i < ROOM_SLOTS; i++)
		if (d->room_at[i] && d->room[i] == h && now - d->room_at[i] < ROOM_MS)
			return i;
	return -1;
}

/* room_note - remember the deliverer's word that entry's mailbox has
 * room (status OK and WHY_ROOM), or forget any earlier one */
static void room_note(struct deliverer *d, const char *entry, const struct deliver_result *res)
{
	unsigned long long h = rcpt_hash(entry);
	int i = room_slot(d, h);

	if (res->status != DELIVER_OK || res->why != WHY_ROOM) {
		if (i >= 0)
			d->room_at[i] = 0;
		return;
	}
	if (i < 0)
		i = d->room_next++ % ROOM_SLOTS;
	d->room[i] = h, d->room_at[i] = now_ms();
}

/* deliverer_deliver - one delivery request; its outcome in *res.  size:
 * the spool's length as we wrote it, or -1 (the deliverer checks it) */
int deliverer_deliver(struct deliverer *d, int spoolfd, long long size, const char *qid,
    const char *rcpt, int retry, struct deliver_result *res)
{
	ask(d, spoolfd, size, retry ? 'R' : 'D', qid, rcpt, res);
	room_note(d, rcpt, res);
	return res->status;
}

/* deliverer_quota - is the entry's Maildir full now? DELIVER_OK if not;
 * a fresh "room" word from a delivery to it answers without asking */
int deliverer_quota(struct deliverer *d, const char *entry,
    struct deliver_result *res)
{
	if (room_slot(d, rcpt_hash(entry)) >= 0) {
		res->status = DELIVER_OK, res->why = WHY_ROOM;
		str_copy(res->text, sizeof res->text, "room after the last delivery");
		return DELIVER_OK;
	}
	ask(d, -1, -1, 'Q', "quota", entry, res);
	room_note(d, entry, res);
	return res->status;
}

/* deliverer_alive - can it still take requests? (else: replace us) */
int deliverer_alive(const struct deliverer *d)
{
	return d->fd >= 0;
}

/* deliverer_stop - close our end and reap the deliverer */
void deliverer_stop(struct deliverer *d)
{
	if (d->pid <= 0)
		return;
	if (d->fd >= 0)
		close(d->fd);
	if (d->hung)	/* stuck in the kernel, maybe: never wait for it */
		waitpid(d->pid, NULL, WNOHANG);
	else
		while (waitpid(d->pid, NULL, 0) < 0 && errno == EINTR)
			;
	d->pid = 0;
}
