/* The HTTP/1.1 server cycle on one connection, as a small state machine:
 *
 *   IDLE  -- first byte -->  HEAD  -- header block -->  BODY  -- body -->  IDLE
 *     (keep-alive timeout)     (header timeout: 408)      (body timeout: 408)
 *
 * Every complete request in the read buffer is answered in order before the
 * read callback returns, so the responses to one read leave in one write
 * (pipelining). The parsed request lives in the server (one per loop), not
 * in the connection: an idle connection costs its struct (104 bytes) and
 * nothing else. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eddy/http.h"

enum phase { PHASE_IDLE = 0, PHASE_HEAD, PHASE_BODY };

/* conn.data holds the chunked decoder of a body that did not arrive in one
 * piece (NULL otherwise); the server is found from conn.opts. */
struct eddy_http_conn {
    struct eddy_conn conn; /* first: the net layer hands us this pointer */
    uint32_t mark;         /* IDLE, HEAD: header bytes already searched;
                              BODY: length of the header block */
    uint8_t phase;
    bool sent_continue : 1;
    bool close_after : 1; /* the response in progress ends the connection */
    bool is_head : 1;     /* the request in progress is HEAD */
};

#define DEFAULT_HEADER_TIMEOUT_MS 10000
#define DEFAULT_BODY_TIMEOUT_MS 60000
#define DEFAULT_KEEPALIVE_TIMEOUT_MS 15000
#define DEFAULT_WRITE_TIMEOUT_MS 60000
#define DEFAULT_DRAIN_GRACE_MS 1000
#define DEFAULT_REQUEST_LINE 8192
#define DEFAULT_HEADER_BYTES 16384
#define DEFAULT_MAX_BODY (1024 * 1024)

static struct eddy_http_conn *hconn(struct eddy_conn *c)
{
    return (struct eddy_http_conn *)c;
}

static struct eddy_http_server *server_of(const struct eddy_http_conn *hc)
{
    return (struct eddy_http_server *)((char *)hc->conn.opts -
                                       offsetof(struct eddy_http_server, conn_opts));
}

/* The chunked decoder's state outlives a read only when the body is still
 * incomplete; until then it lives in the server, like the request. */
static struct eddy_http_chunked *chunk_state(struct eddy_http_conn *hc)
{
    return hc->conn.data ? hc->conn.data : &server_of(hc)->chunk_state;
}

static void drop_chunk_state(struct eddy_http_conn *hc)
{
    free(hc->conn.data);
    hc->conn.data = NULL;
}

/* The Date header changes once a second; format it then, not per request. */
static const char *date_now(struct eddy_http_server *srv)
{
    uint64_t sec = eddy_loop_now(srv->loop) / 1000;
    if (sec != srv->date_sec || srv->date[0] == '\0') {
        srv->date_sec = sec;
        eddy_http_date((int64_t)time(NULL), srv->date);
    }
    return srv->date;
}

/* How long a connection may stay idle: once the server drains, an idle
 * connection has only the grace to send one more request (which is then
 * answered and ends it); on_timeout shuts it down after that. */
static uint64_t idle_timeout(const struct eddy_http_server *srv, uint64_t ms)
{
    return srv->draining && srv->opts.drain_grace_ms < ms ? srv->opts.drain_grace_ms : ms;
}

static void set_phase(struct eddy_http_conn *hc, enum phase phase)
{
    const struct eddy_http_server *srv = server_of(hc);
    const struct eddy_http_opts *o = &srv->opts;
    hc->phase = (uint8_t)phase;
    if (phase != PHASE_BODY)
        drop_chunk_state(hc);
    uint64_t ms = phase == PHASE_HEAD   ? o->header_timeout_ms
                  : phase == PHASE_BODY ? o->body_timeout_ms
                                        : idle_timeout(srv, o->keepalive_timeout_ms);
    eddy_conn_set_timeout(&hc->conn, ms);
}

/* ---- responses ------------------------------------------------------------------ */

static bool has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static char *put_u64(char *p, uint64_t v)
{
    char digits[20];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = digits[--n];
    return p;
}

/* Room for the fixed part of a head: status line, Server, Date,
 * Content-Length and Connection. */
#define HEAD_FIXED 256
/* Responses up to this size are assembled on the stack and leave in one
 * write, header block and body together. */
#define ASSEMBLE_MAX 4096

/* Writes the status line, the header block and, when given, the body.
 * Formatting by hand instead of with printf() and handing the connection
 * one piece matters: for a small response this is most of eddy's own work
 * per request. */
