/* The fake socket layer: see fakesock.h for what it models and checks.
 *
 * Each wrapped call first asks whether it is meant for the fake kernel: only
 * while an input runs (fs_begin..fs_end), only on the thread that runs it,
 * and only for an fd from FS_FD_BASE up. Everything else goes to
 * __real_SYMBOL, which is libc (or the sanitizer's interceptor of it). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fakesock.h"

/* The wrapped symbols, and the real ones the linker provides for them. Each
 * needs a prototype here for -Wmissing-prototypes. */
#define WRAPPED(ret, name, ...)                                                                    \
    ret __real_##name(__VA_ARGS__);                                                                \
    ret __wrap_##name(__VA_ARGS__)
WRAPPED(ssize_t, read, int fd, void *buf, size_t len);
WRAPPED(ssize_t, readv, int fd, const struct iovec *iov, int iovcnt);
WRAPPED(ssize_t, recv, int fd, void *buf, size_t len, int flags);
WRAPPED(ssize_t, recvfrom, int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
        socklen_t *alen);
WRAPPED(ssize_t, recvmsg, int fd, struct msghdr *msg, int flags);
WRAPPED(ssize_t, write, int fd, const void *buf, size_t len);
WRAPPED(ssize_t, writev, int fd, const struct iovec *iov, int iovcnt);
WRAPPED(ssize_t, send, int fd, const void *buf, size_t len, int flags);
WRAPPED(ssize_t, sendto, int fd, const void *buf, size_t len, int flags,
        const struct sockaddr *addr, socklen_t alen);
WRAPPED(ssize_t, sendmsg, int fd, const struct msghdr *msg, int flags);
WRAPPED(ssize_t, sendfile, int out_fd, int in_fd, off_t *off, size_t count);
WRAPPED(ssize_t, sendfile64, int out_fd, int in_fd, off_t *off, size_t count);
WRAPPED(int, close, int fd);
WRAPPED(int, shutdown, int fd, int how);
WRAPPED(int, socket, int domain, int type, int proto);
WRAPPED(int, bind, int fd, const struct sockaddr *addr, socklen_t len);
WRAPPED(int, listen, int fd, int backlog);
WRAPPED(int, connect, int fd, const struct sockaddr *addr, socklen_t len);
WRAPPED(int, accept, int fd, struct sockaddr *addr, socklen_t *len);
WRAPPED(int, accept4, int fd, struct sockaddr *addr, socklen_t *len, int flags);
WRAPPED(int, getsockname, int fd, struct sockaddr *addr, socklen_t *len);
WRAPPED(int, getpeername, int fd, struct sockaddr *addr, socklen_t *len);
WRAPPED(int, setsockopt, int fd, int level, int name, const void *val, socklen_t len);
WRAPPED(int, getsockopt, int fd, int level, int name, void *val, socklen_t *len);
WRAPPED(int, epoll_create, int size);
WRAPPED(int, epoll_create1, int flags);
WRAPPED(int, epoll_ctl, int epfd, int op, int fd, struct epoll_event *ev);
WRAPPED(int, epoll_wait, int epfd, struct epoll_event *evs, int max, int timeout);
WRAPPED(int, epoll_pwait, int epfd, struct epoll_event *evs, int max, int timeout,
        const sigset_t *mask);
WRAPPED(int, eventfd, unsigned int initval, int flags);
WRAPPED(int, signalfd, int fd, const sigset_t *mask, int flags);
WRAPPED(int, clock_gettime, clockid_t clk, struct timespec *ts);
WRAPPED(int, open, const char *path, int flags, ...);
WRAPPED(int, fcntl, int fd, int cmd, ...);
#undef WRAPPED

enum kind { K_LISTENER = 1, K_CONN, K_EPOLL, K_EVENTFD, K_INERT, K_DEVNULL, K_FILE };

/* An fd in an epoll instance's interest list. */
struct reg {
    int obj;
    uint32_t events;
    uint64_t data;
    bool pending;  /* a wake-up came since the last report (edge mode) */
    bool disabled; /* EPOLLONESHOT fired */
};

/* One fake open file description. Slots are never re-used within an input,
 * so a closed one stays as a tombstone that catches later use of its fd. */
struct obj {
    enum kind kind;
    int fd;
    bool open;
    bool nonblock;
    int peer;         /* K_CONN */
    struct reg *regs; /* K_EPOLL */
    int nregs;
    uint64_t counter;    /* K_EVENTFD */
    unsigned char *data; /* K_FILE */
    size_t len;
    off_t pos;
    bool listening; /* K_LISTENER */
};

static struct {
    bool on;
    bool reuse;
    struct obj objs[FS_MAX_FDS];
    int nobjs;
    struct fs_peer peers[FS_MAX_PEERS];
    int npeers;
    int queue[FS_MAX_PEERS]; /* the accept queue, oldest first */
    int qlen;
    int accept_err;
    bool wait_eintr;
    unsigned rotation;
    uint64_t now_ns;
    uint64_t advanced_ms;
    bool sleep;
    int last_file;
    struct fs_stats stats;
} fs;

/* Only the thread that runs the input talks to the fake kernel. */
static __thread bool fs_thread;

static bool trace_checked, trace_env;

#define CLOCK_START_NS (1000ull * 1000000000ull)

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "\nfakesock: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

static bool active(void)
{
    return fs.on && fs_thread;
}

static bool fake_range(int fd)
{
    return fd >= FS_FD_BASE;
}

/* The open object for a fake fd. A fake fd that is not open is a bug in
 * the caller when fd numbers are not re-used (it was closed: use after
 * close); with re-use it is only EBADF. Returns NULL with errno set then. */
static FS_NOCOV struct obj *lookup(int fd, const char *call)
{
    if (!active())
        die("%s(%d): a fake fd used outside an input", call, fd);
    if (fs.reuse) {
        for (int i = 0; i < fs.nobjs; i++)
            if (fs.objs[i].open && fs.objs[i].fd == fd)
                return &fs.objs[i];
        errno = EBADF;
        return NULL;
    }
    int i = fd - FS_FD_BASE;
    if (i >= fs.nobjs)
        die("%s(%d): an fd that was never opened", call, fd);
    if (!fs.objs[i].open)
        die("%s(%d): the fd was closed before (use after close, or a double close)", call, fd);
    return &fs.objs[i];
}

