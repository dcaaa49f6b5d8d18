/* Unit tests for signal watchers and cross-thread wake-ups (src/signal.c):
 * signals delivered through the loop, the signal mask left as it was found,
 * eddy_async_send() and eddy_loop_stop() from other threads. Threads hand
 * over with semaphores and joins, never with sleeps. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "eddy/loop.h"

TestSuite(signal, .timeout = 10);
TestSuite(async, .timeout = 10);

static struct eddy_loop *new_loop(void)
{
    struct eddy_loop *loop = NULL;
    int rc = eddy_loop_new(&loop);
    cr_assert_eq(rc, 0, "eddy_loop_new: %s", eddy_strerror(rc));
    return loop;
}

static bool is_blocked(int signum)
{
    sigset_t cur;
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, NULL, &cur), 0);
    return sigismember(&cur, signum) == 1;
}

/* A guard that ends a DEFAULT run which would otherwise hang, and says so. */
static bool guard_fired;

static void guard_cb(struct eddy_timer *t)
{
    guard_fired = true;
    eddy_loop_stop(t->loop);
}

/* ---- signals -------------------------------------------------------------- */

struct sigwatch {
    struct eddy_signal sig;
    int calls;
    int last;
    int order;
};

static int call_seq;

static void sig_cb(struct eddy_signal *sig, int signum)
{
    struct sigwatch *w = (struct sigwatch *)sig;
    w->calls++;
    w->last = signum;
    w->order = ++call_seq;
}

