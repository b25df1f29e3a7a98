/* bgthread: a stoppable thread with monotonic waits. See bgthread.h. */
#include "bgthread.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int bgthread_start(struct bgthread *t, const char *what, void *(*fn)(void *), void *arg, char *err,
		   size_t err_len)
{
	memset(t, 0, sizeof(*t));
	pthread_condattr_t ca;
	int rc = pthread_condattr_init(&ca);
	if (rc == 0) {
		if ((rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) == 0)
			rc = pthread_cond_init(&t->wake, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (rc != 0) {
		snprintf(err, err_len, "%s: its condition variable: %s", what, strerror(rc));
		return -rc;
	}
	if ((rc = pthread_mutex_init(&t->mu, NULL)) != 0) {
		snprintf(err, err_len, "%s: its mutex: %s", what, strerror(rc));
		goto fail_cond;
	}
	if ((rc = pthread_create(&t->thread, NULL, fn, arg)) != 0) {
		snprintf(err, err_len, "%s: %s", what, strerror(rc));
		goto fail_mutex;
	}
	t->started = true;
	return 0;
fail_mutex:
	pthread_mutex_destroy(&t->mu);
fail_cond:
	pthread_cond_destroy(&t->wake);
	return -rc;
}

bool bgthread_wait(struct bgthread *t, uint32_t ms)
{
	struct timespec due;
	clock_gettime(CLOCK_MONOTONIC, &due);
	due.tv_sec += ms / 1000;
	due.tv_nsec += (long)(ms % 1000) * 1000000;
	due.tv_sec += due.tv_nsec / 1000000000;
	due.tv_nsec %= 1000000000;
	pthread_mutex_lock(&t->mu);
	while (!t->stopping && pthread_cond_timedwait(&t->wake, &t->mu, &due) != ETIMEDOUT)
		;
	bool go_on = !t->stopping;
	pthread_mutex_unlock(&t->mu);
	return go_on;
}

void bgthread_stop(struct bgthread *t)
{
	if (!t->started)
		return;
	pthread_mutex_lock(&t->mu);
	t->stopping = true;
	pthread_cond_signal(&t->wake);
	pthread_mutex_unlock(&t->mu);
	pthread_join(t->thread, NULL);
	pthread_cond_destroy(&t->wake);
	pthread_mutex_destroy(&t->mu);
	t->started = false;
}

void bgthread_lock(struct bgthread *t)
{
	pthread_mutex_lock(&t->mu);
}

void bgthread_unlock(struct bgthread *t)
{
	pthread_mutex_unlock(&t->mu);
}
