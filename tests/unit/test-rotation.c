/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>

#include "config.h"
#include "keyring.h"
#include "rotation.h"

#define T0 (1700000000ULL * USEC_PER_SEC)

typedef struct Fixture {
	Config *config;
	KeyRing *ring;
} Fixture;

static int setup(void **state)
{
	Fixture *f = calloc(1, sizeof(Fixture));

	f->config = config_new();
	f->ring = keyring_new();
	if (!f->config || !f->ring)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	Fixture *f = *state;

	keyring_free(f->ring);
	config_free(f->config);
	free(f);
	return 0;
}

/* A ring whose key 1 became active at `at`. */
static uint32_t add_active(Fixture *f, usec_t at)
{
	uint32_t kid;

	assert_int_equal(keyring_add_random(f->ring, at, &kid), 0);
	assert_int_equal(keyring_activate(f->ring, kid, at, f->config->max_link_ttl,
	                                  f->config->clock_skew, false),
	                 0);
	return kid;
}

static void test_empty_ring_publishes_first_key(void **state)
{
	Fixture *f = *state;
	RotationInput in = {};
	usec_t when = 0;

	assert_int_equal(rotation_next(f->ring, f->config, &in, T0, &when), ROTATION_PUBLISH);
}

static void test_unconfirmed_key_is_never_activated(void **state)
{
	Fixture *f = *state;
	RotationInput in = { .sync_needed = true, .retry_at = T0 + 5 * USEC_PER_SEC };
	uint32_t kid;
	usec_t when = 0;

	assert_int_equal(keyring_add_random(f->ring, T0, &kid), 0);
	/* Long after the activation delay, but nginx has not confirmed. */
	assert_int_equal(rotation_next(f->ring, f->config, &in, T0 + USEC_PER_SEC, &when),
	                 ROTATION_WAIT);
	assert_true(when == T0 + 5 * USEC_PER_SEC);
	assert_int_equal(rotation_next(f->ring, f->config, &in, T0 + 5 * USEC_PER_SEC, &when),
	                 ROTATION_SYNC);
	/* A failed sync that gave up on retries still never activates. */
	in.sync_needed = false;
	in.confirmed_kid = kid - 1;
	assert_int_equal(rotation_next(f->ring, f->config, &in, T0 + USEC_PER_DAY, &when),
	                 ROTATION_WAIT);
}

static void test_confirmed_key_activates_after_delay(void **state)
{
	Fixture *f = *state;
	RotationInput in = {};
	uint32_t kid;
	usec_t when = 0;

	assert_int_equal(keyring_add_random(f->ring, T0, &kid), 0);
	in.confirmed_kid = kid;
	in.confirmed_at = T0 + USEC_PER_SEC;
	assert_int_equal(rotation_next(f->ring, f->config, &in, T0 + USEC_PER_SEC, &when),
	                 ROTATION_WAIT);
	assert_true(when == T0 + USEC_PER_SEC + f->config->activation_delay);
	assert_int_equal(rotation_next(f->ring, f->config, &in, when, &when), ROTATION_ACTIVATE);
}

static void test_revoke_activates_without_delay(void **state)
{
	Fixture *f = *state;
	RotationInput in = { .activate_now = true };
	uint32_t kid;
	usec_t when = 0;

	assert_int_equal(keyring_add_random(f->ring, T0, &kid), 0);
	in.confirmed_kid = kid;
	in.confirmed_at = T0;
	assert_int_equal(rotation_next(f->ring, f->config, &in, T0, &when), ROTATION_ACTIVATE);
}

static void test_failed_save_holds_every_step_until_the_back_off(void **state)
{
	Fixture *f = *state;
	RotationInput in = {};
	uint32_t kid;
	usec_t when = 0;

	assert_int_equal(keyring_add_random(f->ring, T0, &kid), 0);
	in.confirmed_kid = kid;
	in.confirmed_at = T0;
	in.hold_until = T0 + 10 * USEC_PER_SEC;
	/* The activation is due, but the last save failed: wait, then retry. */
	assert_int_equal(rotation_next(f->ring, f->config, &in, T0 + 5 * USEC_PER_SEC, &when),
	                 ROTATION_WAIT);
	assert_true(when == T0 + 10 * USEC_PER_SEC);
	assert_int_equal(rotation_next(f->ring, f->config, &in, when, &when), ROTATION_ACTIVATE);
}

