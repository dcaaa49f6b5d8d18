/* http-hello.c: an HTTP/1.1 server in about twenty lines of eddy.
 *
 * Seeds 000 and 003 needed a page of epoll bookkeeping to answer one request
 * per connection. On eddy's HTTP layer the handler is all there is:
 * keep-alive, pipelining, HEAD, limits and timeouts come with the server.
 *
 * Try it:  ./http-hello &  curl -i http://127.0.0.1:8080/
 * (An address as the only argument, like 127.0.0.1:9000, listens there.)
 */
#include <stdio.h>

#include "eddy/http.h"

static void hello(struct eddy_http_exchange *x)
{
    static const struct eddy_http_header type = {"Content-Type", "text/plain", 12, 10};
    eddy_http_respond(x, 200, &type, 1, "Hello, world!\n", 14);
}

int main(int argc, char **argv)
{
    struct eddy_loop *loop;
    struct eddy_http_server server;
    struct eddy_listener listener;
    struct eddy_addr addr;

    const char *where = argc > 1 ? argv[1] : "127.0.0.1:8080";
    if (eddy_addr_parse(&addr, where) < 0) {
        fprintf(stderr, "http-hello: '%s' is not an address like 127.0.0.1:8080\n", where);
        return 2;
    }
    int err = eddy_loop_new(&loop);
    if (!err) {
        eddy_http_server_init(&server, loop, NULL, hello);
        err = eddy_http_server_listen(&server, &listener, &addr, NULL);
    }
    if (err) {
        fprintf(stderr, "http-hello: cannot listen on %s: %s\n", where, eddy_strerror(err));
        return 1;
    }
    char shown[EDDY_ADDR_STRLEN];
    printf("http-hello: serving http://%s/ (Ctrl-C to stop)\n",
           eddy_addr_format(&listener.addr, shown, sizeof shown));
    fflush(stdout);
    return eddy_loop_run(loop, EDDY_RUN_DEFAULT) < 0;
}
