/*
 * board.h - the admission board (board.c): which worker serves which
 * client, shared by the supervisor and its workers.
 */
#ifndef BOARD_H
#define BOARD_H

#include <pthread.h>

#include "peer.h"
#include "rate.h"

#define BOARD_SLOTS	10000	/* the largest max_sessions: one per worker */

struct board_slot {
	int live;		/* a worker that may take clients (supervisor) */
	int busy;		/* serving a client (the worker) */
	char addr[PEER_ADDR_MAX];	/* that client; "" until it is known */
};

struct board {
	pthread_mutex_t lock;	/* robust, shared: workers decide under it */
	int stopping;		/* supervisor: SIGTERM seen, admit nobody */
	int top;		/* supervisor: slots in use lie below this */
	struct rate rate;	/* conn_rate_limit, per address */
	struct board_slot s[BOARD_SLOTS];
};

struct board *board_open(void);
void board_free(struct board *b);
void board_private(struct board *b);
char board_admit(struct board *b, int me, const char *addr, int *spare);
int board_claim(struct board *b, int me);
void board_release(struct board *b, int me);

#endif
