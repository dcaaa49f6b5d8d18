/* eddy-load: HTTP/1.x response framing (see eddy-load-http.h). Lenient
 * where leniency cannot mis-frame (a bare LF ends a line, header names in
 * any case), strict where it could (a malformed or conflicting
 * Content-Length, a bad chunk size). */
#include "eddy-load-http.h"

#include <string.h>
#include <strings.h>

enum {
    S_STATUS,     /* status line */
    S_HEADER,     /* header lines up to the empty one */
    S_BODY,       /* Content-Length bytes */
    S_CHUNK_SIZE, /* a chunk-size line */
    S_CHUNK_DATA, /* chunk bytes */
    S_CHUNK_END,  /* the CRLF after chunk data */
    S_TRAILER,    /* trailer lines up to the empty one */
    S_UNTIL_EOF,  /* a body delimited by the close */
};

void http_resp_init(struct http_resp *r)
{
    memset(r, 0, sizeof *r);
    r->state = S_STATUS;
}

bool http_resp_idle(const struct http_resp *r)
{
    return r->state == S_STATUS;
}

bool http_resp_eof(struct http_resp *r)
{
    if (r->state != S_UNTIL_EOF)
        return false;
    r->state = S_STATUS;
    return true;
}

static enum http_resp_result fail(struct http_resp *r, const char *why)
{
    r->error = why;
    return HTTP_RESP_ERROR;
}

/* Case-insensitive: does the comma-separated list v[0..n) hold token? */
static bool has_token(const char *v, size_t n, const char *token)
{
    size_t tl = strlen(token);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < n && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == tl && strncasecmp(v + start, token, tl) == 0)
            return true;
    }
    return false;
}

/* Does the coding list end with chunked (the only coding that frames)? */
static bool ends_chunked(const char *v, size_t n)
{
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return n >= 7 && strncasecmp(v + n - 7, "chunked", 7) == 0 &&
           (n == 7 || v[n - 8] == ',' || v[n - 8] == ' ' || v[n - 8] == '\t');
}

static enum http_resp_result status_line(struct http_resp *r, const char *l, size_t n)
{
    /* HTTP/1.x SSS[ reason] */
    if (n < 12 || memcmp(l, "HTTP/1.", 7) != 0 || (l[7] != '0' && l[7] != '1') || l[8] != ' ')
        return fail(r, "bad status line");
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (l[i] < '0' || l[i] > '9')
            return fail(r, "bad status code");
        status = status * 10 + (l[i] - '0');
    }
    if (status < 100 || (n > 12 && l[12] != ' '))
        return fail(r, "bad status code");
    r->status = status;
    r->keep_alive = l[7] == '1';
    r->chunked = false;
    r->have_length = false;
    r->left = 0;
    r->state = S_HEADER;
    return HTTP_RESP_MORE;
}

static enum http_resp_result header_line(struct http_resp *r, const char *l, size_t n)
{
    const char *colon = memchr(l, ':', n);
    if (!colon || colon == l)
        return fail(r, "bad header line");
    size_t nl = (size_t)(colon - l);
    const char *v = colon + 1;
    size_t vn = n - nl - 1;
    while (vn && (*v == ' ' || *v == '\t')) {
        v++;
        vn--;
    }
    while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
        vn--;
    if (nl == 14 && strncasecmp(l, "content-length", 14) == 0) {
        if (vn == 0 || vn > 18)
            return fail(r, "bad Content-Length");
        uint64_t len = 0;
        for (size_t i = 0; i < vn; i++) {
            if (v[i] < '0' || v[i] > '9')
                return fail(r, "bad Content-Length");
            len = len * 10 + (uint64_t)(v[i] - '0');
        }
        if (r->have_length && r->left != len)
            return fail(r, "conflicting Content-Length headers");
        r->have_length = true;
        r->left = len;
    } else if (nl == 17 && strncasecmp(l, "transfer-encoding", 17) == 0) {
        r->chunked = ends_chunked(v, vn);
    } else if (nl == 10 && strncasecmp(l, "connection", 10) == 0) {
        if (has_token(v, vn, "close"))
            r->keep_alive = false;
        else if (has_token(v, vn, "keep-alive"))
            r->keep_alive = true;
    }
    return HTTP_RESP_MORE;
}

