/* eddy: runs the tutorials' services (and more) on one event loop.
 *
 *   eddy                              the built-in default set, on 127.0.0.1
 *   eddy echo=127.0.0.1:7000 time=[::1]:9090 sink=unix:/tmp/sink.sock
 *   eddy time --host 0.0.0.0 --port 9090 --read-size 1 --trace
 *
 * Exit status: 0 after SIGINT/SIGTERM, 1 when a listener cannot be opened,
 * 2 for bad command-line arguments. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "eddy/loop.h"
#include "eddy/tcp.h"
#include "access_log.h"
#include "log.h"
#include "service.h"

#define MAX_LISTENERS 64
#define REJECT_REPORT_MS 1000

struct listener {
    const struct svc_service *svc;
    struct eddy_addr addr;
    struct eddy_listener l;
    struct svc_ctx ctx;
    bool started;
    bool open;
};

struct config {
    struct svc_http_config http;
    const char *access_log;
    const char *host;
    const char *port;
    bool edge;
    bool trace;
    enum log_level level;
    uint64_t read_size;
    uint64_t idle_s;
    uint64_t backlog;
    bool reuseport;
    uint64_t drain_s;
    uint64_t max_conns;
    const char *user;
};

struct server {
    struct eddy_loop *loop;
    struct listener *ls;
    size_t nls;
    struct eddy_signal sigint, sigterm;
    struct eddy_timer drain;
    struct eddy_timer drain_check;
    bool draining;
    struct access_log *access;
    uint64_t drain_ms;
    uint64_t max_conns;
    uint64_t rejected;
    struct eddy_timer reject_report;
};

static const struct svc_service *const default_set[] = {
    &svc_echo, &svc_time, &svc_discard, &svc_http,
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: eddy [OPTIONS] [SERVICE[=ADDRESS]]...\n"
            "\n"
            "Runs TCP services on one epoll event loop. With no SERVICE, runs the\n"
            "tutorials' set: echo=127.0.0.1:8888 time=127.0.0.1:9090\n"
            "discard=127.0.0.1:7788 http=127.0.0.1:8080.\n"
            "\n"
            "Services (default port in brackets):\n");
    for (size_t i = 0; svc_all[i]; i++)
        fprintf(out, "  %-10s [%5u] %s\n", svc_all[i]->name, svc_all[i]->default_port,
                svc_all[i]->summary);
    fprintf(out,
            "\n"
            "ADDRESS is HOST:PORT, [IPV6]:PORT, unix:/PATH, or PORT alone (on --host).\n"
            "Port 0 lets the kernel choose; the log says which port it got.\n"
            "\n"
            "Options:\n"
            "  -H, --host HOST        host for services given without an address\n"
            "                         (default 127.0.0.1: reachable from this machine only)\n"
            "  -p, --port PORT        port for the one service given without an address\n"
            "  -t, --trigger MODE     epoll trigger mode for connections: level (default)\n"
            "                         or edge\n"
            "  -l, --log-level LEVEL  debug, info (default), warning or error\n"
            "      --trace            log every epoll event with its fd and decoded mask\n"
            "      --read-size N      bytes per read() (default 16384); 1 shows level-\n"
            "                         triggered epoll firing once per byte\n"
            "      --idle-timeout S   close connections idle for S seconds (default 300;\n"
            "                         0: never)\n"
            "      --backlog N        listen backlog (default 511)\n"
            "      --reuseport        set SO_REUSEPORT, so other processes can share the port\n"
            "      --max-connections N  at most N open connections; past it, new ones are\n"
            "                         closed (HTTP: after a 503); default 0: no limit\n"
            "      --drain-timeout S  on SIGINT/SIGTERM, wait up to S s for connections to\n"
            "                         finish (default 10)\n"
            "      --user NAME[:GROUP]  after opening the listeners, run as this user\n"
            "\n"
            "HTTP services (http, static):\n"
            "      --body TEXT        http: body of GET responses (default 'Hello, world!')\n"
            "      --content-type T   http: its Content-Type (default text/plain)\n"
            "      --root DIR         static: directory to serve (default: the current one)\n"
            "      --listing          static: list directories that have no index.html\n"
            "      --max-body N       largest request body, in bytes (default 1048576): 413\n"
            "      --max-request-line N  longest request line, in bytes (default 8192): 414\n"
            "      --max-header-bytes N  largest header block, in bytes (default 16384): 431\n"
            "      --max-headers N    most header fields (default and at most 100): 431\n"
            "      --header-timeout S a request's header must arrive within S s (default 10): 408\n"
            "      --keepalive-timeout S  close keep-alive connections idle for S s (default 15)\n"
            "      --access-log PATH  log every response in Common Log Format to PATH\n"
            "                         ('-': standard output); off by default\n"
            "  -h, --help             show this help and exit\n"
            "  -V, --version          show the version and exit\n"
            "\n"
            "Stop with Ctrl-C (SIGINT) or SIGTERM: eddy stops accepting, lets open\n"
            "connections finish (HTTP keep-alive ones get 'Connection: close'), closes\n"
            "what is left after --drain-timeout, and exits 0. A second signal closes\n"
            "everything at once.\n");
}

static void __attribute__((noreturn, format(printf, 1, 2))) bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("eddy: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'eddy --help' for more information.\n", stderr);
    exit(2);
}

static uint64_t parse_number(const char *opt, const char *text, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end || errno || v < min || v > max)
        bad_usage("%s: '%s' is not a number from %llu to %llu", opt, text,
                  (unsigned long long)min, (unsigned long long)max);
    return v;
}

static void make_address(struct listener *ls, const char *host, const char *port)
{
    char text[300];
    if (strchr(host, ':'))
        snprintf(text, sizeof text, "[%s]:%s", host, port);
    else
        snprintf(text, sizeof text, "%s:%s", host, port);
    if (eddy_addr_parse(&ls->addr, text) < 0)
        bad_usage("'%s' is not a valid address (want a numeric IPv4 or IPv6 address, or "
                  "localhost, and a port from 0 to 65535)",
                  text);
}

/* Turns the positional arguments into listeners. */
static size_t parse_services(const struct config *cfg, char *const *args, int nargs,
                             struct listener *ls)
{
    size_t n = 0;
    size_t without_address = 0;
    for (int i = 0; i < nargs; i++) {
        if (n == MAX_LISTENERS)
            bad_usage("too many services (at most %d)", MAX_LISTENERS);
        /* argv is left as it is, so ps shows the command line as typed. */
        const char *eq = strchr(args[i], '=');
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)(eq ? (size_t)(eq - args[i]) : strlen(args[i])),
                 args[i]);
        ls[n].svc = svc_find(name);
        if (!ls[n].svc)
            bad_usage("unknown service '%s' (see 'eddy --help' for the list)", name);
        if (!eq) {
            without_address++;
            char port[8];
            snprintf(port, sizeof port, "%u", ls[n].svc->default_port);
            make_address(&ls[n], cfg->host, cfg->port ? cfg->port : port);
        } else if (eq[1] && strspn(eq + 1, "0123456789") == strlen(eq + 1)) {
            make_address(&ls[n], cfg->host, eq + 1);
        } else if (eddy_addr_parse(&ls[n].addr, eq + 1) < 0) {
            bad_usage("%s: '%s' is not a valid address (want HOST:PORT, [IPV6]:PORT, "
                      "unix:/PATH or PORT)",
                      name, eq + 1);
        }
        n++;
    }
    if (n == 0) {
        if (cfg->port)
            bad_usage("--port needs exactly one service, e.g. 'eddy time --port %s'", cfg->port);
        for (size_t i = 0; i < sizeof default_set / sizeof default_set[0]; i++) {
            char port[8];
            ls[n].svc = default_set[i];
            snprintf(port, sizeof port, "%u", ls[n].svc->default_port);
            make_address(&ls[n++], cfg->host, port);
        }
    } else if (cfg->port && without_address != 1) {
        bad_usage("--port applies to exactly one service given without an address; "
                  "%zu were given",
                  without_address);
    }
    return n;
}

