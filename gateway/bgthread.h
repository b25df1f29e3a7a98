/*
 * bgthread: a thread beside the workers that wakes at intervals until it
 * is stopped (the node id lease's renewals, the Kafka watch). Its waits
 * are on the monotonic clock, so a wall-clock step neither fires them
 * early nor holds them back; a stop ends a wait at once.
 *
 * Owns: the thread, its mutex and condition. Does not own: what it does
 * (the fn it runs), which reads bgthread_wait's answer to know when to end.
 */
#ifndef FG_BGTHREAD_H
#define FG_BGTHREAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bgthread {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake;
	bool stopping; /* under mu */
	bool started;
};

/* Starts fn(arg) on a thread (call with the process's signals blocked).
 * 0, or -errno with "what: ..." in err. */
int bgthread_start(struct bgthread *t, const char *what, void *(*fn)(void *), void *arg, char *err,
		   size_t err_len) __attribute__((warn_unused_result));
/* In the thread: sleeps ms (0: not at all); false once stopped. */
bool bgthread_wait(struct bgthread *t, uint32_t ms);
/* Stops and joins the thread; a wait in progress ends at once. Safe on a
 * thread that never started. */
void bgthread_stop(struct bgthread *t);

/* The thread's own lock, for what the thread shares with another: held
 * around short copies only. */
void bgthread_lock(struct bgthread *t);
void bgthread_unlock(struct bgthread *t);

#endif
