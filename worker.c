/*
 * worker.c - the worker side of the prefork supervisor.
 *
 * Interface: worker_main() is called in a freshly forked child with the
 * listening sockets and its end of the channel to the supervisor.  It
 * starts its own deliverer, drops to session_user, then accepts and
 * serves connections one at a time until worker_connections, a signal,
 * or the death of its deliverer.
 * Admission: on the board shared with the supervisor (board.c), in our
 * own slot; busy before a PROXY header (which may take a while), the
 * client's address once known, idle again after the session.
 * Channel protocol (SOCK_SEQPACKET, one datagram per message):
 *   worker -> supervisor  "S" I took the last idle worker (a spare may
 *                         be needed), "E" (with one fd) start my TLS
 *                         engine on it
 *   supervisor -> worker  "Y" engine started, "N" not
 * Signals: SIGTERM/SIGINT finish the session in progress, then exit (a
 * SIGTERM also comes when the supervisor dies: PR_SET_PDEATHSIG);
 * SIGUSR1 (the grace time is over) ends the session now with 421.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include "board.h"
#include "config.h"
#include "deliver.h"
#include "log.h"
#include "peer.h"
#include "proc.h"
#include "starttls.h"
#include "queue.h"
#include "replies.h"
#include "smtpd.h"
#include "worker.h"

/* Set by the worker's signal handlers; read between connections. */
static volatile sig_atomic_t worker_stop;
/* The worker's copies of the listeners, for its SIGTERM handler. */
static int worker_lfd[LISTEN_MAX], worker_nlisten;

/*
 * on_term - SIGTERM: stop accepting, finish the session, exit.
 * Closing our copies of the listeners (close is async-signal-safe) means
 * that once the supervisor closed its own, the kernel refuses new
 * connections instead of queueing them for nobody; it also wakes poll().
 */
static void on_term(int sig)
{
	int i;

	(void)sig;
	worker_stop = 1;
	for (i = 0; i < worker_nlisten; i++)
		close(worker_lfd[i]);
	worker_nlisten = 0;
}

/* on_kill - SIGUSR1: the grace time is over; 421 and exit */
static void on_kill(int sig)
{
	on_term(sig);
	smtpd_stop = 1;
}

/*
 * listen_set - with several listeners, one epoll set holding each of
 * them EPOLLEXCLUSIVE, so the kernel wakes one idle worker per
 * connection, not all of them; -1 with one listener (a blocking accept()
 * already wakes just one) or when epoll fails (then we poll them all and
 * the losers see EAGAIN).
 */
static int listen_set(const int *lfd, int nlisten)
{
	struct epoll_event ev;
	int ep, i;

	if (nlisten == 1 || (ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return -1;
	for (i = 0; i < nlisten; i++) {
		memset(&ev, 0, sizeof ev);
		ev.events = EPOLLIN | EPOLLEXCLUSIVE;
		ev.data.u32 = i;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd[i], &ev) < 0) {
			close(ep);
			return -1;
		}
	}
	return ep;
}

/* ready - wait for listeners with a connection: their indices, how many */
static int ready(int ep, const int *lfd, int nlisten, int *which)
{
	struct epoll_event ev[LISTEN_MAX];
	struct pollfd pfd[LISTEN_MAX];
	int i, n;

	if (ep >= 0) {
		n = epoll_wait(ep, ev, LISTEN_MAX, -1);
		for (i = 0; i < n; i++)
			which[i] = ev[i].data.u32;
		return n;
	}
	for (i = 0; i < nlisten; i++)
		pfd[i].fd = lfd[i], pfd[i].events = POLLIN;
	if (poll(pfd, nlisten, -1) < 0)
		return -1;
	for (i = n = 0; i < nlisten; i++)
		if (pfd[i].revents & POLLIN)
			which[n++] = i;
	return n;
}

