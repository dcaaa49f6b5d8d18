/* Unit tests for timers (src/timer.c): ordering, repeat, stop and restart
 * from callbacks, and the rounded-up wait. Deadlines are checked against
 * CLOCK_MONOTONIC; nothing sleeps. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eddy/loop.h"

TestSuite(timer, .timeout = 10);

static struct eddy_loop *new_loop(void)
{
    struct eddy_loop *loop = NULL;
    int rc = eddy_loop_new(&loop);
    cr_assert_eq(rc, 0, "eddy_loop_new: %s", eddy_strerror(rc));
    return loop;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define MS 1000000u

/* Timers that log their index in firing order. */
#define MAX_TIMERS 256
static struct eddy_timer timers[MAX_TIMERS];
static int fired[MAX_TIMERS * 4];
static int nfired;
static uint64_t fired_at[MAX_TIMERS * 4];

static void log_cb(struct eddy_timer *t)
{
    int i = (int)(t - timers);
    cr_assert_lt(nfired, MAX_TIMERS * 4);
    fired_at[nfired] = mono_ns();
    fired[nfired++] = i;
}

Test(timer, fire_in_deadline_order)
{
    struct eddy_loop *loop = new_loop();
    static const uint64_t timeouts[] = {30, 10, 20, 0, 5};
    for (int i = 0; i < 5; i++) {
        eddy_timer_init(loop, &timers[i]);
        cr_assert_not(eddy_timer_active(&timers[i]));
        cr_assert_eq(eddy_timer_start(&timers[i], log_cb, timeouts[i], 0), 0);
        cr_assert(eddy_timer_active(&timers[i]));
    }
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_eq(nfired, 5);
    static const int want[] = {3, 4, 1, 2, 0};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(fired[i], want[i], "position %d: timer %d, want %d", i, fired[i], want[i]);
    for (int i = 0; i < 5; i++)
        cr_assert_not(eddy_timer_active(&timers[i]));
    eddy_loop_free(loop);
}