static void parse_args(int argc, char **argv, struct config *cfg)
{
    enum {
        OPT_TRACE = 256,
        OPT_READ_SIZE,
        OPT_IDLE,
        OPT_BACKLOG,
        OPT_REUSEPORT,
        OPT_BODY,
        OPT_TYPE,
        OPT_ROOT,
        OPT_LISTING,
        OPT_MAX_BODY,
        OPT_HEADER_TIMEOUT,
        OPT_KEEPALIVE_TIMEOUT,
        OPT_ACCESS_LOG,
        OPT_MAX_CONNS,
        OPT_MAX_LINE,
        OPT_MAX_HEADER_BYTES,
        OPT_MAX_HEADERS,
        OPT_DRAIN,
        OPT_USER,
    };
    static const struct option options[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"trigger", required_argument, NULL, 't'},
        {"log-level", required_argument, NULL, 'l'},
        {"trace", no_argument, NULL, OPT_TRACE},
        {"read-size", required_argument, NULL, OPT_READ_SIZE},
        {"idle-timeout", required_argument, NULL, OPT_IDLE},
        {"backlog", required_argument, NULL, OPT_BACKLOG},
        {"reuseport", no_argument, NULL, OPT_REUSEPORT},
        {"body", required_argument, NULL, OPT_BODY},
        {"content-type", required_argument, NULL, OPT_TYPE},
        {"root", required_argument, NULL, OPT_ROOT},
        {"listing", no_argument, NULL, OPT_LISTING},
        {"max-body", required_argument, NULL, OPT_MAX_BODY},
        {"header-timeout", required_argument, NULL, OPT_HEADER_TIMEOUT},
        {"keepalive-timeout", required_argument, NULL, OPT_KEEPALIVE_TIMEOUT},
        {"access-log", required_argument, NULL, OPT_ACCESS_LOG},
        {"max-connections", required_argument, NULL, OPT_MAX_CONNS},
        {"max-request-line", required_argument, NULL, OPT_MAX_LINE},
        {"max-header-bytes", required_argument, NULL, OPT_MAX_HEADER_BYTES},
        {"max-headers", required_argument, NULL, OPT_MAX_HEADERS},
        {"drain-timeout", required_argument, NULL, OPT_DRAIN},
        {"user", required_argument, NULL, OPT_USER},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    *cfg = (struct config){
        .host = "127.0.0.1",
        .level = LOG_INFO,
        .read_size = 16384,
        .idle_s = 300,
        .backlog = 511,
        .drain_s = 10,
    };
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":H:p:t:l:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'H':
            cfg->host = optarg;
            break;
        case 'p':
            parse_number("--port", optarg, 0, 65535);
            cfg->port = optarg;
            break;
        case 't':
            if (strcmp(optarg, "level") != 0 && strcmp(optarg, "edge") != 0)
                bad_usage("--trigger: '%s' is not 'level' or 'edge'", optarg);
            cfg->edge = strcmp(optarg, "edge") == 0;
            break;
        case 'l': {
            int level = log_level_parse(optarg);
            if (level < 0)
                bad_usage("--log-level: '%s' is not debug, info, warning or error", optarg);
            cfg->level = (enum log_level)level;
            break;
        }
        case OPT_TRACE:
            cfg->trace = true;
            break;
        case OPT_READ_SIZE:
            cfg->read_size = parse_number("--read-size", optarg, 1, 1 << 20);
            break;
        case OPT_IDLE:
            cfg->idle_s = parse_number("--idle-timeout", optarg, 0, 86400 * 365);
            break;
        case OPT_BACKLOG:
            cfg->backlog = parse_number("--backlog", optarg, 1, 65535);
            break;
        case OPT_REUSEPORT:
            cfg->reuseport = true;
            break;
        case OPT_BODY:
            cfg->http.body = optarg;
            break;
        case OPT_TYPE:
            if (!*optarg || strpbrk(optarg, "\r\n"))
                bad_usage("--content-type: '%s' is not a media type", optarg);
            cfg->http.content_type = optarg;
            break;
        case OPT_ROOT:
            cfg->http.root = optarg;
            break;
        case OPT_LISTING:
            cfg->http.listing = true;
            break;
        case OPT_MAX_BODY:
            cfg->http.http.limits.max_body =
                parse_number("--max-body", optarg, 1, (uint64_t)1 << 30);
            break;
        case OPT_HEADER_TIMEOUT:
            cfg->http.http.header_timeout_ms =
                1000 * parse_number("--header-timeout", optarg, 1, 3600);
            break;
        case OPT_ACCESS_LOG:
            cfg->access_log = optarg;
            break;
        case OPT_MAX_LINE:
            cfg->http.http.limits.max_request_line =
                parse_number("--max-request-line", optarg, 64, 1 << 20);
            break;
        case OPT_MAX_HEADER_BYTES:
            cfg->http.http.limits.max_header_bytes =
                parse_number("--max-header-bytes", optarg, 64, 1 << 20);
            break;
        case OPT_MAX_HEADERS:
            cfg->http.http.limits.max_headers =
                parse_number("--max-headers", optarg, 1, EDDY_HTTP_MAX_HEADERS);
            break;
        case OPT_MAX_CONNS:
            cfg->max_conns = parse_number("--max-connections", optarg, 0, 100000000);
            break;
        case OPT_DRAIN:
            cfg->drain_s = parse_number("--drain-timeout", optarg, 0, 86400);
            break;
        case OPT_USER:
            cfg->user = optarg;
            break;
        case OPT_KEEPALIVE_TIMEOUT:
            cfg->http.http.keepalive_timeout_ms =
                1000 * parse_number("--keepalive-timeout", optarg, 1, 86400);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            printf("eddy %s\n", EDDY_VERSION);
            exit(0);
        case ':':
            bad_usage("option '%s' needs a value", argv[optind - 1]);
        default:
            bad_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
}