Test(signal, raise_is_delivered_on_the_loop)
{
    struct eddy_loop *loop = new_loop();
    struct sigwatch w = {0};
    eddy_signal_init(loop, &w.sig);
    cr_assert_not(is_blocked(SIGUSR1));
    cr_assert_eq(eddy_signal_start(&w.sig, sig_cb, SIGUSR1), 0);
    cr_assert_eq(w.sig.signum, SIGUSR1);
    /* Blocked now, so raise() queues it for the signalfd instead of
     * killing the process, and nothing runs inside raise(). */
    cr_assert(is_blocked(SIGUSR1));
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert_eq(w.calls, 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(w.calls, 1);
    cr_assert_eq(w.last, SIGUSR1);
    /* Consumed: another run sees nothing. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(w.calls, 1);
    eddy_signal_stop(&w.sig);
    cr_assert_eq(w.sig.signum, 0);
    eddy_loop_free(loop);
}

Test(signal, every_watcher_of_the_signal_runs)
{
    struct eddy_loop *loop = new_loop();
    struct sigwatch a = {0}, b = {0}, other = {0};
    eddy_signal_init(loop, &a.sig);
    eddy_signal_init(loop, &b.sig);
    eddy_signal_init(loop, &other.sig);
    cr_assert_eq(eddy_signal_start(&a.sig, sig_cb, SIGUSR1), 0);
    cr_assert_eq(eddy_signal_start(&b.sig, sig_cb, SIGUSR1), 0);
    cr_assert_eq(eddy_signal_start(&other.sig, sig_cb, SIGUSR2), 0);
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(b.calls, 1);
    cr_assert_eq(other.calls, 0);
    cr_assert_eq(raise(SIGUSR2), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(b.calls, 1);
    cr_assert_eq(other.calls, 1);
    cr_assert_eq(other.last, SIGUSR2);
    eddy_signal_stop(&a.sig);
    eddy_signal_stop(&b.sig);
    eddy_signal_stop(&other.sig);
    eddy_loop_free(loop);
}

Test(signal, stop_then_start_again)
{
    struct eddy_loop *loop = new_loop();
    struct sigwatch w = {0};
    eddy_signal_init(loop, &w.sig);
    for (int round = 1; round <= 3; round++) {
        cr_assert_eq(eddy_signal_start(&w.sig, sig_cb, SIGUSR1), 0);
        cr_assert_eq(raise(SIGUSR1), 0);
        cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
        cr_assert_eq(w.calls, round);
        eddy_signal_stop(&w.sig);
        cr_assert_not(is_blocked(SIGUSR1));
    }
    /* And with another signal on the same watcher. */
    cr_assert_eq(eddy_signal_start(&w.sig, sig_cb, SIGUSR2), 0);
    cr_assert_eq(raise(SIGUSR2), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(w.calls, 4);
    cr_assert_eq(w.last, SIGUSR2);
    eddy_signal_stop(&w.sig);
    eddy_loop_free(loop);
}

Test(signal, unblocked_after_the_last_watcher_stops)
{
    struct eddy_loop *loop = new_loop();
    struct sigwatch a = {0}, b = {0};
    eddy_signal_init(loop, &a.sig);
    eddy_signal_init(loop, &b.sig);
    cr_assert_not(is_blocked(SIGUSR1));
    cr_assert_eq(eddy_signal_start(&a.sig, sig_cb, SIGUSR1), 0);
    cr_assert_eq(eddy_signal_start(&b.sig, sig_cb, SIGUSR1), 0);
    cr_assert(is_blocked(SIGUSR1));
    eddy_signal_stop(&a.sig);
    cr_assert(is_blocked(SIGUSR1), "unblocked while a watcher remains");
    /* The remaining watcher still works. */
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(a.calls, 0);
    cr_assert_eq(b.calls, 1);
    eddy_signal_stop(&b.sig);
    cr_assert_not(is_blocked(SIGUSR1), "still blocked after the last watcher stopped");
    /* Nothing is active any more: DEFAULT returns at once. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    eddy_loop_free(loop);
}

Test(signal, a_signal_blocked_before_stays_blocked)
{
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, SIGUSR2);
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, &one, NULL), 0);
    struct eddy_loop *loop = new_loop();
    struct sigwatch w = {0};
    eddy_signal_init(loop, &w.sig);
    cr_assert_eq(eddy_signal_start(&w.sig, sig_cb, SIGUSR2), 0);
    eddy_signal_stop(&w.sig);
    cr_assert(is_blocked(SIGUSR2), "eddy unblocked a signal it had not blocked");
    eddy_loop_free(loop);
}

Test(signal, loop_free_stops_watchers_and_unblocks)
{
    struct eddy_loop *loop = new_loop();
    struct sigwatch w = {0};
    eddy_signal_init(loop, &w.sig);
    cr_assert_eq(eddy_signal_start(&w.sig, sig_cb, SIGUSR1), 0);
    eddy_loop_free(loop);
    cr_assert_not(is_blocked(SIGUSR1));
}

Test(signal, invalid_and_busy_starts_are_refused)
{
    struct eddy_loop *loop = new_loop();
    struct sigwatch w = {0};
    eddy_signal_init(loop, &w.sig);
    cr_assert_eq(eddy_signal_start(&w.sig, sig_cb, 0), -EINVAL);
    cr_assert_eq(eddy_signal_start(&w.sig, sig_cb, -1), -EINVAL);
    cr_assert_eq(eddy_signal_start(&w.sig, sig_cb, SIGKILL), -EINVAL);
    cr_assert_eq(eddy_signal_start(&w.sig, sig_cb, SIGSTOP), -EINVAL);
    cr_assert_eq(eddy_signal_start(&w.sig, sig_cb, 65), -EINVAL);
    cr_assert_eq(w.sig.signum, 0);
    /* None of them counts as active. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);

    cr_assert_eq(eddy_signal_start(&w.sig, sig_cb, SIGUSR1), 0);
    cr_assert_eq(eddy_signal_start(&w.sig, sig_cb, SIGUSR2), -EBUSY);
    cr_assert_eq(w.sig.signum, SIGUSR1);
    cr_assert_not(is_blocked(SIGUSR2));
    eddy_signal_stop(&w.sig);
    eddy_signal_stop(&w.sig); /* twice: a no-op */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_eq(w.calls, 0);
    eddy_loop_free(loop);
}

static void stop_loop_sig_cb(struct eddy_signal *sig, int signum)
{
    sig_cb(sig, signum);
    eddy_loop_stop(sig->loop);
}

/* Raises SIGUSR1 from a timer callback, on the loop. */
static void raise_cb(struct eddy_timer *t)
{
    (void)t;
    cr_assert_eq(raise(SIGUSR1), 0);
}

Test(signal, default_waits_for_the_signal_and_stops_on_request)
{
    struct eddy_loop *loop = new_loop();
    struct sigwatch w = {0};
    eddy_signal_init(loop, &w.sig);
    cr_assert_eq(eddy_signal_start(&w.sig, stop_loop_sig_cb, SIGUSR1), 0);
    struct eddy_timer t;
    eddy_timer_init(loop, &t);
    cr_assert_eq(eddy_timer_start(&t, raise_cb, 5, 0), 0);
    /* Once the timer has run, only the signal watcher keeps DEFAULT going
     * (were it not counted, the run would end with no call); its
     * eddy_loop_stop() then ends the run although the watcher is still
     * active. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_eq(w.calls, 1);
    cr_assert_eq(w.sig.signum, SIGUSR1);
    eddy_signal_stop(&w.sig);
    eddy_loop_free(loop);
}

/* One delivery runs each watcher once, even when a callback stops the
 * other watcher, or starts a new one (which waits for the next delivery). */
static struct sigwatch pair[2];
static struct sigwatch late;

static void stop_other_sig_cb(struct eddy_signal *sig, int signum)
{
    sig_cb(sig, signum);
    int i = sig == &pair[0].sig ? 0 : 1;
    eddy_signal_stop(&pair[1 - i].sig);
    if (!late.sig.signum)
        cr_assert_eq(eddy_signal_start(&late.sig, sig_cb, SIGUSR1), 0);
}

Test(signal, watchers_changed_during_delivery)
{
    struct eddy_loop *loop = new_loop();
    eddy_signal_init(loop, &pair[0].sig);
    eddy_signal_init(loop, &pair[1].sig);
    eddy_signal_init(loop, &late.sig);
    cr_assert_eq(eddy_signal_start(&pair[0].sig, stop_other_sig_cb, SIGUSR1), 0);
    cr_assert_eq(eddy_signal_start(&pair[1].sig, stop_other_sig_cb, SIGUSR1), 0);
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(pair[0].calls + pair[1].calls, 1, "a watcher stopped during delivery ran");
    cr_assert_eq(late.calls, 0, "a watcher started during delivery got it");
    cr_assert(is_blocked(SIGUSR1));

    cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(late.calls, 1);
    int survivor = pair[0].sig.signum ? 0 : 1;
    cr_assert_eq(pair[survivor].calls, 2);
    eddy_signal_stop(&pair[survivor].sig);
    eddy_signal_stop(&late.sig);
    cr_assert_not(is_blocked(SIGUSR1));
    eddy_loop_free(loop);
}

Test(signal, two_loops_watch_different_signals)
{
    struct eddy_loop *l1 = new_loop(), *l2 = new_loop();
    struct sigwatch a = {0}, b = {0};
    eddy_signal_init(l1, &a.sig);
    eddy_signal_init(l2, &b.sig);
    cr_assert_eq(eddy_signal_start(&a.sig, sig_cb, SIGUSR1), 0);
    cr_assert_eq(eddy_signal_start(&b.sig, sig_cb, SIGUSR2), 0);
    cr_assert_eq(raise(SIGUSR2), 0);
    cr_assert_eq(eddy_loop_run(l2, EDDY_RUN_ONCE), 0);
    cr_assert_eq(eddy_loop_run(l1, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(a.calls, 0);
    cr_assert_eq(b.calls, 1);
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert_eq(eddy_loop_run(l1, EDDY_RUN_ONCE), 0);
    cr_assert_eq(a.calls, 1);
    eddy_signal_stop(&a.sig);
    eddy_signal_stop(&b.sig);
    eddy_loop_free(l1);
    eddy_loop_free(l2);
}

/* ---- async: wake-ups from other threads ------------------------------------- */

struct asyncw {
    struct eddy_async a;
    int calls;
};

static void async_cb(struct eddy_async *a)
{
    ((struct asyncw *)a)->calls++;
}

struct sender {
    pthread_t tid;
    struct eddy_async *a;
    int sends;
};

static void *send_thread(void *arg)
{
    struct sender *s = arg;
    for (int i = 0; i < s->sends; i++)
        eddy_async_send(s->a);
    return NULL;
}

Test(async, several_sends_run_the_callback_once)
{
    struct eddy_loop *loop = new_loop();
    struct asyncw w = {0};
    eddy_async_start(loop, &w.a, async_cb);
    struct sender s = {.a = &w.a, .sends = 100};
    cr_assert_eq(pthread_create(&s.tid, NULL, send_thread, &s), 0);
    cr_assert_eq(pthread_join(s.tid, NULL), 0);
    cr_assert_eq(w.calls, 0, "ran on the sending thread");
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(w.calls, 1, "100 sends ran the callback %d times", w.calls);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(w.calls, 1);
    /* A later send runs it again. */
    eddy_async_send(&w.a);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(w.calls, 2);
    eddy_async_stop(&w.a);
    eddy_loop_free(loop);
}

Test(async, many_threads_many_sends)
{
    struct eddy_loop *loop = new_loop();
    struct asyncw w = {0};
    eddy_async_start(loop, &w.a, async_cb);
    enum { THREADS = 4, SENDS = 10000 };
    struct sender s[THREADS];
    for (int i = 0; i < THREADS; i++) {
        s[i] = (struct sender){.a = &w.a, .sends = SENDS};
        cr_assert_eq(pthread_create(&s[i].tid, NULL, send_thread, &s[i]), 0);
    }
    /* Run the loop while they send: every callback answers at least one
     * send, and no send is lost (checked after the join). */
    int runs = 0;
    while (w.calls == 0 && runs++ < 1000)
        cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_join(s[i].tid, NULL), 0);
    cr_assert_geq(w.calls, 1);
    cr_assert_leq(w.calls, THREADS * SENDS);
    int before = w.calls;
    eddy_async_send(&w.a);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_geq(w.calls, before + 1);
    cr_assert_leq(w.calls, before + 2);
    /* Quiet now. */
    int quiet = w.calls;
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(w.calls, quiet);
    eddy_async_stop(&w.a);
    eddy_loop_free(loop);
}

static void async_stop_cb(struct eddy_async *a)
{
    async_cb(a);
    eddy_async_stop(a);
    eddy_loop_stop(a->loop);
}

struct waker {
    pthread_t tid;
    sem_t go;
    struct eddy_async *a;
    struct eddy_loop *loop;
};

static void *wake_later_thread(void *arg)
{
    struct waker *w = arg;
    while (sem_wait(&w->go) < 0 && errno == EINTR) {
    }
    if (w->a)
        eddy_async_send(w->a);
    else
        eddy_loop_stop(w->loop);
    return NULL;
}

/* Posts the semaphore from the loop: the other thread acts only once the
 * loop is inside eddy_loop_run. */
static void post_cb(struct eddy_timer *t)
{
    sem_post(t->data);
}

Test(async, send_wakes_a_blocked_loop)
{
    struct eddy_loop *loop = new_loop();
    struct asyncw w = {0};
    eddy_async_start(loop, &w.a, async_stop_cb);
    struct waker k = {.a = &w.a, .loop = loop};
    cr_assert_eq(sem_init(&k.go, 0, 0), 0);
    struct eddy_timer post, guard;
    eddy_timer_init(loop, &post);
    eddy_timer_init(loop, &guard);
    post.data = &k.go;
    cr_assert_eq(eddy_timer_start(&post, post_cb, 0, 0), 0);
    cr_assert_eq(eddy_timer_start(&guard, guard_cb, 5000, 0), 0);
    cr_assert_eq(pthread_create(&k.tid, NULL, wake_later_thread, &k), 0);
    /* The loop blocks with the async handle (and the guard) active; the
     * send must wake it, and the callback stops the loop. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_not(guard_fired, "the send did not wake the loop");
    cr_assert_eq(w.calls, 1);
    cr_assert_eq(pthread_join(k.tid, NULL), 0);
    eddy_timer_stop(&guard);
    /* The handle stopped itself: nothing keeps DEFAULT running now. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    sem_destroy(&k.go);
    eddy_loop_free(loop);
}

static void never_cb(struct eddy_io *io, unsigned events)
{
    (void)io;
    cr_assert_fail("an io watcher on an empty pipe fired (events 0x%x)", events);
}

Test(async, loop_stop_from_another_thread)
{
    struct eddy_loop *loop = new_loop();
    /* An io watcher that never fires keeps DEFAULT running. */
    int p[2];
    cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    struct eddy_io io;
    eddy_io_init(loop, &io, p[0], never_cb);
    cr_assert_eq(eddy_io_start(&io, EDDY_READ), 0);
    struct waker k = {.a = NULL, .loop = loop};
    cr_assert_eq(sem_init(&k.go, 0, 0), 0);
    struct eddy_timer post, guard;
    eddy_timer_init(loop, &post);
    eddy_timer_init(loop, &guard);
    post.data = &k.go;
    cr_assert_eq(eddy_timer_start(&post, post_cb, 0, 0), 0);
    cr_assert_eq(eddy_timer_start(&guard, guard_cb, 5000, 0), 0);
    cr_assert_eq(pthread_create(&k.tid, NULL, wake_later_thread, &k), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_not(guard_fired, "eddy_loop_stop() from another thread did not stop the loop");
    cr_assert(eddy_io_active(&io));
    cr_assert_eq(pthread_join(k.tid, NULL), 0);
    eddy_timer_stop(&guard);
    eddy_io_stop(&io);
    sem_destroy(&k.go);
    eddy_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

Test(async, stop_drops_a_pending_send)
{
    struct eddy_loop *loop = new_loop();
    struct asyncw w = {0};
    eddy_async_start(loop, &w.a, async_cb);
    eddy_async_send(&w.a);
    eddy_async_stop(&w.a);
    eddy_async_stop(&w.a); /* twice: a no-op */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(w.calls, 0);
    /* Nothing active any more. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    eddy_loop_free(loop);
}

Test(async, only_the_handle_sent_to_runs)
{
    struct eddy_loop *loop = new_loop();
    struct asyncw a = {0}, b = {0};
    eddy_async_start(loop, &a.a, async_cb);
    eddy_async_start(loop, &b.a, async_cb);
    eddy_async_send(&b.a);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(a.calls, 0);
    cr_assert_eq(b.calls, 1);
    eddy_async_send(&a.a);
    eddy_async_send(&b.a);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(b.calls, 2);
    eddy_async_stop(&a.a);
    eddy_async_stop(&b.a);
    eddy_loop_free(loop);
}

static struct asyncw apair[2];

static void stop_other_async_cb(struct eddy_async *a)
{
    int i = a == &apair[0].a ? 0 : 1;
    apair[i].calls++;
    eddy_async_stop(&apair[1 - i].a);
}

Test(async, handle_stopped_by_another_callback_does_not_run)
{
    struct eddy_loop *loop = new_loop();
    eddy_async_start(loop, &apair[0].a, stop_other_async_cb);
    eddy_async_start(loop, &apair[1].a, stop_other_async_cb);
    eddy_async_send(&apair[0].a);
    eddy_async_send(&apair[1].a);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(apair[0].calls + apair[1].calls, 1);
    int survivor = apair[0].calls ? 0 : 1;
    eddy_async_stop(&apair[survivor].a);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    eddy_loop_free(loop);
}

/* async_send is async-signal-safe: it may be called from a signal handler
 * (here on the loop's own thread, interrupting nothing in particular). */
static struct asyncw from_handler;

static void handler(int signum)
{
    (void)signum;
    eddy_async_send(&from_handler.a);
}

Test(async, send_from_a_signal_handler)
{
    struct eddy_loop *loop = new_loop();
    eddy_async_start(loop, &from_handler.a, async_cb);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGUSR2, &sa, NULL), 0);
    cr_assert_eq(raise(SIGUSR2), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(from_handler.calls, 1);
    eddy_async_stop(&from_handler.a);
    eddy_loop_free(loop);
}
