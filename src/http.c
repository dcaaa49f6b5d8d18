/* The HTTP/1.1 server cycle on one connection, as a small state machine:
 *
 *   IDLE  -- first byte -->  HEAD  -- header block -->  BODY  -- body -->  IDLE
 *     (keep-alive timeout)     (header timeout: 408)      (body timeout: 408)
 *
 * Every complete request in the read buffer is answered in order before the
 * read callback returns, so the responses to one read leave in one write
 * (pipelining). The parsed request lives in the server (one per loop), not
 * in the connection: an idle connection costs its struct and nothing else. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eddy/http.h"

enum phase { PHASE_IDLE = 0, PHASE_HEAD, PHASE_BODY };

struct eddy_http_conn {
    struct eddy_conn conn; /* first: the net layer hands us this pointer */
    struct eddy_http_server *srv;
    struct eddy_list link; /* in srv->conns */
    struct eddy_http_chunked chunked;
    size_t scanned;   /* header bytes already searched */
    size_t head_len;  /* PHASE_BODY: length of the header block */
    uint8_t phase;
    bool sent_continue;
    bool close_after; /* the response in progress ends the connection */
    bool is_head;     /* the request in progress is HEAD */
};

#define DEFAULT_HEADER_TIMEOUT_MS 10000
#define DEFAULT_BODY_TIMEOUT_MS 60000
#define DEFAULT_KEEPALIVE_TIMEOUT_MS 15000
#define DEFAULT_WRITE_TIMEOUT_MS 60000
#define DEFAULT_REQUEST_LINE 8192
#define DEFAULT_HEADER_BYTES 16384
#define DEFAULT_MAX_BODY (1024 * 1024)

static struct eddy_http_conn *hconn(struct eddy_conn *c)
{
    return (struct eddy_http_conn *)c;
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

static void set_phase(struct eddy_http_conn *hc, enum phase phase)
{
    const struct eddy_http_opts *o = &hc->srv->opts;
    hc->phase = (uint8_t)phase;
    uint64_t ms = phase == PHASE_HEAD   ? o->header_timeout_ms
                  : phase == PHASE_BODY ? o->body_timeout_ms
                                        : o->keepalive_timeout_ms;
    eddy_conn_set_timeout(&hc->conn, ms);
}

/* ---- responses ------------------------------------------------------------------ */

static bool has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

/* Writes the status line and header block. Inside the read callback the
 * pieces are gathered in the output buffer and leave in one write. */
static int write_head(struct eddy_http_conn *hc, int version, int status,
                      const struct eddy_http_header *headers, size_t nheaders, uint64_t len)
{
    struct eddy_http_server *srv = hc->srv;
    char head[512];
    int n = snprintf(head, sizeof head, "HTTP/1.%d %d %s\r\nServer: eddy\r\nDate: %s\r\n",
                     version == 10 ? 0 : 1, status, eddy_http_reason(status), date_now(srv));
    if (has_body(status))
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %llu\r\n",
                      (unsigned long long)len);
    if (hc->close_after)
        n += snprintf(head + n, sizeof head - (size_t)n, "Connection: close\r\n");
    else if (version == 10)
        n += snprintf(head + n, sizeof head - (size_t)n, "Connection: keep-alive\r\n");
    int err = eddy_conn_write(&hc->conn, head, (size_t)n);
    for (size_t i = 0; !err && i < nheaders; i++) {
        const struct eddy_http_header *h = &headers[i];
        if (!(err = eddy_conn_write(&hc->conn, h->name, h->name_len)) &&
            !(err = eddy_conn_write(&hc->conn, ": ", 2)) &&
            !(err = eddy_conn_write(&hc->conn, h->value, h->value_len)))
            err = eddy_conn_write(&hc->conn, "\r\n", 2);
    }
    return err ? err : eddy_conn_write(&hc->conn, "\r\n", 2);
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
    bool send_body = has_body(status) && !hc->is_head;
    int err = write_head(hc, x->req->version, status, headers, nheaders, len);
    if (!err && send_body && len)
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
    int err = write_head(hc, x->req->version, status, headers, nheaders, len);
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
    if (write_head(hc, 11, status, &type, 1, (uint64_t)n) == 0)
        eddy_conn_write(&hc->conn, body, (size_t)n);
    if (hc->srv->log) {
        struct eddy_http_exchange x = {hc->srv, hc, NULL, false};
        hc->srv->log(&x, status, (uint64_t)n);
    }
    eddy_conn_shutdown(&hc->conn);
}

/* ---- the request cycle -------------------------------------------------------- */

