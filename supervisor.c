/*
 * supervisor.c - the prefork supervisor: "smtpd -l ADDR[:PORT]" or
 * sockets adopted from systemd (Accept=no, LISTEN_FDS).
 *
 * Interface: supervisor_run() binds (or adopts) the listening sockets,
 * pre-forks workers and looks after them until SIGTERM.
 * Process layout: the supervisor keeps the privileges it started with
 * and reads no network bytes.  Each worker starts its own deliverer,
 * drops to cfg.session_user, then serves connections one at a time.
 * Before serving, a worker asks the supervisor for admission ("B addr"),
 * which enforces max_sessions and max_per_addr; over a cap the client
 * gets 421 4.7.0.  When every worker is busy, the supervisor forks more,
 * up to max_sessions; past that, connections wait in the listen backlog.
 * Signals (through a self-pipe into the poll loop):
 *   SIGTERM, SIGINT  stop accepting; sessions get shutdown_grace seconds,
 *                    then a 421 and close; exit when all workers are gone
 *   SIGHUP           re-read the configuration (and check tls_cert and
 *                    tls_key); new workers replace the old ones, which
 *                    finish their session first
 * STARTTLS: a worker sends "T" with the client's socket and its pipes;
 * we start the TLS engine on them (tlsspawn.c) and answer Y or N.
 *   SIGCHLD          reap; a worker that died is replaced
 * Every queue_interval seconds a child runs the queue (as smtpd -q does).
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

#include "config.h"
#include "log.h"
#include "smtpd.h"
#include "starttls.h"
#include "supervisor.h"
#include "tlsspawn.h"

#define LISTEN_MAX	16	/* listening sockets */
#define ADDR_TEXT	64	/* client address text */

struct worker {
	pid_t pid;		/* 0: free slot */
	int chan;		/* supervisor's end of the worker's socketpair */
	int busy;		/* serving a client */
	int retiring;		/* told to stop (HUP, TERM or spare) */
	char addr[ADDR_TEXT];	/* client while busy */
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
	pid_t queue_pid;	/* running queue child, or 0 */
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

/* catch - install a handler without SA_RESTART, so poll() wakes up */
static void catch(int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
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
	int i, n = sd_listen_fds();

	for (i = 0; i < n && sv->nlisten < LISTEN_MAX; i++) {
		fcntl(3 + i, F_SETFD, FD_CLOEXEC);
		sv->lfd[sv->nlisten++] = 3 + i;
	}
	snprintf(list, sizeof list, "%s", cfg.listen);
	for (spec = strtok_r(list, ",", &save); spec; spec = strtok_r(NULL, ",", &save)) {
		if (sv->nlisten == LISTEN_MAX || (sv->lfd[sv->nlisten] = listen_one(spec)) < 0) {
			logmsg(LOG_CRIT, "cannot listen on %s: %s", spec, strerror(errno));
			return -1;
		}
		logmsg(LOG_INFO, "listening on %s", spec);
		sv->nlisten++;
	}
	for (i = 0; i < sv->nlisten; i++) {	/* see accept_next() */
		int fl = fcntl(sv->lfd[i], F_GETFL);

		fcntl(sv->lfd[i], F_SETFL, sv->nlisten > 1 ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
	}
	return sv->nlisten > 0 ? 0 : -1;
}

/* sd_listen_fds - how many sockets systemd passed us (fds 3, 4, ...) */
int sd_listen_fds(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	long n;

	if (!pid || !fds || atol(pid) != (long)getpid())
		return 0;
	n = atol(fds);
	return n > 0 && n <= LISTEN_MAX ? (int)n : 0;
}

/* Worker side ---------------------------------------------------------- */

/* Set by the worker's signal handlers; read between connections. */
static volatile sig_atomic_t worker_stop;
/* The worker's copies of the listeners, for its SIGTERM handler. */
static int worker_lfd[LISTEN_MAX], worker_nlisten;

/*
 * on_worker_term - SIGTERM: stop accepting, finish the session, exit.
 * Closing our copies of the listeners (close is async-signal-safe) means
 * that once the supervisor closed its own, the kernel refuses new
 * connections instead of queueing them for nobody; it also wakes poll().
 */
static void on_worker_term(int sig)
{
	int i;

	(void)sig;
	worker_stop = 1;
	for (i = 0; i < worker_nlisten; i++)
		close(worker_lfd[i]);
	worker_nlisten = 0;
}

/* on_worker_kill - SIGUSR1: the grace time is over; 421 and exit */
static void on_worker_kill(int sig)
{
	on_worker_term(sig);
	smtpd_stop = 1;
}

/* signals_blocked - block (1) or unblock (0) the signals we handle */
static void signals_blocked(int block)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM), sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP), sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGUSR1);
	sigprocmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

