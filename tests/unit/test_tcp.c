/* Unit tests for the net layer (src/tcp.c): listeners on TCP (IPv4, IPv6)
 * and Unix paths, buffered connections over loopback, Unix sockets and
 * socketpairs. Both ends live in the test process: the client side is a
 * plain socket watched by the same loop (struct peer), so every wait is
 * "run the loop until something happened", bounded by a guard timer. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_segs_in; glibc's has not */
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "eddy/tcp.h"

TestSuite(tcp, .timeout = 20);

static struct eddy_loop *loop;

/* ---- running the loop until something happened ---------------------------- */

static bool guard_hit;

static void guard_cb(struct eddy_timer *t)
{
    (void)t;
    guard_hit = true;
}

/* Runs the loop, one blocking iteration at a time, until cond holds or ms
 * milliseconds pass; evaluates to cond. */
#define RUN_WHILE_NOT(cond, ms)                                                                    \
    ({                                                                                             \
        struct eddy_timer guard_;                                                                  \
        guard_hit = false;                                                                         \
        eddy_timer_init(loop, &guard_);                                                            \
        eddy_loop_update_time(loop);                                                               \
        cr_assert_eq(eddy_timer_start(&guard_, guard_cb, (ms), 0), 0);                             \
        while (!(cond) && !guard_hit)                                                              \
            cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);                                   \
        eddy_timer_stop(&guard_);                                                                  \
        (bool)(cond);                                                                              \
    })

#define RUN_UNTIL(cond, ms)                                                                        \
    cr_assert(RUN_WHILE_NOT(cond, ms), "gave up after %d ms waiting for: %s", (int)(ms), #cond)

/* Runs the loop for ms milliseconds (a deadline, not a sleep: everything
 * that happens meanwhile is dispatched). */
static void run_for(uint64_t ms)
{
    RUN_WHILE_NOT(false, ms);
}

/* ---- the server side -------------------------------------------------------- */

struct sconn {
    struct eddy_conn c;
    int reads;
    int eofs;
    int drains;
    int closes;
    int status;
    uint64_t closed_ms;
    size_t last_len;
    char offered[8][64];
    int noffered;
    size_t consumed;
    int lines;
    int timeouts;
    size_t pending_at_drain;
    bool congested_at_drain;
};

#define MAXC 16

static struct {
    struct eddy_listener l;
    bool listening;
    struct eddy_conn_opts opts;
    struct eddy_conn_cbs cbs;
    struct sconn *conns[MAXC];
    struct eddy_listener *accepted_by[MAXC];
    int nconns;
    uint64_t accepted_ms;
    int errors;
    int last_err;
    uint64_t dropped;
    int sockbuf;
    bool close_listener_in_accept;
    bool free_on_close;
    size_t (*reader)(struct sconn *s, char *data, size_t len);
    void (*eof)(struct sconn *s);
    void (*timeout)(struct sconn *s);
} srv;

static size_t echo_reader(struct sconn *s, char *data, size_t len)
{
    cr_assert_eq(eddy_conn_write(&s->c, data, len), 0);
    return len;
}

static size_t srv_read(struct eddy_conn *c, char *data, size_t len)
{
    struct sconn *s = (struct sconn *)c;
    cr_assert_eq(c->state, EDDY_CONN_OPEN, "on_read in state %d", c->state);
    cr_assert_gt(len, 0);
    s->reads++;
    s->last_len = len;
    if (s->noffered < 8) {
        snprintf(s->offered[s->noffered++], sizeof s->offered[0], "%.*s", (int)len, data);
    }
    size_t used = srv.reader ? srv.reader(s, data, len) : echo_reader(s, data, len);
    s->consumed += used;
    return used;
}

static void srv_eof(struct eddy_conn *c)
{
    struct sconn *s = (struct sconn *)c;
    s->eofs++;
    srv.eof(s);
}

static void srv_timeout(struct eddy_conn *c)
{
    struct sconn *s = (struct sconn *)c;
    s->timeouts++;
    srv.timeout(s);
}

static void srv_drain(struct eddy_conn *c)
{
    struct sconn *s = (struct sconn *)c;
    s->drains++;
    s->pending_at_drain = eddy_conn_pending(c);
    s->congested_at_drain = eddy_conn_congested(c);
}

static void srv_close(struct eddy_conn *c, int status)
{
    struct sconn *s = (struct sconn *)c;
    s->closes++;
    s->status = status;
    s->closed_ms = eddy_loop_now(eddy_conn_loop(c));
    cr_assert_eq(c->state, EDDY_CONN_CLOSED);
    cr_assert_eq(eddy_conn_fd(c), -1);
    if (srv.free_on_close) {
        for (int i = 0; i < srv.nconns; i++)
            if (srv.conns[i] == s)
                srv.conns[i] = NULL;
        /* Scribble first, so a later use by eddy shows up even without
         * ASan. */
        memset(s, 0xa5, sizeof *s);
        free(s);
    }
}

static void set_bufs(int fd, int size)
{
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size), 0);
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
}

static struct sconn *open_conn(int fd)
{
    cr_assert_lt(srv.nconns, MAXC);
    struct sconn *s = calloc(1, sizeof *s);
    cr_assert_not_null(s);
    srv.conns[srv.nconns++] = s;
    int rc = eddy_conn_open(loop, &s->c, fd, &srv.opts, &srv.cbs);
    cr_assert_eq(rc, 0, "eddy_conn_open: %s", eddy_strerror(rc));
    return s;
}

static void srv_accept(struct eddy_listener *l, int fd)
{
    cr_assert_geq(fd, 0);
    int fl = fcntl(fd, F_GETFL);
    cr_assert(fl & O_NONBLOCK, "accepted fd is blocking");
    cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC, "accepted fd is not close-on-exec");
    if (srv.sockbuf)
        set_bufs(fd, srv.sockbuf);
    if (srv.close_listener_in_accept)
        eddy_listener_close(l);
    srv.accepted_by[srv.nconns] = l;
    srv.accepted_ms = eddy_loop_now(loop);
    open_conn(fd);
}

static void srv_error(struct eddy_listener *l, int err, uint64_t dropped)
{
    (void)l;
    srv.errors++;
    srv.last_err = err;
    srv.dropped += dropped;
}

static void setup(void)
{
    memset(&srv, 0, sizeof srv);
    int rc = eddy_loop_new(&loop);
    cr_assert_eq(rc, 0, "eddy_loop_new: %s", eddy_strerror(rc));
    srv.cbs.on_read = srv_read;
    srv.cbs.on_drain = srv_drain;
    srv.cbs.on_close = srv_close;
}

static void listen_at(struct eddy_listener *l, const char *text, const struct eddy_listen_opts *o)
{
    struct eddy_addr a;
    cr_assert_eq(eddy_addr_parse(&a, text), 0, "bad address %s", text);
    int rc = eddy_listener_open(loop, l, &a, o, srv_accept, srv_error);
    cr_assert_eq(rc, 0, "listen on %s: %s", text, eddy_strerror(rc));
}

static void listen_tcp(void)
{
    listen_at(&srv.l, "127.0.0.1:0", NULL);
    srv.listening = true;
}

/* ---- the client side ------------------------------------------------------------ */

static char pat(uint64_t off)
{
    return (char)('0' + off % 61);
}

struct peer {
    struct eddy_io io;
    int fd;
    bool reading;
    bool check; /* compare input with pat() instead of keeping it */
    char *rx;
    size_t rx_len, rx_cap;
    uint64_t rx_total;
    bool mismatch;
    bool eof;
    int err;
    char *tx;
    size_t tx_len, tx_off;
    bool gen; /* send pat() bytes for ever */
    uint64_t tx_total;
    bool eagain;
};

#define MAXP 16
static struct peer *peers[MAXP];
static int npeers;

static void peer_update(struct peer *p)
{
    unsigned want = 0;
    if (p->reading && !p->eof && !p->err)
        want |= EDDY_READ;
    if (!p->err && (p->gen || p->tx_off < p->tx_len))
        want |= EDDY_WRITE;
    cr_assert_eq(eddy_io_start(&p->io, want), 0);
}

static void peer_flush(struct peer *p)
{
    char buf[16384];
    for (;;) {
        const char *src;
        size_t n;
        if (p->gen) {
            for (size_t i = 0; i < sizeof buf; i++)
                buf[i] = pat(p->tx_total + i);
            src = buf;
            n = sizeof buf;
        } else {
            if (p->tx_off == p->tx_len)
                return;
            src = p->tx + p->tx_off;
            n = p->tx_len - p->tx_off;
        }
        ssize_t w = send(p->fd, src, n, MSG_NOSIGNAL);
        if (w > 0) {
            p->tx_total += (size_t)w;
            if (!p->gen)
                p->tx_off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            p->eagain = true;
            return;
        }
        p->err = errno;
        return;
    }
}

