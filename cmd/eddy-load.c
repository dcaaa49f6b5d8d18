/* eddy-load: a load generator on eddy's own event loop, for the protocols
 * eddy serves: echo, HTTP, and any request with a fixed reply length.
 *
 *   eddy-load http 127.0.0.1:8080 -c 100 -d 10
 *   eddy-load http://127.0.0.1:8080/ -c 100 -n 100000 -P 16 --json
 *   eddy-load echo 127.0.0.1:8888 -s 512 -R 20000 -t 2
 *   eddy-load fixed 127.0.0.1:9090 --request Now --reply-bytes 26 --new-conn
 *
 * This file is the program: options, threads (one event loop each, see
 * eddy-load-worker.c), the progress line and the report.
 *
 * Exit status: 0 when every request was answered correctly, 1 when any
 * error was counted (a reply that failed verification, a connection that
 * failed), 2 for bad arguments. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "eddy-load.h"

#define MAX_HEADERS        32
#define MAX_THREADS        256
#define MAX_CONNS          1000000
#define MAX_DEPTH          4096
#define MAX_MESSAGE        (16u << 20)
#define DEFAULT_SECS       10
#define DEFAULT_CONNS      10
#define DEFAULT_SIZE       64
#define DEFAULT_TIMEOUT_MS 5000

static const char *const mode_names[] = {"echo", "http", "fixed"};

/* Names in the report and in --json, in enum load_error order. */
static const char *const error_names[ERR_KINDS] = {
    "refused", "connect", "reset", "eof", "timeout", "mismatch", "status", "framing",
};

struct options {
    struct load_config cfg;
    const char *path;
    const char *host;
    const char *headers[MAX_HEADERS];
    unsigned nheaders;
    bool http10;
    bool json;
    bool have_request;
    /* Which mode-specific options were given, to refuse them elsewhere. */
    const char *echo_opt;
    const char *http_opt;
    const char *fixed_opt;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: eddy-load [OPTIONS] MODE ADDRESS\n"
            "       eddy-load [OPTIONS] http://HOST:PORT[/PATH]\n"
            "\n"
            "Sends requests over many connections from one event loop per thread,\n"
            "verifies every reply, and reports throughput and latency percentiles.\n"
            "\n"
            "MODE:\n"
            "  echo    send SIZE-byte messages; each must come back byte for byte\n"
            "  http    GET PATH; each response must be 2xx and correctly framed\n"
            "  fixed   send the --request bytes; each reply is --reply-bytes long\n"
            "ADDRESS is HOST:PORT (numeric IPv4 or localhost), [IPV6]:PORT or unix:/PATH.\n"
            "\n"
            "Load:\n"
            "  -c, --connections N   connections in total (default %d)\n"
            "  -t, --threads N       threads, each with its own event loop; connections\n"
            "                        are spread over them (default 1)\n"
            "  -d, --duration T      measure for T (default %d s unless -n is given);\n"
            "                        T is seconds, or a number with ms, s or m\n"
            "  -n, --requests N      stop after N requests (answered or failed)\n"
            "  -P, --pipeline N      requests sent together per connection: the next N\n"
            "                        go when all N replies are in, as redis-benchmark -P\n"
            "                        does (default 1); with --rate, at most N in flight\n"
            "  -R, --rate N          open loop: N requests/s in total, sent at fixed\n"
            "                        intervals whether or not replies have come; latency\n"
            "                        counts from when each request was due (default: closed\n"
            "                        loop, new requests as soon as the replies arrive)\n"
            "      --new-conn        a new connection for every request (http: with\n"
            "                        Connection: close)\n"
            "      --warmup T        run T before measuring (errors are still counted)\n"
            "      --timeout T       a reply (or connect) that takes longer is an error and\n"
            "                        its connection is replaced (default 5 s)\n"
            "      --source-addrs A[-B]  spread connections over the local IPv4 addresses\n"
            "                        A to B, e.g. 127.0.0.2-50 or 127.0.0.2-127.0.1.1, to get\n"
            "                        past the ephemeral ports of one address\n"
            "\n"
            "echo:\n"
            "  -s, --size N          bytes per message (default %d)\n"
            "http:\n"
            "      --path PATH       request target (default /)\n"
            "      --host NAME       Host header (default: ADDRESS)\n"
            "  -H, --header 'N: V'   an extra request header (repeatable)\n"
            "      --http10          send HTTP/1.0 requests (keep-alive asked for unless\n"
            "                        --new-conn)\n"
            "fixed:\n"
            "  -r, --request TEXT    the request, with escapes \\r \\n \\t \\\\ \\0 \\xHH\n"
            "      --request-file F  the request, from a file\n"
            "  -k, --reply-bytes N   the length of every reply\n"
            "\n"
            "Output:\n"
            "      --json            print the summary as one JSON object\n"
            "  -h, --help            show this help and exit\n"
            "  -V, --version         show the version and exit\n"
            "\n"
            "A live progress line is shown while standard output is a terminal.\n"
            "Exit status: 0 when every request got a correct reply, 1 when any error was\n"
            "counted (refused or failed connections, resets, timeouts, wrong replies,\n"
            "non-2xx statuses), 2 for bad arguments.\n",
            DEFAULT_CONNS, DEFAULT_SECS, DEFAULT_SIZE);
}