static void dispatch(struct eddy_http_conn *hc, struct eddy_http_request *req)
{
    struct eddy_http_server *srv = hc->srv;
    hc->close_after = !req->keep_alive || srv->draining;
    hc->is_head = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
    struct eddy_http_exchange x = {srv, hc, req, false};
    srv->handler(&x);
    if (!x.responded && hc->conn.state == EDDY_CONN_OPEN)
        eddy_http_respond(&x, 500, NULL, 0, NULL, 0);
    if (hc->close_after)
        eddy_conn_shutdown(&hc->conn);
}

/* PHASE_BODY: returns the request's total length once its body is here, 0
 * while it is not, or -status. */
static long body_ready(struct eddy_http_conn *hc, struct eddy_http_request *req, char *p,
                       size_t n)
{
    struct eddy_http_server *srv = hc->srv;
    size_t avail = n - hc->head_len;
    char *body = p + hc->head_len;
    if (req->chunked) {
        int r = eddy_http_chunked_decode(&hc->chunked, body, avail, srv->opts.limits.max_body);
        if (r <= 0)
            return r;
        req->body = body;
        req->body_len = hc->chunked.out;
        return (long)(hc->head_len + hc->chunked.in);
    }
    if (avail < req->content_length)
        return 0;
    req->body = body;
    req->body_len = (size_t)req->content_length;
    return (long)(hc->head_len + req->body_len);
}

static size_t on_read(struct eddy_conn *c, char *data, size_t len)
{
    struct eddy_http_conn *hc = hconn(c);
    struct eddy_http_server *srv = hc->srv;
    struct eddy_http_request *req = &srv->req;
    size_t used = 0;
    bool parsed = false; /* srv->req holds this connection's current request */
    while (used < len && c->state == EDDY_CONN_OPEN && !eddy_conn_congested(c)) {
        char *p = data + used;
        size_t n = len - used;
        if (hc->phase != PHASE_BODY) {
            int r = eddy_http_parse_request(p, n, &hc->scanned, &srv->opts.limits, req);
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
            hc->scanned = 0;
            hc->head_len = (size_t)r;
            parsed = true;
            if (req->chunked || req->content_length) {
                memset(&hc->chunked, 0, sizeof hc->chunked);
                hc->sent_continue = false;
                set_phase(hc, PHASE_BODY);
            } else {
                dispatch(hc, req);
                used += (size_t)r;
                set_phase(hc, PHASE_IDLE);
                continue;
            }
        }
        if (!parsed) {
            /* The header block was parsed in an earlier call, and srv->req
             * may have served other connections since: parse it again. */
            size_t again = 0;
            eddy_http_parse_request(p, hc->head_len, &again, &srv->opts.limits, req);
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
        dispatch(hc, req);
        used += (size_t)total;
        parsed = false;
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
    (void)status;
    struct eddy_http_conn *hc = hconn(c);
    eddy_list_remove(&hc->link);
    hc->srv->nconns--;
    free(hc);
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
    eddy_list_init(&srv->conns);
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
        .idle_ms = o->write_timeout_ms,
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
    hc->srv = srv;
    int err = eddy_conn_open(srv->loop, &hc->conn, fd, &srv->conn_opts, &srv->conn_cbs);
    if (err) {
        free(hc);
        return err;
    }
    eddy_list_push(&srv->conns, &hc->link);
    srv->nconns++;
    /* A new connection has the header timeout to send its first request. */
    hc->phase = PHASE_IDLE;
    eddy_conn_set_timeout(&hc->conn, srv->opts.header_timeout_ms);
    if (srv->draining)
        eddy_conn_shutdown(&hc->conn);
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

EDDY_API void eddy_http_server_drain(struct eddy_http_server *srv)
{
    srv->draining = true;
    struct eddy_list *pos;
    eddy_list_for_each(pos, &srv->conns) {
        struct eddy_http_conn *hc = eddy_list_entry(pos, struct eddy_http_conn, link);
        if (hc->phase == PHASE_IDLE && eddy_conn_pending(&hc->conn) == 0)
            eddy_conn_shutdown(&hc->conn);
    }
}

EDDY_API size_t eddy_http_server_close_all(struct eddy_http_server *srv)
{
    size_t n = 0;
    struct eddy_list *pos;
    eddy_list_for_each(pos, &srv->conns) {
        struct eddy_http_conn *hc = eddy_list_entry(pos, struct eddy_http_conn, link);
        if (hc->conn.state != EDDY_CONN_CLOSED) {
            eddy_conn_close(&hc->conn, 0);
            n++;
        }
    }
    return n;
}
