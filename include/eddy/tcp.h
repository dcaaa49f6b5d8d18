/* eddy: the net layer: addresses, listeners and buffered stream connections
 * (TCP over IPv4/IPv6, and Unix stream sockets). Built only on the public
 * loop API (eddy/loop.h). Same conventions: caller-allocated handles with a
 * `data` field, 0 or -errno returns, callbacks never called by a function
 * that failed. */
#ifndef EDDY_TCP_H
#define EDDY_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "eddy/list.h"
#include "eddy/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- addresses -------------------------------------------------------------- */

/* A parsed listen or connect address. */
struct eddy_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* The longest text eddy_addr_format() writes, with its NUL. */
#define EDDY_ADDR_STRLEN (sizeof(((struct sockaddr_un *)0)->sun_path) + 8)

/* Parses "HOST:PORT" (numeric IPv4, or "localhost"), "[V6]:PORT" (numeric
 * IPv6) or "unix:/path". A port is 0..65535 (0: the kernel picks one).
 * Returns 0, or -EINVAL with nothing stored when the text is malformed. No
 * name resolution is done; the call never blocks. */
EDDY_API int eddy_addr_parse(struct eddy_addr *addr, const char *text);

/* Formats an address as "1.2.3.4:80", "[::1]:80" or "unix:/path". Returns
 * buf. */
EDDY_API char *eddy_addr_format(const struct eddy_addr *addr, char *buf, size_t size);

/* ---- listeners ---------------------------------------------------------- */

struct eddy_listener;

/* Called for each accepted connection with its fd (non-blocking,
 * close-on-exec). The callback owns the fd: it must hand it to
 * eddy_conn_open() or close it. */
typedef void (*eddy_accept_cb)(struct eddy_listener *l, int fd);

/* Called when accepting fails for a reason that is not the client's fault:
 * err is -EMFILE, -ENFILE, -ENOBUFS or -ENOMEM. The listener keeps serving
 * (it sheds the waiting connections so the loop does not spin, and pauses
 * accepting briefly if it must). To shed when out of fds, each loop that
 * has listeners keeps one spare fd, whatever their number. To keep logs
 * readable the call is made at most once per second per listener: errors
 * within a second of the last call are counted and reported when the second
 * is over. `dropped` counts the connections shed (accepted and closed at
 * once) since the previous call. */
typedef void (*eddy_accept_error_cb)(struct eddy_listener *l, int err, uint64_t dropped);

struct eddy_listen_opts {
    int backlog;            /* listen() backlog; 0: 511 */
    bool reuseport;         /* set SO_REUSEPORT (several listeners, one port) */
    unsigned accept_budget; /* accepts per wake-up; 0: 64 */
    unsigned unix_mode;     /* chmod of a Unix socket path; 0: leave as umask gives */
};

struct eddy__spare;

struct eddy_listener {
    void *data;                     /* for the caller */
    struct eddy_loop *loop;         /* read-only */
    struct eddy_addr addr;          /* read-only: the bound address (real port) */
    eddy_accept_cb on_accept;       /* read-only */
    eddy_accept_error_cb on_error;  /* read-only; may be NULL */
    /* Optional (NULL after open or adopt; the caller may set it then):
     * asked before each accept. Returning false leaves the waiting
     * connections to other loops or processes watching the same socket:
     * the listener pauses, as with eddy_listener_pause(), until the caller
     * resumes it (from a timer, say). It must not close the listener. */
    bool (*may_accept)(struct eddy_listener *l);
    struct eddy_io io;              /* private */
    struct eddy_timer pause;        /* private: accept back-off */
    struct eddy_timer report;       /* private: a rate-limited on_error call */
    struct eddy__spare *spare;      /* private: the loop's reserve for EMFILE */
    unsigned budget;                /* private */
    bool adopted;                   /* private: the caller owns the socket */
    uint64_t dropped;               /* private */
    uint64_t last_report_ms;        /* private */
    int last_error;                 /* private */
};