static void peer_drain(struct peer *p)
{
    char buf[16384];
    for (;;) {
        ssize_t n = recv(p->fd, buf, sizeof buf, 0);
        if (n > 0) {
            if (p->check) {
                for (ssize_t i = 0; i < n; i++)
                    if (buf[i] != pat(p->rx_total + (uint64_t)i))
                        p->mismatch = true;
            } else {
                if (p->rx_len + (size_t)n > p->rx_cap) {
                    p->rx_cap = (p->rx_len + (size_t)n) * 2;
                    p->rx = realloc(p->rx, p->rx_cap + 1);
                    cr_assert_not_null(p->rx);
                }
                memcpy(p->rx + p->rx_len, buf, (size_t)n);
                p->rx_len += (size_t)n;
                p->rx[p->rx_len] = '\0';
            }
            p->rx_total += (uint64_t)n;
            continue;
        }
        if (n == 0) {
            p->eof = true;
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            p->err = errno;
        return;
    }
}

static void peer_cb(struct eddy_io *io, unsigned events)
{
    struct peer *p = (struct peer *)io;
    if (events & EDDY_WRITE)
        peer_flush(p);
    if (events & EDDY_READ)
        peer_drain(p);
    peer_update(p);
}

static struct peer *peer_open(int fd)
{
    cr_assert_lt(npeers, MAXP);
    struct peer *p = calloc(1, sizeof *p);
    cr_assert_not_null(p);
    int fl = fcntl(fd, F_GETFL);
    cr_assert_eq(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
    p->fd = fd;
    p->reading = true;
    eddy_io_init(loop, &p->io, fd, peer_cb);
    peers[npeers++] = p;
    peer_update(p);
    return p;
}

static void peer_send(struct peer *p, const void *data, size_t len)
{
    p->tx = realloc(p->tx, p->tx_len + len);
    cr_assert_not_null(p->tx);
    memcpy(p->tx + p->tx_len, data, len);
    p->tx_len += len;
    peer_flush(p);
    peer_update(p);
}

static void peer_puts(struct peer *p, const char *s)
{
    peer_send(p, s, strlen(s));
}

static void peer_set_reading(struct peer *p, bool on)
{
    p->reading = on;
    peer_update(p);
}

static void peer_close(struct peer *p)
{
    eddy_io_stop(&p->io);
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
}

/* A connected client socket (blocking connect: the kernel completes it
 * from the backlog, before anyone accepts). */
static int connect_to(const struct eddy_addr *a, int bufsize)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    if (bufsize)
        set_bufs(fd, bufsize);
    int rc = connect(fd, (const struct sockaddr *)&a->ss, a->len);
    cr_assert_eq(rc, 0, "connect: %s", strerror(errno));
    return fd;
}

static struct peer *client(void)
{
    return peer_open(connect_to(&srv.l.addr, 0));
}

/* Connects a client and runs the loop until the server has its side. */
static struct sconn *accept_one(struct peer **out)
{
    int before = srv.nconns;
    *out = client();
    RUN_UNTIL(srv.nconns == before + 1, 2000);
    return srv.conns[before];
}

static void teardown(void)
{
    for (int i = 0; i < srv.nconns; i++)
        if (srv.conns[i])
            eddy_conn_close(&srv.conns[i]->c, 0);
    /* The closes finish after the batch. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    for (int i = 0; i < srv.nconns; i++) {
        if (srv.conns[i])
            cr_assert_eq(srv.conns[i]->closes, 1, "conn %d: on_close ran %d times", i,
                         srv.conns[i]->closes);
        free(srv.conns[i]);
        srv.conns[i] = NULL;
    }
    for (int i = 0; i < npeers; i++) {
        peer_close(peers[i]);
        free(peers[i]->rx);
        free(peers[i]->tx);
        free(peers[i]);
    }
    npeers = 0;
    if (srv.listening)
        eddy_listener_close(&srv.l);
    /* Everything is stopped: DEFAULT must return at once. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_DEFAULT), 0);
    eddy_loop_free(loop);
    loop = NULL;
}

/* ---- listeners --------------------------------------------------------------- */

Test(tcp, listener_reports_its_real_port)
{
    setup();
    listen_tcp();
    const struct sockaddr_in *in = (const struct sockaddr_in *)&srv.l.addr.ss;
    cr_assert_eq(in->sin_family, AF_INET);
    cr_assert_neq(in->sin_port, 0, "the listener kept port 0");
    struct sockaddr_in real;
    socklen_t len = sizeof real;
    cr_assert_geq(eddy_listener_fd(&srv.l), 0);
    cr_assert_eq(getsockname(eddy_listener_fd(&srv.l), (struct sockaddr *)&real, &len), 0);
    cr_assert_eq(in->sin_port, real.sin_port);
    cr_assert_eq(in->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    char buf[EDDY_ADDR_STRLEN], want[64];
    snprintf(want, sizeof want, "127.0.0.1:%u", ntohs(real.sin_port));
    cr_assert_str_eq(eddy_addr_format(&srv.l.addr, buf, sizeof buf), want);

    /* The reported address is the one clients reach. */
    struct peer *p;
    struct sconn *s = accept_one(&p);
    cr_assert_eq(srv.accepted_by[0], &srv.l);
    (void)s;

    eddy_listener_close(&srv.l);
    cr_assert_eq(eddy_listener_fd(&srv.l), -1);
    eddy_listener_close(&srv.l); /* twice: a no-op */
    srv.listening = false;
    teardown();
}

Test(tcp, busy_port_is_refused)
{
    setup();
    listen_tcp();
    char text[64];
    snprintf(text, sizeof text, "127.0.0.1:%u",
             ntohs(((const struct sockaddr_in *)&srv.l.addr.ss)->sin_port));
    struct eddy_addr a;
    cr_assert_eq(eddy_addr_parse(&a, text), 0);
    struct eddy_listener second;
    cr_assert_eq(eddy_listener_open(loop, &second, &a, NULL, srv_accept, srv_error), -EADDRINUSE);
    /* The first one is not disturbed. */
    struct peer *p;
    accept_one(&p);
    cr_assert_eq(srv.accepted_by[0], &srv.l);
    teardown();
}

Test(tcp, reuseport_listeners_share_a_port)
{
    setup();
    struct eddy_listen_opts o = {.reuseport = true};
    listen_at(&srv.l, "127.0.0.1:0", &o);
    srv.listening = true;
    char text[64];
    snprintf(text, sizeof text, "127.0.0.1:%u",
             ntohs(((const struct sockaddr_in *)&srv.l.addr.ss)->sin_port));
    struct eddy_listener second;
    listen_at(&second, text, &o);
    eddy_listener_close(&second);
    teardown();
}

static bool have_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Wildcard addresses: without IPV6_V6ONLY, [::]:P would also claim
 * 0.0.0.0:P and fail with EADDRINUSE. */
Test(tcp, ipv4_and_ipv6_listeners_share_a_port)
{
    if (!have_ipv6())
        cr_skip_test("no IPv6 loopback here");
    setup();
    listen_at(&srv.l, "0.0.0.0:0", NULL);
    srv.listening = true;
    unsigned port = ntohs(((const struct sockaddr_in *)&srv.l.addr.ss)->sin_port);
    char text[64];
    snprintf(text, sizeof text, "[::]:%u", port);
    struct eddy_listener six;
    listen_at(&six, text, NULL);
    cr_assert_eq(six.addr.ss.ss_family, AF_INET6);
    cr_assert_eq(ntohs(((const struct sockaddr_in6 *)&six.addr.ss)->sin6_port), port);

    /* Each family's clients reach its own listener. */
    struct eddy_addr a4, a6;
    snprintf(text, sizeof text, "127.0.0.1:%u", port);
    cr_assert_eq(eddy_addr_parse(&a4, text), 0);
    snprintf(text, sizeof text, "[::1]:%u", port);
    cr_assert_eq(eddy_addr_parse(&a6, text), 0);
    struct peer *p4 = peer_open(connect_to(&a4, 0));
    RUN_UNTIL(srv.nconns == 1, 2000);
    struct peer *p6 = peer_open(connect_to(&a6, 0));
    RUN_UNTIL(srv.nconns == 2, 2000);
    cr_assert_eq(srv.accepted_by[0], &srv.l);
    cr_assert_eq(srv.accepted_by[1], &six);
    char buf[EDDY_ADDR_STRLEN];
    cr_assert_eq(strncmp(eddy_conn_peer(&srv.conns[1]->c, buf, sizeof buf), "[::1]:", 6), 0,
                 "peer %s", buf);
    peer_puts(p6, "six");
    RUN_UNTIL(p6->rx_len == 3, 2000);
    cr_assert_str_eq(p6->rx, "six");
    (void)p4;
    eddy_listener_close(&six);
    teardown();
}

/* A private directory for Unix socket paths. */
static char sock_dir[64];

static void make_sock_dir(void)
{
    snprintf(sock_dir, sizeof sock_dir, "/tmp/eddy-test-XXXXXX");
    cr_assert_not_null(mkdtemp(sock_dir));
}

static void unix_text(char *out, size_t size, const char *name)
{
    snprintf(out, size, "unix:%s/%s", sock_dir, name);
}

Test(tcp, unix_listener_replaces_a_stale_socket_file)
{
    setup();
    make_sock_dir();
    char text[128];
    unix_text(text, sizeof text, "stale.sock");
    struct eddy_addr a;
    cr_assert_eq(eddy_addr_parse(&a, text), 0);
    /* A dead server's file: bound, then closed without unlink. */
    int dead = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_eq(bind(dead, (struct sockaddr *)&a.ss, a.len), 0);
    cr_assert_eq(listen(dead, 1), 0);
    close(dead);
    const char *path = text + 5;
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0);

    listen_at(&srv.l, text, NULL);
    srv.listening = true;
    struct peer *p;
    struct sconn *s = accept_one(&p);
    char buf[EDDY_ADDR_STRLEN];
    cr_assert_str_eq(eddy_conn_peer(&s->c, buf, sizeof buf), "unix");
    peer_puts(p, "over unix");
    RUN_UNTIL(p->rx_len == 9, 2000);
    cr_assert_str_eq(p->rx, "over unix");

    /* Closing removes the file. */
    eddy_listener_close(&srv.l);
    srv.listening = false;
    cr_assert_eq(lstat(path, &st), -1);
    cr_assert_eq(errno, ENOENT);
    teardown();
    rmdir(sock_dir);
}

Test(tcp, unix_listener_refuses_a_live_socket)
{
    setup();
    make_sock_dir();
    char text[128];
    unix_text(text, sizeof text, "live.sock");
    listen_at(&srv.l, text, NULL);
    srv.listening = true;
    struct eddy_addr a;
    cr_assert_eq(eddy_addr_parse(&a, text), 0);
    struct eddy_listener second;
    cr_assert_eq(eddy_listener_open(loop, &second, &a, NULL, srv_accept, srv_error), -EADDRINUSE);
    /* The live listener keeps its file and its clients. */
    struct stat st;
    cr_assert_eq(lstat(text + 5, &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));
    struct peer *p = peer_open(connect_to(&a, 0));
    peer_puts(p, "still here");
    RUN_UNTIL(p->rx_len == 10, 2000);
    cr_assert_str_eq(p->rx, "still here");
    for (int i = 0; i < srv.nconns; i++)
        cr_assert_eq(srv.accepted_by[i], &srv.l);
    teardown();
    cr_assert_eq(lstat(text + 5, &st), -1);
    rmdir(sock_dir);
}

Test(tcp, unix_listener_refuses_a_path_that_is_not_a_socket)
{
    setup();
    make_sock_dir();
    char text[128];
    unix_text(text, sizeof text, "file");
    int fd = open(text + 5, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "data", 4), 4);
    close(fd);
    struct eddy_addr a;
    cr_assert_eq(eddy_addr_parse(&a, text), 0);
    struct eddy_listener l;
    cr_assert_eq(eddy_listener_open(loop, &l, &a, NULL, srv_accept, srv_error), -EADDRINUSE);
    struct stat st;
    cr_assert_eq(lstat(text + 5, &st), 0, "the file was removed");
    cr_assert(S_ISREG(st.st_mode));
    cr_assert_eq(st.st_size, 4);
    unlink(text + 5);
    teardown();
    rmdir(sock_dir);
}

Test(tcp, unix_listener_mode)
{
    setup();
    make_sock_dir();
    char text[128];
    unix_text(text, sizeof text, "mode.sock");
    struct eddy_listen_opts o = {.unix_mode = 0600};
    listen_at(&srv.l, text, &o);
    srv.listening = true;
    struct stat st;
    cr_assert_eq(lstat(text + 5, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    teardown();
    rmdir(sock_dir);
}

Test(tcp, pause_and_resume_accepting)
{
    setup();
    listen_tcp();
    eddy_listener_pause(&srv.l);
    struct peer *p = client();
    run_for(30);
    cr_assert_eq(srv.nconns, 0, "accepted while paused");
    cr_assert_eq(eddy_listener_resume(&srv.l), 0);
    RUN_UNTIL(srv.nconns == 1, 2000);
    (void)p;
    teardown();
}

Test(tcp, accept_budget_limits_accepts_per_wakeup)
{
    setup();
    struct eddy_listen_opts o = {.accept_budget = 1};
    listen_at(&srv.l, "127.0.0.1:0", &o);
    srv.listening = true;
    for (int i = 0; i < 3; i++)
        client();
    int runs = 0;
    while (srv.nconns < 3 && runs++ < 100) {
        int before = srv.nconns;
        cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
        cr_assert_leq(srv.nconns - before, 1, "%d accepts in one wake-up", srv.nconns - before);
    }
    cr_assert_eq(srv.nconns, 3);
    teardown();
}

Test(tcp, listener_closed_inside_on_accept)
{
    setup();
    listen_tcp();
    srv.close_listener_in_accept = true;
    for (int i = 0; i < 3; i++)
        client();
    RUN_UNTIL(srv.nconns >= 1, 2000);
    run_for(20);
    cr_assert_eq(srv.nconns, 1, "accepted after the listener was closed");
    cr_assert_eq(eddy_listener_fd(&srv.l), -1);
    srv.listening = false;
    teardown();
}

/* ---- adopted sockets ---------------------------------------------------------- */

/* A socket bound and listening outside eddy, as a parent process or systemd
 * would hand it over. */
static int listening_socket(const char *text, bool nonblocking)
{
    struct eddy_addr a;
    cr_assert_eq(eddy_addr_parse(&a, text), 0);
    int fd =
        socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (const struct sockaddr *)&a.ss, a.len), 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(fd, 16), 0);
    return fd;
}

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

static bool is_listening(int fd)
{
    int on = 0;
    socklen_t len = sizeof on;
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

Test(tcp, adopted_socket_serves_and_stays_open_after_close)
{
    setup();
    int fd = listening_socket("127.0.0.1:0", true);
    cr_assert_eq(eddy_listener_adopt(loop, &srv.l, fd, NULL, srv_accept, srv_error), 0);
    srv.listening = true;
    cr_assert_eq(eddy_listener_fd(&srv.l), fd);
    struct sockaddr_in real;
    socklen_t len = sizeof real;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&real, &len), 0);
    const struct sockaddr_in *in = (const struct sockaddr_in *)&srv.l.addr.ss;
    cr_assert_eq(in->sin_family, AF_INET);
    cr_assert_eq(in->sin_port, real.sin_port, "l->addr is not the socket's address");

    struct peer *p;
    accept_one(&p);
    cr_assert_eq(srv.accepted_by[0], &srv.l);
    peer_puts(p, "adopted");
    RUN_UNTIL(p->rx_len == 7, 2000);
    cr_assert_str_eq(p->rx, "adopted");

    /* Closing stops accepting but leaves the socket to its owner. */
    struct eddy_addr addr = srv.l.addr;
    eddy_listener_close(&srv.l);
    srv.listening = false;
    cr_assert_eq(eddy_listener_fd(&srv.l), -1);
    cr_assert(fd_is_open(fd), "closing an adopted listener closed the socket");
    cr_assert(is_listening(fd));
    int late = connect_to(&addr, 0);
    run_for(30);
    cr_assert_eq(srv.nconns, 1, "accepted after close");
    int got = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(got, 0, "the owner cannot accept: %s", strerror(errno));
    close(got);
    close(late);
    /* And another listener can take it over. */
    cr_assert_eq(eddy_listener_adopt(loop, &srv.l, fd, NULL, srv_accept, srv_error), 0);
    srv.listening = true;
    accept_one(&p);
    cr_assert_eq(srv.nconns, 2);
    teardown();
    cr_assert(fd_is_open(fd));
    close(fd);
}

