/*
 * check_board.c - unit tests for the admission board (board.c): the
 * caps and the rate decided in a worker, the spare signal, a lock left
 * by a worker that died, and slots a compromised worker scribbled on.
 *
 *   make tests/check_board && ./tests/check_board
 */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "board.h"
#include "check_common.h"
#include "config.h"

static struct board *b;

/* four live workers, slots 0-3; caps small enough to reach */
static void setup(void)
{
	int i;

	cfg.max_sessions = 3;
	cfg.max_per_addr = 2;
	cfg.conn_rate_limit = 0;
	cfg.trusted_networks[0] = '\0';
	ck_assert_ptr_nonnull(b = board_open());
	for (i = 0; i < 4; i++)
		b->s[i].live = 1;
	b->top = 4;
}

static void teardown(void)
{
	board_free(b);
	b = NULL;
}

START_TEST(test_per_addr_cap)
{
	int spare;

	ck_assert_int_eq(board_admit(b, 0, "192.0.2.1", &spare), 'Y');
	ck_assert_int_eq(spare, 0);
	ck_assert_int_eq(board_admit(b, 1, "192.0.2.1", &spare), 'Y');
	ck_assert_int_eq(board_admit(b, 2, "192.0.2.1", &spare), 'N');
	ck_assert_int_eq(b->s[2].busy, 0);		/* refused: not busy */
	ck_assert_int_eq(board_admit(b, 2, "192.0.2.2", &spare), 'Y');
	board_release(b, 0);
	ck_assert_int_eq(board_admit(b, 0, "192.0.2.1", &spare), 'Y');
}
END_TEST

START_TEST(test_max_sessions_and_spare)
{
	int spare;

	ck_assert_int_eq(board_admit(b, 0, "192.0.2.1", &spare), 'Y');
	ck_assert_int_eq(board_admit(b, 1, "192.0.2.2", &spare), 'Y');
	ck_assert_int_eq(spare, 0);			/* 2 and 3 idle */
	ck_assert_int_eq(board_admit(b, 2, "192.0.2.3", &spare), 'Y');
	ck_assert_int_eq(spare, 0);			/* 3 idle */
	ck_assert_int_eq(board_admit(b, 3, "192.0.2.4", &spare), 'N');	/* 3 at once */
	board_release(b, 2);
	ck_assert_int_eq(board_admit(b, 3, "192.0.2.4", &spare), 'Y');
	ck_assert_int_eq(spare, 0);			/* 2 idle again */
	b->s[2].live = 0;				/* retired */
	board_release(b, 0);
	ck_assert_int_eq(board_admit(b, 0, "192.0.2.1", &spare), 'Y');
	ck_assert_int_eq(spare, 1);			/* no one left idle */
}
END_TEST

START_TEST(test_claim_counts)
{
	int spare;

	cfg.max_sessions = 2;
	b->s[2].live = b->s[3].live = 0;	/* two workers */
	ck_assert_int_eq(board_claim(b, 0), 0);	/* PROXY wait: 1 still idle */
	ck_assert_int_eq(board_admit(b, 1, "192.0.2.1", &spare), 'Y');
	ck_assert_int_eq(spare, 1);			/* now no one is */
	board_release(b, 1);
	ck_assert_int_eq(board_claim(b, 1), 1);
	ck_assert_int_eq(board_admit(b, 1, "192.0.2.1", &spare), 'Y');	/* its own claim */
	ck_assert_int_eq(board_admit(b, 0, "192.0.2.1", &spare), 'Y');
	ck_assert_int_eq(board_admit(b, 2, "192.0.2.5", &spare), 'N');	/* 2 at once */
}
END_TEST

START_TEST(test_trusted_and_stopping)
{
	int spare;

	snprintf(cfg.trusted_networks, sizeof cfg.trusted_networks, "192.0.2.0/24");
	cfg.max_per_addr = 1;
	ck_assert_int_eq(board_admit(b, 0, "192.0.2.1", &spare), 'Y');
	ck_assert_int_eq(board_admit(b, 1, "192.0.2.1", &spare), 'Y');	/* no per-addr cap */
	b->stopping = 1;
	ck_assert_int_eq(board_admit(b, 2, "192.0.2.9", &spare), 'N');
}
END_TEST

START_TEST(test_rate)
{
	int spare, i;

	cfg.conn_rate_limit = 3;
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(board_admit(b, 0, "198.51.100.7", &spare), 'Y');
		board_release(b, 0);
	}
	ck_assert_int_eq(board_admit(b, 0, "198.51.100.7", &spare), 'R');
	ck_assert_int_eq(board_admit(b, 0, "198.51.100.8", &spare), 'Y');
}
END_TEST

/* a worker that dies holding the lock leaves it to the next one */
START_TEST(test_dead_holder)
{
	int spare, st;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		pthread_mutex_lock(&b->lock);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_int_eq(board_admit(b, 0, "192.0.2.1", &spare), 'Y');
	ck_assert_int_eq(board_admit(b, 1, "192.0.2.1", &spare), 'Y');
	ck_assert_int_eq(board_admit(b, 2, "192.0.2.1", &spare), 'N');
}
END_TEST

/* a live holder that never lets go: refused after a second, not stuck */
START_TEST(test_stuck_holder)
{
	int spare, st, go[2];
	char c;
	pid_t pid;

	ck_assert_int_eq(pipe(go), 0);
	if ((pid = fork()) == 0) {
		pthread_mutex_lock(&b->lock);
		if (write(go[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	ck_assert_int_eq(read(go[0], &c, 1), 1);
	ck_assert_int_eq(board_admit(b, 0, "192.0.2.1", &spare), 'N');
	ck_assert_int_eq(b->s[0].busy, 0);
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_int_eq(board_admit(b, 0, "192.0.2.1", &spare), 'Y');
	close(go[0]), close(go[1]);
}
END_TEST

/* what a compromised worker can write: no NUL, a huge top, a bad slot */
START_TEST(test_scribbled)
{
	int spare, i;

	for (i = 0; i < BOARD_SLOTS; i++) {
		memset(b->s[i].addr, 'A', sizeof b->s[i].addr);
		b->s[i].busy = 1;
	}
	b->top = 1 << 30;
	cfg.max_sessions = BOARD_SLOTS + 1;
	cfg.max_per_addr = BOARD_SLOTS + 1;
	ck_assert_int_eq(board_admit(b, 0, "192.0.2.1", &spare), 'Y');
	ck_assert_int_eq(board_admit(b, -1, "192.0.2.1", &spare), 'N');
	ck_assert_int_eq(board_admit(b, BOARD_SLOTS, "192.0.2.1", &spare), 'N');
	board_release(b, BOARD_SLOTS);
	ck_assert_int_eq(board_claim(b, -5), 0);
}
END_TEST

Suite *check_suite(void)
{
	Suite *s = suite_create("board");
	TCase *tc = check_tcase(s, "admission", setup, teardown, 10);

	tcase_add_test(tc, test_per_addr_cap);
	tcase_add_test(tc, test_max_sessions_and_spare);
	tcase_add_test(tc, test_claim_counts);
	tcase_add_test(tc, test_trusted_and_stopping);
	tcase_add_test(tc, test_rate);
	tcase_add_test(tc, test_dead_holder);
	tcase_add_test(tc, test_stuck_holder);
	tcase_add_test(tc, test_scribbled);
	return s;
}
