/* eddy: HTTP/1.1. A strict, zero-copy request parser, an incremental
 * chunked-body decoder, and a server that runs the request/response cycle
 * (keep-alive, pipelining, limits, timeouts) on the net layer. */
#ifndef EDDY_HTTP_H
#define EDDY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "eddy/list.h"
#include "eddy/loop.h"
#include "eddy/tcp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the parser ----------------------------------------------------------- */

/* The most header fields a request may have; more is answered with 431. */
#define EDDY_HTTP_MAX_HEADERS 100

/* A header field as a view into the caller's buffer (not NUL-terminated).
 * The value has no leading or trailing whitespace. */
struct eddy_http_header {
    const char *name;
    const char *value;
    size_t name_len;
    size_t value_len;
};

struct eddy_http_limits {
    size_t max_request_line;  /* bytes, CRLF included; 0: 8192 (more: 414) */
    size_t max_header_bytes;  /* whole header block; 0: 16384 (more: 431) */
    size_t max_headers;       /* fields; 0 or above EDDY_HTTP_MAX_HEADERS: 100 (more: 431) */
    uint64_t max_body;        /* decoded body bytes; 0: 1 MiB (more: 413) */
};

/* A parsed request: views into the buffer given to the parser, valid while
 * that buffer is. */
struct eddy_http_request {
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    int version; /* 10 or 11 */
    size_t num_headers;
    struct eddy_http_header headers[EDDY_HTTP_MAX_HEADERS];

    /* Derived from the headers by the parser. */
    const char *host; /* NULL when absent (only possible in HTTP/1.0) */
    size_t host_len;
    uint64_t content_length;  /* 0 unless has_content_length */
    bool has_content_length;
    bool chunked;             /* Transfer-Encoding: chunked */
    bool keep_alive;          /* the client allows another request after this one */
    bool expect_continue;     /* Expect: 100-continue */

    /* The body, once complete (set by the server, or by the caller after
     * eddy_http_chunked_decode()/Content-Length). */
    const char *body;
    size_t body_len;
};

/* Parses the request line and header block at the start of buf[0..len).
 * Empty lines before the request line are skipped (RFC 9112, 2.2).
 * `scanned` carries progress between calls on the same, growing buffer:
 * set it to 0 for a new request; the parser then never rescans bytes it has
 * already searched, so a client sending one byte at a time costs O(n).
 * Returns:
 *   > 0   the header block is complete; its length in bytes (the body, if
 *         any, starts there). *req is filled.
 *   0     incomplete: call again with more bytes.
 *   < 0   the request is invalid: minus the HTTP status to answer (400, 414,
 *         417, 431, 501, 505). The connection must then be closed.
 * Strict, per RFC 9112: lines end in CRLF (a bare LF is accepted as a line
 * end, a bare CR is an error); no whitespace before a header's colon; no
 * obsolete line folding; no control characters; tokens checked; exactly one
 * Host in HTTP/1.1; Content-Length digits only and at most once, never with
 * Transfer-Encoding; Transfer-Encoding only "chunked" (other codings: 501);
 * HTTP/1.0 and 1.1 only (other versions: 505). limits may be NULL. */
EDDY_API int eddy_http_parse_request(const char *buf, size_t len, size_t *scanned,
                                     const struct eddy_http_limits *limits,
                                     struct eddy_http_request *req);

/* Finds a header by case-insensitive name; NULL when absent. */
EDDY_API const struct eddy_http_header *eddy_http_find_header(const struct eddy_http_request *req,
                                                              const char *name);

/* Incremental decoder of a chunked body, in place. Zero it for each body. */
struct eddy_http_chunked {
    uint64_t remaining;  /* data bytes left in the current chunk */
    size_t in;           /* raw bytes consumed so far */
    size_t out;          /* decoded bytes so far (at the start of the buffer) */
    size_t line;         /* length of the size or trailer line in progress */
    size_t trailers;     /* trailer bytes so far */
    int state;
};

/* Decodes buf[d->in..len) in place: data bytes are moved down to
 * buf[d->out..), so the decoded body ends up contiguous at buf[0..d->out).
 * Call again on the same buffer with more raw bytes appended after len.
 * Chunk extensions and trailer fields are checked and ignored.
 * Returns 1 when the last chunk and the trailers are complete (d->in is then
 * the number of raw bytes the body took), 0 when more bytes are needed, or
 * -400 (malformed: bare LF or CR, bad hex, size overflow) or -413 (more than
 * max_body decoded bytes, or trailers over 8 KiB). */
EDDY_API int eddy_http_chunked_decode(struct eddy_http_chunked *d, char *buf, size_t len,
                                      uint64_t max_body);

/* The reason phrase of a status code ("Not Found"); "Unknown" if unknown. */
EDDY_API const char *eddy_http_reason(int status);

/* ---- the server ------------------------------------------------------------ */

struct eddy_http_server;
struct eddy_http_conn;