/* Creates, binds and listens on addr (SO_REUSEADDR always; IPV6_V6ONLY for
 * IPv6 so IPv4 and IPv6 listeners can share a port; a stale Unix socket file
 * left by a dead process is replaced, a live one is not). opts may be NULL.
 * Returns 0 or -errno: -EADDRINUSE when the port is busy, -EACCES,
 * -EADDRNOTAVAIL, ... On success l->addr holds the bound address. */
EDDY_API int eddy_listener_open(struct eddy_loop *loop, struct eddy_listener *l,
                                const struct eddy_addr *addr, const struct eddy_listen_opts *opts,
                                eddy_accept_cb on_accept, eddy_accept_error_cb on_error);

/* Accepts from a socket that is already bound and listening, and that the
 * caller owns: inherited from a previous process or systemd, or shared by
 * several loops (each adopts it into its own listener; every one is woken
 * for a new connection, and the first to accept gets it). The socket must
 * be non-blocking (so that a loop that loses that race is not stuck in
 * accept()); it is not changed: set TCP_NODELAY on it yourself if accepted
 * connections should have it. Of opts (may be NULL) only accept_budget
 * applies. l->addr is the socket's address (getsockname()). Returns 0 or
 * -errno: -EINVAL when the socket is not listening or is blocking,
 * -ENOTSOCK, -EBADF, -ENOMEM. */
EDDY_API int eddy_listener_adopt(struct eddy_loop *loop, struct eddy_listener *l, int fd,
                                 const struct eddy_listen_opts *opts, eddy_accept_cb on_accept,
                                 eddy_accept_error_cb on_error);

/* Stops accepting. A listener from eddy_listener_open() also closes its
 * socket (and removes a Unix socket file); an adopted one leaves the socket
 * open, listening and in the caller's hands (and leaves a Unix socket file
 * alone). Closing twice is a no-op. No callback runs after it returns, and
 * the struct may be freed, except from inside its own on_accept callback
 * (free it after the batch, from an eddy_defer, instead). */
EDDY_API void eddy_listener_close(struct eddy_listener *l);

/* The listening socket's fd (-1 once closed). */
EDDY_API int eddy_listener_fd(const struct eddy_listener *l);

/* Stops or resumes accepting without closing the socket (clients queue in
 * the backlog meanwhile, or go to other listeners on the same socket). Pause
 * also ends a back-off after an accept error: a paused listener accepts
 * again only when resumed. on_accept may pause the listener; no connection
 * is accepted after that in the same wake-up. */
EDDY_API void eddy_listener_pause(struct eddy_listener *l);
EDDY_API int eddy_listener_resume(struct eddy_listener *l);

/* ---- connections ---------------------------------------------------------- */

struct eddy_conn;

/* Data arrived. `data` points at all unconsumed input (the bytes left over
 * from earlier calls followed by the new ones); the callback may modify it
 * in place. It returns how many bytes it consumed (0..len); the rest stays
 * buffered and is offered again, with more, on the next call. Writes made
 * during the callback are gathered and sent together when it returns. */
typedef size_t (*eddy_read_cb)(struct eddy_conn *c, char *data, size_t len);

/* A connection event without data: see on_eof and on_drain below. */
typedef void (*eddy_conn_cb)(struct eddy_conn *c);

/* The connection is closed and eddy holds no reference to it: the callback
 * may free the memory that contains it. The fd was closed when the close was
 * requested, so by now a new connection may have the same fd number: do not
 * key anything by fd. status is 0 for an orderly close, or
 * -errno: -ECONNRESET, -EPIPE, -ETIMEDOUT (idle timeout), -ENOBUFS (input
 * buffer full and nothing consumed), -ENOMEM. It runs after the current
 * batch of events, never from inside eddy_conn_close(). */
typedef void (*eddy_close_cb)(struct eddy_conn *c, int status);

