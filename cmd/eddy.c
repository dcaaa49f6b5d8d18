/* eddy: runs the tutorials' services (and more) on epoll event loops, one
 * per worker thread.
 *
 *   eddy                              the built-in default set, on 127.0.0.1
 *   eddy echo=127.0.0.1:7000 time=[::1]:9090 sink=unix:/tmp/sink.sock
 *   eddy time --host 0.0.0.0 --port 9090 --read-size 1 --trace
 *
 * Threads: the main thread owns the signals, the listening sockets, the
 * pid file and restarts, and runs a small loop of its own for them. Each
 * worker runs its own loop with its own connections and accepts from every
 * listening socket: one socket per address, shared by all workers, so a
 * restart or systemd hands over one socket per address whatever the number
 * of workers. The main thread tells the workers to drain or stop through
 * an eddy_async each; they answer through the main thread's.
 *
 * Exit status: 0 after SIGINT/SIGTERM or after handing over to a new
 * process, 1 when a listener cannot be opened, 2 for bad command-line
 * arguments. */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <linux/sock_diag.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "eddy/loop.h"
#include "eddy/tcp.h"
#include "access_log.h"
#include "handover.h"
#include "log.h"
#include "options.h"
#include "service.h"

#define REJECT_REPORT_MS 1000
#define QUEUE_CHECK_MS 1000
#define ACCEPT_REPORT_MS 1000
/* How often a worker publishes its connection count, for the global
 * --max-connections limit and for balancing (it also does so at every
 * accept). */
#define SYNC_MS 100
/* A worker holding more than its share of the connections by this many
 * (plus an eighth) leaves new ones to the others, for BALANCE_PAUSE_MS. */
#define BALANCE_SLACK    2
#define BALANCE_PAUSE_MS 2
/* How long after an accept failed for lack of fds or memory balancing stays
 * off: longer than the gap between two reports of a failure that goes on
 * (at most one a second per listener and worker). */
#define STARVED_MS 3000
/* Between the last accept and the graceful shutdown of the connections:
 * the shutdown closes every connection without a request in progress, and
 * a client that has just connected may not have sent its request yet (a
 * busy client can take a few ms between connect and send); it would get
 * no answer. Meanwhile the connections are served as usual. */
#define SETTLE_MS      200
#define DRAIN_CHECK_MS 20

enum phase { PHASE_RUN = 0, PHASE_DRAIN, PHASE_FORCE };

/* One listening socket, shared by the workers. */
struct listener {
    const struct svc_service *svc;
    struct eddy_addr addr;  /* as configured */
    struct eddy_addr bound; /* as bound: the real port */
    struct eddy_listener l; /* the library's, when opened here */
    int fd;                 /* -1 once closed */
    bool opened_here;       /* else inherited */
    /* Accept errors, reported for all workers at most once a second. */
    _Atomic unsigned long errors; /* since the last report */
    _Atomic unsigned long long dropped;
    _Atomic unsigned long long last_report_ms;
    _Atomic int last_error;
    uint32_t drops; /* the kernel's count for the socket, as last seen */
};

struct worker;

/* One worker's share of one listener: the library's listener, adopted on
 * the shared socket (closing it leaves the socket open), and the service's
 * context (connections, HTTP server) on the worker's loop. */
struct acceptor {
    struct worker *w;
    struct listener *ls;
    struct eddy_listener l;
    struct eddy_timer balance; /* holding back while above its share */
    struct eddy_timer report;  /* a rate-limited accept error report */
    struct svc_ctx ctx;
    bool started, adopted;
};

struct server;

struct worker {
    struct server *s;
    unsigned index;
    char name[24];
    pthread_t thread;
    struct eddy_loop *loop;
    struct eddy_async cmd; /* from the main thread: look at s->phase */
    struct eddy_timer settle, check, sync;
    struct acceptor *acc; /* one per listener */
    size_t accounted;     /* connections counted in s->live */
    bool draining, acked, forced;
};

struct server {
    const struct options *opt;
    char **argv;
    char exe[PATH_MAX];
    struct eddy_loop *loop; /* the main thread's */
    struct listener ls[OPTIONS_MAX_SERVICES];
    size_t nls;
    struct worker *workers;
    unsigned nworkers; /* asked for */
    unsigned ninit;    /* made (worker_init called) */
    unsigned running;  /* threads started */
    struct eddy_signal sigint, sigterm, sigusr2, sigchld;
    struct eddy_async wake; /* from the workers: acks and exits */
    struct eddy_timer drain_deadline, reject_report, queue_check, upgrade_timer;
    struct access_log *access;
    struct inherited inherited;
    int status;

    /* Shared with the workers. */
    _Atomic int phase;
    _Atomic long long live; /* open connections (counted when limited or shared) */
    /* Until then (loop ms), accepting is failing for lack of fds or memory
     * somewhere: the workers do not hold back to balance (may_accept). */
    _Atomic unsigned long long starved_until_ms;
    _Atomic unsigned long long rejected;
    _Atomic unsigned stopped, acks, done; /* workers that stopped accepting, ... */
    _Atomic size_t to_finish, force_closed;
    pthread_mutex_t hold_lock; /* hold and held */
    pthread_cond_t hold_cond;
    bool hold;     /* the workers are to wait in on_command */
    unsigned held; /* how many do */

    /* Main thread only. */
    bool announced, closed;
    char drain_reason[96];
    bool handed_over;
    pid_t upgrade_pid; /* a new process that is not ready yet */
    pid_t stale_pid;   /* one given up on, reaped when it exits */
    int upgrade_fd;    /* the read end of its readiness pipe, or -1 */
    struct eddy_io upgrade_io;
};

/* ---- logging hooks ------------------------------------------------------------- */

static void svc_logger(void *arg, enum svc_level level, const char *fmt, va_list ap)
{
    (void)arg;
    log_vmsg((enum log_level)level, fmt, ap);
}

static void on_trace(void *arg, int fd, uint32_t events)
{
    (void)arg;
    char mask[160];
    log_msg(LOG_TRACE, "epoll fd=%d %s", fd, eddy_events_format(events, mask, sizeof mask));
}