static void __attribute__((noreturn, format(printf, 1, 2))) bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("eddy-load: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'eddy-load --help'.\n", stderr);
    exit(2);
}

static uint64_t parse_number(const char *opt, const char *text, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-' || v < min || v > max)
        bad_usage("%s: '%s' is not a whole number from %llu to %llu", opt, text,
                  (unsigned long long)min, (unsigned long long)max);
    return v;
}

/* "10", "2.5", "10s", "500ms", "2m": nanoseconds. */
static uint64_t parse_time(const char *opt, const char *text, bool zero_ok)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    double scale = 0; /* 0: not a unit */
    if (!*end || strcmp(end, "s") == 0)
        scale = 1e9;
    else if (strcmp(end, "ms") == 0)
        scale = 1e6;
    else if (strcmp(end, "m") == 0)
        scale = 60e9;
    double ns = v * scale;
    if (errno || end == text || !scale || !isfinite(v) || v < 0 || (!zero_ok && ns < 1e6) ||
        ns > 86400e9)
        bad_usage("%s: '%s' is not a time from %s to 24 hours (e.g. 10, 2.5s, 500ms, 2m)", opt,
                  text, zero_ok ? "0" : "1 ms");
    return (uint64_t)ns;
}

static double parse_rate(const char *opt, const char *text)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || v < 0.01 || v > 1e9)
        bad_usage("%s: '%s' is not a rate from 0.01 to 1e9 requests/s", opt, text);
    return v;
}

static void parse_target(struct load_config *cfg, const char *text)
{
    if (eddy_addr_parse(&cfg->target, text) < 0)
        bad_usage("'%s' is not a valid address (want HOST:PORT with a numeric IPv4 address or "
                  "localhost, [IPV6]:PORT or unix:/PATH)",
                  text);
    if (cfg->target.ss.ss_family != AF_UNIX &&
        ((struct sockaddr_in *)&cfg->target.ss)->sin_port == 0)
        bad_usage("'%s': port 0 cannot be connected to", text);
    eddy_addr_format(&cfg->target, cfg->target_text, sizeof cfg->target_text);
}

/* http://HOST[:PORT][/PATH]: mode http. */
static void parse_url(struct options *o, const char *url)
{
    const char *rest = url + strlen("http://");
    const char *slash = strchr(rest, '/');
    size_t hostlen = slash ? (size_t)(slash - rest) : strlen(rest);
    char hostport[300];
    if (hostlen == 0 || hostlen >= sizeof hostport - 4)
        bad_usage("'%s' is not a valid URL", url);
    memcpy(hostport, rest, hostlen);
    hostport[hostlen] = 0;
    /* No port: 80 (a ':' after the last ']' of an IPv6 literal is a port). */
    const char *bracket = strrchr(hostport, ']');
    if (!strchr(bracket ? bracket : hostport, ':'))
        strcat(hostport, ":80");
    parse_target(&o->cfg, hostport);
    o->cfg.mode = MODE_HTTP;
    if (slash && !o->path)
        o->path = slash;
}

