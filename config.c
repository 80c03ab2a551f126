/*
 * config.c - settings: defaults, ranges, command line and config file.
 *
 * Interface: config_load() fills `cfg` from defaults, then the file named
 * by -c, then each -o name=value in order; config_print() writes the
 * effective settings; is_local_domain() answers for the RCPT check.
 * Invariant: every numeric setting is clamped into its range here, so
 * the rest of the program never re-checks a limit's sanity.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "dns.h"
#include "dnsbl.h"
#include "netaddr.h"

#ifndef TLS_ENGINE
#define TLS_ENGINE "/usr/local/sbin/smtpd-tls"	/* make sets SBINDIR's */
#endif

struct config cfg;

struct setting {
	const char *name;
	char *str;		/* string setting, or NULL */
	int list;		/* 1: a comma list, stored without blanks */
	long *num;		/* numeric setting, or NULL */
	long def, min, max;	/* numeric default and range */
	int zero;		/* 1: 0 (off) is allowed below min */
	const char *help;
};

#define S(f, h)			{ #f, cfg.f, 0, NULL, 0, 0, 0, 0, h }
#define L(f, h)			{ #f, cfg.f, 1, NULL, 0, 0, 0, 0, h }
#define N(f, d, lo, hi, h)	{ #f, NULL, 0, &cfg.f, d, lo, hi, 0, h }
#define Z(f, d, lo, hi, h)	{ #f, NULL, 0, &cfg.f, d, lo, hi, 1, h }	/* 0, or lo..hi */