/* accept_next - wait for a connection; -1 when told to stop */
static int accept_next(int ep, const int *lfd, int nlisten)
{
	int which[LISTEN_MAX], i, n, fd;

	while (!worker_stop) {
		if (nlisten == 1) {
			if ((fd = accept4(lfd[0], NULL, NULL, SOCK_CLOEXEC)) >= 0)
				return fd;
			continue;	/* EINTR: look at worker_stop */
		}
		n = ready(ep, lfd, nlisten, which);
		for (i = 0; i < n; i++)
			if (which[i] >= 0 && which[i] < nlisten &&
			    (fd = accept4(lfd[which[i]], NULL, NULL, SOCK_CLOEXEC)) >= 0)
				return fd;
	}
	return -1;
}

/* tell - one message to the supervisor; a dead supervisor stops us */
static void tell(int chan, const char *msg)
{
	if (send(chan, msg, strlen(msg), 0) < 0)
		worker_stop = 1;
}

/* refuse - 421 to a client over a cap or the rate, and the log line */
static void refuse(int fd, const char *id, const char *addr, char why)
{
	char line[128];
	size_t n = reply_text(line, sizeof line - 2, why == 'R' ? R_RATE : R_BUSY);

	logmsg(LOG_NOTICE, "%s refused client=%s reason=%s", id, addr,
	    why == 'R' ? "rate-limit" : "connection-limit");
	memcpy(line + n, "\r\n", 2);
	if (write(fd, line, n + 2) < 0) {
		/* the client left already */
	}
}

/* where a worker stands on the board, and its channel to the supervisor */
struct seat {
	struct board *board;
	int slot;
	int chan;
};

/* serve_one - one connection: PROXY header, admission, the session */
static void serve_one(int fd, const struct seat *me, struct deliverer *d)
{
	char addr[PEER_ADDR_MAX], id[QID_MAX], ans;
	int port, spare = 0;

	if (cfg.proxy_trusted[0] && board_claim(me->board, me->slot))
		tell(me->chan, "S");	/* a PROXY header may take a while */
	queue_id(id, sizeof id, 0);
	if (peer_identify(fd, id, addr, sizeof addr, &port) == 0) {
		ans = board_admit(me->board, me->slot, addr, &spare);
		if (spare)
			tell(me->chan, "S");
		if (ans == 'Y')
			session_run(fd, fd, id, addr, port, d);
		else
			refuse(fd, id, addr, ans);
	}
	board_release(me->board, me->slot);	/* before close: the client */
	close(fd);				/* may be back at once */
}

/* worker_main - a prefork worker: own deliverer, no privileges, serve */
void worker_main(const int *lfd, int nlisten, int chan, struct board *b, int slot)
{
	struct seat me = { b, slot, chan };
	struct deliverer d;
	pid_t parent = getppid();
	long served;
	int ep;

	for (worker_nlisten = 0; worker_nlisten < nlisten; worker_nlisten++)
		worker_lfd[worker_nlisten] = lfd[worker_nlisten];
	proc_catch(SIGTERM, on_term);
	proc_catch(SIGINT, on_term);
	proc_catch(SIGUSR1, on_kill);
	signal(SIGHUP, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	proc_block_signals(0);	/* blocked by the supervisor until now */
	board_private(b);	/* not for the deliverer */
	if (proc_start_deliverer(&d) < 0)
		fatal("worker: cannot start deliverer");
	starttls_worker(chan);		/* STARTTLS asks the supervisor */
	prctl(PR_SET_PDEATHSIG, SIGTERM);	/* after the drop, which clears it */
	if (getppid() != parent)
		worker_stop = 1;	/* the supervisor died before that */
	ep = listen_set(lfd, nlisten);
	for (served = 0; served < cfg.worker_connections && !worker_stop; served++) {
		int fd = accept_next(ep, lfd, nlisten);

		if (fd < 0)
			break;
		serve_one(fd, &me, &d);
		if (!deliverer_alive(&d))
			break;	/* the supervisor forks a whole new worker */
	}
	deliverer_stop(&d);
	_exit(0);
}