struct eddy_conn_opts {
    bool edge;             /* edge-triggered epoll for this connection */
    size_t read_size;      /* bytes per read(); 0: 16 KiB */
    unsigned read_budget;  /* reads per wake-up in edge mode; 0: 16 (level: 1) */
    size_t max_input;      /* unconsumed input kept at most; 0: 64 KiB */
    size_t high_water;     /* pause reading above this much unsent output; 0: 1 MiB */
    size_t low_water;      /* resume reading at or below this; 0: high_water / 4 */
    uint64_t idle_ms;      /* close after this long without any I/O; 0: never */
    uint64_t send_timeout_ms; /* the same, but only while output waits to be
                               * sent (a peer that stopped reading); 0: never */
    uint64_t linger_ms;    /* how long eddy_conn_shutdown() drains input; 0: 2000 */
    /* Timeouts are kept to a 32 ms tick (one fires at most that late) and
     * are capped at 2^30 ms (about 12 days). */
};

/* The callbacks. on_read and on_close are required. */
struct eddy_conn_cbs {
    eddy_read_cb on_read;
    /* The peer shut down its write side (read returned 0). All input was
     * offered to on_read first. NULL: eddy_conn_shutdown() (finish sending
     * what is queued, then close), the right thing for request/reply
     * protocols. A callback may keep writing and then call
     * eddy_conn_shutdown() itself. */
    eddy_conn_cb on_eof;
    /* Unsent output fell to the low watermark after having reached the high
     * one, or (when asked with eddy_conn_notify_drain()) all output was sent.
     * May be NULL. Input left unconsumed while reading was paused is offered
     * to on_read again at that point, without waiting for new bytes. */
    eddy_conn_cb on_drain;
    /* The deadline set with eddy_conn_set_timeout() passed. NULL: close
     * with -ETIMEDOUT. */
    eddy_conn_cb on_timeout;
    eddy_close_cb on_close;
};

/* Buffered bytes: a contiguous region [data + off, data + off + len). */
struct eddy_buf {
    char *data;
    size_t off;
    size_t len;
    size_t cap;
};

enum eddy_conn_state {
    EDDY_CONN_OPEN = 0,     /* reading and writing */
    EDDY_CONN_SHUTDOWN = 1, /* sending what is left, then SHUT_WR */
    EDDY_CONN_LINGER = 2,   /* write side shut; draining input until EOF */
    EDDY_CONN_CLOSED = 3,   /* fd closed; on_close pending or done */
};

struct eddy__conn_bufs;

/* A connection is kept small, because a server holds one per client and
 * most of them are idle: 96 bytes on x86-64. Its buffers come from a
 * per-loop pool while data is in flight and go back when they are empty,
 * its timeouts live in a per-loop timer wheel, and its deferred work in a
 * per-loop queue; so an idle connection holds this struct and nothing
 * else. */
struct eddy_conn {
    struct eddy_io io;                 /* private (io.data: the loop's connection state) */
    void *data;                        /* for the caller */
    const struct eddy_conn_cbs *cbs;   /* read-only */
    const struct eddy_conn_opts *opts; /* read-only; must outlive the connection */
    struct eddy_list link;             /* private: timer wheel slot or work queue */
    uint32_t last_io;                  /* private: loop clock (ms, wrapping) */
    uint32_t deadline;                 /* private: eddy_conn_set_timeout(), if F_DEADLINE */
    uint8_t state;                     /* read-only: enum eddy_conn_state */
    uint16_t flags;                    /* private */
    int16_t status;                    /* private: status for on_close */
    struct eddy__conn_bufs *bufs;      /* private: NULL while nothing is buffered */
};

/* Takes ownership of a connected, non-blocking fd and starts reading.
 * Sockets accepted by a listener from eddy_listener_open() have TCP_NODELAY
 * (inherited from the listener); for other sockets, set it yourself if small replies must not
 * wait for Nagle's algorithm. The fd must not be duplicated elsewhere: it
 * is closed without an epoll_ctl call (see eddy_io_close()).
 * `opts` and `cbs` are shared by many connections and must outlive them.
 * Returns 0, or -errno (the fd is then closed and no callback runs). */
EDDY_API int eddy_conn_open(struct eddy_loop *loop, struct eddy_conn *c, int fd,
                            const struct eddy_conn_opts *opts, const struct eddy_conn_cbs *cbs);

