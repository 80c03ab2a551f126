/*
 * swapper.c - the audit's attacker for test_spool_setup.py: swaps
 * SPOOL between a directory and a symlink to TARGET as fast as it can
 * (renameat2 RENAME_EXCHANGE), until killed.  The directory is given
 * back to UID each round, as if the attacker had made a new one.
 *   swapper SPOOL TARGET UID
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char other[4096];

	uid_t uid;

	if (argc != 4)
		return 2;
	uid = (uid_t)atol(argv[3]);
	snprintf(other, sizeof other, "%s.swap", argv[1]);
	mkdir(argv[1], 0777);
	if (symlink(argv[2], other) < 0)
		return 1;
	for (;;) {
		lchown(argv[1], uid, uid);
		lchown(other, uid, uid);
		renameat2(AT_FDCWD, argv[1], AT_FDCWD, other, RENAME_EXCHANGE);
	}
}
