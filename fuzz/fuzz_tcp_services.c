/* libFuzzer target: the TCP services (echo, upper, time, daytime, discard,
 * sink, hello-raw) on a real eddy loop, listener and connections, over the
 * fake socket layer (fakesock.h), which the input drives as a script.
 *
 * Input: three header bytes, then the script (see fakesock.h).
 *   byte 0  the service: echo, upper, time, daytime, discard, sink, hello-raw
 *   byte 1  option bits: 1 edge-triggered, 2 fd numbers re-used, 4 small
 *           reads (byte 2), 8 small watermarks (64/16), 16 idle timeout 1 s,
 *           32 linger 100 ms, 64 read budget 1..4, 128 max_input 128
 *   byte 2  read size 1..64 when bit 4 is set; read budget from its top bits
 * Target steps (after the common ones): SHUTDOWN-ALL, CLOSE-ALL,
 * PAUSE/RESUME the listener (by the byte's low bit), STOP (eddy_loop_stop
 * from "another thread": the eventfd wake-up).
 *
 * Checked after every loop iteration, whatever the faults (safety):
 *   echo: the bytes sent to the client are a prefix of the bytes read from
 *   it (upper: of their upper case); discard and sink send nothing; time
 *   sends only after 3 bytes, a prefix of "YYYY-MM-DD HH:MM:SS.ffffff";
 *   daytime one line; hello-raw a prefix of its fixed response, and only
 *   after a blank line; nothing is sent after shutdown(SHUT_WR).
 * Checked at the end, after a settling phase (all faults cleared, unlimited
 * send room, the loop run until quiet, time standing still), for every
 * connection that saw only realistic kernel behaviour, no reset, no
 * SHUTDOWN-ALL or CLOSE-ALL, no EMFILE and no time that could have fired a
 * timeout (liveness):
 *   a client that half-closed has been closed; the server never closed
 *   with input unread (that RST could destroy the reply: the lingering
 *   close exists to prevent it); echo and upper have read and answered all
 *   input; time, daytime and hello-raw have sent their whole reply and shut
 *   down once they had what they wait for.
 * Then everything is closed and freed: a leaked fd aborts in fs_end(), a
 * leaked allocation is LeakSanitizer's. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eddy/loop.h"
#include "eddy/tcp.h"
#include "fakesock.h"
#include "service.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

enum svc_kind { S_ECHO, S_UPPER, S_TIME, S_DAYTIME, S_DISCARD, S_SINK, S_HELLO, S_COUNT };

static const struct svc_service *const services[S_COUNT] = {
    &svc_echo, &svc_upper, &svc_time, &svc_daytime, &svc_discard, &svc_sink, &svc_hello_raw,
};

enum { T_SHUTDOWN_ALL, T_CLOSE_ALL, T_PAUSE, T_STOP, T_COUNT };

static struct {
    enum svc_kind kind;
    struct eddy_loop *loop;
    struct eddy_listener listener;
    bool listening;
    struct svc_ctx ctx;
    struct svc_http_config cfg;
    bool disturbed;       /* SHUTDOWN-ALL or CLOSE-ALL happened */
    uint64_t min_timeout; /* the shortest timer that can close a connection */
    struct fs_script script;
    /* Per connection, the state check_safety() last passed: its verdict
     * depends on nothing else (the bytes are only ever appended to), so a
     * connection that did not move since is not compared again after
     * every iteration. */
    struct checked {
        bool valid;
        size_t in_len, consumed, out_len;
    } checked[FS_MAX_PEERS];
} t;

static const char hello_head[] = "HTTP/1.0 200 OK\r\nDate: ";
static const char hello_tail[] =
    "\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";

static void __attribute__((noreturn, format(printf, 2, 3))) fail(int k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "\nfuzz_tcp_services (%s), connection %d: ", services[t.kind]->name, k);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (k >= 0) {
        const struct fs_peer *p = fs_peer(k);
        fprintf(stderr,
                "  client sent %zu bytes, server read %zu, sent %zu; server %s%s%s; client "
                "%s%s%s%s\n",
                p->in_len, p->consumed, p->out_len, p->srv_closed ? "closed " : "open ",
                p->srv_shut_wr ? "shut-wr " : "", p->closed_unread ? "closed-unread" : "",
                p->peer_shut ? "FIN " : "", p->reset ? "reset " : "",
                p->unrealistic ? "unrealistic " : "", p->accepted ? "accepted" : "queued");
    }
    abort();
}

/* Formatting every log line exercises the services' log paths (peer names,
 * svc_repr) without printing anything. */
static void __attribute__((format(printf, 3, 0)))
log_sink(void *arg, enum svc_level level, const char *fmt, va_list ap)
{
    (void)arg;
    (void)level;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
}

static void on_accept(struct eddy_listener *l, int fd)
{
    svc_accept(l->data, fd);
}