Test(tcp, adopted_unix_socket_keeps_its_file)
{
    setup();
    make_sock_dir();
    char text[128];
    unix_text(text, sizeof text, "adopted.sock");
    int fd = listening_socket(text, true);
    cr_assert_eq(eddy_listener_adopt(loop, &srv.l, fd, NULL, srv_accept, srv_error), 0);
    char buf[EDDY_ADDR_STRLEN];
    cr_assert_str_eq(eddy_addr_format(&srv.l.addr, buf, sizeof buf), text);
    struct peer *p;
    accept_one(&p);
    eddy_listener_close(&srv.l);
    struct stat st;
    cr_assert_eq(lstat(text + 5, &st), 0, "closing an adopted listener removed the file");
    cr_assert(is_listening(fd));
    teardown();
    close(fd);
    unlink(text + 5);
    rmdir(sock_dir);
}

Test(tcp, adopt_refuses_what_it_cannot_accept_from)
{
    setup();
    struct eddy_listener l;
    int blocking = listening_socket("127.0.0.1:0", false);
    cr_assert_eq(eddy_listener_adopt(loop, &l, blocking, NULL, srv_accept, srv_error), -EINVAL);
    cr_assert(fd_is_open(blocking));
    close(blocking);
    int idle = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert_eq(eddy_listener_adopt(loop, &l, idle, NULL, srv_accept, srv_error), -EINVAL);
    close(idle);
    int file = open("/dev/null", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    cr_assert_eq(eddy_listener_adopt(loop, &l, file, NULL, srv_accept, srv_error), -ENOTSOCK);
    close(file);
    teardown();
}

static int asked;
static bool allow;

static bool may_accept(struct eddy_listener *l)
{
    cr_assert_eq(l, &srv.l);
    asked++;
    return allow;
}

Test(tcp, may_accept_leaves_connections_waiting_until_resumed)
{
    setup();
    listen_tcp();
    asked = 0;
    allow = false;
    srv.l.may_accept = may_accept;
    struct peer *p = client();
    RUN_UNTIL(asked == 1, 2000);
    run_for(30);
    cr_assert_eq(srv.nconns, 0, "accepted though may_accept said no");
    cr_assert_eq(asked, 1, "asked again while paused");
    allow = true;
    cr_assert_eq(eddy_listener_resume(&srv.l), 0);
    RUN_UNTIL(srv.nconns == 1, 2000);
    client();
    RUN_UNTIL(srv.nconns == 2, 2000);
    cr_assert_geq(asked, 3);
    (void)p;
    teardown();
}

/* ---- connections: data ---------------------------------------------------------- */

Test(tcp, echo_round_trip)
{
    setup();
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    char buf[EDDY_ADDR_STRLEN], want[64];
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    cr_assert_eq(getsockname(p->fd, (struct sockaddr *)&me, &len), 0);
    snprintf(want, sizeof want, "127.0.0.1:%u", ntohs(me.sin_port));
    cr_assert_str_eq(eddy_conn_peer(&s->c, buf, sizeof buf), want);
    cr_assert_geq(eddy_conn_fd(&s->c), 0);
    /* Accepted sockets come with Nagle's algorithm off. */
    int nodelay = 0;
    socklen_t optlen = sizeof nodelay;
    cr_assert_eq(getsockopt(eddy_conn_fd(&s->c), IPPROTO_TCP, TCP_NODELAY, &nodelay, &optlen), 0);
    cr_assert_neq(nodelay, 0, "TCP_NODELAY is off on an accepted connection");

    peer_puts(p, "hello");
    RUN_UNTIL(p->rx_len == 5, 2000);
    cr_assert_str_eq(p->rx, "hello");
    peer_puts(p, " world");
    RUN_UNTIL(p->rx_len == 11, 2000);
    cr_assert_str_eq(p->rx, "hello world");
    cr_assert_eq(s->closes, 0);
    teardown();
}

Test(tcp, echo_over_a_socketpair)
{
    setup();
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    struct sconn *s = open_conn(sv[0]);
    struct peer *p = peer_open(sv[1]);
    peer_puts(p, "pair");
    RUN_UNTIL(p->rx_len == 4, 2000);
    cr_assert_str_eq(p->rx, "pair");
    char buf[EDDY_ADDR_STRLEN];
    cr_assert_str_eq(eddy_conn_peer(&s->c, buf, sizeof buf), "unix");
    teardown();
}

static void bulk_echo(bool edge)
{
    setup();
    srv.opts.edge = edge;
    listen_tcp();
    struct peer *p;
    accept_one(&p);
    enum { TOTAL = 2 << 20 };
    char *data = malloc(TOTAL);
    cr_assert_not_null(data);
    for (size_t i = 0; i < TOTAL; i++)
        data[i] = pat(i);
    p->check = true;
    peer_send(p, data, TOTAL);
    RUN_UNTIL(p->rx_total == TOTAL || p->eof || p->err, 5000);
    cr_assert_not(p->mismatch, "the echo differs from what was sent");
    cr_assert_eq(srv.conns[0]->closes, 0);
    free(data);
    teardown();
}

Test(tcp, bulk_echo_level)
{
    bulk_echo(false);
}

Test(tcp, bulk_echo_edge)
{
    bulk_echo(true);
}

/* Consumes whole lines only, and echoes them. */
static size_t line_reader(struct sconn *s, char *data, size_t len)
{
    size_t used = 0;
    for (size_t i = 0; i < len; i++)
        if (data[i] == '\n')
            used = i + 1;
    if (used)
        cr_assert_eq(eddy_conn_write(&s->c, data, used), 0);
    return used;
}

Test(tcp, unconsumed_input_is_offered_again_with_more)
{
    setup();
    srv.reader = line_reader;
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    peer_puts(p, "ab");
    RUN_UNTIL(s->reads == 1, 2000);
    peer_puts(p, "c\nd");
    RUN_UNTIL(s->reads == 2, 2000);
    peer_puts(p, "e\n");
    RUN_UNTIL(s->reads == 3, 2000);
    RUN_UNTIL(p->rx_len == 7, 2000);
    cr_assert_str_eq(s->offered[0], "ab");
    cr_assert_str_eq(s->offered[1], "abc\nd");
    cr_assert_str_eq(s->offered[2], "de\n");
    cr_assert_str_eq(p->rx, "abc\nde\n");
    teardown();
}

/* The callback may modify the data in place (the upper-case echo). */
static size_t upper_reader(struct sconn *s, char *data, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (data[i] >= 'a' && data[i] <= 'z')
            data[i] = (char)(data[i] - 'a' + 'A');
    cr_assert_eq(eddy_conn_write(&s->c, data, len), 0);
    return len;
}

Test(tcp, on_read_may_modify_the_data_in_place)
{
    setup();
    srv.reader = upper_reader;
    listen_tcp();
    struct peer *p;
    accept_one(&p);
    peer_puts(p, "Hello, World!");
    RUN_UNTIL(p->rx_len == 13, 2000);
    cr_assert_str_eq(p->rx, "HELLO, WORLD!");
    teardown();
}

/* Writes made inside on_read are held until it returns, then sent
 * together, in order. */
static int gather_peer_fd;

static size_t gather_reader(struct sconn *s, char *data, size_t len)
{
    (void)data;
    cr_assert_eq(eddy_conn_write(&s->c, "one", 3), 0);
    cr_assert_eq(eddy_conn_pending(&s->c), 3);
    cr_assert_eq(eddy_conn_write(&s->c, "two", 3), 0);
    cr_assert_eq(eddy_conn_write(&s->c, "three", 5), 0);
    cr_assert_eq(eddy_conn_pending(&s->c), 11, "writes inside on_read were not gathered");
    char c;
    cr_assert_eq(recv(gather_peer_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT), -1,
                 "the peer got bytes before on_read returned");
    cr_assert_eq(errno, EAGAIN);
    return len;
}

Test(tcp, writes_inside_on_read_are_gathered)
{
    setup();
    srv.reader = gather_reader;
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    gather_peer_fd = p->fd;
    peer_puts(p, "go");
    RUN_UNTIL(s->reads == 1, 2000);
    /* Sent as soon as the callback returned, before any further wait. */
    cr_assert_eq(eddy_conn_pending(&s->c), 0);
    RUN_UNTIL(p->rx_len == 11, 2000);
    cr_assert_str_eq(p->rx, "onetwothree");
    teardown();
}

Test(tcp, write_outside_callbacks_goes_straight_to_the_socket)
{
    setup();
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    cr_assert_eq(eddy_conn_write(&s->c, "now", 3), 0);
    cr_assert_eq(eddy_conn_pending(&s->c), 0, "a small write to an idle socket was buffered");
    /* The bytes are in the kernel already: no loop iteration is needed. */
    struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 2000), 1);
    char buf[8];
    cr_assert_eq(recv(p->fd, buf, sizeof buf, 0), 3);
    cr_assert_eq(memcmp(buf, "now", 3), 0);
    cr_assert_eq(eddy_conn_write(&s->c, "", 0), 0);
    teardown();
}

