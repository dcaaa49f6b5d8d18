/* Private declarations shared by the loop layer's files. Nothing here is
 * part of the public API; the net layer does not include it. */
#ifndef EDDY_INTERNAL_H
#define EDDY_INTERNAL_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "eddy/loop.h"

#define EDDY_HIDDEN __attribute__((visibility("hidden")))

struct eddy_loop {
    int epfd;
    int wakefd; /* eventfd: eddy_loop_stop() and eddy_async_send() */
    int sigfd;  /* signalfd, -1 until the first signal watcher starts */
    struct eddy_io wake_io;
    struct eddy_io sig_io;
    atomic_int stop;
    atomic_int woken; /* a wake-up is already pending in the eventfd */

    uint64_t now_ns;
    uint64_t now_ms;

    /* The current batch from epoll_wait. eddy_io_stop() clears the
     * data.ptr of entries after `cur` that belong to the stopped watcher. */
    struct epoll_event *events;
    int nevents;
    int cur;
    int cap;

    /* Active handles, and how many of them the loop owns itself. */
    size_t active;
    size_t internal;

    struct eddy_timer **heap;
    size_t heap_len;
    size_t heap_cap;
    uint64_t timer_seq;

    struct eddy_defer defers; /* sentinel of a circular list */

    struct eddy_signal *signals;
    sigset_t sigmask;        /* signals with a watcher */
    sigset_t blocked_by_us;  /* those eddy_signal_start() blocked */
    uint64_t sig_round;

    struct eddy_list asyncs;
    bool asyncs_changed;

    eddy_trace_cb trace;
    void *trace_arg;

    struct {
        const void *key;
        void *value;
        void (*release)(void *value);
    } attached[4];
};

/* timer.c */
EDDY_HIDDEN int eddy__timer_next_timeout(struct eddy_loop *loop);
EDDY_HIDDEN void eddy__timer_run(struct eddy_loop *loop);
EDDY_HIDDEN void eddy__timer_free_heap(struct eddy_loop *loop);

/* signal.c */
EDDY_HIDDEN int eddy__wake_init(struct eddy_loop *loop);
EDDY_HIDDEN void eddy__wake(struct eddy_loop *loop);
EDDY_HIDDEN void eddy__signal_cleanup(struct eddy_loop *loop);

/* loop.c */
EDDY_HIDDEN void eddy__now_update(struct eddy_loop *loop);

#endif
