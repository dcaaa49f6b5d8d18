/* The access log of the HTTP services: Common Log Format lines, buffered
 * in memory and written once a second (or when the buffer fills) through a
 * non-blocking file description, so a slow disk or a stalled pipe reader
 * never blocks the event loop: when the buffer is full, lines are dropped
 * and counted instead. One log serves every worker thread: one buffer
 * behind a mutex, so lines never interleave, even when a write to a full
 * pipe leaves part of a line for the next flush. */
#ifndef EDDY_CMD_ACCESS_LOG_H
#define EDDY_CMD_ACCESS_LOG_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "eddy/loop.h"

#define ACCESS_LOG_BUFFER (64 * 1024)

struct access_log {
    pthread_mutex_t lock; /* the rest, but for the timer */
    int fd;
    size_t len;
    uint64_t dropped;
    struct eddy_timer flush;
    char buf[ACCESS_LOG_BUFFER];
};

/* Opens path for appending ("-": standard output); the flush timer runs
 * on loop. Returns 0 or -errno. */
int access_log_open(struct access_log *al, struct eddy_loop *loop, const char *path);

/* Appends one line (a newline is added). Matches svc_ctx.access_log. Any
 * thread may call it. */
void access_log_write(void *arg, const char *line, size_t len);

/* Writes what is buffered (as far as the fd takes it) and closes. On the
 * loop's thread, once no other thread writes any more. */
void access_log_close(struct access_log *al);

#endif