/* ---- accepting (worker threads) ------------------------------------------------- */

static size_t worker_live(const struct worker *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->s->nls; i++)
        if (w->acc[i].started)
            n += svc_ctx_live(&w->acc[i].ctx);
    return n;
}

/* Brings this worker's share of s->live up to date. Closes are seen here
 * (or by the SYNC_MS timer) rather than as they happen: the HTTP layer does
 * not report them, so other workers may see a count up to SYNC_MS stale,
 * too high, never too low: the limit is never exceeded. */
static void sync_live(struct worker *w)
{
    size_t now = worker_live(w);
    if (now != w->accounted) {
        atomic_fetch_add(&w->s->live, (long long)now - (long long)w->accounted);
        w->accounted = now;
    }
}

static void on_sync(struct eddy_timer *t)
{
    sync_live(t->data);
}

/* Past --max-connections a new connection is closed at once; HTTP clients
 * first get a 503 so they know why. Best effort: the socket is new, so its
 * send buffer is empty and the few bytes go out without blocking. What the
 * client has sent already is read first: closing with unread input would
 * send a reset, which can destroy the 503 before the client reads it. When
 * eddy is that busy, a client's request has mostly arrived before its
 * connection is accepted. */
static void reject(struct server *s, const struct listener *ls, int fd)
{
    if (ls->svc->http_handler) {
        static const char busy[] =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
            "Content-Length: 20\r\nConnection: close\r\nRetry-After: 1\r\n"
            "\r\n503 Server is busy\n";
        ssize_t n = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n;
        shutdown(fd, SHUT_WR);
    }
    char sink[4096];
    for (int i = 0; i < 16 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
        continue;
    close(fd);
    atomic_fetch_add(&s->rejected, 1);
}

static void on_accept(struct eddy_listener *l, int fd)
{
    struct acceptor *a = l->data;
    struct worker *w = a->w;
    struct server *s = w->s;
    sync_live(w);
    /* Take a place first, so two workers accepting at once cannot both
     * take the last one. */
    long long before = atomic_fetch_add(&s->live, 1);
    if (s->opt->max_conns && before >= (long long)s->opt->max_conns) {
        atomic_fetch_sub(&s->live, 1);
        reject(s, a->ls, fd);
        return;
    }
    w->accounted++;
    svc_accept(&a->ctx, fd);
}

static void on_balance_end(struct eddy_timer *t)
{
    struct acceptor *a = t->data;
    (void)eddy_listener_resume(&a->l);
}

/* With one shared socket, the worker that happens to be idle takes the
 * next connection; when connections arrive one at a time, that is the same
 * worker every time (measured: 100 of 100 keep-alive connections on one of
 * two workers), and they stay where they landed. So a worker holding more
 * than its share leaves the next ones to the others for BALANCE_PAUSE_MS:
 * every worker is woken for a new connection (no EPOLLEXCLUSIVE), so one
 * that holds back hands it to another. Some worker always holds no more
 * than the average, so someone always accepts. */
static bool may_accept(struct eddy_listener *l)
{
    struct acceptor *a = l->data;
    struct worker *w = a->w;
    struct server *s = w->s;
    /* Out of fds, a worker that has lost its spare fd can neither accept
     * nor shed (src/tcp.c, shed()): if the one that still can held back,
     * clients would wait unanswered until fds came free. */
    if (eddy_loop_now(w->loop) < atomic_load(&s->starved_until_ms))
        return true;
    sync_live(w);
    long long total = atomic_load(&s->live);
    size_t share = total > 0 ? (size_t)total / s->nworkers : 0;
    if (w->accounted <= share + BALANCE_SLACK + share / 8)
        return true;
    (void)eddy_timer_start(&a->balance, on_balance_end, BALANCE_PAUSE_MS, 0);
    return false;
}

static void on_accept_report(struct eddy_timer *t);

/* At most one report a second per listener, whichever worker makes it (the
 * library limits each worker's listener alone): errors within a second of
 * the last report are counted, and a timer reports them when the second is
 * over (unless another worker did). */
static void try_report(struct acceptor *a)
{
    struct listener *ls = a->ls;
    if (eddy_timer_active(&a->report) || atomic_load(&ls->errors) == 0)
        return;
    unsigned long long now = eddy_loop_now(a->w->loop);
    unsigned long long last = atomic_load(&ls->last_report_ms);
    /* The loops' clocks are cached separately: now may trail last. */
    if (last && (now < last || now - last < ACCEPT_REPORT_MS)) {
        uint64_t wait = now < last ? ACCEPT_REPORT_MS : ACCEPT_REPORT_MS - (now - last);
        (void)eddy_timer_start(&a->report, on_accept_report, wait, 0);
        return;
    }
    if (!atomic_compare_exchange_strong(&ls->last_report_ms, &last, now)) {
        (void)eddy_timer_start(&a->report, on_accept_report, ACCEPT_REPORT_MS, 0);
        return;
    }
    atomic_store(&ls->errors, 0);
    char addr[EDDY_ADDR_STRLEN];
    log_msg(LOG_WARNING,
            "%s on %s: cannot accept: %s; closed %llu waiting connection(s) since the last "
            "report (raise the open-file limit, ulimit -n, if this persists)",
            ls->svc->name, eddy_addr_format(&ls->bound, addr, sizeof addr),
            eddy_strerror(atomic_load(&ls->last_error)), atomic_exchange(&ls->dropped, 0));
}

static void on_accept_report(struct eddy_timer *t)
{
    try_report(t->data);
}

static void on_accept_error(struct eddy_listener *l, int err, uint64_t dropped)
{
    struct acceptor *a = l->data;
    if (err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM)
        atomic_store(&a->w->s->starved_until_ms, eddy_loop_now(a->w->loop) + STARVED_MS);
    atomic_store(&a->ls->last_error, err);
    atomic_fetch_add(&a->ls->dropped, dropped);
    atomic_fetch_add(&a->ls->errors, 1);
    try_report(a);
}

/* ---- draining (worker threads) -------------------------------------------------- */

static void on_drain_check(struct eddy_timer *t)
{
    struct worker *w = t->data;
    if (worker_live(w) == 0)
        eddy_loop_stop(w->loop);
}

/* Tells the main thread this worker stopped accepting and how many
 * connections it has left; it logs the total once every worker did. */
static void acknowledge(struct worker *w, size_t live)
{
    w->acked = true;
    log_msg(LOG_DEBUG, "no longer accepting; %zu connection(s) to finish", live);
    atomic_fetch_add(&w->s->to_finish, live);
    atomic_fetch_add(&w->s->acks, 1);
    eddy_async_send(&w->s->wake);
}

static void on_settle(struct eddy_timer *t)
{
    struct worker *w = t->data;
    for (size_t i = 0; i < w->s->nls; i++)
        svc_ctx_shutdown_all(&w->acc[i].ctx);
    size_t live = worker_live(w);
    acknowledge(w, live);
    if (live == 0 || eddy_timer_start(&w->check, on_drain_check, 0, DRAIN_CHECK_MS) < 0)
        eddy_loop_stop(w->loop);
}

static void stop_accepting(struct worker *w)
{
    for (size_t i = 0; i < w->s->nls; i++) {
        eddy_listener_pause(&w->acc[i].l);
        eddy_timer_stop(&w->acc[i].balance);
    }
}

/* The main thread changed s->phase, or asks the workers to hold still. */
static void on_command(struct eddy_async *as)
{
    struct worker *w = as->data;
    struct server *s = w->s;
    pthread_mutex_lock(&s->hold_lock);
    if (s->hold) {
        s->held++;
        pthread_cond_broadcast(&s->hold_cond);
        while (s->hold)
            pthread_cond_wait(&s->hold_cond, &s->hold_lock);
        s->held--;
    }
    pthread_mutex_unlock(&s->hold_lock);
    int phase = atomic_load(&s->phase);
    if (phase >= PHASE_DRAIN && !w->draining) {
        w->draining = true;
        stop_accepting(w);
        atomic_fetch_add(&s->stopped, 1);
        eddy_async_send(&s->wake);
        /* With no connection, nothing can be on its way. */
        if (phase == PHASE_DRAIN &&
            (worker_live(w) == 0 || eddy_timer_start(&w->settle, on_settle, SETTLE_MS, 0) < 0))
            on_settle(&w->settle);
    }
    if (phase == PHASE_FORCE && !w->forced) {
        w->forced = true;
        eddy_timer_stop(&w->settle);
        if (!w->acked)
            acknowledge(w, worker_live(w));
        size_t n = 0;
        for (size_t i = 0; i < s->nls; i++)
            n += svc_ctx_close_all(&w->acc[i].ctx);
        atomic_fetch_add(&s->force_closed, n);
        eddy_loop_stop(w->loop);
    }
}

/* On the main thread once the worker's thread has ended (the main thread
 * may wake a worker's loop until then, so it must not be freed earlier),
 * or for a worker whose thread never started, or whose worker_init failed
 * part of the way. */
static void worker_cleanup(struct worker *w)
{
    if (!w->loop)
        return;
    for (size_t i = 0; w->acc && i < w->s->nls && w->acc[i].w; i++) {
        struct acceptor *a = &w->acc[i];
        /* Adopted: this leaves the shared socket to the main thread. */
        if (a->adopted)
            eddy_listener_close(&a->l);
        eddy_timer_stop(&a->balance);
        eddy_timer_stop(&a->report);
        if (a->started)
            svc_ctx_close_all(&a->ctx);
    }
    eddy_timer_stop(&w->settle);
    eddy_timer_stop(&w->check);
    eddy_timer_stop(&w->sync);
    eddy_async_stop(&w->cmd);
    eddy_loop_free(w->loop); /* runs the deferred closes */
    for (size_t i = 0; w->acc && i < w->s->nls; i++)
        if (w->acc[i].started)
            svc_ctx_stop(&w->acc[i].ctx);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct server *s = w->s;
    log_set_thread(w->name);
    int err = eddy_loop_run(w->loop, EDDY_RUN_DEFAULT);
    if (err < 0)
        log_msg(LOG_ERROR, "event loop failed: %s", eddy_strerror(err));
    if (!w->draining)
        atomic_fetch_add(&s->stopped, 1);
    if (!w->acked) {
        /* Stopped on its own (a failure): count it as acknowledged. */
        w->acked = w->draining = true;
        atomic_fetch_add(&s->acks, 1);
    }
    atomic_fetch_add(&s->done, 1);
    eddy_async_send(&s->wake);
    return NULL;
}

/* Everything a worker needs, made on the main thread before the worker's
 * thread starts (pthread_create orders it before the thread's first step). */
static int worker_init(struct server *s, struct worker *w, unsigned index)
{
    const struct options *o = s->opt;
    w->s = s;
    w->index = index;
    snprintf(w->name, sizeof w->name, "worker-%u", index + 1);
    int err = eddy_loop_new(&w->loop);
    if (err)
        w->loop = NULL;
    if (err) {
        fprintf(stderr, "eddy: cannot create an event loop: %s\n", eddy_strerror(err));
        return -1;
    }
    if (o->trace)
        eddy_loop_set_trace(w->loop, on_trace, NULL);
    eddy_async_start(w->loop, &w->cmd, on_command);
    w->cmd.data = w;
    eddy_timer_init(w->loop, &w->settle);
    eddy_timer_init(w->loop, &w->check);
    eddy_timer_init(w->loop, &w->sync);
    w->settle.data = w->check.data = w->sync.data = w;
    w->acc = calloc(s->nls, sizeof *w->acc);
    if (!w->acc) {
        fprintf(stderr, "eddy: out of memory\n");
        return -1;
    }
    for (size_t i = 0; i < s->nls; i++) {
        struct acceptor *a = &w->acc[i];
        a->w = w;
        a->ls = &s->ls[i];
        eddy_timer_init(w->loop, &a->balance);
        eddy_timer_init(w->loop, &a->report);
        a->balance.data = a->report.data = a;
        svc_ctx_init(&a->ctx, w->loop, a->ls->svc);
        a->ctx.conn_opts = (struct eddy_conn_opts){
            .edge = o->edge, .read_size = o->read_size, .idle_ms = o->idle_s * 1000};
        a->ctx.log = svc_logger;
        a->ctx.log_level = (enum svc_level)o->level;
        a->ctx.data = a;
        if (s->access) {
            a->ctx.access_log = access_log_write;
            a->ctx.access_arg = s->access;
        }
        char why[256] = "";
        if (svc_ctx_start(&a->ctx, &o->http, why, sizeof why)) {
            fprintf(stderr, "eddy: %s: %s\n", a->ls->svc->name, why);
            return -1;
        }
        a->started = true;
    }
    bool counting = o->max_conns || s->nworkers > 1;
    if (counting && eddy_timer_start(&w->sync, on_sync, SYNC_MS, SYNC_MS) < 0) {
        fprintf(stderr, "eddy: out of memory\n");
        return -1;
    }
    return 0;
}

/* ---- the main thread: drain, stop, restart --------------------------------------- */

static void close_listeners(struct server *s)
{
    for (size_t i = 0; i < s->nls; i++) {
        struct listener *ls = &s->ls[i];
        if (ls->fd < 0)
            continue;
        if (ls->opened_here)
            eddy_listener_close(&ls->l); /* also removes a Unix socket's file */
        else
            close(ls->fd);
        ls->fd = -1;
    }
}

static void tell_workers(struct server *s)
{
    for (unsigned i = 0; i < s->running; i++)
        eddy_async_send(&s->workers[i].cmd);
}

static void force(struct server *s)
{
    atomic_store(&s->phase, PHASE_FORCE);
    tell_workers(s);
}

static void on_drain_deadline(struct eddy_timer *t)
{
    force(t->data);
}

static void abandon_upgrade(struct server *s)
{
    if (s->upgrade_fd >= 0) {
        eddy_io_stop(&s->upgrade_io);
        close(s->upgrade_fd);
        s->upgrade_fd = -1;
    }
    eddy_timer_stop(&s->upgrade_timer);
    s->stale_pid = s->upgrade_pid;
    s->upgrade_pid = 0;
}

/* Stops accepting everywhere and lets the connections finish. */
static void begin_drain(struct server *s)
{
    if (atomic_load(&s->phase) != PHASE_RUN)
        return;
    if (s->upgrade_pid > 0) {
        log_msg(LOG_WARNING, "stopping process %d, which was starting to replace this one",
                (int)s->upgrade_pid);
        kill(s->upgrade_pid, SIGTERM);
        abandon_upgrade(s);
    }
    atomic_store(&s->phase, PHASE_DRAIN);
    tell_workers(s);
    if (eddy_timer_start(&s->drain_deadline, on_drain_deadline, s->opt->drain_s * 1000, 0) < 0)
        force(s);
}

/* The workers acknowledged a command, or one stopped. */
static void on_wake(struct eddy_async *as)
{
    struct server *s = as->data;
    if (atomic_load(&s->phase) == PHASE_RUN && atomic_load(&s->done) > 0) {
        log_msg(LOG_ERROR, "a worker stopped unexpectedly: stopping");
        s->status = 1;
        snprintf(s->drain_reason, sizeof s->drain_reason, "a worker failed");
        begin_drain(s);
    }
    bool stopping = atomic_load(&s->phase) != PHASE_RUN;
    /* Once no worker accepts, close the sockets, so that new clients are
     * refused at once instead of waiting in a queue nobody reads. After a
     * hand-over they live on in the new process, and whatever waits in
     * their queues is its to accept. */
    if (stopping && !s->closed && atomic_load(&s->stopped) == s->running && !s->handed_over) {
        s->closed = true;
        close_listeners(s);
    }
    if (stopping && !s->announced && atomic_load(&s->acks) == s->running) {
        s->announced = true;
        log_msg(LOG_INFO, "%s: no longer accepting; %zu connection(s) to finish", s->drain_reason,
                (size_t)atomic_load(&s->to_finish));
    }
    if (atomic_load(&s->done) == s->running)
        eddy_loop_stop(s->loop);
}

static void on_upgrade_timeout(struct eddy_timer *t)
{
    struct server *s = t->data;
    log_msg(LOG_ERROR,
            "restart failed: process %d was not ready within %llu s; stopping it; "
            "still serving",
            (int)s->upgrade_pid, (unsigned long long)s->opt->upgrade_timeout_s);
    kill(s->upgrade_pid, SIGTERM);
    abandon_upgrade(s);
}

static void on_upgrade_ready(struct eddy_io *io, unsigned events)
{
    (void)events;
    struct server *s = io->data;
    char byte;
    ssize_t n = read(io->fd, &byte, 1);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    eddy_io_stop(io);
    close(s->upgrade_fd);
    s->upgrade_fd = -1;
    if (n != 1)
        return; /* it exited, or is about to: SIGCHLD says how */
    eddy_timer_stop(&s->upgrade_timer);
    snprintf(s->drain_reason, sizeof s->drain_reason, "process %d is ready", (int)s->upgrade_pid);
    s->handed_over = true;
    s->upgrade_pid = 0;
    begin_drain(s);
}

/* Between fork and exec the child holds a copy of every fd of this
 * process. A connection a worker closed meanwhile would stay registered in
 * that worker's epoll (the library closes connections without
 * EPOLL_CTL_DEL, relying on the close releasing the file), and its events
 * would point at freed memory. So the workers wait in on_command while the
 * main thread forks, which is over once the child has exec'd: a few ms. */
static bool hold_workers(struct server *s)
{
    unsigned want = s->running - atomic_load(&s->done);
    pthread_mutex_lock(&s->hold_lock);
    s->hold = true;
    pthread_mutex_unlock(&s->hold_lock);
    tell_workers(s);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 2;
    pthread_mutex_lock(&s->hold_lock);
    int err = 0;
    while (s->held < want && err == 0)
        err = pthread_cond_timedwait(&s->hold_cond, &s->hold_lock, &deadline);
    bool all = s->held >= want;
    pthread_mutex_unlock(&s->hold_lock);
    return all;
}

static void release_workers(struct server *s)
{
    pthread_mutex_lock(&s->hold_lock);
    s->hold = false;
    pthread_cond_broadcast(&s->hold_cond);
    pthread_mutex_unlock(&s->hold_lock);
}

static void start_upgrade(struct server *s)
{
    if (atomic_load(&s->phase) != PHASE_RUN) {
        log_msg(LOG_WARNING, "SIGUSR2 ignored: already stopping");
        return;
    }
    if (s->upgrade_pid > 0) {
        log_msg(LOG_WARNING, "SIGUSR2 ignored: process %d is still getting ready",
                (int)s->upgrade_pid);
        return;
    }
    int fds[OPTIONS_MAX_SERVICES];
    const char *names[OPTIONS_MAX_SERVICES];
    size_t n = 0;
    for (size_t i = 0; i < s->nls; i++) {
        fds[n] = s->ls[i].fd;
        names[n++] = s->ls[i].svc->name;
    }
    pid_t pid;
    int ready_fd;
    if (!hold_workers(s)) {
        release_workers(s);
        log_msg(LOG_ERROR, "restart failed: the workers did not pause within 2 s; still serving");
        return;
    }
    int err = handover_spawn(s->exe, s->argv, fds, names, n, &pid, &ready_fd);
    release_workers(s);
    if (err) {
        log_msg(LOG_ERROR, "restart failed: cannot start %s: %s; still serving", s->exe,
                eddy_strerror(err));
        return;
    }
    s->upgrade_pid = pid;
    s->upgrade_fd = ready_fd;
    eddy_io_init(s->loop, &s->upgrade_io, ready_fd, on_upgrade_ready);
    s->upgrade_io.data = s;
    if ((err = eddy_io_start(&s->upgrade_io, EDDY_READ)) < 0 ||
        (err = eddy_timer_start(&s->upgrade_timer, on_upgrade_timeout,
                                s->opt->upgrade_timeout_s * 1000, 0)) < 0) {
        log_msg(LOG_ERROR, "restart failed: %s; stopping process %d; still serving",
                eddy_strerror(err), (int)pid);
        kill(pid, SIGTERM);
        abandon_upgrade(s);
        return;
    }
    log_msg(LOG_INFO,
            "SIGUSR2 received: started process %d with %zu listening socket(s); "
            "waiting for it to be ready",
            (int)pid, n);
}

static void describe_exit(int status, char *buf, size_t size)
{
    if (WIFEXITED(status))
        snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "was killed by SIG%s", sigabbrev_np(WTERMSIG(status)));
    else
        snprintf(buf, size, "stopped");
}