Test(tcp, large_write_is_buffered_and_drained)
{
    setup();
    srv.sockbuf = 16 * 1024;
    listen_tcp();
    struct peer *p = peer_open(connect_to(&srv.l.addr, 16 * 1024));
    RUN_UNTIL(srv.nconns == 1, 2000);
    struct sconn *s = srv.conns[0];
    peer_set_reading(p, false);
    /* More than the socket buffers hold, less than the high watermark. */
    enum { TOTAL = 768 << 10 };
    char *data = malloc(TOTAL);
    cr_assert_not_null(data);
    for (size_t i = 0; i < TOTAL; i++)
        data[i] = pat(i);
    cr_assert_eq(eddy_conn_write(&s->c, data, TOTAL), 0);
    free(data);
    cr_assert_gt(eddy_conn_pending(&s->c), 0);
    cr_assert_leq(eddy_conn_pending(&s->c), TOTAL);
    eddy_conn_notify_drain(&s->c);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(s->drains, 0, "on_drain with output still queued");
    p->check = true;
    peer_set_reading(p, true);
    RUN_UNTIL(p->rx_total == TOTAL, 5000);
    cr_assert_not(p->mismatch);
    RUN_UNTIL(s->drains >= 1, 2000);
    cr_assert_eq(eddy_conn_pending(&s->c), 0);
    run_for(10);
    cr_assert_eq(s->drains, 1, "asked once, called %d times", s->drains);
    teardown();
}

/* Above the high watermark, on_drain runs when output falls to the low
 * one; a notify_drain request adds one more call when all is sent. */
Test(tcp, drain_after_the_high_watermark)
{
    setup();
    srv.opts.high_water = 256 << 10;
    /* Small socket buffers: the kernel's share of the write stays far
     * below the watermark (autotuning could otherwise take megabytes). */
    srv.sockbuf = 16 * 1024;
    listen_tcp();
    struct peer *p = peer_open(connect_to(&srv.l.addr, 16 * 1024));
    RUN_UNTIL(srv.nconns == 1, 2000);
    struct sconn *s = srv.conns[0];
    peer_set_reading(p, false);
    enum { TOTAL = 4 << 20 };
    char *data = malloc(TOTAL);
    cr_assert_not_null(data);
    for (size_t i = 0; i < TOTAL; i++)
        data[i] = pat(i);
    cr_assert_eq(eddy_conn_write(&s->c, data, TOTAL), 0);
    free(data);
    cr_assert_gt(eddy_conn_pending(&s->c), srv.opts.high_water);
    p->check = true;
    peer_set_reading(p, true);
    RUN_UNTIL(s->drains == 1, 5000);
    cr_assert_leq(s->pending_at_drain, srv.opts.high_water / 4);
    eddy_conn_notify_drain(&s->c);
    RUN_UNTIL(p->rx_total == TOTAL, 5000);
    cr_assert_not(p->mismatch);
    RUN_UNTIL(s->drains == 2, 2000);
    run_for(10);
    cr_assert_eq(s->drains, 2);
    teardown();
}

Test(tcp, notify_drain_with_nothing_queued_is_deferred)
{
    setup();
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    eddy_conn_notify_drain(&s->c);
    cr_assert_eq(s->drains, 0, "on_drain ran inside eddy_conn_notify_drain()");
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(s->drains, 1);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(s->drains, 1, "asked once, called twice");
    teardown();
}

/* ---- back-pressure -------------------------------------------------------------- */

static int trace_fd = -1;
static int trace_count;

static void count_trace(void *arg, int fd, uint32_t events)
{
    (void)arg;
    (void)events;
    if (fd == trace_fd)
        trace_count++;
}

static void back_pressure(bool edge)
{
    setup();
    srv.opts.edge = edge;
    srv.opts.high_water = 64 * 1024;
    srv.opts.low_water = 4 * 1024;
    /* Small socket buffers keep the amount in flight well below the gap
     * between the watermarks, so only the peer's reading can resume
     * reading. */
    srv.sockbuf = 8 * 1024;
    listen_tcp();
    struct peer *p;
    int fd = connect_to(&srv.l.addr, 8 * 1024);
    p = peer_open(fd);
    RUN_UNTIL(srv.nconns == 1, 2000);
    struct sconn *s = srv.conns[0];

    /* The peer sends for ever and reads nothing: the echo piles up. */
    peer_set_reading(p, false);
    p->gen = true;
    peer_update(p);
    RUN_UNTIL(eddy_conn_pending(&s->c) > srv.opts.high_water, 5000);
    int reads_at_pause = s->reads;
    cr_assert_gt(reads_at_pause, 0);
    cr_assert(eddy_conn_congested(&s->c));

    /* Reading has stopped: the peer fills the socket buffers and blocks,
     * and on_read is not called again however long it keeps trying. */
    p->eagain = false;
    uint64_t sent_at_pause = p->tx_total;
    RUN_UNTIL(p->eagain, 5000);
    /* Nor does epoll keep reporting the unread input: a paused connection
     * costs nothing while it waits. */
    trace_fd = eddy_conn_fd(&s->c);
    trace_count = 0;
    eddy_loop_set_trace(loop, count_trace, NULL);
    run_for(30);
    eddy_loop_set_trace(loop, NULL, NULL);
    cr_assert_lt(trace_count, 5, "epoll reported the paused connection %d times", trace_count);
    cr_assert_eq(s->reads, reads_at_pause, "on_read ran %d more times above the high watermark",
                 s->reads - reads_at_pause);
    cr_assert_gt(eddy_conn_pending(&s->c), srv.opts.low_water);
    cr_assert_lt(p->tx_total - sent_at_pause, 4u << 20, "the peer could send without limit");
    cr_assert_eq(s->drains, 0);

    /* The peer stops sending and reads: output drains, on_drain runs, and
     * reading resumes, so everything sent comes back. */
    p->gen = false;
    p->check = true;
    peer_set_reading(p, true);
    RUN_UNTIL(s->drains >= 1, 5000);
    cr_assert_not(s->congested_at_drain);
    cr_assert_leq(s->pending_at_drain, srv.opts.low_water);
    RUN_UNTIL(s->reads > reads_at_pause, 5000);
    RUN_UNTIL(p->rx_total == p->tx_total || p->eof || p->err, 5000);
    cr_assert_eq(p->rx_total, p->tx_total);
    cr_assert_not(p->mismatch);
    cr_assert_eq(s->closes, 0);
    teardown();
}

Test(tcp, back_pressure_level)
{
    back_pressure(false);
}

Test(tcp, back_pressure_edge)
{
    back_pressure(true);
}

/* ---- half-close, shutdown and linger ------------------------------------------------- */

Test(tcp, peer_half_close_gets_the_reply_then_eof)
{
    setup();
    srv.reader = upper_reader;
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    peer_puts(p, "hello");
    cr_assert_eq(shutdown(p->fd, SHUT_WR), 0);
    RUN_UNTIL(p->eof || p->err, 2000);
    cr_assert_eq(p->err, 0, "peer error %s", strerror(p->err));
    cr_assert_str_eq(p->rx, "HELLO");
    cr_assert_str_eq(s->offered[0], "hello");
    /* Default on_eof: shut down after the reply, then close cleanly. */
    RUN_UNTIL(s->closes == 1, 2000);
    cr_assert_eq(s->status, 0);
    teardown();
}

