/*
 * supervisor.c - the prefork supervisor: "smtpd -l ADDR[:PORT]" or
 * sockets adopted from systemd (Accept=no, LISTEN_FDS).
 *
 * Interface: supervisor_run() binds (or adopts) the listening sockets,
 * pre-forks workers and looks after them until SIGTERM.
 * Process layout: the supervisor keeps the privileges it started with
 * and reads no network bytes.  Each worker starts its own deliverer,
 * drops to cfg.session_user, then serves connections one at a time.
 * Before serving, a worker admits its client on the board (board.c, in
 * memory shared with us): max_sessions, and for clients outside
 * trusted_networks max_per_addr and conn_rate_limit (rate.c); over a cap
 * or the rate the client gets 421 4.7.0.  A worker that took the last
 * idle worker sends "S"; then (and at least every second while there are
 * spares) we count the board's busy flags: when every worker is busy we
 * fork more, up to max_sessions; past that, connections wait in the
 * listen backlog.
 * Signals (through a self-pipe into the poll loop):
 *   SIGTERM, SIGINT  stop accepting; sessions get shutdown_grace seconds,
 *                    then a 421 and close; exit when all workers are gone
 *   SIGHUP           re-read the configuration (and check tls_cert and
 *                    tls_key); new workers replace the old ones, which
 *                    finish their session first
 *   SIGCHLD          reap; a worker that died is replaced (TLS engines
 *                    are reaped here too)
 * Every queue_interval seconds a child runs the queue (as smtpd -q does).
 * STARTTLS: at its first one a worker sends "E" with one end of a
 * socketpair; we start its TLS engine on it (tlsspawn.c, so the engine
 * can read the key as root) and answer Y or N.  We also hold the session
 * ticket keys that all engines share (tlsspawn.c): made at start, new on
 * SIGHUP and every half tls_session_lifetime, pushed to running engines.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "board.h"
#include "config.h"
#include "log.h"
#include "netaddr.h"
#include "peer.h"
#include "proc.h"
#include "queue.h"
#include "supervisor.h"
#include "tlsspawn.h"
#include "worker.h"


struct worker {
	pid_t pid;		/* 0: free slot */
	int chan;		/* supervisor's end of the worker's socketpair */
	int retiring;		/* told to stop (HUP, TERM or spare) */
	int tls_keys;		/* our end of its engine's ticket-key channel, or -1 */
	int engine;		/* a TLS engine was started for it */
};

struct supervisor {
	int lfd[LISTEN_MAX];	/* listening sockets */
	int nlisten;
	struct worker *w;	/* nslots slots */
	int nslots;		/* allocated */
	int top;		/* slots in use lie below this index */
	struct pollfd *pfd;	/* poll set: self-pipe + channels, nslots + 1 */
	struct worker **who;	/* the worker behind each pfd entry */
	int sigpipe[2];		/* self-pipe: signal numbers as bytes */
	int stopping;		/* SIGTERM seen */
	time_t deadline;	/* when stopping: end of the grace time */
	time_t next_queue;	/* next queue run */
	time_t next_rekey;	/* next ticket key rotation; 0: no resumption */
	pid_t queue_pid;	/* running queue child, or 0 */
	struct board *board;	/* shared with the workers: who serves whom */
	char id[QID_MAX];	/* our id, first on each of our log lines */
	char **argv;		/* for SIGHUP re-reading */
	int argc;
};

/* A signal handler can only write to a pipe; this is its one target. */
static int sig_fd = -1;

/* on_signal - forward the signal number into the self-pipe */
static void on_signal(int sig)
{
	unsigned char c = sig;
	int saved = errno;

	if (write(sig_fd, &c, 1) < 0) {
		/* pipe full: a wake-up is already pending */
	}
	errno = saved;
}

/* listen_one - bind and listen on "ADDR", "ADDR:PORT" or "[V6]:PORT" */
static int listen_one(const char *spec)
{
	char host[128], port[16];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints = { 0 }, *ai;
	int fd, on = 1;

	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');

		if (!close || close - spec - 1 >= (int)sizeof host)
			return -1;
		snprintf(host, sizeof host, "%.*s", (int)(close - spec - 1), spec + 1);
		colon = close[1] == ':' ? close + 1 : NULL;
	} else if (colon && strchr(spec, ':') == colon) {
		snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
	} else {
		snprintf(host, sizeof host, "%s", spec);	/* bare v4 or v6 */
		colon = NULL;
	}
	snprintf(port, sizeof port, "%s", colon ? colon + 1 : "");
	if (!colon)
		snprintf(port, sizeof port, "%ld", cfg.listen_port);
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return -1;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(ai);
	return fd;
}

