/*
 * main.c - smtpd's entry point: choose a start-up mode and chain its
 * steps (DESIGN.md, "Module arrows").  The dialogue (smtpd.c) never starts itself.
 *
 * Modes:
 *   (none)      one session on fd 0/1: inetd, xinetd, tcpserver, or
 *               fd 3 under systemd Accept=yes
 *   -l / LISTEN_FDS with a listening socket   the prefork supervisor
 *   -q [ID]     retry the queue now (all, or one message), say what it did
 *   -Q          list the queue       -D ID   delete one queued message
 *   -n          print the settings and check them     -h   usage
 * Exit codes: 0 done, 100 usage or configuration error, 111 temporary
 * failure (daemontools convention: the launcher may try again).
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "deliver.h"
#include "log.h"
#include "peer.h"
#include "proc.h"
#include "resolve.h"
#include "queue.h"
#include "replies.h"
#include "smtpd.h"
#include "spooldir.h"
#include "supervisor.h"
#include "tlsspawn.h"
#include "users.h"

/* usage - the options, next to getopt's list in config.c, and settings */
static void usage(FILE *f)
{
	fprintf(f, "usage: smtpd [-eqQDndh] [-c file] [-o name=value]... "
	    "[-l addr[:port]]... [ID]\n"
	    "  (no mode)  serve one SMTP session on fd 0/1 (inetd style;\n"
	    "             fd 3 under systemd Accept=yes)\n"
	    "  -l addr    listen on addr[:port] or [v6]:port: prefork supervisor\n"
	    "  -d         supervisor: detach, write pid_file\n"
	    "  -q [ID]    retry queued mail now (every message, or just ID)\n"
	    "  -Q         list the queue: id, age, size, sender, recipients, error\n"
	    "  -D ID      delete queued message ID\n"
	    "  -n         print the effective settings, check them, exit\n"
	    "  -c file    read \"name = value\" settings from file\n"
	    "  -o n=v     set one setting (after -c)\n"
	    "  -e         log to stderr instead of syslog (LOG_MAIL)\n"
	    "  -h         this help\nsettings:\n");
	config_help(f);
}

/* check_config - "smtpd -n": print the settings and what is wrong */
static int check_config(void)
{
	struct passwd *pw = getpwnam(cfg.session_user);
	char why[4 * CFG_STR_MAX];
	int bad;

	config_print();
	bad = resolve_check();	/* aliases (FILE:LINE), delivery, postmaster */
	if (tls_check(why, sizeof why) < 0) {
		fprintf(stderr, "smtpd: %s\n", why);
		bad = 1;
	}
	if (cfg.uid == 0 && (!pw || pw->pw_uid == 0)) {
		fprintf(stderr, "smtpd: session_user %s unusable\n", cfg.session_user);
		bad = 1;
	} else if (cfg.uid == 0 && strcmp(cfg.session_user, "nobody") == 0) {
		fprintf(stderr, "smtpd: session_user nobody is shared with other daemons; "
		    "create a dedicated account (INSTALL)\n");
		bad = 1;
	}
	if (spooldir_check(why, sizeof why) < 0) {
		fprintf(stderr, "smtpd: unsafe spool: %s\n", why);
		bad = 1;
	}
	if (!log_sink_ok())
		fprintf(stderr, "smtpd: warning: log = syslog but /dev/log is not a "
		    "socket: every log line would be lost; run a syslog daemon or "
		    "set log = stderr (-e)\n");
	return bad;
}

/* on_term - SIGTERM in a single session: answer 421 and end */
static void on_term(int sig)
{
	(void)sig;
	smtpd_stop = 1;
}

/* inetd_session - one connection on fd (0/1, or 3 under Accept=yes) */
static int inetd_session(int in, int out)
{
	struct deliverer d;
	char addr[PEER_ADDR_MAX], id[QID_MAX];
	int r = 0, port;

	if (proc_start_deliverer(&d) < 0)
		fatal("cannot start deliverer");
	proc_catch(SIGTERM, on_term);	/* no SA_RESTART: poll() must wake */
	queue_id(id, sizeof id, 0);
	if (peer_identify(in, id, addr, sizeof addr, &port) == 0)
		r = session_run(in, out, id, addr, port, &d);
	deliverer_stop(&d);
	return r;
}

/* unavailable - the 421 a launcher's client gets when we cannot start */
static void unavailable(int fd)
{
	char line[128];
	size_t n = reply_text(line, sizeof line - 2, R_UNAVAILABLE);

	memcpy(line + n, "\r\n", 2);
	if (write(fd, line, n + 2) < 0) {
		/* the client left already */
	}
}

/* queue_mode - -q [ID], -Q, -D ID */
static int queue_mode(int mode, const char *id)
{
	if (mode == MODE_LIST)
		return queue_list(stdout) < 0 ? 111 : 0;
	if (mode == MODE_DELETE) {
		if (queue_delete(id) == 0)
			return 0;
		fprintf(stderr, "smtpd: cannot delete %s: %s\n", id,
		    errno == ENOENT ? "no such queued message" : strerror(errno));
		return 100;
	}
	return queue_child(1, id);
}

/* main - parse the configuration and run the chosen mode */
int main(int argc, char **argv)
{
	char id[QID_MAX], why[512], safe[sizeof why * 4];
	int mode, nfds;

	if (config_load(argc, argv, &mode) < 0) {
		usage(stderr);
		return 100;
	}
	if (mode == MODE_HELP) {
		usage(stdout);
		return 0;
	}
	if (mode == MODE_CHECK)
		return check_config();
	log_init("smtpd");
	queue_id(id, sizeof id, 0);	/* this process's lines until a mode has its own */
	log_set_id(id);
	signal(SIGPIPE, SIG_IGN);
	umask(077);
	nfds = proc_listen_fds();
	if (spooldir_setup(why, sizeof why) < 0) {
		log_text(safe, sizeof safe, why);
		logmsg(LOG_CRIT, "%s spool result=error reason=\"%s\"", id, safe);
		if (mode == MODE_SESSION && !cfg.listen[0])
			unavailable(nfds ? 3 : 1);
		return 111;
	}
	if (mode != MODE_SESSION)
		return queue_mode(mode, optind < argc ? argv[optind] : NULL);
	if (cfg.listen[0] || (nfds > 0 && proc_is_listening(3)))
		return supervisor_run(argc, argv);
	if (nfds > 0)
		return inetd_session(3, 3);	/* systemd Accept=yes */
	return inetd_session(0, 1);
}
