/* The event loop: one epoll instance, io watchers with a per-watcher trigger
 * mode, the dispatch of each batch of events, and deferred work. Timers live
 * in timer.c, signals and cross-thread wake-ups in signal.c. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* epoll_wait's batch starts at this many events and doubles, up to the
 * maximum, whenever a batch comes back full. */
#define EVENTS_MIN 64
#define EVENTS_MAX 4096

EDDY_API const char *eddy_strerror(int err)
{
    if (err < 0)
        err = -err;
    if (err == 0)
        return "Success";
    /* strerrordesc_np() returns a static string and is thread-safe, unlike
     * strerror(), whose unknown-error path writes a shared buffer. */
    const char *s = strerrordesc_np(err);
    return s ? s : "Unknown error";
}

EDDY_API char *eddy_events_format(uint32_t ev, char *buf, size_t size)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {
        {EPOLLIN, "EPOLLIN"},         {EPOLLPRI, "EPOLLPRI"},       {EPOLLOUT, "EPOLLOUT"},
        {EPOLLERR, "EPOLLERR"},       {EPOLLHUP, "EPOLLHUP"},       {EPOLLRDNORM, "EPOLLRDNORM"},
        {EPOLLRDBAND, "EPOLLRDBAND"}, {EPOLLWRNORM, "EPOLLWRNORM"}, {EPOLLWRBAND, "EPOLLWRBAND"},
        {EPOLLMSG, "EPOLLMSG"},       {EPOLLRDHUP, "EPOLLRDHUP"},   {EPOLLET, "EPOLLET"},
    };
    if (size == 0)
        return buf;
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(ev & names[i].bit))
            continue;
        ev &= ~names[i].bit;
        int n = snprintf(buf + used, size - used, "%s%s", used ? "|" : "", names[i].name);
        if (n < 0 || (size_t)n >= size - used)
            return buf;
        used += (size_t)n;
    }
    if (ev != 0 || used == 0)
        snprintf(buf + used, size - used, "%s0x%x", used ? "|" : "", (unsigned)ev);
    return buf;
}

void eddy__now_update(struct eddy_loop *loop)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    loop->now_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    loop->now_ms = loop->now_ns / 1000000u;
}

EDDY_API uint64_t eddy_loop_now(const struct eddy_loop *loop)
{
    return loop->now_ms;
}

EDDY_API void eddy_loop_update_time(struct eddy_loop *loop)
{
    eddy__now_update(loop);
}

EDDY_API void eddy_loop_set_trace(struct eddy_loop *loop, eddy_trace_cb cb, void *arg)
{
    loop->trace = cb;
    loop->trace_arg = arg;
}

EDDY_API int eddy_loop_new(struct eddy_loop **out)
{
    struct eddy_loop *loop = calloc(1, sizeof *loop);
    if (!loop)
        return -ENOMEM;
    loop->wakefd = -1;
    loop->sigfd = -1;
    loop->defers.next = loop->defers.prev = &loop->defers;
    eddy_list_init(&loop->asyncs);
    sigemptyset(&loop->sigmask);
    sigemptyset(&loop->blocked_by_us);
    loop->cap = EVENTS_MIN;
    loop->events = calloc((size_t)loop->cap, sizeof *loop->events);
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    int err = 0;
    if (!loop->events)
        err = -ENOMEM;
    else if (loop->epfd < 0)
        err = -errno;
    else
        err = eddy__wake_init(loop);
    if (err) {
        if (loop->epfd >= 0)
            close(loop->epfd);
        free(loop->events);
        free(loop);
        return err;
    }
    eddy__now_update(loop);
    *out = loop;
    return 0;
}

static void run_defers(struct eddy_loop *loop);

EDDY_API void eddy_loop_free(struct eddy_loop *loop)
{
    if (!loop)
        return;
    /* Closes requested last finish here, so their memory is released. */
    while (loop->defers.next != &loop->defers)
        run_defers(loop);
    for (size_t i = 0; i < sizeof loop->attached / sizeof loop->attached[0]; i++)
        if (loop->attached[i].key && loop->attached[i].release)
            loop->attached[i].release(loop->attached[i].value);
    eddy__signal_cleanup(loop);
    eddy_io_stop(&loop->wake_io);
    close(loop->wakefd);
    close(loop->epfd);
    eddy__timer_free_heap(loop);
    free(loop->events);
    free(loop);
}