static void on_child(struct eddy_signal *sig, int signum)
{
    (void)signum;
    struct server *s = sig->data;
    int status;
    pid_t pid;
    char how[64];
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        describe_exit(status, how, sizeof how);
        if (pid == s->upgrade_pid) {
            log_msg(LOG_ERROR, "restart failed: process %d %s before it was ready; still serving",
                    (int)pid, how);
            abandon_upgrade(s);
            s->stale_pid = 0;
        } else if (pid == s->stale_pid) {
            log_msg(LOG_INFO, "process %d %s", (int)pid, how);
            s->stale_pid = 0;
        } else {
            log_msg(LOG_WARNING, "process %d, which replaced this one, %s", (int)pid, how);
        }
    }
}

static void on_signal(struct eddy_signal *sig, int signum)
{
    struct server *s = sig->data;
    if (signum == SIGUSR2) {
        start_upgrade(s);
        return;
    }
    if (atomic_load(&s->phase) != PHASE_RUN) {
        log_msg(LOG_INFO, "SIG%s again: closing the remaining connections now",
                sigabbrev_np(signum));
        force(s);
        return;
    }
    snprintf(s->drain_reason, sizeof s->drain_reason, "SIG%s received", sigabbrev_np(signum));
    notify_systemd("STOPPING=1");
    begin_drain(s);
}