/* The empty line after the header: decide how the body is framed. */
static enum http_resp_result header_end(struct http_resp *r)
{
    if (r->status < 200) {
        /* Interim (100 Continue, 103 Early Hints): the real one follows. 101
         * would switch protocols, which a load test never asks for. */
        if (r->status == 101)
            return fail(r, "unexpected 101 Switching Protocols");
        r->state = S_STATUS;
        return HTTP_RESP_MORE;
    }
    if (r->status == 204 || r->status == 304) {
        r->state = S_STATUS;
        return HTTP_RESP_DONE;
    }
    if (r->chunked) {
        if (r->have_length)
            return fail(r, "both Content-Length and chunked");
        r->state = S_CHUNK_SIZE;
        return HTTP_RESP_MORE;
    }
    if (r->have_length) {
        r->state = r->left ? S_BODY : S_STATUS;
        return r->left ? HTTP_RESP_MORE : HTTP_RESP_DONE;
    }
    /* No length: the body runs to the close (RFC 9112, 6.3). */
    r->keep_alive = false;
    r->state = S_UNTIL_EOF;
    return HTTP_RESP_MORE;
}

static enum http_resp_result chunk_size_line(struct http_resp *r, const char *l, size_t n)
{
    uint64_t size = 0;
    size_t i = 0;
    for (; i < n; i++) {
        char ch = l[i];
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (d < 0)
            break;
        if (size >> 59)
            return fail(r, "chunk size too large");
        size = size * 16 + (uint64_t)d;
    }
    if (i == 0 || (i < n && l[i] != ';' && l[i] != ' ' && l[i] != '\t'))
        return fail(r, "bad chunk size");
    r->left = size;
    r->state = size ? S_CHUNK_DATA : S_TRAILER;
    return HTTP_RESP_MORE;
}

enum http_resp_result http_resp_feed(struct http_resp *r, const char *p, size_t len, size_t *used)
{
    size_t pos = 0;
    enum http_resp_result res = HTTP_RESP_MORE;
    while (pos < len && res == HTTP_RESP_MORE) {
        size_t avail = len - pos;
        if (r->state == S_BODY || r->state == S_CHUNK_DATA) {
            size_t take = avail < r->left ? avail : (size_t)r->left;
            pos += take;
            r->left -= take;
            if (r->left == 0) {
                r->state = r->state == S_BODY ? S_STATUS : S_CHUNK_END;
                if (r->state == S_STATUS)
                    res = HTTP_RESP_DONE;
            }
            continue;
        }
        if (r->state == S_UNTIL_EOF) {
            pos = len;
            continue;
        }
        /* The remaining states read one line at a time. */
        const char *nl = memchr(p + pos, '\n', avail);
        if (!nl) {
            if (avail > HTTP_RESP_MAX_LINE)
                res = fail(r, "line too long");
            break;
        }
        const char *l = p + pos;
        size_t n = (size_t)(nl - l);
        pos += n + 1;
        if (n && l[n - 1] == '\r')
            n--;
        if (n > HTTP_RESP_MAX_LINE) {
            res = fail(r, "line too long");
            break;
        }
        switch (r->state) {
        case S_STATUS:
            res = status_line(r, l, n);
            break;
        case S_HEADER:
            res = n ? header_line(r, l, n) : header_end(r);
            break;
        case S_CHUNK_SIZE:
            res = chunk_size_line(r, l, n);
            break;
        case S_CHUNK_END:
            if (n)
                res = fail(r, "no CRLF after chunk data");
            r->state = S_CHUNK_SIZE;
            break;
        case S_TRAILER:
            if (n == 0) {
                r->state = S_STATUS;
                res = HTTP_RESP_DONE;
            }
            break;
        }
    }
    /* A partial line is left for the next call; everything else is used. */
    *used = pos;
    return res;
}