EDDY_API int eddy_loop_attach(struct eddy_loop *loop, const void *key, void *value,
                              void (*release)(void *value))
{
    size_t n = sizeof loop->attached / sizeof loop->attached[0];
    for (size_t i = 0; i < n; i++)
        if (loop->attached[i].key == key)
            return -EEXIST;
    for (size_t i = 0; i < n; i++) {
        if (!loop->attached[i].key) {
            loop->attached[i].key = key;
            loop->attached[i].value = value;
            loop->attached[i].release = release;
            return 0;
        }
    }
    return -ENOSPC;
}

EDDY_API void *eddy_loop_attached(const struct eddy_loop *loop, const void *key)
{
    for (size_t i = 0; i < sizeof loop->attached / sizeof loop->attached[0]; i++)
        if (loop->attached[i].key == key)
            return loop->attached[i].value;
    return NULL;
}

EDDY_API void eddy_loop_stop(struct eddy_loop *loop)
{
    atomic_store(&loop->stop, 1);
    eddy__wake(loop);
}

/* ---- io watchers ---------------------------------------------------------- */

EDDY_API void eddy_io_init(struct eddy_loop *loop, struct eddy_io *io, int fd, eddy_io_cb cb)
{
    io->loop = loop;
    io->cb = cb;
    io->fd = fd;
    io->interest = 0;
    io->registered = 0;
}

EDDY_API int eddy_io_active(const struct eddy_io *io)
{
    return io->registered != 0;
}

EDDY_API int eddy_io_start(struct eddy_io *io, unsigned events)
{
    unsigned want = events & (EDDY_READ | EDDY_WRITE | EDDY_EDGE);
    if (!(want & (EDDY_READ | EDDY_WRITE))) {
        eddy_io_stop(io);
        return 0;
    }
    io->interest = want;
    if (io->registered == want)
        return 0;
    struct epoll_event ev = {.events = 0, .data.ptr = io};
    if (want & EDDY_READ)
        ev.events |= EPOLLIN | EPOLLRDHUP;
    if (want & EDDY_WRITE)
        ev.events |= EPOLLOUT;
    if (want & EDDY_EDGE)
        ev.events |= EPOLLET;
    int op = io->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(io->loop->epfd, op, io->fd, &ev) < 0) {
        int err = -errno;
        io->interest = io->registered;
        return err;
    }
    if (!io->registered)
        io->loop->active++;
    io->registered = want;
    return 0;
}

/* Forgets the watcher: the loop holds no reference to it afterwards. */
static void forget(struct eddy_io *io)
{
    struct eddy_loop *loop = io->loop;
    io->registered = 0;
    io->interest = 0;
    loop->active--;
    /* Events already fetched for this watcher must not be delivered: its fd
     * may be closed and re-used, or the struct freed, before we get there. */
    for (int i = loop->cur + 1; i < loop->nevents; i++)
        if (loop->events[i].data.ptr == io)
            loop->events[i].data.ptr = NULL;
}

