/* Listeners and buffered stream connections on top of the loop's public API.
 *
 * A connection's life: OPEN (reading and writing) -> SHUTDOWN (no more
 * reads; sending what is queued) -> LINGER (write side shut; input drained
 * and discarded until the peer closes or a deadline) -> CLOSED (fd closed;
 * on_close runs after the current batch). eddy_conn_close() jumps to CLOSED
 * from anywhere. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "eddy/tcp.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* ---- listeners ------------------------------------------------------------- */

#define ACCEPT_PAUSE_MS 100
#define REPORT_EVERY_MS 1000

/* An fd held in reserve to shed connections when the process is out of fds
 * (see shed()). A loop sheds for one listener at a time, so one spare per
 * loop serves all its listeners; it is kept while the loop has any. */
struct eddy__spare {
    int fd;
    unsigned listeners;
};

static const char spare_key;

static void spare_refill(struct eddy__spare *sp)
{
    if (sp->fd < 0)
        sp->fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void spare_free(void *p)
{
    struct eddy__spare *sp = p;
    if (sp->fd >= 0)
        close(sp->fd);
    free(sp);
}

/* Counts one more listener on the loop's spare, made at the first. Not
 * getting the fd (out of fds already) is no error: shed() tries again.
 * Returns 0, -ENOMEM or -ENOSPC (the loop has no attachment slot left). */
static int spare_hold(struct eddy_loop *loop, struct eddy__spare **out)
{
    struct eddy__spare *sp = eddy_loop_attached(loop, &spare_key);
    if (!sp) {
        sp = malloc(sizeof *sp);
        if (!sp)
            return -ENOMEM;
        *sp = (struct eddy__spare){.fd = -1};
        int err = eddy_loop_attach(loop, &spare_key, sp, spare_free);
        if (err < 0) {
            free(sp);
            return err;
        }
    }
    sp->listeners++;
    spare_refill(sp);
    *out = sp;
    return 0;
}

static void spare_drop(struct eddy__spare *sp)
{
    if (--sp->listeners == 0 && sp->fd >= 0) {
        close(sp->fd);
        sp->fd = -1;
    }
}

static int set_int_opt(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof value) < 0 ? -errno : 0;
}

/* A Unix socket path that exists is either a live server's (refuse, as a
 * busy TCP port would be refused) or left over by one that died (replace). */
static int clear_stale_unix(const struct eddy_addr *addr)
{
    const struct sockaddr_un *un = (const struct sockaddr_un *)&addr->ss;
    struct stat st;
    if (lstat(un->sun_path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode))
        return -EADDRINUSE;
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return -errno;
    int rc = connect(probe, (const struct sockaddr *)&addr->ss, addr->len);
    int err = rc < 0 ? errno : 0;
    close(probe);
    if (rc == 0)
        return -EADDRINUSE;
    if (err != ECONNREFUSED)
        return -err;
    return unlink(un->sun_path) < 0 ? -errno : 0;
}

static void report_now(struct eddy_listener *l)
{
    l->last_report_ms = eddy_loop_now(l->loop);
    uint64_t dropped = l->dropped;
    l->dropped = 0;
    l->on_error(l, l->last_error, dropped);
}

static void on_report_due(struct eddy_timer *t)
{
    report_now(t->data);
}

/* At most one report a second: an error within a second of the last report
 * is counted, and a timer reports the count when the second is over. */
static void report(struct eddy_listener *l, int err)
{
    l->last_error = err;
    if (!l->on_error || eddy_timer_active(&l->report))
        return;
    uint64_t now = eddy_loop_now(l->loop);
    uint64_t since = now - l->last_report_ms;
    if (l->last_report_ms == 0 || since >= REPORT_EVERY_MS)
        report_now(l);
    else
        (void)eddy_timer_start(&l->report, on_report_due, REPORT_EVERY_MS - since, 0);
}

static void on_pause_end(struct eddy_timer *t)
{
    struct eddy_listener *l = t->data;
    spare_refill(l->spare);
    (void)eddy_io_start(&l->io, EDDY_READ);
}

/* Out of fds or memory: the waiting connection cannot be served, and while
 * it waits the level-triggered listener would wake us again at once. Give
 * up the loop's spare fd to accept it and close it (the client sees a clean
 * close instead of hanging), then take the spare back. If the spare cannot
 * be used or recovered, stop accepting for a moment instead of spinning. */
static bool shed(struct eddy_listener *l, int err)
{
    struct eddy__spare *sp = l->spare;
    bool progress = false;
    if ((err == -EMFILE || err == -ENFILE) && sp->fd >= 0) {
        close(sp->fd);
        sp->fd = -1;
        int fd = accept4(l->io.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            close(fd);
            l->dropped++;
            progress = true;
        }
        spare_refill(sp);
    }
    report(l, err);
    if (!progress || sp->fd < 0) {
        eddy_io_stop(&l->io);
        (void)eddy_timer_start(&l->pause, on_pause_end, ACCEPT_PAUSE_MS, 0);
    }
    return progress;
}

/* Out of fds, another thread's accept can take the slot a shed() freed, and
 * this loop's spare is gone: if every loop lost its spare so, none could
 * shed, and waiting clients would hang until some fd came free. So a loop
 * without a spare that still cannot get one takes the slot of the
 * connection it just accepted, shedding that one. Returns false then. */
static bool keep_spare(struct eddy_listener *l, int fd)
{
    if (l->spare->fd >= 0)
        return true;
    spare_refill(l->spare);
    if (l->spare->fd >= 0)
        return true;
    close(fd);
    l->dropped++;
    spare_refill(l->spare);
    report(l, -EMFILE);
    return false;
}

