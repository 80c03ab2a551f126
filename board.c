/*
 * board.c - the admission board: a table in memory shared by the
 * supervisor and its workers, one slot per worker, so a worker admits
 * its client itself without a round trip to the supervisor.
 *
 * Interface: the supervisor makes the board (board_open) before it forks
 * the first worker and marks each worker's slot live; a worker decides
 * with board_admit() (max_sessions, max_per_addr, conn_rate_limit, as the
 * supervisor did before), board_claim() marks it busy before a PROXY
 * header, board_release() idle again.  The answer says when the worker
 * took the last idle worker, so it can wake the supervisor for a spare.
 * The decision is made under one robust, process-shared mutex (a worker
 * that dies holding it leaves it to the next one); an uncontended lock
 * is two atomic operations, no system call.
 * Trust: workers parse network bytes, so the board is as trustworthy as
 * the least of them.  The supervisor takes no lock and reads nothing but
 * the busy flags from it (to count idle workers: at worst it forks spares
 * up to max_sessions); a worker that cannot get the lock within a second
 * refuses the client.  See SECURITY.md.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "board.h"
#include "config.h"
#include "netaddr.h"

/* board_open - a zeroed board shared with children forked later; NULL on error */
struct board *board_open(void)
{
	struct board *b = mmap(NULL, sizeof *b, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pthread_mutexattr_t ma;
	int bad;

	if (b == MAP_FAILED)
		return NULL;
	bad = pthread_mutexattr_init(&ma) ||
	    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) ||
	    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST) ||
	    pthread_mutex_init(&b->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	if (bad) {
		munmap(b, sizeof *b);
		return NULL;
	}
	return b;
}

/* board_free - unmap the board */
void board_free(struct board *b)
{
	if (b)
		munmap(b, sizeof *b);
}

/* board_private - in a worker: its own children (the deliverer) never get it */
void board_private(struct board *b)
{
	madvise(b, sizeof *b, MADV_DONTFORK);
}

/* lock - take the board within a second; -1 if a stuck worker holds it */
static int lock(struct board *b)
{
	struct timespec until;
	int e;

	clock_gettime(CLOCK_MONOTONIC, &until);	/* a clock step cannot stretch it */
	until.tv_sec += 1;
	e = pthread_mutex_clocklock(&b->lock, CLOCK_MONOTONIC, &until);
	if (e == EOWNERDEAD)	/* its holder died: the slots are plain ints */
		e = pthread_mutex_consistent(&b->lock);
	return e ? -1 : 0;
}

/* idle - live workers other than me that are not busy */
static int idle(const struct board *b, int me)
{
	int i, n = 0, top = b->top;

	for (i = 0; i < top && i < BOARD_SLOTS; i++)
		n += i != me && b->s[i].live && !b->s[i].busy;
	return n;
}

/* verdict - the admission rule; total and same count the others' sessions */
static char verdict(struct board *b, const char *addr, int total, int same)
{
	int trusted = netaddr_match(addr, cfg.trusted_networks);
	int fast = !trusted && rate_over(&b->rate, addr, time(NULL), cfg.conn_rate_limit);

	if (total >= cfg.max_sessions || b->stopping ||
	    (!trusted && same >= cfg.max_per_addr))
		return 'N';
	return fast ? 'R' : 'Y';
}

/*
 * board_admit - may this client (addr) have a session in slot me?  'Y'
 * (slot me is busy with it now), 'N' (a cap, stopping, or no lock) or
 * 'R' (conn_rate_limit).  *spare: no other worker is idle.
 */
char board_admit(struct board *b, int me, const char *addr, int *spare)
{
	int i, total = 0, same = 0, top;
	char ans;

	*spare = 0;
	if (me < 0 || me >= BOARD_SLOTS || lock(b) < 0)
		return 'N';
	top = b->top;
	for (i = 0; i < top && i < BOARD_SLOTS; i++) {
		if (i == me || !b->s[i].busy)
			continue;
		total++;	/* strncmp: a worker may have left no NUL */
		same += strncmp(b->s[i].addr, addr, PEER_ADDR_MAX) == 0;
	}
	if ((ans = verdict(b, addr, total, same)) == 'Y') {
		b->s[me].busy = 1;
		strncpy(b->s[me].addr, addr, PEER_ADDR_MAX - 1);
		*spare = idle(b, me) == 0;
	}
	pthread_mutex_unlock(&b->lock);
	return ans;
}

/* mark - slot me busy or idle, with no address; 1: no other worker idle */
static int mark(struct board *b, int me, int busy)
{
	int locked, none;

	if (me < 0 || me >= BOARD_SLOTS)
		return 0;
	locked = lock(b) == 0;	/* without it, the flag is still ours to set */
	b->s[me].addr[0] = '\0';
	b->s[me].busy = busy;
	none = idle(b, me) == 0;
	if (locked)
		pthread_mutex_unlock(&b->lock);
	return none;
}

/* board_claim - busy before the client's address is known; 1: no one idle */
int board_claim(struct board *b, int me)
{
	return mark(b, me, 1);
}

/* board_release - idle again: the session is over */
void board_release(struct board *b, int me)
{
	mark(b, me, 0);
}
