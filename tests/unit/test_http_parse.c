/* The HTTP/1.x request parser, the chunked decoder and the date helpers.
 *
 * The heart of this file is a table of requests, valid and invalid. Every
 * case is checked four ways:
 *   - whole: the verdict (header block length, 0, or -status) and, for a
 *     valid request, its method, target, version, header views and the
 *     flags derived from them;
 *   - split at every byte boundary (the first k bytes, then the whole
 *     buffer, the `scanned` state carried over) and one byte at a time: the
 *     first non-zero verdict must be the whole buffer's;
 *   - the body, decoded (chunked) or taken (Content-Length);
 *   - against llhttp 8.1 (tests/unit/llhttp_oracle.c), which parses the
 *     same bytes: the same accept/reject answer and, when both accept, the
 *     same method, target, version, fields, body, length and keep-alive.
 *     Where the two are expected to disagree, the case says so and why.
 *
 * Every partial buffer handed to the parser is a copy of exactly that many
 * bytes, so that under ASan a read past `len` is caught. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "eddy/http.h"
#include "llhttp_oracle.h"

/* ---- the request corpus --------------------------------------------------- */

/* How llhttp is expected to answer the same bytes. */
enum oracle_expect {
    AGREE = 0,         /* same verdict; if accepted, the same views */
    EDDY_STRICTER,     /* in the order reject < incomplete < accept, eddy's
                          verdict is below llhttp's */
    LLHTTP_STRICTER,   /* llhttp's verdict is below eddy's */
    KEEPALIVE_DIFFERS, /* both accept, with the same views, but llhttp's
                          keep-alive answer is not eddy's */
};

/* Keep-alive as expected: by default what the version implies. */
enum { KA_DEFAULT = 0, KA_YES, KA_NO };

/* .expect for a valid request: the header block is exactly .head. */
#define OK INT_MAX

/* .body_err: the body's verdict. */
enum { BODY_OK = 0, BODY_MORE = 1 };

enum { NO_BUG = 0, BUG_HEAD, BUG_BODY };

struct req_case {
    const char *name;
    const char *head; /* the header block (valid cases) or the whole input */
    size_t head_len;
    const char *rest; /* bytes after the header block: body, next request */
    size_t rest_len;
    int expect; /* OK, 0 (incomplete) or -status */
    const struct eddy_http_limits *limits;

    /* Valid requests. Defaults: GET, "/", HTTP/1.1. */
    const char *method, *target;
    int version;
    const char *hdr[2 * 12 + 1]; /* name, value, ..., NULL: every field in order */
    int keep_alive;
    bool expect_continue;
    const char *body; /* the decoded body; NULL: empty */
    int body_err;     /* BODY_OK (complete, equal to .body), BODY_MORE, or -status */

    /* A known parser bug (BUG_HEAD or BUG_BODY): .expect or .body_err is
     * what RFC 9112 asks for, .now what the parser answers today. The test
     * pins .now, so that a fix is noticed (then drop .bug and .now); the bug
     * is described in .why. */
    int bug;
    int now;

    int oracle; /* enum oracle_expect */
    const char *why;

    /* Generated cases with more fields than .hdr holds check them apart. */
    bool unchecked_views;
};

#define IN(s)   .head = (s), .head_len = sizeof(s) - 1
#define REST(s) .rest = (s), .rest_len = sizeof(s) - 1
#define H(...)  .hdr = {__VA_ARGS__, NULL}

/* The request line and Host most cases share. */
#define GET11     "GET / HTTP/1.1\r\nHost: a\r\n"
#define POST11    "POST / HTTP/1.1\r\nHost: a\r\n"
#define CHUNKED11 POST11 "Transfer-Encoding: chunked\r\n\r\n"

static const struct eddy_http_limits small_line = {.max_request_line = 32};
static const struct eddy_http_limits small_block = {.max_header_bytes = 64};
static const struct eddy_http_limits three_headers = {.max_headers = 3};
static const struct eddy_http_limits small_body = {.max_body = 4};