/* ---- running ------------------------------------------------------------- */

static void svc_logger(void *arg, enum svc_level level, const char *fmt, va_list ap)
{
    (void)arg;
    log_vmsg((enum log_level)level, fmt, ap);
}

static void on_trace(void *arg, int fd, uint32_t events)
{
    (void)arg;
    char mask[160];
    log_msg(LOG_TRACE, "epoll fd=%d %s", fd, eddy_events_format(events, mask, sizeof mask));
}

static size_t live_connections(const struct server *s);

static void on_reject_report(struct eddy_timer *t)
{
    struct server *s = t->data;
    log_msg(LOG_WARNING, "refused %llu connection(s): --max-connections %llu reached",
            (unsigned long long)s->rejected, (unsigned long long)s->max_conns);
    s->rejected = 0;
}

/* Past --max-connections a new connection is closed at once; HTTP clients
 * first get a 503 so they know why. Best effort: the socket is new, so its
 * send buffer is empty and the few bytes go out without blocking. */
static void reject(struct server *s, const struct listener *ls, int fd)
{
    if (ls->svc->http_handler) {
        static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                                   "Content-Length: 20\r\nConnection: close\r\nRetry-After: 1\r\n"
                                   "\r\n503 Server is busy\n";
        ssize_t n = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n;
        shutdown(fd, SHUT_WR);
    }
    close(fd);
    if (s->rejected++ == 0)
        (void)eddy_timer_start(&s->reject_report, on_reject_report, REJECT_REPORT_MS, 0);
}

