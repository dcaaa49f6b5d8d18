/* Strict, slow, obviously-written readings of RFC 9112 for the fuzzers: a
 * chunked-body checker to hold eddy's decoder against, and the predicates
 * that explain the known differences between eddy and llhttp (each one a
 * rule of the RFC that one of the two parsers applies and the other does
 * not). Test code only. */
#ifndef EDDY_FUZZ_REFERENCE_H
#define EDDY_FUZZ_REFERENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- chunked bodies (RFC 9112 7.1) --------------------------------------- */

enum ref_verdict { REF_BAD = -1, REF_MORE = 0, REF_DONE = 1 };

/* Where a chunked body went wrong. */
enum ref_where {
    REF_OK = 0,
    REF_SIZE,    /* no hex digit, more than 16 of them, or bad line end */
    REF_EXT,     /* after the size: a byte that is not whitespace, ';' or CR,
                    or a CTL in an extension */
    REF_DATA,    /* no CRLF right after the chunk data */
    REF_TRAILER, /* a trailer line that is not a field line, or a bad end */
    REF_LIMIT,   /* one of eddy's documented limits: max_body, a size line
                    over 4096 bytes, trailers over 8 KiB */
};

struct ref_chunked {
    int verdict;    /* enum ref_verdict */
    int where;      /* enum ref_where, when REF_BAD */
    size_t used;    /* when REF_DONE: raw bytes of the body */
    size_t out;     /* decoded bytes (so far) */
    bool has_ext;   /* some chunk had an extension, or whitespace after its size */
    bool loose_ext; /* some extension broke the grammar after its ';' (or left
                       whitespace before the CR): eddy skips those, checking
                       only for CTLs, and so does this reference */
};

/* Checks buf[0..len) as the start of a chunked body and decodes it into
 * out (at least len bytes). Same limits as eddy's decoder, same
 * max_body (0: 1 MiB). */
void ref_chunked(const char *buf, size_t len, uint64_t max_body, char *out, struct ref_chunked *r);

/* ---- requests ------------------------------------------------------------ */

/* Whether target (n > 0 bytes) is one of the four forms of RFC 9112 3.2,
 * each with the method it belongs to (origin-form with any), with only the
 * characters RFC 3986 allows, percent-encoding checked. */
bool ref_target_ok(const char *method, size_t method_len, const char *t, size_t n);

/* Whether the target's host is empty: "CONNECT :443", "http://:80/". RFC
 * 9110 9.3.6 and 4.2.1 make it invalid, and ref_target_ok() says so, but
 * eddy accepts it (a known bug). */
bool ref_target_empty_host(const char *method, size_t method_len, const char *t, size_t n);

/* The known reasons for eddy to refuse (answer 400 to, or wait on) a
 * request that llhttp 8.1 accepts. Returns the name of the first rule the
 * request breaks, or NULL if it breaks none of them (then the difference
 * is unexplained: a bug in one of the two). */
const char *ref_eddy_stricter(const char *buf, size_t len);

#endif
