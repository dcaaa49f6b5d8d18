/* Unit tests for the event loop (src/loop.c): io watchers and their trigger
 * modes, the run modes, stopping, the stale-event guarantee after a close,
 * deferred work, the trace hook and the small helpers. Every test drives the
 * loop itself; none sleeps. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "eddy/loop.h"

TestSuite(loop, .timeout = 10);

static struct eddy_loop *new_loop(void)
{
    struct eddy_loop *loop = NULL;
    int rc = eddy_loop_new(&loop);
    cr_assert_eq(rc, 0, "eddy_loop_new: %s", eddy_strerror(rc));
    cr_assert_not_null(loop);
    return loop;
}

static void make_pair(int sv[2])
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

static void make_pipe(int p[2])
{
    cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

static void put(int fd, const char *s)
{
    size_t n = strlen(s);
    cr_assert_eq(write(fd, s, n), (ssize_t)n);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A watcher that counts its calls and remembers the last event mask. */
struct counted {
    struct eddy_io io;
    int calls;
    unsigned last;
};

static void count_cb(struct eddy_io *io, unsigned events)
{
    struct counted *c = (struct counted *)io;
    c->calls++;
    c->last = events;
}

/* ---- basics ------------------------------------------------------------- */

Test(loop, default_returns_at_once_when_nothing_is_active)
{
    struct eddy_loop *loop = new_loop();
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    eddy_loop_free(loop);
}

static void read_and_stop_cb(struct eddy_io *io, unsigned events)
{
    struct counted *c = (struct counted *)io;
    char buf[64];
    c->calls++;
    c->last = events;
    cr_assert_gt(read(io->fd, buf, sizeof buf), 0);
    eddy_io_stop(io);
}

