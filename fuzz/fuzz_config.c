/*
 * fuzz/fuzz_config.c - the configuration file: the input is written to a
 * temp file and read with config_load("smtpd", "-c", path).  Whether it
 * is accepted or not, every numeric setting must be inside its range
 * (config.c clamps, the rest of smtpd relies on it) and every string
 * setting NUL-ended in its buffer.
 */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

static char path[300];
static int fd;

/* gone - remove the temp file at exit */
static void gone(void)
{
	unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *base = getenv("TMPDIR");

	(void)argc, (void)argv;
	if (!base)
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(path, sizeof path, "%s/smtpd-fuzz-config-XXXXXX", base);
	CHECK((fd = mkstemp(path)) >= 0);
	atexit(gone);
	stderr = fopen("/dev/null", "w");	/* "bad setting" lines; fd 2 stays */
	CHECK(stderr != NULL);
	return 0;
}

#define IN(v, lo, hi)	((v) >= (lo) && (v) <= (hi))
#define ENDED(s)	(memchr((s), '\0', CFG_STR_MAX) != NULL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char a0[] = "smtpd", a1[] = "-c", *argv[] = { a0, a1, path, NULL };
	int mode, r;

	CHECK(ftruncate(fd, 0) == 0 && pwrite(fd, data, size, 0) == (ssize_t)size);
	optind = 0;				/* glibc: a full getopt reset */
	r = config_load(3, argv, &mode);
	CHECK(IN(cfg.rcpt_limit, 100, 100000));
	CHECK(IN(cfg.cmdline_limit, CMDLINE_MIN, CMDLINE_MAX));
	CHECK(IN(cfg.size_limit, 4096, 2147483647L));
	CHECK(IN(cfg.textline_limit, 0, 1000000));
	CHECK(IN(cfg.cmd_timeout, 1, 3600) && IN(cfg.data_timeout, 1, 3600));
	CHECK(IN(cfg.error_limit, 1, 1000) && IN(cfg.hop_limit, 5, 500));
	CHECK(IN(cfg.queue_retry, 1, 86400) && IN(cfg.listen_port, 1, 65535));
	CHECK(IN(cfg.detach, 0, 1) && IN(cfg.shutdown_grace, 0, 3600));
	CHECK(ENDED(cfg.hostname) && ENDED(cfg.local_domains) &&
	    ENDED(cfg.virtual_users) && ENDED(cfg.spool_dir) && ENDED(cfg.log) &&
	    ENDED(cfg.listen) && ENDED(cfg.proxy_trusted));
	if (r == 0)
		CHECK(mode == MODE_SESSION && (strcmp(cfg.log, "syslog") == 0 ||
		    strcmp(cfg.log, "stderr") == 0));
	return 0;
}
