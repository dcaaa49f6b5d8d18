/* http-routes.c: a small HTTP API on eddy: a table of routes, path
 * parameters by hand, request bodies, status codes, and a clean stop.
 *
 *   GET  /                  a greeting
 *   GET  /hello/NAME        "Hello, NAME!"
 *   POST /reverse           the request body, reversed
 *   GET  /counter           how many requests this server has answered
 *   anything else           404, or 405 with Allow for a known path
 *
 * Try it:  ./http-routes &  curl -s localhost:8080/hello/eddy
 *          curl -s --data-binary 'stressed' localhost:8080/reverse
 * Options: --port N (default 8080). SIGINT/SIGTERM stop it gracefully: open
 * requests finish, idle keep-alive connections close.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eddy/http.h"

struct app {
    struct eddy_http_server server;
    struct eddy_listener listener;
    struct eddy_signal sigint, sigterm;
    unsigned long answered;
};

static const struct eddy_http_header text = {"Content-Type", "text/plain; charset=utf-8", 12, 25};

static void reply(struct eddy_http_exchange *x, int status, const char *body, size_t len)
{
    struct app *app = x->server->data;
    app->answered++;
    eddy_http_respond(x, status, &text, 1, body, len);
}

static void reply_text(struct eddy_http_exchange *x, int status, const char *s)
{
    reply(x, status, s, strlen(s));
}

static void root(struct eddy_http_exchange *x, const char *param, size_t len)
{
    (void)param;
    (void)len;
    reply_text(x, 200, "eddy routes: try /hello/NAME, POST /reverse, /counter\n");
}

static void hello(struct eddy_http_exchange *x, const char *name, size_t len)
{
    char body[300];
    int n = snprintf(body, sizeof body, "Hello, %.*s!\n", (int)(len > 256 ? 256 : len), name);
    reply(x, 200, body, (size_t)n);
}

static void reverse(struct eddy_http_exchange *x, const char *param, size_t len)
{
    (void)param;
    (void)len;
    /* The body is complete when the handler runs (eddy buffered it, up to
     * the server's max_body), and it is ours to modify in place. */
    char *b = (char *)x->req->body;
    for (size_t i = 0, j = x->req->body_len; i + 1 < j; i++, j--) {
        char t = b[i];
        b[i] = b[j - 1];
        b[j - 1] = t;
    }
    reply(x, 200, b, x->req->body_len);
}

static void counter(struct eddy_http_exchange *x, const char *param, size_t len)
{
    (void)param;
    (void)len;
    struct app *app = x->server->data;
    char body[32];
    int n = snprintf(body, sizeof body, "%lu\n", app->answered);
    reply(x, 200, body, (size_t)n);
}

/* A route matches a method and a path; a path ending in '/' matches any
 * path below it and hands the rest to the handler as its parameter. */
static const struct route {
    const char *method;
    const char *path;
    void (*handle)(struct eddy_http_exchange *x, const char *param, size_t len);
} routes[] = {
    {"GET", "/", root},
    {"GET", "/hello/", hello},
    {"POST", "/reverse", reverse},
    {"GET", "/counter", counter},
};

static void dispatch(struct eddy_http_exchange *x)
{
    const struct eddy_http_request *r = x->req;
    size_t path_len = r->target_len;
    const char *q = memchr(r->target, '?', r->target_len);
    if (q)
        path_len = (size_t)(q - r->target);
    bool path_known = false;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const struct route *rt = &routes[i];
        size_t n = strlen(rt->path);
        bool prefix = n > 1 && rt->path[n - 1] == '/';
        bool match = prefix ? path_len > n && memcmp(r->target, rt->path, n) == 0
                            : path_len == n && memcmp(r->target, rt->path, n) == 0;
        if (!match)
            continue;
        path_known = true;
        bool head = r->method_len == 4 && memcmp(r->method, "HEAD", 4) == 0;
        if ((r->method_len == strlen(rt->method) &&
             memcmp(r->method, rt->method, r->method_len) == 0) ||
            (head && strcmp(rt->method, "GET") == 0)) {
            rt->handle(x, r->target + n, path_len - n);
            return;
        }
    }
    reply_text(x, path_known ? 405 : 404, path_known ? "method not allowed\n" : "not found\n");
}

static void on_signal(struct eddy_signal *sig, int signum)
{
    (void)signum;
    struct app *app = sig->data;
    /* Stop accepting, let requests in flight finish, close idle keep-alive
     * connections; the loop returns once nothing is left to do. */
    eddy_listener_close(&app->listener);
    eddy_http_server_drain(&app->server);
    eddy_signal_stop(&app->sigint);
    eddy_signal_stop(&app->sigterm);
}

int main(int argc, char **argv)
{
    const char *port = "8080";
    if (argc == 3 && strcmp(argv[1], "--port") == 0) {
        port = argv[2];
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [--port N]\n", argv[0]);
        return 2;
    }
    char text_addr[32];
    struct eddy_addr addr;
    snprintf(text_addr, sizeof text_addr, "127.0.0.1:%s", port);
    if (eddy_addr_parse(&addr, text_addr) < 0) {
        fprintf(stderr, "http-routes: bad port '%s'\n", port);
        return 2;
    }
    static struct app app;
    struct eddy_loop *loop;
    int err = eddy_loop_new(&loop);
    if (err) {
        fprintf(stderr, "http-routes: %s\n", eddy_strerror(err));
        return 1;
    }
    eddy_http_server_init(&app.server, loop, NULL, dispatch);
    app.server.data = &app;
    if ((err = eddy_http_server_listen(&app.server, &app.listener, &addr, NULL)) < 0) {
        fprintf(stderr, "http-routes: cannot listen on %s: %s\n", text_addr, eddy_strerror(err));
        return 1;
    }
    eddy_signal_init(loop, &app.sigint);
    eddy_signal_init(loop, &app.sigterm);
    app.sigint.data = app.sigterm.data = &app;
    eddy_signal_start(&app.sigint, on_signal, SIGINT);
    eddy_signal_start(&app.sigterm, on_signal, SIGTERM);
    char shown[EDDY_ADDR_STRLEN];
    printf("http-routes: serving http://%s/\n",
           eddy_addr_format(&app.listener.addr, shown, sizeof shown));
    fflush(stdout);
    err = eddy_loop_run(loop, EDDY_RUN_DEFAULT);
    eddy_loop_free(loop);
    return err < 0;
}