/* Edge mode: the data and the EOF behind it arrive before the server
 * looks, so they make a single edge; a short read must not be taken as
 * "wait for the next edge", or the EOF is never seen. */
Test(tcp, edge_mode_sees_an_eof_queued_behind_data)
{
    setup();
    srv.reader = upper_reader;
    srv.opts.edge = true;
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    peer_puts(p, "edge");
    cr_assert_eq(shutdown(p->fd, SHUT_WR), 0);
    RUN_UNTIL(p->eof || p->err, 2000);
    cr_assert_eq(p->err, 0);
    cr_assert_str_eq(p->rx, "EDGE");
    RUN_UNTIL(s->closes == 1, 2000);
    cr_assert_eq(s->status, 0);
    teardown();
}

/* A reply larger than the socket buffers: the shutdown waits for it. */
static size_t big_reply_reader(struct sconn *s, char *data, size_t len)
{
    (void)data;
    enum { BIG = 1 << 20 };
    char *reply = malloc(BIG);
    cr_assert_not_null(reply);
    for (size_t i = 0; i < BIG; i++)
        reply[i] = pat(i);
    cr_assert_eq(eddy_conn_write(&s->c, reply, BIG), 0);
    free(reply);
    return len;
}

Test(tcp, half_close_with_a_large_reply)
{
    setup();
    srv.reader = big_reply_reader;
    /* Small socket buffers keep most of the reply queued in eddy when the
     * EOF is read. */
    srv.sockbuf = 16 * 1024;
    listen_tcp();
    struct peer *p = peer_open(connect_to(&srv.l.addr, 16 * 1024));
    RUN_UNTIL(srv.nconns == 1, 2000);
    struct sconn *s = srv.conns[0];
    p->check = true;
    peer_puts(p, "q");
    cr_assert_eq(shutdown(p->fd, SHUT_WR), 0);
    RUN_UNTIL(p->eof || p->err, 5000);
    cr_assert_eq(p->err, 0, "peer error %s", strerror(p->err));
    cr_assert_eq(p->rx_total, 1 << 20);
    cr_assert_not(p->mismatch);
    RUN_UNTIL(s->closes == 1, 2000);
    cr_assert_eq(s->status, 0);
    teardown();
}

static void bye_eof(struct sconn *s)
{
    cr_assert_eq(s->c.state, EDDY_CONN_OPEN);
    cr_assert_eq(eddy_conn_write(&s->c, "bye", 3), 0);
    eddy_conn_shutdown(&s->c);
}

Test(tcp, custom_on_eof_writes_then_shuts_down)
{
    setup();
    srv.eof = bye_eof;
    srv.cbs.on_eof = srv_eof;
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    peer_puts(p, "x");
    cr_assert_eq(shutdown(p->fd, SHUT_WR), 0);
    RUN_UNTIL(p->eof || p->err, 2000);
    cr_assert_eq(p->err, 0);
    cr_assert_str_eq(p->rx, "xbye");
    cr_assert_eq(s->eofs, 1);
    RUN_UNTIL(s->closes == 1, 2000);
    cr_assert_eq(s->status, 0);
    teardown();
}

static void quiet_eof(struct sconn *s)
{
    (void)s;
}

/* An on_eof that does nothing keeps the connection open for writing. */
Test(tcp, on_eof_may_keep_the_connection_open)
{
    setup();
    srv.eof = quiet_eof;
    srv.cbs.on_eof = srv_eof;
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    cr_assert_eq(shutdown(p->fd, SHUT_WR), 0);
    RUN_UNTIL(s->eofs == 1, 2000);
    run_for(20);
    cr_assert_eq(s->eofs, 1, "on_eof ran again");
    cr_assert_eq(s->closes, 0);
    cr_assert_eq(eddy_conn_write(&s->c, "late", 4), 0);
    RUN_UNTIL(p->rx_len == 4, 2000);
    cr_assert_str_eq(p->rx, "late");
    teardown();
}

/* Replies, then shuts down from inside on_read, like an HTTP/1.0 server. */
enum { REPLY = 32 * 1024 };

static void write_reply(struct sconn *s)
{
    char *reply = malloc(REPLY);
    cr_assert_not_null(reply);
    for (size_t i = 0; i < REPLY; i++)
        reply[i] = pat(i);
    cr_assert_eq(eddy_conn_write(&s->c, reply, REPLY), 0);
    free(reply);
}

static size_t reply_and_shutdown_reader(struct sconn *s, char *data, size_t len)
{
    (void)data;
    write_reply(s);
    eddy_conn_shutdown(&s->c);
    cr_assert_eq(s->c.state, EDDY_CONN_SHUTDOWN);
    cr_assert_eq(eddy_conn_write(&s->c, "x", 1), -EPIPE);
    return len;
}

/* The peer keeps sending junk nobody reads. Closing with unread input
 * would send an RST that can destroy the reply in flight; lingering reads
 * and drops it until the peer closes. */
Test(tcp, shutdown_lingers_so_the_reply_survives_unread_input)
{
    setup();
    srv.reader = reply_and_shutdown_reader;
    /* Far beyond the waits below: the close must come from seeing the
     * peer's EOF while draining, not from the deadline. */
    srv.opts.linger_ms = 60000;
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    peer_set_reading(p, false);
    char junk[8192];
    memset(junk, 'j', sizeof junk);
    peer_puts(p, "REQUEST ");
    peer_send(p, junk, sizeof junk);
    RUN_UNTIL(s->reads >= 1 && s->c.state != EDDY_CONN_OPEN && s->c.state != EDDY_CONN_SHUTDOWN,
              2000);
    cr_assert_eq(s->c.state, EDDY_CONN_LINGER, "state %d after the reply was sent", s->c.state);
    cr_assert_eq(s->closes, 0);

    /* More junk after the server's FIN. */
    for (int i = 0; i < 4; i++)
        peer_send(p, junk, sizeof junk);
    run_for(10);

    p->check = true;
    peer_set_reading(p, true);
    RUN_UNTIL(p->eof || p->err, 2000);
    cr_assert_eq(p->err, 0, "the peer got %s", strerror(p->err));
    cr_assert_eq(p->rx_total, REPLY);
    cr_assert_not(p->mismatch);
    cr_assert_eq(s->reads, 1, "on_read ran after eddy_conn_shutdown()");

    /* The peer closes: the server sees EOF and closes cleanly. */
    cr_assert_eq(shutdown(p->fd, SHUT_WR), 0);
    RUN_UNTIL(s->closes == 1, 2000);
    cr_assert_eq(s->status, 0);
    teardown();
}

Test(tcp, linger_ends_at_its_deadline)
{
    setup();
    srv.opts.linger_ms = 50;
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    eddy_loop_update_time(loop);
    uint64_t t0 = eddy_loop_now(loop);
    eddy_conn_shutdown(&s->c);
    cr_assert_eq(s->c.state, EDDY_CONN_LINGER);
    eddy_conn_shutdown(&s->c); /* idempotent */
    cr_assert_eq(eddy_conn_write(&s->c, "x", 1), -EPIPE);
    /* The peer never closes; the server gives up after linger_ms. */
    RUN_UNTIL(s->closes == 1, 2000);
    cr_assert_eq(s->status, 0);
    cr_assert_geq(s->closed_ms - t0, 50);
    RUN_UNTIL(p->eof || p->err, 2000);
    cr_assert_eq(p->err, 0);
    teardown();
}

static size_t reply_and_finish_reader(struct sconn *s, char *data, size_t len)
{
    (void)data;
    write_reply(s);
    eddy_conn_finish(&s->c);
    eddy_conn_finish(&s->c); /* idempotent */
    cr_assert_eq(eddy_conn_write(&s->c, "x", 1), -EPIPE);
    return len;
}

/* eddy_conn_finish(): the connection closes once the reply has left, with
 * no half-close and no waiting for the peer to close. */
Test(tcp, finish_closes_when_the_reply_is_sent)
{
    setup();
    srv.reader = reply_and_finish_reader;
    srv.opts.linger_ms = 60000; /* lingering would outlast the waits below */
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    p->check = true;
    peer_puts(p, "REQUEST");
    RUN_UNTIL(s->closes == 1 && (p->eof || p->err), 2000);
    cr_assert_eq(s->status, 0);
    cr_assert_eq(p->err, 0, "the peer got %s", strerror(p->err));
    cr_assert_eq(p->rx_total, REPLY);
    cr_assert_not(p->mismatch);
    teardown();
}

static size_t echo_and_finish_reader(struct sconn *s, char *data, size_t len)
{
    cr_assert_eq(eddy_conn_write(&s->c, data, len), 0);
    eddy_conn_finish(&s->c);
    return len;
}

static uint32_t segments_in(int fd)
{
    struct tcp_info ti;
    socklen_t n = sizeof ti;
    cr_assert_eq(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &n), 0);
    return ti.tcpi_segs_in;
}

/* After eddy_conn_finish() the FIN leaves in the reply's last segment: the
 * peer receives no more segments than for the same reply on a connection
 * that stays open. */
Test(tcp, finish_sends_the_fin_with_the_reply)
{
    setup();
    listen_tcp();
    struct peer *open_peer, *finished_peer;
    (void)accept_one(&open_peer);
    peer_puts(open_peer, "ping");
    RUN_UNTIL(open_peer->rx_total == 4, 2000);
    uint32_t open_segments = segments_in(open_peer->fd);

    srv.reader = echo_and_finish_reader;
    struct sconn *s = accept_one(&finished_peer);
    peer_puts(finished_peer, "ping");
    RUN_UNTIL(s->closes == 1 && finished_peer->eof, 2000);
    cr_assert_eq(finished_peer->rx_total, 4);
    cr_assert_eq(segments_in(finished_peer->fd), open_segments,
                 "the reply and the FIN came in %u segments, the reply alone in %u",
                 segments_in(finished_peer->fd), open_segments);
    teardown();
}

/* ---- closing ----------------------------------------------------------------------- */

static size_t close_reader(struct sconn *s, char *data, size_t len)
{
    (void)data;
    (void)len;
    eddy_conn_close(&s->c, -EPROTO);
    cr_assert_eq(s->closes, 0, "on_close ran inside eddy_conn_close()");
    cr_assert_eq(eddy_conn_fd(&s->c), -1);
    eddy_conn_close(&s->c, -EIO); /* the first status wins */
    cr_assert_eq(eddy_conn_write(&s->c, "x", 1), -EPIPE);
    eddy_conn_shutdown(&s->c);
    eddy_conn_notify_drain(&s->c);
    return 0;
}