static void on_accept(struct eddy_listener *l, int fd)
{
    struct listener *ls = l->data;
    struct server *s = ls->ctx.data;
    if (s->max_conns && live_connections(s) >= s->max_conns) {
        reject(s, ls, fd);
        return;
    }
    svc_accept(&ls->ctx, fd);
}

static void on_accept_error(struct eddy_listener *l, int err, uint64_t dropped)
{
    struct listener *ls = l->data;
    char addr[EDDY_ADDR_STRLEN];
    log_msg(LOG_WARNING,
            "%s on %s: cannot accept: %s; closed %llu waiting connection(s) since the last "
            "report (raise the open-file limit, ulimit -n, if this persists)",
            ls->svc->name, eddy_addr_format(&l->addr, addr, sizeof addr), eddy_strerror(err),
            (unsigned long long)dropped);
}

static size_t live_connections(const struct server *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nls; i++)
        n += svc_ctx_live(&s->ls[i].ctx);
    return n;
}

/* While draining, look a few times a second whether everything finished. */
static void on_drain_check(struct eddy_timer *t)
{
    struct server *s = t->data;
    if (live_connections(s) == 0)
        eddy_loop_stop(s->loop);
}

static void force_close(struct server *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nls; i++)
        n += svc_ctx_close_all(&s->ls[i].ctx);
    if (n)
        log_msg(LOG_WARNING, "closed %zu connection(s) that did not finish in time", n);
    eddy_loop_stop(s->loop);
}

static void on_drain_timeout(struct eddy_timer *t)
{
    force_close(t->data);
}