/* open_listeners - -l addresses, else systemd's LISTEN_FDS */
static int open_listeners(struct supervisor *sv)
{
	char list[CFG_STR_MAX], *spec, *save;
	int i, n = proc_listen_fds();

	for (i = 0; i < n && sv->nlisten < LISTEN_MAX; i++) {
		fcntl(3 + i, F_SETFD, FD_CLOEXEC);
		sv->lfd[sv->nlisten++] = 3 + i;
	}
	snprintf(list, sizeof list, "%s", cfg.listen);
	for (spec = strtok_r(list, ",", &save); spec; spec = strtok_r(NULL, ",", &save)) {
		if (sv->nlisten == LISTEN_MAX || (sv->lfd[sv->nlisten] = listen_one(spec)) < 0) {
			logmsg(LOG_CRIT, "%s listen address=%s result=error reason=\"%s\"",
			    sv->id, spec, strerror(errno));
			return -1;
		}
		logmsg(LOG_INFO, "%s listen address=%s result=ok", sv->id, spec);
		sv->nlisten++;
	}
	for (i = 0; i < sv->nlisten; i++) {	/* see accept_next() */
		int fl = fcntl(sv->lfd[i], F_GETFL);

		fcntl(sv->lfd[i], F_SETFL, sv->nlisten > 1 ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
	}
	return sv->nlisten > 0 ? 0 : -1;
}

/* Supervisor side ------------------------------------------------------ */

/* slot_reset - the worker's board slot afresh: idle, live or not */
static void slot_reset(struct supervisor *sv, struct worker *w, int live)
{
	struct board_slot *s = &sv->board->s[w - sv->w];

	memset(s, 0, sizeof *s);
	s->live = live;
	sv->board->top = sv->top;
}

/* retire - told to go: no client is admitted to it any more */
static void retire(struct supervisor *sv, struct worker *w)
{
	w->retiring = 1;
	sv->board->s[w - sv->w].live = 0;
}

/* spawn - fork one worker into a free slot; -1 if none or fork failed */
static int spawn(struct supervisor *sv)
{
	struct worker *w = NULL;
	int i, sp[2];

	for (i = 0; i < sv->nslots && !w; i++)
		if (sv->w[i].pid == 0)
			w = &sv->w[i];
	if (w && w - sv->w >= sv->top)
		sv->top = w - sv->w + 1;
	if (!w || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return -1;
	memset(w, 0, sizeof *w);
	w->tls_keys = -1;
	slot_reset(sv, w, 1);
	proc_block_signals(1);	/* no signal may reach the supervisor's handler in the child */
	if ((w->pid = fork()) < 0) {
		proc_block_signals(0);
		close(sp[0]), close(sp[1]);
		w->pid = 0;
		slot_reset(sv, w, 0);
		return -1;
	}
	if (w->pid == 0) {
		for (i = 0; i < sv->top; i++)
			if (sv->w[i].pid && &sv->w[i] != w)
				close(sv->w[i].chan);
		close(sp[0]);
		close(sv->sigpipe[0]);
		close(sv->sigpipe[1]);
		tls_keys_forget();	/* a worker parses network bytes */
		worker_main(sv->lfd, sv->nlisten, sp[1], sv->board, w - sv->w);
	}
	proc_block_signals(0);
	close(sp[1]);
	w->chan = sp[0];
	return 0;
}

/* busy - the worker's busy flag on the board (the worker sets it) */
static int busy(const struct supervisor *sv, const struct worker *w)
{
	return sv->board->s[w - sv->w].busy;
}

/* count - workers alive and not retiring; *idle of them not busy */
static int count(const struct supervisor *sv, int *idle, int *all)
{
	int i, live = 0;

	*idle = *all = 0;
	for (i = 0; i < sv->top; i++) {
		if (!sv->w[i].pid)
			continue;
		++*all;
		if (sv->w[i].retiring)
			continue;
		live++;
		if (!busy(sv, &sv->w[i]))
			++*idle;
	}
	return live;
}

/* balance - keep `workers` idle-capable workers, grow when all are busy */
static void balance(struct supervisor *sv)
{
	int idle, all, live = count(sv, &idle, &all), i, pass;

	if (sv->stopping)
		return;
	while ((live < cfg.workers || idle == 0) && all < cfg.max_sessions) {
		if (spawn(sv) < 0)
			break;
		live++, idle++, all++;
	}
	/* spares go, those without a TLS engine first: a started engine
	 * saves the next STARTTLS an exec */
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < sv->top && idle > cfg.workers; i++) {
			struct worker *w = &sv->w[i];

			if (!w->pid || busy(sv, w) || w->retiring ||
			    (pass == 0 && w->engine))
				continue;
			retire(sv, w);
			kill(w->pid, SIGTERM);
			idle--;
		}
	}
}

