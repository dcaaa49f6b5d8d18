/* What every service shares: one allocation per connection, the list of
 * live connections (so the program can drain or close them), and logging
 * through the program's logger. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "service.h"

const struct svc_service *const svc_all[] = {
    &svc_http,    &svc_static, &svc_echo,      &svc_upper, &svc_time,
    &svc_daytime, &svc_discard, &svc_sink, &svc_hello_raw, NULL,
};

const struct svc_service *svc_find(const char *name)
{
    for (size_t i = 0; svc_all[i]; i++)
        if (strcmp(svc_all[i]->name, name) == 0)
            return svc_all[i];
    return NULL;
}

void svc_log(const struct svc_ctx *ctx, enum svc_level level, const char *fmt, ...)
{
    if (level < ctx->log_level || !ctx->log)
        return;
    va_list ap;
    va_start(ap, fmt);
    ctx->log(ctx->log_arg, level, fmt, ap);
    va_end(ap);
}

/* Connections are logged at INFO by services that log their data (the
 * tutorial receiver prints every arrival and departure), else at DEBUG. */
static enum svc_level conn_level(const struct svc_ctx *ctx)
{
    return ctx->svc->log_data ? SVC_INFO : SVC_DEBUG;
}

/* A connection cut off for lack of memory is worth a warning at the
 * default level; a shortage cuts off many at once, so the warning comes
 * at most once a second, with the count since the last one. */
static void closed_for_memory(struct svc_ctx *ctx)
{
    uint64_t now = eddy_loop_now(ctx->loop);
    ctx->nomem_closed++;
    if (ctx->nomem_warned_ms && now - ctx->nomem_warned_ms < 1000)
        return;
    svc_log(ctx, SVC_WARN, "%s: out of memory for connection buffers: %llu connection%s closed",
            ctx->svc->name, (unsigned long long)ctx->nomem_closed,
            ctx->nomem_closed == 1 ? "" : "s");
    ctx->nomem_closed = 0;
    ctx->nomem_warned_ms = now;
}

static void on_close(struct eddy_conn *c, int status)
{
    struct svc_conn *sc = svc_conn_of(c);
    struct svc_ctx *ctx = sc->ctx;
    eddy_list_remove(&sc->link);
    ctx->nconns--;
    if (status == -ENOMEM)
        closed_for_memory(ctx);
    if (status)
        svc_log(ctx, conn_level(ctx), "%s: %s closed: %s", ctx->svc->name, sc->peer,
                eddy_strerror(status));
    else
        svc_log(ctx, conn_level(ctx), "%s: %s offline", ctx->svc->name, sc->peer);
    free(sc);
}

void svc_ctx_init(struct svc_ctx *ctx, struct eddy_loop *loop, const struct svc_service *svc)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->loop = loop;
    ctx->svc = svc;
    ctx->log_level = SVC_INFO;
    ctx->cbs.on_read = svc->on_read;
    ctx->cbs.on_eof = svc->on_eof;
    ctx->cbs.on_close = on_close;
    eddy_list_init(&ctx->conns);
}

/* One access-log line in Common Log Format:
 *   127.0.0.1 - - [23/Nov/2026:08:21:42 +0000] "GET / HTTP/1.1" 200 13 */