/* --request TEXT: C-like escapes, so CR LF can be typed. */
static void parse_escapes(struct load_config *cfg, const char *text)
{
    size_t n = strlen(text);
    char *out = malloc(n + 1);
    size_t len = 0;
    if (!out)
        bad_usage("out of memory");
    for (size_t i = 0; i < n; i++) {
        if (text[i] != '\\') {
            out[len++] = text[i];
            continue;
        }
        char e = text[++i];
        switch (e) {
        case 'r':
            out[len++] = '\r';
            break;
        case 'n':
            out[len++] = '\n';
            break;
        case 't':
            out[len++] = '\t';
            break;
        case '0':
            out[len++] = '\0';
            break;
        case '\\':
            out[len++] = '\\';
            break;
        case 'x': {
            unsigned v;
            int used;
            if (sscanf(text + i + 1, "%2x%n", &v, &used) != 1 || used != 2)
                bad_usage("--request: '\\x' needs two hex digits");
            out[len++] = (char)v;
            i += 2;
            break;
        }
        default:
            bad_usage("--request: unknown escape '\\%c' (use \\r \\n \\t \\\\ \\0 \\xHH)",
                      e ? e : ' ');
        }
    }
    cfg->request = out;
    cfg->request_len = len;
}

static void read_request_file(struct load_config *cfg, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        bad_usage("--request-file: cannot open '%s': %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            bad_usage("--request-file: out of memory");
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        if (cap >= MAX_MESSAGE)
            bad_usage("--request-file: '%s' is larger than %u bytes", path, MAX_MESSAGE);
        cap *= 2;
        buf = realloc(buf, cap);
    }
    if (ferror(f))
        bad_usage("--request-file: cannot read '%s'", path);
    fclose(f);
    cfg->request = buf;
    cfg->request_len = len;
}

/* "A" or "A-B" (B a whole IPv4 address, or only its last number). */
static void parse_sources(struct load_config *cfg, const char *text)
{
    char first[INET_ADDRSTRLEN], last[INET_ADDRSTRLEN];
    const char *dash = strchr(text, '-');
    size_t n = dash ? (size_t)(dash - text) : strlen(text);
    struct in_addr a, b;
    if (n >= sizeof first)
        goto bad;
    memcpy(first, text, n);
    first[n] = 0;
    if (inet_pton(AF_INET, first, &a) != 1)
        goto bad;
    b = a;
    if (dash) {
        const char *tail = dash + 1;
        if (strchr(tail, '.')) {
            if (strlen(tail) >= sizeof last || inet_pton(AF_INET, strcpy(last, tail), &b) != 1)
                goto bad;
        } else {
            uint32_t octet = (uint32_t)parse_number("--source-addrs", tail, 0, 255);
            b.s_addr = htonl((ntohl(a.s_addr) & ~0xffu) | octet);
        }
    }
    if (ntohl(b.s_addr) < ntohl(a.s_addr))
        bad_usage("--source-addrs: '%s' ends before it starts", text);
    cfg->src_first = ntohl(a.s_addr);
    cfg->src_count = ntohl(b.s_addr) - ntohl(a.s_addr) + 1;
    return;
bad:
    bad_usage("--source-addrs: '%s' is not an IPv4 address or range (e.g. 127.0.0.2-50)", text);
}

static void build_http_request(struct options *o)
{
    struct load_config *cfg = &o->cfg;
    char host[EDDY_ADDR_STRLEN];
    if (o->host)
        snprintf(host, sizeof host, "%s", o->host);
    else if (cfg->target.ss.ss_family == AF_UNIX)
        snprintf(host, sizeof host, "localhost");
    else
        snprintf(host, sizeof host, "%s", cfg->target_text);
    size_t cap = 256 + strlen(o->path) + strlen(host);
    for (unsigned i = 0; i < o->nheaders; i++)
        cap += strlen(o->headers[i]) + 2;
    char *req = malloc(cap);
    if (!req)
        bad_usage("out of memory");
    int len = snprintf(req, cap, "GET %s HTTP/1.%c\r\nHost: %s\r\n", o->path, o->http10 ? '0' : '1',
                       host);
    for (unsigned i = 0; i < o->nheaders; i++)
        len += snprintf(req + len, cap - (size_t)len, "%s\r\n", o->headers[i]);
    if (cfg->new_conn && !o->http10)
        len += snprintf(req + len, cap - (size_t)len, "Connection: close\r\n");
    else if (!cfg->new_conn && o->http10)
        len += snprintf(req + len, cap - (size_t)len, "Connection: keep-alive\r\n");
    len += snprintf(req + len, cap - (size_t)len, "\r\n");
    cfg->request = req;
    cfg->request_len = (size_t)len;
}