static int write_response(struct eddy_http_conn *hc, int version, int status,
                          const struct eddy_http_header *headers, size_t nheaders, uint64_t len,
                          const void *body, size_t body_len)
{
    size_t size = HEAD_FIXED + body_len;
    for (size_t i = 0; i < nheaders; i++)
        size += headers[i].name_len + headers[i].value_len + 4;
    char stack[ASSEMBLE_MAX];
    char *buf = size <= sizeof stack ? stack : malloc(size);
    if (!buf) {
        eddy_conn_close(&hc->conn, -ENOMEM);
        return -ENOMEM;
    }
    const char *reason = eddy_http_reason(status);
    char *p = put(buf, version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ", 9);
    p = put_u64(p, (uint64_t)status);
    *p++ = ' ';
    p = put(p, reason, strlen(reason));
    p = put(p, "\r\nServer: eddy\r\nDate: ", 22);
    p = put(p, date_now(server_of(hc)), EDDY_HTTP_DATE_LEN);
    p = put(p, "\r\n", 2);
    if (has_body(status)) {
        p = put(p, "Content-Length: ", 16);
        p = put_u64(p, len);
        p = put(p, "\r\n", 2);
    }
    if (hc->close_after)
        p = put(p, "Connection: close\r\n", 19);
    else if (version == 10)
        p = put(p, "Connection: keep-alive\r\n", 24);
    for (size_t i = 0; i < nheaders; i++) {
        p = put(p, headers[i].name, headers[i].name_len);
        p = put(p, ": ", 2);
        p = put(p, headers[i].value, headers[i].value_len);
        p = put(p, "\r\n", 2);
    }
    p = put(p, "\r\n", 2);
    if (body_len)
        p = put(p, body, body_len);
    int err = eddy_conn_write(&hc->conn, buf, (size_t)(p - buf));
    if (buf != stack)
        free(buf);
    return err;
}

static void finish_response(struct eddy_http_exchange *x, int status, uint64_t bytes)
{
    x->responded = true;
    if (x->server->log)
        x->server->log(x, status, bytes);
}

EDDY_API int eddy_http_respond(struct eddy_http_exchange *x, int status,
                               const struct eddy_http_header *headers, size_t nheaders,
                               const void *body, size_t len)
{
    struct eddy_http_conn *hc = x->conn;
    if (x->responded)
        return -EALREADY;
    bool send_body = has_body(status) && !hc->is_head && len;
    /* A large body is written on its own rather than copied. */
    bool together = send_body && len <= ASSEMBLE_MAX / 2;
    int err = write_response(hc, x->req->version, status, headers, nheaders, len, body,
                             together ? len : 0);
    if (!err && send_body && !together)
        err = eddy_conn_write(&hc->conn, body, len);
    finish_response(x, status, send_body ? len : 0);
    return err;
}

EDDY_API int eddy_http_respond_file(struct eddy_http_exchange *x, int status,
                                    const struct eddy_http_header *headers, size_t nheaders,
                                    int fd, uint64_t offset, uint64_t len)
{
    struct eddy_http_conn *hc = x->conn;
    if (x->responded) {
        close(fd);
        return -EALREADY;
    }
    bool send_body = has_body(status) && !hc->is_head;
    int err = write_response(hc, x->req->version, status, headers, nheaders, len, NULL, 0);
    if (!err && send_body)
        err = eddy_conn_sendfile(&hc->conn, fd, offset, len);
    else
        close(fd);
    finish_response(x, status, send_body ? len : 0);
    return err;
}

/* Answers a request that could not be parsed (or timed out) and closes:
 * after a framing error nothing that follows on the connection can be
 * trusted to start a new request. */
static void fail(struct eddy_http_conn *hc, int status)
{
    char body[96];
    int n = snprintf(body, sizeof body, "%d %s\n", status, eddy_http_reason(status));
    static const struct eddy_http_header type = {"Content-Type", "text/plain", 12, 10};
    hc->close_after = true;
    hc->is_head = false;
    write_response(hc, 11, status, &type, 1, (uint64_t)n, body, (size_t)n);
    if (server_of(hc)->log) {
        struct eddy_http_exchange x = {server_of(hc), hc, NULL, false};
        server_of(hc)->log(&x, status, (uint64_t)n);
    }
    eddy_conn_shutdown(&hc->conn);
}

/* ---- the request cycle -------------------------------------------------------- */

/* `rest`: how many bytes follow the request in the input. */
static void dispatch(struct eddy_http_conn *hc, struct eddy_http_request *req, size_t rest)
{
    struct eddy_http_server *srv = server_of(hc);
    hc->close_after = !req->keep_alive || srv->draining;
    hc->is_head = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
    struct eddy_http_exchange x = {srv, hc, req, false};
    srv->handler(&x);
    if (!x.responded && hc->conn.state == EDDY_CONN_OPEN)
        eddy_http_respond(&x, 500, NULL, 0, NULL, 0);
    if (!hc->close_after)
        return;
    /* A client that asked to close sends nothing more (RFC 9112, 9.6), so
     * no input can come to turn the close into a reset that destroys the
     * reply: close without lingering. Anyone else may still be sending. */
    if (!req->keep_alive && rest == 0)
        eddy_conn_finish(&hc->conn);
    else
        eddy_conn_shutdown(&hc->conn);
}

/* PHASE_BODY: returns the request's total length once its body is here, 0
 * while it is not, or -status. */
static long body_ready(struct eddy_http_conn *hc, struct eddy_http_request *req, char *p,
                       size_t n)
{
    struct eddy_http_server *srv = server_of(hc);
    size_t avail = n - hc->mark;
    char *body = p + hc->mark;
    if (req->chunked) {
        struct eddy_http_chunked *ch = chunk_state(hc);
        int r = eddy_http_chunked_decode(ch, body, avail, srv->opts.limits.max_body);
        if (r < 0)
            return r;
        if (r == 0) {
            if (!hc->conn.data && !(hc->conn.data = malloc(sizeof *ch)))
                return -503;
            if (hc->conn.data != ch)
                memcpy(hc->conn.data, ch, sizeof *ch);
            return 0;
        }
        req->body = body;
        req->body_len = ch->out;
        return (long)(hc->mark + ch->in);
    }
    if (avail < req->content_length)
        return 0;
    req->body = body;
    req->body_len = (size_t)req->content_length;
    return (long)(hc->mark + req->body_len);
}

static size_t on_read(struct eddy_conn *c, char *data, size_t len)
{
    struct eddy_http_conn *hc = hconn(c);
    struct eddy_http_server *srv = server_of(hc);
    struct eddy_http_request *req = &srv->req;
    size_t used = 0;
    bool parsed = false; /* srv->req holds this connection's current request */
    while (used < len && c->state == EDDY_CONN_OPEN && !eddy_conn_congested(c)) {
        char *p = data + used;
        size_t n = len - used;
        if (hc->phase != PHASE_BODY) {
            size_t scanned = hc->mark;
            int r = eddy_http_parse_request(p, n, &scanned, &srv->opts.limits, req);
            hc->mark = (uint32_t)scanned;
            if (r < 0) {
                fail(hc, -r);
                break;
            }
            if (r == 0) {
                /* The header deadline runs from the request's first byte and
                 * is not extended by more bytes: a client that trickles its
                 * header (slowloris) is cut off all the same. A request that
                 * arrives whole never needs it, nor a timer change. */
                if (hc->phase == PHASE_IDLE)
                    set_phase(hc, PHASE_HEAD);
                break;
            }
            hc->mark = (uint32_t)r;
            parsed = true;
            if (req->chunked || req->content_length) {
                memset(&srv->chunk_state, 0, sizeof srv->chunk_state);
                hc->sent_continue = false;
                set_phase(hc, PHASE_BODY);
            } else {
                dispatch(hc, req, n - (size_t)r);
                used += (size_t)r;
                hc->mark = 0;
                set_phase(hc, PHASE_IDLE);
                continue;
            }
        }
        if (!parsed) {
            /* The header block was parsed in an earlier call, and srv->req
             * may have served other connections since: parse it again. */
            size_t again = 0;
            eddy_http_parse_request(p, hc->mark, &again, &srv->opts.limits, req);
            parsed = true;
        }
        long total = body_ready(hc, req, p, n);
        if (total < 0) {
            fail(hc, (int)-total);
            break;
        }
        if (total == 0) {
            if (n >= srv->conn_opts.max_input) {
                /* The body's raw form (chunk framing included) fills the
                 * input buffer: answer rather than be cut off. */
                fail(hc, 413);
            } else if (req->expect_continue && !hc->sent_continue && req->version == 11) {
                eddy_conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
                hc->sent_continue = true;
            }
            break;
        }
        dispatch(hc, req, n - (size_t)total);
        used += (size_t)total;
        parsed = false;
        hc->mark = 0;
        set_phase(hc, PHASE_IDLE);
    }
    return used;
}

static void on_timeout(struct eddy_conn *c)
{
    struct eddy_http_conn *hc = hconn(c);
    if (hc->phase != PHASE_IDLE) {
        fail(hc, 408);
    } else if (eddy_conn_pending(c)) {
        /* Still sending the last response: not idle yet. The keep-alive
         * clock starts again when it has left (on_drain); a reader that
         * stops reading is cut off by the write timeout instead. */
        eddy_conn_notify_drain(c);
    } else {
        eddy_conn_shutdown(c);
    }
}

static void on_drain(struct eddy_conn *c)
{
    struct eddy_http_conn *hc = hconn(c);
    if (hc->phase == PHASE_IDLE && eddy_conn_pending(c) == 0)
        set_phase(hc, PHASE_IDLE);
}

static void on_close(struct eddy_conn *c, int status)
{
    struct eddy_http_conn *hc = hconn(c);
    struct eddy_http_server *srv = server_of(hc);
    srv->nconns--;
    drop_chunk_state(hc);
    free(hc);
    if (srv->on_close)
        srv->on_close(srv, status);
}

EDDY_API char *eddy_http_peer(const struct eddy_http_exchange *x, char *buf, size_t size)
{
    return eddy_conn_peer(&x->conn->conn, buf, size);
}

/* ---- the server ------------------------------------------------------------------ */

EDDY_API void eddy_http_server_init(struct eddy_http_server *srv, struct eddy_loop *loop,
                                    const struct eddy_http_opts *opts, eddy_http_handler handler)
{
    memset(srv, 0, sizeof *srv);
    srv->loop = loop;
    srv->handler = handler;
    if (opts)
        srv->opts = *opts;
    struct eddy_http_opts *o = &srv->opts;
    if (!o->header_timeout_ms)
        o->header_timeout_ms = DEFAULT_HEADER_TIMEOUT_MS;
    if (!o->body_timeout_ms)
        o->body_timeout_ms = DEFAULT_BODY_TIMEOUT_MS;
    if (!o->keepalive_timeout_ms)
        o->keepalive_timeout_ms = DEFAULT_KEEPALIVE_TIMEOUT_MS;
    if (!o->write_timeout_ms)
        o->write_timeout_ms = DEFAULT_WRITE_TIMEOUT_MS;
    if (!o->drain_grace_ms)
        o->drain_grace_ms = DEFAULT_DRAIN_GRACE_MS;
    if (!o->limits.max_request_line)
        o->limits.max_request_line = DEFAULT_REQUEST_LINE;
    if (!o->limits.max_header_bytes)
        o->limits.max_header_bytes = DEFAULT_HEADER_BYTES;
    if (!o->limits.max_headers || o->limits.max_headers > EDDY_HTTP_MAX_HEADERS)
        o->limits.max_headers = EDDY_HTTP_MAX_HEADERS;
    if (!o->limits.max_body)
        o->limits.max_body = DEFAULT_MAX_BODY;
    /* The input buffer holds a whole request: its header block and its
     * body, chunk framing included, plus what a pipelining client sent
     * after it. */
    srv->conn_opts = (struct eddy_conn_opts){
        .edge = o->edge,
        .read_size = o->read_size,
        .max_input = o->limits.max_header_bytes + (size_t)o->limits.max_body * 2 + 64 * 1024,
        .send_timeout_ms = o->write_timeout_ms,
    };
    srv->conn_cbs = (struct eddy_conn_cbs){
        .on_read = on_read, .on_drain = on_drain, .on_timeout = on_timeout, .on_close = on_close};
}

EDDY_API int eddy_http_server_accept(struct eddy_http_server *srv, int fd)
{
    struct eddy_http_conn *hc = calloc(1, sizeof *hc);
    if (!hc) {
        close(fd);
        return -ENOMEM;
    }
    int err = eddy_conn_open(srv->loop, &hc->conn, fd, &srv->conn_opts, &srv->conn_cbs);
    if (err) {
        free(hc);
        return err;
    }
    srv->nconns++;
    /* A new connection has the header timeout to send its first request. */
    hc->phase = PHASE_IDLE;
    eddy_conn_set_timeout(&hc->conn, idle_timeout(srv, srv->opts.header_timeout_ms));
    return 0;
}

static void on_listener_accept(struct eddy_listener *l, int fd)
{
    eddy_http_server_accept(l->data, fd);
}

EDDY_API int eddy_http_server_listen(struct eddy_http_server *srv, struct eddy_listener *l,
                                     const struct eddy_addr *addr,
                                     const struct eddy_listen_opts *opts)
{
    l->data = srv;
    return eddy_listener_open(srv->loop, l, addr, opts, on_listener_accept, NULL);
}

static void drain_one(struct eddy_conn *c, void *arg)
{
    struct eddy_http_conn *hc = hconn(c);
    if (c->opts == arg && hc->phase == PHASE_IDLE)
        set_phase(hc, PHASE_IDLE);
}

EDDY_API void eddy_http_server_drain(struct eddy_http_server *srv)
{
    srv->draining = true;
    eddy_conn_each(srv->loop, drain_one, &srv->conn_opts);
}

struct close_all {
    const struct eddy_conn_opts *opts;
    size_t closed;
};

static void close_one(struct eddy_conn *c, void *arg)
{
    struct close_all *ca = arg;
    if (c->opts == ca->opts) {
        eddy_conn_close(c, 0);
        ca->closed++;
    }
}

EDDY_API size_t eddy_http_server_close_all(struct eddy_http_server *srv)
{
    struct close_all ca = {&srv->conn_opts, 0};
    eddy_conn_each(srv->loop, close_one, &ca);
    return ca.closed;
}