static void on_listener_io(struct eddy_io *io, unsigned events)
{
    (void)events;
    struct eddy_listener *l = container_of(io, struct eddy_listener, io);
    for (unsigned i = 0; i < l->budget; i++) {
        if (l->may_accept && !l->may_accept(l)) {
            eddy_listener_pause(l);
            return;
        }
        int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0 && !keep_spare(l, fd))
            continue;
        if (fd >= 0) {
            l->on_accept(l, fd);
            /* The callback may have closed or paused the listener. */
            if (!eddy_io_active(io))
                return;
            continue;
        }
        switch (errno) {
        case EAGAIN:
            return;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            if (!shed(l, -errno))
                return;
            break;
        default:
            /* ECONNABORTED, EPROTO, EPERM (firewall), ENETDOWN, EINTR ...:
             * that one connection is gone or the call was interrupted; the
             * rest of the queue is still good. */
            break;
        }
    }
}

/* Starts accepting on a listening socket; shared by open and adopt. */
static int watch(struct eddy_loop *loop, struct eddy_listener *l, int fd,
                 const struct eddy_listen_opts *opts, eddy_accept_cb on_accept,
                 eddy_accept_error_cb on_error)
{
    int err = spare_hold(loop, &l->spare);
    if (err)
        return err;
    l->loop = loop;
    l->on_accept = on_accept;
    l->on_error = on_error;
    l->may_accept = NULL;
    l->budget = opts && opts->accept_budget ? opts->accept_budget : 64;
    l->dropped = 0;
    l->last_report_ms = 0;
    l->last_error = 0;
    eddy_timer_init(loop, &l->pause);
    l->pause.data = l;
    eddy_timer_init(loop, &l->report);
    l->report.data = l;
    eddy_io_init(loop, &l->io, fd, on_listener_io);
    err = eddy_io_start(&l->io, EDDY_READ);
    if (err)
        spare_drop(l->spare);
    return err;
}

EDDY_API int eddy_listener_open(struct eddy_loop *loop, struct eddy_listener *l,
                                const struct eddy_addr *addr, const struct eddy_listen_opts *opts,
                                eddy_accept_cb on_accept, eddy_accept_error_cb on_error)
{
    static const struct eddy_listen_opts defaults = {0};
    if (!opts)
        opts = &defaults;
    int family = addr->ss.ss_family;
    int err = 0;
    if (family == AF_UNIX && (err = clear_stale_unix(addr)) < 0)
        return err;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (family != AF_UNIX)
        err = set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (!err && opts->reuseport)
        err = set_int_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    if (!err && family == AF_INET6)
        err = set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
    /* Writes are gathered per read callback already, so Nagle's delay would
     * only hold replies back. Accepted sockets inherit TCP_NODELAY from
     * the listener: one setsockopt here instead of one per connection. */
    if (!err && family != AF_UNIX)
        err = set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    if (!err && bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0)
        err = -errno;
    if (!err && family == AF_UNIX && opts->unix_mode &&
        chmod(((const struct sockaddr_un *)&addr->ss)->sun_path, opts->unix_mode) < 0)
        err = -errno;
    if (!err && listen(fd, opts->backlog > 0 ? opts->backlog : 511) < 0)
        err = -errno;
    l->addr = *addr;
    if (!err && family != AF_UNIX) {
        l->addr.len = sizeof l->addr.ss;
        if (getsockname(fd, (struct sockaddr *)&l->addr.ss, &l->addr.len) < 0)
            err = -errno;
    }
    l->adopted = false;
    if (!err)
        err = watch(loop, l, fd, opts, on_accept, on_error);
    if (err) {
        close(fd);
        if (family == AF_UNIX && err != -EADDRINUSE)
            unlink(((const struct sockaddr_un *)&addr->ss)->sun_path);
        return err;
    }
    return 0;
}

EDDY_API int eddy_listener_adopt(struct eddy_loop *loop, struct eddy_listener *l, int fd,
                                 const struct eddy_listen_opts *opts, eddy_accept_cb on_accept,
                                 eddy_accept_error_cb on_error)
{
    int listening = 0;
    socklen_t len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
        return -errno;
    /* A blocking socket would hang the loop in accept4() whenever another
     * process or loop took the connection first. */
    if (!listening || !(fcntl(fd, F_GETFL) & O_NONBLOCK))
        return -EINVAL;
    l->addr.len = sizeof l->addr.ss;
    if (getsockname(fd, (struct sockaddr *)&l->addr.ss, &l->addr.len) < 0)
        return -errno;
    l->adopted = true;
    return watch(loop, l, fd, opts, on_accept, on_error);
}

EDDY_API void eddy_listener_pause(struct eddy_listener *l)
{
    eddy_timer_stop(&l->pause);
    eddy_io_stop(&l->io);
}

/* Stops everything the listener started, including a report still due. */
static void stop_all(struct eddy_listener *l)
{
    eddy_listener_pause(l);
    eddy_timer_stop(&l->report);
}

EDDY_API int eddy_listener_resume(struct eddy_listener *l)
{
    return eddy_io_start(&l->io, EDDY_READ);
}

EDDY_API int eddy_listener_fd(const struct eddy_listener *l)
{
    return l->io.fd;
}

EDDY_API void eddy_listener_close(struct eddy_listener *l)
{
    if (l->io.fd < 0)
        return;
    stop_all(l);
    spare_drop(l->spare);
    if (!l->adopted) {
        close(l->io.fd);
        if (l->addr.ss.ss_family == AF_UNIX)
            unlink(((const struct sockaddr_un *)&l->addr.ss)->sun_path);
    }
    l->io.fd = -1;
}

/* ---- connections ------------------------------------------------------------ */