/*
 * supervisor_message - what one datagram from a worker says.  Workers
 * parse network bytes, so one may be compromised: anything but "S" (I
 * took the last idle worker) is WMSG_BAD ("E" comes with a descriptor
 * and is taken before this).
 */
int supervisor_message(const char *buf, size_t n)
{
	return n == 1 && buf[0] == 'S' ? WMSG_SPARE : WMSG_BAD;
}

/* drop_worker - a worker that broke the protocol: never trust it again */
static void drop_worker(struct supervisor *sv, struct worker *w)
{
	logmsg(LOG_ERR, "%s worker pid=%ld result=killed reason=\"malformed message\"",
	    sv->id, (long)w->pid);
	kill(w->pid, SIGKILL);
	close(w->chan);
	w->chan = -1;	/* reaped on SIGCHLD */
	retire(sv, w);
}

/* on_message - a spare is needed ("S"; balance() follows), or an engine ("E") */
static void on_message(struct supervisor *sv, struct worker *w)
{
	char buf[8];
	int fd;
	ssize_t n = tls_chan_recv(w->chan, buf, sizeof buf, &fd);

	if (fd >= 0) {		/* "E": the worker's first STARTTLS */
		if (w->tls_keys >= 0)
			close(w->tls_keys);	/* its engine died: a new one */
		w->engine = tls_spawn(fd, &w->tls_keys) == 0;
		send(w->chan, w->engine ? "Y" : "N", 1, 0);
		return;
	}
	if (n <= 0) {
		close(w->chan);
		w->chan = -1;	/* exiting; reaped on SIGCHLD */
		return;
	}
	if (supervisor_message(buf, n) == WMSG_BAD)
		drop_worker(sv, w);
}

/* reap - collect every exited child; no zombies */
static void reap(struct supervisor *sv)
{
	pid_t pid;
	int st, i;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		if (pid == sv->queue_pid) {
			sv->queue_pid = 0;
			continue;
		}
		for (i = 0; i < sv->top; i++) {
			if (sv->w[i].pid != pid)
				continue;
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
				logmsg(LOG_WARNING, "%s worker pid=%ld result=died status=%d",
				    sv->id, (long)pid, st);
			if (sv->w[i].chan >= 0)
				close(sv->w[i].chan);
			if (sv->w[i].tls_keys >= 0)
				close(sv->w[i].tls_keys);
			memset(&sv->w[i], 0, sizeof sv->w[i]);
			slot_reset(sv, &sv->w[i], 0);
		}
		while (sv->top > 0 && sv->w[sv->top - 1].pid == 0)
			sv->top--;
		sv->board->top = sv->top;
	}
}

/* signal_all - send sig to every worker */
static void signal_all(struct supervisor *sv, int sig, int stop)
{
	int i;

	for (i = 0; i < sv->top; i++) {
		if (!sv->w[i].pid)
			continue;
		kill(sv->w[i].pid, sig);
		if (stop)
			retire(sv, &sv->w[i]);
	}
}

/*
 * rekey - a new session ticket key when it is time (next_rekey 0: now),
 * sent to every running engine; the previous key still decrypts.  Every
 * half lifetime: libtls drops a key lifetime seconds after it came.
 */
