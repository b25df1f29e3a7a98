/* jobs: queue, retry heap and order slots. See jobs.h. */
#include "jobs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void jobs_init(struct jobs *j)
{
	memset(j, 0, sizeof(*j));
	j->free_slot = JOBS_NO_SLOT;
}

void jobs_free(struct jobs *j)
{
	free(j->queue);
	free(j->heap);
	free(j->slots);
	jobs_init(j);
}

int jobs_push(struct jobs *j, struct job job)
{
	if (j->q_len == j->q_cap) {
		size_t cap = j->q_cap ? j->q_cap * 2 : 1024;
		struct job *q = malloc(cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		for (size_t i = 0; i < j->q_len; i++)
			q[i] = j->queue[(j->q_head + i) % j->q_cap];
		free(j->queue);
		j->queue = q;
		j->q_head = 0;
		j->q_cap = cap;
	}
	j->queue[(j->q_head + j->q_len++) % j->q_cap] = job;
	return 0;
}

struct job jobs_pop(struct jobs *j)
{
	struct job job = j->queue[j->q_head];
	j->q_head = (j->q_head + 1) % j->q_cap;
	j->q_len--;
	return job;
}

int jobs_defer(struct jobs *j, struct job job)
{
	if (j->h_len == j->h_cap) {
		size_t cap = j->h_cap ? j->h_cap * 2 : 256;
		struct job *h = realloc(j->heap, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		j->heap = h;
		j->h_cap = cap;
	}
	size_t i = j->h_len++;
	while (i > 0 && j->heap[(i - 1) / 2].intended_ns > job.intended_ns) {
		j->heap[i] = j->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	j->heap[i] = job;
	return 0;
}

static struct job heap_pop(struct jobs *j)
{
	struct job top = j->heap[0], last = j->heap[--j->h_len];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= j->h_len)
			break;
		if (c + 1 < j->h_len && j->heap[c + 1].intended_ns < j->heap[c].intended_ns)
			c++;
		if (j->heap[c].intended_ns >= last.intended_ns)
			break;
		j->heap[i] = j->heap[c];
		i = c;
	}
	if (j->h_len)
		j->heap[i] = last;
	return top;
}

int jobs_release_due(struct jobs *j, int64_t now)
{
	while (j->h_len && j->heap[0].intended_ns <= now) {
		int rc = jobs_push(j, heap_pop(j));
		if (rc < 0)
			return rc;
	}
	return 0;
}

int jobs_slot_new(struct jobs *j, uint32_t *out)
{
	if (j->free_slot == JOBS_NO_SLOT) {
		uint32_t n = j->n_slots ? j->n_slots * 2 : 1024;
		struct order_slot *s = realloc(j->slots, n * sizeof(*s));
		if (!s)
			return -ENOMEM;
		for (uint32_t i = j->n_slots; i < n; i++)
			s[i].next_free = i + 1 < n ? i + 1 : JOBS_NO_SLOT;
		j->slots = s;
		j->free_slot = j->n_slots;
		j->n_slots = n;
	}
	*out = j->free_slot;
	j->free_slot = j->slots[*out].next_free;
	return 0;
}

void jobs_slot_free(struct jobs *j, uint32_t i)
{
	j->slots[i].next_free = j->free_slot;
	j->free_slot = i;
}