Test(tcp, close_inside_on_read)
{
    setup();
    srv.reader = close_reader;
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    peer_puts(p, "data that stays unread");
    RUN_UNTIL(s->reads == 1, 2000);
    cr_assert_eq(s->closes, 1);
    cr_assert_eq(s->status, -EPROTO);
    RUN_UNTIL(p->eof || p->err, 2000);
    run_for(10);
    cr_assert_eq(s->reads, 1);
    cr_assert_eq(s->closes, 1);
    cr_assert_eq(s->drains, 0);
    teardown();
}

/* The same in edge mode, where a full read at the end of the read budget
 * queues more reading for later. */
Test(tcp, close_inside_on_read_edge)
{
    setup();
    srv.reader = close_reader;
    srv.opts.edge = true;
    srv.opts.read_budget = 1;
    srv.opts.read_size = 4;
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    peer_puts(p, "0123456789");
    RUN_UNTIL(s->reads == 1, 2000);
    RUN_UNTIL(s->closes == 1, 1000);
    cr_assert_eq(s->status, -EPROTO);
    cr_assert_eq(s->reads, 1);
    teardown();
}

/* Two connections ready in the same batch; whichever is served first
 * closes the other, which must then get no on_read at all, and exactly one
 * on_close, after the batch. */
static struct sconn *pair_conn[2];
static bool pair_closing_done;

static size_t close_other_reader(struct sconn *s, char *data, size_t len)
{
    (void)data;
    if (!pair_closing_done) {
        pair_closing_done = true;
        struct sconn *other = s == pair_conn[0] ? pair_conn[1] : pair_conn[0];
        eddy_conn_close(&other->c, -ECANCELED);
        cr_assert_eq(other->closes, 0);
    }
    return len;
}

Test(tcp, connection_closed_by_another_in_the_same_batch)
{
    setup();
    listen_tcp();
    struct peer *p0, *p1;
    pair_conn[0] = accept_one(&p0);
    pair_conn[1] = accept_one(&p1);
    srv.reader = close_other_reader;
    peer_puts(p0, "zero");
    peer_puts(p1, "one");
    /* Both are readable before the loop looks. */
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_ONCE), 0);
    cr_assert(pair_closing_done);
    cr_assert_eq(pair_conn[0]->reads + pair_conn[1]->reads, 1,
                 "the closed connection's on_read ran");
    struct sconn *closed = pair_conn[0]->reads ? pair_conn[1] : pair_conn[0];
    struct sconn *alive = pair_conn[0]->reads ? pair_conn[0] : pair_conn[1];
    cr_assert_eq(closed->closes, 1);
    cr_assert_eq(closed->status, -ECANCELED);
    cr_assert_eq(alive->closes, 0);
    teardown();
}

Test(tcp, on_close_may_free_the_connection)
{
    setup();
    srv.reader = close_reader;
    srv.free_on_close = true;
    listen_tcp();
    struct peer *p;
    accept_one(&p);
    peer_puts(p, "bye");
    RUN_UNTIL(srv.conns[0] == NULL, 2000);
    RUN_UNTIL(p->eof || p->err, 2000);
    run_for(10);
    teardown();
}

Test(tcp, close_outside_callbacks)
{
    setup();
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    eddy_conn_close(&s->c, 0);
    cr_assert_eq(s->closes, 0, "on_close ran inside eddy_conn_close()");
    cr_assert_eq(eddy_conn_fd(&s->c), -1);
    cr_assert_eq(eddy_conn_write(&s->c, "x", 1), -EPIPE);
    char buf[EDDY_ADDR_STRLEN];
    cr_assert_str_eq(eddy_conn_peer(&s->c, buf, sizeof buf), "unknown");
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(s->closes, 1);
    cr_assert_eq(s->status, 0);
    RUN_UNTIL(p->eof || p->err, 2000);
    teardown();
}

Test(tcp, write_after_shutdown_is_refused)
{
    setup();
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    cr_assert_eq(eddy_conn_write(&s->c, "last", 4), 0);
    eddy_conn_shutdown(&s->c);
    cr_assert_neq(s->c.state, EDDY_CONN_OPEN);
    cr_assert_eq(eddy_conn_write(&s->c, "more", 4), -EPIPE);
    RUN_UNTIL(p->eof || p->err, 2000);
    cr_assert_str_eq(p->rx, "last");
    teardown();
}

/* Linux answers an RST on an established connection by failing the next
 * read with ECONNRESET. */
