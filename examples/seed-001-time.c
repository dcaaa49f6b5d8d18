/* seed-001-time.c: the "send 3 bytes, get the time" server of tutorial 001,
 * re-written on eddy.
 *
 * The Python tutorial read one byte per EPOLLIN event, so that its log shows
 * level-triggered epoll firing again and again while bytes remain unread;
 * after the third byte it switched to EPOLLOUT, sent str(datetime.now()) and
 * closed. Here eddy does the registering and switching; we keep the lesson by
 * asking eddy to read one byte per read() (read_size = 1) and by installing a
 * trace hook that logs every event epoll reports, before it is dispatched:
 * three "EPOLLIN" lines for three bytes. Run it with --edge to compare: an
 * edge-triggered socket reports the three bytes once, and eddy then reads
 * until the socket is empty. (That event reads EPOLLIN|EPOLLOUT: eddy's
 * edge-triggered connections register both directions once, up front,
 * instead of changing the mask later.) The trace also shows the listening
 * socket, readable when a client is waiting to be accepted, and on Ctrl-C
 * the signalfd.
 *
 * Try it:  ./seed-001-time &
 *          python3 -c "import socket; s = socket.create_connection(('127.0.0.1', 9090));
 *                      s.send(b'Now'); print(s.recv(1024))"
 */
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eddy/list.h"
#include "eddy/loop.h"
#include "eddy/tcp.h"

struct time_conn {
    struct eddy_conn conn; /* first, so an eddy_conn pointer is ours too */
    int fd;                /* kept for the log: eddy_conn_fd() is -1 once closed */
    unsigned got;          /* bytes received so far */
    /* The kernel re-uses a closed fd number at once, possibly before our
     * on_close runs, so the close message names the client too. */
    char peer[EDDY_ADDR_STRLEN];
    struct eddy_list link; /* in conns: live connections, closed on exit */
};

static struct eddy_list conns = {&conns, &conns};

/* Formats the local time as "2026-05-29 17:10:22" and a fraction of a
 * second: ",997" for the log (Python's logging) or ".484237" for the reply
 * (Python's str(datetime.now()), which we always give six digits; Python
 * drops them when they happen to be zero). Returns the length. */
static size_t format_now(char *buf, size_t size, char sep, int digits)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
    return n + (size_t)snprintf(buf + n, size - n, "%c%0*ld", sep, digits,
                                digits == 3 ? ts.tv_nsec / 1000000 : ts.tv_nsec / 1000);
}

/* Logs to stderr in the tutorial's logging.Formatter shape:
 * "2026-05-29 17:10:22,997 - epoll-server - MainThread - INFO - message". */
static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    char when[64];
    va_list ap;

    format_now(when, sizeof(when), ',', 3);
    fprintf(stderr, "%s - epoll-server - MainThread - INFO - ", when);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Called by the loop for every event epoll_wait returns, so the learner sees
 * the raw mask, exactly what the tutorial's "new event 1 fd 5" line showed. */
static void trace(void *arg, int fd, uint32_t events)
{
    char names[96];
    (void)arg;
    logf_("new event %s fd %d", eddy_events_format(events, names, sizeof(names)), fd);
}

/* Formats (up to 16 bytes of) data the way Python's repr() shows bytes:
 * b'N', b'\r\n', b"'". out must hold 80 bytes. */
static const char *repr(const char *data, size_t len, char *out)
{
    size_t n = len < 16 ? len : 16;
    char q = memchr(data, '\'', n) && !memchr(data, '"', n) ? '"' : '\'';
    char *p = out + sprintf(out, "b%c", q);

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)data[i];
        if (ch == '\\' || ch == q)
            p += sprintf(p, "\\%c", ch);
        else if (ch == '\t' || ch == '\n' || ch == '\r')
            p += sprintf(p, "\\%c", ch == '\t' ? 't' : ch == '\n' ? 'n' : 'r');
        else if (ch < 0x20 || ch >= 0x7f)
            p += sprintf(p, "\\x%02x", ch);
        else
            *p++ = (char)ch;
    }
    sprintf(p, "%c%s", q, len > n ? "..." : "");
    return out;
}

