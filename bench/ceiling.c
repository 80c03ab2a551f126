/*
 * ceiling.c - the file system's ceiling for durable Maildir delivery:
 * what no SMTP receiver on this machine can beat.
 *
 * Each of P processes loops over exactly the durable Maildir steps and
 * nothing else (directory descriptors are opened once, up front):
 *   openat(tmp/, NAME, O_CREAT|O_EXCL)  write SIZE octets  fsync  close
 *   renameat(tmp/NAME, new/NAME)        fsync(new/)
 * Process i starts at Maildir i % ndirs and moves to the next Maildir
 * after every file, so "-p 8 A B C D" spreads deliveries over four
 * mailboxes as a 4-recipient message does.  All processes start together
 * (a pipe is the starting gun) and stop at the deadline; the result is
 * one line of key=value pairs: files, seconds, files/s, the mean
 * microseconds spent in each step, so a reader sees where the time goes,
 * and the processes' CPU time (user+sys) per file, the floor for any
 * server's CPU per delivered copy.
 *
 * Build: cc -O2 -o ceiling ceiling.c
 * Usage: ceiling [-p procs] [-s size] [-t seconds] [-k] MAILDIR...
 *   -k keeps the files (default: new/ files this run made are removed
 *      after the measurement, untimed).
 * Each MAILDIR gets tmp/ and new/ if missing.  Exit 0 on success.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "writeall.h"

#define MAX_PROCS	256
#define MAX_DIRS	16

enum { ST_OPEN, ST_WRITE, ST_FSYNC, ST_CLOSE, ST_RENAME, ST_DIRSYNC, ST_N };
static const char *const step_name[ST_N] = {
	"open", "write", "fsync", "close", "rename", "dirsync"
};

struct result {			/* one child's report, through a pipe */
	long files;
	double secs;
	double step[ST_N];	/* seconds in each step */
	int err;		/* errno of the first failure, 0 if none */
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "ceiling: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int subdir(const char *top, const char *name)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof path, "%s/%s", top, name);
	if (mkdir(top, 0700) < 0 && errno != EEXIST)
		die(top);
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		die(path);
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		die(path);
	return fd;
}

/* child - deliver until the deadline; report through fd `out` */
static void child(int id, int ndirs, const int *tmpfd, const int *newfd,
    const char *buf, size_t size, double secs, int go, int out)
{
	struct result r = { 0 };
	char name[128], c;
	double t0, t, end;
	int d = id % ndirs, fd;

	if (read(go, &c, 1) < 0) {	/* EOF when the parent closes: start */
		/* nothing: the read only waits */
	}
	t0 = now();
	end = t0 + secs;
	while ((t = now()) < end) {
		snprintf(name, sizeof name, "%ld.P%dQ%ld.ceiling,S=%zu",
		    (long)time(NULL), (int)getpid(), r.files, size);
		if ((fd = openat(tmpfd[d], name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600)) < 0)
			goto fail;
		r.step[ST_OPEN] += now() - t, t = now();
		if (write_all(fd, buf, size) < 0)
			goto fail;
		r.step[ST_WRITE] += now() - t, t = now();
		if (fsync(fd) < 0)
			goto fail;
		r.step[ST_FSYNC] += now() - t, t = now();
		if (close(fd) < 0)
			goto fail;
		r.step[ST_CLOSE] += now() - t, t = now();
		if (renameat(tmpfd[d], name, newfd[d], name) < 0)
			goto fail;
		r.step[ST_RENAME] += now() - t, t = now();
		if (fsync(newfd[d]) < 0)
			goto fail;
		r.step[ST_DIRSYNC] += now() - t;
		r.files++;
		d = (d + 1) % ndirs;
	}
	r.secs = now() - t0;
	goto report;
fail:
	r.err = errno ? errno : EIO;
	r.secs = now() - t0;
report:
	if (write(out, &r, sizeof r) != (ssize_t)sizeof r)
		_exit(1);
	_exit(0);
}