/* One request being answered. */
struct eddy_http_exchange {
    struct eddy_http_server *server;
    struct eddy_http_conn *conn;
    struct eddy_http_request *req; /* complete, body included */
    bool responded;                /* private */
};

/* Called once per request, in order, with the body complete. The handler
 * must answer before it returns, with exactly one eddy_http_respond*() call;
 * if it does not, eddy answers 500. */
typedef void (*eddy_http_handler)(struct eddy_http_exchange *x);

/* Called after each response with what an access log needs. May be NULL. */
typedef void (*eddy_http_log_cb)(struct eddy_http_exchange *x, int status, uint64_t bytes);

struct eddy_http_opts {
    struct eddy_http_limits limits;
    uint64_t header_timeout_ms;    /* a request's header block must arrive in time; 0: 10 s (408) */
    uint64_t body_timeout_ms;      /* and its body; 0: 60 s (408) */
    uint64_t keepalive_timeout_ms; /* idle between requests; 0: 15 s */
    uint64_t write_timeout_ms;     /* no progress sending a response; 0: 60 s */
    uint64_t drain_grace_ms;       /* at a drain, how long an idle keep-alive
                                    * connection may still send a request; 0: 1 s */
    bool edge;                     /* edge-triggered connections */
    size_t read_size;              /* 0: 16 KiB */
};

struct eddy_http_server {
    void *data;                    /* for the caller */
    struct eddy_loop *loop;        /* read-only */
    eddy_http_handler handler;     /* read-only */
    eddy_http_log_cb log;          /* may be set by the caller */
    /* May be set by the caller: a connection has closed; status is 0, or
     * the -errno that ended it (-ENOMEM: no memory for its buffers). */
    void (*on_close)(struct eddy_http_server *srv, int status);
    struct eddy_http_opts opts;    /* read-only: with defaults filled in */
    struct eddy_conn_opts conn_opts; /* private */
    struct eddy_conn_cbs conn_cbs;   /* private */
    struct eddy_http_request req;  /* private: one parse at a time per loop */
    struct eddy_http_chunked chunk_state; /* private: the body being read */
    size_t nconns;                 /* read-only */
    bool draining;                 /* private */
    uint64_t date_sec;             /* private: cached Date header */
    char date[40];                 /* private */
};

/* Prepares a server: nothing is opened. opts may be NULL. */
EDDY_API void eddy_http_server_init(struct eddy_http_server *srv, struct eddy_loop *loop,
                                    const struct eddy_http_opts *opts, eddy_http_handler handler);

/* Serves an accepted connection (call it from a listener's on_accept).
 * Returns 0 or -errno (the fd is then closed). */
EDDY_API int eddy_http_server_accept(struct eddy_http_server *srv, int fd);

/* Opens a listener whose connections this server answers. */
EDDY_API int eddy_http_server_listen(struct eddy_http_server *srv, struct eddy_listener *l,
                                     const struct eddy_addr *addr,
                                     const struct eddy_listen_opts *opts);

/* Graceful stop: requests in progress are finished and answered with
 * "Connection: close". An idle keep-alive connection is closed when it
 * has stayed idle for drain_grace_ms more; a request it sends before then
 * is answered (with "Connection: close"), so a busy client, whose next
 * request may already be on its way, loses nothing. Connections accepted
 * from here on are treated the same way. */
EDDY_API void eddy_http_server_drain(struct eddy_http_server *srv);

/* Closes every connection at once; returns how many there were. */
EDDY_API size_t eddy_http_server_close_all(struct eddy_http_server *srv);

/* Answers with a body from memory (copied). headers: extra fields, without
 * Date, Server, Content-Length or Connection, which eddy writes. For HEAD
 * the body is not sent but Content-Length is len. Returns 0, -EALREADY if
 * this exchange was answered, or -errno from the connection. */
EDDY_API int eddy_http_respond(struct eddy_http_exchange *x, int status,
                               const struct eddy_http_header *headers, size_t nheaders,
                               const void *body, size_t len);

/* Answers with len bytes of an open file from offset, sent with sendfile().
 * Takes ownership of fd (closed when sent or on error). */
EDDY_API int eddy_http_respond_file(struct eddy_http_exchange *x, int status,
                                    const struct eddy_http_header *headers, size_t nheaders,
                                    int fd, uint64_t offset, uint64_t len);

/* Formats the client's address ("1.2.3.4:5678") for logs. Returns buf. */
EDDY_API char *eddy_http_peer(const struct eddy_http_exchange *x, char *buf, size_t size);

/* The length of an IMF-fixdate. */
#define EDDY_HTTP_DATE_LEN 29

/* Writes an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") for t into buf
 * (at least EDDY_HTTP_DATE_LEN + 1 bytes). Returns EDDY_HTTP_DATE_LEN. */
EDDY_API size_t eddy_http_date(int64_t t, char *buf);

/* Parses an IMF-fixdate; returns 0 and sets *t, or -EINVAL. */
EDDY_API int eddy_http_parse_date(const char *s, size_t len, int64_t *t);

#ifdef __cplusplus
}
#endif

#endif