static void on_signal(struct eddy_signal *sig, int signum)
{
    struct server *s = sig->data;
    if (s->draining) {
        log_msg(LOG_INFO, "SIG%s again: closing the remaining connections now", sigabbrev_np(signum));
        force_close(s);
        return;
    }
    s->draining = true;
    size_t live = live_connections(s);
    log_msg(LOG_INFO, "SIG%s received: no longer accepting; %zu connection(s) to finish",
            sigabbrev_np(signum), live);
    for (size_t i = 0; i < s->nls; i++) {
        eddy_listener_close(&s->ls[i].l);
        svc_ctx_shutdown_all(&s->ls[i].ctx);
    }
    if (live_connections(s) == 0) {
        eddy_loop_stop(s->loop);
        return;
    }
    if (eddy_timer_start(&s->drain, on_drain_timeout, s->drain_ms, 0) < 0 ||
        eddy_timer_start(&s->drain_check, on_drain_check, 20, 20) < 0)
        force_close(s);
}

/* epoll has no descriptor ceiling of its own; the open-file limit is the
 * one that counts, so take all of it. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == rl.rlim_max)
        return;
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        log_msg(LOG_INFO, "open-file limit raised from %llu to %llu", (unsigned long long)old,
                (unsigned long long)rl.rlim_max);
}

/* --user NAME[:GROUP]: supplementary groups, then the group, then the user,
 * in that order (after setuid() the others could no longer be changed), and
 * then a check that root cannot be regained. */
static int drop_privileges(const char *spec)
{
    char name[256];
    snprintf(name, sizeof name, "%s", spec);
    char *group = strchr(name, ':');
    if (group)
        *group++ = '\0';
    struct passwd *pw = getpwnam(name);
    if (!pw) {
        fprintf(stderr, "eddy: --user: no user '%s'\n", name);
        return -1;
    }
    gid_t gid = pw->pw_gid;
    if (group) {
        struct group *gr = getgrnam(group);
        if (!gr) {
            fprintf(stderr, "eddy: --user: no group '%s'\n", group);
            return -1;
        }
        gid = gr->gr_gid;
    }
    if (initgroups(pw->pw_name, gid) < 0 || setgid(gid) < 0 || setuid(pw->pw_uid) < 0) {
        fprintf(stderr, "eddy: --user %s: %s\n", spec, eddy_strerror(-errno));
        return -1;
    }
    if (pw->pw_uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        fprintf(stderr, "eddy: --user %s: root could be regained; refusing to run\n", spec);
        return -1;
    }
    log_msg(LOG_INFO, "running as user %s (uid %u, gid %u)", pw->pw_name, (unsigned)pw->pw_uid,
            (unsigned)gid);
    return 0;
}

static bool serves_static(const struct server *s)
{
    for (size_t i = 0; i < s->nls; i++)
        if (s->ls[i].svc == &svc_static)
            return true;
    return false;
}

static int open_access_log(struct server *s, const char *path)
{
    s->access = malloc(sizeof *s->access);
    if (!s->access)
        return -ENOMEM;
    int err = access_log_open(s->access, s->loop, path);
    if (err) {
        free(s->access);
        s->access = NULL;
    }
    return err;
}

static int open_listeners(struct server *s, const struct config *cfg)
{
    struct eddy_listen_opts lopts = {.backlog = (int)cfg->backlog, .reuseport = cfg->reuseport};
    for (size_t i = 0; i < s->nls; i++) {
        struct listener *ls = &s->ls[i];
        char addr[EDDY_ADDR_STRLEN];
        svc_ctx_init(&ls->ctx, s->loop, ls->svc);
        ls->ctx.conn_opts = (struct eddy_conn_opts){
            .edge = cfg->edge, .read_size = cfg->read_size, .idle_ms = cfg->idle_s * 1000};
        ls->ctx.log = svc_logger;
        ls->ctx.log_level = (enum svc_level)cfg->level;
        ls->ctx.data = s;
        if (s->access) {
            ls->ctx.access_log = access_log_write;
            ls->ctx.access_arg = s->access;
        }
        ls->l.data = ls;
        char why[256] = "";
        int err = svc_ctx_start(&ls->ctx, &cfg->http, why, sizeof why);
        if (err) {
            fprintf(stderr, "eddy: %s: %s\n", ls->svc->name, why);
            return -1;
        }
        ls->started = true;
        err = eddy_listener_open(s->loop, &ls->l, &ls->addr, &lopts, on_accept, on_accept_error);
        if (err) {
            const char *hint = err == -EADDRINUSE ? " (is another server using it?)"
                               : err == -EACCES   ? " (ports below 1024 need privileges)"
                                                  : "";
            fprintf(stderr, "eddy: cannot listen on %s for %s: %s%s\n",
                    eddy_addr_format(&ls->addr, addr, sizeof addr), ls->svc->name,
                    eddy_strerror(err), hint);
            return -1;
        }
        ls->open = true;
        log_msg(LOG_INFO, "%s listening on %s%s", ls->svc->name,
                eddy_addr_format(&ls->l.addr, addr, sizeof addr),
                cfg->edge ? " (edge-triggered)" : "");
    }
    return 0;
}