static FS_NOCOV struct obj *new_obj(enum kind kind, bool nonblock)
{
    int open_now = 0;
    for (int j = 0; j < fs.nobjs; j++)
        open_now += fs.objs[j].open;
    if (fs.nobjs == FS_MAX_FDS || open_now >= FS_MAX_OPEN) {
        fs.stats.emfiles++;
        errno = EMFILE;
        return NULL;
    }
    int i = fs.nobjs++;
    struct obj *o = &fs.objs[i];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->open = true;
    o->nonblock = nonblock;
    o->peer = -1;
    o->fd = FS_FD_BASE + i;
    if (fs.reuse) {
        /* The lowest number no open fd has, as the kernel hands out. */
        for (int fd = FS_FD_BASE;; fd++) {
            bool taken = false;
            for (int j = 0; j < i && !taken; j++)
                taken = fs.objs[j].open && fs.objs[j].fd == fd;
            if (!taken) {
                o->fd = fd;
                break;
            }
        }
    }
    return o;
}

static int obj_index(const struct obj *o)
{
    return (int)(o - fs.objs);
}

/* ---- readiness and wake-ups ------------------------------------------------- */

static FS_NOCOV uint32_t conn_ready(const struct fs_peer *p)
{
    uint32_t ev = 0;
    size_t unread = p->reset ? 0 : p->in_len - p->consumed;
    if (unread || p->peer_shut || p->reset || p->srv_shut_rd)
        ev |= EPOLLIN | EPOLLRDNORM;
    if (p->peer_shut || p->reset || p->srv_shut_rd)
        ev |= EPOLLRDHUP;
    if ((p->peer_shut && p->srv_shut_wr) || p->reset)
        ev |= EPOLLHUP;
    if (p->err)
        ev |= EPOLLERR;
    if (p->room || p->srv_shut_wr || p->reset)
        ev |= EPOLLOUT | EPOLLWRNORM;
    return ev;
}

static FS_NOCOV uint32_t ready(const struct obj *o)
{
    switch (o->kind) {
    case K_CONN:
        return conn_ready(&fs.peers[o->peer]);
    case K_LISTENER:
        return o->listening && fs.qlen ? EPOLLIN | EPOLLRDNORM : 0;
    case K_EVENTFD:
        return (o->counter ? EPOLLIN | EPOLLRDNORM : 0) | EPOLLOUT | EPOLLWRNORM;
    default:
        return 0;
    }
}

/* The kernel's wake-up of an fd's wait queue with the events that changed
 * (`key`): edge-triggered items interested in one of them become pending,
 * and then report everything that is ready, as ep_poll_callback does. */
static FS_NOCOV void wake(int obj, uint32_t key)
{
    if (obj < 0)
        return;
    for (int i = 0; i < fs.nobjs; i++) {
        struct obj *ep = &fs.objs[i];
        if (!ep->open || ep->kind != K_EPOLL)
            continue;
        for (int j = 0; j < ep->nregs; j++)
            if (ep->regs[j].obj == obj && (key & (ep->regs[j].events | EPOLLERR | EPOLLHUP)))
                ep->regs[j].pending = true;
    }
}

static FS_NOCOV void unregister_everywhere(int obj)
{
    for (int i = 0; i < fs.nobjs; i++) {
        struct obj *ep = &fs.objs[i];
        if (!ep->open || ep->kind != K_EPOLL)
            continue;
        for (int j = 0; j < ep->nregs;) {
            if (ep->regs[j].obj == obj) {
                memmove(&ep->regs[j], &ep->regs[j + 1],
                        (size_t)(ep->nregs - j - 1) * sizeof ep->regs[0]);
                ep->nregs--;
            } else {
                j++;
            }
        }
    }
}

/* ---- the client side ----------------------------------------------------------- */

static void append(unsigned char **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *len + n)
            c *= 2;
        *buf = realloc(*buf, c);
        if (!*buf)
            die("out of memory");
        *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
}

static struct obj *listener(void)
{
    for (int i = 0; i < fs.nobjs; i++)
        if (fs.objs[i].open && fs.objs[i].kind == K_LISTENER && fs.objs[i].listening)
            return &fs.objs[i];
    return NULL;
}

int fs_connect(size_t room)
{
    if (fs.npeers == FS_MAX_PEERS)
        return -1;
    int k = fs.npeers++;
    struct fs_peer *p = &fs.peers[k];
    memset(p, 0, sizeof *p);
    p->used = true;
    p->obj = -1;
    p->room = room;
    struct obj *l = listener();
    if (!l) {
        p->reset = true; /* refused */
        return k;
    }
    fs.queue[fs.qlen++] = k;
    wake(obj_index(l), EPOLLIN);
    return k;
}

int fs_npeers(void)
{
    return fs.npeers;
}

struct fs_peer *fs_peer(int k)
{
    return &fs.peers[k];
}

/* Can the client still talk to the server on this connection? */
static bool connected(const struct fs_peer *p)
{
    return !p->reset && !p->srv_closed;
}

void fs_peer_send(int k, const void *data, size_t len)
{
    struct fs_peer *p = &fs.peers[k];
    if (!len || p->peer_shut || !connected(p))
        return;
    if (p->srv_shut_rd) {
        /* Bytes for a socket shut for reading make the kernel reset it. */
        fs_peer_reset(k);
        return;
    }
    append(&p->in, &p->in_len, &p->in_cap, data, len);
    wake(p->obj, EPOLLIN);
}

void fs_peer_shutdown(int k)
{
    struct fs_peer *p = &fs.peers[k];
    if (p->peer_shut || !connected(p))
        return;
    p->peer_shut = true;
    wake(p->obj, EPOLLIN | EPOLLRDHUP | (p->srv_shut_wr ? EPOLLHUP : 0));
}

void fs_peer_close(int k)
{
    struct fs_peer *p = &fs.peers[k];
    if (!connected(p))
        return;
    fs_peer_shutdown(k);
    p->peer_gone = true;
}