static void access_line(const struct svc_ctx *ctx, struct eddy_http_exchange *x, int status,
                        uint64_t bytes)
{
    const struct eddy_http_request *r = x->req;
    char peer[SVC_PEER_LEN], when[40], line[1024];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S +0000", &tm);
    eddy_http_peer(x, peer, sizeof peer);
    char *colon = strrchr(peer, ':');
    if (colon && peer[0] != 'u')
        *colon = '\0';
    if (peer[0] == '[') {
        memmove(peer, peer + 1, strlen(peer));
        peer[strlen(peer) - 1] = '\0';
    }
    int n;
    if (r)
        n = snprintf(line, sizeof line, "%s - - [%s] \"%.*s %.*s HTTP/1.%d\" %d %llu", peer, when,
                     (int)r->method_len, r->method, (int)(r->target_len > 512 ? 512 : r->target_len),
                     r->target, r->version - 10, status, (unsigned long long)bytes);
    else
        n = snprintf(line, sizeof line, "%s - - [%s] \"-\" %d %llu", peer, when, status,
                     (unsigned long long)bytes);
    if (n > 0)
        ctx->access_log(ctx->access_arg, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void http_log(struct eddy_http_exchange *x, int status, uint64_t bytes)
{
    const struct svc_ctx *ctx = x->server->data;
    const struct eddy_http_request *r = x->req;
    if (ctx->access_log)
        access_line(ctx, x, status, bytes);
    if (ctx->log_level > SVC_DEBUG)
        return;
    if (r)
        svc_log(ctx, SVC_DEBUG, "%s: %.*s %.*s -> %d (%llu bytes)", ctx->svc->name,
                (int)r->method_len, r->method, (int)r->target_len, r->target, status,
                (unsigned long long)bytes);
    else
        svc_log(ctx, SVC_DEBUG, "%s: bad request -> %d", ctx->svc->name, status);
}

static void http_closed(struct eddy_http_server *srv, int status)
{
    if (status == -ENOMEM)
        closed_for_memory(srv->data);
}

int svc_ctx_start(struct svc_ctx *ctx, const struct svc_http_config *cfg, char *err, size_t size)
{
    ctx->http_cfg = cfg;
    if (ctx->svc->http_handler) {
        eddy_http_server_init(&ctx->http, ctx->loop, &cfg->http, ctx->svc->http_handler);
        ctx->http.data = ctx;
        ctx->http.on_close = http_closed;
        if (ctx->log_level <= SVC_DEBUG || ctx->access_log)
            ctx->http.log = http_log;
    }
    return ctx->svc->setup ? ctx->svc->setup(ctx, cfg, err, size) : 0;
}

void svc_ctx_stop(struct svc_ctx *ctx)
{
    if (ctx->svc->teardown)
        ctx->svc->teardown(ctx);
}

size_t svc_ctx_live(const struct svc_ctx *ctx)
{
    return ctx->svc->http_handler ? ctx->http.nconns : ctx->nconns;
}

void svc_accept(struct svc_ctx *ctx, int fd)
{
    if (ctx->svc->http_handler) {
        int err = eddy_http_server_accept(&ctx->http, fd);
        if (err)
            svc_log(ctx, SVC_WARN, "%s: cannot serve a new connection: %s", ctx->svc->name,
                    eddy_strerror(err));
        return;
    }
    struct svc_conn *sc = calloc(1, ctx->svc->conn_size);
    if (!sc) {
        close(fd);
        svc_log(ctx, SVC_WARN, "%s: out of memory for a new connection", ctx->svc->name);
        return;
    }
    sc->ctx = ctx;
    int err = eddy_conn_open(ctx->loop, &sc->conn, fd, &ctx->conn_opts, &ctx->cbs);
    if (err) {
        svc_log(ctx, SVC_WARN, "%s: cannot watch a new connection: %s", ctx->svc->name,
                eddy_strerror(err));
        free(sc);
        return;
    }
    eddy_list_push(&ctx->conns, &sc->link);
    ctx->nconns++;
    if (conn_level(ctx) >= ctx->log_level) {
        eddy_conn_peer(&sc->conn, sc->peer, sizeof sc->peer);
        svc_log(ctx, conn_level(ctx), "%s: new client %s", ctx->svc->name, sc->peer);
    }
    if (ctx->svc->on_open)
        ctx->svc->on_open(sc);
}

void svc_ctx_shutdown_all(struct svc_ctx *ctx)
{
    if (ctx->svc->http_handler) {
        eddy_http_server_drain(&ctx->http);
        return;
    }
    struct eddy_list *pos;
    eddy_list_for_each(pos, &ctx->conns)
        eddy_conn_shutdown(&eddy_list_entry(pos, struct svc_conn, link)->conn);
}

size_t svc_ctx_close_all(struct svc_ctx *ctx)
{
    if (ctx->svc->http_handler)
        return eddy_http_server_close_all(&ctx->http);
    /* Closing only marks the connections (on_close runs after the batch),
     * so the list stays intact while it is walked. */
    size_t n = 0;
    struct eddy_list *pos;
    eddy_list_for_each(pos, &ctx->conns) {
        struct eddy_conn *c = &eddy_list_entry(pos, struct svc_conn, link)->conn;
        if (c->state != EDDY_CONN_CLOSED) {
            eddy_conn_close(c, 0);
            n++;
        }
    }
    return n;
}

char *svc_repr(const char *data, size_t len, char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    /* Room for the widest escape (\xNN), the closing quote, "..." and NUL. */
    const size_t reserve = 4 + 1 + 3 + 1;
    if (size < 3 + reserve) {
        if (size)
            out[0] = '\0';
        return out;
    }
    out[o++] = 'b';
    out[o++] = '\'';
    size_t i;
    for (i = 0; i < len && o + reserve <= size; i++) {
        unsigned char ch = (unsigned char)data[i];
        const char *esc = NULL;
        switch (ch) {
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\\': esc = "\\\\"; break;
        case '\'': esc = "\\'"; break;
        default: break;
        }
        if (esc) {
            memcpy(out + o, esc, 2);
            o += 2;
        } else if (ch >= 0x20 && ch < 0x7f) {
            out[o++] = (char)ch;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o++] = '\'';
    if (i < len) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}
