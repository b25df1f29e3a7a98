/* health: live and ready for the whole process. See health.h. */
#include "health.h"

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct slot {
	int64_t turn_ms;
	uint8_t redis_up, kafka_ok, lease_ok, draining, published;
};

struct health {
	unsigned workers;
	uint8_t kafka_answers; /* kwatch's last probe; 1 until it says otherwise */
	uint8_t draining;
	pthread_mutex_t kafka_lock; /* kafka_why: written once a second at most */
	char kafka_why[160];
	struct slot slot[];
};

struct health *health_new(unsigned workers)
{
	struct health *h = calloc(1, sizeof(*h) + workers * sizeof(struct slot));
	if (!h)
		return NULL;
	h->workers = workers;
	h->kafka_answers = 1; /* start-up's own probe found the topic */
	pthread_mutex_init(&h->kafka_lock, NULL);
	return h;
}

void health_free(struct health *h)
{
	if (!h)
		return;
	pthread_mutex_destroy(&h->kafka_lock);
	free(h);
}

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

void health_publish(struct health *h, unsigned index, const struct health_worker *s)
{
	struct slot *sl = &h->slot[index];
	STORE(sl->turn_ms, s->turn_ms);
	STORE(sl->redis_up, (uint8_t)s->redis_up);
	STORE(sl->kafka_ok, (uint8_t)s->kafka_ok);
	STORE(sl->draining, (uint8_t)s->draining);
	STORE(sl->lease_ok, (uint8_t)s->lease_ok);
	STORE(sl->published, 1);
}

void health_set_kafka(struct health *h, bool ok, const char *why)
{
	pthread_mutex_lock(&h->kafka_lock);
	snprintf(h->kafka_why, sizeof(h->kafka_why), "%s", ok || !why ? "" : why);
	pthread_mutex_unlock(&h->kafka_lock);
	STORE(h->kafka_answers, (uint8_t)ok);
}

void health_set_draining(struct health *h)
{
	STORE(h->draining, 1);
}

/* Appends to out, never past cap. */
__attribute__((format(printf, 4, 5))) static void add(char *out, size_t cap, size_t *n, const char *fmt, ...)
{
	if (*n + 1 >= cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(out + *n, cap - *n, fmt, ap);
	va_end(ap);
	if (k > 0)
		*n = *n + (size_t)k >= cap ? cap - 1 : *n + (size_t)k;
}

/* The workers whose loop is stale, as a JSON list into out; their count. */
static unsigned stale_workers(const struct health *h, int64_t now_ms, char *out, size_t cap, size_t *n)
{
	unsigned stale = 0;
	for (unsigned i = 0; i < h->workers; i++) {
		const struct slot *sl = &h->slot[i];
		if (LOAD(sl->published) && now_ms - LOAD(sl->turn_ms) <= HEALTH_STALE_MS)
			continue;
		add(out, cap, n, "%s%u", stale ? "," : "", i);
		stale++;
	}
	return stale;
}

size_t health_live(const struct health *h, int64_t now_ms, bool *ok, char *out, size_t cap)
{
	size_t n = 0;
	char list[256];
	size_t ln = 0;
	list[0] = '\0';
	unsigned stale = stale_workers(h, now_ms, list, sizeof(list), &ln);
	*ok = stale == 0;
	if (*ok)
		add(out, cap, &n, "{\"status\":\"live\",\"workers\":%u}", h->workers);
	else
		add(out, cap, &n, "{\"status\":\"not_live\",\"stalled_workers\":[%s],\"workers\":%u}", list,
		    h->workers);
	return n;
}

/* A JSON list of the workers whose flag at field (a uint8_t of struct
 * slot) is 0, into out; how many. */
static unsigned workers_where(const struct health *h, size_t field, char *out, size_t cap)
{
	unsigned count = 0;
	size_t n = 0;
	out[0] = '\0';
	for (unsigned i = 0; i < h->workers; i++) {
		const uint8_t *v = (const uint8_t *)&h->slot[i] + field;
		if (__atomic_load_n(v, __ATOMIC_RELAXED))
			continue;
		add(out, cap, &n, "%s%u", count ? "," : "", i);
		count++;
	}
	return count;
}

size_t health_ready(const struct health *h, int64_t now_ms, bool *ok, char *out, size_t cap)
{
	char stale_list[256], redis_list[256], kafka_list[256], lease_list[256], why[sizeof(h->kafka_why)];
	size_t sn = 0, n = 0;
	stale_list[0] = '\0';
	unsigned stale = stale_workers(h, now_ms, stale_list, sizeof(stale_list), &sn);
	unsigned redis_down = workers_where(h, offsetof(struct slot, redis_up), redis_list, sizeof(redis_list));
	unsigned kafka_stuck = workers_where(h, offsetof(struct slot, kafka_ok), kafka_list, sizeof(kafka_list));
	unsigned no_lease = workers_where(h, offsetof(struct slot, lease_ok), lease_list, sizeof(lease_list));
	bool brokers = LOAD(h->kafka_answers);
	bool draining = LOAD(h->draining);
	for (unsigned i = 0; i < h->workers; i++)
		draining = draining || LOAD(h->slot[i].draining);
	pthread_mutex_lock((pthread_mutex_t *)&h->kafka_lock);
	memcpy(why, h->kafka_why, sizeof(why));
	pthread_mutex_unlock((pthread_mutex_t *)&h->kafka_lock);

	*ok = !stale && !redis_down && !kafka_stuck && !no_lease && brokers && !draining;
	add(out, cap, &n, "{\"status\":\"%s\"", *ok ? "ready" : "not_ready");
	if (stale)
		add(out, cap, &n, ",\"stalled_workers\":[%s]", stale_list);
	add(out, cap, &n, ",\"redis\":\"%s\"", redis_down ? "down" : "up");
	if (redis_down)
		add(out, cap, &n, ",\"redis_down_workers\":[%s]", redis_list);
	add(out, cap, &n, ",\"kafka\":\"%s\"", !brokers ? "no_answer" : kafka_stuck ? "not_acknowledging" : "up");
	if (!brokers && *why) {
		/* librdkafka's words hold no quote or backslash worth keeping */
		for (char *c = why; *c; c++)
			if (*c == '"' || *c == '\\' || (unsigned char)*c < ' ')
				*c = ' ';
		add(out, cap, &n, ",\"kafka_error\":\"%s\"", why);
	}
	if (kafka_stuck)
		add(out, cap, &n, ",\"kafka_stuck_workers\":[%s]", kafka_list);
	add(out, cap, &n, ",\"node_lease\":\"%s\"", no_lease ? "not_held" : "held");
	add(out, cap, &n, ",\"draining\":%s", draining ? "true" : "false");
	add(out, cap, &n, ",\"workers\":%u}", h->workers);
	return n;
}
