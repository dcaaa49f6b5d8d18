/* seed-004-edge-receiver.c: the edge-triggered receiver of tutorial 004,
 * re-written on eddy.
 *
 * The tutorial registered every socket with EPOLLIN | EPOLLET and printed
 * each recv(1024). That has a trap: an edge-triggered fd is reported once
 * per *arrival*, so a single recv() that leaves bytes behind is never woken
 * again for them until more data comes. eddy's edge-triggered connections
 * (opts.edge) read until the kernel says EAGAIN, with a budget of reads per
 * wake-up so one fast client cannot starve the others; when the budget runs
 * out eddy re-queues the connection itself instead of waiting for an edge
 * that will not come.
 *
 * Try it:  ./seed-004-edge-receiver &  printf 'hi\n' | socat - TCP:127.0.0.1:7788
 */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eddy/list.h"
#include "eddy/loop.h"
#include "eddy/tcp.h"

struct recv_conn {
    struct eddy_conn conn;           /* first, so an eddy_conn pointer is ours too */
    char peer[EDDY_ADDR_STRLEN];     /* saved: the fd is gone by on_close */
    struct eddy_list link; /* in conns: live connections, closed on exit */
};

static struct eddy_list conns = {&conns, &conns};

/* Prints data the way Python prints a bytes object: b'hi\n', b"it's". */
static void print_bytes(const char *data, size_t len)
{
    char q = memchr(data, '\'', len) && !memchr(data, '"', len) ? '"' : '\'';

    printf("b%c", q);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)data[i];
        if (ch == '\\' || ch == q)
            printf("\\%c", ch);
        else if (ch == '\t' || ch == '\n' || ch == '\r')
            printf("\\%c", ch == '\t' ? 't' : ch == '\n' ? 'n' : 'r');
        else if (ch < 0x20 || ch >= 0x7f)
            printf("\\x%02x", ch);
        else
            putchar(ch);
    }
    putchar(q);
}

/* eddy calls on_read after every read(); since we consume all of it, each
 * call is one chunk of at most 1 KiB, like the tutorial's recv(1024). */
static size_t on_read(struct eddy_conn *c, char *data, size_t len)
{
    (void)c;
    printf("recv:");
    print_bytes(data, len);
    putchar('\n');
    return len;
}

/* The tutorial closed the socket when recv() returned b''. Here on_eof is
 * NULL, so eddy closes the connection itself at EOF; on_close then covers
 * EOF and errors (a reset, say) alike. */
static void on_close(struct eddy_conn *c, int status)
{
    struct recv_conn *r = (struct recv_conn *)c;
    (void)status;
    printf("%s ---offline---\n", r->peer);
    eddy_list_remove(&r->link);
    free(r);
}

static const struct eddy_conn_cbs cbs = {.on_read = on_read, .on_close = on_close};
/* EPOLLET as in the tutorial, and 1 KiB reads like its recv(1024). */
static const struct eddy_conn_opts opts = {.edge = true, .read_size = 1024};

static void on_accept(struct eddy_listener *l, int fd)
{
    struct recv_conn *r = calloc(1, sizeof(*r));
    int err;

    if (!r) {
        close(fd); /* the fd is ours until eddy_conn_open() takes it */
        return;
    }
    if ((err = eddy_conn_open(l->loop, &r->conn, fd, &opts, &cbs)) < 0) {
        fprintf(stderr, "cannot open connection: %s\n", eddy_strerror(err));
        free(r); /* eddy closed the fd; on_close will not run */
        return;
    }
    printf("new client %s\n", eddy_conn_peer(&r->conn, r->peer, sizeof(r->peer)));
    eddy_list_push(&conns, &r->link);
}

static void on_signal(struct eddy_signal *sig, int signum)
{
    (void)signum;
    eddy_loop_stop(sig->loop);
}

static const char usage[] = "usage: seed-004-edge-receiver [--host HOST] [--port PORT]\n"
                            "Prints what clients send, edge-triggered (default 127.0.0.1:7788).\n";

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"host", required_argument, NULL, 'H'},
                                             {"port", required_argument, NULL, 'p'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    /* The tutorial bound to every interface (""); loopback is the safe default. */
    const char *host = "127.0.0.1", *port = "7788";
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
    /* Brackets keep an IPv6 host's colons apart from the port's. */
    snprintf(text, sizeof(text), strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
    if (optind < argc || eddy_addr_parse(&addr, text) < 0) {
        fprintf(stderr, "bad address or argument: %s\n%s", text, usage);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* show each line at once, even in a pipe */

    if ((err = eddy_loop_new(&loop)) < 0 ||
        (err = eddy_listener_open(loop, &listener, &addr, NULL, on_accept, NULL)) < 0) {
        fprintf(stderr, "cannot listen on %s: %s\n", text, eddy_strerror(err));
        if (loop)
            eddy_loop_free(loop);
        return 1;
    }
    /* A signalfd makes Ctrl-C one more loop event: we stop between callbacks. */
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

    /* Close every handle before freeing the loop; eddy_loop_free() runs the
     * pending on_close callbacks, which free our structs. */
    eddy_listener_close(&listener);
    eddy_signal_stop(&sigint);
    eddy_signal_stop(&sigterm);
    struct eddy_list *pos;
    eddy_list_for_each(pos, &conns)
        eddy_conn_close(&eddy_list_entry(pos, struct recv_conn, link)->conn, 0);
    eddy_loop_free(loop);
    return err < 0 ? 1 : 0;
}
