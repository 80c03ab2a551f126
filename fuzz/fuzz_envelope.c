/*
 * fuzz/fuzz_envelope.c - the queue run over a hostile envelope.  The
 * session (unprivileged, network-fed) writes SPOOL/ID.env; queue_run()
 * must survive whatever is there.  The input becomes SPOOL/ID.env next
 * to a small data file SPOOL/ID.  Odd-sized inputs get a real deliverer
 * (deliveries succeed), even-sized ones none (every retry fails).
 * Checks: no crash, no leftover data or .tmp file (fuzz_after).
 */
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"
#include "queue.h"

#define ID	"FUZZ00000000000001"

static const char message[] =
    "Return-Path: <a@b>\nSubject: queued\n\nhello\n";
static struct deliverer real;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_setup();
	fuzz_deliverer(&real);
	return 0;
}

/* put - write a spool file */
static void put(const char *name, const void *p, size_t n)
{
	char path[400];
	int fd;

	snprintf(path, sizeof path, "%s/%s", fuzz_spool, name);
	CHECK((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0);
	CHECK(write(fd, p, n) == (ssize_t)n);
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct deliverer none = { 0, -1, 0 };

	fuzz_before();
	put(ID ".env", data, size);
	put(ID, message, sizeof message - 1);
	CHECK(queue_run(size & 1 ? &real : &none, time(NULL)) == 0);
	fuzz_after(&real);
	return 0;
}