static void test_schedule_follows_activation_time(void **state)
{
	Fixture *f = *state;
	RotationInput in = {};
	usec_t when = 0;

	in.confirmed_kid = add_active(f, T0);
	assert_true(rotation_due(f->ring, f->config) == T0 + f->config->rotate_every);
	assert_int_equal(rotation_next(f->ring, f->config, &in, T0 + USEC_PER_HOUR, &when),
	                 ROTATION_WAIT);
	assert_true(when == T0 + f->config->rotate_every);
	assert_int_equal(rotation_next(f->ring, f->config, &in, when, &when), ROTATION_PUBLISH);
}

static void test_request_publishes_early(void **state)
{
	Fixture *f = *state;
	RotationInput in = { .rotate_requested = true };
	usec_t when = 0;

	in.confirmed_kid = add_active(f, T0);
	assert_int_equal(rotation_next(f->ring, f->config, &in, T0 + 1, &when), ROTATION_PUBLISH);
}

static void test_retired_key_dropped_after_links_expire(void **state)
{
	Fixture *f = *state;
	RotationInput in = {};
	usec_t when = 0, t1 = T0 + USEC_PER_HOUR;
	uint32_t kid;

	/* The schedule is not what this test is about: keep it out of the way. */
	f->config->rotate_every = 7 * USEC_PER_DAY;
	add_active(f, T0);
	assert_int_equal(keyring_add_random(f->ring, t1, &kid), 0);
	assert_int_equal(keyring_activate(f->ring, kid, t1, f->config->max_link_ttl,
	                                  f->config->clock_skew, false),
	                 0);
	in.confirmed_kid = kid;
	in.confirmed_at = t1;
	/* The old key signed links up to t1 that live max_link_ttl, plus skew. */
	usec_t drop = t1 + f->config->max_link_ttl + f->config->clock_skew;
	assert_int_equal(rotation_next(f->ring, f->config, &in, t1 + USEC_PER_SEC, &when),
	                 ROTATION_WAIT);
	assert_true(when == drop);
	assert_int_equal(rotation_next(f->ring, f->config, &in, drop - 1, &when), ROTATION_WAIT);
	assert_int_equal(rotation_next(f->ring, f->config, &in, drop, &when), ROTATION_DROP);
}

static void test_failing_nginx_blocks_new_rotations(void **state)
{
	Fixture *f = *state;
	RotationInput in = { .sync_needed = true, .retry_at = T0 + 2 * USEC_PER_DAY };
	usec_t when = 0;

	in.confirmed_kid = add_active(f, T0);
	/* The schedule is past due, but the retry comes first. */
	assert_int_equal(rotation_next(f->ring, f->config, &in, T0 + USEC_PER_DAY + 1, &when),
	                 ROTATION_WAIT);
	assert_true(when == T0 + 2 * USEC_PER_DAY);
}

/* A ring of KEYRING_MAX_KEYS: key 1 active at T0, the rest retired (legacy
 * imports fill it quickly) with links living a day. */
static void fill_ring(Fixture *f)
{
	char secret[16];
	uint32_t kid;

	add_active(f, T0);
	for (unsigned i = 1; i < KEYRING_MAX_KEYS; i++) {
		snprintf(secret, sizeof(secret), "s%u", i);
		assert_int_equal(keyring_add_legacy(f->ring, secret, T0, USEC_PER_DAY, 0, &kid), 0);
	}
	assert_int_equal(f->ring->n_keys, KEYRING_MAX_KEYS);
}

static void test_full_ring_waits_for_the_next_drop_instead_of_publishing(void **state)
{
	Fixture *f = *state;
	RotationInput in = { .rotate_requested = true };
	usec_t when = 0, due;

	f->config->rotate_every = USEC_PER_HOUR;
	fill_ring(f);
	in.confirmed_kid = keyring_max_kid(f->ring);
	due = rotation_due(f->ring, f->config);
	/* Asked for and due: still no key, no room for one. */
	assert_int_equal(rotation_next(f->ring, f->config, &in, due + 1, &when), ROTATION_WAIT);
	assert_true(when == T0 + USEC_PER_DAY);
	assert_int_equal(rotation_next(f->ring, f->config, &in, when, &when), ROTATION_DROP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty_ring_publishes_first_key, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_unconfirmed_key_is_never_activated, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_confirmed_key_activates_after_delay, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_revoke_activates_without_delay, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(
		    test_failed_save_holds_every_step_until_the_back_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schedule_follows_activation_time, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_request_publishes_early, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retired_key_dropped_after_links_expire, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(
		    test_full_ring_waits_for_the_next_drop_instead_of_publishing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failing_nginx_blocks_new_rotations, setup,
		                                teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