static const struct setting settings[] = {
	S(hostname, "host name in replies and headers"),
	L(local_domains, "comma-separated domains we accept mail for"),
	S(virtual_users, "file of name:uid:gid:maildir lines"),
	S(postmaster, "local user who receives postmaster mail"),
	S(session_user, "unprivileged account for the SMTP session"),
	S(spool_dir, "queue directory"),
	S(maildir, "Maildir path below a system user's home"),
	S(log, "syslog or stderr"),
	L(listen, "addresses to listen on, ADDR[:PORT] comma list"),
	S(pid_file, "pid file written by the detached supervisor"),
	L(proxy_trusted, "PROXY protocol senders (comma list of IPs)"),
	S(aliases, "aliases file (name: target, ...), empty = none"),
	S(recipient_delimiter, "characters that start a user+tag, empty = off"),
	L(catchall, "domain:user comma list: unknown names go to user"),
	S(delivery, "maildir or lmtp:unix:/path or lmtp:HOST:PORT, [domain=]..."),
	S(tls_cert, "supervisor: TLS certificate chain file (PEM), empty = no STARTTLS"),
	S(tls_key, "supervisor: TLS private key file (PEM)"),
	S(tls_engine, "path of the smtpd-tls engine"),
	S(tls_user, "account the TLS engine runs as (holds the key), not session_user"),
	S(milters, "milters in order: inet:HOST:PORT, unix:/path (comma list)"),
	S(milter_default_action, "tempfail, accept or reject when a milter fails"),
	S(policy_services, "policy servers at RCPT: inet:HOST:PORT, unix:/path"),
	S(policy_data_services, "policy servers at end of data (END-OF-MESSAGE), as above"),
	S(policy_default_action, "tempfail, accept or reject when a policy server fails"),
	S(trusted_networks, "networks skipping caps, rate, DNSBL, pregreet (CIDR list)"),
	S(dnsbl_sites, "DNS lists: ZONE[=127.0.0.[2..11]][*WEIGHT], comma list"),
	S(dns_server, "resolver for the door's lookups, IP[:PORT]; default resolv.conf"),
	N(size_limit, 52428800, 4096, 2147483647L, "max message octets"),
	N(rcpt_limit, 100, 100, 100000, "max recipients per message"),
	N(cmdline_limit, 512, CMDLINE_MIN, CMDLINE_MAX, "max command line"),
	N(textline_limit, 1000, 0, 1000000, "max DATA line, 0 = no limit"),
	N(cmd_timeout, 300, 1, 3600, "seconds to wait for a command"),
	N(data_timeout, 600, 1, 3600, "seconds to wait for data"),
	N(error_limit, 20, 1, 1000, "error replies before 421"),
	N(hop_limit, 50, 5, 500, "Received: lines that mean a loop"),
	N(queue_lifetime, 432000, 60, 8640000, "seconds before giving up"),
	N(queue_retry, 300, 1, 86400, "first retry back-off, seconds"),
	N(spool_memory, 1048576, 0, 67108864, "octets spooled in memory first, 0 = disk"),
	N(listen_port, 25, 1, 65535, "port for -l ADDR without :PORT"),
	N(workers, 4, 1, 1000, "prefork: idle workers kept ready"),
	N(max_sessions, 100, 1, 10000, "sessions at once, all clients"),
	N(max_per_addr, 50, 1, 10000, "sessions at once from one address"),
	N(worker_connections, 1000, 1, 1000000, "connections before a worker retires"),
	N(shutdown_grace, 30, 0, 3600, "seconds sessions get after SIGTERM"),
	N(detach, 0, 0, 1, "1: supervisor runs in the background"),
	N(milter_connect_timeout, 30, 1, 3600, "seconds to connect to a milter"),
	N(milter_command_timeout, 30, 1, 3600, "seconds a milter may take per command"),
	N(milter_content_timeout, 300, 1, 3600, "seconds per header, body chunk, end of message"),
	N(policy_timeout, 100, 1, 3600, "seconds a policy server may take per query"),
	N(queue_interval, 300, 0, 86400, "seconds between queue runs, 0 = none"),
	N(min_uid, 1000, 0, 2147483647L, "lowest uid of a system-user recipient"),
	N(quota, 1, 0, 1, "1: honour the Maildir++ maildirsize quota"),
	N(lmtp_timeout, 60, 1, 3600, "seconds for each LMTP wait (connect too)"),
	N(tls_required, 0, 0, 1, "1: refuse MAIL before STARTTLS (private listeners only)"),
	Z(tls_session_lifetime, 3600, 4, 86400, "seconds a TLS session may be resumed, 0 = never"),
	N(deliver_timeout, 300, 1, 3600, "seconds to wait for one Maildir delivery"),
	N(dnsbl_threshold, 1, 1, 100000, "DNSBL score that refuses a client"),
	N(dnsbl_timeout, 5, 1, 60, "seconds the greeting waits for DNS lists"),
	N(dnsbl_cache_ttl, 60, 0, 86400, "seconds a worker remembers a DNSBL verdict, 0 = off"),
	N(greet_wait, 2, 0, 60, "seconds the greeting is held, 0 = no pregreet test"),
	N(greet_multiline, 0, 0, 1, "1: send a 220- teaser line before the wait"),
	N(rdns, 1, 0, 1, "1: look up and confirm the client's PTR name"),
	N(rdns_missing_weight, 0, -1000, 1000, "score for no confirmed PTR, 0 = off"),
	N(session_timeout, 3600, 0, 86400, "seconds a whole session may last, 0 = none"),
	N(min_data_rate, 500, 0, 1000000000, "octets/s DATA must keep up, 0 = none"),
	N(conn_rate_limit, 0, 0, 1000000, "connections/minute per address, 0 = none"),
};
#define NSETTINGS (sizeof settings / sizeof settings[0])

/* set_string - copy a value into a string setting, refusing truncation */
static int set_string(char *dst, const char *value)
{
	size_t n = strlen(value);

	if (n >= CFG_STR_MAX)
		return -1;
	memcpy(dst, value, n + 1);
	return 0;
}

/*
 * set_list - a comma list as the rest of smtpd reads it: items trimmed of
 * blanks, empty items dropped ("a , b,,c " is "a,b,c"); -n shows it so.
 */
static int set_list(char *dst, const char *value)
{
	char item[CFG_STR_MAX];
	size_t n = 0, k;

	if (strlen(value) >= CFG_STR_MAX)
		return -1;
	while (*value) {
		k = strcspn(value, ",");
		memcpy(item, value, k);
		item[k] = '\0';
		value += k + (value[k] == ',');
		while (k > 0 && isspace((unsigned char)item[k - 1]))
			item[--k] = '\0';
		for (k = 0; isspace((unsigned char)item[k]); k++)
			;
		if (!item[k])
			continue;
		n += sprintf(dst + n, "%s%s", n ? "," : "", item + k);	/* fits: shorter */
	}
	dst[n] = '\0';
	return 0;
}

/* set_number - parse and clamp a numeric setting */
static int set_number(const struct setting *s, const char *value)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (errno || end == value || *end != '\0')
		return -1;
	if (v < s->min && !(v == 0 && s->zero))
		v = s->min;	/* a Z row keeps 0 (off) */
	if (v > s->max)
		v = s->max;
	*s->num = v;
	return 0;
}

