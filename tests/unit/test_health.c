/* Unit tests for gateway/health.c: the rules that make the process live
 * and ready, and the JSON that names what failed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../gateway/health.h"

static const struct health_worker fine = {.turn_ms = 10000, .redis_up = true, .kafka_ok = true, .lease_ok = true};

static void test_ready_when_every_check_passes(void **state)
{
	(void)state;
	struct health *h = health_new(2);
	char body[HEALTH_BODY_MAX];
	bool ok;
	health_live(h, 10000, &ok, body, sizeof(body));
	assert_false(ok); /* no worker has published yet */
	assert_string_equal(body, "{\"status\":\"not_live\",\"stalled_workers\":[0,1],\"workers\":2}");
	health_publish(h, 0, &fine);
	health_publish(h, 1, &fine);
	health_live(h, 10050, &ok, body, sizeof(body));
	assert_true(ok);
	assert_string_equal(body, "{\"status\":\"live\",\"workers\":2}");
	health_ready(h, 10050, &ok, body, sizeof(body));
	assert_true(ok);
	assert_string_equal(body, "{\"status\":\"ready\",\"redis\":\"up\",\"kafka\":\"up\",\"node_lease\":\"held\","
				  "\"draining\":false,\"workers\":2}");
	health_free(h);
}

static void test_each_failure_is_named(void **state)
{
	(void)state;
	struct health *h = health_new(2);
	char body[HEALTH_BODY_MAX];
	bool ok;
	struct health_worker w1 = fine;
	w1.redis_up = false;
	w1.kafka_ok = false;
	health_publish(h, 0, &fine);
	health_publish(h, 1, &w1);
	health_set_kafka(h, false, "metadata for orders: \"Local: Timed out\"\n");
	health_ready(h, 10000, &ok, body, sizeof(body));
	assert_false(ok);
	assert_string_equal(body, "{\"status\":\"not_ready\",\"redis\":\"down\",\"redis_down_workers\":[1],"
				  "\"kafka\":\"no_answer\",\"kafka_error\":\"metadata for orders:  Local: Timed out  \","
				  "\"kafka_stuck_workers\":[1],\"node_lease\":\"held\",\"draining\":false,\"workers\":2}");
	/* A loop that stops turning: not live, and so not ready. */
	health_set_kafka(h, true, NULL);
	health_publish(h, 1, &fine);
	health_live(h, 10000 + HEALTH_STALE_MS + 1, &ok, body, sizeof(body));
	assert_false(ok);
	assert_string_equal(body, "{\"status\":\"not_live\",\"stalled_workers\":[0,1],\"workers\":2}");
	struct health_worker later = fine;
	later.turn_ms = 20000;
	health_publish(h, 0, &later);
	health_ready(h, 20000, &ok, body, sizeof(body));
	assert_false(ok);
	assert_non_null(strstr(body, "\"stalled_workers\":[1]"));
	health_free(h);
}

static void test_lease_and_draining(void **state)
{
	(void)state;
	struct health *h = health_new(1);
	char body[HEALTH_BODY_MAX];
	bool ok;
	struct health_worker w = fine;
	w.lease_ok = false;
	health_publish(h, 0, &w);
	health_ready(h, 10000, &ok, body, sizeof(body));
	assert_false(ok);
	assert_non_null(strstr(body, "\"node_lease\":\"not_held\""));
	health_publish(h, 0, &fine);
	health_set_draining(h);
	health_ready(h, 10000, &ok, body, sizeof(body));
	assert_false(ok);
	assert_non_null(strstr(body, "\"draining\":true"));
	health_live(h, 10000, &ok, body, sizeof(body));
	assert_true(ok); /* draining is not dead */
	health_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ready_when_every_check_passes),
		cmocka_unit_test(test_each_failure_is_named),
		cmocka_unit_test(test_lease_and_draining),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