static void on_reject_report(struct eddy_timer *t)
{
    struct server *s = t->data;
    unsigned long long n = atomic_exchange(&s->rejected, 0);
    if (n)
        log_msg(LOG_WARNING, "refused %llu connection(s): --max-connections %llu reached", n,
                (unsigned long long)s->opt->max_conns);
}

/* ---- starting --------------------------------------------------------------------- */

/* epoll has no descriptor ceiling of its own; the open-file limit is the
 * one that counts, so take all of it. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur == rl.rlim_max) {
        log_msg(LOG_DEBUG, "open-file limit is %llu, the hard limit",
                (unsigned long long)rl.rlim_cur);
        return;
    }
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        log_msg(LOG_INFO, "open-file limit raised from %llu to %llu", (unsigned long long)old,
                (unsigned long long)rl.rlim_max);
    else
        log_msg(LOG_WARNING, "open-file limit stays at %llu: %s", (unsigned long long)old,
                strerror(errno));
}

/* --user NAME[:GROUP]: supplementary groups, then the group, then the user,
 * in that order (after setuid() the others could no longer be changed), and
 * then a check that root cannot be regained. A process started by a
 * restart already runs as that user, and has nothing to drop. */
static int drop_privileges(const char *spec)
{
    char name[256];
    snprintf(name, sizeof name, "%s", spec);
    char *group = strchr(name, ':');
    if (group)
        *group++ = '\0';
    struct passwd *pw = getpwnam(name);
    if (!pw) {
        fprintf(stderr, "eddy: --user: no user '%s'\n", name);
        return -1;
    }
    gid_t gid = pw->pw_gid;
    if (group) {
        struct group *gr = getgrnam(group);
        if (!gr) {
            fprintf(stderr, "eddy: --user: no group '%s'\n", group);
            return -1;
        }
        gid = gr->gr_gid;
    }
    if (getuid() == pw->pw_uid && geteuid() == pw->pw_uid && getgid() == gid && pw->pw_uid != 0)
        return 0;
    if (initgroups(pw->pw_name, gid) < 0 || setgid(gid) < 0 || setuid(pw->pw_uid) < 0) {
        fprintf(stderr, "eddy: --user %s: %s\n", spec, eddy_strerror(-errno));
        return -1;
    }
    if (pw->pw_uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        fprintf(stderr, "eddy: --user %s: root could be regained; refusing to run\n", spec);
        return -1;
    }
    log_msg(LOG_INFO, "running as user %s (uid %u, gid %u)", pw->pw_name, (unsigned)pw->pw_uid,
            (unsigned)gid);
    return 0;
}

