/* eddy-load: what the program (eddy-load.c) and its per-thread client
 * engine (eddy-load-worker.c) share: the run's configuration, one worker per
 * thread, and the figures each worker collects. */
#ifndef EDDY_LOAD_H
#define EDDY_LOAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eddy/list.h"
#include "eddy/loop.h"
#include "eddy/tcp.h"
#include "eddy-load-hist.h"

enum load_mode { MODE_ECHO, MODE_HTTP, MODE_FIXED };

/* What can go wrong, counted as events (a reset connection is one error,
 * however many requests it took with it). Connection errors come first. */
enum load_error {
    ERR_REFUSED,  /* connect: refused (nobody listens; for unix: no socket file) */
    ERR_CONNECT,  /* connect: any other failure (no free port, unreachable, ...) */
    ERR_RESET,    /* an open connection failed: reset, broken pipe */
    ERR_EOF,      /* the server closed with requests unanswered */
    ERR_TIMEOUT,  /* no reply (or no connect) within --timeout */
    ERR_MISMATCH, /* echo: bytes differ; any mode: bytes nobody asked for */
    ERR_STATUS,   /* http: a response that is not 2xx */
    ERR_FRAMING,  /* http: a response that cannot be parsed */
    ERR_KINDS,
};

struct load_config {
    enum load_mode mode;
    struct eddy_addr target;
    char target_text[EDDY_ADDR_STRLEN];
    unsigned conns;
    unsigned threads;
    unsigned depth;       /* requests in flight per connection */
    uint64_t requests;    /* stop after this many; 0: no limit */
    uint64_t duration_ns; /* stop after this long; 0: no limit */
    uint64_t warmup_ns;   /* not measured at first */
    double rate;          /* requests/s in total; 0: closed loop */
    uint64_t timeout_ms;
    bool new_conn;
    size_t size;   /* echo: bytes per message */
    char *request; /* http, fixed: one request's bytes */
    size_t request_len;
    size_t reply_len;   /* fixed: bytes per reply */
    uint32_t src_first; /* --source-addrs, host byte order */
    uint32_t src_count; /* 0: let the kernel choose */
};

/* Figures of one worker. The counters the progress line shows are written
 * with relaxed atomic stores by the worker and read the same way by the
 * main thread; the rest is read only after the worker's thread has ended. */
struct load_stats {
    uint64_t ok;     /* requests answered and verified */
    uint64_t failed; /* requests that got no valid answer */
    uint64_t errors[ERR_KINDS];
    uint64_t bytes_sent;
    uint64_t bytes_received;
    uint64_t connects;   /* connections established */
    uint64_t unsent;     /* open loop: requests that were due but never sent */
    uint64_t status[6];  /* http: responses by class 1xx..5xx; [0]: other */
    struct hist latency; /* nanoseconds */
    uint64_t first_error_ns;
    char first_error[192];
};

struct load_slot;

struct load_worker {
    /* Set by the main thread before the thread starts. */
    const struct load_config *cfg;
    unsigned index;
    unsigned conns;    /* this thread's share */
    uint64_t requests; /* its share of --requests (0: no limit) */
    double rate;       /* its share of --rate (0: closed loop) */
    uint64_t start_ns; /* CLOCK_MONOTONIC when the run starts */
    struct eddy_loop *loop;
    struct eddy_async *done; /* sent (on the main loop) when the worker ends */
    pthread_t thread;

    /* Results, read by the main thread after join. */
    struct load_stats stats;
    uint64_t end_ns; /* when it stopped */
    int finished;    /* atomic: set when the thread is about to end */

    /* The engine's own state (eddy-load-worker.c). */
    struct load_slot *slots;
    uint64_t *starts;           /* each slot's ring of start times */
    struct load_slot **touched; /* rate mode: slots given requests in one dispatch */
    char *batch;                /* http, fixed: the request, depth times over */
    struct eddy_list ready;     /* rate mode: slots that can take a request */
    struct eddy_timer end_timer;
    struct eddy_io rate_io; /* rate mode: a timerfd for send times */
    uint64_t rate_armed_ns;
    uint64_t measure_ns; /* requests scheduled before this are warm-up */
    uint64_t to_issue;   /* of the budget (when requests > 0) */
    uint64_t sched_next; /* rate mode: index of the next scheduled request */
    uint64_t *requeue;   /* start times of requests to send again */
    size_t requeue_len, requeue_cap;
    uint64_t inflight;
    uint32_t src_next;
    bool dispatching;
    bool stopping;
};

/* Prepares worker w (creates its loop). Returns 0 or -errno. */
int load_worker_init(struct load_worker *w);

/* The thread function: runs the worker until its share is done, the
 * duration has passed, or load_worker_stop() was called. */
void *load_worker_main(void *w);

/* Asks a running worker to stop (from any thread). */
void load_worker_stop(struct load_worker *w);

/* Releases what load_worker_init() made, after the thread has ended. */
void load_worker_free(struct load_worker *w);

/* Reads a progress counter written by another thread. */
static inline uint64_t load_read(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

#endif
