/* libFuzzer target: the HTTP/1.1 server cycle (include/eddy/http.h) on a
 * real eddy loop, listener and connections, over the fake socket layer
 * (fakesock.h), which the input drives as a script: requests arrive in any
 * pieces, pipelined or not, interleaved with short writes, EAGAIN, EINTR,
 * resets, half-closes, spurious epoll events and time passing.
 *
 * Input: two header bytes, then the script (see fakesock.h).
 *   byte 0  option bits: 1 edge-triggered, 2 fd numbers re-used, 4 small
 *           reads (byte 1), 8 small limits (request line 64, header block
 *           256, 8 fields, body 64), 16 short timeouts (header 100 ms, body
 *           200, keep-alive 300, write 400)
 *   byte 1  read size 1..64 when bit 4 is set
 * Target steps: DRAIN (eddy_http_server_drain), CLOSE-ALL, PAUSE/RESUME the
 * listener (by the byte's low bit), STOP (eddy_loop_stop: an eventfd
 * wake-up).
 *
 * The handler answers by the target's first character after '/':
 *   f  respond_file: a fake file holding "file:" and the target
 *   b  a 3000-byte body (send-buffer back-pressure)
 *   n  no answer (eddy must answer 500)
 *   t  two answers (the second must fail with -EALREADY)
 *   e  204, no body;  m  304, no body
 *   d  drains the server from inside the handler, then answers
 *   c  closes every connection from inside the handler, then answers
 *   else 200 with "METHOD TARGET BODYLEN\n" and the request body
 *
 * The checker reads the client's bytes with eddy's own parser and chunked
 * decoder (fuzzed on their own by fuzz_http_parse and fuzz_chunked; here
 * they only say where requests start and end), and so knows the responses
 * the server owes, in order. After every loop iteration (safety), whatever
 * the faults: the bytes sent are a prefix of those responses: each starts
 * with "HTTP/1.1 " (or "HTTP/1.0 " for a 1.0 request), is framed by its
 * Content-Length (none for HEAD's body, 204 and 304), says
 * "Connection: close" when it must, carries the handler's body; an interim
 * "100 Continue" comes only for a request that asked; nothing follows a
 * response that closes; a 408 only when a timeout could have fired; nothing
 * is sent after shutdown(SHUT_WR). After settling (faults cleared,
 * unlimited send room, time standing still), for connections with only
 * realistic kernel behaviour, no reset, no DRAIN/CLOSE-ALL/truncated file,
 * no EMFILE and no timeout possible (liveness): every owed response was
 * sent whole, a connection that must close did shut down, one whose client
 * half-closed is closed, and none was closed with input unread unless
 * its client had asked to close (and then sent more anyway). Then
 * everything is closed and freed: a leaked fd aborts in fs_end(), a leaked
 * allocation is LeakSanitizer's. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "eddy/http.h"
#include "eddy/loop.h"
#include "eddy/tcp.h"
#include "fakesock.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

enum { T_DRAIN, T_CLOSE_ALL, T_PAUSE, T_STOP, T_COUNT };

#define BIG_BODY   3000
#define MAX_EXPECT 64

static struct {
    struct eddy_loop *loop;
    struct eddy_listener listener;
    struct eddy_http_server srv;
    bool disturbed; /* DRAIN, CLOSE-ALL or a truncated file: framing may end early */
    bool draining;  /* "Connection: close" may come on any response */
    uint64_t min_timeout;
    struct fs_script script;
    bool in_handler;
    uint64_t responses, logged;
    /* Per connection, what check_conn(k, false) last passed with. Its
     * verdict depends on nothing else (the client's and the server's bytes
     * are only ever appended to), so a connection whose bytes did not
     * change since is not parsed and compared again after every
     * iteration. */
    struct checked {
        bool valid, draining, timers;
        size_t in_len, out_len;
    } checked[FS_MAX_PEERS];
} t;

static char big_body[BIG_BODY];