static bool serves_static(const struct server *s)
{
    for (size_t i = 0; i < s->nls; i++)
        if (s->ls[i].svc == &svc_static)
            return true;
    return false;
}

static int open_access_log(struct server *s, const char *path)
{
    s->access = malloc(sizeof *s->access);
    if (!s->access)
        return -ENOMEM;
    int err = access_log_open(s->access, s->loop, path);
    if (err) {
        free(s->access);
        s->access = NULL;
    }
    return err;
}

/* Takes each listener's socket from what was inherited (a restart, or
 * systemd) or else binds a new one. The main loop opens it, and keeps it
 * paused: only the workers accept. */
static int open_listeners(struct server *s)
{
    const struct options *o = s->opt;
    struct eddy_listen_opts lopts = {.backlog = (int)o->backlog, .reuseport = o->reuseport};
    for (size_t i = 0; i < s->nls; i++) {
        struct listener *ls = &s->ls[i];
        char addr[EDDY_ADDR_STRLEN];
        ls->fd = inherit_claim(&s->inherited, ls->svc->name, &ls->addr, &ls->bound);
        if (ls->fd >= 0)
            continue;
        /* No accept callback: the listener is paused before the main loop
         * could dispatch an event for it. */
        int err = eddy_listener_open(s->loop, &ls->l, &ls->addr, &lopts, NULL, NULL);
        if (err) {
            const char *hint = err == -EADDRINUSE ? " (is another server using it?)"
                               : err == -EACCES   ? " (ports below 1024 need privileges)"
                                                  : "";
            fprintf(stderr, "eddy: cannot listen on %s for %s: %s%s\n",
                    eddy_addr_format(&ls->addr, addr, sizeof addr), ls->svc->name,
                    eddy_strerror(err), hint);
            return -1;
        }
        eddy_listener_pause(&ls->l);
        ls->opened_here = true;
        ls->fd = eddy_listener_fd(&ls->l);
        ls->bound = ls->l.addr;
    }
    inherit_close_unclaimed(&s->inherited);
    return 0;
}

