/* A test-only differential oracle: llhttp 8.1 (Debian's node-llhttp sources,
 * built with the test) parses the same bytes as eddy, and its view of the
 * first request is collected into one owned buffer so that the two parsers'
 * answers can be compared field by field. Not part of the library. */
#ifndef EDDY_LLHTTP_ORACLE_H
#define EDDY_LLHTTP_ORACLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* More than eddy's limit, so that llhttp's view of a 101-field request is
 * complete. */
#define ORACLE_MAX_HEADERS 256

enum oracle_verdict {
    ORACLE_REJECT = -1,    /* llhttp reported a parse error */
    ORACLE_INCOMPLETE = 0, /* no error, but the first request is not complete */
    ORACLE_ACCEPT = 1,     /* the first request (body included) is complete */
};

/* A string collected from llhttp's callbacks: bytes text[off..off+len). */
struct oracle_span {
    size_t off, len;
};

struct oracle_result {
    int verdict;          /* enum oracle_verdict */
    int err;              /* llhttp_errno_t of the last llhttp_execute() */
    const char *err_name; /* "HPE_..." */
    const char *reason;   /* llhttp's own text; NULL when it gave none */
    size_t consumed;      /* when accepted: bytes of the first request */
    int version;          /* 10 * major + minor, once the request line was read */
    bool keep_alive;      /* llhttp_should_keep_alive() once headers were read */
    bool upgrade;         /* CONNECT or Upgrade: the rest is another protocol */
    struct oracle_span method, target, body;
    size_t num_headers; /* header fields before the body (trailers excluded) */
    struct oracle_span names[ORACLE_MAX_HEADERS], values[ORACLE_MAX_HEADERS];
    bool overflow;        /* more fields than ORACLE_MAX_HEADERS were seen */
    bool framing_trailer; /* a trailer field named Transfer-Encoding or
                             Content-Length was seen */

    /* private */
    char *text;
    size_t text_len, text_cap;
    int in_span; /* which kind of span the last callback extended */
    char trailer[32];
    size_t trailer_len;
    bool headers_done, complete;
};

/* Runs llhttp over buf[0..len) in one call, as a request parser in its
 * default (non-strict, no lenient flags) mode, stopping after the first
 * request. *r is overwritten; release it with oracle_free(). */
void oracle_parse(const char *buf, size_t len, struct oracle_result *r);

/* Releases the memory that oracle_parse() collected. */
void oracle_free(struct oracle_result *r);

/* Whether llhttp parses this method (its table of HTTP methods); eddy takes
 * any token. */
bool oracle_known_method(const char *m, size_t n);

/* The bytes of a span of r (not NUL-terminated; valid until oracle_free). */
const char *oracle_bytes(const struct oracle_result *r, struct oracle_span s);

#endif