Test(tcp, peer_reset)
{
    setup();
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    peer_puts(p, "hi");
    RUN_UNTIL(p->rx_len == 2, 2000);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    cr_assert_eq(setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    peer_close(p);
    RUN_UNTIL(s->closes == 1, 2000);
    cr_assert_eq(s->status, -ECONNRESET, "status %d (%s)", s->status, eddy_strerror(s->status));
    teardown();
}

/* A reset peer while output is still queued. */
Test(tcp, peer_reset_with_output_queued)
{
    setup();
    srv.sockbuf = 16 * 1024;
    listen_tcp();
    struct peer *p = peer_open(connect_to(&srv.l.addr, 16 * 1024));
    RUN_UNTIL(srv.nconns == 1, 2000);
    struct sconn *s = srv.conns[0];
    peer_set_reading(p, false);
    enum { TOTAL = 8 << 20 };
    char *data = calloc(1, TOTAL);
    cr_assert_not_null(data);
    cr_assert_eq(eddy_conn_write(&s->c, data, TOTAL), 0);
    free(data);
    cr_assert_gt(eddy_conn_pending(&s->c), 0);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    cr_assert_eq(setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    peer_close(p);
    RUN_UNTIL(s->closes == 1, 2000);
    cr_assert(s->status == -ECONNRESET || s->status == -EPIPE, "status %d (%s)", s->status,
              eddy_strerror(s->status));
    teardown();
}

Test(tcp, idle_timeout)
{
    setup();
    srv.opts.idle_ms = 50;
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    uint64_t opened = srv.accepted_ms;
    RUN_UNTIL(s->closes == 1, 2000);
    cr_assert_eq(s->status, -ETIMEDOUT);
    cr_assert_geq(s->closed_ms - opened, 50, "closed after %lu ms",
                  (unsigned long)(s->closed_ms - opened));
    RUN_UNTIL(p->eof || p->err, 2000);
    teardown();
}

static struct peer *idle_peer;
static uint64_t idle_sent_ms;

static void idle_poke_cb(struct eddy_timer *t)
{
    idle_sent_ms = eddy_loop_now(t->loop);
    peer_puts(idle_peer, "!");
}

/* The poke comes halfway through the idle time: a loop held up for longer
 * than that (a loaded machine) would see both due at once. */
Test(tcp, activity_postpones_the_idle_timeout)
{
    setup();
    srv.opts.idle_ms = 200;
    listen_tcp();
    struct sconn *s = accept_one(&idle_peer);
    struct eddy_timer poke;
    eddy_timer_init(loop, &poke);
    cr_assert_eq(eddy_timer_start(&poke, idle_poke_cb, 100, 0), 0);
    RUN_UNTIL(s->closes == 1, 2000);
    cr_assert_eq(s->status, -ETIMEDOUT);
    cr_assert_eq(s->reads, 1);
    cr_assert_geq(s->closed_ms - idle_sent_ms, 200, "closed %lu ms after the last input",
                  (unsigned long)(s->closed_ms - idle_sent_ms));
    teardown();
}

/* send_timeout_ms: a peer that stops reading a reply is cut off once
 * nothing has moved for that long ... */
Test(tcp, send_timeout_closes_a_peer_that_stopped_reading)
{
    setup();
    srv.reader = big_reply_reader;
    srv.sockbuf = 16 * 1024;
    srv.opts.send_timeout_ms = 100;
    listen_tcp();
    struct peer *p = peer_open(connect_to(&srv.l.addr, 16 * 1024));
    RUN_UNTIL(srv.nconns == 1, 2000);
    struct sconn *s = srv.conns[0];
    peer_set_reading(p, false);
    peer_puts(p, "q");
    RUN_UNTIL(s->reads == 1, 2000);
    uint64_t replied = eddy_loop_now(loop);
    cr_assert_gt(eddy_conn_pending(&s->c), 0, "the reply should not fit in the socket buffers");
    RUN_UNTIL(s->closes == 1, 2000);
    cr_assert_eq(s->status, -ETIMEDOUT, "closed with %s", eddy_strerror(s->status));
    cr_assert_geq(s->closed_ms - replied, 100, "closed after %lu ms",
                  (unsigned long)(s->closed_ms - replied));
    teardown();
}

/* ... and a connection with nothing to send is never timed by it. */
Test(tcp, send_timeout_spares_an_idle_connection)
{
    setup();
    srv.opts.send_timeout_ms = 50;
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    peer_puts(p, "ping");
    RUN_UNTIL(p->rx_len == 4, 2000);
    run_for(300);
    cr_assert_eq(s->closes, 0, "an idle connection was closed with %s", eddy_strerror(s->status));
    teardown();
}

static size_t hoarding_reader(struct sconn *s, char *data, size_t len)
{
    (void)s;
    (void)data;
    (void)len;
    return 0;
}

Test(tcp, input_limit_without_consumption_closes_with_enobufs)
{
    setup();
    srv.reader = hoarding_reader;
    srv.opts.read_size = 512;
    srv.opts.max_input = 1024;
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    char data[2000];
    memset(data, 'm', sizeof data);
    peer_send(p, data, sizeof data);
    RUN_UNTIL(s->closes == 1, 2000);
    cr_assert_eq(s->status, -ENOBUFS);
    /* Everything up to the limit was offered, and nothing beyond. */
    cr_assert_eq(s->last_len, 1024);
    RUN_UNTIL(p->eof || p->err, 2000);
    teardown();
}

/* Edge mode with a budget of one read of one byte: most of the data is
 * read on re-queued turns, without any new epoll event. */
Test(tcp, edge_mode_with_a_tiny_budget_delivers_everything)
{
    setup();
    srv.opts.edge = true;
    srv.opts.read_budget = 1;
    srv.opts.read_size = 1;
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    enum { N = 1000 };
    char data[N];
    for (size_t i = 0; i < N; i++)
        data[i] = pat(i);
    p->check = true;
    peer_send(p, data, N);
    RUN_UNTIL(p->rx_total == N, 5000);
    cr_assert_not(p->mismatch);
    cr_assert_eq(s->reads, N, "%d reads of one byte for %d bytes", s->reads, N);
    teardown();
}

Test(tcp, open_fails_for_an_fd_epoll_refuses)
{
    setup();
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    int fd = dup(fileno(f));
    fclose(f);
    struct sconn s = {0};
    cr_assert_eq(eddy_conn_open(loop, &s.c, fd, &srv.opts, &srv.cbs), -EPERM);
    /* The fd was closed, and no callback ran. */
    cr_assert_eq(fcntl(fd, F_GETFD), -1);
    cr_assert_eq(errno, EBADF);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(s.closes + s.reads, 0);
    teardown();
}

/* ---- input left over while congested ------------------------------------------------- */

/* Answers each line with a reply larger than the high watermark and stops
 * at the first sign of congestion, leaving the other lines unconsumed. */
enum { ANSWER = 600 << 10 };

static size_t congested_reader(struct sconn *s, char *data, size_t len)
{
    size_t used = 0;
    while (used < len) {
        char *nl = memchr(data + used, '\n', len - used);
        if (!nl)
            break;
        used = (size_t)(nl - data) + 1;
        char *answer = malloc(ANSWER);
        cr_assert_not_null(answer);
        for (size_t i = 0; i < ANSWER; i++)
            answer[i] = pat((uint64_t)s->lines * ANSWER + i);
        cr_assert_eq(eddy_conn_write(&s->c, answer, ANSWER), 0);
        free(answer);
        s->lines++;
        if (eddy_conn_congested(&s->c))
            break;
    }
    return used;
}

/* The peer sends three requests at once and then only reads: the two left
 * unconsumed must be offered again when output drains, since no new bytes
 * will ever arrive to trigger a read. */
Test(tcp, input_left_while_congested_is_offered_again)
{
    setup();
    srv.reader = congested_reader;
    srv.opts.high_water = 512 << 10;
    srv.sockbuf = 16 * 1024;
    listen_tcp();
    struct peer *p = peer_open(connect_to(&srv.l.addr, 16 * 1024));
    RUN_UNTIL(srv.nconns == 1, 2000);
    struct sconn *s = srv.conns[0];
    peer_set_reading(p, false);
    peer_puts(p, "a\nb\nc\n");
    RUN_UNTIL(s->reads == 1, 2000);
    run_for(20);
    cr_assert_eq(s->lines, 1);
    cr_assert_eq(s->reads, 1, "on_read ran while congested");
    cr_assert(eddy_conn_congested(&s->c));

    p->check = true;
    peer_set_reading(p, true);
    RUN_UNTIL(p->rx_total == 3 * (uint64_t)ANSWER || p->eof || p->err, 5000);
    cr_assert_not(p->mismatch);
    cr_assert_eq(s->lines, 3);
    cr_assert_eq(s->consumed, 6);
    cr_assert_eq(p->tx_total, 6, "the peer sent more than the three requests");
    teardown();
}

/* ---- deadlines ------------------------------------------------------------------------ */

Test(tcp, deadline_without_on_timeout_closes_with_etimedout)
{
    setup();
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    eddy_loop_update_time(loop);
    uint64_t t0 = eddy_loop_now(loop);
    cr_assert_eq(eddy_conn_set_timeout(&s->c, 30), 0);
    /* Activity does not move a deadline. */
    peer_puts(p, "busy");
    RUN_UNTIL(s->closes == 1, 2000);
    cr_assert_eq(s->status, -ETIMEDOUT);
    cr_assert_geq(s->closed_ms - t0, 30);
    cr_assert_eq(s->timeouts, 0);
    teardown();
}

static void slow_timeout(struct sconn *s)
{
    cr_assert_eq(eddy_conn_write(&s->c, "too slow", 8), 0);
    eddy_conn_shutdown(&s->c);
}

Test(tcp, deadline_calls_on_timeout)
{
    setup();
    srv.timeout = slow_timeout;
    srv.cbs.on_timeout = srv_timeout;
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    eddy_loop_update_time(loop);
    uint64_t t0 = eddy_loop_now(loop);
    cr_assert_eq(eddy_conn_set_timeout(&s->c, 30), 0);
    RUN_UNTIL(p->eof || p->err, 2000);
    cr_assert_geq(eddy_loop_now(loop) - t0, 30);
    cr_assert_eq(s->timeouts, 1);
    cr_assert_str_eq(p->rx, "too slow");
    cr_assert_eq(p->err, 0);
    cr_assert_eq(shutdown(p->fd, SHUT_WR), 0);
    RUN_UNTIL(s->closes == 1, 2000);
    cr_assert_eq(s->status, 0);
    cr_assert_eq(s->timeouts, 1);
    teardown();
}

Test(tcp, deadline_can_be_removed)
{
    setup();
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    cr_assert_eq(eddy_conn_set_timeout(&s->c, 20), 0);
    cr_assert_eq(eddy_conn_set_timeout(&s->c, 0), 0);
    run_for(50);
    cr_assert_eq(s->closes, 0, "closed by a deadline that was removed");
    /* A later deadline replaces an earlier one. */
    cr_assert_eq(eddy_conn_set_timeout(&s->c, 10), 0);
    eddy_loop_update_time(loop);
    uint64_t t0 = eddy_loop_now(loop);
    cr_assert_eq(eddy_conn_set_timeout(&s->c, 60), 0);
    RUN_UNTIL(s->closes == 1, 2000);
    cr_assert_geq(s->closed_ms - t0, 60);
    (void)p;
    teardown();
}

static void count_only_timeout(struct sconn *s)
{
    (void)s;
}

/* The deadline and the idle timeout share a timer but not their effects. */
Test(tcp, deadline_and_idle_timeout_are_independent)
{
    setup();
    srv.timeout = count_only_timeout;
    srv.cbs.on_timeout = srv_timeout;
    srv.opts.idle_ms = 100;
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    uint64_t opened = srv.accepted_ms;
    cr_assert_eq(eddy_conn_set_timeout(&s->c, 20), 0);
    RUN_UNTIL(s->timeouts == 1, 2000);
    cr_assert_eq(s->closes, 0);
    RUN_UNTIL(s->closes == 1, 2000);
    cr_assert_eq(s->status, -ETIMEDOUT);
    cr_assert_eq(s->timeouts, 1);
    cr_assert_geq(s->closed_ms - opened, 100);
    (void)p;
    teardown();
}

/* ---- file parts ------------------------------------------------------------------------ */

/* A temporary file holding n bytes of pat() from start; returns an fd
 * opened for reading. */
static int temp_file(size_t n, uint64_t start)
{
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    for (size_t i = 0; i < n; i++)
        cr_assert_neq(fputc(pat(start + i), f), EOF);
    cr_assert_eq(fflush(f), 0);
    int fd = dup(fileno(f));
    cr_assert_geq(fd, 0);
    fclose(f);
    return fd;
}

Test(tcp, sendfile_keeps_the_order_of_output)
{
    setup();
    srv.sockbuf = 16 * 1024;
    listen_tcp();
    struct peer *p = peer_open(connect_to(&srv.l.addr, 16 * 1024));
    RUN_UNTIL(srv.nconns == 1, 2000);
    struct sconn *s = srv.conns[0];
    enum { N = 256 << 10 };
    /* The write before, the file, the write after, and a second part of
     * the same file from an offset. */
    int fd = temp_file(N, 0);
    int fd2 = dup(fd);
    cr_assert_eq(eddy_conn_write(&s->c, "<", 1), 0);
    cr_assert_eq(eddy_conn_sendfile(&s->c, fd, 0, N), 0);
    cr_assert_eq(eddy_conn_write(&s->c, "|", 1), 0);
    cr_assert_eq(eddy_conn_sendfile(&s->c, fd2, 10, 5), 0);
    cr_assert_eq(eddy_conn_write(&s->c, ">", 1), 0);
    cr_assert_gt(eddy_conn_pending(&s->c), 0);
    cr_assert_leq(eddy_conn_pending(&s->c), N + 8);
    RUN_UNTIL(p->rx_len == N + 8 || p->eof || p->err, 5000);
    cr_assert_eq(p->rx_len, N + 8);
    cr_assert_eq(p->rx[0], '<');
    for (size_t i = 0; i < N; i++)
        if (p->rx[1 + i] != pat(i))
            cr_assert_fail("file byte %zu differs", i);
    cr_assert_eq(p->rx[N + 1], '|');
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(p->rx[N + 2 + i], pat(10 + i));
    cr_assert_eq(p->rx[N + 7], '>');
    cr_assert_eq(eddy_conn_pending(&s->c), 0);
    /* Sent parts are closed. */
    cr_assert_not(fd_is_open(fd));
    cr_assert_not(fd_is_open(fd2));
    teardown();
}

static int reader_file_fd = -1;

static size_t file_reader(struct sconn *s, char *data, size_t len)
{
    (void)data;
    cr_assert_eq(eddy_conn_write(&s->c, "head:", 5), 0);
    cr_assert_eq(eddy_conn_sendfile(&s->c, reader_file_fd, 0, 3), 0);
    cr_assert_eq(eddy_conn_write(&s->c, ":tail", 5), 0);
    cr_assert_eq(eddy_conn_pending(&s->c), 13);
    return len;
}

Test(tcp, sendfile_inside_on_read)
{
    setup();
    srv.reader = file_reader;
    listen_tcp();
    struct peer *p;
    accept_one(&p);
    reader_file_fd = temp_file(3, 0);
    peer_puts(p, "get");
    RUN_UNTIL(p->rx_len == 13, 2000);
    char want[16];
    snprintf(want, sizeof want, "head:%c%c%c:tail", pat(0), pat(1), pat(2));
    cr_assert_str_eq(p->rx, want);
    teardown();
}

Test(tcp, sendfile_of_a_short_file_closes_with_eio)
{
    setup();
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    int fd = temp_file(100, 0);
    cr_assert_eq(eddy_conn_sendfile(&s->c, fd, 0, 200), 0);
    RUN_UNTIL(s->closes == 1, 2000);
    cr_assert_eq(s->status, -EIO);
    cr_assert_not(fd_is_open(fd));
    RUN_UNTIL(p->eof || p->err, 2000);
    cr_assert_leq(p->rx_total, 100);
    teardown();
}

Test(tcp, sendfile_refused_or_empty_still_takes_the_fd)
{
    setup();
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    int empty = temp_file(4, 0);
    cr_assert_eq(eddy_conn_sendfile(&s->c, empty, 0, 0), 0);
    cr_assert_not(fd_is_open(empty));
    eddy_conn_shutdown(&s->c);
    int late = temp_file(4, 0);
    cr_assert_eq(eddy_conn_sendfile(&s->c, late, 0, 4), -EPIPE);
    cr_assert_not(fd_is_open(late));
    (void)p;
    teardown();
}

Test(tcp, close_releases_queued_file_parts)
{
    setup();
    srv.sockbuf = 16 * 1024;
    listen_tcp();
    struct peer *p = peer_open(connect_to(&srv.l.addr, 16 * 1024));
    RUN_UNTIL(srv.nconns == 1, 2000);
    struct sconn *s = srv.conns[0];
    peer_set_reading(p, false);
    enum { N = 1 << 20 };
    int fd = temp_file(N, 0);
    cr_assert_eq(eddy_conn_sendfile(&s->c, fd, 0, N), 0);
    cr_assert_eq(eddy_conn_write(&s->c, "after", 5), 0);
    cr_assert_gt(eddy_conn_pending(&s->c), 5);
    eddy_conn_close(&s->c, 0);
    cr_assert_eq(eddy_loop_run(loop, EDDY_RUN_NOWAIT), 0);
    cr_assert_eq(s->closes, 1);
    cr_assert_not(fd_is_open(fd), "a queued file part outlived its connection");
    teardown();
}

/* ---- running out of fds ------------------------------------------------------------------- */

static int lowest_free_fd(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    close(fd);
    return fd;
}

/* Every client has seen the end of its connection. */
static bool all_finished(struct peer *const *c, int n)
{
    for (int i = 0; i < n; i++)
        if (!c[i]->eof && !c[i]->err)
            return false;
    return true;
}

Test(tcp, out_of_fds_sheds_clients_and_recovers)
{
    setup();
    listen_tcp();
    enum { K = 4 };
    struct peer *c[K];
    for (int i = 0; i < K; i++)
        c[i] = peer_open(connect_to(&srv.l.addr, 0));

    /* Every fd number below the limit is in use: accept() fails with
     * EMFILE. */
    struct rlimit saved, low;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
    low = saved;
    low.rlim_cur = (rlim_t)lowest_free_fd();
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    bool all_done = RUN_WHILE_NOT(all_finished(c, K), 2000);
    int accepted_while_low = srv.nconns;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);

    cr_assert(all_done, "a shed client was left hanging");
    for (int i = 0; i < K; i++)
        cr_assert(c[i]->err == 0 || c[i]->err == ECONNRESET, "client %d: %s", i,
                  strerror(c[i]->err));
    cr_assert_eq(accepted_while_low, 0);
    cr_assert_geq(srv.errors, 1);
    cr_assert_eq(srv.last_err, -EMFILE, "on_error got %d", srv.last_err);
    cr_assert_geq(srv.dropped, 1);
    cr_assert_leq(srv.dropped, K);
    /* Reports are at most one a second, but none is lost: the sheds after
     * the first report are counted and reported when the second is over. */
    RUN_UNTIL(srv.dropped == K, 3000);
    cr_assert_leq(srv.errors, 2);
    cr_assert_eq(srv.last_err, -EMFILE);

    /* With fds again, the listener serves new clients. */
    struct peer *late = client();
    RUN_UNTIL(srv.nconns == 1, 2000);
    peer_puts(late, "back");
    RUN_UNTIL(late->rx_len == 4, 2000);
    cr_assert_str_eq(late->rx, "back");
    teardown();
}

static int open_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own */
}