/* The connection attempts the kernel dropped on a listening socket: mostly
 * with its accept queue full, which accept() never sees. */
static bool listen_drops(int fd, uint32_t *drops)
{
    uint32_t mem[SK_MEMINFO_VARS];
    socklen_t len = sizeof mem;
    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) < 0 ||
        len <= SK_MEMINFO_DROPS * sizeof mem[0])
        return false;
    *drops = mem[SK_MEMINFO_DROPS];
    return true;
}

/* Once a second: a server that accepts too slowly for its backlog (stopped,
 * overloaded, out of fds) loses clients in the kernel, so say so. */
static void on_queue_check(struct eddy_timer *t)
{
    struct server *s = t->data;
    char addr[EDDY_ADDR_STRLEN];
    for (size_t i = 0; i < s->nls; i++) {
        struct listener *ls = &s->ls[i];
        uint32_t drops;
        if (!listen_drops(ls->fd, &drops) || drops == ls->drops)
            continue;
        log_msg(LOG_WARNING,
                "%s on %s: the kernel dropped %lu connection attempt(s), its accept queue "
                "full (--backlog %llu, at most net.core.somaxconn)",
                ls->svc->name, eddy_addr_format(&ls->bound, addr, sizeof addr),
                (unsigned long)(uint32_t)(drops - ls->drops), (unsigned long long)s->opt->backlog);
        ls->drops = drops;
    }
}

static int start_queue_check(struct server *s)
{
    for (size_t i = 0; i < s->nls; i++)
        if (!listen_drops(s->ls[i].fd, &s->ls[i].drops))
            s->ls[i].drops = 0;
    return eddy_timer_start(&s->queue_check, on_queue_check, QUEUE_CHECK_MS, QUEUE_CHECK_MS);
}

/* Said once the workers run: scripts, tests and operators take these lines
 * to mean that eddy serves. */
static void log_listeners(const struct server *s)
{
    char addr[EDDY_ADDR_STRLEN];
    for (size_t i = 0; i < s->nls; i++) {
        const struct listener *ls = &s->ls[i];
        log_msg(LOG_INFO, "%s listening on %s%s%s", ls->svc->name,
                eddy_addr_format(&ls->bound, addr, sizeof addr),
                ls->opened_here ? "" : " (inherited)", s->opt->edge ? " (edge-triggered)" : "");
    }
}

static unsigned usable_cpus(cpu_set_t *set)
{
    if (sched_getaffinity(0, sizeof *set, set) < 0)
        return 1;
    unsigned n = (unsigned)CPU_COUNT(set);
    return n ? n : 1;
}

/* The index-th CPU in set, cycling when there are more workers than CPUs. */
static int nth_cpu(const cpu_set_t *set, unsigned index)
{
    unsigned n = (unsigned)CPU_COUNT(set);
    if (n == 0)
        return -1;
    index %= n;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, set) && index-- == 0)
            return cpu;
    return -1;
}

/* Made before the listeners are opened, so that a service that cannot
 * start (static without its root) fails before eddy says it listens. */
static int make_workers(struct server *s, unsigned count)
{
    s->workers = calloc(count, sizeof *s->workers);
    if (!s->workers) {
        fprintf(stderr, "eddy: out of memory\n");
        return -1;
    }
    s->nworkers = count;
    for (unsigned i = 0; i < count; i++)
        if (s->ninit++, worker_init(s, &s->workers[i], i) < 0)
            return -1;
    return 0;
}