/* remove_made - unlink the new/ files whose names say ".ceiling" */
static void remove_made(int newfd)
{
	int fd = dup(newfd);
	DIR *dir;
	struct dirent *de;

	if (fd < 0 || lseek(fd, 0, SEEK_SET) < 0 || !(dir = fdopendir(fd)))
		return;
	while ((de = readdir(dir)) != NULL)
		if (strstr(de->d_name, ".ceiling,S="))
			unlinkat(newfd, de->d_name, 0);
	closedir(dir);
}

int main(int argc, char **argv)
{
	int procs = 1, keep = 0, opt, i, ndirs, go[2], res[2];
	int tmpfd[MAX_DIRS], newfd[MAX_DIRS];
	size_t size = 4096;
	double secs = 3;
	struct result sum = { 0 }, r;
	double maxsecs = 0;
	long files = 0;
	char *buf;
	pid_t pid[MAX_PROCS];
	struct rusage ru;
	double cpu;

	while ((opt = getopt(argc, argv, "p:s:t:k")) != -1) {
		switch (opt) {
		case 'p': procs = atoi(optarg); break;
		case 's': size = strtoul(optarg, NULL, 10); break;
		case 't': secs = atof(optarg); break;
		case 'k': keep = 1; break;
		default: goto usage;
		}
	}
	ndirs = argc - optind;
	if (procs < 1 || procs > MAX_PROCS || ndirs < 1 || ndirs > MAX_DIRS ||
	    secs <= 0 || secs > 600 || size > (1 << 30))
		goto usage;
	for (i = 0; i < ndirs; i++) {
		tmpfd[i] = subdir(argv[optind + i], "tmp");
		newfd[i] = subdir(argv[optind + i], "new");
	}
	if (!(buf = malloc(size ? size : 1)))
		die("malloc");
	for (i = 0; (size_t)i < size; i++)	/* 79 'X' and LF, like mail text */
		buf[i] = (i % 80 == 79) ? '\n' : 'X';
	if (pipe(go) < 0 || pipe(res) < 0)
		die("pipe");
	for (i = 0; i < procs; i++) {
		if ((pid[i] = fork()) < 0)
			die("fork");
		if (pid[i] == 0) {
			close(go[1]);
			close(res[0]);
			child(i, ndirs, tmpfd, newfd, buf, size, secs, go[0], res[1]);
		}
	}
	close(go[0]);
	close(res[1]);
	usleep(100000);		/* let every child reach its read() */
	close(go[1]);		/* the starting gun */
	for (i = 0; i < procs; i++) {
		if (read(res[0], &r, sizeof r) != (ssize_t)sizeof r) {
			fprintf(stderr, "ceiling: a child died\n");
			return 1;
		}
		if (r.err && !sum.err)
			sum.err = r.err;
		files += r.files;
		if (r.secs > maxsecs)
			maxsecs = r.secs;
		for (int k = 0; k < ST_N; k++)
			sum.step[k] += r.step[k];
	}
	for (i = 0; i < procs; i++)
		waitpid(pid[i], NULL, 0);
	getrusage(RUSAGE_CHILDREN, &ru);
	cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	if (!keep)
		for (i = 0; i < ndirs; i++)
			remove_made(newfd[i]);
	printf("procs=%d dirs=%d size=%zu files=%ld secs=%.3f rate=%.1f", procs, ndirs,
	    size, files, maxsecs, maxsecs > 0 ? files / maxsecs : 0.0);
	for (i = 0; i < ST_N; i++)
		printf(" %s_us=%.1f", step_name[i], files ? 1e6 * sum.step[i] / files : 0.0);
	printf(" cpu_ms=%.3f error=\"%s\"\n", files ? 1e3 * cpu / files : 0.0,
	    sum.err ? strerror(sum.err) : "");
	return sum.err ? 1 : 0;
usage:
	fprintf(stderr, "usage: ceiling [-p procs] [-s size] [-t seconds] [-k] MAILDIR...\n");
	return 2;
}
