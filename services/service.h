/* The services layer: small TCP services written against eddy's public API,
 * as a user of the library would write them. Each service is one file with
 * one `const struct svc_service` describing it; service.c holds what they
 * share (allocating a connection, tracking live connections, logging through
 * the program). Services never print: they hand log lines to the program. */
#ifndef EDDY_SERVICE_H
#define EDDY_SERVICE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eddy/http.h"
#include "eddy/list.h"
#include "eddy/loop.h"
#include "eddy/tcp.h"

enum svc_level { SVC_DEBUG = 0, SVC_INFO = 1, SVC_WARN = 2, SVC_ERROR = 3 };

typedef void (*svc_log_fn)(void *arg, enum svc_level level, const char *fmt, va_list ap);

struct svc_conn;
struct svc_ctx;

/* Settings of the HTTP services, from the command line. */
struct svc_http_config {
    struct eddy_http_opts http;
    const char *body;         /* http: the GET body; NULL: "Hello, world!" */
    const char *content_type; /* http: its type; NULL: "text/plain" */
    const char *root;         /* static: the directory served */
    bool listing;             /* static: list directories without index.html */
};

struct svc_service {
    const char *name;
    const char *summary;   /* one line for --help */
    uint16_t default_port; /* the tutorial's port, used by the built-in default */
    size_t conn_size;      /* size of the per-connection struct; starts with struct svc_conn */
    bool log_data;         /* log every chunk received (the seed 004 receiver) */
    /* Called once the connection is open (may write, or shut it down). May be NULL. */
    void (*on_open)(struct svc_conn *sc);
    eddy_read_cb on_read;
    eddy_conn_cb on_eof; /* NULL: finish sending, then close */
    /* HTTP services answer requests instead of reading bytes: */
    eddy_http_handler http_handler;
    /* Prepares ctx->state from the config; returns 0 or -errno, with a
     * message in err. May be NULL. */
    int (*setup)(struct svc_ctx *ctx, const struct svc_http_config *cfg, char *err, size_t size);
    void (*teardown)(struct svc_ctx *ctx);
};

/* One running instance of a service: a listener's worth of configuration
 * and its live connections. */
struct svc_ctx {
    struct eddy_loop *loop;
    const struct svc_service *svc;
    struct eddy_conn_opts conn_opts;
    svc_log_fn log;
    void *log_arg;
    enum svc_level log_level; /* lines below it are not even formatted */
    struct eddy_conn_cbs cbs; /* private: filled by svc_ctx_init */
    struct eddy_list conns;   /* private: live connections */
    size_t nconns;            /* read-only */
    struct eddy_http_server http; /* HTTP services: the server */
    /* HTTP services: receives one Common Log Format line per response
     * (without newline) when set before svc_ctx_start. */
    void (*access_log)(void *arg, const char *line, size_t len);
    void *access_arg;
    const struct svc_http_config *http_cfg;
    uint64_t nomem_closed;    /* private: closed for lack of memory, not yet reported */
    uint64_t nomem_warned_ms; /* private: when that was last reported */
    void *state;              /* the service's own */
    void *data;               /* for the program */
};

/* "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535" and its NUL. */
#define SVC_PEER_LEN 56

/* The head of every service's per-connection struct. */
struct svc_conn {
    struct eddy_conn conn;
    struct svc_ctx *ctx;
    struct eddy_list link; /* in ctx->conns */
    /* The peer as text, filled only when the service logs connections at
     * the current log level (getpeername costs a syscall). */
    char peer[SVC_PEER_LEN];
};

/* Prepares a context; the caller then sets conn_opts, log, log_level and
 * calls svc_ctx_start. */
void svc_ctx_init(struct svc_ctx *ctx, struct eddy_loop *loop, const struct svc_service *svc);

/* Runs the service's setup (HTTP services: with cfg). Returns 0, or -errno
 * with a message in err. */
int svc_ctx_start(struct svc_ctx *ctx, const struct svc_http_config *cfg, char *err, size_t size);

/* Releases what svc_ctx_start set up (after every connection closed). */
void svc_ctx_stop(struct svc_ctx *ctx);

/* Live connections, whatever kind of service. */
size_t svc_ctx_live(const struct svc_ctx *ctx);

/* Takes an accepted fd: allocates the service's connection, opens it and
 * calls on_open. Closes the fd (and logs) on failure. */
void svc_accept(struct svc_ctx *ctx, int fd);

/* Gracefully shuts down every live connection (HTTP: requests in progress
 * are answered with "Connection: close" first). */
void svc_ctx_shutdown_all(struct svc_ctx *ctx);

/* Closes every live connection at once; returns how many were open. */
size_t svc_ctx_close_all(struct svc_ctx *ctx);

/* Logs through the program's logger, prefixed with nothing: the program
 * adds time, name, thread and level. */
void svc_log(const struct svc_ctx *ctx, enum svc_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The connection's svc_conn (eddy_conn is its first member). */
static inline struct svc_conn *svc_conn_of(struct eddy_conn *c)
{
    return (struct svc_conn *)c;
}

/* Writes a Python-style bytes literal of data (b'ab\n\x00') into out,
 * truncating with "..." past size. Returns out. */
char *svc_repr(const char *data, size_t len, char *out, size_t size);

/* The services, and a lookup by name (aliases included). */
extern const struct svc_service svc_echo;
extern const struct svc_service svc_upper;
extern const struct svc_service svc_time;
extern const struct svc_service svc_daytime;
extern const struct svc_service svc_discard;
extern const struct svc_service svc_sink;
extern const struct svc_service svc_hello_raw;
extern const struct svc_service svc_http;
extern const struct svc_service svc_static;

/* NULL-terminated, in --help order. */
extern const struct svc_service *const svc_all[];

const struct svc_service *svc_find(const char *name);

#endif
