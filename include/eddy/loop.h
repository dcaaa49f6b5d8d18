/* eddy: the event loop (reactor) layer.
 *
 * One struct eddy_loop owns one epoll instance. Everything it watches is a
 * caller-allocated handle (struct eddy_io, eddy_timer, eddy_signal,
 * eddy_async, eddy_defer) that the caller may embed in its own structs; each
 * has a `data` field that eddy never touches.
 *
 * Threading: a loop and its handles belong to the thread that runs the loop.
 * The only functions that may be called from another thread are
 * eddy_async_send() and eddy_loop_stop().
 *
 * Errors: functions return 0 or a negative errno value; eddy_strerror() turns
 * it into text. A function that fails never calls the callback it was given.
 * The library never prints, never exits and never changes signal
 * dispositions.
 */
#ifndef EDDY_LOOP_H
#define EDDY_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "eddy/list.h"

#if defined(__GNUC__)
#define EDDY_API __attribute__((visibility("default")))
#else
#define EDDY_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct eddy_loop;

/* Interest flags for eddy_io_start(), and event flags given to callbacks.
 * EDDY_EDGE asks for edge-triggered notification (EPOLLET); without it the
 * watcher is level-triggered. EDDY_HUP, EDDY_RDHUP and EDDY_ERR are only
 * reported, never requested: EPOLLRDHUP is requested together with
 * EDDY_READ. */
enum {
    EDDY_READ = 1u << 0,  /* EPOLLIN: bytes (or EOF) can be read */
    EDDY_WRITE = 1u << 1, /* EPOLLOUT: send buffer has room */
    EDDY_EDGE = 1u << 2,  /* EPOLLET: report changes only */
    EDDY_RDHUP = 1u << 3, /* EPOLLRDHUP: peer shut down its write side */
    EDDY_HUP = 1u << 4,   /* EPOLLHUP: both directions are shut down */
    EDDY_ERR = 1u << 5,   /* EPOLLERR: a pending socket error */
};

/* Returns a static, human-readable text for a negative errno value as
 * returned by eddy functions (or for a positive one). Never NULL. */
EDDY_API const char *eddy_strerror(int err);

/* Writes the names of the EPOLL* bits of a raw epoll event mask into buf as
 * "EPOLLIN|EPOLLRDHUP" (unknown bits as hex). Always NUL-terminates when
 * size > 0. Returns buf. */
EDDY_API char *eddy_events_format(uint32_t epoll_events, char *buf, size_t size);

/* ---- the loop ---------------------------------------------------------- */

/* Creates a loop. On success stores it in *out and returns 0; otherwise
 * returns -errno (-ENOMEM, -EMFILE, ...). All its fds are close-on-exec. */
EDDY_API int eddy_loop_new(struct eddy_loop **out);

/* Frees a loop. Every handle must have been stopped or closed first, and the
 * loop must not be running. Pending deferred closes are completed (their
 * callbacks run) before the memory is released. */
EDDY_API void eddy_loop_free(struct eddy_loop *loop);

enum eddy_run_mode {
    EDDY_RUN_DEFAULT = 0, /* until eddy_loop_stop() or nothing is active */
    EDDY_RUN_ONCE = 1,    /* wait for events once, dispatch them, return */
    EDDY_RUN_NOWAIT = 2,  /* dispatch what is ready now, without waiting */
};

/* Runs the loop. One iteration: wait in epoll_wait (no longer than the next
 * timer, rounded up to a whole millisecond so the loop never spins before a
 * deadline; not at all when deferred work is queued), dispatch the batch of
 * events, run expired timers, then run deferred work (including the
 * completion of closes requested during the batch).
 * In EDDY_RUN_DEFAULT mode it returns when eddy_loop_stop() was called or
 * when no io watcher, timer, signal watcher, async handle or deferred work is
 * active. Returns 0, or -errno if epoll_wait failed with something other
 * than EINTR. */
EDDY_API int eddy_loop_run(struct eddy_loop *loop, enum eddy_run_mode mode);

/* Makes eddy_loop_run() return after the current iteration (or after the
 * first one, when the loop is not running yet). Safe to call from any
 * thread and from a signal watcher. */
EDDY_API void eddy_loop_stop(struct eddy_loop *loop);

/* The loop's cached monotonic clock in milliseconds, updated once per
 * iteration (after each epoll_wait). Cheap; use it for timestamps. Timers
 * count from it too: a loop that was created well before it first runs
 * (on another thread, say) should call eddy_loop_update_time() before
 * starting timers, or they fire early by the gap. */