static const struct req_case cases[] = {
    /* ---- valid: the basics ---- */
    {"simple GET", IN(GET11 "\r\n"), .expect = OK, H("Host", "a")},
    {"HTTP/1.0 without Host", IN("GET / HTTP/1.0\r\n\r\n"), .expect = OK, .version = 10, H(NULL)},
    {"HTTP/1.0 with Host", IN("GET /x HTTP/1.0\r\nHost: example.com\r\n\r\n"), .expect = OK,
     .target = "/x", .version = 10, H("Host", "example.com")},
    {"bare LF line ends", IN("GET / HTTP/1.1\nHost: a\n\n"), .expect = OK, H("Host", "a"),
     .oracle = LLHTTP_STRICTER,
     .why = "RFC 9112 2.2 lets a recipient accept a bare LF as a line terminator; llhttp 8.1 "
            "rejects one after a field value"},
    {"bare LF after the request line only", IN("GET / HTTP/1.1\nHost: a\r\n\r\n"), .expect = OK,
     H("Host", "a")},
    {"bare LF as the final empty line", IN(GET11 "\n"), .expect = OK, H("Host", "a")},
    {"one leading CRLF", IN("\r\n" GET11 "\r\n"), .expect = OK, H("Host", "a")},
    {"leading bare LFs", IN("\n\n" GET11 "\r\n"), .expect = OK, H("Host", "a")},
    {"eight leading empty lines", IN("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n" GET11 "\r\n"), .expect = OK,
     H("Host", "a")},
    {"several fields", IN("GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nUser-Agent: t/1.0\r\n\r\n"),
     .expect = OK, H("Host", "a", "Accept", "*/*", "User-Agent", "t/1.0")},
    {"field names are case-insensitive", IN("GET / HTTP/1.1\r\nhOsT: a\r\n\r\n"), .expect = OK,
     H("hOsT", "a")},
    {"value trimmed of SP and HTAB", IN(GET11 "X:   a b  \t\r\n\r\n"), .expect = OK,
     H("Host", "a", "X", "a b")},
    {"value after HTAB", IN(GET11 "X:\tv\r\n\r\n"), .expect = OK, H("Host", "a", "X", "v")},
    {"value without leading space", IN(GET11 "X:v\r\n\r\n"), .expect = OK,
     H("Host", "a", "X", "v")},
    {"empty value", IN(GET11 "X:\r\n\r\n"), .expect = OK, H("Host", "a", "X", "")},
    {"value of whitespace only", IN(GET11 "X:  \t \r\n\r\n"), .expect = OK,
     H("Host", "a", "X", "")},
    {"value with a colon", IN(GET11 "X: a:b: c\r\n\r\n"), .expect = OK,
     H("Host", "a", "X", "a:b: c")},
    {"value with obs-text", IN(GET11 "X: caf\xc3\xa9 \x80\xff\r\n\r\n"), .expect = OK,
     H("Host", "a", "X", "caf\xc3\xa9 \x80\xff")},
    {"value with every VCHAR punctuation",
     IN(GET11 "X: !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\r\n\r\n"), .expect = OK,
     H("Host", "a", "X", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")},
    {"name of every tchar", IN(GET11 "!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n"), .expect = OK,
     H("Host", "a", "!#$%&'*+-.^_`|~09azAZ", "v")},
    {"twelve fields",
     IN("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\n"
        "H: 8\r\nI: 9\r\nJ: 10\r\nK: 11\r\n\r\n"),
     .expect = OK,
     H("Host", "a", "A", "1", "B", "2", "C", "3", "D", "4", "E", "5", "F", "6", "G", "7", "H", "8",
       "I", "9", "J", "10", "K", "11")},
    {"Host with a port", IN("GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"), .expect = OK,
     H("Host", "example.com:8080")},
    {"Host as an IPv6 literal", IN("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"), .expect = OK,
     H("Host", "[::1]:80")},
    {"empty Host (RFC 9110 7.2: no authority)", IN("GET / HTTP/1.1\r\nHost:\r\n\r\n"), .expect = OK,
     H("Host", "")},

    /* ---- valid: request targets and methods ---- */
    {"query string", IN("GET /a/b?c=d&e=f;g HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = OK,
     .target = "/a/b?c=d&e=f;g", H("Host", "a")},
    {"percent-encoding (kept raw)", IN("GET /%41%2f%7E%c3%A9 HTTP/1.1\r\nHost: a\r\n\r\n"),
     .expect = OK, .target = "/%41%2f%7E%c3%A9", H("Host", "a")},
    {"every unreserved and sub-delim in a path",
     IN("GET /-._~!$&'()*+,;=:@/? HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = OK,
     .target = "/-._~!$&'()*+,;=:@/?", H("Host", "a")},
    {"absolute-form", IN("GET http://example.com/a?b HTTP/1.1\r\nHost: example.com\r\n\r\n"),
     .expect = OK, .target = "http://example.com/a?b", H("Host", "example.com")},
    {"absolute-form with userinfo and port",
     IN("GET http://u@example.com:81/ HTTP/1.1\r\nHost: example.com:81\r\n\r\n"), .expect = OK,
     .target = "http://u@example.com:81/", H("Host", "example.com:81")},
    {"asterisk-form", IN("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = OK,
     .method = "OPTIONS", .target = "*", H("Host", "a")},
    {"authority-form", IN("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
     .expect = OK, .method = "CONNECT", .target = "example.com:443", H("Host", "example.com:443")},
    {"HEAD", IN("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = OK, .method = "HEAD",
     H("Host", "a")},
    {"DELETE", IN("DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = OK, .method = "DELETE",
     .target = "/x", H("Host", "a")},
    {"PATCH", IN("PATCH / HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = OK, .method = "PATCH",
     H("Host", "a")},
    {"M-SEARCH *", IN("M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER,
     .why = "RFC 9112 3.2.4: the asterisk-form is only for OPTIONS (M-SEARCH * is SSDP's, over "
            "UDP); llhttp 8.1 accepts it with any method"},
    {"OPTIONS *", IN("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = OK, .method = "OPTIONS",
     .target = "*", H("Host", "a")},
    {"PROPFIND", IN("PROPFIND / HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = OK, .method = "PROPFIND",
     H("Host", "a")},
    {"an extension method", IN("BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = OK,
     .method = "BREW", .target = "/pot", H("Host", "a"), .oracle = LLHTTP_STRICTER,
     .why = "RFC 9110 9.1: a method is any token (unknown ones get 501 from the handler); "
            "llhttp knows only a fixed list"},
    {"a method of tchars", IN("X-Y_Z.1!~ / HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = OK,
     .method = "X-Y_Z.1!~", H("Host", "a"), .oracle = LLHTTP_STRICTER,
     .why = "RFC 9110 9.1: method = token; llhttp knows only a fixed list"},
    {"a lower-case method is another method", IN("get / HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = OK,
     .method = "get", H("Host", "a"), .oracle = LLHTTP_STRICTER,
     .why = "RFC 9110 9.1: methods are case-sensitive tokens, so \"get\" is a valid (unknown) "
            "method; llhttp knows only a fixed list"},

    /* ---- valid: keep-alive ---- */
    {"1.1 persists by default", IN(GET11 "\r\n"), .expect = OK, H("Host", "a"),
     .keep_alive = KA_YES},
    {"1.1 Connection: close", IN(GET11 "Connection: close\r\n\r\n"), .expect = OK,
     H("Host", "a", "Connection", "close"), .keep_alive = KA_NO},
    {"1.1 Connection: CLOSE", IN(GET11 "Connection: CLOSE\r\n\r\n"), .expect = OK,
     H("Host", "a", "Connection", "CLOSE"), .keep_alive = KA_NO},
    {"1.1 Connection: keep-alive", IN(GET11 "Connection: keep-alive\r\n\r\n"), .expect = OK,
     H("Host", "a", "Connection", "keep-alive"), .keep_alive = KA_YES},
    {"1.1 Connection: Upgrade, close", IN(GET11 "Connection: Upgrade, close\r\n\r\n"), .expect = OK,
     H("Host", "a", "Connection", "Upgrade, close"), .keep_alive = KA_NO},
    {"1.1 Connection: ,, close ,", IN(GET11 "Connection: ,, close ,\r\n\r\n"), .expect = OK,
     H("Host", "a", "Connection", ",, close ,"), .keep_alive = KA_NO},
    {"1.1 close in a second Connection field",
     IN(GET11 "Connection: keep-alive\r\nConnection: close\r\n\r\n"), .expect = OK,
     H("Host", "a", "Connection", "keep-alive", "Connection", "close"), .keep_alive = KA_NO},
    {"1.1 \"closed\" is not \"close\"", IN(GET11 "Connection: closed\r\n\r\n"), .expect = OK,
     H("Host", "a", "Connection", "closed"), .keep_alive = KA_YES},
    {"1.0 closes by default", IN("GET / HTTP/1.0\r\n\r\n"), .expect = OK, .version = 10, H(NULL),
     .keep_alive = KA_NO},
    {"1.0 Connection: keep-alive", IN("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
     .expect = OK, .version = 10, H("Connection", "keep-alive"), .keep_alive = KA_YES},
    {"1.0 Connection: Keep-Alive", IN("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"),
     .expect = OK, .version = 10, H("Connection", "Keep-Alive"), .keep_alive = KA_YES},
    {"1.0 Connection: keep-alive, close",
     IN("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"), .expect = OK, .version = 10,
     H("Connection", "keep-alive, close"), .keep_alive = KA_NO, .oracle = KEEPALIVE_DIFFERS,
     .why = "RFC 9112 9.3: with \"close\" the connection does not persist; llhttp 8.1 looks only "
            "for keep-alive in an HTTP/1.0 request"},
    {"1.0 Connection: Upgrade", IN("GET / HTTP/1.0\r\nConnection: Upgrade\r\n\r\n"), .expect = OK,
     .version = 10, H("Connection", "Upgrade"), .keep_alive = KA_NO},

    /* ---- valid: bodies ---- */
    {"Content-Length: 0", IN(POST11 "Content-Length: 0\r\n\r\n"), .expect = OK, .method = "POST",
     H("Host", "a", "Content-Length", "0")},
    {"Content-Length body", IN(POST11 "Content-Length: 5\r\n\r\n"), REST("hello"), .expect = OK,
     .method = "POST", H("Host", "a", "Content-Length", "5"), .body = "hello"},
    {"Content-Length with leading zeros", IN(POST11 "Content-Length: 005\r\n\r\n"), REST("hello"),
     .expect = OK, .method = "POST", H("Host", "a", "Content-Length", "005"), .body = "hello"},
    {"Content-Length with trailing space", IN(POST11 "Content-Length: 5 \r\n\r\n"), REST("hello"),
     .expect = OK, .method = "POST", H("Host", "a", "Content-Length", "5"), .body = "hello"},
    {"Content-Length at max_body", IN(POST11 "Content-Length: 4\r\n\r\n"), REST("abcd"),
     .limits = &small_body, .expect = OK, .method = "POST", H("Host", "a", "Content-Length", "4"),
     .body = "abcd"},
    {"Content-Length body, then the next request", IN(POST11 "Content-Length: 5\r\n\r\n"),
     REST("helloGET / HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = OK, .method = "POST",
     H("Host", "a", "Content-Length", "5"), .body = "hello"},
    {"body not here yet", IN(POST11 "Content-Length: 10\r\n\r\n"), REST("hello"), .expect = OK,
     .method = "POST", H("Host", "a", "Content-Length", "10"), .body_err = BODY_MORE},
    {"chunked", IN(CHUNKED11), REST("5\r\nhello\r\n0\r\n\r\n"), .expect = OK, .method = "POST",
     H("Host", "a", "Transfer-Encoding", "chunked"), .body = "hello"},
    {"chunked, several chunks", IN(CHUNKED11),
     REST("5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"), .expect = OK, .method = "POST",
     H("Host", "a", "Transfer-Encoding", "chunked"), .body = "hello world"},
    {"chunked, hex sizes", IN(CHUNKED11),
     REST("a\r\n0123456789\r\nB\r\nabcdefghijk\r\n000\r\n\r\n"), .expect = OK, .method = "POST",
     H("Host", "a", "Transfer-Encoding", "chunked"), .body = "0123456789abcdefghijk"},
    {"chunked, extensions", IN(CHUNKED11), REST("5;a=\"b\";c\r\nhello\r\n0;z\r\n\r\n"),
     .expect = OK, .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked"),
     .body = "hello"},
    {"chunked, an extension quoting SP", IN(CHUNKED11), REST("5;c=\"d e\"\r\nhello\r\n0\r\n\r\n"),
     .expect = OK, .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked"),
     .body = "hello"},
    {"chunked, two extensions with token values", IN(CHUNKED11),
     REST("5;a=b;c=d\r\nhello\r\n0\r\n\r\n"), .expect = OK, .method = "POST",
     H("Host", "a", "Transfer-Encoding", "chunked"), .body = "hello", .oracle = LLHTTP_STRICTER,
     .why = "RFC 9112 7.1.1: chunk-ext = *( BWS \";\" ... ) allows any number of extensions; "
            "llhttp 8.1 rejects a ';' after a token value"},
    {"chunked, BWS around an extension", IN(CHUNKED11), REST("5 ; a = b\r\nhello\r\n0\r\n\r\n"),
     .expect = OK, .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked"),
     .body = "hello", .oracle = LLHTTP_STRICTER,
     .why = "RFC 9112 7.1.1: chunk-ext = *( BWS \";\" BWS chunk-ext-name [ BWS \"=\" BWS "
            "chunk-ext-val ] ); llhttp 8.1 rejects the BWS"},
    {"chunked, trailers", IN(CHUNKED11), REST("5\r\nhello\r\n0\r\nX-T: 1\r\nY: two\r\n\r\n"),
     .expect = OK, .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked"),
     .body = "hello"},
    {"chunked, only the last chunk", IN(CHUNKED11), REST("0\r\n\r\n"), .expect = OK,
     .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked")},
    {"chunked, then the next request", IN(CHUNKED11),
     REST("3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = OK, .method = "POST",
     H("Host", "a", "Transfer-Encoding", "chunked"), .body = "abc"},
    {"Transfer-Encoding: Chunked", IN(POST11 "Transfer-Encoding: Chunked\r\n\r\n"),
     REST("1\r\nx\r\n0\r\n\r\n"), .expect = OK, .method = "POST",
     H("Host", "a", "Transfer-Encoding", "Chunked"), .body = "x"},
    {"Transfer-Encoding with an empty list element",
     IN(POST11 "Transfer-Encoding: , chunked\r\n\r\n"), REST("1\r\nx\r\n0\r\n\r\n"), .expect = OK,
     .method = "POST", H("Host", "a", "Transfer-Encoding", ", chunked"), .body = "x"},
    {"chunked body incomplete", IN(CHUNKED11), REST("5\r\nhel"), .expect = OK, .method = "POST",
     H("Host", "a", "Transfer-Encoding", "chunked"), .body_err = BODY_MORE},
    {"Expect: 100-continue", IN(POST11 "Expect: 100-continue\r\nContent-Length: 1\r\n\r\n"),
     REST("x"), .expect = OK, .method = "POST",
     H("Host", "a", "Expect", "100-continue", "Content-Length", "1"), .expect_continue = true,
     .body = "x"},
    {"Expect: 100-Continue", IN(GET11 "Expect: 100-Continue\r\n\r\n"), .expect = OK,
     H("Host", "a", "Expect", "100-Continue"), .expect_continue = true},
    {"pipelined requests", IN(GET11 "\r\n"), REST("GET /2 HTTP/1.1\r\nHost: a\r\n\r\n"),
     .expect = OK, H("Host", "a")},
    {"an Upgrade request", IN(GET11 "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
     .expect = OK, H("Host", "a", "Connection", "Upgrade", "Upgrade", "websocket")},

    /* ---- valid, found by the differential fuzzer: llhttp 8.1 disagrees ---- */
    {"Transfer-Encoding: chunked, (an empty element)",
     IN(POST11 "Transfer-Encoding: chunked, \r\n\r\n"), REST("0\r\n\r\n"), .expect = OK,
     .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked,"), .oracle = LLHTTP_STRICTER,
     .why = "RFC 9110 5.6.1: a recipient MUST accept (and ignore) empty list elements; llhttp "
            "8.1 rejects one after chunked"},
    {"Transfer-Encoding: chunked and a trailing HTAB",
     IN(POST11 "Transfer-Encoding: chunked\t\r\n\r\n"), REST("0\r\n\r\n"), .expect = OK,
     .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked"), .oracle = LLHTTP_STRICTER,
     .why = "RFC 9110 5.5: trailing OWS (SP or HTAB) is not part of a field value; llhttp 8.1 "
            "reads \"chunked<HTAB>\" as another coding"},
    {"Content-Length and a trailing HTAB", IN(POST11 "Content-Length: 5\t\r\n\r\n"), REST("hello"),
     .expect = OK, .method = "POST", H("Host", "a", "Content-Length", "5"), .body = "hello",
     .oracle = LLHTTP_STRICTER,
     .why = "RFC 9110 5.5: trailing OWS is not part of the value; llhttp 8.1 takes the HTAB "
            "for a bad digit"},
    {"1.0 Connection: keep-alive and a trailing HTAB",
     IN("GET / HTTP/1.0\r\nConnection: keep-alive\t\r\n\r\n"), .expect = OK, .version = 10,
     H("Connection", "keep-alive"), .keep_alive = KA_YES, .oracle = KEEPALIVE_DIFFERS,
     .why = "RFC 9110 5.5: trailing OWS is not part of the value; llhttp 8.1 does not see "
            "\"keep-alive<HTAB>\" as keep-alive"},
    {"Transfer-Encoding as a trailer", IN(CHUNKED11),
     REST("0\r\nTransfer-Encoding: chunked\r\n\r\n"), .expect = OK, .method = "POST",
     H("Host", "a", "Transfer-Encoding", "chunked"), .oracle = LLHTTP_STRICTER,
     .why = "RFC 9110 6.5.1: trailer fields are never merged into the header section, and eddy "
            "drops them; llhttp 8.1 applies its Transfer-Encoding rule to the trailer"},
    {"absolute-form without \"//\"", IN("GET mailto:a@b HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = OK,
     .target = "mailto:a@b", H("Host", "a"), .oracle = LLHTTP_STRICTER,
     .why = "RFC 9112 3.2.2: absolute-form = absolute-URI = scheme \":\" hier-part, with no "
            "\"//\" needed; llhttp 8.1 insists on it"},
    {"authority-form with GET", IN("GET a.example:80 HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = OK,
     .target = "a.example:80", H("Host", "a"), .oracle = LLHTTP_STRICTER,
     .why = "the parser is not method-aware: authority-form (RFC 9112 3.2.3) with GET is for the "
            "handler to refuse; llhttp 8.1 takes it only with CONNECT"},
    {"chunked, whitespace after the size so far", IN(CHUNKED11), REST("5  "), .expect = OK,
     .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked"), .body_err = BODY_MORE,
     .oracle = LLHTTP_STRICTER,
     .why = "RFC 9112 7.1.1: BWS may precede a chunk extension's ';'; llhttp 8.1 rejects it"},

    /* ---- incomplete ---- */
    {"empty input", IN(""), .expect = 0},
    {"only an empty line", IN("\r\n"), .expect = 0},
    {"only a CR", IN("\r"), .expect = 0},
    {"only a method", IN("GET"), .expect = 0},
    {"a request line only", IN("GET / HTTP/1.1\r\n"), .expect = 0},
    {"no final empty line", IN(GET11), .expect = 0},
    {"final CR without LF", IN(GET11 "\r"), .expect = 0},

    /* ---- invalid: line ends and control characters ---- */
    {"bare CR in the request line", IN("GET / HTTP/1.1\rHost: a\r\n\r\n"), .expect = -400},
    {"bare CR as a leading empty line", IN("\r" GET11 "\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER,
     .why = "RFC 9112 2.2: a bare CR is invalid (or replaced by SP); llhttp 8.1 skips it before "
            "the request line"},
    {"bare CR ending a field", IN(GET11 "X: a\r\r\n\r\n"), .expect = -400},
    {"bare CR inside a value", IN(GET11 "X: a\rb\r\n\r\n"), .expect = -400},
    {"bare CR before the colon", IN(GET11 "X\r: a\r\n\r\n"), .expect = -400},
    {"CR CR LF as the final line", IN(GET11 "\r\r\n\r\n"), .expect = -400, .oracle = EDDY_STRICTER,
     .why = "RFC 9112 2.2: a bare CR is invalid; llhttp 8.1 takes \"\\r\\r\\n\" as the end of "
            "the header block"},
    {"CR CR LF as the final line, nothing after", IN(GET11 "\r\r\n"), .expect = 0,
     .oracle = EDDY_STRICTER,
     .why = "eddy checks a header block only once its empty line has arrived, and \"\\r\\r\\n\" "
            "is none: it waits (and would answer 400 once the block ends); llhttp 8.1 accepts "
            "it as the end (RFC 9112 2.2: a bare CR is invalid)"},
    {"NUL in a value", IN(GET11 "X: a\0b\r\n\r\n"), .expect = -400},
    {"SOH in a value", IN(GET11 "X: \x01\r\n\r\n"), .expect = -400},
    {"VT in a value",
     IN(GET11 "X: a\x0b"
              "b\r\n\r\n"),
     .expect = -400},
    {"ESC in a value",
     IN(GET11 "X: a\x1b"
              "b\r\n\r\n"),
     .expect = -400},
    {"DEL in a value", IN(GET11 "X: a\x7f\r\n\r\n"), .expect = -400},
    {"NUL in a name", IN(GET11 "X\0Y: a\r\n\r\n"), .expect = -400},
    {"SOH in a name", IN(GET11 "X\x01: a\r\n\r\n"), .expect = -400},
    {"DEL in a name", IN(GET11 "X\x7f: a\r\n\r\n"), .expect = -400},
    {"a control character before a name", IN(GET11 "\x01X: a\r\n\r\n"), .expect = -400},
    {"NUL in the target", IN("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400},
    {"DEL in the target", IN("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400},
    {"HTAB in the target", IN("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER,
     .why = "RFC 9112 3.2 / RFC 3986: HTAB is not a URI character; llhttp 8.1 (loose) takes it"},
    {"too many leading empty lines", IN("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n" GET11 "\r\n"),
     .expect = -400, .oracle = EDDY_STRICTER,
     .why = "RFC 9112 2.2 asks to ignore at least one empty line before the request line; eddy "
            "stops at 8 so that a stream of CRLF cannot hold a connection, llhttp has no limit"},

    /* ---- invalid: request line ---- */
    {"empty method", IN(" / HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400},
    {"a method with '('", IN("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400},
    {"a method with '@'", IN("G@T / HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400},
    {"HTAB after the method", IN("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400},
    {"two SP after the method", IN("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER,
     .why = "RFC 9112 3: elements are separated by a single SP (parsing on whitespace is only "
            "a MAY); llhttp 8.1 skips extra SP"},
    {"two SP before the version", IN("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER,
     .why = "RFC 9112 3: elements are separated by a single SP; llhttp 8.1 skips extra SP"},
    {"no target", IN("GET HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400},
    {"no version (HTTP/0.9 form)", IN("GET /\r\nHost: a\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER,
     .why = "RFC 9112 3: request-line = method SP request-target SP HTTP-version; llhttp 8.1 "
            "still takes an HTTP/0.9 simple request"},
    {"SP after the version", IN("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), .expect = -400},
    {"SP inside the target", IN("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400},
    {"SP before the method", IN(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400},
    {"HTTP/2.0", IN("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), .expect = -505, .oracle = EDDY_STRICTER,
     .why = "RFC 9110 15.6.6: 505 for a major version the server does not support; llhttp 8.1 "
            "accepts any digit.digit with an HTTP/1 syntax"},
    {"HTTP/0.9", IN("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), .expect = -505, .oracle = EDDY_STRICTER,
     .why = "RFC 9110 15.6.6: eddy speaks 1.0 and 1.1 only; llhttp 8.1 accepts 0.9 syntax"},
    {"HTTP/1.2", IN("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), .expect = -505},
    {"HTTP/3.0", IN("GET / HTTP/3.0\r\nHost: a\r\n\r\n"), .expect = -505},
    {"HTTP/1.10", IN("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), .expect = -400},
    {"lower-case http/1.1", IN("GET / http/1.1\r\nHost: a\r\n\r\n"), .expect = -400},
    {"HTTP/1", IN("GET / HTTP/1\r\nHost: a\r\n\r\n"), .expect = -400},
    {"HTTP/1.x", IN("GET / HTTP/1.x\r\nHost: a\r\n\r\n"), .expect = -400},
    {"HTTP/11", IN("GET / HTTP/11\r\nHost: a\r\n\r\n"), .expect = -400},
    {"HTTPS/1.1", IN("GET / HTTPS/1.1\r\nHost: a\r\n\r\n"), .expect = -400},
    {"request line over max_request_line", IN("GET /0123456789abcdefg HTTP/1.0\r\n\r\n"),
     .limits = &small_line, .expect = -414, .oracle = EDDY_STRICTER,
     .why = "RFC 9112 3: a server may limit the request line (414); llhttp has no limit"},
    {"request line at max_request_line", IN("GET /0123456789abcdef HTTP/1.0\r\n\r\n"),
     .limits = &small_line, .expect = OK, .target = "/0123456789abcdef", .version = 10, H(NULL)},

    /* ---- invalid: request targets ---- */
    {"'\"' in the target", IN("GET /a\"b HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER,
     .why = "RFC 9112 3.2 / RFC 3986 2: '\"' must be percent-encoded; llhttp 8.1 takes it"},
    {"'{' in the target", IN("GET /a{b HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER, .why = "RFC 3986 2: '{' must be percent-encoded; llhttp takes it"},
    {"'\\' in the target", IN("GET /a\\b HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER, .why = "RFC 3986 2: '\\' must be percent-encoded; llhttp takes it"},
    {"'<' in the target", IN("GET /<x> HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER, .why = "RFC 3986 2: '<' must be percent-encoded; llhttp takes it"},
    {"a fragment in the target", IN("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER,
     .why = "RFC 9112 3.2: request-target has no fragment; llhttp parses one"},
    {"non-ASCII in the target", IN("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER,
     .why = "RFC 3986 2: a URI is ASCII, other octets are percent-encoded; llhttp 8.1 (loose) "
            "takes them"},
    {"'%' at the end", IN("GET /a% HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER,
     .why = "RFC 3986 2.1: '%' starts pct-encoded = \"%\" HEXDIG HEXDIG; llhttp does not check"},
    {"'%' and one hex digit", IN("GET /%4 HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER, .why = "RFC 3986 2.1: two hex digits; llhttp does not check"},
    {"'%' and non-hex", IN("GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER, .why = "RFC 3986 2.1: two hex digits; llhttp does not check"},
    {"'%G1'", IN("GET /%G1 HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400, .oracle = EDDY_STRICTER,
     .why = "RFC 3986 2.1: two hex digits; llhttp does not check"},
    {"a target starting with '%'", IN("GET %2F HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400},
    {"a target starting with '?'", IN("GET ?a HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400},
    {"absolute-form with an IPv6 literal",
     IN("GET http://[::1]:8080/ HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), .expect = OK,
     .target = "http://[::1]:8080/", H("Host", "[::1]:8080")},
    {"'[' outside the authority", IN("GET /a[1] HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER,
     .why = "RFC 3986 3.2.2: '[' and ']' only around an IP-literal host; llhttp 8.1 takes them "
            "in a path"},
    /* RFC 9112 3.2: none of origin-form ('/'), absolute-form (scheme ':'),
     * authority-form (host:port, CONNECT) or asterisk-form ("*", OPTIONS). */
    {"a target that is no form at all", IN("GET abc HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400},
    {"a relative path target", IN("GET ../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400},
    {"'*' followed by more", IN("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER,
     .why = "RFC 9112 3.2.4: asterisk-form is exactly \"*\"; llhttp 8.1 takes \"*x\""},
    {"a scheme starting with a digit", IN("GET 1http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"),
     .expect = -400},
    {"CONNECT to a path", IN("CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = OK,
     .method = "CONNECT", .target = "/x", H("Host", "a")},
    /* RFC 9112 3.2.3 asks CONNECT for authority-form, but the parser takes
     * origin-form from any method; a handler refuses it. */
    {"CONNECT without a port", IN("CONNECT a.example HTTP/1.1\r\nHost: a.example\r\n\r\n"),
     .expect = -400, .oracle = EDDY_STRICTER,
     .why = "RFC 9112 3.2.3: authority-form = uri-host \":\" port; llhttp 8.1 takes a host alone"},

    {"CONNECT to an empty host", IN("CONNECT :443 HTTP/1.1\r\nHost: a\r\n\r\n"), .expect = -400,
     .method = "CONNECT", .target = ":443", H("Host", "a"), .bug = BUG_HEAD, .now = OK,
     .why = "BUG (minor): RFC 9110 9.3.6 / 3.2.3: CONNECT names a host and a port; an empty "
            "uri-host is accepted (llhttp 8.1 accepts it too)"},
    {"http URI with an empty host", IN("GET http://:80/ HTTP/1.1\r\nHost: a\r\n\r\n"),
     .expect = -400, .target = "http://:80/", H("Host", "a"), .bug = BUG_HEAD, .now = OK,
     .why = "BUG (minor): RFC 9110 4.2.1: a recipient MUST reject an \"http\" URI with an "
            "empty host as invalid; accepted (llhttp 8.1 accepts it too)"},

    /* ---- invalid: field lines ---- */
    {"SP before the colon", IN(GET11 "X : b\r\n\r\n"), .expect = -400, .oracle = EDDY_STRICTER,
     .why = "RFC 9112 5.1: a server MUST reject whitespace between name and colon with 400; "
            "llhttp 8.1 (loose) accepts it"},
    {"HTAB before the colon", IN(GET11 "X\t: b\r\n\r\n"), .expect = -400},
    {"SP before the colon of Content-Length", IN(POST11 "Content-Length : 5\r\n\r\nhello"),
     .expect = -400},
    {"obs-fold with SP", IN(GET11 "X: a\r\n b\r\n\r\n"), .expect = -400, .oracle = EDDY_STRICTER,
     .why = "RFC 9112 5.2: a server MUST reject obs-fold with 400 or unfold it; eddy rejects, "
            "llhttp 8.1 unfolds"},
    {"obs-fold with HTAB", IN(GET11 "X: a\r\n\tb\r\n\r\n"), .expect = -400, .oracle = EDDY_STRICTER,
     .why = "RFC 9112 5.2 (as above); llhttp 8.1 unfolds"},
    {"whitespace before the first field", IN("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), .expect = -400},
    {"empty name", IN(GET11 ": v\r\n\r\n"), .expect = -400, .oracle = EDDY_STRICTER,
     .why = "RFC 9110 5.1: field-name = token, at least one tchar; llhttp 8.1 takes an empty "
            "name"},
    {"SP inside a name", IN(GET11 "X Y: z\r\n\r\n"), .expect = -400, .oracle = EDDY_STRICTER,
     .why = "RFC 9110 5.1: field-name = token; RFC 9112 5.1: no whitespace before the colon; "
            "llhttp 8.1 (loose) reads \"X Y\" as a name"},
    {"no colon", IN(GET11 "Xyz\r\n\r\n"), .expect = -400},
    {"'(' in a name", IN(GET11 "X(Y: a\r\n\r\n"), .expect = -400},
    {"'/' in a name", IN(GET11 "X/Y: a\r\n\r\n"), .expect = -400},
    {"'\"' in a name", IN(GET11 "X\"Y: a\r\n\r\n"), .expect = -400},
    {"'@' in a name", IN(GET11 "X@Y: a\r\n\r\n"), .expect = -400},
    {"non-ASCII in a name", IN(GET11 "X\xc3\xa9: a\r\n\r\n"), .expect = -400},

    /* ---- invalid: Host ---- */
    {"1.1 without Host", IN("GET / HTTP/1.1\r\n\r\n"), .expect = -400, .oracle = EDDY_STRICTER,
     .why = "RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host; "
            "llhttp leaves that to the application"},
    {"two Host fields", IN(GET11 "Host: b\r\n\r\n"), .expect = -400, .oracle = EDDY_STRICTER,
     .why = "RFC 9112 3.2: MUST answer 400 to more than one Host; llhttp leaves that to the "
            "application"},
    {"two Host fields, other case", IN(GET11 "host: a\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER, .why = "RFC 9112 3.2 (as above)"},
    {"two Host fields in 1.0", IN("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER, .why = "RFC 9112 3.2 (as above)"},
    {"Host with SP", IN("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER,
     .why = "RFC 9112 3.2: MUST answer 400 to an invalid Host value (RFC 9110 7.2: uri-host "
            "[\":\" port]); llhttp leaves that to the application"},
    {"Host with userinfo", IN("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER, .why = "RFC 9112 3.2 (as above): no userinfo in Host"},
    {"Host with a path", IN("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER, .why = "RFC 9112 3.2 (as above)"},
    {"Host with obs-text", IN("GET / HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER, .why = "RFC 9112 3.2 (as above): reg-name is ASCII"},

    /* ---- invalid: Content-Length ---- */
    {"Content-Length: +5", IN(POST11 "Content-Length: +5\r\n\r\nhello"), .expect = -400},
    {"Content-Length: 5 5", IN(POST11 "Content-Length: 5 5\r\n\r\nhello"), .expect = -400},
    {"Content-Length: 5,5", IN(POST11 "Content-Length: 5,5\r\n\r\nhello"), .expect = -400},
    {"Content-Length: 0x5", IN(POST11 "Content-Length: 0x5\r\n\r\nhello"), .expect = -400},
    {"Content-Length: -1", IN(POST11 "Content-Length: -1\r\n\r\n"), .expect = -400},
    {"Content-Length: 1e3", IN(POST11 "Content-Length: 1e3\r\n\r\n"), .expect = -400},
    {"Content-Length empty", IN(POST11 "Content-Length:\r\n\r\n"), .expect = -400},
    {"Content-Length over 64 bits", IN(POST11 "Content-Length: 99999999999999999999\r\n\r\n"),
     .expect = -400},
    {"Content-Length twice, same value",
     IN(POST11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"), .expect = -400},
    {"Content-Length twice, different values",
     IN(POST11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"), .expect = -400},
    {"Content-Length over max_body", IN(POST11 "Content-Length: 1048577\r\n\r\n"), .expect = -413,
     .oracle = EDDY_STRICTER,
     .why = "RFC 9110 15.5.14: a server may refuse content larger than it will process (413); "
            "llhttp has no limit (and waits for the body)"},
    {"Content-Length over a small max_body", IN(POST11 "Content-Length: 5\r\n\r\nhello"),
     .limits = &small_body, .expect = -413, .oracle = EDDY_STRICTER,
     .why = "RFC 9110 15.5.14 (as above)"},

    /* ---- invalid: Transfer-Encoding ---- */
    {"Content-Length and Transfer-Encoding",
     IN(POST11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), .expect = -400},
    {"Transfer-Encoding and Content-Length",
     IN(POST11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"), .expect = -400},
    {"Transfer-Encoding: gzip", IN(POST11 "Transfer-Encoding: gzip\r\n\r\n"), .expect = -400},
    {"Transfer-Encoding: identity", IN(POST11 "Transfer-Encoding: identity\r\n\r\n"),
     .expect = -400},
    {"Transfer-Encoding: gzip, chunked",
     IN(POST11 "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), .expect = -501,
     .oracle = EDDY_STRICTER,
     .why = "RFC 9112 6.1: a server SHOULD answer 501 to a transfer coding it does not "
            "understand; llhttp only frames the body"},
    {"gzip and chunked in two fields",
     IN(POST11 "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
     .expect = -501, .oracle = EDDY_STRICTER, .why = "RFC 9112 6.1 (as above)"},
    {"Transfer-Encoding: chunked, gzip", IN(POST11 "Transfer-Encoding: chunked, gzip\r\n\r\n"),
     .expect = -400},
    {"chunked and gzip in two fields",
     IN(POST11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"), .expect = -400},
    {"Transfer-Encoding: chunked, chunked",
     IN(POST11 "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"), .expect = -400},
    {"chunked in two fields",
     IN(POST11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
     .expect = -400},
    {"Transfer-Encoding: chunked;q=1", IN(POST11 "Transfer-Encoding: chunked;q=1\r\n\r\n"),
     .expect = -400},
    {"Transfer-Encoding: xchunked", IN(POST11 "Transfer-Encoding: xchunked\r\n\r\n"),
     .expect = -400},
    {"Transfer-Encoding empty", IN(POST11 "Transfer-Encoding:\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER,
     .why = "RFC 9112 6.1: Transfer-Encoding = #transfer-coding needs a coding, and 6.3 makes "
            "a request without a final chunked a 400; llhttp ignores the empty field"},
    {"Transfer-Encoding in HTTP/1.0",
     IN("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER,
     .why = "RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing; "
            "llhttp decodes it"},

    {"Transfer-Encoding: <obs-text>gzip, chunked",
     IN(POST11 "Transfer-Encoding: \xd6gzip, chunked\r\n\r\n0\r\n\r\n"), .expect = -400,
     .oracle = EDDY_STRICTER,
     .why = "RFC 9110 10.1.4: a transfer-coding is a token; llhttp 8.1 skips what it does not "
            "know before the final chunked"},
    {"CONNECT with Transfer-Encoding: gzip",
     IN("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\nTransfer-Encoding: gzip\r\n\r\n"),
     .expect = -400, .oracle = EDDY_STRICTER,
     .why = "RFC 9112 6.3: a request whose final coding is not chunked is a 400; llhttp 8.1 skips "
            "all framing checks for CONNECT"},
    {"an empty Transfer-Encoding line beside chunked",
     IN(POST11 "Transfer-Encoding:\r\nTransfer-Encoding: chunked\r\n\r\n"), REST("0\r\n\r\n"),
     .expect = OK, .method = "POST",
     H("Host", "a", "Transfer-Encoding", "", "Transfer-Encoding", "chunked")},
    /* RFC 9110 5.3 combines the lines into ", chunked", a valid list (5.6.1:
     * empty elements are ignored), as if sent on one line. */

    /* ---- invalid: Expect ---- */
    {"Expect: foo", IN(GET11 "Expect: foo\r\n\r\n"), .expect = -417, .oracle = EDDY_STRICTER,
     .why = "RFC 9110 10.1.1: a server MAY answer 417 to an expectation other than "
            "100-continue; llhttp leaves Expect to the application"},
    {"Expect empty", IN(GET11 "Expect:\r\n\r\n"), .expect = -417, .oracle = EDDY_STRICTER,
     .why = "RFC 9110 10.1.1 (as above)"},
    {"Expect: 100-continue, foo", IN(GET11 "Expect: 100-continue, foo\r\n\r\n"), .expect = -417,
     .oracle = EDDY_STRICTER, .why = "RFC 9110 10.1.1 (as above)"},

    /* ---- limits, kept small so that every split stays cheap ---- */
    {"header block over max_header_bytes",
     IN("GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789012345678901234567890123456789\r\n\r\n"),
     .limits = &small_block, .expect = -431, .oracle = EDDY_STRICTER,
     .why = "RFC 6585 5: a server may refuse a header section that is too large (431); llhttp "
            "has no limit"},
    {"header block at max_header_bytes",
     IN("GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789abcdef0123456789abcdef\r\n\r\n"),
     .limits = &small_block, .expect = OK, H("Host", "a", "X", "0123456789abcdef0123456789abcdef")},
    {"more fields than max_headers", IN(GET11 "A: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
     .limits = &three_headers, .expect = -431, .oracle = EDDY_STRICTER,
     .why = "RFC 6585 5 (as above): a limit on the number of fields"},
    {"max_headers fields", IN(GET11 "A: 1\r\nB: 2\r\n\r\n"), .limits = &three_headers, .expect = OK,
     H("Host", "a", "A", "1", "B", "2")},

    /* ---- chunked bodies that are invalid ---- */
    {"bare LF after the chunk size", IN(CHUNKED11), REST("5\nhello\r\n0\r\n\r\n"), .expect = OK,
     .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked"), .body_err = -400},
    {"bare LF after chunk data", IN(CHUNKED11), REST("5\r\nhello\n0\r\n\r\n"), .expect = OK,
     .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked"), .body_err = -400},
    {"bare LF after the last chunk", IN(CHUNKED11), REST("0\n\r\n"), .expect = OK, .method = "POST",
     H("Host", "a", "Transfer-Encoding", "chunked"), .body_err = -400},
    {"bare CR in the size line", IN(CHUNKED11), REST("5\rhello\r\n0\r\n\r\n"), .expect = OK,
     .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked"), .body_err = -400},
    {"no chunk size", IN(CHUNKED11), REST("\r\nhello\r\n0\r\n\r\n"), .expect = OK, .method = "POST",
     H("Host", "a", "Transfer-Encoding", "chunked"), .body_err = -400},
    {"SP before the chunk size", IN(CHUNKED11), REST(" 5\r\nhello\r\n0\r\n\r\n"), .expect = OK,
     .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked"), .body_err = -400},
    {"17 hex digits", IN(CHUNKED11), REST("00000000000000005\r\nhello\r\n0\r\n\r\n"), .expect = OK,
     .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked"), .body_err = -400,
     .oracle = EDDY_STRICTER,
     .why = "eddy refuses more than 16 hex digits (64 bits) even when they are leading zeros; "
            "llhttp counts the value, not the digits"},
    {"a chunk over max_body", IN(CHUNKED11), REST("100001\r\n"), .expect = OK, .method = "POST",
     H("Host", "a", "Transfer-Encoding", "chunked"), .body_err = -413, .oracle = EDDY_STRICTER,
     .why = "RFC 9110 15.5.14: a server may refuse content over its limit; llhttp has none"},
    {"chunks over a small max_body", IN(CHUNKED11), REST("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
     .limits = &small_body, .expect = OK, .method = "POST",
     H("Host", "a", "Transfer-Encoding", "chunked"), .body_err = -413, .oracle = EDDY_STRICTER,
     .why = "RFC 9110 15.5.14 (as above)"},
    {"chunk data longer than its size", IN(CHUNKED11), REST("3\r\nabcd\r\n0\r\n\r\n"), .expect = OK,
     .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked"), .body_err = -400},
    {"a control character in an extension", IN(CHUNKED11), REST("5;a\x01\r\nhello\r\n0\r\n\r\n"),
     .expect = OK, .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked"),
     .body_err = -400},
    {"a trailer with obs-fold", IN(CHUNKED11), REST("0\r\nX: a\r\n b\r\n\r\n"), .expect = OK,
     .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked"), .body_err = -400,
     .oracle = EDDY_STRICTER,
     .why = "RFC 9112 5.2 / 7.1.2: trailer fields are field lines, no obs-fold; llhttp 8.1 "
            "unfolds"},
    /* RFC 9112 7.1: chunk-size = 1*HEXDIG [ chunk-ext ] CRLF, and chunk-ext =
     * *( BWS ";" ... ): after the size only whitespace, then ';' or CRLF.
     * Read loosely, "0x5" is the last chunk ("0", extension "x5") where a
     * proxy that reads 0x5 sees 5 bytes: a smuggling gap. */
    {"\"0x5\" as a chunk size", IN(CHUNKED11), REST("0x5\r\nhello\r\n0\r\n\r\n"), .expect = OK,
     .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked"), .body_err = -400},
    {"\"5 x\" as a chunk size line", IN(CHUNKED11), REST("5 x\r\nhello\r\n0\r\n\r\n"), .expect = OK,
     .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked"), .body_err = -400},
    {"\"5g\" as a chunk size", IN(CHUNKED11), REST("5g\r\nhello\r\n0\r\n\r\n"), .expect = OK,
     .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked"), .body_err = -400},
    /* RFC 9112 7.1.2: trailer-section = *( field-line CRLF ), and 5.1: no
     * whitespace before the colon. */
    {"a trailer line without a colon", IN(CHUNKED11), REST("5\r\nhello\r\n0\r\nfoo\r\n\r\n"),
     .expect = OK, .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked"),
     .body_err = -400},
    {"SP before a trailer's colon", IN(CHUNKED11), REST("0\r\nX : y\r\n\r\n"), .expect = OK,
     .method = "POST", H("Host", "a", "Transfer-Encoding", "chunked"), .body_err = -400,
     .oracle = EDDY_STRICTER,
     .why = "RFC 9112 5.1 applies to trailer field lines too; llhttp 8.1 (loose) accepts the "
            "whitespace"},
};

#define NCASES (sizeof cases / sizeof cases[0])

/* ---- checking one case ------------------------------------------------------ */

/* The bytes of a case: head then rest, in a buffer of exactly that size. */
static char *case_input(const struct req_case *c, size_t *len)
{
    *len = c->head_len + c->rest_len;
    char *buf = malloc(*len ? *len : 1);
    cr_assert(buf);
    memcpy(buf, c->head, c->head_len);
    if (c->rest_len)
        memcpy(buf + c->head_len, c->rest, c->rest_len);
    return buf;
}

/* What the parser should answer for the header block. */
static int header_verdict(const struct req_case *c)
{
    int v = c->bug == BUG_HEAD ? c->now : c->expect;
    return v == OK ? (int)c->head_len : v;
}

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && p + n <= buf + len;
}

static void check_views_inside(const struct req_case *c, const struct eddy_http_request *req,
                               const char *buf, int r)
{
    size_t n = (size_t)r;
    cr_assert(inside(req->method, req->method_len, buf, n), "%s: method outside", c->name);
    cr_assert(inside(req->target, req->target_len, buf, n), "%s: target outside", c->name);
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct eddy_http_header *h = &req->headers[i];
        cr_assert(inside(h->name, h->name_len, buf, n), "%s: name %zu outside", c->name, i);
        cr_assert(inside(h->value, h->value_len, buf, n), "%s: value %zu outside", c->name, i);
    }
}

/* Parses buf[0..len) from a private copy of exactly len bytes, and checks
 * that a complete request's views lie inside that copy. */
static int parse_copy(const struct req_case *c, const char *buf, size_t len, size_t *scanned,
                      struct eddy_http_request *req)
{
    char *copy = malloc(len ? len : 1);
    cr_assert(copy);
    memcpy(copy, buf, len);
    int r = eddy_http_parse_request(copy, len, scanned, c->limits, req);
    if (r > 0)
        check_views_inside(c, req, copy, r);
    free(copy);
    return r;
}

static void expect_bytes(const char *what, const struct req_case *c, const char *got, size_t n,
                         const char *want, size_t want_len)
{
    cr_expect(n == want_len && memcmp(got, want, n) == 0, "%s: %s is \"%.*s\", not \"%.*s\"",
              c->name, what, (int)n, got, (int)want_len, want);
}

static void check_views(const struct req_case *c, const struct eddy_http_request *req)
{
    const char *method = c->method ? c->method : "GET";
    const char *target = c->target ? c->target : "/";
    int version = c->version ? c->version : 11;
    expect_bytes("method", c, req->method, req->method_len, method, strlen(method));
    expect_bytes("target", c, req->target, req->target_len, target, strlen(target));
    cr_expect(req->version == version, "%s: version %d", c->name, req->version);

    size_t n = 0;
    bool chunked = false, has_cl = false;
    uint64_t cl = 0;
    const char *host = NULL;
    for (; c->hdr[2 * n]; n++) {
        const char *name = c->hdr[2 * n], *value = c->hdr[2 * n + 1];
        if (n < req->num_headers) {
            expect_bytes("field name", c, req->headers[n].name, req->headers[n].name_len, name,
                         strlen(name));
            expect_bytes("field value", c, req->headers[n].value, req->headers[n].value_len, value,
                         strlen(value));
        }
        if (strcasecmp(name, "transfer-encoding") == 0)
            chunked = true;
        if (strcasecmp(name, "content-length") == 0) {
            has_cl = true;
            cl = strtoull(value, NULL, 10);
        }
        if (strcasecmp(name, "host") == 0)
            host = value;
    }
    cr_expect(req->num_headers == n, "%s: %zu fields, not %zu", c->name, req->num_headers, n);
    cr_expect(req->chunked == chunked, "%s: chunked %d", c->name, req->chunked);
    cr_expect(req->has_content_length == has_cl && req->content_length == cl,
              "%s: content length %d %llu", c->name, req->has_content_length,
              (unsigned long long)req->content_length);
    if (host) {
        cr_expect(req->host && req->host_len == strlen(host) &&
                      memcmp(req->host, host, req->host_len) == 0,
                  "%s: host", c->name);
    } else {
        cr_expect(req->host == NULL, "%s: host set", c->name);
    }
    bool ka = c->keep_alive == KA_YES || (c->keep_alive == KA_DEFAULT && version == 11);
    cr_expect(req->keep_alive == ka, "%s: keep_alive %d", c->name, req->keep_alive);
    cr_expect(req->expect_continue == c->expect_continue, "%s: expect_continue %d", c->name,
              req->expect_continue);
    const struct eddy_http_header *h = eddy_http_find_header(req, "HOST");
    cr_expect((h != NULL) == (host != NULL), "%s: find_header(HOST)", c->name);
}

/* The request with its body, as eddy would hand it to a handler. */
struct full {
    int verdict; /* ORACLE_ACCEPT, _INCOMPLETE, _REJECT */
    int status;  /* eddy's: header length or -status; the body's -status */
    size_t consumed;
    char *body; /* decoded (owned) */
    size_t body_len;
};

static struct full eddy_full(const char *buf, size_t len, const struct eddy_http_limits *limits,
                             struct eddy_http_request *req)
{
    struct full f = {0};
    size_t scanned = 0;
    int r = eddy_http_parse_request(buf, len, &scanned, limits, req);
    f.status = r;
    if (r <= 0) {
        f.verdict = r < 0 ? ORACLE_REJECT : ORACLE_INCOMPLETE;
        return f;
    }
    size_t avail = len - (size_t)r;
    f.body = malloc(avail ? avail : 1);
    cr_assert(f.body);
    memcpy(f.body, buf + r, avail);
    if (req->chunked) {
        struct eddy_http_chunked d = {0};
        int b = eddy_http_chunked_decode(&d, f.body, avail, limits ? limits->max_body : 0);
        f.verdict = b == 1 ? ORACLE_ACCEPT : b == 0 ? ORACLE_INCOMPLETE : ORACLE_REJECT;
        if (b < 0)
            f.status = b;
        f.body_len = d.out;
        f.consumed = (size_t)r + d.in;
    } else if (avail < req->content_length) {
        f.verdict = ORACLE_INCOMPLETE;
    } else {
        f.verdict = ORACLE_ACCEPT;
        f.body_len = (size_t)req->content_length;
        f.consumed = (size_t)r + f.body_len;
    }
    return f;
}

static void check_oracle(const struct req_case *c, const char *buf, size_t len,
                         const struct full *f, const struct eddy_http_request *req)
{
    struct oracle_result o;
    oracle_parse(buf, len, &o);
    const char *why = o.reason ? o.reason : "";
    switch (c->oracle) {
    case EDDY_STRICTER:
        cr_expect(f->verdict < o.verdict,
                  "%s: expected eddy stricter than llhttp, got eddy %d, llhttp %d (%s: %s)",
                  c->name, f->verdict, o.verdict, o.err_name, why);
        break;
    case LLHTTP_STRICTER:
        cr_expect(o.verdict < f->verdict,
                  "%s: expected llhttp stricter than eddy, got eddy %d, llhttp %d (%s: %s)",
                  c->name, f->verdict, o.verdict, o.err_name, why);
        break;
    default:
        cr_expect(f->verdict == o.verdict, "%s: eddy %d, llhttp %d (%s: %s)", c->name, f->verdict,
                  o.verdict, o.err_name, why);
        if (f->verdict != ORACLE_ACCEPT || o.verdict != ORACLE_ACCEPT)
            break;
        expect_bytes("llhttp method", c, oracle_bytes(&o, o.method), o.method.len, req->method,
                     req->method_len);
        expect_bytes("llhttp target", c, oracle_bytes(&o, o.target), o.target.len, req->target,
                     req->target_len);
        cr_expect(o.version == req->version, "%s: llhttp version %d", c->name, o.version);
        cr_expect(o.num_headers == req->num_headers, "%s: llhttp has %zu fields", c->name,
                  o.num_headers);
        for (size_t i = 0; i < o.num_headers && i < req->num_headers; i++) {
            const struct eddy_http_header *h = &req->headers[i];
            expect_bytes("llhttp name", c, oracle_bytes(&o, o.names[i]), o.names[i].len, h->name,
                         h->name_len);
            /* llhttp leaves trailing whitespace in a value, which RFC
             * 9110 5.5 says is not part of it: compare without. */
            const char *v = oracle_bytes(&o, o.values[i]);
            size_t vn = o.values[i].len;
            while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
                vn--;
            expect_bytes("llhttp value", c, v, vn, h->value, h->value_len);
        }
        expect_bytes("llhttp body", c, oracle_bytes(&o, o.body), o.body.len, f->body, f->body_len);
        cr_expect(o.consumed == f->consumed, "%s: llhttp took %zu bytes, eddy %zu", c->name,
                  o.consumed, f->consumed);
        if (c->oracle == KEEPALIVE_DIFFERS)
            cr_expect(o.keep_alive != req->keep_alive, "%s: llhttp keep-alive agrees", c->name);
        else
            cr_expect(o.keep_alive == req->keep_alive, "%s: llhttp keep-alive %d", c->name,
                      o.keep_alive);
    }
    oracle_free(&o);
}

static void check_case(const struct req_case *c)
{
    static struct eddy_http_request req;
    size_t len;
    char *buf = case_input(c, &len);
    int want = header_verdict(c);

    /* Whole. */
    size_t scanned = 0;
    int r = eddy_http_parse_request(buf, len, &scanned, c->limits, &req);
    if (r != want) {
        cr_expect(r == want, "%s: whole: %d, expected %d", c->name, r, want);
        free(buf);
        return;
    }
    if (r > 0) {
        check_views_inside(c, &req, buf, r);
        if (!c->unchecked_views)
            check_views(c, &req);
    }

    /* Split at every boundary: the first k bytes, then all of them. */
    for (size_t k = 0; k <= len; k++) {
        scanned = 0;
        int v = parse_copy(c, buf, k, &scanned, &req);
        if (v == 0)
            v = parse_copy(c, buf, len, &scanned, &req);
        if (v != want) {
            cr_expect(v == want, "%s: split at %zu: %d, expected %d", c->name, k, v, want);
            free(buf);
            return;
        }
    }

    /* One byte at a time. */
    scanned = 0;
    int v = 0;
    for (size_t k = 1; k <= len && v == 0; k++)
        v = parse_copy(c, buf, k, &scanned, &req);
    if (v != want) {
        cr_expect(v == want, "%s: byte by byte: %d, expected %d", c->name, v, want);
        free(buf);
        return;
    }

    /* The body, then llhttp. */
    struct full f = eddy_full(buf, len, c->limits, &req);
    if (r > 0) {
        int want_body = c->bug == BUG_BODY ? c->now : c->body_err;
        int got = f.verdict == ORACLE_ACCEPT       ? BODY_OK
                  : f.verdict == ORACLE_INCOMPLETE ? BODY_MORE
                                                   : f.status;
        cr_expect(got == want_body, "%s: body verdict %d, expected %d", c->name, got, want_body);
        if (got == BODY_OK)
            expect_bytes("body", c, f.body, f.body_len, c->body ? c->body : "",
                         c->body ? strlen(c->body) : 0);
    }
    check_oracle(c, buf, len, &f, &req);
    free(f.body);
    free(buf);
}

Test(http_parse, corpus)
{
    cr_assert(NCASES >= 120, "%zu cases", NCASES);
    for (size_t i = 0; i < NCASES; i++)
        check_case(&cases[i]);
}

/* ---- generated requests at the default limits ------------------------------- */

/* A request of total header-block size `block` whose request line takes
 * `line` bytes (CRLF included), padded with one "X: ..." field. */
static char *sized_request(size_t line, size_t block, size_t *len)
{
    const char *host = "Host: a\r\n";
    char *buf = malloc(block + 1);
    cr_assert(buf);
    size_t n = 0;
    memcpy(buf, "GET /", 5);
    n = 5;
    size_t pad = line - 5 - strlen(" HTTP/1.1\r\n");
    memset(buf + n, 'a', pad);
    n += pad;
    n += (size_t)sprintf(buf + n, " HTTP/1.1\r\n%s", host);
    if (block > n + 2) {
        size_t value = block - n - 2 - strlen("X: \r\n");
        n += (size_t)sprintf(buf + n, "X: ");
        memset(buf + n, 'v', value);
        n += value;
        n += (size_t)sprintf(buf + n, "\r\n");
    }
    n += (size_t)sprintf(buf + n, "\r\n");
    cr_assert(n == block, "built %zu bytes, wanted %zu", n, block);
    *len = n;
    return buf;
}

static struct req_case generated(const char *name, const char *buf, size_t len, int expect,
                                 int oracle, const char *why)
{
    struct req_case c = {.name = name,
                         .head = buf,
                         .head_len = len,
                         .expect = expect,
                         .oracle = oracle,
                         .why = why,
                         .unchecked_views = true};
    return c;
}

Test(http_parse, request_line_limit)
{
    size_t len;
    char *buf = sized_request(8192, 8192 + 11, &len);
    struct req_case c = generated("request line of 8192 bytes", buf, len, OK, AGREE, NULL);
    check_case(&c);
    free(buf);

    buf = sized_request(8193, 8193 + 11, &len);
    c = generated("request line of 8193 bytes", buf, len, -414, EDDY_STRICTER,
                  "RFC 9112 3: a server may limit the request line (414); llhttp has no limit");
    check_case(&c);
    free(buf);
}

Test(http_parse, header_block_limit)
{
    size_t len;
    char *buf = sized_request(100, 16384, &len);
    struct req_case c = generated("header block of 16384 bytes", buf, len, OK, AGREE, NULL);
    check_case(&c);
    free(buf);

    buf = sized_request(100, 16385, &len);
    c = generated("header block of 16385 bytes", buf, len, -431, EDDY_STRICTER,
                  "RFC 6585 5: a server may refuse a header section that is too large");
    check_case(&c);
    free(buf);
}

static char *many_fields(size_t fields, size_t *len)
{
    char *buf = malloc(64 + fields * 16);
    cr_assert(buf);
    size_t n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (size_t i = 1; i < fields; i++)
        n += (size_t)sprintf(buf + n, "F%zu: %zu\r\n", i, i);
    n += (size_t)sprintf(buf + n, "\r\n");
    *len = n;
    return buf;
}

Test(http_parse, field_count_limit)
{
    static struct eddy_http_request req;
    size_t len;
    char *buf = many_fields(100, &len);
    struct req_case c = generated("100 fields", buf, len, OK, AGREE, NULL);
    check_case(&c);
    size_t scanned = 0;
    cr_assert(eddy_http_parse_request(buf, len, &scanned, NULL, &req) == (int)len);
    cr_assert(req.num_headers == 100);
    cr_assert(req.headers[99].name_len == 3 && memcmp(req.headers[99].name, "F99", 3) == 0);
    cr_assert(req.headers[99].value_len == 2 && memcmp(req.headers[99].value, "99", 2) == 0);
    free(buf);

    buf = many_fields(101, &len);
    c = generated("101 fields", buf, len, -431, EDDY_STRICTER,
                  "RFC 6585 5: a limit on the number of fields; llhttp has none");
    check_case(&c);
    /* max_headers above EDDY_HTTP_MAX_HEADERS is capped, not obeyed. */
    struct eddy_http_limits lots = {.max_headers = 1000};
    scanned = 0;
    cr_assert(eddy_http_parse_request(buf, len, &scanned, &lots, &req) == -431);
    free(buf);
}

/* The verdict for an over-long request does not depend on how its bytes
 * arrive: the request line is measured first, whole or in pieces, so a
 * request line over max_request_line gets 414 (RFC 9112 3) even inside a
 * header block that is also too big, or with a bad method in it. */
Test(http_parse, over_long_line_gets_414_however_split)
{
    static struct eddy_http_request req;
    size_t len;
    char *buf = sized_request(17000, 17000 + 11, &len);
    size_t scanned = 0;
    cr_expect(eddy_http_parse_request(buf, len, &scanned, NULL, &req) == -414);
    scanned = 0;
    int v = 0;
    for (size_t k = 1; k <= len && v == 0; k++)
        v = eddy_http_parse_request(buf, k, &scanned, NULL, &req);
    cr_expect(v == -414, "byte by byte: %d", v);
    free(buf);

    buf = sized_request(9000, 9000 + 11, &len);
    buf[1] = '@'; /* "G@T": an invalid method in an over-long line */
    scanned = 0;
    cr_expect(eddy_http_parse_request(buf, len, &scanned, NULL, &req) == -414);
    scanned = 0;
    v = 0;
    for (size_t k = 1; k <= len && v == 0; k++)
        v = eddy_http_parse_request(buf, k, &scanned, NULL, &req);
    cr_expect(v == -414, "byte by byte: %d", v);
    free(buf);
}

/* ---- header lookup and reasons ---------------------------------------------- */

Test(http_parse, find_header)
{
    static struct eddy_http_request req;
    const char *in = "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
    size_t scanned = 0;
    cr_assert(eddy_http_parse_request(in, strlen(in), &scanned, NULL, &req) > 0);
    const struct eddy_http_header *h = eddy_http_find_header(&req, "X-a");
    cr_assert(h && h->value_len == 1 && h->value[0] == '1', "the first match");
    cr_assert(eddy_http_find_header(&req, "host") == &req.headers[0]);
    cr_assert_null(eddy_http_find_header(&req, "X"));
    cr_assert_null(eddy_http_find_header(&req, "X-AB"));
    cr_assert_null(eddy_http_find_header(&req, ""));
}

Test(http_parse, reason)
{
    cr_assert_str_eq(eddy_http_reason(200), "OK");
    cr_assert_str_eq(eddy_http_reason(400), "Bad Request");
    cr_assert_str_eq(eddy_http_reason(413), "Content Too Large");
    cr_assert_str_eq(eddy_http_reason(414), "URI Too Long");
    cr_assert_str_eq(eddy_http_reason(417), "Expectation Failed");
    cr_assert_str_eq(eddy_http_reason(431), "Request Header Fields Too Large");
    cr_assert_str_eq(eddy_http_reason(501), "Not Implemented");
    cr_assert_str_eq(eddy_http_reason(505), "HTTP Version Not Supported");
    cr_assert_str_eq(eddy_http_reason(299), "Unknown");
    cr_assert_str_eq(eddy_http_reason(-1), "Unknown");
}

/* ---- the chunked decoder ------------------------------------------------------ */

struct chunk_case {
    const char *name;
    const char *in;
    size_t len;
    uint64_t max_body; /* 0: the default, 1 MiB */
    int expect;        /* 1 (complete), 0 (more needed), -400, -413 */
    const char *out;   /* the decoded bytes (so far, when 0) */
    size_t used;       /* when complete: raw bytes of the body; 0: all of .in */
};

#define CIN(s) .in = (s), .len = sizeof(s) - 1

static const struct chunk_case chunk_cases[] = {
    {"one chunk", CIN("5\r\nhello\r\n0\r\n\r\n"), .expect = 1, .out = "hello"},
    {"several chunks", CIN("5\r\nhello\r\n1\r\n,\r\n6\r\n world\r\n0\r\n\r\n"), .expect = 1,
     .out = "hello, world"},
    {"hex sizes", CIN("a\r\n0123456789\r\nB\r\nabcdefghijk\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n"),
     .expect = 1, .out = "0123456789abcdefghijk0123456789abcdef"},
    {"only the last chunk", CIN("0\r\n\r\n"), .expect = 1, .out = ""},
    {"a last chunk of zeros", CIN("000\r\n\r\n"), .expect = 1, .out = ""},
    {"16 hex digits", CIN("0000000000000005\r\nhello\r\n0\r\n\r\n"), .expect = 1, .out = "hello"},
    {"extensions", CIN("5;a=b\r\nhello\r\n3;x;y=\"q s\"\r\nabc\r\n0;end\r\n\r\n"), .expect = 1,
     .out = "helloabc"},
    {"BWS before an extension", CIN("5 ;a=b\r\nhello\r\n0\r\n\r\n"), .expect = 1, .out = "hello"},
    {"trailers", CIN("5\r\nhello\r\n0\r\nX-Sum: 1\r\nY:\r\n\r\n"), .expect = 1, .out = "hello"},
    {"a body, then the next request", CIN("2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), .expect = 1,
     .out = "hi", .used = 12},
    {"a body, then junk", CIN("0\r\n\r\n\r\n\r\n"), .expect = 1, .out = "", .used = 5},
    {"incomplete size", CIN("5"), .expect = 0, .out = ""},
    {"incomplete data", CIN("5\r\nhel"), .expect = 0, .out = "hel"},
    {"incomplete after the last chunk", CIN("0\r\n"), .expect = 0, .out = ""},
    {"incomplete trailer", CIN("0\r\nX: y"), .expect = 0, .out = ""},
    {"at max_body", CIN("2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"), .max_body = 4, .expect = 1,
     .out = "abcd"},
    {"one chunk over max_body", CIN("5\r\nhello\r\n0\r\n\r\n"), .max_body = 4, .expect = -413},
    {"chunks adding up over max_body", CIN("2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"), .max_body = 4,
     .expect = -413},
    {"the largest size", CIN("FFFFFFFFFFFFFFFF\r\n"), .expect = -413},
    {"17 hex digits", CIN("00000000000000005\r\nhello\r\n0\r\n\r\n"), .expect = -400},
    {"17 significant hex digits", CIN("10000000000000000\r\n"), .expect = -400},
    {"bare LF after the size", CIN("5\nhello\r\n0\r\n\r\n"), .expect = -400},
    {"bare LF after an extension", CIN("5;a=b\nhello\r\n0\r\n\r\n"), .expect = -400},
    {"bare LF after the data", CIN("5\r\nhello\n0\r\n\r\n"), .expect = -400},
    {"bare LF after the last chunk", CIN("0\n\r\n"), .expect = -400},
    {"bare LF ending a trailer", CIN("0\r\nX: y\n\r\n"), .expect = -400},
    {"bare LF as the final line", CIN("0\r\n\n"), .expect = -400},
    {"bare CR in the size line", CIN("5\rhello\r\n0\r\n\r\n"), .expect = -400},
    {"CR without LF after the data", CIN("5\r\nhello\rX0\r\n\r\n"), .expect = -400},
    {"no size", CIN("\r\nhello\r\n0\r\n\r\n"), .expect = -400},
    {"a non-hex size", CIN("g\r\n"), .expect = -400},
    {"SP before the size", CIN(" 5\r\nhello\r\n0\r\n\r\n"), .expect = -400},
    {"a negative size", CIN("-5\r\n"), .expect = -400},
    {"data longer than its size", CIN("3\r\nabcd\r\n0\r\n\r\n"), .expect = -400},
    {"a CTL in an extension", CIN("5;a\x01=b\r\nhello\r\n0\r\n\r\n"), .expect = -400},
    {"a trailer with obs-fold", CIN("0\r\nX: a\r\n b\r\n\r\n"), .expect = -400},
    {"a trailer with a CTL", CIN("0\r\nX: a\x01\r\n\r\n"), .expect = -400},
    {"a trailer with an empty name", CIN("0\r\n: a\r\n\r\n"), .expect = -400},
};

#define NCHUNK (sizeof chunk_cases / sizeof chunk_cases[0])

/* Decodes buf[0..len) in place through a copy of exactly len bytes, so that
 * ASan sees any read past len. */
static int decode_copy(struct eddy_http_chunked *d, char *buf, size_t len, uint64_t max_body)
{
    char *copy = malloc(len ? len : 1);
    cr_assert(copy);
    memcpy(copy, buf, len);
    int r = eddy_http_chunked_decode(d, copy, len, max_body);
    memcpy(buf, copy, len);
    free(copy);
    return r;
}

static void check_decoded(const struct chunk_case *c, const char *how, int r,
                          const struct eddy_http_chunked *d, const char *buf)
{
    cr_assert(r == c->expect, "%s (%s): %d, expected %d", c->name, how, r, c->expect);
    if (r < 0)
        return;
    size_t n = strlen(c->out);
    cr_assert(d->out == n && memcmp(buf, c->out, n) == 0, "%s (%s): decoded \"%.*s\"", c->name, how,
              (int)d->out, buf);
    if (r == 1)
        cr_assert(d->in == (c->used ? c->used : c->len), "%s (%s): used %zu", c->name, how, d->in);
}

static void check_chunk_case(const struct chunk_case *c)
{
    char *buf = malloc(c->len + 1);
    cr_assert(buf);

    memcpy(buf, c->in, c->len);
    struct eddy_http_chunked d = {0};
    int r = decode_copy(&d, buf, c->len, c->max_body);
    check_decoded(c, "whole", r, &d, buf);
    if (r == 1) {
        /* Done is done: more bytes change nothing. */
        size_t in = d.in, out = d.out;
        cr_assert(decode_copy(&d, buf, c->len, c->max_body) == 1);
        cr_assert(d.in == in && d.out == out, "%s: decoding again moved", c->name);
    }

    for (size_t k = 0; k <= c->len; k++) {
        memcpy(buf, c->in, c->len);
        memset(&d, 0, sizeof d);
        r = decode_copy(&d, buf, k, c->max_body);
        if (r == 0)
            r = decode_copy(&d, buf, c->len, c->max_body);
        char how[32];
        snprintf(how, sizeof how, "split at %zu", k);
        check_decoded(c, how, r, &d, buf);
    }

    memcpy(buf, c->in, c->len);
    memset(&d, 0, sizeof d);
    r = 0;
    for (size_t k = 1; k <= c->len && r == 0; k++)
        r = decode_copy(&d, buf, k, c->max_body);
    check_decoded(c, "byte by byte", r, &d, buf);
    free(buf);
}

Test(chunked, corpus)
{
    for (size_t i = 0; i < NCHUNK; i++)
        check_chunk_case(&chunk_cases[i]);
}

Test(chunked, long_lines)
{
    /* An extension up to the line limit passes, one byte more does not. */
    static char buf[5000];
    size_t n = (size_t)sprintf(buf, "1;");
    memset(buf + n, 'e', 4096 - n);
    n = 4096; /* the size line without its CRLF: MAX_CHUNK_LINE */
    n += (size_t)sprintf(buf + n, "\r\nx\r\n0\r\n\r\n");
    struct chunk_case ok = {"extension at the limit", buf, n, 0, 1, "x", 0};
    check_chunk_case(&ok);
    memmove(buf + 1, buf, n);
    buf[0] = '0';
    struct chunk_case over = {"extension over the limit", buf, n + 1, 0, -400, NULL, 0};
    check_chunk_case(&over);

    /* Trailers: 8 KiB of them at most. */
    static char big[9000];
    n = (size_t)sprintf(big, "0\r\nX: ");
    memset(big + n, 't', 8300 - n);
    n = 8300;
    n += (size_t)sprintf(big + n, "\r\n\r\n");
    struct chunk_case trailers = {"trailers over 8 KiB", big, n, 0, -413, NULL, 0};
    check_chunk_case(&trailers);
}

Test(chunked, in_place_and_resumable)
{
    /* The decoded body ends up contiguous at the start of the buffer, and a
     * body arriving in two reads decodes the same as in one. */
    char buf[64] = "3\r\nabc\r\n4\r\ndefg\r\n0\r\nT: 1\r\n\r\nNEXT";
    size_t len = strlen(buf);
    struct eddy_http_chunked d = {0};
    cr_assert(eddy_http_chunked_decode(&d, buf, 10, 0) == 0);
    cr_assert(d.out == 3 && memcmp(buf, "abc", 3) == 0);
    cr_assert(eddy_http_chunked_decode(&d, buf, len, 0) == 1);
    cr_assert(d.out == 7 && memcmp(buf, "abcdefg", 7) == 0);
    cr_assert(d.in == len - 4 && memcmp(buf + d.in, "NEXT", 4) == 0, "in %zu", d.in);
}

/* ---- dates -------------------------------------------------------------------- */

Test(http_date, known_value)
{
    char buf[40];
    cr_assert(eddy_http_date(784111777, buf) == 29);
    cr_assert_str_eq(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
    int64_t t = 0;
    cr_assert(eddy_http_parse_date("Sun, 06 Nov 1994 08:49:37 GMT", 29, &t) == 0);
    cr_assert(t == 784111777);

    cr_assert(eddy_http_date(0, buf) == 29);
    cr_assert_str_eq(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
    cr_assert(eddy_http_date(951782400, buf) == 29);
    cr_assert_str_eq(buf, "Tue, 29 Feb 2000 00:00:00 GMT");
    cr_assert(eddy_http_date(253402300799, buf) == 29);
    cr_assert_str_eq(buf, "Fri, 31 Dec 9999 23:59:59 GMT");
}

Test(http_date, out_of_range_is_the_epoch)
{
    char buf[40];
    cr_assert(eddy_http_date(253402300800, buf) == 29); /* year 10000 */
    cr_assert_str_eq(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
    cr_assert(eddy_http_date(INT64_MAX, buf) == 29);
    cr_assert_str_eq(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
}

Test(http_date, round_trip)
{
    char buf[40];
    /* A stride that is not a multiple of a day visits every hour, minute,
     * second, weekday and month over the years. */
    for (int64_t t = -86400LL * 365 * 60; t < 253402300799; t += 86400LL * 97 + 3601 * 7 + 13) {
        size_t n = eddy_http_date(t, buf);
        cr_assert(n == 29 && strlen(buf) == 29, "%lld: %s", (long long)t, buf);
        int64_t back = 0;
        cr_assert(eddy_http_parse_date(buf, n, &back) == 0, "%lld: %s", (long long)t, buf);
        cr_assert(back == t, "%s: %lld, not %lld", buf, (long long)back, (long long)t);
    }
}

Test(http_date, invalid)
{
    static const char *bad[] = {
        "",
        "Sun, 06 Nov 1994 08:49:37 GM",
        "Sun, 06 Nov 1994 08:49:37 GMT ",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 gmt",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06 nov 1994 08:49:37 GMT",
        "Sun 06 Nov 1994 08:49:37 GMTx",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:49:37 GMT",
        "Sun, 06 Nov 1994 08:60:37 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMTx",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 0x Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 19 4 08:49:37 GMT",
        "Sun, 06 Nov 1994 08-49-37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t t = 42;
        cr_assert(eddy_http_parse_date(bad[i], strlen(bad[i]), &t) == -EINVAL, "\"%s\"", bad[i]);
        cr_assert(t == 42, "\"%s\" wrote *t", bad[i]);
    }
}

/* ---- seed corpora for the fuzzers ---------------------------------------------- */

/* Writes dir/NNN-name-of-the-case: the split byte, then data. */
static void write_seed(const char *dir, size_t i, const char *name, const char *data, size_t len)
{
    char path[512];
    size_t n = (size_t)snprintf(path, sizeof path, "%s/%03zu-", dir, i);
    for (const char *p = name; *p && n + 2 < sizeof path; p++) {
        bool word =
            (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9');
        if (word)
            path[n++] = *p;
        else if (path[n - 1] != '-')
            path[n++] = '-';
    }
    path[n] = '\0';
    FILE *f = fopen(path, "wb");
    cr_assert(f, "%s", path);
    fputc((int)(i * 37 % 256), f); /* a split position */
    fwrite(data, 1, len, f);
    fclose(f);
}

/* With EDDY_WRITE_SEEDS=dir set, writes the corpus above as seeds: dir/http
 * for fuzz_http_parse (a split byte, then the request) and dir/chunked for
 * fuzz_chunked (a split byte, then the body). Both directories must exist.
 * Otherwise does nothing. */
Test(http_parse, write_seed_corpus)
{
    const char *dir = getenv("EDDY_WRITE_SEEDS");
    if (!dir)
        return;
    char sub[400];
    snprintf(sub, sizeof sub, "%s/http", dir);
    for (size_t i = 0; i < NCASES; i++) {
        size_t len;
        char *buf = case_input(&cases[i], &len);
        write_seed(sub, i, cases[i].name, buf, len);
        free(buf);
    }
    snprintf(sub, sizeof sub, "%s/chunked", dir);
    for (size_t i = 0; i < NCHUNK; i++)
        write_seed(sub, i, chunk_cases[i].name, chunk_cases[i].in, chunk_cases[i].len);
}