/*
 * accept_next - wait for a connection; -1 when told to stop.  With one
 * listener (blocking) the kernel wakes one waiting worker per connection;
 * with several we poll them all (non-blocking) and the losers see EAGAIN.
 */
static int accept_next(struct supervisor *sv)
{
	struct pollfd pfd[LISTEN_MAX];
	int i, fd;

	for (i = 0; i < sv->nlisten; i++)
		pfd[i].fd = sv->lfd[i], pfd[i].events = POLLIN;
	while (!worker_stop) {
		if (sv->nlisten == 1) {
			if ((fd = accept4(sv->lfd[0], NULL, NULL, SOCK_CLOEXEC)) >= 0)
				return fd;
			continue;	/* EINTR: look at worker_stop */
		}
		if (poll(pfd, sv->nlisten, -1) < 0)
			continue;
		for (i = 0; i < sv->nlisten; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			fd = accept4(sv->lfd[i], NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0)
				return fd;
		}
	}
	return -1;
}

/* admit - ask the supervisor whether this client may have a session */
static int admit(int chan, const char *addr)
{
	char msg[ADDR_TEXT + 2], ans = 'N';

	ssize_t n;

	snprintf(msg, sizeof msg, "B %s", addr);
	if (send(chan, msg, strlen(msg), 0) < 0)
		return 0;
	do	/* a SIGTERM (retiring) must not turn into a refusal */
		n = recv(chan, &ans, 1, 0);
	while (n < 0 && errno == EINTR);
	return n == 1 && ans == 'Y';
}

/* serve_one - one connection: PROXY header, admission, the session */
static void serve_one(int fd, int chan, struct deliverer *d)
{
	static const char busy[] = "421 4.7.0 Too many connections, try again later\r\n";
	char addr[ADDR_TEXT];

	if (send(chan, "A", 1, 0) < 0)	/* busy now: a spare may be needed */
		worker_stop = 1;
	if (connection_addr(fd, addr, sizeof addr) < 0) {
		close(fd);
		if (send(chan, "I", 1, 0) < 0)
			worker_stop = 1;
		return;
	}
	if (!admit(chan, addr)) {
		logmsg(LOG_NOTICE, "refused client=%s reason=connection-limit", addr);
		if (write(fd, busy, sizeof busy - 1) < 0) {
			/* the client left already */
		}
		close(fd);
		if (send(chan, "I", 1, 0) < 0)
			worker_stop = 1;
		return;
	}
	session_run(fd, fd, addr, d);
	if (send(chan, "I", 1, 0) < 0)	/* before close: the client may be back at once */
		worker_stop = 1;	/* supervisor gone */
	close(fd);
}