static void parse_args(int argc, char **argv, struct options *o)
{
    enum {
        OPT_PATH = 256,
        OPT_HOST,
        OPT_HTTP10,
        OPT_REQUEST_FILE,
        OPT_NEW_CONN,
        OPT_WARMUP,
        OPT_TIMEOUT,
        OPT_SOURCES,
        OPT_JSON,
    };
    static const struct option options[] = {
        {"connections", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'},
        {"duration", required_argument, NULL, 'd'},
        {"requests", required_argument, NULL, 'n'},
        {"pipeline", required_argument, NULL, 'P'},
        {"rate", required_argument, NULL, 'R'},
        {"size", required_argument, NULL, 's'},
        {"path", required_argument, NULL, OPT_PATH},
        {"host", required_argument, NULL, OPT_HOST},
        {"header", required_argument, NULL, 'H'},
        {"http10", no_argument, NULL, OPT_HTTP10},
        {"request", required_argument, NULL, 'r'},
        {"request-file", required_argument, NULL, OPT_REQUEST_FILE},
        {"reply-bytes", required_argument, NULL, 'k'},
        {"new-conn", no_argument, NULL, OPT_NEW_CONN},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"source-addrs", required_argument, NULL, OPT_SOURCES},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct load_config *cfg = &o->cfg;
    bool have_duration = false;
    cfg->conns = DEFAULT_CONNS;
    cfg->threads = 1;
    cfg->depth = 1;
    cfg->size = DEFAULT_SIZE;
    cfg->timeout_ms = DEFAULT_TIMEOUT_MS;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":c:t:d:n:P:R:s:H:r:k:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            cfg->conns = (unsigned)parse_number("--connections", optarg, 1, MAX_CONNS);
            break;
        case 't':
            cfg->threads = (unsigned)parse_number("--threads", optarg, 1, MAX_THREADS);
            break;
        case 'd':
            cfg->duration_ns = parse_time("--duration", optarg, false);
            have_duration = true;
            break;
        case 'n':
            cfg->requests = parse_number("--requests", optarg, 1, (uint64_t)1e12);
            break;
        case 'P':
            cfg->depth = (unsigned)parse_number("--pipeline", optarg, 1, MAX_DEPTH);
            break;
        case 'R':
            cfg->rate = parse_rate("--rate", optarg);
            break;
        case 's':
            cfg->size = parse_number("--size", optarg, 1, MAX_MESSAGE);
            o->echo_opt = "--size";
            break;
        case OPT_PATH:
            if (optarg[0] != '/' && strcmp(optarg, "*") != 0)
                bad_usage("--path: '%s' does not start with '/'", optarg);
            if (strpbrk(optarg, " \r\n"))
                bad_usage("--path: '%s' has a space or line break", optarg);
            o->path = optarg;
            o->http_opt = "--path";
            break;
        case OPT_HOST:
            if (strpbrk(optarg, " \r\n") || !optarg[0])
                bad_usage("--host: '%s' is not a host name", optarg);
            o->host = optarg;
            o->http_opt = "--host";
            break;
        case 'H':
            if (!strchr(optarg, ':') || optarg[0] == ':' || strpbrk(optarg, "\r\n"))
                bad_usage("--header: '%s' is not 'Name: value'", optarg);
            if (o->nheaders == MAX_HEADERS)
                bad_usage("--header: at most %d headers", MAX_HEADERS);
            o->headers[o->nheaders++] = optarg;
            o->http_opt = "--header";
            break;
        case OPT_HTTP10:
            o->http10 = true;
            o->http_opt = "--http10";
            break;
        case 'r':
        case OPT_REQUEST_FILE:
            if (o->have_request)
                bad_usage("give the request once, with --request or --request-file");
            if (opt == 'r')
                parse_escapes(cfg, optarg);
            else
                read_request_file(cfg, optarg);
            o->have_request = true;
            o->fixed_opt = opt == 'r' ? "--request" : "--request-file";
            break;
        case 'k':
            cfg->reply_len = parse_number("--reply-bytes", optarg, 1, MAX_MESSAGE);
            o->fixed_opt = "--reply-bytes";
            break;
        case OPT_NEW_CONN:
            cfg->new_conn = true;
            break;
        case OPT_WARMUP:
            cfg->warmup_ns = parse_time("--warmup", optarg, true);
            break;
        case OPT_TIMEOUT:
            cfg->timeout_ms = parse_time("--timeout", optarg, false) / 1000000;
            break;
        case OPT_SOURCES:
            parse_sources(cfg, optarg);
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            printf("eddy-load %s\n", EDDY_VERSION);
            exit(0);
        case ':':
            bad_usage("option '%s' needs a value", argv[optind - 1]);
        default:
            bad_usage("unknown option '%s'", argv[optind - 1]);
        }
    }

    int nargs = argc - optind;
    char **args = argv + optind;
    if (nargs == 1 && strncmp(args[0], "http://", 7) == 0) {
        parse_url(o, args[0]);
    } else if (nargs == 2) {
        size_t m;
        for (m = 0; m < 3 && strcmp(args[0], mode_names[m]) != 0; m++) {
        }
        if (m == 3)
            bad_usage("unknown mode '%s' (want echo, http or fixed)", args[0]);
        cfg->mode = (enum load_mode)m;
        parse_target(cfg, args[1]);
    } else {
        bad_usage(nargs == 0   ? "missing MODE and ADDRESS"
                  : nargs == 1 ? "missing ADDRESS (or give an http:// URL)"
                               : "too many arguments");
    }

    const char *mode = mode_names[cfg->mode];
    if (cfg->mode != MODE_ECHO && o->echo_opt)
        bad_usage("%s is for echo mode, not %s", o->echo_opt, mode);
    if (cfg->mode != MODE_HTTP && o->http_opt)
        bad_usage("%s is for http mode, not %s", o->http_opt, mode);
    if (cfg->mode != MODE_FIXED && o->fixed_opt)
        bad_usage("%s is for fixed mode, not %s", o->fixed_opt, mode);
    if (cfg->mode == MODE_FIXED && (!o->have_request || !cfg->reply_len))
        bad_usage("fixed mode needs --request (or --request-file) and --reply-bytes");
    if (cfg->new_conn && cfg->depth > 1)
        bad_usage("--pipeline cannot be used with --new-conn (one request per connection)");
    if (cfg->src_count && cfg->target.ss.ss_family != AF_INET)
        bad_usage("--source-addrs needs an IPv4 target");
    if (cfg->threads > cfg->conns)
        cfg->threads = cfg->conns;
    if (!cfg->requests && !have_duration)
        cfg->duration_ns = (uint64_t)DEFAULT_SECS * 1000000000u;
    if (cfg->mode == MODE_HTTP) {
        if (!o->path)
            o->path = "/";
        build_http_request(o);
    }
}

