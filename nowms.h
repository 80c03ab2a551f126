/*
 * nowms.h - now_ms(): CLOCK_MONOTONIC in milliseconds, for deadlines and
 * durations (the vDSO: no system call).  One definition for the session,
 * the door, the connection layer and the deliverer's client.
 */
#ifndef NOWMS_H
#define NOWMS_H

#include <time.h>

static inline long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