/* worker_main - a prefork worker: own deliverer, no privileges, serve */
static void worker_main(struct supervisor *sv, int chan)
{
	struct deliverer d;
	long served;

	for (worker_nlisten = 0; worker_nlisten < sv->nlisten; worker_nlisten++)
		worker_lfd[worker_nlisten] = sv->lfd[worker_nlisten];
	catch(SIGTERM, on_worker_term);
	catch(SIGINT, on_worker_term);
	catch(SIGUSR1, on_worker_kill);
	signal(SIGHUP, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	signals_blocked(0);	/* blocked by spawn() until our handlers exist */
	close(sv->sigpipe[0]);
	close(sv->sigpipe[1]);
	if (deliverer_start(&d, 2) < 0)
		fatal("worker: cannot start deliverer");
	starttls_worker(chan);
	if (cfg.uid == 0)
		drop_privileges(cfg.session_user);
	for (served = 0; served < cfg.worker_connections && !worker_stop; served++) {
		int fd = accept_next(sv);

		if (fd < 0)
			break;
		serve_one(fd, chan, &d);
		if (!deliverer_alive(&d))
			break;	/* the supervisor forks a whole new worker */
	}
	deliverer_stop(&d);
	_exit(0);
}

/* Supervisor side ------------------------------------------------------ */

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
	signals_blocked(1);	/* no signal may reach the supervisor's handler in the child */
	if ((w->pid = fork()) < 0) {
		signals_blocked(0);
		close(sp[0]), close(sp[1]);
		w->pid = 0;
		return -1;
	}
	if (w->pid == 0) {
		for (i = 0; i < sv->top; i++)
			if (sv->w[i].pid && &sv->w[i] != w)
				close(sv->w[i].chan);
		close(sp[0]);
		worker_main(sv, sp[1]);
	}
	signals_blocked(0);
	close(sp[1]);
	w->chan = sp[0];
	return 0;
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
		if (!sv->w[i].busy)
			++*idle;
	}
	return live;
}

/* balance - keep `workers` idle-capable workers, grow when all are busy */
static void balance(struct supervisor *sv)
{
	int idle, all, live = count(sv, &idle, &all), i;

	if (sv->stopping)
		return;
	while ((live < cfg.workers || idle == 0) && all < cfg.max_sessions) {
		if (spawn(sv) < 0)
			break;
		live++, idle++, all++;
	}
	for (i = 0; i < sv->top && idle > cfg.workers; i++) {
		struct worker *w = &sv->w[i];

		if (w->pid && !w->busy && !w->retiring) {
			w->retiring = 1;	/* a spare: let it go */
			kill(w->pid, SIGTERM);
			idle--;
		}
	}
}

/* on_message - admission ("B addr"), idle ("I"), or an engine ("T") */
static void on_message(struct supervisor *sv, struct worker *w)
{
	char buf[ADDR_TEXT + 2];
	int i, total = 0, same = 0, fds[TLS_FDS], nfds;
	ssize_t n = tls_chan_recv(w->chan, buf, sizeof buf - 1, fds, &nfds);

	if (nfds == TLS_FDS) {
		send(w->chan, tls_spawn(fds) == 0 ? "Y" : "N", 1, 0);
		return;
	}
	if (n <= 0) {
		close(w->chan);
		w->chan = -1;	/* exiting; reaped on SIGCHLD */
		return;
	}
	buf[n] = '\0';
	if (buf[0] == 'I' || buf[0] == 'A') {
		w->busy = buf[0] == 'A';	/* accepted; address not known yet */
		w->addr[0] = '\0';
		return;
	}
	for (i = 0; i < sv->top; i++) {
		if (!sv->w[i].pid || !sv->w[i].busy || &sv->w[i] == w)
			continue;
		total++;
		same += strcmp(sv->w[i].addr, buf + 2) == 0;
	}
	if (buf[0] != 'B' || total >= cfg.max_sessions || same >= cfg.max_per_addr ||
	    sv->stopping) {
		send(w->chan, "N", 1, 0);
		return;
	}
	w->busy = 1;
	snprintf(w->addr, sizeof w->addr, "%s", buf + 2);
	send(w->chan, "Y", 1, 0);
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
				logmsg(LOG_WARNING, "worker %ld died (status %d); replacing it",
				    (long)pid, st);
			if (sv->w[i].chan >= 0)
				close(sv->w[i].chan);
			memset(&sv->w[i], 0, sizeof sv->w[i]);
		}
		while (sv->top > 0 && sv->w[sv->top - 1].pid == 0)
			sv->top--;
	}
}

/* signal_all - send sig to every worker */
static void signal_all(struct supervisor *sv, int sig, int retire)
{
	int i;

	for (i = 0; i < sv->top; i++) {
		if (!sv->w[i].pid)
			continue;
		kill(sv->w[i].pid, sig);
		if (retire)
			sv->w[i].retiring = 1;
	}
}