/* ---- figures ------------------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct totals {
    uint64_t ok, failed, errors[ERR_KINDS], error_total;
    uint64_t bytes_sent, bytes_received, connects, unsent, status[6];
    struct hist latency;
    double seconds;
    const char *first_error;
};

static void sum_up(const struct load_worker *ws, unsigned n, uint64_t measure_ns, struct totals *t)
{
    memset(t, 0, sizeof *t);
    hist_init(&t->latency);
    uint64_t end = measure_ns, first_ns = UINT64_MAX;
    for (unsigned i = 0; i < n; i++) {
        const struct load_stats *s = &ws[i].stats;
        t->ok += s->ok;
        t->failed += s->failed;
        for (int k = 0; k < ERR_KINDS; k++)
            t->errors[k] += s->errors[k];
        t->bytes_sent += s->bytes_sent;
        t->bytes_received += s->bytes_received;
        t->connects += s->connects;
        t->unsent += s->unsent;
        for (int k = 0; k < 6; k++)
            t->status[k] += s->status[k];
        hist_merge(&t->latency, &s->latency);
        if (ws[i].end_ns > end)
            end = ws[i].end_ns;
        if (s->first_error[0] && s->first_error_ns < first_ns) {
            first_ns = s->first_error_ns;
            t->first_error = s->first_error;
        }
    }
    for (int k = 0; k < ERR_KINDS; k++)
        t->error_total += t->errors[k];
    t->seconds = (double)(end - measure_ns) / 1e9;
}

static double per_second(uint64_t n, double seconds)
{
    return seconds > 0 ? (double)n / seconds : 0.0;
}

static const char *fmt_latency(uint64_t ns, char *buf, size_t size)
{
    if (ns < 1000000)
        snprintf(buf, size, "%.1fus", (double)ns / 1e3);
    else if (ns < 1000000000)
        snprintf(buf, size, "%.2fms", (double)ns / 1e6);
    else
        snprintf(buf, size, "%.2fs", (double)ns / 1e9);
    return buf;
}

static const char *fmt_bytes(double n, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (n >= 1024 && u < 4) {
        n /= 1024;
        u++;
    }
    snprintf(buf, size, u ? "%.2f %s" : "%.0f %s", n, units[u]);
    return buf;
}

static const char *rate_text(const struct load_config *cfg, char *buf, size_t size)
{
    if (cfg->rate > 0)
        snprintf(buf, size, "open loop at %g req/s", cfg->rate);
    else
        snprintf(buf, size, "closed loop");
    return buf;
}

static void print_text(const struct options *o, const struct totals *t, bool interrupted)
{
    const struct load_config *cfg = &o->cfg;
    char a[32], b[32], c[32], d[32], e[32], f[32], g[32], r[64];
    printf("eddy-load %s %s%s%s: %u connection%s, %u thread%s, pipeline %u, %s%s\n",
           mode_names[cfg->mode], cfg->target_text, cfg->mode == MODE_HTTP ? " " : "",
           cfg->mode == MODE_HTTP ? o->path : "", cfg->conns, cfg->conns == 1 ? "" : "s",
           cfg->threads, cfg->threads == 1 ? "" : "s", cfg->depth, rate_text(cfg, r, sizeof r),
           cfg->new_conn ? ", a new connection per request" : "");
    printf("  duration     %.2f s%s\n", t->seconds, interrupted ? " (interrupted)" : "");
    printf("  requests     %llu ok, %llu failed, %.0f req/s\n", (unsigned long long)t->ok,
           (unsigned long long)t->failed, per_second(t->ok, t->seconds));
    printf("  bytes        sent %s (%s/s), received %s (%s/s)\n",
           fmt_bytes((double)t->bytes_sent, a, sizeof a),
           fmt_bytes(per_second(t->bytes_sent, t->seconds), b, sizeof b),
           fmt_bytes((double)t->bytes_received, c, sizeof c),
           fmt_bytes(per_second(t->bytes_received, t->seconds), d, sizeof d));
    const struct hist *h = &t->latency;
    if (h->count) {
        printf("  latency      p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
               fmt_latency(hist_percentile(h, 50), a, sizeof a),
               fmt_latency(hist_percentile(h, 90), b, sizeof b),
               fmt_latency(hist_percentile(h, 99), c, sizeof c),
               fmt_latency(hist_percentile(h, 99.9), d, sizeof d),
               fmt_latency(h->max, e, sizeof e));
        printf("               mean %s  min %s  (%s)\n",
               fmt_latency((uint64_t)hist_mean(h), f, sizeof f), fmt_latency(h->min, g, sizeof g),
               cfg->rate > 0 ? "from each request's scheduled send time"
                             : "from each request's send time");
    } else {
        printf("  latency      no replies\n");
    }
    if (cfg->mode == MODE_HTTP) {
        printf("  http status ");
        bool any = false;
        for (int k = 1; k < 6; k++) {
            if (t->status[k]) {
                printf(" %dxx %llu", k, (unsigned long long)t->status[k]);
                any = true;
            }
        }
        if (t->status[0])
            printf(" other %llu", (unsigned long long)t->status[0]);
        else if (!any)
            printf(" none");
        printf("\n");
    }
    printf("  connections  %llu opened\n", (unsigned long long)t->connects);
    if (t->unsent)
        printf("  not sent     %llu requests came due but found no connection free: the rate\n"
               "               was not reached (more connections or pipelining may help)\n",
               (unsigned long long)t->unsent);
    if (!t->error_total) {
        printf("  errors       none\n");
        return;
    }
    printf("  errors      ");
    for (int k = 0; k < ERR_KINDS; k++)
        if (t->errors[k])
            printf(" %s %llu", error_names[k], (unsigned long long)t->errors[k]);
    printf("\n  first error  %s\n", t->first_error ? t->first_error : "?");
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void print_json(const struct options *o, const struct totals *t, bool interrupted)
{
    const struct load_config *cfg = &o->cfg;
    const struct hist *h = &t->latency;
    printf("{\"mode\":\"%s\",\"target\":", mode_names[cfg->mode]);
    json_string(cfg->target_text);
    if (cfg->mode == MODE_HTTP) {
        printf(",\"path\":");
        json_string(o->path);
    }
    printf(",\"connections\":%u,\"threads\":%u,\"pipeline\":%u,\"rate\":%g,\"new_conn\":%s",
           cfg->conns, cfg->threads, cfg->depth, cfg->rate, cfg->new_conn ? "true" : "false");
    printf(",\"duration_s\":%.3f,\"interrupted\":%s", t->seconds, interrupted ? "true" : "false");
    printf(",\"requests\":%llu,\"ok\":%llu,\"failed\":%llu,\"requests_per_s\":%.1f",
           (unsigned long long)(t->ok + t->failed), (unsigned long long)t->ok,
           (unsigned long long)t->failed, per_second(t->ok, t->seconds));
    printf(",\"bytes_sent\":%llu,\"bytes_received\":%llu,\"sent_bytes_per_s\":%.1f,"
           "\"received_bytes_per_s\":%.1f",
           (unsigned long long)t->bytes_sent, (unsigned long long)t->bytes_received,
           per_second(t->bytes_sent, t->seconds), per_second(t->bytes_received, t->seconds));
    printf(",\"latency_us\":{\"count\":%llu,\"min\":%.1f,\"mean\":%.1f,\"p50\":%.1f,\"p90\":%.1f,"
           "\"p99\":%.1f,\"p99_9\":%.1f,\"max\":%.1f}",
           (unsigned long long)h->count, h->count ? (double)h->min / 1e3 : 0.0, hist_mean(h) / 1e3,
           (double)hist_percentile(h, 50) / 1e3, (double)hist_percentile(h, 90) / 1e3,
           (double)hist_percentile(h, 99) / 1e3, (double)hist_percentile(h, 99.9) / 1e3,
           (double)h->max / 1e3);
    printf(",\"connects\":%llu,\"unsent\":%llu", (unsigned long long)t->connects,
           (unsigned long long)t->unsent);
    if (cfg->mode == MODE_HTTP) {
        printf(",\"http_status\":{");
        for (int k = 1; k < 6; k++)
            printf("\"%dxx\":%llu,", k, (unsigned long long)t->status[k]);
        printf("\"other\":%llu}", (unsigned long long)t->status[0]);
    }
    printf(",\"errors\":{");
    for (int k = 0; k < ERR_KINDS; k++)
        printf("%s\"%s\":%llu", k ? "," : "", error_names[k], (unsigned long long)t->errors[k]);
    printf("},\"errors_total\":%llu,\"first_error\":", (unsigned long long)t->error_total);
    if (t->first_error)
        json_string(t->first_error);
    else
        printf("null");
    printf("}\n");
}

/* ---- running ----------------------------------------------------------------- */

