/*
 * worker.c - the worker side of the prefork supervisor.
 *
 * Interface: worker_main() is called in a freshly forked child with the
 * listening sockets and its end of the channel to the supervisor.  It
 * starts its own deliverer, drops to session_user, then accepts and
 * serves connections one at a time until worker_connections, a signal,
 * or the death of its deliverer.
 * Channel protocol (SOCK_SEQPACKET, one datagram per message):
 *   worker -> supervisor  "A" accepted a connection (busy: a spare may
 *                         be needed; only before a PROXY header, which
 *                         may take a while), "B ADDR" may this client
 *                         have a session? (busy too), "I" idle again
 *                         "E" (with one fd) start my TLS engine on it
 *   supervisor -> worker  "Y" admitted / engine started, "N" refused (a
 *                         cap), "R" refused (conn_rate_limit)
 * Signals: SIGTERM/SIGINT finish the session in progress, then exit;
 * SIGUSR1 (the grace time is over) ends the session now with 421.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

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
 * accept_next - wait for a connection; -1 when told to stop.  With one
 * listener (blocking) the kernel wakes one waiting worker per connection;
 * with several we poll them all (non-blocking) and the losers see EAGAIN.
 */
static int accept_next(const int *lfd, int nlisten)
{
	struct pollfd pfd[LISTEN_MAX];
	int i, fd;

	for (i = 0; i < nlisten; i++)
		pfd[i].fd = lfd[i], pfd[i].events = POLLIN;
	while (!worker_stop) {
		if (nlisten == 1) {
			if ((fd = accept4(lfd[0], NULL, NULL, SOCK_CLOEXEC)) >= 0)
				return fd;
			continue;	/* EINTR: look at worker_stop */
		}
		if (poll(pfd, nlisten, -1) < 0)
			continue;
		for (i = 0; i < nlisten; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			fd = accept4(lfd[i], NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0)
				return fd;
		}
	}
	return -1;
}

/* tell - one message to the supervisor; a dead supervisor stops us */
static void tell(int chan, const char *msg)
{
	if (send(chan, msg, strlen(msg), 0) < 0)
		worker_stop = 1;
}

/* admit - ask the supervisor for a session: 'Y', 'N' (a cap), 'R' (rate) */
static char admit(int chan, const char *addr)
{
	char msg[PEER_ADDR_MAX + 2], ans = 'N';
	ssize_t n;

	snprintf(msg, sizeof msg, "B %s", addr);
	if (send(chan, msg, strlen(msg), 0) < 0)
		return 'N';
	do	/* a SIGTERM (retiring) must not turn into a refusal */
		n = recv(chan, &ans, 1, 0);
	while (n < 0 && errno == EINTR);
	return n == 1 ? ans : 'N';
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

/* serve_one - one connection: PROXY header, admission, the session */
static void serve_one(int fd, int chan, struct deliverer *d)
{
	char addr[PEER_ADDR_MAX], id[QID_MAX], ans;
	int port;

	if (cfg.proxy_trusted[0])	/* a PROXY header may take a while: */
		tell(chan, "A");	/* busy now, a spare may be needed */
	queue_id(id, sizeof id, 0);	/* else "B" says both in one message */
	if (peer_identify(fd, id, addr, sizeof addr, &port) == 0) {
		if ((ans = admit(chan, addr)) == 'Y')
			session_run(fd, fd, id, addr, port, d);
		else
			refuse(fd, id, addr, ans);
	}
	tell(chan, "I");	/* before close: the client may be back at once */
	close(fd);
}

/* worker_main - a prefork worker: own deliverer, no privileges, serve */
void worker_main(const int *lfd, int nlisten, int chan)
{
	struct deliverer d;
	long served;

	for (worker_nlisten = 0; worker_nlisten < nlisten; worker_nlisten++)
		worker_lfd[worker_nlisten] = lfd[worker_nlisten];
	proc_catch(SIGTERM, on_term);
	proc_catch(SIGINT, on_term);
	proc_catch(SIGUSR1, on_kill);
	signal(SIGHUP, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	proc_block_signals(0);	/* blocked by the supervisor until now */
	if (proc_start_deliverer(&d) < 0)
		fatal("worker: cannot start deliverer");
	starttls_worker(chan);		/* STARTTLS asks the supervisor */
	for (served = 0; served < cfg.worker_connections && !worker_stop; served++) {
		int fd = accept_next(lfd, nlisten);

		if (fd < 0)
			break;
		serve_one(fd, chan, &d);
		if (!deliverer_alive(&d))
			break;	/* the supervisor forks a whole new worker */
	}
	deliverer_stop(&d);
	_exit(0);
}