void fs_peer_reset(int k)
{
    struct fs_peer *p = &fs.peers[k];
    if (!connected(p))
        return;
    p->reset = true;
    p->err = ECONNRESET;
    wake(p->obj, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
}

void fs_peer_set_room(int k, size_t room)
{
    struct fs_peer *p = &fs.peers[k];
    if (room >= p->room) {
        fs_peer_ack(k, room - p->room);
        return;
    }
    /* Only the server's own sends fill the buffer: room taken away
     * otherwise can swallow the EPOLLOUT edge of an ACK that came
     * before, which no kernel does. Still worth trying (short writes
     * at odd moments), but the connection loses its liveness checks. */
    p->room = room;
    p->unrealistic = true;
}

void fs_peer_ack(int k, size_t n)
{
    struct fs_peer *p = &fs.peers[k];
    p->room = p->room + n > FS_ROOM_ALL ? FS_ROOM_ALL : p->room + n;
    /* Like sk_stream_write_space(): freed room wakes waiters only when a
     * send found the buffer full since the last such wake-up. A wake-up
     * for every ACK would hand edge-triggered users edges that a real
     * kernel does not give, and hide their missed-edge bugs. */
    if (connected(p) && p->nospace && n) {
        p->nospace = false;
        wake(p->obj, EPOLLOUT);
    }
}

void fs_inject_read(int k, enum fs_fault f, size_t n)
{
    fs.peers[k].read_fault = f;
    fs.peers[k].read_fault_n = n;
}

void fs_inject_write(int k, enum fs_fault f, size_t n)
{
    fs.peers[k].write_fault = f;
    fs.peers[k].write_fault_n = n;
}

void fs_inject_accept(int err)
{
    fs.accept_err = err;
}

void fs_inject_epoll(int k, uint32_t events)
{
    if (events & (EPOLLERR | EPOLLHUP))
        fs_peer_reset(k);
    else if (events & EPOLLRDHUP)
        fs_peer_shutdown(k);
    fs.peers[k].inject_events |= events & (EPOLLIN | EPOLLOUT);
}

void fs_inject_wait_eintr(void)
{
    fs.wait_eintr = true;
}

void fs_set_rotation(unsigned r)
{
    fs.rotation = r;
}

void fs_clock_advance_ms(uint64_t ms)
{
    fs.now_ns += ms * 1000000u;
    fs.advanced_ms += ms;
}

uint64_t fs_clock_advanced_ms(void)
{
    return fs.advanced_ms;
}

void fs_allow_sleep(bool allow)
{
    fs.sleep = allow;
}

int fs_file_open(const void *data, size_t len)
{
    struct obj *o = new_obj(K_FILE, false);
    if (!o)
        return -1;
    o->data = malloc(len ? len : 1);
    if (!o->data)
        die("out of memory");
    memcpy(o->data, data, len);
    o->len = len;
    fs.last_file = obj_index(o);
    return o->fd;
}

void fs_file_truncate_last(size_t n)
{
    if (fs.last_file < 0)
        return;
    struct obj *o = &fs.objs[fs.last_file];
    if (o->open && n < o->len) {
        o->len = n;
        fs.stats.truncations++;
    }
}

const struct fs_stats *fs_stats(void)
{
    return &fs.stats;
}

void fs_begin(bool reuse_fds)
{
    memset(&fs, 0, sizeof fs);
    fs.reuse = reuse_fds;
    fs.now_ns = CLOCK_START_NS;
    fs.last_file = -1;
    fs.on = true;
    fs_thread = true;
    if (!trace_checked) {
        const char *t = getenv("FAKESOCK_TRACE");
        trace_env = t && *t && *t != '0';
        trace_checked = true;
    }
}

void fs_end(void)
{
    for (int i = 0; i < fs.nobjs; i++) {
        struct obj *o = &fs.objs[i];
        if (o->open)
            die("fd %d (kind %d%s) is still open after teardown", o->fd, o->kind,
                o->kind == K_CONN ? ", a connection" : "");
    }
    for (int k = 0; k < fs.npeers; k++) {
        free(fs.peers[k].in);
        free(fs.peers[k].out);
    }
    fs.on = false;
    fs_thread = false;
}

/* ---- connections: the data path ------------------------------------------------ */

static struct fs_peer *peer_of(struct obj *o)
{
    return &fs.peers[o->peer];
}

/* A pending error is reported, and cleared, by the next call that looks. */
static int take_err(struct fs_peer *p)
{
    int err = p->err;
    p->err = 0;
    return err;
}

static ssize_t fail(int err)
{
    errno = err;
    return -1;
}

static ssize_t conn_recv(struct obj *o, const struct iovec *iov, int iovcnt, int flags)
{
    struct fs_peer *p = peer_of(o);
    fs.stats.reads++;
    size_t want = 0;
    for (int i = 0; i < iovcnt; i++)
        want += iov[i].iov_len;
    size_t unread = p->in_len - p->consumed;
    enum fs_fault f = p->read_fault;
    p->read_fault = FS_FAULT_NONE;
    switch (f) {
    case FS_FAULT_EINTR:
        return fail(EINTR);
    case FS_FAULT_EAGAIN:
        if (unread || p->peer_shut || p->reset || p->err)
            p->unrealistic = true;
        return fail(EAGAIN);
    case FS_FAULT_SHORT: {
        size_t n = p->read_fault_n ? p->read_fault_n : 1;
        if (unread > n && want > n)
            p->unrealistic = true;
        if (want > n)
            want = n;
        break;
    }
    case FS_FAULT_RESET:
        fs_peer_reset(o->peer);
        break;
    case FS_FAULT_EOF:
        fs_peer_shutdown(o->peer);
        break;
    default:
        break;
    }
    if (p->srv_shut_rd)
        return 0;
    if (p->err)
        return fail(take_err(p));
    if (p->reset)
        return 0;
    if (want == 0)
        return 0;
    if (!unread) {
        if (p->peer_shut)
            return 0;
        if (!o->nonblock && !(flags & MSG_DONTWAIT))
            die("read on a blocking socket with nothing to read: it would block forever");
        return fail(EAGAIN);
    }
    size_t n = unread < want ? unread : want;
    size_t done = 0;
    for (int i = 0; i < iovcnt && done < n; i++) {
        size_t c = iov[i].iov_len < n - done ? iov[i].iov_len : n - done;
        memcpy(iov[i].iov_base, p->in + p->consumed + done, c);
        done += c;
    }
    if (!(flags & MSG_PEEK))
        p->consumed += n;
    return (ssize_t)n;
}

/* EPIPE on a socket raises SIGPIPE unless MSG_NOSIGNAL was given. The
 * library promises never to raise it (design: it never changes signal
 * dispositions, so a program that did not ignore SIGPIPE would die). */
static ssize_t epipe(bool nosignal, const char *call)
{
    if (!nosignal)
        die("%s got EPIPE without MSG_NOSIGNAL: the process would be killed by SIGPIPE", call);
    return fail(EPIPE);
}

static ssize_t conn_send(struct obj *o, const struct iovec *iov, int iovcnt, int flags,
                         const char *call)
{
    struct fs_peer *p = peer_of(o);
    fs.stats.writes++;
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    enum fs_fault f = p->write_fault;
    p->write_fault = FS_FAULT_NONE;
    size_t cap = len;
    switch (f) {
    case FS_FAULT_EINTR:
        return fail(EINTR);
    case FS_FAULT_EAGAIN:
        if (p->room && !p->reset && !p->srv_shut_wr)
            p->unrealistic = true;
        p->nospace = true;
        return fail(EAGAIN);
    case FS_FAULT_SHORT:
        cap = p->write_fault_n ? p->write_fault_n : 1;
        if (cap < len && p->room > cap)
            p->unrealistic = true;
        break;
    case FS_FAULT_RESET:
        fs_peer_reset(o->peer);
        break;
    case FS_FAULT_EOF:
        fs_peer_close(o->peer);
        break;
    default:
        break;
    }
    if (p->err)
        return fail(take_err(p));
    if (p->srv_shut_wr) {
        p->out_after_shut++;
        return epipe(flags & MSG_NOSIGNAL, call);
    }
    if (p->reset)
        return epipe(flags & MSG_NOSIGNAL, call);
    if (len == 0)
        return 0;
    if (p->room == 0) {
        if (!o->nonblock && !(flags & MSG_DONTWAIT))
            die("%s on a blocking socket with a full send buffer: it would block", call);
        p->nospace = true;
        return fail(EAGAIN);
    }
    size_t n = len < cap ? len : cap;
    if (n > p->room)
        n = p->room;
    size_t done = 0;
    for (int i = 0; i < iovcnt && done < n; i++) {
        size_t c = iov[i].iov_len < n - done ? iov[i].iov_len : n - done;
        append(&p->out, &p->out_len, &p->out_cap, iov[i].iov_base, c);
        done += c;
    }
    p->room -= n;
    if (p->peer_gone) {
        /* The client has closed: these bytes meet an RST. */
        fs_peer_reset(o->peer);
    }
    return (ssize_t)n;
}

/* ---- the generic read and write paths -------------------------------------- */

static ssize_t fake_readv(struct obj *o, const struct iovec *iov, int iovcnt, int flags)
{
    switch (o->kind) {
    case K_CONN:
        return conn_recv(o, iov, iovcnt, flags);
    case K_EVENTFD: {
        if (iovcnt < 1 || iov[0].iov_len < 8)
            return fail(EINVAL);
        if (!o->counter)
            return fail(EAGAIN);
        memcpy(iov[0].iov_base, &o->counter, 8);
        o->counter = 0;
        return 8;
    }
    case K_DEVNULL:
        return 0;
    case K_FILE: {
        size_t done = 0;
        for (int i = 0; i < iovcnt && (size_t)o->pos < o->len; i++) {
            size_t c = o->len - (size_t)o->pos;
            if (c > iov[i].iov_len)
                c = iov[i].iov_len;
            memcpy(iov[i].iov_base, o->data + o->pos, c);
            o->pos += (off_t)c;
            done += c;
        }
        return (ssize_t)done;
    }
    case K_INERT:
        return fail(EAGAIN);
    default:
        return fail(EINVAL);
    }
}

static ssize_t fake_writev(struct obj *o, const struct iovec *iov, int iovcnt, int flags,
                           const char *call)
{
    switch (o->kind) {
    case K_CONN:
        return conn_send(o, iov, iovcnt, flags, call);
    case K_EVENTFD: {
        uint64_t v;
        if (iovcnt < 1 || iov[0].iov_len < 8)
            return fail(EINVAL);
        memcpy(&v, iov[0].iov_base, 8);
        o->counter += v;
        wake(obj_index(o), EPOLLIN);
        return 8;
    }
    case K_DEVNULL: {
        size_t len = 0;
        for (int i = 0; i < iovcnt; i++)
            len += iov[i].iov_len;
        return (ssize_t)len;
    }
    default:
        return fail(EBADF);
    }
}

ssize_t __wrap_read(int fd, void *buf, size_t len)
{
    if (!fake_range(fd))
        return __real_read(fd, buf, len);
    struct obj *o = lookup(fd, "read");
    struct iovec v = {buf, len};
    return o ? fake_readv(o, &v, 1, 0) : -1;
}

ssize_t __wrap_readv(int fd, const struct iovec *iov, int iovcnt)
{
    if (!fake_range(fd))
        return __real_readv(fd, iov, iovcnt);
    struct obj *o = lookup(fd, "readv");
    return o ? fake_readv(o, iov, iovcnt, 0) : -1;
}

static ssize_t sock_recv(const char *call, int fd, struct iovec *iov, int iovcnt, int flags)
{
    struct obj *o = lookup(fd, call);
    if (!o)
        return -1;
    if (o->kind != K_CONN)
        return fail(ENOTSOCK);
    return fake_readv(o, iov, iovcnt, flags);
}

ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags)
{
    if (!fake_range(fd))
        return __real_recv(fd, buf, len, flags);
    struct iovec v = {buf, len};
    return sock_recv("recv", fd, &v, 1, flags);
}