EDDY_API uint64_t eddy_loop_now(const struct eddy_loop *loop);

/* Refreshes the cached clock now (useful after long computations). */
EDDY_API void eddy_loop_update_time(struct eddy_loop *loop);

/* Per-loop state of a layer built on the loop. The net layer keeps its
 * connection timer wheel, work queue and buffer pools here, so that a
 * connection does not have to carry them. `key` is any address the layer
 * owns; `release` (may be NULL) runs in eddy_loop_free(), after the last
 * deferred work. At most 4 keys per loop. Returns 0, -EEXIST (the key is
 * taken) or -ENOSPC. */
EDDY_API int eddy_loop_attach(struct eddy_loop *loop, const void *key, void *value,
                              void (*release)(void *value));

/* The value attached under key, or NULL. */
EDDY_API void *eddy_loop_attached(const struct eddy_loop *loop, const void *key);

/* A trace hook, called for every epoll event the loop receives, before it is
 * dispatched, with the fd and the raw epoll event mask. Programs use it to
 * show what epoll reports (see eddy_events_format()). NULL turns it off. */
typedef void (*eddy_trace_cb)(void *arg, int fd, uint32_t epoll_events);
EDDY_API void eddy_loop_set_trace(struct eddy_loop *loop, eddy_trace_cb cb, void *arg);

/* ---- io watchers ---------------------------------------------------------- */

struct eddy_io;
/* events: EDDY_READ / EDDY_WRITE that are ready, plus EDDY_RDHUP, EDDY_HUP,
 * EDDY_ERR when epoll reported them. Only directions the watcher currently
 * asks for are reported. */
typedef void (*eddy_io_cb)(struct eddy_io *io, unsigned events);

struct eddy_io {
    void *data;              /* for the caller */
    struct eddy_loop *loop;  /* read-only */
    eddy_io_cb cb;           /* read-only */
    int fd;                  /* read-only */
    uint8_t interest;        /* read-only: EDDY_READ|EDDY_WRITE|EDDY_EDGE */
    uint8_t registered;      /* private: what epoll currently has */
};

/* Prepares a watcher for fd. Does not touch epoll; never fails. */
EDDY_API void eddy_io_init(struct eddy_loop *loop, struct eddy_io *io, int fd, eddy_io_cb cb);

/* Sets the watcher's interest to `events` (EDDY_READ and/or EDDY_WRITE,
 * optionally EDDY_EDGE). Calls epoll_ctl only when the mask really changes;
 * events == 0 is the same as eddy_io_stop(). Returns 0 or -errno from
 * epoll_ctl (-EPERM for a regular file, -EBADF, -ENOMEM, -ENOSPC). */
EDDY_API int eddy_io_start(struct eddy_io *io, unsigned events);

/* Removes the watcher from epoll. From the moment it returns, its callback
 * is not called again, not even for events already fetched in the current
 * batch; the caller may then close the fd and free or re-use the struct.
 * Does not close the fd. Stopping a stopped watcher is a no-op. */
EDDY_API void eddy_io_stop(struct eddy_io *io);

/* Stops the watcher and closes its fd in one step, with the same guarantee
 * as eddy_io_stop() but without its epoll_ctl call: closing the last
 * descriptor of a file removes it from epoll by itself. Only for an fd that
 * is not duplicated elsewhere (dup, or fork without exec); otherwise use
 * eddy_io_stop() and close(). Sets io->fd to -1. Returns 0 or -errno from
 * close(). */
EDDY_API int eddy_io_close(struct eddy_io *io);

/* Non-zero when the watcher is registered with epoll. */
EDDY_API int eddy_io_active(const struct eddy_io *io);

/* ---- timers --------------------------------------------------------------- */

struct eddy_timer;
typedef void (*eddy_timer_cb)(struct eddy_timer *timer);

struct eddy_timer {
    void *data;             /* for the caller */
    struct eddy_loop *loop; /* read-only */
    eddy_timer_cb cb;       /* read-only */
    uint64_t due_ns;        /* private */
    uint64_t repeat_ms;     /* private */
    uint64_t seq;           /* private: orders timers with equal deadlines */
    size_t heap_index;      /* private: SIZE_MAX when not started */
};

EDDY_API void eddy_timer_init(struct eddy_loop *loop, struct eddy_timer *timer);