static int start_workers(struct server *s, const cpu_set_t *cpus)
{
    for (unsigned i = 0; i < s->nworkers; i++) {
        for (size_t j = 0; j < s->nls; j++) {
            struct acceptor *a = &s->workers[i].acc[j];
            int err = eddy_listener_adopt(s->workers[i].loop, &a->l, a->ls->fd, NULL, on_accept,
                                          on_accept_error);
            if (err < 0) {
                fprintf(stderr, "eddy: cannot watch the %s listener: %s\n", a->ls->svc->name,
                        eddy_strerror(err));
                return -1;
            }
            a->adopted = true;
            a->l.data = a;
            if (s->nworkers > 1)
                a->l.may_accept = may_accept;
        }
    }
    for (unsigned i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        int cpu = s->opt->cpu_affinity ? nth_cpu(cpus, i) : -1;
        if (cpu >= 0) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            pthread_attr_setaffinity_np(&attr, sizeof one, &one);
        }
        int err = pthread_create(&w->thread, &attr, worker_main, w);
        pthread_attr_destroy(&attr);
        if (err) {
            fprintf(stderr, "eddy: cannot start %s: %s\n", w->name, strerror(err));
            return -1;
        }
        /* For top -H and /proc: at most 15 characters. */
        char tname[24];
        snprintf(tname, sizeof tname, "eddy-w%u", i + 1);
        tname[15] = '\0';
        pthread_setname_np(w->thread, tname);
        s->running++;
        if (cpu >= 0)
            log_msg(LOG_DEBUG, "%s pinned to CPU %d", w->name, cpu);
    }
    return 0;
}

/* Everything between creating the main loop and running it. Returns the
 * exit status to give up with, or 0 to run. */
static int start(struct server *s)
{
    const struct options *o = s->opt;
    int err;
    if ((err = eddy_signal_start(&s->sigint, on_signal, SIGINT)) < 0 ||
        (err = eddy_signal_start(&s->sigterm, on_signal, SIGTERM)) < 0 ||
        (err = eddy_signal_start(&s->sigusr2, on_signal, SIGUSR2)) < 0 ||
        (err = eddy_signal_start(&s->sigchld, on_child, SIGCHLD)) < 0) {
        fprintf(stderr, "eddy: cannot watch signals: %s\n", eddy_strerror(err));
        return 1;
    }
    char why[256];
    if (inherit_take(&s->inherited, why, sizeof why) < 0) {
        fprintf(stderr, "eddy: %s\n", why);
        return 1;
    }
    if (o->access_log && (err = open_access_log(s, o->access_log)) < 0) {
        fprintf(stderr, "eddy: cannot open access log '%s': %s\n", o->access_log,
                eddy_strerror(err));
        return 1;
    }
    cpu_set_t cpus;
    unsigned count = usable_cpus(&cpus);
    if (o->workers)
        count = o->workers;
    if (make_workers(s, count) < 0 || open_listeners(s) < 0)
        return 1;
    if (o->user && drop_privileges(o->user) < 0)
        return 1;
    if (geteuid() == 0 && serves_static(s))
        log_msg(LOG_WARNING, "static is serving files as root: consider --user with an "
                             "unprivileged user");
    if (start_queue_check(s) < 0 ||
        (o->max_conns && eddy_timer_start(&s->reject_report, on_reject_report, REJECT_REPORT_MS,
                                          REJECT_REPORT_MS) < 0)) {
        fprintf(stderr, "eddy: out of memory\n");
        return 1;
    }
    /* Threads are created after the signal watchers blocked their
     * signals, so they inherit the mask and every signal reaches the
     * main loop's signalfd. */
    if (start_workers(s, &cpus) < 0)
        return 1;
    log_listeners(s);
    if (o->pid_file && (err = pidfile_write(o->pid_file)) < 0) {
        log_msg(LOG_ERROR, "cannot write pid file %s: %s", o->pid_file, eddy_strerror(err));
        return 1;
    }
    log_msg(LOG_INFO, "process %d serving with %u worker(s)%s", (int)getpid(), count,
            o->cpu_affinity ? ", pinned to CPUs" : "");
    inherit_notify_ready(&s->inherited);
    /* MAINPID too: after a restart the main process is a new one, and
     * systemd (NotifyAccess=all) must follow it before the old one exits. */
    char state[64];
    snprintf(state, sizeof state, "READY=1\nMAINPID=%d", (int)getpid());
    notify_systemd(state);
    return 0;
}

/* ---- eddy --upgrade ------------------------------------------------------------------ */

static void comm_of(pid_t pid, char *buf, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    buf[0] = '\0';
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    if (fgets(buf, (int)size, f))
        buf[strcspn(buf, "\n")] = '\0';
    fclose(f);
}

/* Asks the eddy in the pid file to restart, and waits until a new process
 * has written its pid there (it does so just before it says it is ready). */
static int upgrade_command(const struct options *o)
{
    pid_t pid = pidfile_read(o->pid_file);
    if (pid < 0) {
        fprintf(stderr, "eddy: --upgrade: cannot read a pid from %s: %s\n", o->pid_file,
                eddy_strerror(pid));
        return 1;
    }
    /* A stale pid file may name an unrelated process, which SIGUSR2
     * would kill: only signal a process with our name. */
    char mine[32], theirs[32];
    comm_of(getpid(), mine, sizeof mine);
    comm_of(pid, theirs, sizeof theirs);
    if (strcmp(mine, theirs) != 0) {
        fprintf(stderr, "eddy: --upgrade: process %d (from %s) is %s, not %s\n", (int)pid,
                o->pid_file, theirs[0] ? theirs : "not running", mine);
        return 1;
    }
    if (kill(pid, SIGUSR2) < 0) {
        fprintf(stderr, "eddy: --upgrade: cannot signal process %d: %s\n", (int)pid,
                strerror(errno));
        return 1;
    }
    struct timespec tick = {0, 20 * 1000 * 1000};
    for (uint64_t waited_ms = 0; waited_ms < (o->upgrade_timeout_s + 2) * 1000; waited_ms += 20) {
        pid_t now = pidfile_read(o->pid_file);
        if (now > 0 && now != pid) {
            printf("eddy: process %d replaced process %d\n", (int)now, (int)pid);
            return 0;
        }
        if (kill(pid, 0) < 0 && errno == ESRCH) {
            fprintf(stderr, "eddy: --upgrade: process %d exited without a successor\n", (int)pid);
            return 1;
        }
        nanosleep(&tick, NULL);
    }
    fprintf(stderr,
            "eddy: --upgrade: no new process within %llu s; process %d still serves (its log "
            "says why)\n",
            (unsigned long long)o->upgrade_timeout_s, (int)pid);
    return 1;
}