ssize_t __wrap_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
                        socklen_t *alen)
{
    if (!fake_range(fd))
        return __real_recvfrom(fd, buf, len, flags, addr, alen);
    struct iovec v = {buf, len};
    if (alen)
        *alen = 0; /* connected stream sockets report no source address */
    return sock_recv("recvfrom", fd, &v, 1, flags);
}

ssize_t __wrap_recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (!fake_range(fd))
        return __real_recvmsg(fd, msg, flags);
    msg->msg_namelen = 0;
    msg->msg_controllen = 0;
    msg->msg_flags = 0;
    return sock_recv("recvmsg", fd, msg->msg_iov, (int)msg->msg_iovlen, flags);
}

ssize_t __wrap_write(int fd, const void *buf, size_t len)
{
    if (!fake_range(fd))
        return __real_write(fd, buf, len);
    struct obj *o = lookup(fd, "write");
    struct iovec v = {(void *)buf, len};
    return o ? fake_writev(o, &v, 1, 0, "write") : -1;
}

ssize_t __wrap_writev(int fd, const struct iovec *iov, int iovcnt)
{
    if (!fake_range(fd))
        return __real_writev(fd, iov, iovcnt);
    struct obj *o = lookup(fd, "writev");
    return o ? fake_writev(o, iov, iovcnt, 0, "writev") : -1;
}

static ssize_t sock_send(const char *call, int fd, const struct iovec *iov, int iovcnt, int flags)
{
    struct obj *o = lookup(fd, call);
    if (!o)
        return -1;
    if (o->kind != K_CONN)
        return fail(ENOTSOCK);
    return fake_writev(o, iov, iovcnt, flags, call);
}

ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags)
{
    if (!fake_range(fd))
        return __real_send(fd, buf, len, flags);
    struct iovec v = {(void *)buf, len};
    return sock_send("send", fd, &v, 1, flags);
}