/* reload - SIGHUP: read the configuration again, replace the workers */
static void reload(struct supervisor *sv)
{
	struct config old = cfg;
	char why[4 * CFG_STR_MAX];
	int mode;

	optind = 1;
	if (config_load(sv->argc, sv->argv, &mode) < 0) {
		cfg = old;
		logmsg(LOG_ERR, "SIGHUP: configuration has errors; keeping the old one");
		return;
	}
	snprintf(cfg.listen, sizeof cfg.listen, "%s", old.listen);	/* sockets stay */
	if (tls_check(why, sizeof why) < 0) {
		cfg = old;
		logmsg(LOG_ERR, "SIGHUP: %s; keeping the old configuration", why);
		return;
	}
	logmsg(LOG_INFO, "SIGHUP: configuration reloaded; replacing workers");
	signal_all(sv, SIGTERM, 1);
}

/* run_queue - fork a child that runs the queue once, like smtpd -q */
static void run_queue(struct supervisor *sv, time_t now)
{
	sv->next_queue = now + cfg.queue_interval;
	if (sv->queue_pid || cfg.queue_interval == 0)
		return;
	signals_blocked(1);
	if ((sv->queue_pid = fork()) == 0) {
		int i;

		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_IGN);
		signal(SIGCHLD, SIG_DFL);
		signals_blocked(0);
		for (i = 0; i < sv->nlisten; i++)
			close(sv->lfd[i]);
		_exit(queue_child());
	}
	signals_blocked(0);
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
			logmsg(LOG_INFO, "stopping: sessions have %lds to finish",
			    cfg.shutdown_grace);
			sv->stopping = 1;
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
	int i, n = 1;
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
	if (poll(pfd, n, (wait < 1 ? 1 : wait) * 1000) > 0) {
		for (i = 1; i < n; i++)
			if (pfd[i].revents)
				on_message(sv, who[i]);
		if (pfd[0].revents)
			on_signals(sv, time(NULL));
	}
}

/* detach - background ourselves and write the pid file */
static int detach(void)
{
	FILE *f;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	setsid();
	if (cfg.pid_file[0]) {
		if (!(f = fopen(cfg.pid_file, "w")))
			return -1;
		fprintf(f, "%ld\n", (long)getpid());
		fclose(f);
	}
	if (freopen("/dev/null", "r", stdin) == NULL ||
	    freopen("/dev/null", "w", stdout) == NULL)
		return -1;
	return 0;
}

/* setup - listeners, self-pipe, signals, slots */
static int setup(struct supervisor *sv)
{
	if (open_listeners(sv) < 0)
		return -1;
	if (pipe2(sv->sigpipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	sig_fd = sv->sigpipe[1];
	catch(SIGCHLD, on_signal);
	catch(SIGTERM, on_signal);
	catch(SIGINT, on_signal);
	catch(SIGHUP, on_signal);
	signal(SIGUSR1, SIG_IGN);
	unsetenv("LISTEN_PID"), unsetenv("LISTEN_FDS"), unsetenv("TCPREMOTEIP");
	sv->nslots = 10000;	/* the largest max_sessions: HUP may raise it */
	sv->w = calloc(sv->nslots, sizeof *sv->w);
	sv->pfd = calloc(sv->nslots + 1, sizeof *sv->pfd);
	sv->who = calloc(sv->nslots + 1, sizeof *sv->who);
	if (!sv->w || !sv->pfd || !sv->who)
		return -1;
	if (cfg.detach && detach() < 0)
		return -1;
	return 0;
}

/* supervisor_run - the prefork supervisor's life; returns exit status */
int supervisor_run(int argc, char **argv)
{
	struct supervisor sv = { 0 };
	char why[4 * CFG_STR_MAX];
	int idle, all, hard = 0;

	sv.argc = argc, sv.argv = argv;
	if (tls_check(why, sizeof why) < 0) {
		logmsg(LOG_CRIT, "supervisor cannot start: %s", why);
		return 111;
	}
	if (setup(&sv) < 0) {
		logmsg(LOG_CRIT, "supervisor cannot start: %s", strerror(errno));
		return 111;
	}
	logmsg(LOG_INFO, "supervisor started pid=%ld workers=%ld max_sessions=%ld",
	    (long)getpid(), cfg.workers, cfg.max_sessions);
	sv.next_queue = time(NULL) + 1;
	for (;;) {
		time_t now = time(NULL);

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
	logmsg(LOG_INFO, "supervisor stopped");
	return 0;
}