EDDY_API void eddy_io_stop(struct eddy_io *io)
{
    if (!io->registered)
        return;
    /* The fd may already be closed (the kernel then removed it itself);
     * either way the watcher is gone, so the result does not matter. */
    (void)epoll_ctl(io->loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    forget(io);
}

EDDY_API int eddy_io_close(struct eddy_io *io)
{
    if (io->registered)
        forget(io);
    int rc = close(io->fd);
    io->fd = -1;
    return rc < 0 ? -errno : 0;
}

static unsigned deliverable(const struct eddy_io *io, uint32_t ev)
{
    unsigned mask = 0;
    if (ev & EPOLLIN)
        mask |= EDDY_READ;
    if (ev & EPOLLOUT)
        mask |= EDDY_WRITE;
    if (ev & EPOLLRDHUP)
        mask |= EDDY_RDHUP | EDDY_READ;
    if (ev & EPOLLHUP)
        mask |= EDDY_HUP | EDDY_READ | EDDY_WRITE;
    if (ev & EPOLLERR)
        mask |= EDDY_ERR | EDDY_READ | EDDY_WRITE;
    /* Only directions the watcher asks for now: a callback earlier in the
     * batch may have changed its interest. */
    unsigned dirs = mask & io->interest & (EDDY_READ | EDDY_WRITE);
    return dirs ? dirs | (mask & (EDDY_RDHUP | EDDY_HUP | EDDY_ERR)) : 0;
}

static void dispatch(struct eddy_loop *loop, int n)
{
    loop->nevents = n;
    for (loop->cur = 0; loop->cur < n; loop->cur++) {
        struct epoll_event *ev = &loop->events[loop->cur];
        struct eddy_io *io = ev->data.ptr;
        if (!io)
            continue;
        if (loop->trace && io != &loop->wake_io)
            loop->trace(loop->trace_arg, io->fd, ev->events);
        unsigned mask = deliverable(io, ev->events);
        if (mask)
            io->cb(io, mask);
    }
    loop->nevents = 0;
    loop->cur = 0;
}

/* ---- deferred work ---------------------------------------------------------- */

EDDY_API void eddy_defer_init(struct eddy_loop *loop, struct eddy_defer *d)
{
    d->loop = loop;
    d->cb = NULL;
    d->next = d->prev = NULL;
}

EDDY_API int eddy_defer_active(const struct eddy_defer *d)
{
    return d->next != NULL;
}

EDDY_API void eddy_defer_start(struct eddy_defer *d, eddy_defer_cb cb)
{
    d->cb = cb;
    if (d->next)
        return;
    struct eddy_defer *head = &d->loop->defers;
    d->prev = head->prev;
    d->next = head;
    head->prev->next = d;
    head->prev = d;
    d->loop->active++;
}

EDDY_API void eddy_defer_stop(struct eddy_defer *d)
{
    if (!d->next)
        return;
    d->prev->next = d->next;
    d->next->prev = d->prev;
    d->next = d->prev = NULL;
    d->loop->active--;
}

/* Runs the work queued so far. It is moved to a private list first, so work
 * queued by these callbacks waits for the next iteration, and work stopped
 * by them is unlinked from wherever it is. */
static void run_defers(struct eddy_loop *loop)
{
    struct eddy_defer *head = &loop->defers;
    if (head->next == head)
        return;
    struct eddy_defer batch;
    batch.next = head->next;
    batch.prev = head->prev;
    batch.next->prev = &batch;
    batch.prev->next = &batch;
    head->next = head->prev = head;
    while (batch.next != &batch) {
        struct eddy_defer *d = batch.next;
        eddy_defer_stop(d);
        d->cb(d);
    }
}

/* ---- running ---------------------------------------------------------------- */

static bool alive(const struct eddy_loop *loop)
{
    return loop->active > loop->internal;
}

static int wait_timeout(struct eddy_loop *loop, enum eddy_run_mode mode)
{
    if (mode == EDDY_RUN_NOWAIT || atomic_load(&loop->stop) || loop->defers.next != &loop->defers)
        return 0;
    return eddy__timer_next_timeout(loop);
}

EDDY_API int eddy_loop_run(struct eddy_loop *loop, enum eddy_run_mode mode)
{
    eddy__now_update(loop);
    for (;;) {
        if (mode == EDDY_RUN_DEFAULT && !alive(loop))
            return 0;
        int n = epoll_wait(loop->epfd, loop->events, loop->cap, wait_timeout(loop, mode));
        if (n < 0) {
            if (errno != EINTR)
                return -errno;
            n = 0;
        }
        eddy__now_update(loop);
        dispatch(loop, n);
        if (n == loop->cap && loop->cap < EVENTS_MAX) {
            struct epoll_event *bigger =
                realloc(loop->events, (size_t)loop->cap * 2 * sizeof *loop->events);
            if (bigger) {
                loop->events = bigger;
                loop->cap *= 2;
            }
        }
        eddy__timer_run(loop);
        run_defers(loop);
        /* The flag is cleared when it is obeyed, not when the loop starts,
         * so a stop from another thread that comes before the run is kept. */
        if (atomic_exchange(&loop->stop, 0) || mode != EDDY_RUN_DEFAULT)
            return 0;
    }
}