ssize_t __wrap_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
                      socklen_t alen)
{
    if (!fake_range(fd))
        return __real_sendto(fd, buf, len, flags, addr, alen);
    struct iovec v = {(void *)buf, len};
    return sock_send("sendto", fd, &v, 1, flags);
}

ssize_t __wrap_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (!fake_range(fd))
        return __real_sendmsg(fd, msg, flags);
    return sock_send("sendmsg", fd, msg->msg_iov, (int)msg->msg_iovlen, flags);
}

/* sendfile from a fake file to a fake connection. It has no MSG_NOSIGNAL:
 * on a socket that is shut or reset it raises SIGPIPE. */
static ssize_t fake_sendfile(int out_fd, int in_fd, off_t *off, size_t count)
{
    if (!fake_range(out_fd) || !fake_range(in_fd))
        die("sendfile(%d, %d): one fd is fake, the other real", out_fd, in_fd);
    struct obj *out = lookup(out_fd, "sendfile (socket)");
    struct obj *in = lookup(in_fd, "sendfile (file)");
    if (!out || !in)
        return -1;
    if (in->kind != K_FILE || out->kind != K_CONN)
        return fail(EINVAL);
    off_t pos = off ? *off : in->pos;
    if (pos < 0)
        return fail(EINVAL);
    size_t avail = (size_t)pos < in->len ? in->len - (size_t)pos : 0;
    if (count > avail)
        count = avail;
    if (count == 0) {
        /* At the end of the file: 0, whatever the socket's state. */
        return 0;
    }
    struct iovec v = {in->data + pos, count};
    ssize_t n = conn_send(out, &v, 1, 0, "sendfile");
    if (n > 0) {
        if (off)
            *off += n;
        else
            in->pos += n;
    }
    return n;
}

ssize_t __wrap_sendfile(int out_fd, int in_fd, off_t *off, size_t count)
{
    if (!fake_range(out_fd) && !fake_range(in_fd))
        return __real_sendfile(out_fd, in_fd, off, count);
    return fake_sendfile(out_fd, in_fd, off, count);
}

ssize_t __wrap_sendfile64(int out_fd, int in_fd, off_t *off, size_t count)
{
    if (!fake_range(out_fd) && !fake_range(in_fd))
        return __real_sendfile64(out_fd, in_fd, off, count);
    return fake_sendfile(out_fd, in_fd, off, count);
}

/* ---- fd life ------------------------------------------------------------------- */

int __wrap_close(int fd)
{
    if (!fake_range(fd))
        return __real_close(fd);
    struct obj *o = lookup(fd, "close");
    if (!o)
        return -1;
    fs.stats.closes++;
    int i = obj_index(o);
    o->open = false;
    unregister_everywhere(i);
    switch (o->kind) {
    case K_CONN: {
        struct fs_peer *p = peer_of(o);
        p->srv_closed = true;
        if (!p->reset && p->in_len > p->consumed)
            p->closed_unread = true;
        break;
    }
    case K_LISTENER:
        /* Connections still queued are reset by the kernel. */
        for (int q = 0; q < fs.qlen; q++)
            fs.peers[fs.queue[q]].reset = true;
        fs.qlen = 0;
        break;
    case K_EPOLL:
        free(o->regs);
        o->regs = NULL;
        break;
    case K_FILE:
        free(o->data);
        o->data = NULL;
        if (fs.last_file == i)
            fs.last_file = -1;
        break;
    default:
        break;
    }
    return 0;
}

int __wrap_shutdown(int fd, int how)
{
    if (!fake_range(fd))
        return __real_shutdown(fd, how);
    struct obj *o = lookup(fd, "shutdown");
    if (!o)
        return -1;
    if (o->kind != K_CONN)
        return (int)fail(o->kind == K_LISTENER ? ENOTCONN : ENOTSOCK);
    struct fs_peer *p = peer_of(o);
    if (p->reset)
        return (int)fail(ENOTCONN);
    if (how == SHUT_WR || how == SHUT_RDWR) {
        p->srv_shut_wr = true;
        wake(p->obj, EPOLLOUT | (p->peer_shut ? EPOLLHUP : 0));
    }
    if (how == SHUT_RD || how == SHUT_RDWR) {
        p->srv_shut_rd = true;
        wake(p->obj, EPOLLIN | EPOLLRDHUP);
    }
    return 0;
}

int __wrap_socket(int domain, int type, int proto)
{
    if (!active())
        return __real_socket(domain, type, proto);
    if ((type & 0xf) != SOCK_STREAM)
        die("socket(): only stream sockets are faked");
    struct obj *o = new_obj(K_LISTENER, type & SOCK_NONBLOCK);
    return o ? o->fd : -1;
}

int __wrap_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    if (!fake_range(fd))
        return __real_bind(fd, addr, len);
    struct obj *o = lookup(fd, "bind");
    return o ? 0 : -1;
}

int __wrap_listen(int fd, int backlog)
{
    if (!fake_range(fd))
        return __real_listen(fd, backlog);
    struct obj *o = lookup(fd, "listen");
    if (!o)
        return -1;
    if (o->kind != K_LISTENER)
        return (int)fail(EINVAL);
    o->listening = true;
    return 0;
}

int __wrap_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    if (!fake_range(fd))
        return __real_connect(fd, addr, len);
    return lookup(fd, "connect") ? (int)fail(ECONNREFUSED) : -1;
}

static void fill_addr(struct sockaddr *addr, socklen_t *len, uint16_t port)
{
    if (!addr || !len)
        return;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t n = *len < sizeof sin ? *len : (socklen_t)sizeof sin;
    memcpy(addr, &sin, n);
    *len = sizeof sin;
}

int __wrap_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    if (!fake_range(fd))
        return __real_accept4(fd, addr, len, flags);
    struct obj *l = lookup(fd, "accept4");
    if (!l)
        return -1;
    fs.stats.accepts++;
    if (l->kind != K_LISTENER || !l->listening)
        return (int)fail(EINVAL);
    if (fs.accept_err) {
        int err = fs.accept_err;
        fs.accept_err = 0;
        if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
            fs.stats.emfiles++;
        return (int)fail(err);
    }
    if (!fs.qlen) {
        if (!l->nonblock)
            die("accept on a blocking listener with an empty queue: it would block");
        return (int)fail(EAGAIN);
    }
    struct obj *o = new_obj(K_CONN, flags & SOCK_NONBLOCK);
    if (!o)
        return -1; /* EMFILE: the connection stays queued */
    int k = fs.queue[0];
    memmove(fs.queue, fs.queue + 1, (size_t)--fs.qlen * sizeof fs.queue[0]);
    o->peer = k;
    fs.peers[k].obj = obj_index(o);
    fs.peers[k].accepted = true;
    fill_addr(addr, len, (uint16_t)(40000 + k));
    return o->fd;
}

