/*
 * peer.c - the client's address, as the session logs it and writes it
 * into Received:.
 *
 * Interface: peer_identify() fills in the address and port: tcpserver's
 * TCPREMOTEIP and TCPREMOTEPORT (UCSPI), else getpeername(); then, when
 * proxy_trusted is set, what a trusted PROXY v1/v2 sender (HAProxy)
 * passes on.  The port only goes to the milters ({client_port}).
 * proxy.c stays the pure parser; this file does the I/O and the policy.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>

#include "config.h"
#include "log.h"
#include "peer.h"
#include "proxy.h"

/* env_port - tcpserver's TCPREMOTEPORT, 0 when unset or not a port */
static int env_port(void)
{
	const char *env = getenv("TCPREMOTEPORT");
	char *end;
	long v = env ? strtol(env, &end, 10) : 0;

	return env && *env >= '0' && *env <= '9' && *end == '\0' && v <= 65535 ?
	    (int)v : 0;
}

/* socket_addr - the peer: tcpserver's TCPREMOTEIP, else getpeername */
static void socket_addr(char *dst, size_t cap, int fd, int *port)
{
	const char *env = getenv("TCPREMOTEIP");
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	const void *a = NULL;

	*port = 0;
	if (env && *env && strlen(env) < cap &&
	    env[strspn(env, "0123456789abcdefABCDEF:.")] == '\0') {
		strcpy(dst, env);
		*port = env_port();
		return;
	}
	snprintf(dst, cap, "unknown");
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		a = &((struct sockaddr_in *)&ss)->sin_addr;
		*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
		*port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	if (a && inet_ntop(ss.ss_family, a, dst, cap) && strncmp(dst, "::ffff:", 7) == 0 &&
	    strchr(dst, '.'))
		memmove(dst, dst + 7, strlen(dst + 7) + 1);	/* v4-mapped */
}

/*
 * peer_identify - the client's address into addr, its port (0 when
 * unknown) into *port; -1 when the
 * connection must be dropped (PROXY from an untrusted peer, or a bad
 * header).  `id` is the session id the log lines carry.
 */
int peer_identify(int fd, const char *id, char *addr, size_t cap, int *port)
{
	char real[PEER_ADDR_MAX];
	int r, real_port;

	socket_addr(addr, cap, fd, port);
	if (!cfg.proxy_trusted[0])
		return 0;
	snprintf(real, sizeof real, "%s", addr);
	if (!in_list(real, cfg.proxy_trusted)) {
		logmsg(LOG_WARNING, "%s refused client=%s reason=untrusted-proxy-peer",
		    id, real);
		return -1;
	}
	real_port = *port;
	if ((r = proxy_read(fd, cfg.cmd_timeout, addr, cap, port)) < 0) {
		logmsg(LOG_WARNING, "%s refused client=%s reason=bad-proxy-header", id, real);
		return -1;
	}
	if (r == 0)
		snprintf(addr, cap, "%s", real), *port = real_port;
	logmsg(LOG_INFO, "%s proxy client=%s via=%s", id, addr, real);
	return 0;
}
