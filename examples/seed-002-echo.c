/* seed-002-echo.c: the echo servers of tutorial 002, re-written on eddy.
 *
 * The tutorial's first program received up to 1024 bytes on EPOLLIN, stored
 * them, switched the fd to EPOLLOUT, sent them back, and switched it back to
 * EPOLLIN; its second program did the same but replied in upper case. Run
 * this one with --upper for the second program. eddy keeps the EPOLLIN /
 * EPOLLOUT switching out of sight, and adds two things the tutorial lacked:
 * a reply the kernel cannot take at once is kept and finished later (the
 * tutorial's single send() could silently drop the rest), and a client that
 * sends faster than it reads is paused instead of growing our memory.
 *
 * Try it:  ./seed-002-echo --upper &  socat - TCP:127.0.0.1:8888
 */
#include <ctype.h>
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

struct echo_conn {
    struct eddy_conn conn; /* first, so an eddy_conn pointer is ours too */
    char peer[EDDY_ADDR_STRLEN];
    struct eddy_list link; /* in conns: live connections, closed on exit */
};

static struct eddy_list conns = {&conns, &conns};
static bool upper;

static size_t on_read(struct eddy_conn *c, char *data, size_t len)
{
    struct echo_conn *e = (struct echo_conn *)c;

    /* eddy lets us modify the input in place, so upper-casing needs no copy.
     * We never call setlocale(), so toupper() changes ASCII letters only,
     * exactly like Python's bytes.upper(). */
    if (upper)
        for (size_t i = 0; i < len; i++)
            data[i] = (char)toupper((unsigned char)data[i]);
    printf("%zu bytes from %s\n", len, e->peer);
    /* A write made inside on_read is queued and sent when on_read returns.
     * If the client stops reading our replies, eddy keeps what the kernel
     * would not take and, above its high watermark (1 MiB), stops reading
     * from that client until the backlog drains: an echo server needs no
     * flow control of its own. */
    eddy_conn_write(c, data, len);
    return len; /* all consumed */
}

/* on_eof is left NULL: when the client shuts down its side, eddy finishes
 * sending the echoes still queued and then closes, which is what an echo
 * client that half-closes expects. */
static void on_close(struct eddy_conn *c, int status)
{
    struct echo_conn *e = (struct echo_conn *)c;
    printf("%s closed%s%s\n", e->peer, status ? ": " : "", status ? eddy_strerror(status) : "");
    eddy_list_remove(&e->link);
    free(e);
}

static const struct eddy_conn_cbs cbs = {.on_read = on_read, .on_close = on_close};
static const struct eddy_conn_opts opts = {0}; /* level-triggered, 16 KiB reads */

static void on_accept(struct eddy_listener *l, int fd)
{
    struct echo_conn *e = calloc(1, sizeof(*e));
    int err;

    if (!e) {
        close(fd); /* the fd is ours until eddy_conn_open() takes it */
        return;
    }
    if ((err = eddy_conn_open(l->loop, &e->conn, fd, &opts, &cbs)) < 0) {
        fprintf(stderr, "cannot open connection: %s\n", eddy_strerror(err));
        free(e); /* eddy closed the fd; on_close will not run */
        return;
    }
    printf("new connection: %s\n", eddy_conn_peer(&e->conn, e->peer, sizeof(e->peer)));
    eddy_list_push(&conns, &e->link);
}

static void on_signal(struct eddy_signal *sig, int signum)
{
    (void)signum;
    eddy_loop_stop(sig->loop);
}

static const char usage[] =
    "usage: seed-002-echo [--host HOST] [--port PORT] [--upper]\n"
    "Echoes what it receives (default 127.0.0.1:8888); --upper: in upper case.\n";

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"host", required_argument, NULL, 'H'},
                                             {"port", required_argument, NULL, 'p'},
                                             {"upper", no_argument, NULL, 'u'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *host = "127.0.0.1", *port = "8888";
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
        else if (opt == 'u')
            upper = true;
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
        printf("%s server listening on %s\n", upper ? "upper-case echo" : "echo",
               eddy_addr_format(&listener.addr, shown, sizeof(shown)));

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
        eddy_conn_close(&eddy_list_entry(pos, struct echo_conn, link)->conn, 0);
    eddy_loop_free(loop);
    return err < 0 ? 1 : 0;
}