struct run {
    struct options *o;
    struct load_worker *ws;
    unsigned n;
    struct eddy_loop *loop;
    struct eddy_signal sigint, sigterm;
    struct eddy_timer progress;
    struct eddy_async done;
    uint64_t start_ns;
    uint64_t last_ok;
    uint64_t last_ns;
    bool interrupted;
    bool tty;
};

static void on_worker_done(struct eddy_async *a)
{
    struct run *r = a->data;
    for (unsigned i = 0; i < r->n; i++)
        if (!__atomic_load_n(&r->ws[i].finished, __ATOMIC_ACQUIRE))
            return;
    eddy_loop_stop(r->loop);
}

static void on_signal(struct eddy_signal *sig, int signum)
{
    (void)signum;
    struct run *r = sig->data;
    if (r->interrupted)
        return;
    r->interrupted = true;
    for (unsigned i = 0; i < r->n; i++)
        load_worker_stop(&r->ws[i]);
}

static void on_progress(struct eddy_timer *t)
{
    struct run *r = t->data;
    const struct load_config *cfg = &r->o->cfg;
    uint64_t now = now_ns(), ok = 0, failed = 0, errors = 0;
    for (unsigned i = 0; i < r->n; i++) {
        const struct load_stats *s = &r->ws[i].stats;
        ok += load_read(&s->ok);
        failed += load_read(&s->failed);
        for (int k = 0; k < ERR_KINDS; k++)
            errors += load_read(&s->errors[k]);
    }
    double since = (double)(now - r->last_ns) / 1e9;
    double elapsed = (double)(now - r->start_ns) / 1e9;
    printf("\r[%5.0fs] %s%llu ok  %llu failed  %.0f req/s  %llu errors\033[K", elapsed,
           now < r->start_ns + cfg->warmup_ns ? "warming up  " : "", (unsigned long long)ok,
           (unsigned long long)failed, since > 0 ? (double)(ok - r->last_ok) / since : 0.0,
           (unsigned long long)errors);
    fflush(stdout);
    r->last_ok = ok;
    r->last_ns = now;
}