/* config_set - set one named setting; -1 on unknown name or bad value */
int config_set(const char *name, const char *value)
{
	size_t i;

	for (i = 0; i < NSETTINGS; i++) {
		if (strcmp(settings[i].name, name) != 0)
			continue;
		if (settings[i].list)
			return set_list(settings[i].str, value);
		if (settings[i].str)
			return set_string(settings[i].str, value);
		return set_number(&settings[i], value);
	}
	return -1;
}

/* set_pair - apply "name=value" (or "name = value"), trimming blanks */
static int set_pair(const char *pair)
{
	char line[CFG_STR_MAX + 64], *eq, *name = line, *value, *e;

	if (strlen(pair) >= sizeof line || !(eq = strchr(strcpy(line, pair), '=')))
		return -1;
	*eq = '\0';
	value = eq + 1;
	while (isspace((unsigned char)*name))
		name++;
	for (e = eq; e > name && isspace((unsigned char)e[-1]); e--)
		e[-1] = '\0';
	while (isspace((unsigned char)*value))
		value++;
	e = value + strlen(value);
	while (e > value && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return config_set(name, value);
}

/* read_file - apply a config file; '#' starts a comment line */
static int read_file(const char *path)
{
	char line[CFG_STR_MAX + 64];
	int lineno = 0;
	FILE *f = fopen(path, "r");

	if (!f) {
		fprintf(stderr, "smtpd: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f)) {
		char *p = line;

		lineno++;
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '#' || *p == '\0')
			continue;
		if (!strchr(line, '\n') && !feof(f)) {
			fprintf(stderr, "smtpd: %s:%d: line too long\n", path, lineno);
			fclose(f);
			return -1;
		}
		line[strcspn(line, "\r\n")] = '\0';
		if (set_pair(p) < 0) {
			fprintf(stderr, "smtpd: %s:%d: bad setting\n", path, lineno);
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}

/* set_defaults - defaults that depend on who and where we are */
static int set_defaults(void)
{
	struct passwd *pw;
	size_t i;

	memset(&cfg, 0, sizeof cfg);
	for (i = 0; i < NSETTINGS; i++)
		if (settings[i].num)
			*settings[i].num = settings[i].def;
	if (gethostname(cfg.hostname, sizeof cfg.hostname - 1) < 0)
		strcpy(cfg.hostname, "localhost");
	strcpy(cfg.maildir, "Maildir");
	strcpy(cfg.delivery, "maildir");
	strcpy(cfg.log, "syslog");
	strcpy(cfg.session_user, "smtpd");	/* its own account: never "nobody" */
	snprintf(cfg.tls_engine, sizeof cfg.tls_engine, "%s", TLS_ENGINE);
	strcpy(cfg.tls_user, "smtpd-tls");	/* the key's own account */
	strcpy(cfg.milter_default_action, "tempfail");
	strcpy(cfg.policy_default_action, "tempfail");
	strcpy(cfg.trusted_networks, "127.0.0.0/8, ::1/128");
	cfg.uid = getuid();
	if (cfg.uid == 0) {
		strcpy(cfg.postmaster, "root");
		strcpy(cfg.spool_dir, "/var/spool/smtpd");
		return 0;
	}
	pw = getpwuid(cfg.uid);
	if (!pw || strlen(pw->pw_name) >= CFG_STR_MAX ||
	    strlen(pw->pw_dir) + 14 >= CFG_STR_MAX)
		return -1;
	strcpy(cfg.postmaster, pw->pw_name);
	snprintf(cfg.spool_dir, sizeof cfg.spool_dir, "%s/.smtpd-queue",
	    pw->pw_dir);
	return 0;
}

/* add_listen - append one -l address to the listen list */
static int add_listen(const char *addr)
{
	size_t n = strlen(cfg.listen), k = strlen(addr);

	if (n + k + 2 > sizeof cfg.listen || strchr(addr, ',')) {
		fprintf(stderr, "smtpd: bad listen address: %s\n", addr);
		return -1;
	}
	if (n)
		cfg.listen[n++] = ',';
	memcpy(cfg.listen + n, addr, k + 1);
	return 0;
}

/* door_settings_ok - the checks at the door's lists parse; 0, or -1 and why */
static int door_settings_ok(void)
{
	struct dnsbl_site sites[DNSBL_SITES_MAX];
	struct sockaddr_in6 sa;
	unsigned len;

	if (dnsbl_parse(cfg.dnsbl_sites, sites, DNSBL_SITES_MAX) < 0) {
		fprintf(stderr, "smtpd: dnsbl_sites: malformed entry or more than %d\n",
		    DNSBL_SITES_MAX);
		return -1;
	}
	if (!netaddr_list_ok(cfg.trusted_networks)) {
		fprintf(stderr, "smtpd: trusted_networks: not a list of networks\n");
		return -1;
	}
	if (cfg.dns_server[0] && dns_server_parse(cfg.dns_server, &sa, &len) < 0) {
		fprintf(stderr, "smtpd: dns_server: not IP[:PORT]\n");
		return -1;
	}
	return 0;
}

/* config_load - defaults, then -c file, then -o pairs; sets *mode */
int config_load(int argc, char **argv, int *mode)
{
	int c;

	if (set_defaults() < 0) {
		fprintf(stderr, "smtpd: cannot find my own account\n");
		return -1;
	}
	*mode = MODE_SESSION;
	while ((c = getopt(argc, argv, "c:o:l:deqQDnh")) != -1) {
		switch (c) {
		case 'c':
			if (read_file(optarg) < 0)
				return -1;
			break;
		case 'o':
			if (set_pair(optarg) < 0) {
				fprintf(stderr, "smtpd: bad setting: %s\n", optarg);
				return -1;
			}
			break;
		case 'e': strcpy(cfg.log, "stderr"); break;
		case 'd': cfg.detach = 1; break;
		case 'l':
			if (add_listen(optarg) < 0)
				return -1;
			break;
		case 'q': *mode = MODE_QUEUE; break;
		case 'Q': *mode = MODE_LIST; break;
		case 'D': *mode = MODE_DELETE; break;
		case 'n': *mode = MODE_CHECK; break;
		case 'h': *mode = MODE_HELP; return 0;
		default: return -1;
		}
	}
	/* -q and -D take a queue id after the options; argv[optind] */
	if (optind != argc && !((*mode == MODE_QUEUE || *mode == MODE_DELETE) &&
	    optind + 1 == argc)) {
		fprintf(stderr, "smtpd: unexpected argument: %s\n", argv[optind]);
		return -1;
	}
	if (*mode == MODE_DELETE && optind == argc) {
		fprintf(stderr, "smtpd: -D needs a queue id\n");
		return -1;
	}
	if (strcmp(cfg.log, "syslog") != 0 && strcmp(cfg.log, "stderr") != 0) {
		fprintf(stderr, "smtpd: log must be syslog or stderr\n");
		return -1;
	}
	return door_settings_ok();
}

/* config_print - the effective settings, one "name = value" per line */
void config_print(void)
{
	size_t i;

	for (i = 0; i < NSETTINGS; i++) {
		if (settings[i].str)
			printf("%s = %s\n", settings[i].name, settings[i].str);
		else
			printf("%s = %ld\n", settings[i].name, *settings[i].num);
	}
}

/* in_list - is `item` one of the comma-separated `list` (any case)? */
int in_list(const char *domain, const char *list)
{
	size_t n = strlen(domain);

	while (*list) {
		size_t len = strcspn(list, ",");

		if (len == n && strncasecmp(list, domain, n) == 0)
			return 1;
		list += len;
		if (*list == ',')
			list++;
	}
	return 0;
}

/* is_local_domain - do we accept mail for this domain? */
int is_local_domain(const char *domain)
{
	if (cfg.local_domains[0])
		return in_list(domain, cfg.local_domains);
	return strcasecmp(domain, cfg.hostname) == 0 ||
	    strcasecmp(domain, "localhost") == 0;
}

/* config_help - each setting with its default, for -h */
void config_help(FILE *f)
{
	size_t i;

	for (i = 0; i < NSETTINGS; i++) {
		if (settings[i].str)
			fprintf(f, "  %-18s %s (default \"%s\")\n", settings[i].name,
			    settings[i].help, settings[i].str);
		else
			fprintf(f, "  %-18s %s (default %ld, %ld..%ld)\n",
			    settings[i].name, settings[i].help, settings[i].def,
			    settings[i].min, settings[i].max);
	}
}
