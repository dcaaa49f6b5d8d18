#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

/* The services run when none is named: the tutorials' set. */
static const struct svc_service *const default_set[] = {
    &svc_echo,
    &svc_time,
    &svc_discard,
    &svc_http,
};

void options_usage(FILE *out)
{
    fprintf(out, "usage: eddy [OPTIONS] [SERVICE[=ADDRESS]]...\n"
                 "       eddy --upgrade --pid-file PATH\n"
                 "\n"
                 "Runs TCP services on epoll event loops, one per worker thread. With no\n"
                 "SERVICE, runs the tutorials' set: echo=127.0.0.1:8888 time=127.0.0.1:9090\n"
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
            "  -w, --workers N        worker threads, each with its own event loop, all\n"
            "                         accepting from the same listeners (default: one per CPU)\n"
            "      --cpu-affinity     pin worker i to the i-th CPU eddy may run on\n"
            "      --max-connections N  at most N open connections, across all workers; past\n"
            "                         it, new ones are closed (HTTP: after a 503); default 0:\n"
            "                         no limit\n"
            "      --drain-timeout S  on SIGINT/SIGTERM, wait up to S s for connections to\n"
            "                         finish (default 10)\n"
            "      --user NAME[:GROUP]  after opening the listeners, run as this user\n"
            "      --pid-file PATH    write eddy's pid to PATH once it serves (removed at\n"
            "                         exit, handed over by a restart)\n"
            "      --upgrade          restart the eddy whose pid is in --pid-file without\n"
            "                         dropping a connection (as SIGUSR2 does), wait until\n"
            "                         the new process is ready, and exit\n"
            "      --upgrade-timeout S  how long a new process may take to get ready\n"
            "                         (default 30)\n"
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
            "      --body-timeout S   and its body within S s more (default 60): 408\n"
            "      --send-timeout S   close a connection whose client takes no byte of a\n"
            "                         response for S s (default 60)\n"
            "      --keepalive-timeout S  close keep-alive connections idle for S s (default 15)\n"
            "      --access-log PATH  log every response in Common Log Format to PATH\n"
            "                         ('-': standard output); off by default\n"
            "  -h, --help             show this help and exit\n"
            "  -V, --version          show the version and exit\n"
            "\n"
            "Stop with Ctrl-C (SIGINT) or SIGTERM: eddy stops accepting, lets open\n"
            "connections finish (HTTP keep-alive ones get 'Connection: close'; idle ones\n"
            "may send one more request within 1 s), closes what is left after\n"
            "--drain-timeout, and exits 0. A second signal closes everything at once.\n"
            "\n"
            "Restart with SIGUSR2 (or eddy --upgrade): eddy starts a new copy of itself\n"
            "that inherits the listening sockets, and once it is ready, drains as above.\n"
            "Listening sockets passed by systemd (LISTEN_FDS) are used instead of binding.\n");
}

static int __attribute__((format(printf, 3, 4))) fail(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return -1;
}

static int parse_number(const char *opt, const char *text, uint64_t min, uint64_t max,
                        uint64_t *out, char *err, size_t size)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end || errno || v < min || v > max)
        return fail(err, size, "%s: '%s' is not a number from %llu to %llu", opt, text,
                    (unsigned long long)min, (unsigned long long)max);
    *out = v;
    return 0;
}

/* A timeout given in whole seconds, from 1 to max, kept in milliseconds. */
static int parse_timeout(const char *opt, const char *text, uint64_t max, uint64_t *ms, char *err,
                         size_t size)
{
    uint64_t v;
    if (parse_number(opt, text, 1, max, &v, err, size))
        return -1;
    *ms = 1000 * v;
    return 0;
}

static int make_address(struct eddy_addr *addr, const char *host, const char *port, char *err,
                        size_t size)
{
    char text[300];
    if (strchr(host, ':'))
        snprintf(text, sizeof text, "[%s]:%s", host, port);
    else
        snprintf(text, sizeof text, "%s:%s", host, port);
    if (eddy_addr_parse(addr, text) < 0)
        return fail(err, size,
                    "'%s' is not a valid address (want a numeric IPv4 or IPv6 address, or "
                    "localhost, and a port from 0 to 65535)",
                    text);
    return 0;
}

