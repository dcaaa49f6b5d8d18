/* http: the tutorials' "Hello, world!" server done right, on eddy's
 * HTTP/1.1 layer: GET and HEAD answer the configured body, POST and PUT
 * echo the request body back (handy for testing clients and proxies), any
 * other method gets 405. Any path. */
#include <string.h>

#include "service.h"

#define ALLOW "GET, HEAD, POST, PUT"

static bool method_is(const struct eddy_http_request *r, const char *m)
{
    size_t n = strlen(m);
    return r->method_len == n && memcmp(r->method, m, n) == 0;
}

static void http_handle(struct eddy_http_exchange *x)
{
    const struct svc_ctx *ctx = x->server->data;
    const struct svc_http_config *cfg = ctx->http_cfg;
    const struct eddy_http_request *r = x->req;
    if (method_is(r, "GET") || method_is(r, "HEAD")) {
        const char *body = cfg->body ? cfg->body : "Hello, world!";
        const char *type = cfg->content_type ? cfg->content_type : "text/plain";
        struct eddy_http_header h = {"Content-Type", type, 12, strlen(type)};
        eddy_http_respond(x, 200, &h, 1, body, strlen(body));
    } else if (method_is(r, "POST") || method_is(r, "PUT")) {
        const struct eddy_http_header *t = eddy_http_find_header(r, "content-type");
        struct eddy_http_header h = {"Content-Type", "application/octet-stream", 12, 24};
        if (t) {
            h.value = t->value;
            h.value_len = t->value_len;
        }
        eddy_http_respond(x, 200, &h, 1, r->body, r->body_len);
    } else {
        static const struct eddy_http_header h[] = {
            {"Allow", ALLOW, 5, sizeof ALLOW - 1},
            {"Content-Type", "text/plain", 12, 10},
        };
        static const char msg[] = "405 Method Not Allowed\n";
        eddy_http_respond(x, 405, h, 2, msg, sizeof msg - 1);
    }
}

const struct svc_service svc_http = {
    .name = "http",
    .summary = "HTTP/1.1: GET/HEAD \"Hello, world!\", POST/PUT echo the body",
    .default_port = 8080,
    .http_handler = http_handle,
};