static void rekey(struct supervisor *sv, time_t now)
{
	int i, engines = 0;

	if (!cfg.tls_cert[0] || cfg.tls_session_lifetime == 0) {
		sv->next_rekey = 0;
		return;
	}
	if (sv->next_rekey && now < sv->next_rekey)
		return;
	sv->next_rekey = now + (cfg.tls_session_lifetime + 1) / 2;
	if (tls_keys_rotate() < 0) {
		logmsg(LOG_ERR, "%s tls keys result=error reason=\"%s\"", sv->id,
		    strerror(errno));
		return;
	}
	for (i = 0; i < sv->top; i++) {
		if (!sv->w[i].pid || sv->w[i].tls_keys < 0)
			continue;	/* no engine yet: it gets the keys when started */
		if (tls_keys_push(sv->w[i].tls_keys) < 0)
			logmsg(LOG_WARNING, "%s tls keys worker pid=%ld result=error",
			    sv->id, (long)sv->w[i].pid);
		else
			engines++;
	}
	logmsg(LOG_INFO, "%s tls keys result=rotated engines=%d next=%lds", sv->id,
	    engines, (long)(sv->next_rekey - now));
}

/* reload - SIGHUP: read the configuration again, replace the workers */
static void reload(struct supervisor *sv)
{
	struct config old = cfg;
	char why[4 * CFG_STR_MAX], text[16 * CFG_STR_MAX];
	int mode;

	optind = 1;
	if (config_load(sv->argc, sv->argv, &mode) < 0) {
		cfg = old;
		logmsg(LOG_ERR, "%s reload result=error reason=\"configuration has "
		    "errors; keeping the old one\"", sv->id);
		return;
	}
	snprintf(cfg.listen, sizeof cfg.listen, "%s", old.listen);	/* sockets stay */
	if (tls_check(why, sizeof why) < 0) {
		cfg = old;
		log_text(text, sizeof text, why);
		logmsg(LOG_ERR, "%s reload result=error reason=\"%s; keeping the old "
		    "configuration\"", sv->id, text);
		return;
	}
	logmsg(LOG_INFO, "%s reload result=ok", sv->id);
	sv->next_rekey = 0;	/* new workers, new engines: a new key for them */
	rekey(sv, time(NULL));
	signal_all(sv, SIGTERM, 1);
}

/* run_queue - fork a child that runs the queue once, like smtpd -q */
static void run_queue(struct supervisor *sv, time_t now)
{
	sv->next_queue = now + cfg.queue_interval;
	if (sv->queue_pid || cfg.queue_interval == 0)
		return;
	proc_block_signals(1);
	if ((sv->queue_pid = fork()) == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_IGN);
		signal(SIGCHLD, SIG_DFL);
		proc_block_signals(0);
		proc_close_fds();	/* no listener, channel or self-pipe */
		tls_keys_forget();
		board_free(sv->board);	/* it reads envelopes: not for it */
		_exit(queue_child(0, NULL));
	}
	proc_block_signals(0);
	if (sv->queue_pid < 0)
		sv->queue_pid = 0;
}

/* on_signals - act on the signal numbers waiting in the self-pipe */
static void on_signals(struct supervisor *sv, time_t now)
{
	unsigned char sig[64];
	ssize_t n = read(sv->sigpipe[0], sig, sizeof sig), i;

	for (i = 0; i < n; i++) {
		if (sig[i] == SIGCHLD) {
			reap(sv);
		} else if (sig[i] == SIGHUP && !sv->stopping) {
			reload(sv);
		} else if ((sig[i] == SIGTERM || sig[i] == SIGINT) && !sv->stopping) {
			logmsg(LOG_INFO, "%s stopping grace=%ld", sv->id, cfg.shutdown_grace);
			sv->stopping = 1;
			sv->board->stopping = 1;
			sv->deadline = now + cfg.shutdown_grace;
			for (i = 0; i < sv->nlisten; i++)
				close(sv->lfd[i]);	/* stop accepting */
			signal_all(sv, SIGTERM, 1);
			return;
		}
	}
}