/* Everything between creating the loop and running it. Returns the exit
 * status to give up with, or 0 to run. */
static int start(struct server *s, const struct config *cfg)
{
    int err;
    if ((err = eddy_signal_start(&s->sigint, on_signal, SIGINT)) < 0 ||
        (err = eddy_signal_start(&s->sigterm, on_signal, SIGTERM)) < 0) {
        fprintf(stderr, "eddy: cannot watch signals: %s\n", eddy_strerror(err));
        return 1;
    }
    if (cfg->access_log && (err = open_access_log(s, cfg->access_log)) < 0) {
        fprintf(stderr, "eddy: cannot open access log '%s': %s\n", cfg->access_log,
                eddy_strerror(err));
        return 1;
    }
    if (open_listeners(s, cfg) < 0)
        return 1;
    if (cfg->user)
        return drop_privileges(cfg->user) < 0 ? 1 : 0;
    if (geteuid() == 0 && serves_static(s))
        log_msg(LOG_WARNING, "static is serving files as root: consider --user NAME");
    return 0;
}

int main(int argc, char **argv)
{
    struct config cfg;
    parse_args(argc, argv, &cfg);
    static struct listener ls[MAX_LISTENERS];
    struct server s = {.ls = ls};
    s.nls = parse_services(&cfg, argv + optind, argc - optind, ls);
    log_init("eddy", cfg.level);
    raise_fd_limit();
    s.drain_ms = cfg.drain_s * 1000;
    s.max_conns = cfg.max_conns;

    /* The library never raises SIGPIPE itself (it sends with MSG_NOSIGNAL);
     * ignoring it here also covers any other write the program makes. */
    signal(SIGPIPE, SIG_IGN);

    int err = eddy_loop_new(&s.loop);
    if (err) {
        fprintf(stderr, "eddy: cannot create the event loop: %s\n", eddy_strerror(err));
        return 1;
    }
    if (cfg.trace)
        eddy_loop_set_trace(s.loop, on_trace, NULL);
    eddy_timer_init(s.loop, &s.drain);
    s.drain.data = &s;
    eddy_timer_init(s.loop, &s.drain_check);
    s.drain_check.data = &s;
    eddy_timer_init(s.loop, &s.reject_report);
    s.reject_report.data = &s;
    eddy_signal_init(s.loop, &s.sigint);
    eddy_signal_init(s.loop, &s.sigterm);
    s.sigint.data = s.sigterm.data = &s;
    int status = start(&s, &cfg);
    if (status == 0 && (err = eddy_loop_run(s.loop, EDDY_RUN_DEFAULT)) < 0) {
        log_msg(LOG_ERROR, "event loop failed: %s", eddy_strerror(err));
        status = 1;
    }

    for (size_t i = 0; i < s.nls; i++) {
        if (ls[i].open)
            eddy_listener_close(&ls[i].l);
        if (ls[i].started)
            svc_ctx_close_all(&ls[i].ctx);
    }
    eddy_timer_stop(&s.drain);
    eddy_timer_stop(&s.drain_check);
    eddy_timer_stop(&s.reject_report);
    if (s.access) {
        access_log_close(s.access);
        free(s.access);
    }
    eddy_signal_stop(&s.sigint);
    eddy_signal_stop(&s.sigterm);
    eddy_loop_free(s.loop);
    for (size_t i = 0; i < s.nls; i++)
        if (ls[i].started)
            svc_ctx_stop(&ls[i].ctx);
    if (status == 0)
        log_msg(LOG_INFO, "stopped");
    return status;
}
