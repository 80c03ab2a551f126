/*
 * keys.c - the engine's session ticket keys: from the supervisor's key
 * channel (-K, fd 4: one message at start, then one per rotation) or
 * from a key file (-R), into the server's libtls configuration.
 *
 * A message is ticket.h's records, newest first.  They are added oldest
 * first, so the newest encrypts and the others only decrypt (libtls
 * keeps four; each expires a lifetime after it came).  Key octets are
 * wiped from our buffers once libtls has them.  EOF on the channel (the
 * supervisor is gone) keeps the keys we have.
 * Interface: keys_use() names the configuration (and how to log), then
 * keys_channel() or keys_file() once at start; keys_fd() is the channel
 * for a poll loop and keys_read() takes one message when it is readable.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <tls.h>

#include "keys.h"
#include "ticket.h"
#include "../logline.h"

static int chan = -1;			/* -K channel; -1 when none or at EOF */
static struct tls_config *conf;		/* where new ticket keys go */
static const char *id = "-";		/* the engine's log id */
static int to_stderr;			/* -e */

/* keys_use - where keys go (conf lives as long as the server) */
void keys_use(struct tls_config *c, const char *log_id, int stderr_too)
{
	conf = c, id = log_id, to_stderr = stderr_too;
}

/* add - ticket key records into conf, oldest first; -1: not valid */
static int add(unsigned char *buf, size_t n)
{
	struct ticket_key k[TICKET_MAX];
	int i = ticket_parse(buf, n, k);

	explicit_bzero(buf, n);
	if (i < 0 || !conf)
		return -1;
	while (i-- > 0)
		tls_config_add_ticket_key(conf, k[i].name, k[i].key, TICKET_KEY);
	explicit_bzero(k, sizeof k);
	return 0;
}

/* keys_fd - the supervisor's key channel while open, else -1 */
int keys_fd(void)
{
	return chan;
}

/* keys_read - one message from the channel, if one is there */
void keys_read(void)
{
	unsigned char buf[TICKET_MAX * TICKET_REC + 1];
	ssize_t n;

	do
		n = recv(chan, buf, sizeof buf, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		close(chan);
		chan = -1;
	} else if (add(buf, (size_t)n) < 0) {
		log_line(to_stderr, LOG_ERR, "%s tls keys result=failed "
		    "reason=\"malformed ticket key message\"", id);
	}
}

/* keys_channel - -K: take fd, and the keys sent before we started
 * (waited for up to 10 s); -1 if fd is not open */
int keys_channel(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };

	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -1;
	chan = fd;
	if (poll(&p, 1, 10000) == 1)
		keys_read();
	return 0;
}

/* keys_file - -R: keys from a file only we may read (a regular file of
 * mode 0600 or stricter, no symlink), read before the drop; NULL, or
 * why not */
const char *keys_file(const char *path)
{
	unsigned char buf[TICKET_MAX * TICKET_REC + 1];
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0 || fstat(fd, &st) < 0) {
		const char *why = strerror(errno);

		if (fd >= 0)
			close(fd);
		return why;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077)) {
		close(fd);
		return "ticket key file must be a regular file of mode 0600";
	}
	n = read(fd, buf, sizeof buf);
	close(fd);
	if (n < 0 || add(buf, (size_t)n) < 0)
		return "ticket key file must hold 1 to 4 records of 52 octets";
	return NULL;
}