int __wrap_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    if (!fake_range(fd))
        return __real_accept(fd, addr, len);
    return __wrap_accept4(fd, addr, len, 0);
}

int __wrap_getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    if (!fake_range(fd))
        return __real_getsockname(fd, addr, len);
    struct obj *o = lookup(fd, "getsockname");
    if (!o)
        return -1;
    if (o->kind != K_CONN && o->kind != K_LISTENER)
        return (int)fail(ENOTSOCK);
    fill_addr(addr, len, 8080);
    return 0;
}

int __wrap_getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    if (!fake_range(fd))
        return __real_getpeername(fd, addr, len);
    struct obj *o = lookup(fd, "getpeername");
    if (!o)
        return -1;
    if (o->kind != K_CONN)
        return (int)fail(o->kind == K_LISTENER ? ENOTCONN : ENOTSOCK);
    if (peer_of(o)->reset)
        return (int)fail(ENOTCONN);
    fill_addr(addr, len, (uint16_t)(40000 + o->peer));
    return 0;
}

int __wrap_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    if (!fake_range(fd))
        return __real_setsockopt(fd, level, name, val, len);
    struct obj *o = lookup(fd, "setsockopt");
    if (!o)
        return -1;
    if (o->kind != K_CONN && o->kind != K_LISTENER)
        return (int)fail(ENOTSOCK);
    return 0;
}

int __wrap_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    if (!fake_range(fd))
        return __real_getsockopt(fd, level, name, val, len);
    struct obj *o = lookup(fd, "getsockopt");
    if (!o)
        return -1;
    if (o->kind != K_CONN && o->kind != K_LISTENER)
        return (int)fail(ENOTSOCK);
    int v = 0;
    if (level == SOL_SOCKET && name == SO_ERROR && o->kind == K_CONN)
        v = take_err(peer_of(o));
    if (val && len) {
        memset(val, 0, *len);
        memcpy(val, &v, *len < sizeof v ? *len : sizeof v);
        *len = *len < sizeof v ? *len : (socklen_t)sizeof v;
    }
    return 0;
}

/* ---- epoll ------------------------------------------------------------------ */

static int new_epoll(void)
{
    struct obj *o = new_obj(K_EPOLL, false);
    if (!o)
        return -1;
    o->regs = calloc(FS_MAX_OPEN, sizeof *o->regs);
    if (!o->regs)
        die("out of memory");
    return o->fd;
}

int __wrap_epoll_create1(int flags)
{
    if (!active())
        return __real_epoll_create1(flags);
    return new_epoll();
}

int __wrap_epoll_create(int size)
{
    if (!active())
        return __real_epoll_create(size);
    return new_epoll();
}

int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (!fake_range(epfd)) {
        if (fake_range(fd))
            die("epoll_ctl: a fake fd in a real epoll instance");
        return __real_epoll_ctl(epfd, op, fd, ev);
    }
    struct obj *ep = lookup(epfd, "epoll_ctl (epoll fd)");
    if (!ep)
        return -1;
    if (ep->kind != K_EPOLL)
        return (int)fail(EINVAL);
    if (!fake_range(fd))
        die("epoll_ctl: real fd %d in the fake epoll instance", fd);
    struct obj *o = lookup(fd, "epoll_ctl");
    if (!o)
        return -1;
    if (o == ep)
        return (int)fail(EINVAL);
    if (o->kind == K_FILE || o->kind == K_DEVNULL)
        return (int)fail(EPERM);
    int idx = obj_index(o);
    int j = 0;
    while (j < ep->nregs && ep->regs[j].obj != idx)
        j++;
    bool found = j < ep->nregs;
    switch (op) {
    case EPOLL_CTL_ADD:
        if (found)
            return (int)fail(EEXIST);
        ep->regs[ep->nregs++] =
            (struct reg){.obj = idx, .events = ev->events, .data = ev->data.u64, .pending = true};
        return 0;
    case EPOLL_CTL_MOD:
        if (!found)
            return (int)fail(ENOENT);
        /* A MOD re-checks readiness, so an edge item is reported again
         * if it is ready. */
        ep->regs[j] =
            (struct reg){.obj = idx, .events = ev->events, .data = ev->data.u64, .pending = true};
        return 0;
    case EPOLL_CTL_DEL:
        if (!found)
            return (int)fail(ENOENT);
        memmove(&ep->regs[j], &ep->regs[j + 1], (size_t)(ep->nregs - j - 1) * sizeof ep->regs[0]);
        ep->nregs--;
        return 0;
    default:
        return (int)fail(EINVAL);
    }
}

static FS_NOCOV int fake_wait(struct obj *ep, struct epoll_event *evs, int max, int timeout)
{
    fs.stats.epoll_waits++;
    if (fs.wait_eintr) {
        fs.wait_eintr = false;
        return (int)fail(EINTR);
    }
    if (max <= 0)
        return (int)fail(EINVAL);
    int n = 0;
    int m = ep->nregs;
    for (int step = 0; step < m && n < max; step++) {
        struct reg *r = &ep->regs[(fs.rotation + (unsigned)step) % (unsigned)m];
        struct obj *o = &fs.objs[r->obj];
        if (r->disabled)
            continue;
        uint32_t injected = 0;
        if (o->kind == K_CONN) {
            injected = fs.peers[o->peer].inject_events;
            fs.peers[o->peer].inject_events = 0;
        }
        uint32_t ev = (ready(o) | injected) & (r->events | EPOLLERR | EPOLLHUP);
        if ((r->events & EPOLLET) && !r->pending && !injected)
            continue;
        r->pending = false;
        if (!ev)
            continue;
        evs[n].events = ev;
        evs[n].data.u64 = r->data;
        n++;
        if (r->events & EPOLLONESHOT)
            r->disabled = true;
    }
    if (n == 0 && timeout > 0 && fs.sleep) {
        /* Nothing came: a real wait would sleep its whole timeout. */
        fs.stats.sleeps++;
        fs_clock_advance_ms((uint64_t)timeout);
    }
    return n;
}

int __wrap_epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout)
{
    if (!fake_range(epfd))
        return __real_epoll_wait(epfd, evs, max, timeout);
    struct obj *ep = lookup(epfd, "epoll_wait");
    if (!ep)
        return -1;
    if (ep->kind != K_EPOLL)
        return (int)fail(EINVAL);
    return fake_wait(ep, evs, max, timeout);
}