/* Queues bytes for sending. The socket is tried first (unless a read
 * callback is running, in which case output is gathered and sent when it
 * returns); what the kernel does not take is buffered and EPOLLOUT is
 * armed. Above the high watermark, reading pauses until output drains to
 * the low watermark. Returns 0, -EPIPE after shutdown or close, or -ENOMEM
 * (the connection is then closed with -ENOMEM). Never raises SIGPIPE. */
EDDY_API int eddy_conn_write(struct eddy_conn *c, const void *buf, size_t len);

/* Queues len bytes of an open file, from offset, to be sent with
 * sendfile() after everything queued before it; later writes queue behind
 * it. Takes ownership of fd: it is closed once sent, or when the connection
 * closes. Counts toward the watermarks like written bytes. Returns 0, -EPIPE
 * (after shutdown or close; fd is closed) or -ENOMEM (the connection is then
 * closed). A file that turns out shorter than len closes the connection with
 * -EIO, since the peer was promised len bytes. */
EDDY_API int eddy_conn_sendfile(struct eddy_conn *c, int fd, uint64_t offset, uint64_t len);

/* Bytes queued but not yet accepted by the kernel. */
EDDY_API size_t eddy_conn_pending(const struct eddy_conn *c);

/* True while unsent output is above the high watermark (reading is paused
 * then). A reader that produces output for several requests in one call
 * should stop there: the rest of its input is offered again once output
 * has drained to the low watermark. */
EDDY_API bool eddy_conn_congested(const struct eddy_conn *c);

/* Sets a deadline ms milliseconds from now (0 removes it). When it passes,
 * on_timeout runs (or the connection closes with -ETIMEDOUT). Independent
 * of the idle timeout; both share one timer. Returns 0 or -ENOMEM. */
EDDY_API int eddy_conn_set_timeout(struct eddy_conn *c, uint64_t ms);

/* Ask for one on_drain call when all queued output has been sent (at once,
 * deferred, if nothing is queued). */
EDDY_API void eddy_conn_notify_drain(struct eddy_conn *c);

/* Graceful close: stop reading new requests, send everything queued,
 * shutdown(SHUT_WR), then read and discard input until the peer closes or
 * linger_ms passes (so a reply is not destroyed by an RST caused by unread
 * input), then close. on_read is not called again. Idempotent. */
EDDY_API void eddy_conn_shutdown(struct eddy_conn *c);

/* Like eddy_conn_shutdown(), but closes as soon as everything queued has
 * been sent, without the half-close and the lingering read: for when the
 * protocol says the peer sends nothing more (an HTTP client that asked for
 * Connection: close). It saves a shutdown(), a wake-up and a read() per
 * connection, and output queued by then leaves with the FIN in its last
 * segment (one packet fewer each way). Should the peer send anyway, the
 * kernel answers with an RST that may destroy the reply; use
 * eddy_conn_shutdown() when it might. */
EDDY_API void eddy_conn_finish(struct eddy_conn *c);

/* Immediate close: unsent output is dropped. status (0 or -errno) is passed
 * to on_close, which runs after the current batch. Idempotent: the first
 * status wins. */
EDDY_API void eddy_conn_close(struct eddy_conn *c, int status);

/* The loop the connection runs on. */
EDDY_API struct eddy_loop *eddy_conn_loop(const struct eddy_conn *c);

/* Calls fn once for each connection of the loop that is open (not CLOSED)
 * when the call begins, unless an earlier call closed or shut it down; fn
 * may close or shut down any connection. For shutting a server down: the
 * net layer keeps no per-server list, so that a connection costs no more
 * than its struct. */
EDDY_API void eddy_conn_each(struct eddy_loop *loop, void (*fn)(struct eddy_conn *c, void *arg),
                             void *arg);

/* The connection's fd (-1 once closed). For getsockopt, getpeername, ... */
EDDY_API int eddy_conn_fd(const struct eddy_conn *c);

/* Formats the peer address ("1.2.3.4:5678", "[::1]:80", "unix"). */
EDDY_API char *eddy_conn_peer(const struct eddy_conn *c, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif
