/* eddy-load: the client engine of one thread. One event loop drives this
 * thread's share of the connections ("slots"). A slot connects (socket and
 * non-blocking connect here, watched with an eddy_io until writable), then
 * hands the socket to eddy_conn_open() and from there on uses only the
 * public connection API.
 *
 * Every request in flight has a start time in its slot's ring: when it was
 * written (closed loop), or when it was scheduled (open loop, --rate), so a
 * server that stalls is charged for every request that waited behind the
 * stall, not only for the one that was late (no coordinated omission).
 * Replies are matched to requests in order: by length for echo and fixed,
 * by HTTP framing for http. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "eddy-load.h"
#include "eddy-load-http.h"

/* The echo stream of a connection: its byte i is pattern[i % PERIOD]. The
 * period is prime, so unless the message size is a multiple of it, a lost,
 * repeated or reordered message shifts the stream and shows as a
 * mismatch. CHUNK is the most written or compared in one step. */
#define PERIOD 251
#define CHUNK  65536
static char pattern[PERIOD + CHUNK];

enum slot_state {
    SLOT_IDLE,       /* no socket */
    SLOT_CONNECTING, /* connect() in progress, watched by io */
    SLOT_OPEN,       /* an eddy_conn */
    SLOT_CLOSING,    /* eddy_conn_close() called; on_close pending */
};

struct load_slot {
    struct load_worker *w;
    enum slot_state state;
    bool fated;        /* how this connection ended is settled */
    int fate;          /* ERR_*; -1: requests in flight are sent again */
    bool closing;      /* the server announced it closes: send no more */
    bool timer_on;     /* the reply deadline is set */
    struct eddy_io io; /* while connecting */
    struct eddy_timer connect_timer;
    struct eddy_defer kick; /* retries after a failed connect */
    struct eddy_conn conn;
    struct eddy_list link; /* in w->ready (rate mode) */
    uint64_t *starts;      /* ring of depth start times */
    unsigned head;
    unsigned count;    /* requests in flight (assigned) */
    unsigned unsent;   /* of those, not written yet */
    uint64_t sent_pos; /* echo: stream bytes written */
    uint64_t recv_pos; /* echo: stream bytes verified */
    uint64_t got;      /* echo, fixed: bytes of the current reply */
    size_t kept;       /* input left unconsumed by the last on_read */
    struct http_resp resp;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Counters the main thread reads for the progress line: only this thread
 * writes them, so a plain read and a relaxed atomic store suffice. */
static void bump(uint64_t *p, uint64_t n)
{
    __atomic_store_n(p, *p + n, __ATOMIC_RELAXED);
}

static void __attribute__((format(printf, 3, 4)))
record_error(struct load_worker *w, enum load_error kind, const char *fmt, ...)
{
    bump(&w->stats.errors[kind], 1);
    if (w->stats.first_error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->stats.first_error, sizeof w->stats.first_error, fmt, ap);
    va_end(ap);
    w->stats.first_error_ns = now_ns();
}

static void slot_changed(struct load_slot *s);
static void finish(struct load_worker *w);

/* ---- requests in flight -------------------------------------------------- */

static bool counted(const struct load_worker *w, uint64_t start)
{
    return start >= w->measure_ns;
}

/* May a request starting at `start` be issued? Warm-up requests do not
 * count toward --requests. */
static bool may_issue(const struct load_worker *w, uint64_t start)
{
    return !w->cfg->requests || !counted(w, start) || w->to_issue > 0;
}

static void assign(struct load_slot *s, uint64_t start)
{
    struct load_worker *w = s->w;
    s->starts[(s->head + s->count) % w->cfg->depth] = start;
    s->count++;
    s->unsent++;
    w->inflight++;
    if (w->cfg->requests && counted(w, start))
        w->to_issue--;
}

/* The oldest request got its answer: ok, or a reply that failed
 * verification. */
static void complete(struct load_slot *s, uint64_t now, bool ok)
{
    struct load_worker *w = s->w;
    uint64_t start = s->starts[s->head];
    s->head = (s->head + 1) % w->cfg->depth;
    s->count--;
    w->inflight--;
    if (!counted(w, start))
        return;
    if (ok) {
        bump(&w->stats.ok, 1);
        hist_record(&w->stats.latency, now > start ? now - start : 0);
    } else {
        bump(&w->stats.failed, 1);
    }
}

static void push_requeue(struct load_worker *w, uint64_t start)
{
    if (w->requeue_len == w->requeue_cap) {
        size_t cap = w->requeue_cap ? 2 * w->requeue_cap : 64;
        uint64_t *bigger = realloc(w->requeue, cap * sizeof *bigger);
        if (!bigger) {
            /* Out of memory: the request cannot be sent again. */
            if (counted(w, start))
                bump(&w->stats.failed, 1);
            if (w->cfg->requests && counted(w, start))
                w->to_issue--;
            return;
        }
        w->requeue = bigger;
        w->requeue_cap = cap;
    }
    w->requeue[w->requeue_len++] = start;
}

enum settle { SETTLE_FAIL, SETTLE_REQUEUE, SETTLE_DROP };

/* Settles every request still in flight on a connection that ended:
 * failed (it went wrong), sent again (the server announced the close, so
 * they were never refused), or dropped (the run is over). */
static void settle_all(struct load_slot *s, enum settle how)
{
    struct load_worker *w = s->w;
    for (unsigned i = 0; i < s->count; i++) {
        uint64_t start = s->starts[(s->head + i) % w->cfg->depth];
        if (how == SETTLE_FAIL && counted(w, start))
            bump(&w->stats.failed, 1);
        if (how != SETTLE_REQUEUE)
            continue;
        if (w->cfg->requests && counted(w, start))
            w->to_issue++;
        /* The open loop keeps each request's scheduled time; the closed
         * loop just sends another. */
        if (w->rate > 0)
            push_requeue(w, start);
    }
    w->inflight -= s->count;
    s->count = 0;
    s->unsent = 0;
    s->head = 0;
}

static void check_done(struct load_worker *w)
{
    if (w->cfg->requests && !w->stopping && w->to_issue == 0 && w->requeue_len == 0 &&
        w->inflight == 0)
        finish(w);
}

/* ---- sending ----------------------------------------------------------------- */

/* Keeps a deadline on the oldest reply: set while requests are in flight,
 * moved on by every reply (progress), removed when none is waiting. */
static void update_deadline(struct load_slot *s, bool progressed)
{
    if (s->state != SLOT_OPEN)
        return;
    if (s->count > 0 || s->closing) {
        if (progressed || !s->timer_on) {
            eddy_conn_set_timeout(&s->conn, s->w->cfg->timeout_ms);
            s->timer_on = true;
        }
    } else if (s->timer_on) {
        eddy_conn_set_timeout(&s->conn, 0);
        s->timer_on = false;
    }
}

/* Writes the requests assigned but not yet written, in one or a few
 * writes. */
static void transmit(struct load_slot *s, uint64_t now)
{
    struct load_worker *w = s->w;
    const struct load_config *cfg = w->cfg;
    if (s->state != SLOT_OPEN || s->unsent == 0)
        return;
    unsigned n = s->unsent;
    s->unsent = 0;
    update_deadline(s, false);
    size_t total;
    if (cfg->mode == MODE_ECHO) {
        total = (size_t)n * cfg->size;
        for (size_t left = total; left > 0;) {
            size_t k = left < CHUNK ? left : CHUNK;
            if (eddy_conn_write(&s->conn, pattern + s->sent_pos % PERIOD, k) < 0)
                return; /* closed; on_close settles the requests */
            s->sent_pos += k;
            left -= k;
        }
    } else {
        total = (size_t)n * cfg->request_len;
        if (eddy_conn_write(&s->conn, w->batch, total) < 0)
            return;
    }
    if (now >= w->measure_ns)
        bump(&w->stats.bytes_sent, total);
}

/* ---- connecting -------------------------------------------------------------- */

static size_t on_read(struct eddy_conn *c, char *data, size_t len);
static void on_eof(struct eddy_conn *c);
static void on_timeout(struct eddy_conn *c);
static void on_close(struct eddy_conn *c, int status);

/* Reading never pauses for unsent output (high_water out of reach): an echo
 * client that stopped reading while its own requests queue up would
 * deadlock with a server that stops reading while its replies queue up. */
static const struct eddy_conn_opts conn_opts = {
    .read_size = 65536,
    .high_water = (size_t)1 << 50,
};
static const struct eddy_conn_cbs conn_cbs = {
    .on_read = on_read,
    .on_eof = on_eof,
    .on_timeout = on_timeout,
    .on_close = on_close,
};

static void on_kick(struct eddy_defer *d)
{
    slot_changed(d->data);
}

static void connect_failed(struct load_slot *s, int err, const char *what)
{
    struct load_worker *w = s->w;
    s->state = SLOT_IDLE;
    enum load_error kind = err == -ECONNREFUSED || err == -ENOENT ? ERR_REFUSED
                           : err == -ETIMEDOUT                    ? ERR_TIMEOUT
                                                                  : ERR_CONNECT;
    record_error(w, kind, "%s %s: %s%s", what, w->cfg->target_text, eddy_strerror(err),
                 err == -EADDRNOTAVAIL ? " (out of local ports? see --source-addrs)" : "");
    uint64_t now = now_ns();
    if (s->count) {
        settle_all(s, SETTLE_FAIL);
    } else if (w->cfg->requests && counted(w, now) && w->to_issue > 0) {
        /* A connection that cannot be made fails the request it would have
         * carried, so that -n ends against a server that is down. */
        w->to_issue--;
        bump(&w->stats.failed, 1);
    }
    /* Retry after the current batch: a connect that fails at once must not
     * recurse, nor starve the other connections. */
    eddy_defer_start(&s->kick, on_kick);
    check_done(w);
}

static void connected(struct load_slot *s, int fd)
{
    struct load_worker *w = s->w;
    int err = eddy_conn_open(w->loop, &s->conn, fd, &conn_opts, &conn_cbs);
    if (err) {
        connect_failed(s, err, "open connection to");
        return;
    }
    s->conn.data = s;
    s->state = SLOT_OPEN;
    bump(&w->stats.connects, 1);
    transmit(s, now_ns());
    slot_changed(s);
}

static void on_connect_io(struct eddy_io *io, unsigned events)
{
    (void)events;
    struct load_slot *s = io->data;
    int fd = io->fd;
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    eddy_io_stop(io);
    eddy_timer_stop(&s->connect_timer);
    if (soerr) {
        close(fd);
        connect_failed(s, -soerr, "connect to");
        return;
    }
    connected(s, fd);
}

static void on_connect_timeout(struct eddy_timer *t)
{
    struct load_slot *s = t->data;
    eddy_io_close(&s->io);
    connect_failed(s, -ETIMEDOUT, "connect to");
}

static int bind_source(struct load_worker *w, int fd)
{
    const struct load_config *cfg = w->cfg;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(cfg->src_first + w->src_next++ % cfg->src_count);
    /* Bind the address only: the port is picked at connect(), per
     * destination, so each source address has the whole port range. */
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    return bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ? -errno : 0;
}

static void slot_connect(struct load_slot *s)
{
    struct load_worker *w = s->w;
    const struct load_config *cfg = w->cfg;
    s->sent_pos = s->recv_pos = s->got = 0;
    s->kept = 0;
    s->fated = false;
    s->fate = -1;
    s->closing = false;
    s->timer_on = false;
    http_resp_init(&s->resp);

    int family = cfg->target.ss.ss_family;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        connect_failed(s, -errno, "socket for");
        return;
    }
    if (family != AF_UNIX) {
        /* Small requests must leave at once, not wait for Nagle. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (cfg->src_count) {
        int err = bind_source(w, fd);
        if (err) {
            close(fd);
            connect_failed(s, err, "bind a source address for");
            return;
        }
    }
    s->state = SLOT_CONNECTING;
    if (connect(fd, (const struct sockaddr *)&cfg->target.ss, cfg->target.len) == 0) {
        connected(s, fd);
        return;
    }
    if (errno != EINPROGRESS) {
        int err = -errno;
        close(fd);
        connect_failed(s, err, "connect to");
        return;
    }
    eddy_io_init(w->loop, &s->io, fd, on_connect_io);
    s->io.data = s;
    int err = eddy_io_start(&s->io, EDDY_WRITE);
    if (!err)
        err = eddy_timer_start(&s->connect_timer, on_connect_timeout, cfg->timeout_ms, 0);
    if (err) {
        eddy_io_close(&s->io);
        connect_failed(s, err, "watch the connect to");
    }
}

/* ---- scheduling -------------------------------------------------------------- */

/* Can the slot take requests now? The connection may have been closed by
 * a failed write, with its on_close still to come. */
static bool writable(const struct load_slot *s)
{
    return s->state == SLOT_OPEN && s->conn.state == EDDY_CONN_OPEN && !s->closing;
}

static bool is_ready(const struct load_slot *s)
{
    const struct load_worker *w = s->w;
    if (w->stopping)
        return false;
    if (w->cfg->new_conn)
        return s->state == SLOT_IDLE && !eddy_defer_active(&s->kick);
    return writable(s) && s->count < w->cfg->depth;
}

static void update_ready(struct load_slot *s)
{
    bool in = !eddy_list_empty(&s->link);
    bool want = is_ready(s);
    if (want && !in)
        eddy_list_push(s->w->ready.prev, &s->link); /* at the tail */
    else if (!want && in)
        eddy_list_remove(&s->link);
}

/* When the k-th request of this thread is due, in the open loop. */
static uint64_t sched_time(const struct load_worker *w, uint64_t k)
{
    return w->start_ns + (uint64_t)((double)k * 1e9 / w->rate);
}

static void arm_rate_timer(struct load_worker *w, uint64_t at)
{
    if (w->rate_armed_ns == at)
        return;
    struct itimerspec its = {.it_value = {(time_t)(at / 1000000000u), (long)(at % 1000000000u)}};
    if (timerfd_settime(w->rate_io.fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
        w->rate_armed_ns = at;
}

/* Open loop: hands every request that is due to the ready slots, round
 * robin, then writes each slot's share at once. Requests due while no slot
 * is ready wait (their latency counting from when they were due) until a
 * slot becomes ready, which calls this again. */
static void dispatch(struct load_worker *w)
{
    if (w->dispatching || w->stopping)
        return;
    w->dispatching = true;
    const struct load_config *cfg = w->cfg;
    uint64_t now = now_ns();
    unsigned ntouched = 0;
    while (!eddy_list_empty(&w->ready)) {
        uint64_t start;
        if (w->requeue_len) {
            start = w->requeue[--w->requeue_len];
        } else {
            start = sched_time(w, w->sched_next);
            if (start > now) {
                /* Sub-millisecond precision: a timerfd, since the loop's own
                 * timers count whole milliseconds. */
                arm_rate_timer(w, start);
                break;
            }
            if (!may_issue(w, start))
                break;
            w->sched_next++;
        }
        struct load_slot *s = eddy_list_entry(w->ready.next, struct load_slot, link);
        eddy_list_remove(&s->link);
        assign(s, start);
        if (cfg->new_conn) {
            slot_connect(s);
            continue;
        }
        if (s->unsent == 1)
            w->touched[ntouched++] = s;
        if (s->count < cfg->depth)
            eddy_list_push(w->ready.prev, &s->link);
    }
    for (unsigned i = 0; i < ntouched; i++)
        transmit(w->touched[i], now);
    w->dispatching = false;
}

static void on_rate_timer(struct eddy_io *io, unsigned events)
{
    (void)events;
    struct load_worker *w = io->data;
    uint64_t expirations;
    if (read(io->fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
        return;
    w->rate_armed_ns = 0;
    dispatch(w);
}

/* Closed loop: once every reply of the slot's last batch is in, sends the
 * next --pipeline requests in one write (or, with --new-conn, starts the
 * next connection) while the budget lasts. Batches, not a sliding window:
 * what redis-benchmark -P and wrk's pipelining scripts send, so a server
 * sees the same traffic from each and their figures compare. */
static void fill(struct load_slot *s)
{
    struct load_worker *w = s->w;
    const struct load_config *cfg = w->cfg;
    uint64_t now = now_ns();
    if (cfg->new_conn) {
        if (s->state == SLOT_IDLE && may_issue(w, now)) {
            assign(s, now);
            slot_connect(s);
        }
        return;
    }
    if (!writable(s) || s->count > 0)
        return;
    while (s->count < cfg->depth && may_issue(w, now))
        assign(s, now);
    transmit(s, now);
}

/* Something about the slot changed (connected, replies came, closed):
 * reconnect it, or give it work. */
static void slot_changed(struct load_slot *s)
{
    struct load_worker *w = s->w;
    if (w->stopping)
        return;
    if (s->state == SLOT_IDLE && !w->cfg->new_conn) {
        if (!eddy_defer_active(&s->kick))
            slot_connect(s);
        return;
    }
    if (w->rate > 0) {
        update_ready(s);
        dispatch(w);
    } else {
        fill(s);
    }
    check_done(w);
}

/* ---- replies ------------------------------------------------------------------ */

/* Ends the connection because of an error of `kind`; the requests in
 * flight fail (in on_close). */
static void __attribute__((format(printf, 3, 4)))
slot_fail(struct load_slot *s, enum load_error kind, const char *fmt, ...)
{
    if (s->fated)
        return;
    s->fated = true;
    s->fate = (int)kind;
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    record_error(s->w, kind, "%s: %s", s->w->cfg->target_text, what);
    s->state = SLOT_CLOSING;
    eddy_conn_close(&s->conn, 0);
}

/* Ends the connection without blame: requests still in flight are sent
 * again on another. */
static void slot_close(struct load_slot *s)
{
    if (!s->fated) {
        s->fated = true;
        s->fate = -1;
    }
    s->state = SLOT_CLOSING;
    eddy_conn_close(&s->conn, 0);
}

static void http_done(struct load_slot *s, uint64_t now)
{
    struct load_worker *w = s->w;
    int status = s->resp.status;
    bool ok = status >= 200 && status <= 299;
    if (counted(w, s->starts[s->head]))
        bump(&w->stats.status[status >= 100 && status <= 599 ? status / 100 : 0], 1);
    if (!ok)
        record_error(w, ERR_STATUS, "%s: HTTP status %d", w->cfg->target_text, status);
    complete(s, now, ok);
    if (!s->resp.keep_alive)
        s->closing = true;
}

/* Verifies echo bytes against the stream that was sent. */
static bool echo_matches(const struct load_slot *s, const char *p, size_t n)
{
    uint64_t pos = s->recv_pos;
    while (n > 0) {
        size_t k = n < CHUNK ? n : CHUNK;
        if (memcmp(p, pattern + pos % PERIOD, k) != 0)
            return false;
        p += k;
        pos += k;
        n -= k;
    }
    return true;
}

static size_t on_read(struct eddy_conn *c, char *data, size_t len)
{
    struct load_slot *s = c->data;
    struct load_worker *w = s->w;
    const struct load_config *cfg = w->cfg;
    uint64_t now = now_ns();
    /* Bytes kept from the last call are offered again: count new ones. */
    if (now >= w->measure_ns)
        bump(&w->stats.bytes_received, len - s->kept);
    size_t reply_len = cfg->mode == MODE_ECHO ? cfg->size : cfg->reply_len;
    size_t pos = 0;
    bool progressed = false;
    while (pos < len) {
        if (s->count == 0) {
            slot_fail(s, cfg->mode == MODE_HTTP ? ERR_FRAMING : ERR_MISMATCH,
                      "%zu bytes more than the replies asked for", len - pos);
            return len;
        }
        if (cfg->mode == MODE_HTTP) {
            size_t used;
            enum http_resp_result r = http_resp_feed(&s->resp, data + pos, len - pos, &used);
            pos += used;
            if (r == HTTP_RESP_ERROR) {
                slot_fail(s, ERR_FRAMING, "bad response: %s", s->resp.error);
                return len;
            }
            if (r == HTTP_RESP_MORE)
                break;
            http_done(s, now);
            progressed = true;
            if (s->closing)
                break;
            continue;
        }
        size_t k = len - pos;
        if (k > reply_len - s->got)
            k = reply_len - s->got;
        if (cfg->mode == MODE_ECHO && !echo_matches(s, data + pos, k)) {
            slot_fail(s, ERR_MISMATCH, "echo reply differs from the request (near byte %llu)",
                      (unsigned long long)s->recv_pos);
            return len;
        }
        s->recv_pos += k;
        s->got += k;
        pos += k;
        if (s->got == reply_len) {
            s->got = 0;
            complete(s, now, true);
            progressed = true;
            /* --new-conn: one reply per connection. Anything after it is
             * reported above as bytes nobody asked for. */
            if (cfg->new_conn && pos == len) {
                slot_close(s);
                return len;
            }
        }
    }
    if (s->closing) {
        if (pos < len) {
            slot_fail(s, ERR_FRAMING, "%zu bytes after the response that closes", len - pos);
            return len;
        }
        /* The server said it closes: requests after this response will not
         * be answered; send them again elsewhere. Otherwise wait for its
         * close, so that the TIME_WAIT stays on its side. */
        if (s->count > 0 || !cfg->new_conn) {
            slot_close(s);
            return len;
        }
    } else if (cfg->new_conn && s->count == 0) {
        slot_close(s);
        return len;
    }
    s->kept = len - pos;
    update_deadline(s, progressed);
    if (progressed)
        slot_changed(s);
    return pos;
}

static void on_eof(struct eddy_conn *c)
{
    struct load_slot *s = c->data;
    if (s->w->cfg->mode == MODE_HTTP && http_resp_eof(&s->resp))
        http_done(s, now_ns());
    if (s->count > 0 && !s->closing) {
        bool midway = s->got > 0 || !http_resp_idle(&s->resp);
        slot_fail(s, ERR_EOF, "the server closed the connection %s (%u requests unanswered)",
                  midway ? "in the middle of a reply" : "before replying", s->count);
        return;
    }
    slot_close(s);
}

static void on_timeout(struct eddy_conn *c)
{
    struct load_slot *s = c->data;
    s->timer_on = false;
    if (s->count == 0) {
        /* Waiting only for an announced close: not worth an error. */
        slot_close(s);
        return;
    }
    slot_fail(s, ERR_TIMEOUT, "no reply within %.3g s (%u requests unanswered)",
              (double)s->w->cfg->timeout_ms / 1000.0, s->count);
}

static void on_close(struct eddy_conn *c, int status)
{
    struct load_slot *s = c->data;
    struct load_worker *w = s->w;
    if (!s->fated) {
        s->fated = true;
        s->fate = status == -ENOBUFS ? ERR_FRAMING : status == -ETIMEDOUT ? ERR_TIMEOUT : ERR_RESET;
        record_error(w, (enum load_error)s->fate, "%s: connection failed: %s", w->cfg->target_text,
                     eddy_strerror(status));
    }
    settle_all(s, w->stopping ? SETTLE_DROP : s->fate < 0 ? SETTLE_REQUEUE : SETTLE_FAIL);
    s->state = SLOT_IDLE;
    slot_changed(s);
    check_done(w);
}

/* ---- the worker ------------------------------------------------------------------ */

static void finish(struct load_worker *w)
{
    if (w->stopping)
        return;
    w->stopping = true;
    w->end_ns = now_ns();
    if (w->rate > 0) {
        /* Requests that came due but found no connection ready: the rate
         * was not reached, and the report must say so. Those due in the
         * last millisecond may just not have had their turn yet. */
        uint64_t upto = w->end_ns - w->start_ns;
        upto = upto > 1000000 ? upto - 1000000 : 0;
        uint64_t due = (uint64_t)((double)upto * w->rate / 1e9) + 1;
        uint64_t behind = (due > w->sched_next ? due - w->sched_next : 0) + w->requeue_len;
        if (w->cfg->requests && behind > w->to_issue)
            behind = w->to_issue;
        w->stats.unsent = behind;
    }
    eddy_timer_stop(&w->end_timer);
    if (w->rate_io.fd >= 0)
        eddy_io_close(&w->rate_io);
    for (unsigned i = 0; i < w->conns; i++) {
        struct load_slot *s = &w->slots[i];
        eddy_defer_stop(&s->kick);
        if (!eddy_list_empty(&s->link))
            eddy_list_remove(&s->link);
        if (s->state == SLOT_CONNECTING) {
            eddy_timer_stop(&s->connect_timer);
            eddy_io_close(&s->io);
            settle_all(s, SETTLE_DROP);
            s->state = SLOT_IDLE;
        } else if (s->state == SLOT_OPEN) {
            slot_close(s);
        }
    }
}

static void on_end(struct eddy_timer *t)
{
    finish(t->data);
}

static void start(struct load_worker *w)
{
    const struct load_config *cfg = w->cfg;
    /* The loop was made on the main thread a while ago: its cached clock,
     * which timers start from, must be brought up to now. */
    eddy_loop_update_time(w->loop);
    w->measure_ns = w->start_ns + cfg->warmup_ns;
    w->to_issue = w->requests;
    if (cfg->duration_ns) {
        uint64_t end = w->measure_ns + cfg->duration_ns, now = now_ns();
        uint64_t ms = end > now ? (end - now + 999999) / 1000000 : 0;
        if (eddy_timer_start(&w->end_timer, on_end, ms, 0) < 0) {
            record_error(w, ERR_CONNECT, "no memory for a timer");
            finish(w);
            return;
        }
    }
    if (w->rate > 0) {
        int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        eddy_io_init(w->loop, &w->rate_io, fd, on_rate_timer);
        w->rate_io.data = w;
        int err = fd < 0 ? -errno : eddy_io_start(&w->rate_io, EDDY_READ);
        if (err) {
            record_error(w, ERR_CONNECT, "timerfd: %s", eddy_strerror(err));
            if (fd >= 0)
                eddy_io_close(&w->rate_io);
            w->rate_io.fd = -1;
            finish(w);
            return;
        }
    }
    for (unsigned i = 0; i < w->conns && !w->stopping; i++)
        slot_changed(&w->slots[i]);
    check_done(w);
}

static void init_pattern(void)
{
    /* Printable, so a captured stream is readable. */
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = alphabet[(i % PERIOD) % (sizeof alphabet - 1)];
}

int load_worker_init(struct load_worker *w)
{
    const struct load_config *cfg = w->cfg;
    /* Called from the main thread before any worker runs. */
    if (!pattern[0])
        init_pattern();
    int err = eddy_loop_new(&w->loop);
    if (err)
        return err;
    hist_init(&w->stats.latency);
    eddy_list_init(&w->ready);
    eddy_timer_init(w->loop, &w->end_timer);
    w->end_timer.data = w;
    w->rate_io.fd = -1;
    w->src_next = w->index;
    w->slots = calloc(w->conns, sizeof *w->slots);
    w->starts = calloc((size_t)w->conns * cfg->depth, sizeof *w->starts);
    w->touched = calloc(w->conns, sizeof *w->touched);
    if (cfg->mode != MODE_ECHO && cfg->request_len)
        w->batch = malloc(cfg->request_len * cfg->depth);
    if (!w->slots || !w->starts || !w->touched ||
        (cfg->mode != MODE_ECHO && cfg->request_len && !w->batch))
        return -ENOMEM;
    for (unsigned i = 0; cfg->mode != MODE_ECHO && i < cfg->depth; i++)
        memcpy(w->batch + i * cfg->request_len, cfg->request, cfg->request_len);
    for (unsigned i = 0; i < w->conns; i++) {
        struct load_slot *s = &w->slots[i];
        s->w = w;
        s->starts = w->starts + (size_t)i * cfg->depth;
        s->fate = -1;
        eddy_list_init(&s->link);
        eddy_timer_init(w->loop, &s->connect_timer);
        s->connect_timer.data = s;
        eddy_defer_init(w->loop, &s->kick);
        s->kick.data = s;
        s->io.fd = -1;
    }
    return 0;
}

void *load_worker_main(void *arg)
{
    struct load_worker *w = arg;
    start(w);
    eddy_loop_run(w->loop, EDDY_RUN_DEFAULT);
    /* Stopped from outside (Ctrl-C): close what is open, and let the
     * closes complete. */
    finish(w);
    eddy_loop_run(w->loop, EDDY_RUN_DEFAULT);
    __atomic_store_n(&w->finished, 1, __ATOMIC_RELEASE);
    eddy_async_send(w->done);
    return NULL;
}

void load_worker_stop(struct load_worker *w)
{
    eddy_loop_stop(w->loop);
}

void load_worker_free(struct load_worker *w)
{
    /* Completes closes still pending; their callbacks use the slots. */
    eddy_loop_free(w->loop);
    free(w->slots);
    free(w->starts);
    free(w->touched);
    free(w->batch);
    free(w->requeue);
}
