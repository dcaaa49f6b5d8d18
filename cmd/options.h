/* eddy's command line, parsed into a struct options. The parser never
 * prints and never exits: it returns an error message for main to print
 * (with exit status 2), so it can run under a fuzzer. */
#ifndef EDDY_CMD_OPTIONS_H
#define EDDY_CMD_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "eddy/tcp.h"
#include "log.h"
#include "service.h"

#define OPTIONS_MAX_SERVICES 64
#define OPTIONS_MAX_WORKERS  1024

/* One SERVICE[=ADDRESS] argument. */
struct service_spec {
    const struct svc_service *svc;
    struct eddy_addr addr;
};

enum options_action {
    OPTIONS_RUN = 0,
    OPTIONS_HELP,    /* --help: print options_usage() and exit 0 */
    OPTIONS_VERSION, /* --version */
    OPTIONS_UPGRADE, /* --upgrade: ask the eddy in --pid-file to restart */
};

struct options {
    enum options_action action;
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
    unsigned workers; /* 0: one per CPU the process may run on */
    bool cpu_affinity;
    const char *pid_file;
    uint64_t upgrade_timeout_s;
    size_t nservices;
    struct service_spec services[OPTIONS_MAX_SERVICES];
};

/* Parses argv (getopt_long: argv may be permuted; the strings are kept,
 * not copied). Returns 0, or -1 with a one-line message in err (without
 * the "eddy: " prefix). Safe to call any number of times. */
int options_parse(struct options *o, int argc, char **argv, char *err, size_t size);

/* The --help text. */
void options_usage(FILE *out);

#endif