int __wrap_epoll_pwait(int epfd, struct epoll_event *evs, int max, int timeout,
                       const sigset_t *mask)
{
    if (!fake_range(epfd))
        return __real_epoll_pwait(epfd, evs, max, timeout, mask);
    struct obj *ep = lookup(epfd, "epoll_pwait");
    if (!ep)
        return -1;
    if (ep->kind != K_EPOLL)
        return (int)fail(EINVAL);
    return fake_wait(ep, evs, max, timeout);
}

/* ---- eventfd, signalfd, /dev/null, the clock, fcntl ------------------------- */

int __wrap_eventfd(unsigned int initval, int flags)
{
    if (!active())
        return __real_eventfd(initval, flags);
    struct obj *o = new_obj(K_EVENTFD, flags & EFD_NONBLOCK);
    if (!o)
        return -1;
    o->counter = initval;
    return o->fd;
}

/* No signal is ever delivered in the fake world: the fd is never ready. */
int __wrap_signalfd(int fd, const sigset_t *mask, int flags)
{
    if (!active())
        return __real_signalfd(fd, mask, flags);
    if (fd >= 0)
        return lookup(fd, "signalfd") ? fd : -1;
    struct obj *o = new_obj(K_INERT, flags & SFD_NONBLOCK);
    return o ? o->fd : -1;
}

int __wrap_open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | __O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    /* The listener's spare fd for EMFILE: fake, so it counts against the
     * fake table and its leaks are caught. */
    if (active() && strcmp(path, "/dev/null") == 0) {
        struct obj *o = new_obj(K_DEVNULL, flags & O_NONBLOCK);
        return o ? o->fd : -1;
    }
    return __real_open(path, flags, mode);
}

int __wrap_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    long arg = va_arg(ap, long);
    va_end(ap);
    if (!fake_range(fd))
        return __real_fcntl(fd, cmd, arg);
    struct obj *o = lookup(fd, "fcntl");
    if (!o)
        return -1;
    switch (cmd) {
    case F_GETFL:
        return O_RDWR | (o->nonblock ? O_NONBLOCK : 0);
    case F_SETFL:
        o->nonblock = (arg & O_NONBLOCK) != 0;
        return 0;
    case F_GETFD:
        return FD_CLOEXEC;
    case F_SETFD:
        return 0;
    default:
        return (int)fail(EINVAL);
    }
}

int __wrap_clock_gettime(clockid_t clk, struct timespec *ts)
{
    if (active() && (clk == CLOCK_MONOTONIC || clk == CLOCK_MONOTONIC_COARSE ||
                     clk == CLOCK_MONOTONIC_RAW || clk == CLOCK_BOOTTIME)) {
        ts->tv_sec = (time_t)(fs.now_ns / 1000000000u);
        ts->tv_nsec = (long)(fs.now_ns % 1000000000u);
        return 0;
    }
    return __real_clock_gettime(clk, ts);
}

/* The fuzz binaries' ASan defaults (ASAN_OPTIONS still overrides them). Each
 * input allocates and frees its loop, buffers and fake kernel: with the
 * default 256 MB quarantine and 4 KiB malloc fill, most of the time went
 * to page faults and memset. A use after free is still caught as long as
 * fewer than 16 MB were freed in between, far more than one input frees. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=16:max_malloc_fill_size=0";
}

/* ---- the script ---------------------------------------------------------------- */

void fs_script_init(struct fs_script *s, const uint8_t *data, size_t size, int target_ops)
{
    s->p = data;
    s->end = data + size;
    s->target_ops = target_ops;
    s->trace = trace_env;
}

static uint8_t script_byte(struct fs_script *s)
{
    return s->p < s->end ? *s->p++ : 0;
}

static size_t room_of(uint8_t b)
{
    return b == 255 ? FS_ROOM_ALL : (size_t)b * b;
}

static uint64_t ms_of(uint8_t b)
{
    return b < 100 ? b : (uint64_t)(b - 99) * (b - 99) * 100;
}

static const int accept_errs[] = {EAGAIN,  EINTR,  ECONNABORTED, EMFILE, ENFILE,
                                  ENOBUFS, ENOMEM, EPERM,        EPROTO};
static const char *const fault_names[] = {"none", "EINTR", "EAGAIN", "short", "RST", "EOF"};

/* Prints a step in words, with its bytes escaped as a C string. */
static void __attribute__((format(printf, 2, 3)))
trace(const struct fs_script *s, const char *fmt, ...)
{
    if (!s->trace)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  step: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void trace_bytes(const struct fs_script *s, int k, const uint8_t *p, size_t n)
{
    if (!s->trace)
        return;
    fprintf(stderr, "  step: SEND conn %d, %zu bytes \"", k, n);
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r')
            fputs("\\r", stderr);
        else if (p[i] == '\n')
            fputs("\\n", stderr);
        else if (p[i] == '"' || p[i] == '\\')
            fprintf(stderr, "\\%c", p[i]);
        else if (p[i] < 0x20 || p[i] >= 0x7f)
            fprintf(stderr, "\\x%02x", p[i]);
        else
            fputc(p[i], stderr);
    }
    fputs("\"\n", stderr);
}

/* The connection a step names, or -1 (skip the step) when there is none. */
static int conn_arg(struct fs_script *s)
{
    uint8_t b = script_byte(s);
    return fs.npeers ? b % fs.npeers : -1;
}

/* What the player must do after a step. */
enum fs_action {
    FS_ACT_NONE = 0,
    FS_ACT_RUN,    /* run the loop once */
    FS_ACT_SLEEP,  /* run the loop once, allowing its wait to sleep */
    FS_ACT_TARGET, /* the target's op *target_op with byte *arg */
};