static size_t on_read(struct eddy_conn *c, char *data, size_t len)
{
    struct time_conn *t = (struct time_conn *)c;
    char now[64], shown[80];
    size_t n;

    t->got += len;
    logf_("fd %d: received %s, %u byte(s) so far.", t->fd, repr(data, len, shown), t->got);
    if (t->got < 3)
        return len; /* consumed: we only need to count them */

    n = format_now(now, sizeof(now), '.', 6);
    logf_("fd %d: all 3 bytes received; replying %s and shutting down.", t->fd, now);
    /* The tutorial waited for EPOLLOUT before sending; eddy tries the socket
     * first and only arms EPOLLOUT if the kernel does not take everything.
     * After eddy_conn_shutdown() on_read is not called again, so bytes after
     * the third are read and dropped: one reply per connection. */
    eddy_conn_write(c, now, n);
    eddy_conn_shutdown(c);
    return len;
}

static void on_close(struct eddy_conn *c, int status)
{
    struct time_conn *t = (struct time_conn *)c;
    logf_("fd %d: %s closed (%s).", t->fd, t->peer, status ? eddy_strerror(status) : "orderly");
    eddy_list_remove(&t->link);
    free(t);
}

static const struct eddy_conn_cbs cbs = {.on_read = on_read, .on_close = on_close};
/* One byte per read(): in level-triggered mode eddy reads once per wake-up,
 * so epoll has to wake us again for each remaining byte. Not const: main()
 * sets .edge from the command line before any connection is opened. */
static struct eddy_conn_opts opts = {.read_size = 1};

static void on_accept(struct eddy_listener *l, int fd)
{
    struct time_conn *t = calloc(1, sizeof(*t));
    int err;

    if (!t) {
        close(fd); /* the fd is ours until eddy_conn_open() takes it */
        return;
    }
    t->fd = fd;
    if ((err = eddy_conn_open(l->loop, &t->conn, fd, &opts, &cbs)) < 0) {
        logf_("cannot open connection: %s", eddy_strerror(err)); /* fd already closed */
        free(t);
        return;
    }
    logf_("accepted %s as fd %d.", eddy_conn_peer(&t->conn, t->peer, sizeof(t->peer)), fd);
    eddy_list_push(&conns, &t->link);
}

static void on_signal(struct eddy_signal *sig, int signum)
{
    logf_("%s: stopping.", strsignal(signum));
    eddy_loop_stop(sig->loop);
}

static const char usage[] = "usage: seed-001-time [--host HOST] [--port PORT] [--edge]\n"
                            "Replies with the local time after 3 bytes (default 127.0.0.1:9090);\n"
                            "logs every epoll event. --edge: edge-triggered connections.\n";

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"host", required_argument, NULL, 'H'},
                                             {"port", required_argument, NULL, 'p'},
                                             {"edge", no_argument, NULL, 'e'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    /* The tutorial listened on 0.0.0.0; a demo should not be reachable from
     * the network unless asked to, so the default is loopback. */
    const char *host = "127.0.0.1", *port = "9090";
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
        else if (opt == 'e')
            opts.edge = true;
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

    if ((err = eddy_loop_new(&loop)) < 0 ||
        (err = eddy_listener_open(loop, &listener, &addr, NULL, on_accept, NULL)) < 0) {
        fprintf(stderr, "cannot listen on %s: %s\n", text, eddy_strerror(err));
        if (loop)
            eddy_loop_free(loop);
        return 1;
    }
    /* Signals arrive through a signalfd, as one more epoll event (you will
     * see it in the trace), so we stop between callbacks, never inside one. */
    eddy_signal_init(loop, &sigint);
    eddy_signal_init(loop, &sigterm);
    if ((err = eddy_signal_start(&sigint, on_signal, SIGINT)) < 0 ||
        (err = eddy_signal_start(&sigterm, on_signal, SIGTERM)) < 0) {
        fprintf(stderr, "eddy_signal_start: %s\n", eddy_strerror(err));
    } else {
        /* From here on every epoll event is logged, before it is dispatched. */
        eddy_loop_set_trace(loop, trace, NULL);
        logf_("listening on %s, %s-triggered.",
              eddy_addr_format(&listener.addr, shown, sizeof(shown)), opts.edge ? "edge" : "level");

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
        eddy_conn_close(&eddy_list_entry(pos, struct time_conn, link)->conn, 0);
    eddy_loop_free(loop);
    return err < 0 ? 1 : 0;
}