enum {
    F_IN_READ_CB = 1u << 0,   /* gathering output until on_read returns */
    F_PAUSED = 1u << 1,       /* above the high watermark: not reading */
    F_EOF = 1u << 2,          /* read() returned 0 */
    F_REQUEUE = 1u << 3,      /* edge mode: read again without an event */
    F_NOTIFY_DRAIN = 1u << 4, /* on_drain when output is empty */
    F_HIGH = 1u << 5,         /* reached the high watermark since last drain */
    F_REDELIVER = 1u << 6,    /* offer buffered input again (reading resumed) */
    F_PEER_DONE = 1u << 7,    /* epoll reported RDHUP/HUP/ERR: EOF or an error is queued */
    F_DEADLINE = 1u << 8,     /* `deadline` is set */
    F_QUEUED = 1u << 9,       /* `link` is in the work queue */
    F_TIMED = 1u << 10,       /* `link` is in a wheel slot */
    F_NO_LINGER = 1u << 11,   /* eddy_conn_finish(): close once the output is sent */
};

/* A file part queued for sendfile(), and the bytes written after it. */
struct eddy__file_seg {
    struct eddy__file_seg *next;
    int fd;
    off_t off;
    uint64_t len;
    struct eddy_buf after;
};

/* What a connection holds only while data is in flight. */
struct eddy__conn_bufs {
    struct eddy_buf in;            /* unconsumed input */
    struct eddy_buf out;           /* unsent output */
    struct eddy__file_seg *files;  /* queued file parts, in order */
    size_t file_bytes;             /* bytes queued behind `out` */
};

#define LINGER_DRAIN_MAX (64 * 1024)

/* ---- per-loop connection state -----------------------------------------------
 *
 * Timeouts live in a timer wheel: slot k holds the connections due in tick
 * k (mod SLOTS), and one loop timer is armed for the first tick that has
 * any. Activity only stamps last_io; a connection whose slot comes up and
 * that is not due yet is moved to its new slot then. So a busy connection
 * costs no timer work per read, an idle one costs 16 bytes of list link,
 * and a timeout later than one turn of the wheel takes a few more moves. */

#define TICK_MS 32
#define SLOTS 1024 /* one turn: 32.8 s */
#define TIMEOUT_MAX_MS (UINT64_C(1) << 30)
#define POOL_BLOCKS 256 /* free 16 KiB buffers kept warm per loop: 4 MiB at most */
#define DECAY_MS 1000   /* how long a warm one may go unused */
#define POOL_BUFS 256  /* free struct eddy__conn_bufs kept per loop */

struct net {
    struct eddy_loop *loop;
    struct eddy_timer timer;      /* armed for tick armed_tick */
    struct eddy_defer defer;      /* runs `queue` */
    uint64_t tick;                /* slots up to this tick have been swept */
    uint64_t armed_tick;
    size_t timed;                 /* connections in the wheel */
    struct eddy_list untimed;     /* open connections with nothing due */
    struct eddy_list queue;       /* deferred work and closes, newest first */
    struct eddy__pool blocks;
    uint64_t decayed_ms;          /* when the pool last released blocks */
    struct eddy__conn_bufs *spare; /* free ones, linked through in.data */
    unsigned nspare;
    struct eddy_list wheel[SLOTS];
};

static const char net_key;

static struct net *net_of(const struct eddy_conn *c)
{
    return c->io.data;
}