/* Turns the positional arguments into service specs. */
static int parse_services(struct options *o, char *const *args, int nargs, char *err, size_t size)
{
    size_t without_address = 0;
    char port[8];
    o->nservices = 0;
    for (int i = 0; i < nargs; i++) {
        if (o->nservices == OPTIONS_MAX_SERVICES)
            return fail(err, size, "too many services (at most %d)", OPTIONS_MAX_SERVICES);
        struct service_spec *sp = &o->services[o->nservices];
        /* argv is left as it is, so ps shows the command line as typed. */
        const char *eq = strchr(args[i], '=');
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)(eq ? (size_t)(eq - args[i]) : strlen(args[i])),
                 args[i]);
        sp->svc = svc_find(name);
        if (!sp->svc)
            return fail(err, size, "unknown service '%s' (see 'eddy --help' for the list)", name);
        int rc = 0;
        if (!eq) {
            without_address++;
            snprintf(port, sizeof port, "%u", sp->svc->default_port);
            rc = make_address(&sp->addr, o->host, o->port ? o->port : port, err, size);
        } else if (eq[1] && strspn(eq + 1, "0123456789") == strlen(eq + 1)) {
            rc = make_address(&sp->addr, o->host, eq + 1, err, size);
        } else if (eddy_addr_parse(&sp->addr, eq + 1) < 0) {
            rc = fail(err, size,
                      "%s: '%s' is not a valid address (want HOST:PORT, [IPV6]:PORT, "
                      "unix:/PATH or PORT)",
                      name, eq + 1);
        }
        if (rc)
            return rc;
        o->nservices++;
    }
    if (o->nservices == 0) {
        if (o->port)
            return fail(err, size, "--port needs exactly one service, e.g. 'eddy time --port %s'",
                        o->port);
        for (size_t i = 0; i < sizeof default_set / sizeof default_set[0]; i++) {
            struct service_spec *sp = &o->services[o->nservices++];
            sp->svc = default_set[i];
            snprintf(port, sizeof port, "%u", sp->svc->default_port);
            if (make_address(&sp->addr, o->host, port, err, size))
                return -1;
        }
    } else if (o->port && without_address != 1) {
        return fail(err, size,
                    "--port applies to exactly one service given without an address; "
                    "%zu were given",
                    without_address);
    }
    return 0;
}

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
    OPT_BODY_TIMEOUT,
    OPT_SEND_TIMEOUT,
    OPT_KEEPALIVE_TIMEOUT,
    OPT_ACCESS_LOG,
    OPT_MAX_CONNS,
    OPT_MAX_LINE,
    OPT_MAX_HEADER_BYTES,
    OPT_MAX_HEADERS,
    OPT_DRAIN,
    OPT_USER,
    OPT_CPU_AFFINITY,
    OPT_PID_FILE,
    OPT_UPGRADE,
    OPT_UPGRADE_TIMEOUT,
};

static const struct option long_options[] = {
    {"host", required_argument, NULL, 'H'},
    {"port", required_argument, NULL, 'p'},
    {"trigger", required_argument, NULL, 't'},
    {"log-level", required_argument, NULL, 'l'},
    {"workers", required_argument, NULL, 'w'},
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
    {"body-timeout", required_argument, NULL, OPT_BODY_TIMEOUT},
    {"send-timeout", required_argument, NULL, OPT_SEND_TIMEOUT},
    {"keepalive-timeout", required_argument, NULL, OPT_KEEPALIVE_TIMEOUT},
    {"access-log", required_argument, NULL, OPT_ACCESS_LOG},
    {"max-connections", required_argument, NULL, OPT_MAX_CONNS},
    {"max-request-line", required_argument, NULL, OPT_MAX_LINE},
    {"max-header-bytes", required_argument, NULL, OPT_MAX_HEADER_BYTES},
    {"max-headers", required_argument, NULL, OPT_MAX_HEADERS},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN},
    {"user", required_argument, NULL, OPT_USER},
    {"cpu-affinity", no_argument, NULL, OPT_CPU_AFFINITY},
    {"pid-file", required_argument, NULL, OPT_PID_FILE},
    {"upgrade", no_argument, NULL, OPT_UPGRADE},
    {"upgrade-timeout", required_argument, NULL, OPT_UPGRADE_TIMEOUT},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* One option and its value (optarg). Returns 0 or -1 with err set. */