/* wait_events - poll the self-pipe and every worker channel */
static void wait_events(struct supervisor *sv, time_t now)
{
	struct pollfd *pfd = sv->pfd;
	struct worker **who = sv->who;
	int i, n = 1, idle, all;
	long wait = sv->stopping ? 1 : sv->next_queue - now;

	pfd[0].fd = sv->sigpipe[0], pfd[0].events = POLLIN;
	for (i = 0; i < sv->top; i++) {
		if (!sv->w[i].pid || sv->w[i].chan < 0)
			continue;
		pfd[n].fd = sv->w[i].chan, pfd[n].events = POLLIN;
		who[n++] = &sv->w[i];
	}
	if (cfg.queue_interval == 0 && !sv->stopping)
		wait = 3600;
	if (sv->next_rekey && sv->next_rekey - now < wait)
		wait = sv->next_rekey - now;
	if (count(sv, &idle, &all) > cfg.workers)
		wait = 1;	/* spares: balance() lets the idle ones go */
	if (poll(pfd, n, (wait < 1 ? 1 : wait) * 1000) > 0) {
		for (i = 1; i < n; i++)
			if (pfd[i].revents)
				on_message(sv, who[i]);
		if (pfd[0].revents)
			on_signals(sv, time(NULL));
	}
}

/* setup - listeners, self-pipe, signals, slots */
static int setup(struct supervisor *sv)
{
	if (open_listeners(sv) < 0)
		return -1;
	if (pipe2(sv->sigpipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	sig_fd = sv->sigpipe[1];
	proc_catch(SIGCHLD, on_signal);
	proc_catch(SIGTERM, on_signal);
	proc_catch(SIGINT, on_signal);
	proc_catch(SIGHUP, on_signal);
	signal(SIGUSR1, SIG_IGN);
	unsetenv("LISTEN_PID"), unsetenv("LISTEN_FDS"), unsetenv("TCPREMOTEIP");
	sv->nslots = 10000;	/* the largest max_sessions: HUP may raise it */
	sv->w = calloc(sv->nslots, sizeof *sv->w);
	sv->pfd = calloc(sv->nslots + 1, sizeof *sv->pfd);
	sv->who = calloc(sv->nslots + 1, sizeof *sv->who);
	sv->board = board_open();
	if (!sv->w || !sv->pfd || !sv->who || !sv->board)
		return -1;
	if (cfg.detach && proc_detach(cfg.pid_file) < 0)
		return -1;
	return 0;
}

/* supervisor_run - the prefork supervisor's life; returns exit status */
int supervisor_run(int argc, char **argv)
{
	struct supervisor sv = { 0 };
	char why[4 * CFG_STR_MAX], text[16 * CFG_STR_MAX];
	int idle, all, hard = 0;

	sv.argc = argc, sv.argv = argv;
	queue_id(sv.id, sizeof sv.id, 0);
	log_set_id(sv.id);
	if (!log_sink_ok())
		fprintf(stderr, "smtpd: warning: log = syslog but /dev/log is not a "
		    "socket: log lines will be lost (set log = stderr, or -e)\n");
	if (tls_check(why, sizeof why) < 0) {
		log_text(text, sizeof text, why);
		logmsg(LOG_CRIT, "%s supervisor result=error reason=\"cannot start: %s\"",
		    sv.id, text);
		return 111;
	}
	if (setup(&sv) < 0) {
		logmsg(LOG_CRIT, "%s supervisor result=error reason=\"cannot start: %s\"",
		    sv.id, strerror(errno));
		return 111;
	}
	logmsg(LOG_INFO, "%s supervisor result=started pid=%ld workers=%ld max_sessions=%ld",
	    sv.id, (long)getpid(), cfg.workers, cfg.max_sessions);
	sv.next_queue = time(NULL) + 1;
	for (;;) {
		time_t now = time(NULL);

		rekey(&sv, now);
		balance(&sv);
		if (!sv.stopping && now >= sv.next_queue)
			run_queue(&sv, now);
		if (sv.stopping && !hard && now >= sv.deadline) {
			signal_all(&sv, SIGUSR1, 1);	/* grace over: 421 and close */
			hard = 1;
		}
		if (sv.stopping && now >= sv.deadline + 10)
			signal_all(&sv, SIGKILL, 1);	/* a stuck worker */
		count(&sv, &idle, &all);
		if (sv.stopping && all == 0)
			break;
		wait_events(&sv, now);
	}
	if (cfg.pid_file[0] && cfg.detach)
		unlink(cfg.pid_file);
	free(sv.w);
	free(sv.pfd);
	free(sv.who);
	board_free(sv.board);
	logmsg(LOG_INFO, "%s supervisor result=stopped", sv.id);
	return 0;
}