/* Appends every link of `from` to `to`, leaving `from` empty. */
static void move_all(struct eddy_list *from, struct eddy_list *to)
{
    if (eddy_list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    eddy_list_init(from);
}

static void net_release(void *p)
{
    struct net *net = p;
    eddy_timer_stop(&net->timer);
    eddy_defer_stop(&net->defer);
    eddy__pool_drain(&net->blocks);
    while (net->spare) {
        struct eddy__conn_bufs *b = net->spare;
        net->spare = (struct eddy__conn_bufs *)b->in.data;
        free(b);
    }
    free(net);
}

static void on_wheel(struct eddy_timer *t);
static void run_queue(struct eddy_defer *d);

static struct net *net_get(struct eddy_loop *loop)
{
    struct net *net = eddy_loop_attached(loop, &net_key);
    if (net)
        return net;
    net = malloc(sizeof *net);
    if (!net)
        return NULL;
    net->loop = loop;
    eddy_timer_init(loop, &net->timer);
    net->timer.data = net;
    eddy_defer_init(loop, &net->defer);
    net->defer.data = net;
    net->tick = eddy_loop_now(loop) / TICK_MS;
    net->armed_tick = 0;
    net->timed = 0;
    eddy_list_init(&net->untimed);
    eddy_list_init(&net->queue);
    net->blocks = (struct eddy__pool){.max = POOL_BLOCKS};
    net->decayed_ms = eddy_loop_now(loop);
    net->spare = NULL;
    net->nspare = 0;
    for (size_t i = 0; i < SLOTS; i++)
        eddy_list_init(&net->wheel[i]);
    if (eddy_loop_attach(loop, &net_key, net, net_release) < 0) {
        free(net);
        return NULL;
    }
    return net;
}

/* Output queued and not yet taken by the kernel, files included. */
static size_t pending(const struct eddy_conn *c)
{
    return c->bufs ? c->bufs->out.len + c->bufs->file_bytes : 0;
}

/* How long the connection may now go without I/O: the idle timeout, or the
 * send timeout while output waits, whichever is shorter; 0: no limit. */
static uint64_t quiet_limit(const struct eddy_conn *c)
{
    uint64_t ms = c->opts->idle_ms;
    uint64_t send = c->opts->send_timeout_ms;
    if (send && (!ms || send < ms) && pending(c))
        ms = send;
    return ms < TIMEOUT_MAX_MS ? ms : TIMEOUT_MAX_MS;
}

/* Times are kept as the low 32 bits of the loop's millisecond clock; every
 * one of them is within 2^30 ms of now, so differences are exact. */
static uint64_t since(uint64_t now, uint32_t then)
{
    return (uint32_t)((uint32_t)now - then);
}

static bool deadline_passed(const struct eddy_conn *c, uint64_t now)
{
    return (int32_t)(c->deadline - (uint32_t)now) <= 0;
}

static void touch(struct eddy_conn *c)
{
    c->last_io = (uint32_t)eddy_loop_now(c->io.loop);
}

/* When the connection's next timeout is due (ms), or UINT64_MAX. */
static uint64_t due_of(const struct eddy_conn *c, uint64_t now)
{
    uint64_t due = UINT64_MAX;
    uint64_t quiet = quiet_limit(c);
    if (quiet && c->state != EDDY_CONN_LINGER)
        due = now - since(now, c->last_io) + quiet;
    if (c->flags & F_DEADLINE) {
        int32_t left = (int32_t)(c->deadline - (uint32_t)now);
        uint64_t d = left > 0 ? now + (uint64_t)left : now;
        if (d < due)
            due = d;
    }
    return due;
}

static int arm(struct net *net, uint64_t tick)
{
    if (eddy_timer_active(&net->timer) && net->armed_tick <= tick)
        return 0;
    uint64_t now = eddy_loop_now(net->loop);
    uint64_t at = tick * TICK_MS;
    net->armed_tick = tick;
    return eddy_timer_start(&net->timer, on_wheel, at > now ? at - now : 0, 0);
}

/* Takes the connection out of its wheel slot or list (not out of the work
 * queue: callers check F_QUEUED first). */
static void unlink_conn(struct eddy_conn *c)
{
    if (c->flags & F_TIMED) {
        net_of(c)->timed--;
        c->flags &= ~F_TIMED;
    }
    eddy_list_remove(&c->link);
}

/* Stops the wheel's timer once no connection needs it, so that a loop
 * without connections can end. */
static void settle(struct net *net)
{
    if (net->timed == 0)
        eddy_timer_stop(&net->timer);
}

/* Puts an unlinked connection in the slot of its next timeout. */
static int place(struct eddy_conn *c)
{
    struct net *net = net_of(c);
    uint64_t now = eddy_loop_now(net->loop);
    uint64_t due = due_of(c, now);
    if (due == UINT64_MAX) {
        eddy_list_push(&net->untimed, &c->link);
        return 0;
    }
    /* An empty wheel has nothing behind the current tick: catch up. */
    if (net->timed == 0)
        net->tick = now / TICK_MS;
    uint64_t tick = (due + TICK_MS - 1) / TICK_MS;
    if (tick <= net->tick)
        tick = net->tick + 1;
    if (tick >= net->tick + SLOTS)
        tick = net->tick + SLOTS - 1; /* a later turn moves it on */
    eddy_list_push(&net->wheel[tick % SLOTS], &c->link);
    c->flags |= F_TIMED;
    net->timed++;
    return arm(net, tick);
}

/* The connection's timeouts changed: move it now if they moved earlier,
 * since its slot may come up too late; work in the queue places it
 * afterwards. */
static void retime(struct eddy_conn *c)
{
    if (c->flags & F_QUEUED)
        return;
    unlink_conn(c);
    int err = place(c);
    if (err)
        eddy_conn_close(c, err);
    settle(net_of(c));
}

/* After work on an unlinked connection: back into the wheel, unless the
 * work closed it, queued it again, or already placed it. */
static void replace(struct eddy_conn *c)
{
    if (c->state == EDDY_CONN_CLOSED || (c->flags & F_QUEUED) || !eddy_list_empty(&c->link))
        return;
    int err = place(c);
    if (err)
        eddy_conn_close(c, err);
}

static void enqueue(struct eddy_conn *c)
{
    if (c->flags & F_QUEUED)
        return;
    struct net *net = net_of(c);
    unlink_conn(c);
    c->flags |= F_QUEUED;
    eddy_list_push(&net->queue, &c->link);
    eddy_defer_start(&net->defer, run_queue);
}

/* ---- buffers ------------------------------------------------------------------ */

static struct eddy__conn_bufs *get_bufs(struct eddy_conn *c)
{
    if (c->bufs)
        return c->bufs;
    struct net *net = net_of(c);
    struct eddy__conn_bufs *b = net->spare;
    if (b) {
        net->spare = (struct eddy__conn_bufs *)b->in.data;
        net->nspare--;
    } else if (!(b = malloc(sizeof *b))) {
        return NULL;
    }
    *b = (struct eddy__conn_bufs){0};
    c->bufs = b;
    return b;
}

/* At most once a second, when buffers come back: the pool releases the
 * blocks that stayed unused all along. Steady load pays a clock compare. */
static void decay(struct net *net)
{
    uint64_t now = eddy_loop_now(net->loop);
    if (now - net->decayed_ms < DECAY_MS)
        return;
    net->decayed_ms = now;
    eddy__pool_decay(&net->blocks);
}

/* Gives empty buffers back to the pool, and the connection's buffer
 * struct once nothing is left in it: an idle connection holds none. Never
 * during on_read, which is looking at the input. */
static void trim(struct eddy_conn *c)
{
    struct eddy__conn_bufs *b = c->bufs;
    if (!b || (c->flags & F_IN_READ_CB))
        return;
    struct net *net = net_of(c);
    if (b->in.len == 0)
        eddy__buf_free(&b->in, &net->blocks);
    if (b->out.len == 0)
        eddy__buf_free(&b->out, &net->blocks);
    decay(net);
    if (b->in.data || b->out.data || b->files)
        return;
    c->bufs = NULL;
    if (net->nspare < POOL_BUFS) {
        b->in.data = (char *)net->spare;
        net->spare = b;
        net->nspare++;
    } else {
        free(b);
    }
}

static size_t read_size(const struct eddy_conn *c)
{
    return c->opts->read_size ? c->opts->read_size : EDDY__BLOCK;
}

static size_t max_input(const struct eddy_conn *c)
{
    size_t max = c->opts->max_input ? c->opts->max_input : 64 * 1024;
    return max < read_size(c) ? read_size(c) : max;
}

static size_t high_water(const struct eddy_conn *c)
{
    return c->opts->high_water ? c->opts->high_water : 1024 * 1024;
}

static size_t low_water(const struct eddy_conn *c)
{
    size_t low = c->opts->low_water ? c->opts->low_water : high_water(c) / 4;
    return low > high_water(c) ? high_water(c) : low;
}

static unsigned read_budget(const struct eddy_conn *c)
{
    if (!c->opts->edge)
        return 1;
    return c->opts->read_budget ? c->opts->read_budget : 16;
}

static size_t input_len(const struct eddy_conn *c)
{
    return c->bufs ? c->bufs->in.len : 0;
}

/* Level mode asks epoll for exactly what the connection can use now; edge
 * mode registers reading and writing once and never calls epoll_ctl again,
 * so there it only needs the initial registration. */
static void update_interest(struct eddy_conn *c)
{
    if (c->opts->edge || c->state == EDDY_CONN_CLOSED)
        return;
    unsigned want = 0;
    if ((c->state == EDDY_CONN_OPEN && !(c->flags & (F_PAUSED | F_EOF))) ||
        (c->state == EDDY_CONN_LINGER))
        want |= EDDY_READ;
    if (pending(c))
        want |= EDDY_WRITE;
    int err = eddy_io_start(&c->io, want);
    if (err)
        eddy_conn_close(c, err);
}

static void free_files(struct eddy_conn *c)
{
    struct eddy__conn_bufs *b = c->bufs;
    while (b->files) {
        struct eddy__file_seg *seg = b->files;
        b->files = seg->next;
        close(seg->fd);
        eddy__buf_free(&seg->after, &net_of(c)->blocks);
        free(seg);
    }
    b->file_bytes = 0;
}

static void finish_close(struct eddy_conn *c)
{
    if (c->bufs) {
        free_files(c);
        c->bufs->in.len = 0;
        c->bufs->out.len = 0;
        trim(c);
    }
    c->cbs->on_close(c, c->status);
}

EDDY_API void eddy_conn_close(struct eddy_conn *c, int status)
{
    if (c->state == EDDY_CONN_CLOSED)
        return;
    c->state = EDDY_CONN_CLOSED;
    c->status = (int16_t)status;
    eddy_io_close(&c->io);
    /* The buffers may still be in use by the callback that called us, so
     * they are released with the rest, after this batch. */
    enqueue(c);
    settle(net_of(c));
}

static void schedule(struct eddy_conn *c, unsigned flag)
{
    if (c->state == EDDY_CONN_CLOSED)
        return;
    c->flags |= flag;
    enqueue(c);
}

/* Output left waiting starts the send timeout, which may come before the
 * slot the connection is in (an idle one may be in none). */
static void time_sending(struct eddy_conn *c)
{
    if (c->opts->send_timeout_ms && pending(c))
        retime(c);
}

static void enter_linger(struct eddy_conn *c)
{
    if ((c->flags & (F_NO_LINGER | F_EOF)) || shutdown(c->io.fd, SHUT_WR) < 0) {
        /* Asked not to linger, or the peer has closed: nothing to drain. */
        eddy_conn_close(c, 0);
        return;
    }
    c->state = EDDY_CONN_LINGER;
    if (c->bufs) {
        c->bufs->in.len = 0;
        trim(c);
    }
    uint64_t ms = c->opts->linger_ms ? c->opts->linger_ms : 2000;
    c->deadline = (uint32_t)(eddy_loop_now(c->io.loop) + (ms < TIMEOUT_MAX_MS ? ms : TIMEOUT_MAX_MS));
    c->flags |= F_DEADLINE;
    retime(c);
    if (c->state == EDDY_CONN_CLOSED)
        return;
    update_interest(c);
    if (c->opts->edge)
        schedule(c, F_REQUEUE);
}

/* Sends the head file part. Returns 1 when it is done (the bytes written
 * after it become the head of the output), 0 on EAGAIN, -errno on error. */
static int send_file_part(struct eddy_conn *c)
{
    struct eddy__conn_bufs *b = c->bufs;
    struct eddy__file_seg *seg = b->files;
    while (seg->len) {
        size_t chunk = seg->len < (1u << 30) ? (size_t)seg->len : (1u << 30);
        ssize_t n = sendfile(c->io.fd, seg->fd, &seg->off, chunk);
        if (n > 0) {
            seg->len -= (uint64_t)n;
            b->file_bytes -= (size_t)n;
            touch(c);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        return n == 0 ? -EIO : -errno;
    }
    b->files = seg->next;
    close(seg->fd);
    b->file_bytes -= seg->after.len;
    eddy__buf_free(&b->out, &net_of(c)->blocks);
    b->out = seg->after;
    free(seg);
    return 1;
}

/* Send flags for the queued bytes. When the connection closes as soon as
 * they are out (eddy_conn_finish()) and no file follows them, MSG_MORE holds
 * the last segment back for the close to carry the FIN in it: the peer gets
 * the reply and the end in one packet, and both kernels handle one fewer. */
static int send_flags(const struct eddy_conn *c)
{
    bool last = c->state == EDDY_CONN_SHUTDOWN && (c->flags & F_NO_LINGER) && !c->bufs->files;
    return last ? MSG_NOSIGNAL | MSG_MORE : MSG_NOSIGNAL;
}

/* Sends queued output. Returns false when the connection got closed. */
static bool flush(struct eddy_conn *c)
{
    struct eddy__conn_bufs *b = c->bufs;
    while (b) {
        if (b->out.len) {
            ssize_t n = send(c->io.fd, eddy__buf_head(&b->out), b->out.len, send_flags(c));
            if (n > 0) {
                eddy__buf_consume(&b->out, (size_t)n);
                touch(c);
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN)
                break;
            eddy_conn_close(c, n < 0 ? -errno : -EPIPE);
            return false;
        }
        if (!b->files)
            break;
        int rc = send_file_part(c);
        if (rc == 0)
            break;
        if (rc < 0) {
            eddy_conn_close(c, rc);
            return false;
        }
    }
    trim(c);
    if (pending(c) <= low_water(c)) {
        if (c->flags & F_PAUSED) {
            c->flags &= ~F_PAUSED;
            if (input_len(c))
                schedule(c, F_REDELIVER);
            if (c->opts->edge)
                schedule(c, F_REQUEUE);
        }
        if ((c->flags & F_HIGH) && c->cbs->on_drain) {
            c->flags &= ~F_HIGH;
            c->cbs->on_drain(c);
            if (c->state == EDDY_CONN_CLOSED)
                return false;
        }
    }
    if (pending(c) == 0 && (c->flags & F_NOTIFY_DRAIN))
        schedule(c, F_NOTIFY_DRAIN);
    if (pending(c) == 0 && c->state == EDDY_CONN_SHUTDOWN) {
        enter_linger(c);
        return c->state != EDDY_CONN_CLOSED;
    }
    time_sending(c);
    if (c->state != EDDY_CONN_CLOSED)
        update_interest(c);
    return c->state != EDDY_CONN_CLOSED;
}

/* Offers the buffered input to on_read, then sends what it wrote. */
static void deliver(struct eddy_conn *c)
{
    struct eddy_buf *in = &c->bufs->in;
    c->flags |= F_IN_READ_CB;
    size_t used = c->cbs->on_read(c, eddy__buf_head(in), in->len);
    c->flags &= ~F_IN_READ_CB;
    if (c->state == EDDY_CONN_CLOSED)
        return;
    if (c->state == EDDY_CONN_OPEN)
        eddy__buf_consume(in, used < in->len ? used : in->len);
    flush(c);
}

static void on_eof(struct eddy_conn *c)
{
    c->flags |= F_EOF;
    update_interest(c);
    if (c->state != EDDY_CONN_OPEN)
        return;
    if (c->cbs->on_eof) {
        c->cbs->on_eof(c);
        if (c->state != EDDY_CONN_CLOSED && !(c->flags & F_IN_READ_CB))
            flush(c);
    } else {
        eddy_conn_shutdown(c);
    }
}

/* LINGER: read and throw away what the peer still sends, so that closing
 * does not find unread data and answer with an RST, which could destroy
 * the reply still in flight. */
static void drain_input(struct eddy_conn *c)
{
    char sink[4096];
    for (size_t total = 0; total < LINGER_DRAIN_MAX;) {
        ssize_t n = read(c->io.fd, sink, sizeof sink);
        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        eddy_conn_close(c, 0);
        return;
    }
    if (c->opts->edge)
        schedule(c, F_REQUEUE);
}

static void do_read(struct eddy_conn *c)
{
    if (c->state == EDDY_CONN_LINGER) {
        drain_input(c);
        return;
    }
    unsigned budget = read_budget(c);
    for (unsigned i = 0; i < budget; i++) {
        if (c->state != EDDY_CONN_OPEN || (c->flags & (F_PAUSED | F_EOF)))
            return;
        size_t room = max_input(c) - input_len(c);
        if (room == 0) {
            /* The reader kept max_input bytes without consuming any. */
            eddy_conn_close(c, -ENOBUFS);
            return;
        }
        size_t want = read_size(c) < room ? read_size(c) : room;
        struct eddy__conn_bufs *b = get_bufs(c);
        int err = b ? eddy__buf_reserve(&b->in, want, &net_of(c)->blocks) : -ENOMEM;
        if (err) {
            eddy_conn_close(c, err);
            return;
        }
        ssize_t n = read(c->io.fd, eddy__buf_tail(&b->in), want);
        if (n > 0) {
            b->in.len += (size_t)n;
            touch(c);
            deliver(c);
            /* A short read emptied the socket, so a new edge will come for
             * new bytes; but not for an EOF or error that is already
             * queued behind them: read on to collect it. */
            if ((size_t)n < want && !(c->flags & F_PEER_DONE))
                return;
            continue;
        }
        trim(c);
        if (n == 0) {
            on_eof(c);
            return;
        }
        if (errno == EINTR) {
            i--;
            continue;
        }
        if (errno != EAGAIN)
            eddy_conn_close(c, -errno);
        return;
    }
    /* Edge mode used its budget with data possibly left: no new edge will
     * come for it, so come back after the others have had their turn. */
    if (c->opts->edge && c->state == EDDY_CONN_OPEN)
        schedule(c, F_REQUEUE);
}

static void deferred_work(struct eddy_conn *c)
{
    if (c->flags & F_REDELIVER) {
        c->flags &= ~F_REDELIVER;
        if (c->state == EDDY_CONN_OPEN && input_len(c) && !(c->flags & F_PAUSED))
            deliver(c);
    }
    if (c->state != EDDY_CONN_CLOSED && (c->flags & F_REQUEUE)) {
        c->flags &= ~F_REQUEUE;
        do_read(c);
    }
    if (c->state != EDDY_CONN_CLOSED && (c->flags & F_NOTIFY_DRAIN) && pending(c) == 0) {
        c->flags &= ~F_NOTIFY_DRAIN;
        if (c->cbs->on_drain)
            c->cbs->on_drain(c);
    }
}

/* Runs the work queued so far, oldest first; work queued meanwhile waits
 * for the next round, as the loop's own deferred work does. */
static void run_queue(struct eddy_defer *d)
{
    struct net *net = d->data;
    struct eddy_list batch;
    eddy_list_init(&batch);
    move_all(&net->queue, &batch);
    while (!eddy_list_empty(&batch)) {
        struct eddy_conn *c = eddy_list_entry(batch.prev, struct eddy_conn, link);
        eddy_list_remove(&c->link);
        c->flags &= ~F_QUEUED;
        if (c->state == EDDY_CONN_CLOSED) {
            finish_close(c);
            continue;
        }
        deferred_work(c);
        replace(c);
    }
    settle(net);
}

static void on_conn_io(struct eddy_io *io, unsigned events)
{
    struct eddy_conn *c = container_of(io, struct eddy_conn, io);
    if (events & (EDDY_RDHUP | EDDY_HUP | EDDY_ERR))
        c->flags |= F_PEER_DONE;
    if ((events & EDDY_WRITE) && pending(c) && !flush(c))
        return;
    if (events & EDDY_READ)
        do_read(c);
}

/* ---- timeouts ----------------------------------------------------------------- */

static void expire(struct eddy_conn *c, uint64_t now)
{
    if (c->state == EDDY_CONN_LINGER) {
        eddy_conn_close(c, 0);
        return;
    }
    if ((c->flags & F_DEADLINE) && deadline_passed(c, now)) {
        c->flags &= ~F_DEADLINE;
        if (!c->cbs->on_timeout) {
            eddy_conn_close(c, -ETIMEDOUT);
            return;
        }
        c->cbs->on_timeout(c);
        if (c->state == EDDY_CONN_CLOSED || c->state == EDDY_CONN_LINGER)
            return;
    }
    uint64_t quiet = quiet_limit(c);
    if (quiet && since(now, c->last_io) >= quiet)
        eddy_conn_close(c, -ETIMEDOUT);
}

static void on_wheel(struct eddy_timer *t)
{
    struct net *net = t->data;
    uint64_t now = eddy_loop_now(net->loop);
    uint64_t target = now / TICK_MS;
    uint64_t from = net->tick + 1;
    if (target >= from + SLOTS)
        from = target - SLOTS + 1;
    net->tick = target;
    struct eddy_list due;
    eddy_list_init(&due);
    for (uint64_t k = from; k <= target; k++)
        move_all(&net->wheel[k % SLOTS], &due);
    while (!eddy_list_empty(&due)) {
        struct eddy_conn *c = eddy_list_entry(due.prev, struct eddy_conn, link);
        unlink_conn(c);
        if (due_of(c, now) <= now)
            expire(c, now);
        replace(c);
    }
    for (uint64_t k = target + 1; net->timed && k < target + SLOTS; k++) {
        if (!eddy_list_empty(&net->wheel[k % SLOTS])) {
            (void)arm(net, k);
            break;
        }
    }
    settle(net);
}

EDDY_API int eddy_conn_set_timeout(struct eddy_conn *c, uint64_t ms)
{
    if (c->state == EDDY_CONN_CLOSED || c->state == EDDY_CONN_LINGER)
        return 0;
    if (ms) {
        c->deadline = (uint32_t)(eddy_loop_now(c->io.loop) + (ms < TIMEOUT_MAX_MS ? ms : TIMEOUT_MAX_MS));
        c->flags |= F_DEADLINE;
    } else {
        c->flags &= ~F_DEADLINE;
    }
    retime(c);
    return c->state == EDDY_CONN_CLOSED ? -ENOMEM : 0;
}

/* ---- the public connection API ------------------------------------------------ */

EDDY_API int eddy_conn_open(struct eddy_loop *loop, struct eddy_conn *c, int fd,
                            const struct eddy_conn_opts *opts, const struct eddy_conn_cbs *cbs)
{
    struct net *net = net_get(loop);
    c->cbs = cbs;
    c->opts = opts;
    c->state = EDDY_CONN_OPEN;
    c->status = 0;
    c->flags = 0;
    c->bufs = NULL;
    c->deadline = 0;
    eddy_io_init(loop, &c->io, fd, on_conn_io);
    c->io.data = net;
    eddy_list_init(&c->link);
    touch(c);
    int err = -ENOMEM;
    if (net) {
        unsigned events = opts->edge ? EDDY_READ | EDDY_WRITE | EDDY_EDGE : EDDY_READ;
        err = eddy_io_start(&c->io, events);
        if (!err && (err = place(c)) < 0) {
            unlink_conn(c);
            settle(net);
        }
    }
    if (err) {
        eddy_io_stop(&c->io);
        close(fd);
        c->io.fd = -1;
        c->state = EDDY_CONN_CLOSED;
        return err;
    }
    return 0;
}

EDDY_API struct eddy_loop *eddy_conn_loop(const struct eddy_conn *c)
{
    return c->io.loop;
}

EDDY_API void eddy_conn_each(struct eddy_loop *loop, void (*fn)(struct eddy_conn *c, void *arg),
                             void *arg)
{
    struct net *net = eddy_loop_attached(loop, &net_key);
    if (!net)
        return;
    struct eddy_list todo;
    eddy_list_init(&todo);
    move_all(&net->untimed, &todo);
    for (size_t i = 0; i < SLOTS; i++)
        move_all(&net->wheel[i], &todo);
    /* Each connection goes back to its slot before fn sees it, so a
     * connection that fn closes or shuts down leaves `todo` for good. */
    while (!eddy_list_empty(&todo)) {
        struct eddy_conn *c = eddy_list_entry(todo.prev, struct eddy_conn, link);
        unlink_conn(c);
        int err = place(c);
        if (err)
            eddy_conn_close(c, err);
        else
            fn(c, arg);
    }
    settle(net);
}

static struct eddy__file_seg *last_file(const struct eddy_conn *c)
{
    struct eddy__file_seg *seg = c->bufs ? c->bufs->files : NULL;
    while (seg && seg->next)
        seg = seg->next;
    return seg;
}

/* Output is queued behind the last file part, if any, to keep its order. */
static void queued(struct eddy_conn *c)
{
    if (pending(c) > high_water(c))
        c->flags |= F_PAUSED | F_HIGH;
    /* Inside on_read, deliver() flushes when the callback returns. */
    if (!(c->flags & F_IN_READ_CB)) {
        time_sending(c);
        if (c->state != EDDY_CONN_CLOSED)
            update_interest(c);
    }
}

static int queue_bytes(struct eddy_conn *c, const char *p, size_t len)
{
    struct eddy__conn_bufs *b = get_bufs(c);
    int err = -ENOMEM;
    if (b) {
        struct eddy__file_seg *seg = last_file(c);
        err = eddy__buf_append(seg ? &seg->after : &b->out, p, len, &net_of(c)->blocks);
        if (!err && seg)
            b->file_bytes += len;
    }
    if (err) {
        eddy_conn_close(c, err);
        return err;
    }
    queued(c);
    return 0;
}

EDDY_API int eddy_conn_sendfile(struct eddy_conn *c, int fd, uint64_t offset, uint64_t len)
{
    if (c->state != EDDY_CONN_OPEN) {
        close(fd);
        return -EPIPE;
    }
    if (len == 0) {
        close(fd);
        return 0;
    }
    struct eddy__conn_bufs *b = get_bufs(c);
    struct eddy__file_seg *seg = b ? calloc(1, sizeof *seg) : NULL;
    if (!seg) {
        close(fd);
        eddy_conn_close(c, -ENOMEM);
        return -ENOMEM;
    }
    seg->fd = fd;
    seg->off = (off_t)offset;
    seg->len = len;
    struct eddy__file_seg *tail = last_file(c);
    if (tail)
        tail->next = seg;
    else
        b->files = seg;
    b->file_bytes += len;
    queued(c);
    /* Outside a read callback, start sending at once, as a write would. */
    if (!(c->flags & F_IN_READ_CB))
        flush(c);
    return 0;
}

EDDY_API int eddy_conn_write(struct eddy_conn *c, const void *buf, size_t len)
{
    if (c->state != EDDY_CONN_OPEN)
        return -EPIPE;
    if (len == 0)
        return 0;
    const char *p = buf;
    /* Write first, buffer only what the kernel does not take. */
    if (!(c->flags & F_IN_READ_CB) && pending(c) == 0) {
        for (;;) {
            ssize_t n = send(c->io.fd, p, len, MSG_NOSIGNAL);
            if (n >= 0) {
                p += n;
                len -= (size_t)n;
                touch(c);
                if (len == 0)
                    return 0;
                continue;
            }
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            int err = -errno;
            eddy_conn_close(c, err);
            return err;
        }
    }
    return queue_bytes(c, p, len);
}

EDDY_API size_t eddy_conn_pending(const struct eddy_conn *c)
{
    return pending(c);
}

EDDY_API bool eddy_conn_congested(const struct eddy_conn *c)
{
    return (c->flags & F_PAUSED) != 0;
}

EDDY_API void eddy_conn_notify_drain(struct eddy_conn *c)
{
    if (c->state == EDDY_CONN_CLOSED)
        return;
    c->flags |= F_NOTIFY_DRAIN;
    if (pending(c) == 0)
        schedule(c, F_NOTIFY_DRAIN);
}

EDDY_API void eddy_conn_shutdown(struct eddy_conn *c)
{
    if (c->state != EDDY_CONN_OPEN)
        return;
    c->state = EDDY_CONN_SHUTDOWN;
    if (c->bufs) {
        c->bufs->in.len = 0;
        c->bufs->in.off = 0;
    }
    /* Inside on_read, deliver() flushes when the callback returns. */
    if (!(c->flags & F_IN_READ_CB))
        flush(c);
}

EDDY_API void eddy_conn_finish(struct eddy_conn *c)
{
    if (c->state != EDDY_CONN_OPEN)
        return;
    c->flags |= F_NO_LINGER;
    eddy_conn_shutdown(c);
}

EDDY_API int eddy_conn_fd(const struct eddy_conn *c)
{
    return c->io.fd;
}

EDDY_API char *eddy_conn_peer(const struct eddy_conn *c, char *buf, size_t size)
{
    struct eddy_addr a;
    a.len = sizeof a.ss;
    if (c->io.fd < 0 || getpeername(c->io.fd, (struct sockaddr *)&a.ss, &a.len) < 0) {
        snprintf(buf, size, "unknown");
        return buf;
    }
    if (a.ss.ss_family == AF_UNIX) {
        snprintf(buf, size, "unix");
        return buf;
    }
    return eddy_addr_format(&a, buf, size);
}