Test(loop, default_returns_when_the_last_watcher_stops)
{
    struct eddy_loop *loop = new_loop();
    int p[2];
    make_pipe(p);
    put(p[1], "x");
    struct counted w = {0};
    eddy_io_init(loop, &w.io, p[0], read_and_stop_cb);
    cr_assert_eq(eddy_io_start(&w.io, EDDY_READ), 0);
    cr_assert(eddy_io_active(&w.io));
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_eq(w.calls, 1);
    cr_assert_eq(w.last & (EDDY_READ | EDDY_WRITE), EDDY_READ);
    cr_assert_not(eddy_io_active(&w.io));
    eddy_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

Test(loop, nowait_does_not_block)
{
    struct eddy_loop *loop = new_loop();
    int p[2];
    make_pipe(p);
    struct counted w = {0};
    eddy_io_init(loop, &w.io, p[0], count_cb);
    cr_assert_eq(eddy_io_start(&w.io, EDDY_READ), 0);
    /* Nothing is ready: NOWAIT must come back anyway (the test's timeout
     * would catch a hang). */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(w.calls, 0);
    eddy_io_stop(&w.io);
    eddy_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

Test(loop, once_dispatches_one_batch_and_returns)
{
    struct eddy_loop *loop = new_loop();
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    put(a[1], "a");
    put(b[1], "b");
    struct counted wa = {0}, wb = {0};
    eddy_io_init(loop, &wa.io, a[0], count_cb);
    eddy_io_init(loop, &wb.io, b[0], count_cb);
    cr_assert_eq(eddy_io_start(&wa.io, EDDY_READ), 0);
    cr_assert_eq(eddy_io_start(&wb.io, EDDY_READ), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(wa.calls, 1);
    cr_assert_eq(wb.calls, 1);
    eddy_io_stop(&wa.io);
    eddy_io_stop(&wb.io);
    eddy_loop_free(loop);
    for (int i = 0; i < 2; i++) {
        close(a[i]);
        close(b[i]);
    }
}

Test(loop, more_ready_fds_than_one_batch_are_all_served)
{
    enum { N = 300 };
    struct eddy_loop *loop = new_loop();
    static struct counted w[N];
    static int p[N][2];
    for (int i = 0; i < N; i++) {
        make_pipe(p[i]);
        put(p[i][1], "x");
        eddy_io_init(loop, &w[i].io, p[i][0], read_and_stop_cb);
        cr_assert_eq(eddy_io_start(&w[i].io, EDDY_READ), 0);
    }
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(w[i].calls, 1, "watcher %d was called %d times", i, w[i].calls);
        close(p[i][0]);
        close(p[i][1]);
    }
    eddy_loop_free(loop);
}

/* ---- trigger modes -------------------------------------------------------- */

Test(loop, level_watcher_fires_while_data_remains)
{
    struct eddy_loop *loop = new_loop();
    int p[2];
    make_pipe(p);
    put(p[1], "abc");
    struct counted w = {0};
    eddy_io_init(loop, &w.io, p[0], count_cb);
    cr_assert_eq(eddy_io_start(&w.io, EDDY_READ), 0);
    for (int i = 1; i <= 3; i++) {
        cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
        cr_assert_eq(w.calls, i, "level watcher: %d calls after %d runs", w.calls, i);
        cr_assert(w.last & EDDY_READ);
    }
    char buf[8];
    cr_assert_eq(read(p[0], buf, sizeof buf), 3);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(w.calls, 3, "fired with nothing to read");
    eddy_io_stop(&w.io);
    eddy_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

Test(loop, edge_watcher_fires_once_per_new_data)
{
    struct eddy_loop *loop = new_loop();
    int p[2];
    make_pipe(p);
    put(p[1], "abc");
    struct counted w = {0};
    eddy_io_init(loop, &w.io, p[0], count_cb);
    cr_assert_eq(eddy_io_start(&w.io, EDDY_READ | EDDY_EDGE), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(w.calls, 1, "edge watcher fired %d times for one write", w.calls);
    cr_assert(w.last & EDDY_READ);

    /* New data is a new edge, even though the old bytes were never read. */
    put(p[1], "d");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(w.calls, 2);
    eddy_io_stop(&w.io);
    eddy_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

/* ---- interest masks ---------------------------------------------------------- */

Test(loop, only_requested_directions_are_reported)
{
    struct eddy_loop *loop = new_loop();
    int sv[2];
    make_pair(sv);
    put(sv[1], "x"); /* sv[0] is now both readable and writable */
    struct counted r = {0}, w = {0};
    int dupfd = dup(sv[0]);
    cr_assert_geq(dupfd, 0);
    eddy_io_init(loop, &r.io, sv[0], count_cb);
    eddy_io_init(loop, &w.io, dupfd, count_cb);
    cr_assert_eq(eddy_io_start(&r.io, EDDY_READ), 0);
    cr_assert_eq(eddy_io_start(&w.io, EDDY_WRITE), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.last, EDDY_READ);
    cr_assert_eq(w.calls, 1);
    cr_assert_eq(w.last, EDDY_WRITE);
    eddy_io_stop(&r.io);
    eddy_io_stop(&w.io);
    eddy_loop_free(loop);
    close(dupfd);
    close(sv[0]);
    close(sv[1]);
}

Test(loop, peer_shutdown_and_close_are_reported)
{
    struct eddy_loop *loop = new_loop();
    int sv[2];
    make_pair(sv);
    struct counted w = {0};
    eddy_io_init(loop, &w.io, sv[0], count_cb);
    cr_assert_eq(eddy_io_start(&w.io, EDDY_READ), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(w.calls, 0);

    cr_assert_eq(shutdown(sv[1], SHUT_WR), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(w.calls, 1);
    cr_assert(w.last & EDDY_READ);
    cr_assert(w.last & EDDY_RDHUP, "events 0x%x lack EDDY_RDHUP", w.last);
    cr_assert_not(w.last & EDDY_HUP);

    close(sv[1]);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(w.calls, 2);
    cr_assert(w.last & EDDY_HUP, "events 0x%x lack EDDY_HUP", w.last);
    cr_assert(w.last & EDDY_READ);
    eddy_io_stop(&w.io);
    eddy_loop_free(loop);
    close(sv[0]);
}

Test(loop, start_with_no_direction_stops)
{
    struct eddy_loop *loop = new_loop();
    int p[2];
    make_pipe(p);
    put(p[1], "x");
    struct counted w = {0};
    eddy_io_init(loop, &w.io, p[0], count_cb);
    cr_assert_eq(eddy_io_start(&w.io, EDDY_READ), 0);
    cr_assert_eq(eddy_io_start(&w.io, 0), 0);
    cr_assert_not(eddy_io_active(&w.io));
    /* Report-only flags do not make an interest either. */
    cr_assert_eq(eddy_io_start(&w.io, EDDY_RDHUP | EDDY_HUP | EDDY_ERR | EDDY_EDGE), 0);
    cr_assert_not(eddy_io_active(&w.io));
    /* Stopping a stopped watcher changes nothing; the loop has nothing to
     * do, so DEFAULT returns at once. */
    eddy_io_stop(&w.io);
    eddy_io_stop(&w.io);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_eq(w.calls, 0);
    eddy_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

Test(loop, failing_start_leaves_the_watcher_inactive)
{
    struct eddy_loop *loop = new_loop();
    /* epoll refuses regular files with EPERM. */
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    struct counted w = {0};
    eddy_io_init(loop, &w.io, fileno(f), count_cb);
    cr_assert_eq(eddy_io_start(&w.io, EDDY_READ), -EPERM);
    cr_assert_not(eddy_io_active(&w.io));

    struct counted bad = {0};
    eddy_io_init(loop, &bad.io, -1, count_cb);
    cr_assert_eq(eddy_io_start(&bad.io, EDDY_READ | EDDY_WRITE), -EBADF);
    cr_assert_not(eddy_io_active(&bad.io));

    /* Neither counts as active: DEFAULT returns at once. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_eq(w.calls + bad.calls, 0);
    eddy_loop_free(loop);
    fclose(f);
}

/* epoll_ctl is called only when the mask changes. Observable: once the fd is
 * closed (which removes it from epoll), a real epoll_ctl would fail with
 * EBADF; starting with the same mask succeeds because none is made, while a
 * different mask does reach the kernel and fails. */
Test(loop, same_mask_makes_no_epoll_ctl)
{
    struct eddy_loop *loop = new_loop();
    int p[2];
    make_pipe(p);
    struct counted w = {0};
    eddy_io_init(loop, &w.io, p[0], count_cb);
    cr_assert_eq(eddy_io_start(&w.io, EDDY_READ), 0);
    close(p[0]);
    cr_assert_eq(eddy_io_start(&w.io, EDDY_READ), 0);
    cr_assert_eq(eddy_io_start(&w.io, EDDY_READ | EDDY_WRITE), -EBADF);
    /* The failed change leaves the old interest in place. */
    cr_assert(eddy_io_active(&w.io));
    cr_assert_eq(w.io.interest, EDDY_READ);
    eddy_io_stop(&w.io);
    cr_assert_not(eddy_io_active(&w.io));
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    eddy_loop_free(loop);
    close(p[1]);
}

/* The same seen through edge triggering: EPOLL_CTL_MOD re-arms an edge
 * watcher whose fd is still ready, so a needless epoll_ctl would deliver the
 * old data again. */
Test(loop, same_mask_does_not_rearm_an_edge_watcher)
{
    struct eddy_loop *loop = new_loop();
    int sv[2];
    make_pair(sv);
    put(sv[1], "x");
    struct counted w = {0};
    eddy_io_init(loop, &w.io, sv[0], count_cb);
    cr_assert_eq(eddy_io_start(&w.io, EDDY_READ | EDDY_EDGE), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(w.calls, 1);

    cr_assert_eq(eddy_io_start(&w.io, EDDY_READ | EDDY_EDGE), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(w.calls, 1, "an unchanged mask re-armed the edge watcher");

    /* A real change does reach epoll, which reports the ready fd again. */
    cr_assert_eq(eddy_io_start(&w.io, EDDY_READ | EDDY_WRITE | EDDY_EDGE), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(w.calls, 2);
    cr_assert_eq(w.last & (EDDY_READ | EDDY_WRITE), EDDY_READ | EDDY_WRITE);
    eddy_io_stop(&w.io);
    eddy_loop_free(loop);
    close(sv[0]);
    close(sv[1]);
}

/* Two watchers, each readable and writable, in one batch; whichever runs
 * first drops EDDY_WRITE from the other, which must then see only
 * EDDY_READ. */
static struct {
    struct counted w[2];
    int order[2];
    int ran;
} narrow;

static void narrow_cb(struct eddy_io *io, unsigned events)
{
    int i = io == &narrow.w[0].io ? 0 : 1;
    narrow.w[i].calls++;
    narrow.w[i].last = events;
    narrow.order[narrow.ran++] = i;
    if (narrow.ran == 1)
        cr_assert_eq(eddy_io_start(&narrow.w[1 - i].io, EDDY_READ), 0);
}

Test(loop, interest_dropped_earlier_in_the_batch_is_masked)
{
    struct eddy_loop *loop = new_loop();
    int a[2], b[2];
    make_pair(a);
    make_pair(b);
    put(a[1], "a");
    put(b[1], "b");
    eddy_io_init(loop, &narrow.w[0].io, a[0], narrow_cb);
    eddy_io_init(loop, &narrow.w[1].io, b[0], narrow_cb);
    cr_assert_eq(eddy_io_start(&narrow.w[0].io, EDDY_READ | EDDY_WRITE), 0);
    cr_assert_eq(eddy_io_start(&narrow.w[1].io, EDDY_READ | EDDY_WRITE), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(narrow.ran, 2);
    int first = narrow.order[0], second = narrow.order[1];
    cr_assert_eq(narrow.w[first].last, EDDY_READ | EDDY_WRITE);
    cr_assert_eq(narrow.w[second].last, EDDY_READ, "got 0x%x after EDDY_WRITE was dropped",
                 narrow.w[second].last);
    eddy_io_stop(&narrow.w[0].io);
    eddy_io_stop(&narrow.w[1].io);
    eddy_loop_free(loop);
    for (int i = 0; i < 2; i++) {
        close(a[i]);
        close(b[i]);
    }
}

/* ---- the stale-event guarantee ------------------------------------------------ */

/* Two fds are ready in one batch. Whichever callback runs first stops the
 * other watcher, frees it, closes its fd, puts a new socket on the same fd
 * number and registers a new watcher for it. The old watcher must never
 * run (ASan would also see the use after free), and the new one must not
 * get the event fetched for the old fd. */
static struct {
    struct counted *w[2];
    int calls[2];
    struct counted *fresh;
    int fresh_peer;
    int reused_fd;
    bool same_struct;
    bool io_close; /* eddy_io_close() instead of eddy_io_stop() + close() */
} reuse;

static void fresh_cb(struct eddy_io *io, unsigned events)
{
    (void)events;
    struct counted *c = (struct counted *)io;
    c->calls++;
}

static void reuse_cb(struct eddy_io *io, unsigned events)
{
    (void)events;
    int i = io == &reuse.w[0]->io ? 0 : 1;
    reuse.calls[i]++;
    struct counted *other = reuse.w[1 - i];
    if (!other)
        return;
    int fd = other->io.fd;
    if (reuse.io_close) {
        cr_assert_eq(eddy_io_close(&other->io), 0);
        cr_assert_eq(other->io.fd, -1);
    } else {
        eddy_io_stop(&other->io);
        close(fd);
    }
    int sv[2];
    make_pair(sv);
    /* The lowest free number is usually the one just closed; if not, put
     * the new socket there by hand. */
    if (sv[0] != fd) {
        cr_assert_eq(dup3(sv[0], fd, O_CLOEXEC), fd);
        close(sv[0]);
    }
    reuse.fresh_peer = sv[1];
    reuse.reused_fd = fd;
    if (reuse.same_struct) {
        /* Re-use the very struct: the stale event carries its address. */
        reuse.fresh = other;
        reuse.fresh->calls = 0;
    } else {
        free(other);
        reuse.fresh = calloc(1, sizeof *reuse.fresh);
        cr_assert_not_null(reuse.fresh);
    }
    reuse.w[1 - i] = NULL;
    eddy_io_init(io->loop, &reuse.fresh->io, fd, fresh_cb);
    cr_assert_eq(eddy_io_start(&reuse.fresh->io, EDDY_READ), 0);
}

static void run_reuse_test(bool same_struct, bool io_close)
{
    struct eddy_loop *loop = new_loop();
    int a[2], b[2];
    make_pair(a);
    make_pair(b);
    put(a[1], "a");
    put(b[1], "b");
    reuse.same_struct = same_struct;
    reuse.io_close = io_close;
    int fds[2] = {a[0], b[0]};
    for (int i = 0; i < 2; i++) {
        reuse.w[i] = calloc(1, sizeof *reuse.w[i]);
        cr_assert_not_null(reuse.w[i]);
        eddy_io_init(loop, &reuse.w[i]->io, fds[i], reuse_cb);
        cr_assert_eq(eddy_io_start(&reuse.w[i]->io, EDDY_READ), 0);
    }
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(reuse.calls[0] + reuse.calls[1], 1, "the stopped watcher ran: calls %d and %d",
                 reuse.calls[0], reuse.calls[1]);
    cr_assert_not_null(reuse.fresh);
    cr_assert_eq(reuse.fresh->io.fd, reuse.reused_fd);
    cr_assert_eq(reuse.fresh->calls, 0, "the new watcher got the stale event of the old fd");

    /* The new fd has nothing to read: later runs must not call it either. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(reuse.fresh->calls, 0);
    /* But it is a working watcher. */
    put(reuse.fresh_peer, "new");
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(reuse.fresh->calls, 1);

    int survivor = reuse.w[0] ? 0 : 1;
    cr_assert_not_null(reuse.w[survivor]);
    cr_assert_null(reuse.w[1 - survivor]);
    eddy_io_stop(&reuse.w[survivor]->io);
    eddy_io_stop(&reuse.fresh->io);
    eddy_loop_free(loop);
    free(reuse.w[survivor]);
    free(reuse.fresh);
    /* The closed fd's number now belongs to the new socket. */
    for (int i = 0; i < 2; i++) {
        if (a[i] != reuse.reused_fd)
            close(a[i]);
        if (b[i] != reuse.reused_fd)
            close(b[i]);
    }
    close(reuse.reused_fd);
    close(reuse.fresh_peer);
}

Test(loop, stale_event_of_a_closed_and_reused_fd_is_dropped)
{
    run_reuse_test(false, false);
}

Test(loop, stale_event_is_dropped_when_the_struct_is_reused)
{
    run_reuse_test(true, false);
}

Test(loop, stale_event_is_dropped_after_io_close)
{
    run_reuse_test(false, true);
}

Test(loop, stale_event_is_dropped_after_io_close_and_struct_reuse)
{
    run_reuse_test(true, true);
}

Test(loop, io_close_stops_and_closes)
{
    struct eddy_loop *loop = new_loop();
    int p[2];
    make_pipe(p);
    put(p[1], "x");
    struct counted w = {0};
    eddy_io_init(loop, &w.io, p[0], count_cb);
    cr_assert_eq(eddy_io_start(&w.io, EDDY_READ), 0);
    cr_assert_eq(eddy_io_close(&w.io), 0);
    cr_assert_not(eddy_io_active(&w.io));
    cr_assert_eq(w.io.fd, -1);
    cr_assert_eq(fcntl(p[0], F_GETFD), -1, "the fd is still open");
    cr_assert_eq(errno, EBADF);
    /* Nothing is left registered or active. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_eq(w.calls, 0);

    /* Also for a watcher that was never started. */
    int q[2];
    make_pipe(q);
    struct counted idle = {0};
    eddy_io_init(loop, &idle.io, q[0], count_cb);
    cr_assert_eq(eddy_io_close(&idle.io), 0);
    cr_assert_eq(fcntl(q[0], F_GETFD), -1);
    eddy_loop_free(loop);
    close(p[1]);
    close(q[1]);
}

/* "From the moment it returns, its callback is not called again, not even
 * for events already fetched": also when it is started again at once. */
static struct {
    struct counted w[2];
    int ran;
} restart;

static void restart_cb(struct eddy_io *io, unsigned events)
{
    int i = io == &restart.w[0].io ? 0 : 1;
    restart.w[i].calls++;
    restart.w[i].last = events;
    if (restart.ran++ == 0) {
        struct eddy_io *other = &restart.w[1 - i].io;
        eddy_io_stop(other);
        cr_assert_eq(eddy_io_start(other, EDDY_READ), 0);
    }
}

Test(loop, stop_then_start_in_the_batch_drops_the_fetched_event)
{
    struct eddy_loop *loop = new_loop();
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    put(a[1], "a");
    put(b[1], "b");
    eddy_io_init(loop, &restart.w[0].io, a[0], restart_cb);
    eddy_io_init(loop, &restart.w[1].io, b[0], restart_cb);
    cr_assert_eq(eddy_io_start(&restart.w[0].io, EDDY_READ), 0);
    cr_assert_eq(eddy_io_start(&restart.w[1].io, EDDY_READ), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(restart.w[0].calls + restart.w[1].calls, 1,
                 "a watcher stopped and restarted got the event fetched before");
    /* Restarted, and its fd still readable: the next run reports it. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    int first = restart.w[0].calls ? 0 : 1;
    cr_assert_eq(restart.w[first].calls, 2);
    cr_assert_eq(restart.w[1 - first].calls, 1);
    eddy_io_stop(&restart.w[0].io);
    eddy_io_stop(&restart.w[1].io);
    eddy_loop_free(loop);
    for (int i = 0; i < 2; i++) {
        close(a[i]);
        close(b[i]);
    }
}

/* ---- stopping ----------------------------------------------------------------- */

static void stop_loop_cb(struct eddy_io *io, unsigned events)
{
    count_cb(io, events);
    eddy_loop_stop(io->loop);
}

Test(loop, stop_inside_a_callback_returns_after_the_iteration)
{
    struct eddy_loop *loop = new_loop();
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    put(a[1], "a");
    put(b[1], "b");
    struct counted wa = {0}, wb = {0};
    eddy_io_init(loop, &wa.io, a[0], stop_loop_cb);
    eddy_io_init(loop, &wb.io, b[0], stop_loop_cb);
    cr_assert_eq(eddy_io_start(&wa.io, EDDY_READ), 0);
    cr_assert_eq(eddy_io_start(&wb.io, EDDY_READ), 0);
    /* Both watchers stay active and ready, yet DEFAULT returns, after
     * finishing the batch. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_eq(wa.calls, 1);
    cr_assert_eq(wb.calls, 1);
    /* The stop applied to that run only. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_eq(wa.calls, 2);
    cr_assert_eq(wb.calls, 2);
    eddy_io_stop(&wa.io);
    eddy_io_stop(&wb.io);
    eddy_loop_free(loop);
    for (int i = 0; i < 2; i++) {
        close(a[i]);
        close(b[i]);
    }
}

/* ---- deferred work -------------------------------------------------------- */

static char order_log[64];

static void log_char(char c)
{
    size_t n = strlen(order_log);
    cr_assert_lt(n + 1, sizeof order_log);
    order_log[n] = c;
}

struct logged_io {
    struct eddy_io io;
    struct eddy_defer *defer;
};

static void log_defer_cb(struct eddy_defer *d)
{
    (void)d;
    log_char('D');
}

static void log_io_cb(struct eddy_io *io, unsigned events)
{
    (void)events;
    struct logged_io *l = (struct logged_io *)io;
    log_char('I');
    /* The work was queued in this batch but must wait for its end. */
    eddy_defer_start(l->defer, log_defer_cb);
    cr_assert(eddy_defer_active(l->defer));
    cr_assert_eq(strchr(order_log, 'D'), NULL);
}

static void log_timer_cb(struct eddy_timer *t)
{
    (void)t;
    log_char('T');
}

Test(loop, deferred_work_runs_after_the_batch_and_timers)
{
    struct eddy_loop *loop = new_loop();
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    put(a[1], "a");
    put(b[1], "b");
    struct eddy_defer d;
    eddy_defer_init(loop, &d);
    struct logged_io la = {.defer = &d}, lb = {.defer = &d};
    eddy_io_init(loop, &la.io, a[0], log_io_cb);
    eddy_io_init(loop, &lb.io, b[0], log_io_cb);
    cr_assert_eq(eddy_io_start(&la.io, EDDY_READ), 0);
    cr_assert_eq(eddy_io_start(&lb.io, EDDY_READ), 0);
    struct eddy_timer t;
    eddy_timer_init(loop, &t);
    cr_assert_eq(eddy_timer_start(&t, log_timer_cb, 0, 0), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    /* Both io callbacks, then the expired timer, then the work, once even
     * though it was queued twice. */
    cr_assert_str_eq(order_log, "IITD");
    cr_assert_not(eddy_defer_active(&d));
    eddy_io_stop(&la.io);
    eddy_io_stop(&lb.io);
    eddy_loop_free(loop);
    for (int i = 0; i < 2; i++) {
        close(a[i]);
        close(b[i]);
    }
}

static struct eddy_defer chain[2];
static int chain_runs[2];

static void chain_second(struct eddy_defer *d)
{
    (void)d;
    chain_runs[1]++;
}

static void chain_first(struct eddy_defer *d)
{
    (void)d;
    chain_runs[0]++;
    eddy_defer_start(&chain[1], chain_second);
}

Test(loop, work_queued_by_deferred_work_waits_for_the_next_iteration)
{
    struct eddy_loop *loop = new_loop();
    eddy_defer_init(loop, &chain[0]);
    eddy_defer_init(loop, &chain[1]);
    eddy_defer_start(&chain[0], chain_first);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(chain_runs[0], 1);
    cr_assert_eq(chain_runs[1], 0);
    cr_assert(eddy_defer_active(&chain[1]));
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(chain_runs[1], 1);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(chain_runs[0], 1);
    cr_assert_eq(chain_runs[1], 1);
    eddy_loop_free(loop);
}

static int self_runs;

static void self_requeue(struct eddy_defer *d)
{
    if (++self_runs < 1000)
        eddy_defer_start(d, self_requeue);
}

Test(loop, requeuing_work_does_not_starve_io)
{
    struct eddy_loop *loop = new_loop();
    struct eddy_defer d;
    eddy_defer_init(loop, &d);
    eddy_defer_start(&d, self_requeue);
    int p[2];
    make_pipe(p);
    struct counted w = {0};
    eddy_io_init(loop, &w.io, p[0], count_cb);
    cr_assert_eq(eddy_io_start(&w.io, EDDY_READ), 0);
    for (int i = 1; i <= 3; i++) {
        cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
        cr_assert_eq(self_runs, i, "work ran %d times in %d iterations", self_runs, i);
    }
    put(p[1], "x");
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(w.calls, 1);
    cr_assert_eq(self_runs, 4);
    eddy_defer_stop(&d);
    eddy_io_stop(&w.io);
    eddy_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

static int plain_runs;

static void plain_cb(struct eddy_defer *d)
{
    (void)d;
    plain_runs++;
}

static void other_cb(struct eddy_defer *d)
{
    (void)d;
    plain_runs += 100;
}

Test(loop, stopped_work_does_not_run)
{
    struct eddy_loop *loop = new_loop();
    struct eddy_defer d;
    eddy_defer_init(loop, &d);
    cr_assert_not(eddy_defer_active(&d));
    eddy_defer_start(&d, plain_cb);
    cr_assert(eddy_defer_active(&d));
    eddy_defer_stop(&d);
    cr_assert_not(eddy_defer_active(&d));
    eddy_defer_stop(&d);
    /* Nothing active: DEFAULT returns at once without running it. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(plain_runs, 0);
    eddy_loop_free(loop);
}

Test(loop, queuing_twice_runs_once_with_the_newest_callback)
{
    struct eddy_loop *loop = new_loop();
    struct eddy_defer d;
    eddy_defer_init(loop, &d);
    eddy_defer_start(&d, plain_cb);
    eddy_defer_start(&d, other_cb);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_eq(plain_runs, 100);
    eddy_loop_free(loop);
}

static struct eddy_defer pair_defer[2];
static int pair_runs[2];

static void pair_cb(struct eddy_defer *d)
{
    int i = d == &pair_defer[0] ? 0 : 1;
    pair_runs[i]++;
    eddy_defer_stop(&pair_defer[1 - i]);
}

Test(loop, work_stopped_by_earlier_work_in_the_batch_does_not_run)
{
    struct eddy_loop *loop = new_loop();
    eddy_defer_init(loop, &pair_defer[0]);
    eddy_defer_init(loop, &pair_defer[1]);
    eddy_defer_start(&pair_defer[0], pair_cb);
    eddy_defer_start(&pair_defer[1], pair_cb);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    cr_assert_eq(pair_runs[0], 1);
    cr_assert_eq(pair_runs[1], 0);
    cr_assert_not(eddy_defer_active(&pair_defer[1]));
    eddy_loop_free(loop);
}

Test(loop, queued_work_keeps_once_from_blocking)
{
    struct eddy_loop *loop = new_loop();
    int p[2];
    make_pipe(p);
    struct counted w = {0};
    eddy_io_init(loop, &w.io, p[0], count_cb);
    cr_assert_eq(eddy_io_start(&w.io, EDDY_READ), 0);
    struct eddy_defer d;
    eddy_defer_init(loop, &d);
    eddy_defer_start(&d, plain_cb);
    /* Nothing is ready; with work queued ONCE must not wait for io. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(plain_runs, 1);
    cr_assert_eq(w.calls, 0);
    eddy_io_stop(&w.io);
    eddy_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

Test(loop, loop_free_completes_queued_work)
{
    struct eddy_loop *loop = new_loop();
    struct eddy_defer d;
    eddy_defer_init(loop, &d);
    eddy_defer_start(&d, plain_cb);
    eddy_loop_free(loop);
    cr_assert_eq(plain_runs, 1);
}

/* ---- trace hook, clock and helpers ---------------------------------------------- */

static struct {
    int calls;
    int fd;
    uint32_t events;
    void *arg;
} trace;

static void trace_cb(void *arg, int fd, uint32_t events)
{
    trace.calls++;
    trace.fd = fd;
    trace.events = events;
    trace.arg = arg;
}

Test(loop, trace_hook_sees_each_event_but_not_the_loops_own)
{
    struct eddy_loop *loop = new_loop();
    int p[2];
    make_pipe(p);
    put(p[1], "x");
    struct counted w = {0};
    eddy_io_init(loop, &w.io, p[0], count_cb);
    cr_assert_eq(eddy_io_start(&w.io, EDDY_READ | EDDY_EDGE), 0);
    int token;
    eddy_loop_set_trace(loop, trace_cb, &token);
    /* A stop request makes the loop's own eventfd ready in the same batch;
     * the hook is only for the user's fds. */
    eddy_loop_stop(loop);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(w.calls, 1);
    cr_assert_eq(trace.calls, 1);
    cr_assert_eq(trace.fd, p[0]);
    cr_assert_eq(trace.arg, &token);
    cr_assert(trace.events & EPOLLIN);

    eddy_loop_set_trace(loop, NULL, NULL);
    put(p[1], "y");
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert_eq(w.calls, 2);
    cr_assert_eq(trace.calls, 1);
    eddy_io_stop(&w.io);
    eddy_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

Test(loop, cached_clock_follows_the_monotonic_clock)
{
    uint64_t before = mono_ms();
    struct eddy_loop *loop = new_loop();
    uint64_t after = mono_ms();
    uint64_t now = eddy_loop_now(loop);
    cr_assert(now >= before && now <= after, "now %lu not in [%lu, %lu]", (unsigned long)now,
              (unsigned long)before, (unsigned long)after);

    /* The cache does not move by itself ... */
    while (mono_ms() < after + 3) {
    }
    cr_assert_eq(eddy_loop_now(loop), now);
    /* ... until it is refreshed, or the loop iterates. */
    eddy_loop_update_time(loop);
    cr_assert_geq(eddy_loop_now(loop), after + 3);
    while (mono_ms() < after + 6) {
    }
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_geq(eddy_loop_now(loop), after + 6);
    eddy_loop_free(loop);
}

Test(loop, events_format)
{
    char buf[128];
    cr_assert_str_eq(eddy_events_format(EPOLLIN | EPOLLRDHUP, buf, sizeof buf),
                     "EPOLLIN|EPOLLRDHUP");
    cr_assert_str_eq(eddy_events_format(EPOLLOUT, buf, sizeof buf), "EPOLLOUT");
    cr_assert_str_eq(
        eddy_events_format(EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLET, buf, sizeof buf),
        "EPOLLIN|EPOLLOUT|EPOLLERR|EPOLLHUP|EPOLLET");
    cr_assert_str_eq(eddy_events_format(0, buf, sizeof buf), "0x0");
    cr_assert_str_eq(eddy_events_format(EPOLLIN | 0x01000000u, buf, sizeof buf),
                     "EPOLLIN|0x1000000");

    /* Too small: truncated, still terminated, never overrun. */
    char small[10];
    memset(small, 'Z', sizeof small);
    char *rc = eddy_events_format(EPOLLIN | EPOLLOUT, small, 8);
    cr_assert_eq(rc, small);
    cr_assert_lt(strlen(small), 8);
    cr_assert_eq(small[8], 'Z');
    cr_assert_eq(small[9], 'Z');
    eddy_events_format(EPOLLIN, small, 1);
    cr_assert_eq(small[0], '\0');
    small[0] = 'Z';
    eddy_events_format(EPOLLIN, small, 0);
    cr_assert_eq(small[0], 'Z');
}

Test(loop, strerror)
{
    cr_assert_str_eq(eddy_strerror(-ENOENT), "No such file or directory");
    cr_assert_str_eq(eddy_strerror(ENOENT), "No such file or directory");
    cr_assert_str_eq(eddy_strerror(0), "Success");
    cr_assert_str_eq(eddy_strerror(-ECONNRESET), "Connection reset by peer");
    const char *unknown = eddy_strerror(-99999);
    cr_assert_not_null(unknown);
    cr_assert_gt(strlen(unknown), 0);
}

static int released;

static void release_cb(void *value)
{
    cr_assert_eq(value, &released);
    released++;
}

Test(loop, attach_keeps_one_value_per_key_and_releases_it_at_free)
{
    struct eddy_loop *l;
    cr_assert_eq(eddy_loop_new(&l), 0);
    static const char keys[5];
    cr_assert_null(eddy_loop_attached(l, &keys[0]));
    cr_assert_eq(eddy_loop_attach(l, &keys[0], &released, release_cb), 0);
    cr_assert_eq(eddy_loop_attach(l, &keys[0], NULL, NULL), -EEXIST);
    cr_assert_eq(eddy_loop_attached(l, &keys[0]), &released);
    for (int i = 1; i < 4; i++)
        cr_assert_eq(eddy_loop_attach(l, &keys[i], NULL, NULL), 0);
    cr_assert_eq(eddy_loop_attach(l, &keys[4], NULL, NULL), -ENOSPC);
    released = 0;
    eddy_loop_free(l);
    cr_assert_eq(released, 1);
}