static void __attribute__((noreturn, format(printf, 2, 3))) fail(int k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "\nfuzz_http_conn, connection %d: ", k);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (k >= 0) {
        const struct fs_peer *p = fs_peer(k);
        fprintf(stderr, "  client sent %zu bytes, server read %zu, sent %zu: \"", p->in_len,
                p->consumed, p->out_len);
        for (size_t i = 0; i < p->out_len && i < 600; i++) {
            unsigned char c = p->out[i];
            if (c == '\r')
                fputs("\\r", stderr);
            else if (c == '\n')
                fputs("\\n", stderr);
            else if (c < 0x20 || c >= 0x7f)
                fprintf(stderr, "\\x%02x", c);
            else
                fputc(c, stderr);
        }
        fprintf(stderr, "\"\n");
    }
    abort();
}

/* ---- the handler, and what it answers ----------------------------------------- */

enum kind { H_ECHO, H_FILE, H_BIG, H_NONE, H_TWICE, H_204, H_304, H_DRAIN, H_CLOSE };

static enum kind kind_of(const struct eddy_http_request *r)
{
    if (r->target_len < 2 || r->target[0] != '/')
        return H_ECHO;
    switch (r->target[1]) {
    case 'f':
        return H_FILE;
    case 'b':
        return H_BIG;
    case 'n':
        return H_NONE;
    case 't':
        return H_TWICE;
    case 'e':
        return H_204;
    case 'm':
        return H_304;
    case 'd':
        return H_DRAIN;
    case 'c':
        return H_CLOSE;
    default:
        return H_ECHO;
    }
}

/* The echo answer's body: "METHOD TARGET BODYLEN\n" then the body. */
static char *echo_body(const struct eddy_http_request *r, size_t *len)
{
    char head[64];
    int n = snprintf(head, sizeof head, " %zu\n", r->body_len);
    size_t total = r->method_len + 1 + r->target_len + (size_t)n + r->body_len;
    char *b = malloc(total);
    if (!b)
        abort();
    char *p = b;
    memcpy(p, r->method, r->method_len);
    p += r->method_len;
    *p++ = ' ';
    memcpy(p, r->target, r->target_len);
    p += r->target_len;
    memcpy(p, head, (size_t)n);
    p += n;
    if (r->body_len)
        memcpy(p, r->body, r->body_len);
    *len = total;
    return b;
}

static char *file_body(const struct eddy_http_request *r, size_t *len)
{
    size_t total = 5 + r->target_len;
    char *b = malloc(total);
    if (!b)
        abort();
    memcpy(b, "file:", 5);
    memcpy(b + 5, r->target, r->target_len);
    *len = total;
    return b;
}

static void handler(struct eddy_http_exchange *x)
{
    const struct eddy_http_request *r = x->req;
    static const struct eddy_http_header type = {"Content-Type", "text/plain", 12, 10};
    size_t len;
    char *body;
    t.responses++;
    switch (kind_of(r)) {
    case H_FILE: {
        body = file_body(r, &len);
        int fd = fs_file_open(body, len);
        free(body);
        if (fd < 0) {
            /* The fake fd table is full: the same answer from memory,
             * so that what is owed does not depend on it. */
            body = file_body(r, &len);
            eddy_http_respond(x, 200, &type, 1, body, len);
            free(body);
            return;
        }
        eddy_http_respond_file(x, 200, &type, 1, fd, 0, len);
        return;
    }
    case H_BIG:
        eddy_http_respond(x, 200, &type, 1, big_body, sizeof big_body);
        return;
    case H_NONE:
        return;
    case H_TWICE: {
        int err = eddy_http_respond(x, 200, NULL, 0, "twice\n", 6);
        if (err == -EALREADY)
            fail(-1, "the first answer failed with -EALREADY");
        if (eddy_http_respond(x, 200, NULL, 0, "again\n", 6) != -EALREADY)
            fail(-1, "a second answer was not refused");
        return;
    }
    case H_204:
        eddy_http_respond(x, 204, &type, 1, NULL, 0);
        return;
    case H_304:
        eddy_http_respond(x, 304, NULL, 0, NULL, 0);
        return;
    case H_DRAIN:
        t.disturbed = t.draining = true;
        eddy_http_server_drain(x->server);
        break;
    case H_CLOSE:
        t.disturbed = true;
        eddy_http_server_close_all(x->server);
        break;
    default:
        break;
    }
    body = echo_body(r, &len);
    eddy_http_respond(x, 200, &type, 1, body, len);
    free(body);
}