/* Each thread gets its share of the connections, and of the requests and
 * the rate in proportion to its connections. */
static void split(const struct load_config *cfg, struct load_worker *ws)
{
    unsigned before = 0;
    for (unsigned i = 0; i < cfg->threads; i++) {
        struct load_worker *w = &ws[i];
        w->cfg = cfg;
        w->index = i;
        w->conns = cfg->conns / cfg->threads + (i < cfg->conns % cfg->threads);
        uint64_t upto = cfg->requests * (before + w->conns) / cfg->conns;
        w->requests = upto - cfg->requests * before / cfg->conns;
        w->rate = cfg->rate * w->conns / cfg->conns;
        before += w->conns;
    }
}

/* Many connections need many descriptors: raise the soft limit as far as
 * the hard one allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void die(const char *what, int err)
{
    fprintf(stderr, "eddy-load: %s: %s\n", what, eddy_strerror(err));
    exit(1);
}

int main(int argc, char **argv)
{
    struct options o = {0};
    parse_args(argc, argv, &o);
    const struct load_config *cfg = &o.cfg;
    raise_fd_limit();

    struct run r = {.o = &o, .n = cfg->threads, .tty = isatty(STDOUT_FILENO) == 1};
    r.ws = calloc(r.n, sizeof *r.ws);
    if (!r.ws)
        die("threads", -ENOMEM);
    split(cfg, r.ws);
    int err = eddy_loop_new(&r.loop);
    if (err)
        die("event loop", err);

    /* Block the stop signals before the threads exist, so they inherit the
     * mask and only the main loop's signalfd sees them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    eddy_signal_init(r.loop, &r.sigint);
    eddy_signal_init(r.loop, &r.sigterm);
    r.sigint.data = r.sigterm.data = &r;
    if ((err = eddy_signal_start(&r.sigint, on_signal, SIGINT)) < 0 ||
        (err = eddy_signal_start(&r.sigterm, on_signal, SIGTERM)) < 0)
        die("signals", err);
    r.done.data = &r;
    eddy_async_start(r.loop, &r.done, on_worker_done);

    for (unsigned i = 0; i < r.n; i++) {
        r.ws[i].done = &r.done;
        if ((err = load_worker_init(&r.ws[i])) < 0)
            die("setting up a thread", err);
    }
    r.start_ns = r.last_ns = now_ns();
    for (unsigned i = 0; i < r.n; i++) {
        r.ws[i].start_ns = r.start_ns;
        if ((err = pthread_create(&r.ws[i].thread, NULL, load_worker_main, &r.ws[i])) != 0)
            die("starting a thread", -err);
    }
    eddy_timer_init(r.loop, &r.progress);
    r.progress.data = &r;
    if (r.tty)
        eddy_timer_start(&r.progress, on_progress, 1000, 1000);

    eddy_loop_run(r.loop, EDDY_RUN_DEFAULT);
    for (unsigned i = 0; i < r.n; i++)
        pthread_join(r.ws[i].thread, NULL);
    if (r.tty) {
        printf("\r\033[K");
        fflush(stdout);
    }

    struct totals t;
    sum_up(r.ws, r.n, r.start_ns + cfg->warmup_ns, &t);
    if (o.json)
        print_json(&o, &t, r.interrupted);
    else
        print_text(&o, &t, r.interrupted);
    fflush(stdout);

    eddy_timer_stop(&r.progress);
    eddy_signal_stop(&r.sigint);
    eddy_signal_stop(&r.sigterm);
    eddy_async_stop(&r.done);
    for (unsigned i = 0; i < r.n; i++)
        load_worker_free(&r.ws[i]);
    eddy_loop_free(r.loop);
    free(r.ws);
    free(o.cfg.request);
    return t.error_total ? 1 : 0;
}
