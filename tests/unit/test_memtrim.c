/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "relay/memtrim.h"

static void
test_a_mass_disconnect_is_due_once_the_count_stops_falling(void **state)
{
	struct memtrim m;

	(void)state;
	memtrim_init(&m);
	assert_false(memtrim_due(&m, 10000));
	assert_false(memtrim_due(&m, 10000));
	/* Still falling: the closes are not over, a trim now would miss the rest. */
	assert_false(memtrim_due(&m, 6000));
	assert_false(memtrim_due(&m, 0));
	/* The first sample that did not fall. */
	assert_true(memtrim_due(&m, 0));
	/* Once per storm. */
	assert_false(memtrim_due(&m, 0));
}

static void
test_a_small_or_slow_decline_is_not_due(void **state)
{
	struct memtrim m;

	(void)state;
	memtrim_init(&m);
	/* A tenth of the peak left: churn, not a mass disconnect. */
	assert_false(memtrim_due(&m, 10000));
	assert_false(memtrim_due(&m, 9000));
	assert_false(memtrim_due(&m, 9000));
	/* A small relay losing all its agents frees too little to ask. */
	memtrim_init(&m);
	assert_false(memtrim_due(&m, MEMTRIM_MIN_DROP - 1));
	assert_false(memtrim_due(&m, 0));
	assert_false(memtrim_due(&m, 0));
}

static void
test_after_a_trim_the_next_peak_counts_from_there(void **state)
{
	struct memtrim m;

	(void)state;
	memtrim_init(&m);
	assert_false(memtrim_due(&m, 10000));
	assert_false(memtrim_due(&m, 5000));
	assert_true(memtrim_due(&m, 5000));
	/* 1000 more leaving is a fifth of 5000, the peak since the trim: not due. */
	assert_false(memtrim_due(&m, 4000));
	assert_false(memtrim_due(&m, 4000));
	assert_false(memtrim_due(&m, 0));
	assert_true(memtrim_due(&m, 0));
	/* A second round comes and goes: due again. */
	assert_false(memtrim_due(&m, 10000));
	assert_false(memtrim_due(&m, 0));
	assert_true(memtrim_due(&m, 0));
}

static void
test_agents_that_came_and_went_between_two_samples_still_bring_a_trim(void **state)
{
	struct memtrim m;

	(void)state;
	memtrim_init(&m);
	assert_false(memtrim_due(&m, 0));
	/* 300 accepted, then all closed, within one second: no sample saw them. */
	for (uint64_t open = 1; open <= 300; open++)
		memtrim_opened(&m, open);
	assert_true(memtrim_due(&m, 0));
	assert_false(memtrim_due(&m, 0));
	/* Fewer than MEMTRIM_MIN_DROP between samples is still not worth a trim. */
	for (uint64_t open = 1; open < MEMTRIM_MIN_DROP; open++)
		memtrim_opened(&m, open);
	assert_false(memtrim_due(&m, 0));
}

/* This process's private resident memory, KiB. */
static long
rss_anon_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "RssAnon: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

#define BLOCKS 2048
#define BLOCK (32 * 1024)

static void
test_release_gives_freed_connection_buffers_back_to_the_system(void **state)
{
	static void *blocks[BLOCKS];
	void *pin;
	long held, freed, released;

	(void)state;
	/* What 2048 connections' 32 KiB buffers leave behind, pinned below a live allocation. */
	for (int i = 0; i < BLOCKS; i++) {
		assert_non_null(blocks[i] = malloc(BLOCK));
		memset(blocks[i], 1, BLOCK);
	}
	assert_non_null(pin = malloc(64));
	held = rss_anon_kib();
	for (int i = 0; i < BLOCKS; i++)
		free(blocks[i]);
	freed = rss_anon_kib();
	assert_int_equal(memtrim_release(), 0);
	released = rss_anon_kib();
	print_message("RssAnon KiB: %ld with the blocks, %ld freed, %ld released\n", held, freed,
	    released);
#ifndef __SANITIZE_ADDRESS__
	/* AddressSanitizer's allocator keeps freed memory in quarantine whatever glibc is asked. */
	/* Whatever free() itself gave back, at least half the blocks are gone now. */
	assert_true(held - released >= (long)BLOCKS * (BLOCK / 1024) / 2);
#endif
	free(pin);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_mass_disconnect_is_due_once_the_count_stops_falling),
		cmocka_unit_test(test_a_small_or_slow_decline_is_not_due),
		cmocka_unit_test(test_after_a_trim_the_next_peak_counts_from_there),
		cmocka_unit_test(test_agents_that_came_and_went_between_two_samples_still_bring_a_trim),
		cmocka_unit_test(test_release_gives_freed_connection_buffers_back_to_the_system),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