Test(timer, equal_deadlines_fire_in_start_order)
{
    struct eddy_loop *loop = new_loop();
    /* Started within one cached "now", so the deadlines are equal. Start
     * them in an order that a heap would not keep by accident. */
    for (int i = 0; i < 64; i++)
        eddy_timer_init(loop, &timers[i]);
    for (int i = 63; i >= 0; i--)
        cr_assert_eq(eddy_timer_start(&timers[i], log_cb, 1, 0), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_eq(nfired, 64);
    for (int i = 0; i < 64; i++)
        cr_assert_eq(fired[i], 63 - i, "position %d: timer %d", i, fired[i]);
    eddy_loop_free(loop);
}

/* Many timers with few distinct deadlines, some stopped: the rest fire
 * ordered by (deadline, start order), which exercises removal from the
 * middle of the heap. */
Test(timer, heap_order_with_ties_and_removals)
{
    struct eddy_loop *loop = new_loop();
    enum { N = 200 };
    uint64_t timeout[N];
    srand(42);
    for (int i = 0; i < N; i++) {
        eddy_timer_init(loop, &timers[i]);
        timeout[i] = (uint64_t)(rand() % 4);
        cr_assert_eq(eddy_timer_start(&timers[i], log_cb, timeout[i], 0), 0);
    }
    for (int i = 0; i < N; i += 7)
        eddy_timer_stop(&timers[i]);
    /* Restarting moves a timer to the end of its new deadline's line. */
    for (int i = 1; i < N; i += 11)
        if (i % 7 != 0)
            cr_assert_eq(eddy_timer_start(&timers[i], log_cb, timeout[i], 0), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);

    int expect = 0;
    for (int i = 0; i < N; i++)
        expect += i % 7 != 0;
    cr_assert_eq(nfired, expect);
    /* Rank by (timeout, restarted last, index). */
    for (int k = 1; k < nfired; k++) {
        int a = fired[k - 1], b = fired[k];
        cr_assert_neq(a % 7, 0, "stopped timer %d fired", a);
        int ra = a % 11 == 1 && a % 7 != 0, rb = b % 11 == 1 && b % 7 != 0;
        bool ok = timeout[a] < timeout[b] ||
                  (timeout[a] == timeout[b] && (ra < rb || (ra == rb && a < b)));
        cr_assert(ok, "timer %d (%lu ms) fired before %d (%lu ms)", a, (unsigned long)timeout[a], b,
                  (unsigned long)timeout[b]);
    }
    eddy_loop_free(loop);
}

static int repeat_count;

static void repeat_cb(struct eddy_timer *t)
{
    log_cb(t);
    if (++repeat_count == 3)
        eddy_timer_stop(t);
}

Test(timer, repeat_until_stopped_in_the_callback)
{
    struct eddy_loop *loop = new_loop();
    eddy_timer_init(loop, &timers[0]);
    eddy_loop_update_time(loop);
    uint64_t t0 = eddy_loop_now(loop) * MS;
    cr_assert_eq(eddy_timer_start(&timers[0], repeat_cb, 2, 5), 0);
    /* DEFAULT returns only because the callback stopped the timer. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_eq(repeat_count, 3);
    cr_assert_not(eddy_timer_active(&timers[0]));
    /* Never early: the k-th run is due at 2 + 5 (k - 1) ms. */
    for (int k = 0; k < 3; k++)
        cr_assert_geq(fired_at[k], t0 + (2 + 5 * (uint64_t)k) * MS, "run %d came early", k);
    eddy_loop_free(loop);
}

static void stop_other_cb(struct eddy_timer *t)
{
    log_cb(t);
    int i = (int)(t - timers);
    eddy_timer_stop(&timers[1 - i]);
}

Test(timer, stop_another_due_timer_inside_a_callback)
{
    struct eddy_loop *loop = new_loop();
    eddy_timer_init(loop, &timers[0]);
    eddy_timer_init(loop, &timers[1]);
    cr_assert_eq(eddy_timer_start(&timers[0], stop_other_cb, 0, 0), 0);
    cr_assert_eq(eddy_timer_start(&timers[1], stop_other_cb, 0, 0), 0);
    /* Both are due in the same iteration; the first stops the second. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(nfired, 1);
    cr_assert_eq(fired[0], 0);
    cr_assert_not(eddy_timer_active(&timers[1]));
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_eq(nfired, 1);
    eddy_loop_free(loop);
}

static int zero_count;

static void restart_zero_cb(struct eddy_timer *t)
{
    zero_count++;
    cr_assert_eq(eddy_timer_start(t, restart_zero_cb, 0, 0), 0);
}

Test(timer, restart_with_zero_timeout_waits_for_the_next_iteration)
{
    struct eddy_loop *loop = new_loop();
    eddy_timer_init(loop, &timers[0]);
    cr_assert_eq(eddy_timer_start(&timers[0], restart_zero_cb, 0, 0), 0);
    for (int i = 1; i <= 5; i++) {
        cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
        cr_assert_eq(zero_count, i, "%d runs in %d iterations", zero_count, i);
    }
    cr_assert(eddy_timer_active(&timers[0]));
    eddy_timer_stop(&timers[0]);
    eddy_loop_free(loop);
}

static int late_count;

static void late_cb(struct eddy_timer *t)
{
    (void)t;
    late_count++;
}

/* A repeating timer whose loop fell several periods behind runs once, not
 * once per missed period, and its next deadline is in the future. */
Test(timer, repeat_does_not_catch_up_missed_periods)
{
    struct eddy_loop *loop = new_loop();
    eddy_timer_init(loop, &timers[0]);
    cr_assert_eq(eddy_timer_start(&timers[0], late_cb, 0, 20), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(late_count, 1);
    /* A long computation: three periods pass without the loop running. */
    uint64_t until = mono_ns() + 65 * MS;
    while (mono_ns() < until) {
    }
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(late_count, 2, "ran %d times after falling behind", late_count);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(late_count, 2);
    eddy_timer_stop(&timers[0]);
    eddy_loop_free(loop);
}

Test(timer, restart_moves_the_deadline)
{
    struct eddy_loop *loop = new_loop();
    eddy_timer_init(loop, &timers[0]);
    uint64_t t0 = mono_ns();
    eddy_loop_update_time(loop);
    cr_assert_eq(eddy_timer_start(&timers[0], log_cb, 5, 0), 0);
    cr_assert_eq(eddy_timer_start(&timers[0], log_cb, 25, 0), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_eq(nfired, 1, "a restarted timer fired %d times", nfired);
    cr_assert_geq(fired_at[0] - t0, 25 * MS);
    eddy_loop_free(loop);
}

Test(timer, stopped_timer_does_not_fire)
{
    struct eddy_loop *loop = new_loop();
    eddy_timer_init(loop, &timers[0]);
    eddy_timer_stop(&timers[0]); /* not started: a no-op */
    cr_assert_eq(eddy_timer_start(&timers[0], log_cb, 0, 0), 0);
    eddy_timer_stop(&timers[0]);
    eddy_timer_stop(&timers[0]);
    cr_assert_not(eddy_timer_active(&timers[0]));
    /* Nothing active: DEFAULT returns at once. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(nfired, 0);
    eddy_loop_free(loop);
}

Test(timer, huge_timeout_does_not_wrap_into_the_past)
{
    struct eddy_loop *loop = new_loop();
    eddy_timer_init(loop, &timers[0]);
    eddy_timer_init(loop, &timers[1]);
    cr_assert_eq(eddy_timer_start(&timers[0], log_cb, UINT64_MAX, 0), 0);
    cr_assert_eq(eddy_timer_start(&timers[1], log_cb, UINT64_MAX / 1000, UINT64_MAX), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(nfired, 0);
    cr_assert(eddy_timer_active(&timers[0]));
    /* A short timer behind them still fires, after its own wait. */
    eddy_timer_init(loop, &timers[2]);
    cr_assert_eq(eddy_timer_start(&timers[2], log_cb, 1, 0), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(nfired, 1);
    cr_assert_eq(fired[0], 2);
    eddy_timer_stop(&timers[0]);
    eddy_timer_stop(&timers[1]);
    eddy_loop_free(loop);
}

/* The wait is rounded up to whole milliseconds: the timer never fires early
 * and one blocking iteration is enough to reach it (a wait rounded down
 * would wake before the deadline and return from ONCE with nothing run). */
static void assert_one_iteration_suffices(uint64_t ms)
{
    struct eddy_loop *loop = new_loop();
    eddy_timer_init(loop, &timers[0]);
    nfired = 0;
    uint64_t t0 = mono_ns();
    eddy_loop_update_time(loop);
    cr_assert_eq(eddy_timer_start(&timers[0], log_cb, ms, 0), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(nfired, 1, "a %lu ms timer did not fire in one ONCE iteration", (unsigned long)ms);
    cr_assert_geq(fired_at[0] - t0, ms * MS, "a %lu ms timer fired after %lu ns", (unsigned long)ms,
                  (unsigned long)(fired_at[0] - t0));
    eddy_loop_free(loop);
}

Test(timer, one_once_iteration_reaches_the_deadline)
{
    static const uint64_t ms[] = {1, 2, 3, 7, 20};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        assert_one_iteration_suffices(ms[i]);
}

/* Part-way through a millisecond: the cached clock is not on a millisecond
 * boundary, which is where a rounded-down wait would wake too early. */
Test(timer, one_once_iteration_from_mid_millisecond)
{
    for (int i = 0; i < 10; i++) {
        uint64_t until = mono_ns() + (uint64_t)(i + 1) * MS / 11;
        while (mono_ns() < until) {
        }
        assert_one_iteration_suffices(2);
    }
}

Test(timer, default_waits_at_least_the_timeout)
{
    struct eddy_loop *loop = new_loop();
    eddy_timer_init(loop, &timers[0]);
    uint64_t t0 = mono_ns();
    eddy_loop_update_time(loop);
    cr_assert_eq(eddy_timer_start(&timers[0], log_cb, 5, 0), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    uint64_t t1 = mono_ns();
    cr_assert_eq(nfired, 1);
    cr_assert_geq(fired_at[0] - t0, 5 * MS, "fired after %lu ns",
                  (unsigned long)(fired_at[0] - t0));
    cr_assert_geq(t1 - t0, 5 * MS);
    eddy_loop_free(loop);
}

/* Timers started from an io callback or a timer callback are measured from
 * the loop's cached time; a long callback before them does not make them
 * fire early relative to the clock they were started at. */
static uint64_t second_started_at;

static void start_second_cb(struct eddy_timer *t)
{
    log_cb(t);
    second_started_at = mono_ns();
    eddy_loop_update_time(t->loop);
    cr_assert_eq(eddy_timer_start(&timers[1], log_cb, 10, 0), 0);
}

Test(timer, timer_started_from_a_timer_callback)
{
    struct eddy_loop *loop = new_loop();
    eddy_timer_init(loop, &timers[0]);
    eddy_timer_init(loop, &timers[1]);
    cr_assert_eq(eddy_timer_start(&timers[0], start_second_cb, 3, 0), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_eq(nfired, 2);
    cr_assert_eq(fired[0], 0);
    cr_assert_eq(fired[1], 1);
    cr_assert_geq(fired_at[1] - second_started_at, 10 * MS, "second timer came after %lu ns",
                  (unsigned long)(fired_at[1] - second_started_at));
    eddy_loop_free(loop);
}
