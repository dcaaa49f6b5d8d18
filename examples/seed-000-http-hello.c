/* seed-000-http-hello.c: the "Hello, world!" HTTP server of tutorials 000 and
 * 003, re-written on eddy.
 *
 * The Python tutorials registered the listening socket with epoll, accepted
 * each client, appended every recv(1024) to a per-fd string, switched the fd
 * to EPOLLOUT once the request ended in a blank line ("\n\n" or "\n\r\n"),
 * sent the canned response, and called shutdown(). eddy does the epoll
 * bookkeeping (registering, switching EPOLLIN/EPOLLOUT, buffering what the
 * kernel did not take) so this file is only the protocol. It also adds what
 * the tutorials left out: a bound on the request size, a scan that does not
 * re-read the whole request each time, a graceful close that does not reset
 * the reply, and a clean exit on Ctrl-C.
 *
 * Try it:  ./seed-000-http-hello &  curl -v http://127.0.0.1:8080/
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eddy/list.h"
#include "eddy/loop.h"
#include "eddy/tcp.h"

/* A request header larger than this is not a request we want to serve. */
#define MAX_REQUEST 8192

/* The tutorials also sent a fixed "Date: Mon, 1 Jan 1996" header; a wrong
 * date is worse than none, and HTTP/1.0 does not require one. */
static const char response[] = "HTTP/1.0 200 OK\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 13\r\n"
                               "\r\n"
                               "Hello, world!";

/* Our per-connection state. struct eddy_conn comes first so that the
 * pointer eddy hands to the callbacks is also a pointer to this struct. */
struct hello_conn {
    struct eddy_conn conn;
    size_t scanned;                   /* bytes already searched for the blank line */
    struct eddy_list link; /* in conns: live connections, closed on exit */
};

static struct eddy_list conns = {&conns, &conns};

/* Looks for "\n\n" or "\n\r\n", starting where the previous call stopped, so
 * a request that trickles in one byte at a time costs O(n), not O(n^2).
 * Returns the length of the request including the blank line, or 0. */