static void on_log(struct eddy_http_exchange *x, int status, uint64_t bytes)
{
    (void)status;
    (void)bytes;
    char peer[64];
    eddy_http_peer(x, peer, sizeof peer);
    t.logged++;
}

/* ---- what the server owes ------------------------------------------------------ */

struct expect {
    int status;
    int version; /* of the status line: 10 or 11 */
    bool head;   /* no body bytes, whatever Content-Length says */
    bool close;  /* "Connection: close", and nothing after it */
    bool asked;  /* close because the request said so: the client sends no more */
    bool cont;   /* an interim 100 Continue may come first */
    char *body;
    size_t body_len;
};

static FS_NOCOV bool has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

static FS_NOCOV void expect_error(struct expect *e, int status)
{
    char b[96];
    int n = snprintf(b, sizeof b, "%d %s\n", status, eddy_http_reason(status));
    *e = (struct expect){.status = status, .version = 11, .close = true};
    e->body = malloc((size_t)n);
    if (!e->body)
        abort();
    memcpy(e->body, b, (size_t)n);
    e->body_len = (size_t)n;
}

/* Reads the client's bytes as the server does and lists the responses
 * owed, in order. Returns how many. *waiting_cont: the request after them
 * has its header block but not yet its body, and may get a 100 Continue.
 * *beyond: the list stopped at MAX_EXPECT with requests after it, whose
 * responses are not checked. */
static FS_NOCOV size_t owed(const struct fs_peer *p, struct expect *ex, bool *waiting_cont,
                            bool *beyond)
{
    *waiting_cont = false;
    const struct eddy_http_limits *lim = &t.srv.opts.limits;
    char *buf = malloc(p->in_len ? p->in_len : 1);
    if (!buf)
        abort();
    if (p->in_len)
        memcpy(buf, p->in, p->in_len);
    static struct eddy_http_request req;
    size_t pos = 0, n = 0;
    while (pos < p->in_len && n < MAX_EXPECT) {
        size_t scanned = 0;
        int r = eddy_http_parse_request(buf + pos, p->in_len - pos, &scanned, lim, &req);
        if (r == 0)
            break;
        if (r < 0) {
            expect_error(&ex[n++], -r);
            break;
        }
        size_t total = (size_t)r;
        char *bodyp = buf + pos + (size_t)r;
        size_t avail = p->in_len - pos - (size_t)r;
        req.body = NULL;
        req.body_len = 0;
        if (req.chunked) {
            struct eddy_http_chunked d = {0};
            int c = eddy_http_chunked_decode(&d, bodyp, avail, lim->max_body);
            if (c < 0) {
                /* The 100 Continue may have gone out before the bad chunk came. */
                expect_error(&ex[n], -c);
                ex[n++].cont = req.expect_continue && req.version == 11;
                break;
            }
            if (c == 0) {
                *waiting_cont = req.expect_continue && req.version == 11;
                break;
            }
            req.body = bodyp;
            req.body_len = d.out;
            total += d.in;
        } else if (req.content_length) {
            if (avail < req.content_length) {
                *waiting_cont = req.expect_continue && req.version == 11;
                break;
            }
            req.body = bodyp;
            req.body_len = (size_t)req.content_length;
            total += req.body_len;
        }
        struct expect *e = &ex[n++];
        *e = (struct expect){
            .status = 200,
            .version = req.version,
            .head = req.method_len == 4 && memcmp(req.method, "HEAD", 4) == 0,
            .close = !req.keep_alive,
            .asked = !req.keep_alive,
            .cont = req.expect_continue && req.version == 11,
        };
        switch (kind_of(&req)) {
        case H_FILE:
            e->body = file_body(&req, &e->body_len);
            break;
        case H_BIG:
            e->body = malloc(BIG_BODY);
            if (!e->body)
                abort();
            memcpy(e->body, big_body, BIG_BODY);
            e->body_len = BIG_BODY;
            break;
        case H_NONE:
            e->status = 500;
            break;
        case H_TWICE:
            e->body = malloc(6);
            if (!e->body)
                abort();
            memcpy(e->body, "twice\n", 6);
            e->body_len = 6;
            break;
        case H_204:
            e->status = 204;
            break;
        case H_304:
            e->status = 304;
            break;
        default:
            e->body = echo_body(&req, &e->body_len);
            break;
        }
        pos += total;
        if (e->close)
            break;
    }
    *beyond = n == MAX_EXPECT && pos < p->in_len && !ex[n - 1].close;
    free(buf);
    return n;
}

