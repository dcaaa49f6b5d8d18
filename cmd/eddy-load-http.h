/* eddy-load: finds where each HTTP/1.x response ends in a byte stream, and
 * its status, so the load generator can verify replies and keep pipelined
 * requests matched to their responses. It checks framing, not content:
 * the status line, Content-Length, chunked bodies (sizes, CRLFs, trailers),
 * bodies delimited by the close of the connection, Connection: close and
 * HTTP/1.0 keep-alive, and skips interim 1xx responses. */
#ifndef EDDY_LOAD_HTTP_H
#define EDDY_LOAD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest status, header or chunk-size line accepted. */
#define HTTP_RESP_MAX_LINE 8192

struct http_resp {
    int state;
    int status;      /* of the response being read */
    bool keep_alive; /* the server keeps the connection after it */
    bool chunked;
    bool have_length;
    uint64_t left;     /* body or chunk bytes still to come */
    const char *error; /* why, after HTTP_RESP_ERROR */
};

enum http_resp_result {
    HTTP_RESP_MORE,  /* everything given was consumed; need more bytes */
    HTTP_RESP_DONE,  /* a response ended; *used bytes belong to it */
    HTTP_RESP_ERROR, /* not a valid response; r->error says why */
};

/* Ready for the first response of a connection. */
void http_resp_init(struct http_resp *r);

/* Reads a response from p[0..len). Consumes whole lines only: a partial
 * line is left unconsumed (*used stops before it) to be offered again with
 * more bytes. After HTTP_RESP_DONE, r->status and r->keep_alive describe
 * the response and the parser is ready for the next one. */
enum http_resp_result http_resp_feed(struct http_resp *r, const char *p, size_t len, size_t *used);

/* The connection reached EOF. True when that completes the response being
 * read (its body was delimited by the close); false when a response was
 * cut short, or none had begun (see http_resp_idle()). */
bool http_resp_eof(struct http_resp *r);

/* True between responses. */
bool http_resp_idle(const struct http_resp *r);

#endif