static size_t find_blank_line(struct hello_conn *h, const char *data, size_t len)
{
    size_t i;
    for (i = h->scanned; i < len; i++) {
        if (data[i] != '\n')
            continue;
        if (i + 1 < len && data[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && data[i + 1] == '\r' && data[i + 2] == '\n')
            return i + 3;
        if (i + 2 >= len)
            break; /* the terminator may be cut in half: look here again later */
    }
    h->scanned = i;
    return 0;
}

/* eddy offers all unconsumed input each time. Returning 0 keeps it buffered,
 * which is exactly the tutorial's `requests[fileno] += recv(1024)`. */
static size_t on_read(struct eddy_conn *c, char *data, size_t len)
{
    struct hello_conn *h = (struct hello_conn *)c;
    /* Only the first MAX_REQUEST bytes may hold the blank line: one read can
     * bring in more than that, and the tutorial had no limit at all. */
    size_t end = find_blank_line(h, data, len < MAX_REQUEST ? len : MAX_REQUEST);

    if (end == 0) {
        if (len >= MAX_REQUEST)
            eddy_conn_close(c, -EMSGSIZE); /* on_close will free h, later */
        return 0;
    }
    /* Show the request, as the tutorial did (fwrite: it may hold NUL bytes). */
    fputs("----------------------------------------\n", stdout);
    fwrite(data, 1, end, stdout);
    /* No need to wait for EPOLLOUT as the tutorial did: eddy tries the
     * socket first and arms EPOLLOUT only if bytes are left over. Then
     * eddy_conn_shutdown() sends what is queued, half-closes, and drains the
     * client's input so that unread bytes cannot turn our reply into a reset. */
    eddy_conn_write(c, response, sizeof(response) - 1);
    eddy_conn_shutdown(c);
    return len;
}

/* Runs after eddy let go of the connection: the only safe place to free. */
static void on_close(struct eddy_conn *c, int status)
{
    struct hello_conn *h = (struct hello_conn *)c;
    if (status < 0)
        fprintf(stderr, "connection closed: %s\n", eddy_strerror(status));
    eddy_list_remove(&h->link);
    free(h);
}

/* on_eof is left NULL: a client that hangs up mid-request gets no reply. */
static const struct eddy_conn_cbs cbs = {.on_read = on_read, .on_close = on_close};
static const struct eddy_conn_opts opts = {0}; /* the defaults suit HTTP */

static void on_accept(struct eddy_listener *l, int fd)
{
    struct hello_conn *h = calloc(1, sizeof(*h));
    int err;

    if (!h) {
        close(fd); /* the fd is ours until eddy_conn_open() takes it */
        return;
    }
    if ((err = eddy_conn_open(l->loop, &h->conn, fd, &opts, &cbs)) < 0) {
        fprintf(stderr, "cannot open connection: %s\n", eddy_strerror(err));
        free(h); /* eddy closed the fd; on_close will not run */
        return;
    }
    eddy_list_push(&conns, &h->link);
}

static void on_signal(struct eddy_signal *sig, int signum)
{
    (void)signum;
    eddy_loop_stop(sig->loop);
}

static const char usage[] = "usage: seed-000-http-hello [--host HOST] [--port PORT]\n"
                            "Serves \"Hello, world!\" over HTTP/1.0 (default 127.0.0.1:8080).\n";

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"host", required_argument, NULL, 'H'},
                                             {"port", required_argument, NULL, 'p'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *host = "127.0.0.1", *port = "8080";
    char text[300], shown[EDDY_ADDR_STRLEN];
    struct eddy_loop *loop = NULL;
    struct eddy_addr addr;
    struct eddy_listener listener;
    struct eddy_signal sigint, sigterm;
    int opt, err;

    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (opt == 'H')
            host = optarg;
        else if (opt == 'p')
            port = optarg;
        else {
            fputs(usage, opt == 'h' ? stdout : stderr);
            return opt == 'h' ? 0 : 2;
        }
    }
    /* An IPv6 host needs brackets so that its colons are not read as the
     * port separator. */
    snprintf(text, sizeof(text), strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
    if (optind < argc || eddy_addr_parse(&addr, text) < 0) {
        fprintf(stderr, "bad address or argument: %s\n%s", text, usage);
        return 2;
    }
    /* Print each line as it happens, even when stdout is a pipe. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    if ((err = eddy_loop_new(&loop)) < 0 ||
        (err = eddy_listener_open(loop, &listener, &addr, NULL, on_accept, NULL)) < 0) {
        fprintf(stderr, "cannot listen on %s: %s\n", text, eddy_strerror(err));
        if (loop)
            eddy_loop_free(loop);
        return 1;
    }
    /* signalfd turns Ctrl-C into an ordinary loop event, so we stop between
     * callbacks instead of in the middle of one. */
    eddy_signal_init(loop, &sigint);
    eddy_signal_init(loop, &sigterm);
    if ((err = eddy_signal_start(&sigint, on_signal, SIGINT)) < 0 ||
        (err = eddy_signal_start(&sigterm, on_signal, SIGTERM)) < 0) {
        fprintf(stderr, "eddy_signal_start: %s\n", eddy_strerror(err));
    } else {
        printf("listening on %s\n", eddy_addr_format(&listener.addr, shown, sizeof(shown)));

        if ((err = eddy_loop_run(loop, EDDY_RUN_DEFAULT)) < 0)
            fprintf(stderr, "eddy_loop_run: %s\n", eddy_strerror(err));
    }

    /* Every handle must be closed before the loop is freed; eddy_loop_free
     * then runs the pending on_close callbacks, which free our structs. */
    eddy_listener_close(&listener);
    eddy_signal_stop(&sigint);
    eddy_signal_stop(&sigterm);
    struct eddy_list *pos;
    eddy_list_for_each(pos, &conns)
        eddy_conn_close(&eddy_list_entry(pos, struct hello_conn, link)->conn, 0);
    eddy_loop_free(loop);
    return err < 0 ? 1 : 0;
}
