/*
 * config.h - the one global: smtpd's read-only configuration.
 *
 * Every setting has a name, a default and a sane range in one table
 * (config.c).  The same names work on the command line (-o name=value)
 * and in a configuration file (-c file, "name = value" lines), and
 * "smtpd -n" prints the effective values.  Nothing writes to `cfg`
 * after config_load() returns.
 */
#ifndef CONFIG_H
#define CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#define CFG_STR_MAX	256	/* longest string setting, octets */
#define CMDLINE_MIN	512	/* RFC 5321 4.5.3.1.4: command line floor */
#define CMDLINE_MAX	4096	/* our ceiling for the command line buffer */

struct config {
	char hostname[CFG_STR_MAX];	/* name in greeting, Received, Maildir names */
	char local_domains[CFG_STR_MAX];/* comma list; empty: hostname,localhost */
	char virtual_users[CFG_STR_MAX];/* name:uid:gid:maildir file, or "" */
	char postmaster[CFG_STR_MAX];	/* local user that gets postmaster mail */
	char session_user[CFG_STR_MAX];	/* account the session runs as (root start) */
	char spool_dir[CFG_STR_MAX];	/* queue directory */
	char maildir[CFG_STR_MAX];	/* Maildir below a system user's home */
	char log[CFG_STR_MAX];		/* "syslog" or "stderr" */
	char listen[CFG_STR_MAX];	/* comma list of ADDR[:PORT] (-l) */
	char pid_file[CFG_STR_MAX];	/* supervisor's pid file when detached */
	char proxy_trusted[CFG_STR_MAX];/* comma list of PROXY senders; "" = off */
	char aliases[CFG_STR_MAX];	/* aliases file, or "" */
	char recipient_delimiter[CFG_STR_MAX];/* "+" etc: user+tag; "" = off */
	char catchall[CFG_STR_MAX];	/* comma list of domain:user; "" = off */
	char delivery[CFG_STR_MAX];	/* maildir | lmtp:SPEC, [domain=]... list */
	char tls_cert[CFG_STR_MAX];	/* supervisor: certificate chain (PEM); "" = no TLS */
	char tls_key[CFG_STR_MAX];	/* supervisor: its private key (PEM) */
	char tls_engine[CFG_STR_MAX];	/* path of the smtpd-tls binary */
	char tls_user[CFG_STR_MAX];	/* account the engine runs as (root start) */
	char milters[CFG_STR_MAX];	/* comma list inet:HOST:PORT, unix:/path */
	char milter_default_action[CFG_STR_MAX];	/* tempfail, accept, reject */
	char policy_services[CFG_STR_MAX];	/* comma list, as milters */
	char policy_data_services[CFG_STR_MAX];	/* asked at end of data */
	char policy_default_action[CFG_STR_MAX];	/* tempfail, accept, reject */
	char trusted_networks[CFG_STR_MAX];/* CIDR list exempt from the door's checks */
	char dnsbl_sites[CFG_STR_MAX];	/* postscreen-style ZONE[=FILTER][*WEIGHT] list */
	char dns_server[CFG_STR_MAX];	/* resolver IP[:PORT]; "" = /etc/resolv.conf */
	long size_limit;		/* octets of message accepted, SIZE */
	long rcpt_limit;		/* recipients per transaction */
	long cmdline_limit;		/* octets of a command line incl. CRLF */
	long textline_limit;		/* octets of a DATA line incl. CRLF; 0 = none */
	long cmd_timeout;		/* seconds waiting for a command */
	long data_timeout;		/* seconds waiting for a DATA/BDAT chunk */
	long error_limit;		/* error replies before 421 */
	long hop_limit;			/* Received: lines before 554 5.4.6 */
	long queue_lifetime;		/* seconds before a queued message gives up */
	long queue_retry;		/* seconds of the first retry back-off */
	long spool_memory;		/* octets a message may spool in memory */
	long listen_port;		/* port for -l ADDR without one */
	long workers;			/* prefork: idle workers kept ready */
	long max_sessions;		/* sessions at once, all clients */
	long max_per_addr;		/* sessions at once from one address */
	long worker_connections;	/* a worker retires after this many */
	long shutdown_grace;		/* seconds sessions get after SIGTERM */
	long detach;			/* 1: supervisor detaches (-d) */
	long queue_interval;		/* seconds between queue runs; 0 = none */
	long min_uid;			/* lowest uid of a system-user recipient */
	long quota;			/* 1: honour Maildir++ maildirsize */
	long lmtp_timeout;		/* seconds for each LMTP wait */
	long tls_required;		/* 1: MAIL only after STARTTLS (530) */
	long tls_session_lifetime;	/* seconds a TLS session resumes; 0 = never */
	long deliver_timeout;		/* seconds to wait for one delivery's answer */
	long milter_connect_timeout;	/* seconds to connect to a milter */
	long milter_command_timeout;	/* seconds a milter may take per command */
	long milter_content_timeout;	/* seconds per header, body chunk, end */
	long policy_timeout;		/* seconds a policy service may take */
	long dnsbl_threshold;		/* score at which a client is refused */
	long dnsbl_timeout;		/* seconds the greeting waits for DNS lists */
	long dnsbl_cache_ttl;		/* seconds a worker remembers a verdict; 0 = off */
	long greet_wait;		/* seconds the greeting is held; 0 = no pregreet test */
	long greet_multiline;		/* 1: "220-" teaser line before the wait */
	long rdns;			/* 1: look up the client's PTR name */
	long rdns_missing_weight;	/* score added when no confirmed name; 0 = off */
	long session_timeout;		/* seconds a whole session may last; 0 = none */
	long min_data_rate;		/* octets/s DATA/BDAT must keep up; 0 = none */
	long conn_rate_limit;		/* connections per minute per address; 0 = none */
	uid_t uid;			/* derived: who we run as at start */
};

extern struct config cfg;

int config_load(int argc, char **argv, int *mode);
void config_print(void);
void config_help(FILE *f);
int config_set(const char *name, const char *value);
int is_local_domain(const char *domain);
int in_list(const char *item, const char *list);

/* modes chosen on the command line */
enum { MODE_SESSION, MODE_QUEUE, MODE_LIST, MODE_DELETE, MODE_CHECK, MODE_HELP };

#endif