/* Decodes and applies one step. *run_after: run the loop once afterwards. */
static enum fs_action script_step(struct fs_script *s, bool *run_after, int *target_op,
                                  uint8_t *arg)
{
    uint8_t code = script_byte(s);
    *run_after = !(code & 0x80);
    int op = (code & 0x7f) % (FS_OP_COUNT + s->target_ops);
    int k;
    uint8_t b, f;
    switch (op) {
    case FS_OP_CONNECT:
        b = script_byte(s);
        k = fs_connect(room_of(b));
        trace(s, "CONNECT -> conn %d, send room %zu", k, room_of(b));
        break;
    case FS_OP_SEND: {
        k = conn_arg(s);
        size_t n = script_byte(s);
        if (n > (size_t)(s->end - s->p))
            n = (size_t)(s->end - s->p);
        const uint8_t *data = s->p;
        s->p += n;
        if (k >= 0) {
            trace_bytes(s, k, data, n);
            fs_peer_send(k, data, n);
        }
        break;
    }
    case FS_OP_SHUT:
        if ((k = conn_arg(s)) >= 0) {
            trace(s, "SHUT conn %d (FIN)", k);
            fs_peer_shutdown(k);
        }
        break;
    case FS_OP_CLOSE:
        if ((k = conn_arg(s)) >= 0) {
            trace(s, "CLOSE conn %d (FIN, RST on more data)", k);
            fs_peer_close(k);
        }
        break;
    case FS_OP_RESET:
        if ((k = conn_arg(s)) >= 0) {
            trace(s, "RESET conn %d", k);
            fs_peer_reset(k);
        }
        break;
    case FS_OP_ROOM:
        k = conn_arg(s);
        b = script_byte(s);
        if (k >= 0) {
            trace(s, "ROOM conn %d: %zu bytes", k, room_of(b));
            fs_peer_set_room(k, room_of(b));
        }
        break;
    case FS_OP_ACK:
        k = conn_arg(s);
        b = script_byte(s);
        if (k >= 0) {
            trace(s, "ACK conn %d: %zu bytes read by the client", k, room_of(b));
            fs_peer_ack(k, room_of(b));
        }
        break;
    case FS_OP_RFAULT:
    case FS_OP_WFAULT:
        k = conn_arg(s);
        f = script_byte(s) % FS_FAULT_COUNT;
        b = script_byte(s);
        if (k >= 0) {
            trace(s, "%s conn %d: next %s call: %s %u", op == FS_OP_RFAULT ? "RFAULT" : "WFAULT", k,
                  op == FS_OP_RFAULT ? "read" : "write", fault_names[f], b);
            if (op == FS_OP_RFAULT)
                fs_inject_read(k, (enum fs_fault)f, b);
            else
                fs_inject_write(k, (enum fs_fault)f, b);
        }
        break;
    case FS_OP_AFAULT:
        b = script_byte(s);
        trace(s, "AFAULT: next accept4 fails with %s",
              strerrorname_np(accept_errs[b % (sizeof accept_errs / sizeof accept_errs[0])]));
        fs_inject_accept(accept_errs[b % (sizeof accept_errs / sizeof accept_errs[0])]);
        break;
    case FS_OP_EPOLL: {
        k = conn_arg(s);
        b = script_byte(s);
        uint32_t ev = ((b & 1) ? EPOLLIN : 0) | ((b & 2) ? EPOLLOUT : 0) |
                      ((b & 4) ? EPOLLRDHUP : 0) | ((b & 8) ? EPOLLHUP : 0) |
                      ((b & 16) ? EPOLLERR : 0);
        if (k >= 0) {
            trace(s, "EPOLL conn %d: report 0x%x next", k, ev);
            fs_inject_epoll(k, ev);
        }
        break;
    }
    case FS_OP_EINTR:
        trace(s, "EINTR: the next epoll_wait is interrupted");
        fs_inject_wait_eintr();
        break;
    case FS_OP_RUN:
        trace(s, "RUN");
        *run_after = false;
        return FS_ACT_RUN;
    case FS_OP_SLEEP:
        trace(s, "SLEEP");
        *run_after = false;
        return FS_ACT_SLEEP;
    case FS_OP_ADVANCE:
        b = script_byte(s);
        trace(s, "ADVANCE the clock %llu ms", (unsigned long long)ms_of(b));
        fs_clock_advance_ms(ms_of(b));
        break;
    case FS_OP_ROTATE:
        b = script_byte(s);
        trace(s, "ROTATE epoll scans from %u", b);
        fs_set_rotation(b);
        break;
    case FS_OP_TRUNCATE:
        b = script_byte(s);
        trace(s, "TRUNCATE the newest file to %u bytes", b);
        fs_file_truncate_last(b);
        break;
    default:
        *target_op = op - FS_OP_COUNT;
        *arg = script_byte(s);
        return FS_ACT_TARGET;
    }
    return FS_ACT_NONE;
}

void fs_script_play(struct fs_script *s, void (*run_once)(void),
                    void (*target_step)(int op, uint8_t arg))
{
    while (s->p < s->end) {
        bool run_after;
        int op;
        uint8_t arg;
        switch (script_step(s, &run_after, &op, &arg)) {
        case FS_ACT_RUN:
            run_once();
            break;
        case FS_ACT_SLEEP:
            fs_allow_sleep(true);
            run_once();
            fs_allow_sleep(false);
            break;
        case FS_ACT_TARGET:
            target_step(op, arg);
            break;
        case FS_ACT_NONE:
            break;
        }
        if (run_after)
            run_once();
    }
}

void fs_trace_peers(const struct fs_script *s)
{
    if (!s->trace)
        return;
    for (int k = 0; k < fs.npeers; k++) {
        const struct fs_peer *p = &fs.peers[k];
        fprintf(stderr,
                "  conn %d: client sent %zu bytes, server read %zu and sent %zu: \"%.*s\"%s; "
                "server %s%s%s; client %s%s%s%s\n",
                k, p->in_len, p->consumed, p->out_len, (int)(p->out_len < 200 ? p->out_len : 200),
                p->out, p->out_len < 200 ? "" : "...", p->srv_closed ? "closed" : "open",
                p->srv_shut_wr ? ", shut-wr" : "", p->closed_unread ? ", closed-unread" : "",
                p->peer_shut ? "FIN " : "", p->reset ? "reset " : "",
                p->unrealistic ? "unrealistic " : "", p->accepted ? "accepted" : "queued");
    }
}

void fs_trace(const struct fs_script *s, const char *what)
{
    if (s->trace)
        fprintf(stderr, "  step: %s\n", what);
}

bool fs_settle(void (*run_once)(void))
{
    fs_allow_sleep(false);
    for (int k = 0; k < fs_npeers(); k++) {
        fs_inject_read(k, FS_FAULT_NONE, 0);
        fs_inject_write(k, FS_FAULT_NONE, 0);
        fs_peer_ack(k, FS_ROOM_ALL);
    }
    fs_inject_accept(0);
    uint64_t last = 0;
    int quiet = 0;
    for (int i = 0; quiet < 3; i++) {
        if (i == 20000)
            return false;
        run_once();
        const struct fs_stats *st = fs_stats();
        uint64_t now = st->reads + st->writes + st->accepts + st->closes;
        quiet = now == last ? quiet + 1 : 0;
        last = now;
    }
    return true;
}