/* ---- main ------------------------------------------------------------------------------ */

static void cleanup(struct server *s)
{
    for (unsigned i = 0; i < s->running; i++)
        pthread_join(s->workers[i].thread, NULL);
    for (unsigned i = 0; i < s->ninit; i++) {
        worker_cleanup(&s->workers[i]);
        free(s->workers[i].acc);
    }
    free(s->workers);
    size_t closed = atomic_load(&s->force_closed);
    if (closed)
        log_msg(LOG_WARNING, "closed %zu connection(s) that did not finish in time", closed);
    eddy_timer_stop(&s->queue_check);
    on_queue_check(&s->queue_check);
    /* After a hand-over, closing would remove a Unix socket's file, which
     * the new process serves; the fds close with the process. */
    if (!s->handed_over)
        close_listeners(s);
    eddy_timer_stop(&s->drain_deadline);
    eddy_timer_stop(&s->reject_report);
    eddy_timer_stop(&s->upgrade_timer);
    on_reject_report(&s->reject_report);
    if (s->access) {
        access_log_close(s->access);
        free(s->access);
    }
    eddy_signal_stop(&s->sigint);
    eddy_signal_stop(&s->sigterm);
    eddy_signal_stop(&s->sigusr2);
    eddy_signal_stop(&s->sigchld);
    eddy_async_stop(&s->wake);
    eddy_loop_free(s->loop);
    if (s->opt->pid_file)
        pidfile_remove(s->opt->pid_file);
}

int main(int argc, char **argv)
{
    static struct options opt;
    char err_text[512];
    /* getopt_long permutes argv; parse a copy, so that a restart runs the
     * command line exactly as typed (and ps shows it so). */
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args)
        return 1;
    memcpy(args, argv, (size_t)argc * sizeof *args);
    int rc = options_parse(&opt, argc, args, err_text, sizeof err_text);
    free(args); /* the options point into the strings, not into the array */
    if (rc < 0) {
        fprintf(stderr, "eddy: %s\nTry 'eddy --help' for more information.\n", err_text);
        return 2;
    }
    switch (opt.action) {
    case OPTIONS_HELP:
        options_usage(stdout);
        return 0;
    case OPTIONS_VERSION:
        printf("eddy %s\n", EDDY_VERSION);
        return 0;
    case OPTIONS_UPGRADE:
        return upgrade_command(&opt);
    case OPTIONS_RUN:
        break;
    }

    static struct server s;
    s.opt = &opt;
    s.argv = argv;
    s.upgrade_fd = -1;
    pthread_mutex_init(&s.hold_lock, NULL);
    pthread_cond_init(&s.hold_cond, NULL);
    s.nls = opt.nservices;
    for (size_t i = 0; i < s.nls; i++) {
        s.ls[i].svc = opt.services[i].svc;
        s.ls[i].addr = opt.services[i].addr;
        s.ls[i].fd = -1;
    }
    log_init("eddy", opt.level);
    raise_fd_limit();
    /* A restart runs the binary now at this path, which may be a newer
     * one than /proc/self/exe (that stays the file we were started from). */
    ssize_t n = readlink("/proc/self/exe", s.exe, sizeof s.exe - 1);
    if (n < 0 || n >= (ssize_t)sizeof s.exe - 1)
        snprintf(s.exe, sizeof s.exe, "/proc/self/exe");
    else
        s.exe[n] = '\0';

    /* The library never raises SIGPIPE itself (it sends with MSG_NOSIGNAL);
     * ignoring it here also covers any other write the program makes. */
    signal(SIGPIPE, SIG_IGN);

    int err = eddy_loop_new(&s.loop);
    if (err) {
        fprintf(stderr, "eddy: cannot create the event loop: %s\n", eddy_strerror(err));
        return 1;
    }
    if (opt.trace)
        eddy_loop_set_trace(s.loop, on_trace, NULL);
    eddy_timer_init(s.loop, &s.drain_deadline);
    eddy_timer_init(s.loop, &s.reject_report);
    eddy_timer_init(s.loop, &s.queue_check);
    eddy_timer_init(s.loop, &s.upgrade_timer);
    s.drain_deadline.data = s.reject_report.data = s.queue_check.data = s.upgrade_timer.data = &s;
    eddy_signal_init(s.loop, &s.sigint);
    eddy_signal_init(s.loop, &s.sigterm);
    eddy_signal_init(s.loop, &s.sigusr2);
    eddy_signal_init(s.loop, &s.sigchld);
    s.sigint.data = s.sigterm.data = s.sigusr2.data = s.sigchld.data = &s;
    eddy_async_start(s.loop, &s.wake, on_wake);
    s.wake.data = &s;

    int status = start(&s);
    if (status == 0 && (err = eddy_loop_run(s.loop, EDDY_RUN_DEFAULT)) < 0) {
        log_msg(LOG_ERROR, "event loop failed: %s", eddy_strerror(err));
        status = 1;
    }
    if (status) {
        /* A failed start: stop whatever workers did start, at once. */
        atomic_store(&s.phase, PHASE_FORCE);
        tell_workers(&s);
    }
    cleanup(&s);
    if (status == 0)
        status = s.status;
    if (status == 0)
        log_msg(LOG_INFO, "stopped");
    return status;
}