static uint64_t dropped_by_second;

static void second_error(struct eddy_listener *l, int err, uint64_t dropped)
{
    (void)l;
    cr_assert_eq(err, -EMFILE);
    dropped_by_second += dropped;
}

/* The spare fd is the loop's, not each listener's: a second listener costs
 * its socket only, both shed with the one spare, and closing both gives
 * every fd back. */
Test(tcp, listeners_on_one_loop_share_one_spare_fd)
{
    setup();
    int base = open_fd_count();
    listen_tcp();
    cr_assert_eq(open_fd_count(), base + 2, "the first listener: its socket and the spare");
    struct eddy_listener second;
    struct eddy_addr any;
    cr_assert_eq(eddy_addr_parse(&any, "127.0.0.1:0"), 0);
    cr_assert_eq(eddy_listener_open(loop, &second, &any, NULL, srv_accept, second_error), 0);
    cr_assert_eq(open_fd_count(), base + 3, "the second listener has a spare of its own");

    enum { K = 3 };
    struct peer *c[2 * K];
    for (int i = 0; i < K; i++) {
        c[i] = peer_open(connect_to(&srv.l.addr, 0));
        c[K + i] = peer_open(connect_to(&second.addr, 0));
    }
    dropped_by_second = 0;
    struct rlimit saved, low;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
    low = saved;
    low.rlim_cur = (rlim_t)lowest_free_fd();
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    bool all_done = RUN_WHILE_NOT(all_finished(c, 2 * K), 2000);
    int accepted_while_low = srv.nconns;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
    cr_assert(all_done, "a shed client was left hanging");
    cr_assert_eq(accepted_while_low, 0);
    RUN_UNTIL(srv.dropped == K && dropped_by_second == K, 3000);

    eddy_listener_close(&second);
    cr_assert_eq(open_fd_count(), base + 2 + 2 * K, "closing the second listener");
    eddy_listener_close(&srv.l);
    srv.listening = false;
    cr_assert_eq(open_fd_count(), base + 2 * K, "the spare outlived the loop's listeners");
    teardown();
}

/* A loop can be without its spare fd: out of fds when its first listener
 * opened, or, with several workers, when another thread's accept took the
 * slot a shed() had just freed. The next connection it accepts gives that
 * slot back: the connection is shed, and the spare then sheds the clients
 * after it, instead of their waiting until some fd comes free. */
Test(tcp, a_loop_without_its_spare_fd_takes_the_next_accepted_slot)
{
    setup();
    struct rlimit saved, low;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
    low = saved;
    int base = open_fd_count();
    int first = lowest_free_fd();
    low.rlim_cur = (rlim_t)first + 1; /* room for the listener, none for a spare */
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    listen_tcp();
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
    cr_assert_eq(srv.l.io.fd, first);
    cr_assert_eq(open_fd_count(), base + 1, "the listener got a spare fd");

    enum { K = 3 };
    struct peer *c[K];
    for (int i = 0; i < K; i++)
        c[i] = peer_open(connect_to(&srv.l.addr, 0));
    low.rlim_cur = (rlim_t)lowest_free_fd() + 1; /* room for one accept */
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    bool all_done = RUN_WHILE_NOT(all_finished(c, K), 2000);
    int accepted_while_low = srv.nconns;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);

    cr_assert(all_done, "a client was left hanging");
    cr_assert_eq(accepted_while_low, 0, "the last free slot went to a connection, not the spare");
    RUN_UNTIL(srv.dropped == K, 3000);
    cr_assert_eq(srv.last_err, -EMFILE);
    struct peer *late = client();
    RUN_UNTIL(srv.nconns == 1, 2000);
    peer_puts(late, "back");
    RUN_UNTIL(late->rx_len == 4, 2000);
    teardown();
}

/* ---- the per-loop connection table -------------------------------------------- */

static int each_visits;

static void visit_and_close(struct eddy_conn *c, void *arg)
{
    cr_assert_eq(arg, &each_visits);
    cr_assert_neq(c->state, EDDY_CONN_CLOSED);
    each_visits++;
    eddy_conn_close(c, 0);
}

Test(tcp, conn_each_visits_every_open_connection_once)
{
    setup();
    srv.opts.idle_ms = 60000; /* some in the wheel ... */
    listen_tcp();
    struct peer *p[4];
    struct sconn *s[4];
    for (int i = 0; i < 4; i++)
        s[i] = accept_one(&p[i]);
    eddy_conn_set_timeout(&s[1]->c, 0);
    srv.opts.idle_ms = 0; /* ... and one without any timeout */
    s[3] = accept_one(&p[3]);
    eddy_conn_close(&s[2]->c, 0);
    each_visits = 0;
    eddy_conn_each(loop, visit_and_close, &each_visits);
    cr_assert_eq(each_visits, 4, "visited %d of the 4 open connections", each_visits);
    for (int i = 0; i < 5 && i < srv.nconns; i++)
        RUN_UNTIL(srv.conns[i]->closes == 1, 2000);
    each_visits = 0;
    eddy_conn_each(loop, visit_and_close, &each_visits);
    cr_assert_eq(each_visits, 0);
    teardown();
}

Test(tcp, a_long_timeout_does_not_keep_the_loop_running)
{
    setup();
    srv.opts.idle_ms = 600000;
    listen_tcp();
    struct peer *p;
    struct sconn *s = accept_one(&p);
    cr_assert_eq(eddy_conn_set_timeout(&s->c, 300000), 0);
    /* teardown() closes it and needs EDDY_RUN_DEFAULT to return at once:
     * the wheel's timer must stop with the last timed connection. */
    teardown();
}

Test(tcp, deadlines_fire_in_order_and_not_early)
{
    setup();
    srv.timeout = NULL;
    srv.cbs.on_timeout = NULL;
    listen_tcp();
    enum { N = 6 };
    struct peer *p[N];
    struct sconn *s[N];
    uint64_t start[N];
    /* Opened in reverse order of their deadlines, 0.1 s apart. */
    for (int i = 0; i < N; i++) {
        s[i] = accept_one(&p[i]);
        start[i] = eddy_loop_now(loop);
        cr_assert_eq(eddy_conn_set_timeout(&s[i]->c, (uint64_t)(N - i) * 100), 0);
    }
    RUN_UNTIL(s[0]->closes == 1, 3000);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(s[i]->closes, 1);
        cr_assert_eq(s[i]->status, -ETIMEDOUT);
        uint64_t after = s[i]->closed_ms - start[i];
        cr_assert_geq(after, (uint64_t)(N - i) * 100, "conn %d closed after %lu ms", i,
                      (unsigned long)after);
        if (i > 0)
            cr_assert_leq(s[i]->closed_ms, s[i - 1]->closed_ms, "conn %d closed after conn %d",
                          i, i - 1);
    }
    teardown();
}