/* Starts (or restarts) the timer: cb fires after timeout_ms milliseconds,
 * measured from now, and then every repeat_ms milliseconds if repeat_ms > 0.
 * A repeating timer keeps its cadence (the next deadline is the previous
 * deadline plus repeat_ms, or now plus repeat_ms if the loop fell behind). Timers with the
 * same deadline fire in the order they were started. Returns 0 or -ENOMEM. */
EDDY_API int eddy_timer_start(struct eddy_timer *timer, eddy_timer_cb cb, uint64_t timeout_ms,
                              uint64_t repeat_ms);

/* Stops the timer; its callback will not run. No-op when not started. The
 * struct may be freed or re-used as soon as it returns. */
EDDY_API void eddy_timer_stop(struct eddy_timer *timer);

/* Non-zero when the timer is started. */
EDDY_API int eddy_timer_active(const struct eddy_timer *timer);

/* ---- deferred work ---------------------------------------------------------- */

struct eddy_defer;
typedef void (*eddy_defer_cb)(struct eddy_defer *defer);

/* Work that runs once, after the current batch of events and timers. The
 * loop does not block in epoll_wait while deferred work is queued. Work
 * queued from a deferred callback runs in the next iteration, so a callback
 * that re-queues itself cannot starve io. */
struct eddy_defer {
    void *data;                 /* for the caller */
    struct eddy_loop *loop;     /* read-only */
    eddy_defer_cb cb;           /* read-only */
    struct eddy_defer *next;    /* private: NULL when not queued */
    struct eddy_defer *prev;    /* private */
};

EDDY_API void eddy_defer_init(struct eddy_loop *loop, struct eddy_defer *defer);

/* Queues the work; cb will run once. Queuing queued work is a no-op (it
 * still runs once, with the newest cb). */
EDDY_API void eddy_defer_start(struct eddy_defer *defer, eddy_defer_cb cb);

/* Unqueues the work; cb will not run. The struct may then be freed. */
EDDY_API void eddy_defer_stop(struct eddy_defer *defer);

/* Non-zero when queued. */
EDDY_API int eddy_defer_active(const struct eddy_defer *defer);

/* ---- signals ------------------------------------------------------------------ */

struct eddy_signal;
typedef void (*eddy_signal_cb)(struct eddy_signal *sig, int signum);

/* Signals delivered on the loop through a signalfd. Starting a watcher
 * blocks the signal in the calling thread (signalfd only sees blocked
 * signals); block it in every thread (for example before creating threads)
 * so the kernel does not deliver it elsewhere. The disposition is left as it
 * is. Stopping the last watcher of a signal unblocks it again if
 * eddy_signal_start() was the one that blocked it. */
struct eddy_signal {
    void *data;                /* for the caller */
    struct eddy_loop *loop;    /* read-only */
    eddy_signal_cb cb;         /* read-only */
    int signum;                /* read-only; 0 when not started */
    struct eddy_signal *next;  /* private */
    uint64_t delivered;        /* private: dispatch round last delivered */
};

EDDY_API void eddy_signal_init(struct eddy_loop *loop, struct eddy_signal *sig);

/* Watches signum (1..64, not SIGKILL/SIGSTOP). Returns 0, -EINVAL, -EBUSY
 * if the watcher is already started, or -errno from signalfd. */
EDDY_API int eddy_signal_start(struct eddy_signal *sig, eddy_signal_cb cb, int signum);

EDDY_API void eddy_signal_stop(struct eddy_signal *sig);

/* ---- cross-thread wake-up ------------------------------------------------- */

struct eddy_async;
typedef void (*eddy_async_cb)(struct eddy_async *async);

/* An async handle lets another thread wake the loop: eddy_async_send() from
 * any thread makes cb run once on the loop's thread (several sends before
 * the loop gets to it run it once). Uses the loop's single eventfd. */
struct eddy_async {
    void *data;                /* for the caller */
    struct eddy_loop *loop;    /* read-only */
    eddy_async_cb cb;          /* read-only */
    int pending;               /* private, atomic */
    struct eddy_list link;     /* private: in the loop's list while started */
};

/* Registers the handle with its loop (loop thread only). */
EDDY_API void eddy_async_start(struct eddy_loop *loop, struct eddy_async *async, eddy_async_cb cb);

/* Thread-safe and async-signal-safe. */
EDDY_API void eddy_async_send(struct eddy_async *async);

/* Unregisters (loop thread only); a pending send is dropped. */
EDDY_API void eddy_async_stop(struct eddy_async *async);

#ifdef __cplusplus
}
#endif

#endif