static int apply(struct options *o, int opt, const char *arg, char *err, size_t size)
{
    uint64_t v;
    struct eddy_http_limits *limits = &o->http.http.limits;
    switch (opt) {
    case 'H':
        o->host = arg;
        return 0;
    case 'p':
        if (parse_number("--port", arg, 0, 65535, &v, err, size))
            return -1;
        o->port = arg;
        return 0;
    case 't':
        if (strcmp(arg, "level") != 0 && strcmp(arg, "edge") != 0)
            return fail(err, size, "--trigger: '%s' is not 'level' or 'edge'", arg);
        o->edge = strcmp(arg, "edge") == 0;
        return 0;
    case 'l': {
        int level = log_level_parse(arg);
        if (level < 0)
            return fail(err, size, "--log-level: '%s' is not debug, info, warning or error", arg);
        o->level = (enum log_level)level;
        return 0;
    }
    case 'w':
        if (parse_number("--workers", arg, 1, OPTIONS_MAX_WORKERS, &v, err, size))
            return -1;
        o->workers = (unsigned)v;
        return 0;
    case OPT_TRACE:
        o->trace = true;
        return 0;
    case OPT_READ_SIZE:
        return parse_number("--read-size", arg, 1, 1 << 20, &o->read_size, err, size);
    case OPT_IDLE:
        return parse_number("--idle-timeout", arg, 0, 86400 * 365, &o->idle_s, err, size);
    case OPT_BACKLOG:
        return parse_number("--backlog", arg, 1, 65535, &o->backlog, err, size);
    case OPT_REUSEPORT:
        o->reuseport = true;
        return 0;
    case OPT_BODY:
        o->http.body = arg;
        return 0;
    case OPT_TYPE:
        if (!*arg || strpbrk(arg, "\r\n"))
            return fail(err, size, "--content-type: '%s' is not a media type", arg);
        o->http.content_type = arg;
        return 0;
    case OPT_ROOT:
        o->http.root = arg;
        return 0;
    case OPT_LISTING:
        o->http.listing = true;
        return 0;
    case OPT_MAX_BODY:
        return parse_number("--max-body", arg, 1, (uint64_t)1 << 30, &limits->max_body, err, size);
    case OPT_HEADER_TIMEOUT:
        return parse_timeout("--header-timeout", arg, 3600, &o->http.http.header_timeout_ms, err,
                             size);
    case OPT_BODY_TIMEOUT:
        return parse_timeout("--body-timeout", arg, 3600, &o->http.http.body_timeout_ms, err, size);
    case OPT_SEND_TIMEOUT:
        return parse_timeout("--send-timeout", arg, 3600, &o->http.http.write_timeout_ms, err,
                             size);
    case OPT_KEEPALIVE_TIMEOUT:
        return parse_timeout("--keepalive-timeout", arg, 86400, &o->http.http.keepalive_timeout_ms,
                             err, size);
    case OPT_ACCESS_LOG:
        o->access_log = arg;
        return 0;
    case OPT_MAX_LINE:
        if (parse_number("--max-request-line", arg, 64, 1 << 20, &v, err, size))
            return -1;
        limits->max_request_line = v;
        return 0;
    case OPT_MAX_HEADER_BYTES:
        if (parse_number("--max-header-bytes", arg, 64, 1 << 20, &v, err, size))
            return -1;
        limits->max_header_bytes = v;
        return 0;
    case OPT_MAX_HEADERS:
        if (parse_number("--max-headers", arg, 1, EDDY_HTTP_MAX_HEADERS, &v, err, size))
            return -1;
        limits->max_headers = v;
        return 0;
    case OPT_MAX_CONNS:
        return parse_number("--max-connections", arg, 0, 100000000, &o->max_conns, err, size);
    case OPT_DRAIN:
        return parse_number("--drain-timeout", arg, 0, 86400, &o->drain_s, err, size);
    case OPT_USER:
        if (!*arg || strlen(arg) > 255)
            return fail(err, size, "--user: '%s' is not a user name", arg);
        o->user = arg;
        return 0;
    case OPT_CPU_AFFINITY:
        o->cpu_affinity = true;
        return 0;
    case OPT_PID_FILE:
        if (!*arg)
            return fail(err, size, "--pid-file: the path is empty");
        o->pid_file = arg;
        return 0;
    case OPT_UPGRADE:
        o->action = OPTIONS_UPGRADE;
        return 0;
    case OPT_UPGRADE_TIMEOUT:
        return parse_number("--upgrade-timeout", arg, 1, 3600, &o->upgrade_timeout_s, err, size);
    }
    return 0;
}

int options_parse(struct options *o, int argc, char **argv, char *err, size_t size)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->level = LOG_INFO;
    o->read_size = 16384;
    o->idle_s = 300;
    o->backlog = 511;
    o->drain_s = 10;
    o->upgrade_timeout_s = 30;
    /* optind 0 makes glibc's getopt start over, so the parser can run
     * again (the fuzzer calls it once per input). opterr 0: the messages
     * are ours, returned instead of printed. */
    optind = 0;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":H:p:t:l:w:hV", long_options, NULL)) != -1) {
        switch (opt) {
        /* --help and --version answer at once, whatever follows them. */
        case 'h':
            o->action = OPTIONS_HELP;
            return 0;
        case 'V':
            o->action = OPTIONS_VERSION;
            return 0;
        case ':':
            return fail(err, size, "option '%s' needs a value", argv[optind - 1]);
        case '?':
            return fail(err, size, "unknown option '%s'", argv[optind - 1]);
        default:
            if (apply(o, opt, optarg, err, size))
                return -1;
        }
    }
    if (o->action == OPTIONS_UPGRADE) {
        if (!o->pid_file)
            return fail(err, size, "--upgrade needs --pid-file PATH (the running eddy's)");
        if (optind < argc)
            return fail(err, size, "--upgrade takes no services; the running eddy keeps its own");
        return 0;
    }
    /* --trigger and --read-size hold for every connection, HTTP ones too. */
    o->http.http.edge = o->edge;
    o->http.http.read_size = (size_t)o->read_size;
    return parse_services(o, argv + optind, argc - optind, err, size);
}
