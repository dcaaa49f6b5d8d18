/* The access log of the HTTP services: Common Log Format lines, buffered
 * in memory and written once a second (or when the buffer fills) through a
 * non-blocking file description, so a slow disk or a stalled pipe reader
 * never blocks the event loop: when the buffer is full, lines are dropped
 * and counted instead. */
#ifndef EDDY_CMD_ACCESS_LOG_H
#define EDDY_CMD_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "eddy/loop.h"

#define ACCESS_LOG_BUFFER (64 * 1024)

struct access_log {
    int fd;
    size_t len;
    uint64_t dropped;
    struct eddy_timer flush;
    char buf[ACCESS_LOG_BUFFER];
};

/* Opens path for appending ("-": standard output). Returns 0 or -errno. */
int access_log_open(struct access_log *al, struct eddy_loop *loop, const char *path);

/* Appends one line (a newline is added). Matches svc_ctx.access_log. */
void access_log_write(void *arg, const char *line, size_t len);

/* Writes what is buffered (as far as the fd takes it) and closes. */
void access_log_close(struct access_log *al);

#endif