/* ---- the bytes sent, against what is owed ------------------------------------- */

/* memmem, not a memcmp at every offset: each memcmp call goes through the
 * sanitizers' and libFuzzer's hooks, and this runs on every byte sent after
 * every loop iteration. */
static FS_NOCOV const char *find(const unsigned char *p, size_t n, const char *s)
{
    return memmem(p, n, s, strlen(s));
}

/* The value of a header in a head (name: CRLF-bounded), or NULL. */
static FS_NOCOV const char *field(const char *head, size_t len, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i + nl + 2 <= len; i++) {
        if ((i == 0 || head[i - 1] != '\n') || strncasecmp(head + i, name, nl) != 0 ||
            head[i + nl] != ':')
            continue;
        const char *v = head + i + nl + 1;
        while (*v == ' ')
            v++;
        const char *end = memchr(v, '\r', (size_t)(head + len - v));
        *vlen = end ? (size_t)(end - v) : (size_t)(head + len - v);
        return v;
    }
    return NULL;
}

static const char cont100[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* Checks the server's bytes on connection k against what is owed. With
 * `settled`, also that everything owed was sent whole. */
/* Returns true when the last request owed an answer asked to close. */
static FS_NOCOV bool check_conn(int k, bool settled)
{
    const struct fs_peer *p = fs_peer(k);
    if (p->out_after_shut)
        fail(k, "a send after shutdown(SHUT_WR)");
    if (!p->out_len && !settled)
        return false;
    bool timers = fs_clock_advanced_ms() >= t.min_timeout;
    struct checked *seen = &t.checked[k];
    if (!settled && seen->valid && seen->in_len == p->in_len && seen->out_len == p->out_len &&
        seen->draining == t.draining && seen->timers == timers)
        return false;
    static struct expect ex[MAX_EXPECT];
    bool waiting_cont, beyond;
    size_t nex = owed(p, ex, &waiting_cont, &beyond);
    const unsigned char *o = p->out;
    size_t len = p->out_len, pos = 0, i = 0;
    bool closed = false;
    size_t cont_for = SIZE_MAX; /* the response a 100 Continue was sent for */
    while (pos < len) {
        const unsigned char *s = o + pos;
        size_t left = len - pos;
        if (closed)
            fail(k, "bytes after a response that closed the connection, at %zu", pos);
        /* An interim 100 Continue. */
        size_t cl = sizeof cont100 - 1;
        if (left >= 13 && memcmp(s, "HTTP/1.1 100 ", 13) == 0) {
            if (i < nex ? !ex[i].cont : !waiting_cont)
                fail(k, "a 100 Continue for response %zu, which did not ask", i);
            if (cont_for == i)
                fail(k, "a second 100 Continue for response %zu", i);
            cont_for = i;
            if (memcmp(s, cont100, left < cl ? left : cl) != 0)
                fail(k, "a malformed 100 Continue");
            pos += cl;
            continue;
        }
        const char *end = find(s, left, "\r\n\r\n");
        char line[16];
        int v = i < nex ? ex[i].version : 11;
        snprintf(line, sizeof line, "HTTP/1.%d ", v == 10 ? 0 : 1);
        if (memcmp(s, line, left < 9 ? left : 9) != 0 &&
            memcmp(s, "HTTP/1.1 ", left < 9 ? left : 9) != 0)
            fail(k, "response %zu does not start with \"%s\"", i, line);
        if (!end)
            break; /* a head still coming */
        size_t hlen = (size_t)((const unsigned char *)end - s) + 4;
        int status = atoi((const char *)s + 9);
        const char *h = (const char *)s;
        size_t vl;
        const char *conn = field(h, hlen, "Connection", &vl);
        bool says_close = conn && vl == 5 && strncasecmp(conn, "close", 5) == 0;
        const char *clen = field(h, hlen, "Content-Length", &vl);
        if (i >= nex) {
            if (beyond) {
                pos = len;
                break;
            }
            if (status == 408 && timers) {
                closed = true;
                pos += hlen + 20; /* "408 Request Timeout\n" */
                i++;
                continue;
            }
            fail(k, "response %zu (status %d), but only %zu are owed", i, status, nex);
        }
        const struct expect *e = &ex[i];
        if (status != e->status) {
            if (status == 408 && timers) {
                closed = true;
                pos += hlen + 20;
                i++;
                continue;
            }
            fail(k, "response %zu has status %d, owed %d", i, status, e->status);
        }
        if (e->close && !says_close)
            fail(k, "response %zu must say Connection: close", i);
        if (says_close && !e->close && !t.draining)
            fail(k, "response %zu says Connection: close for no reason", i);
        size_t blen = 0;
        if (has_body(status)) {
            if (!clen)
                fail(k, "response %zu has no Content-Length", i);
            blen = strtoull(clen, NULL, 10);
            if (blen != e->body_len)
                fail(k, "response %zu: Content-Length %zu, owed %zu", i, blen, e->body_len);
        } else if (clen) {
            fail(k, "response %zu (status %d) has a Content-Length", i, status);
        }
        if (e->head)
            blen = 0;
        size_t got = left - hlen < blen ? left - hlen : blen;
        if (got && memcmp(s + hlen, e->body, got) != 0)
            fail(k, "response %zu: the body differs", i);
        pos += hlen + got;
        if (got < blen)
            break;
        closed = says_close;
        i++;
    }
    if (settled && pos == len && i < nex)
        fail(k, "settled with %zu of %zu responses sent", i, nex);
    if (settled && pos < len)
        fail(k, "settled with response %zu sent in part", i);
    bool must_close = nex && ex[nex - 1].close;
    bool asked = nex && ex[nex - 1].asked;
    if (settled && must_close && !p->srv_shut_wr && !p->srv_closed)
        fail(k, "the last response closes, but the server did not shut down");
    for (size_t j = 0; j < nex; j++)
        free(ex[j].body);
    if (!settled)
        *seen = (struct checked){.valid = true,
                                 .draining = t.draining,
                                 .timers = timers,
                                 .in_len = p->in_len,
                                 .out_len = p->out_len};
    return asked;
}

static FS_NOCOV void check_all(bool settled)
{
    for (int k = 0; k < fs_npeers(); k++)
        check_conn(k, false);
    if (!settled)
        return;
    bool timers = fs_clock_advanced_ms() >= t.min_timeout;
    if (t.disturbed || timers || fs_stats()->emfiles || fs_stats()->truncations)
        return;
    for (int k = 0; k < fs_npeers(); k++) {
        const struct fs_peer *p = fs_peer(k);
        if (!p->accepted || p->reset || p->unrealistic)
            continue;
        bool asked = check_conn(k, true);
        if (p->peer_shut && !p->srv_closed)
            fail(k, "the client half-closed, but the server never closed");
        /* Past the linger deadline (2 s: the server leaves linger_ms at its
         * default) a lingering connection is closed whatever is unread. A
         * client that asked to close must send no more (RFC 9112, 9.6):
         * the server does not linger for it, and what it sends anyway
         * meets an RST. */
        if (p->closed_unread && !asked && fs_clock_advanced_ms() < 2000)
            fail(k, "the server closed with input unread (an RST in reality)");
    }
}

/* ---- driving ------------------------------------------------------------------- */

static void run_once(void)
{
    int err = eddy_loop_run(t.loop, EDDY_RUN_ONCE);
    if (err)
        fail(-1, "eddy_loop_run: %s", eddy_strerror(err));
    check_all(false);
}

static void target_step(int op, uint8_t arg)
{
    switch (op) {
    case T_DRAIN:
        fs_trace(&t.script, "DRAIN (eddy_http_server_drain)");
        t.disturbed = t.draining = true;
        eddy_http_server_drain(&t.srv);
        break;
    case T_CLOSE_ALL:
        fs_trace(&t.script, "CLOSE-ALL (eddy_http_server_close_all)");
        t.disturbed = true;
        eddy_http_server_close_all(&t.srv);
        break;
    case T_PAUSE:
        if (arg & 1) {
            fs_trace(&t.script, "RESUME the listener");
            eddy_listener_resume(&t.listener);
        } else {
            fs_trace(&t.script, "PAUSE the listener");
            eddy_listener_pause(&t.listener);
        }
        break;
    case T_STOP:
        fs_trace(&t.script, "STOP (eddy_loop_stop: an eventfd wake-up)");
        eddy_loop_stop(t.loop);
        break;
    default:
        break;
    }
}

static void settle(void)
{
    if (!fs_settle(run_once))
        fail(-1, "the loop never goes quiet: a busy loop");
}

static void teardown(void)
{
    eddy_http_server_close_all(&t.srv);
    for (int i = 0; i < 4 && t.srv.nconns; i++)
        run_once();
    if (t.srv.nconns)
        fail(-1, "%zu connections still live after close-all", t.srv.nconns);
    eddy_listener_close(&t.listener);
    eddy_loop_free(t.loop);
    fs_end();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 2)
        return 0;
    if (!big_body[0])
        for (size_t i = 0; i < sizeof big_body; i++)
            big_body[i] = (char)('a' + i % 26);
    memset(&t, 0, sizeof t);
    uint8_t opt = data[0], param = data[1];
    fs_begin(opt & 2);
    fs_script_init(&t.script, data + 2, size - 2, T_COUNT);

    if (eddy_loop_new(&t.loop) != 0)
        fail(-1, "eddy_loop_new failed");
    struct eddy_http_opts o = {.edge = opt & 1};
    if (opt & 4)
        o.read_size = 1 + param % 64;
    if (opt & 8)
        o.limits = (struct eddy_http_limits){
            .max_request_line = 64, .max_header_bytes = 256, .max_headers = 8, .max_body = 64};
    if (opt & 16) {
        o.header_timeout_ms = 100;
        o.body_timeout_ms = 200;
        o.keepalive_timeout_ms = 300;
        o.write_timeout_ms = 400;
    }
    eddy_http_server_init(&t.srv, t.loop, &o, handler);
    t.srv.log = on_log;
    const struct eddy_http_opts *so = &t.srv.opts;
    t.min_timeout = so->header_timeout_ms;
    if (so->body_timeout_ms < t.min_timeout)
        t.min_timeout = so->body_timeout_ms;
    if (so->keepalive_timeout_ms < t.min_timeout)
        t.min_timeout = so->keepalive_timeout_ms;
    if (so->write_timeout_ms < t.min_timeout)
        t.min_timeout = so->write_timeout_ms;
    struct eddy_addr addr;
    eddy_addr_parse(&addr, "127.0.0.1:80");
    if (eddy_http_server_listen(&t.srv, &t.listener, &addr, NULL) != 0)
        fail(-1, "eddy_http_server_listen failed");

    fs_script_play(&t.script, run_once, target_step);
    settle();
    fs_trace(&t.script, "settled:");
    fs_trace_peers(&t.script);
    check_all(true);
    teardown();
    return 0;
}