static void on_accept_error(struct eddy_listener *l, int err, uint64_t dropped)
{
    (void)l;
    (void)err;
    (void)dropped;
}

static FS_NOCOV bool blank_line(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (p[i] == '\n' &&
            (p[i + 1] == '\n' || (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n')))
            return true;
    return false;
}

/* What str(datetime.now()) looks like, character class by position. */
static FS_NOCOV bool time_shape(const unsigned char *p, size_t n)
{
    static const char shape[] = "dddd-dd-dd dd:dd:dd.dddddd";
    if (n > sizeof shape - 1)
        return false;
    for (size_t i = 0; i < n; i++)
        if (shape[i] == 'd' ? !isdigit(p[i]) : p[i] != (unsigned char)shape[i])
            return false;
    return true;
}

/* The safety checks, for every connection, after every iteration. */
static FS_NOCOV void check_safety(void)
{
    for (int k = 0; k < fs_npeers(); k++) {
        const struct fs_peer *p = fs_peer(k);
        if (p->out_after_shut)
            fail(k, "a send after shutdown(SHUT_WR)");
        struct checked *seen = &t.checked[k];
        if (seen->valid && seen->in_len == p->in_len && seen->consumed == p->consumed &&
            seen->out_len == p->out_len)
            continue;
        if (p->out_len > p->consumed && (t.kind == S_ECHO || t.kind == S_UPPER))
            fail(k, "sent %zu bytes but read only %zu", p->out_len, p->consumed);
        switch (t.kind) {
        case S_ECHO:
            if (p->out_len && memcmp(p->out, p->in, p->out_len) != 0)
                fail(k, "echo sent bytes that were not received");
            break;
        case S_UPPER:
            for (size_t i = 0; i < p->out_len; i++)
                if (p->out[i] != toupper(p->in[i]))
                    fail(k, "upper: byte %zu is 0x%02x, for 0x%02x", i, p->out[i], p->in[i]);
            break;
        case S_DISCARD:
        case S_SINK:
            if (p->out_len)
                fail(k, "discard sent %zu bytes", p->out_len);
            break;
        case S_TIME:
            if (p->out_len && p->consumed < 3)
                fail(k, "time answered after %zu bytes", p->consumed);
            if (!time_shape(p->out, p->out_len))
                fail(k, "time sent \"%.*s\"", (int)p->out_len, p->out);
            break;
        case S_DAYTIME: {
            const unsigned char *nl = p->out_len ? memchr(p->out, '\n', p->out_len) : NULL;
            if (p->out_len > 128 || (nl && nl != p->out + p->out_len - 1) ||
                (nl && (p->out_len < 2 || nl[-1] != '\r')))
                fail(k, "daytime sent \"%.*s\"", (int)p->out_len, p->out);
            break;
        }
        case S_HELLO: {
            size_t head = sizeof hello_head - 1;
            size_t n = p->out_len < head ? p->out_len : head;
            if (n && memcmp(p->out, hello_head, n) != 0)
                fail(k, "hello-raw sent \"%.*s\"", (int)p->out_len, p->out);
            if (p->out_len && !blank_line(p->in, p->consumed))
                fail(k, "hello-raw answered before a blank line");
            /* A Date value is 29 bytes. */
            if (p->out_len > head + 29 + sizeof hello_tail - 1)
                fail(k, "hello-raw sent %zu bytes", p->out_len);
            break;
        }
        default:
            break;
        }
        *seen = (struct checked){
            .valid = true, .in_len = p->in_len, .consumed = p->consumed, .out_len = p->out_len};
    }
}

static void run_once(void)
{
    int err = eddy_loop_run(t.loop, EDDY_RUN_ONCE);
    if (err)
        fail(-1, "eddy_loop_run: %s", eddy_strerror(err));
    check_safety();
}

static void target_step(int op, uint8_t arg)
{
    switch (op) {
    case T_SHUTDOWN_ALL:
        fs_trace(&t.script, "SHUTDOWN-ALL (svc_ctx_shutdown_all)");
        t.disturbed = true;
        svc_ctx_shutdown_all(&t.ctx);
        break;
    case T_CLOSE_ALL:
        fs_trace(&t.script, "CLOSE-ALL (svc_ctx_close_all)");
        t.disturbed = true;
        svc_ctx_close_all(&t.ctx);
        break;
    case T_PAUSE:
        if (!t.listening)
            break;
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

static FS_NOCOV void check_liveness(void)
{
    bool timers_fired = fs_clock_advanced_ms() >= t.min_timeout;
    /* Once the linger deadline may have passed, a lingering connection is
     * closed whatever it has not read yet: that is the deadline's job. */
    uint64_t linger = t.ctx.conn_opts.linger_ms ? t.ctx.conn_opts.linger_ms : 2000;
    bool linger_over = fs_clock_advanced_ms() >= linger;
    if (t.disturbed || timers_fired || fs_stats()->emfiles || fs_stats()->truncations)
        return;
    for (int k = 0; k < fs_npeers(); k++) {
        const struct fs_peer *p = fs_peer(k);
        if (!p->accepted || p->reset || p->unrealistic)
            continue;
        if (p->peer_shut && !p->srv_closed)
            fail(k, "the client half-closed, but the server never closed");
        /* hello-raw keeps its input until the blank line; with a small
         * max_input the net layer closes it with -ENOBUFS, as documented. */
        if (p->closed_unread && !(t.kind == S_HELLO && t.ctx.conn_opts.max_input) && !linger_over)
            fail(k, "the server closed with input unread (an RST in reality)");
        switch (t.kind) {
        case S_ECHO:
        case S_UPPER:
            if (!p->srv_closed && p->consumed != p->in_len)
                fail(k, "read %zu of %zu bytes", p->consumed, p->in_len);
            if (p->out_len != p->consumed)
                fail(k, "answered %zu of %zu bytes", p->out_len, p->consumed);
            break;
        case S_TIME:
            if (p->in_len >= 3 && (p->out_len != 26 || !p->srv_shut_wr))
                fail(k, "3 bytes came, but the reply is %zu bytes%s", p->out_len,
                     p->srv_shut_wr ? "" : " and no shutdown");
            break;
        case S_DAYTIME:
            if (p->out_len < 2 || p->out[p->out_len - 1] != '\n' || !p->srv_shut_wr)
                fail(k, "daytime did not send its line and shut down");
            break;
        case S_HELLO: {
            size_t tail = sizeof hello_tail - 1;
            if (t.ctx.conn_opts.max_input == 0 && blank_line(p->in, p->in_len) &&
                (p->out_len < tail || memcmp(p->out + p->out_len - tail, hello_tail, tail) != 0 ||
                 !p->srv_shut_wr))
                fail(k, "a blank line came, but no whole reply");
            break;
        }
        default:
            break;
        }
    }
}

static void settle(void)
{
    if (!fs_settle(run_once))
        fail(-1, "the loop never goes quiet: a busy loop");
}

static void teardown(void)
{
    svc_ctx_close_all(&t.ctx);
    for (int i = 0; i < 4 && svc_ctx_live(&t.ctx); i++)
        run_once();
    if (svc_ctx_live(&t.ctx))
        fail(-1, "%zu connections still live after close-all", svc_ctx_live(&t.ctx));
    if (t.listening)
        eddy_listener_close(&t.listener);
    svc_ctx_stop(&t.ctx);
    eddy_loop_free(t.loop);
    fs_end();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 3)
        return 0;
    memset(&t, 0, sizeof t);
    t.kind = (enum svc_kind)(data[0] % S_COUNT);
    uint8_t opt = data[1], param = data[2];
    fs_begin(opt & 2);
    fs_script_init(&t.script, data + 3, size - 3, T_COUNT);

    if (eddy_loop_new(&t.loop) != 0)
        fail(-1, "eddy_loop_new failed");
    svc_ctx_init(&t.ctx, t.loop, services[t.kind]);
    struct eddy_conn_opts *o = &t.ctx.conn_opts;
    o->edge = opt & 1;
    if (opt & 4)
        o->read_size = 1 + param % 64;
    if (opt & 8) {
        o->high_water = 64;
        o->low_water = 16;
    }
    if (opt & 16)
        o->idle_ms = 1000;
    if (opt & 32)
        o->linger_ms = 100;
    if (opt & 64)
        o->read_budget = 1 + (param >> 6);
    if (opt & 128)
        o->max_input = 128;
    t.min_timeout = o->idle_ms ? o->idle_ms : UINT64_MAX;
    /* The listener's pause after EMFILE (100 ms) only delays accepting;
     * the linger deadline ends a lingering connection early, which the
     * checks allow for (it is closed either way). */
    t.ctx.log = log_sink;
    t.ctx.log_level = SVC_DEBUG;
    char err[128];
    if (svc_ctx_start(&t.ctx, &t.cfg, err, sizeof err) != 0)
        fail(-1, "svc_ctx_start: %s", err);
    struct eddy_addr addr;
    eddy_addr_parse(&addr, "127.0.0.1:7");
    t.listener.data = &t.ctx;
    if (eddy_listener_open(t.loop, &t.listener, &addr, NULL, on_accept, on_accept_error) != 0)
        fail(-1, "eddy_listener_open failed");
    t.listening = true;

    fs_script_play(&t.script, run_once, target_step);
    settle();
    fs_trace(&t.script, "settled:");
    fs_trace_peers(&t.script);
    check_liveness();
    teardown();
    return 0;
}
