/* The HTTP/1.x request parser and chunked-body decoder: no allocation, no
 * copying (the chunked decoder compacts in place), strict per RFC 9112.
 *
 * A request is parsed in two steps. While incomplete, only the end of the
 * header block is searched for, resuming where the last call stopped. Once
 * the block is complete it is parsed and checked in one pass: parsing a
 * block twice never happens, and searching is linear in the bytes received,
 * however they were split. */
#include <errno.h>
#include <string.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>

#include "eddy/http.h"

#define DEFAULT_REQUEST_LINE 8192
#define DEFAULT_HEADER_BYTES 16384
#define DEFAULT_MAX_BODY (1024 * 1024)
#define MAX_LEADING_EMPTY_LINES 8
#define MAX_CHUNK_LINE 4096
#define MAX_TRAILER_BYTES 8192

/* Character classes, one table: bit 1 tchar (token), bit 2 a character
 * allowed unescaped in a request target, bit 4 a field-value character
 * (VCHAR, obs-text, SP, HTAB), bit 8 a hex digit, bit 16 allowed in Host. */
enum { C_TOKEN = 1, C_TARGET = 2, C_VALUE = 4, C_HEX = 8, C_HOST = 16 };

static unsigned char cls[256];

static void __attribute__((constructor)) init_classes(void)
{
    const char *token = "!#$%&'*+-.^_`|~";
    const char *target = "-._~!$&'()*+,;=:@/?%";
    const char *host = "-._~!$&'()*+,;=:[]%";
    for (int c = 0; c < 256; c++) {
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        unsigned char m = 0;
        if (alnum || (c && strchr(token, c)))
            m |= C_TOKEN;
        if (alnum || (c && strchr(target, c)))
            m |= C_TARGET;
        if (alnum || (c && strchr(host, c)))
            m |= C_HOST;
        if ((c >= 0x21 && c <= 0x7e) || c >= 0x80 || c == ' ' || c == '\t')
            m |= C_VALUE;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
            m |= C_HEX;
        cls[c] = m;
    }
}

static inline bool is(unsigned char c, unsigned mask)
{
    return cls[c] & mask;
}

static int hexval(unsigned char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

struct limits {
    size_t request_line, header_bytes, headers;
    uint64_t body;
};

static struct limits effective(const struct eddy_http_limits *l)
{
    struct limits e = {DEFAULT_REQUEST_LINE, DEFAULT_HEADER_BYTES, EDDY_HTTP_MAX_HEADERS,
                       DEFAULT_MAX_BODY};
    if (l) {
        if (l->max_request_line)
            e.request_line = l->max_request_line;
        if (l->max_header_bytes)
            e.header_bytes = l->max_header_bytes;
        if (l->max_headers && l->max_headers < EDDY_HTTP_MAX_HEADERS)
            e.headers = l->max_headers;
        if (l->max_body)
            e.body = l->max_body;
    }
    return e;
}

/* ---- finding the end of the header block ---------------------------------- */

/* Bytes of empty lines (CRLF or LF) before the request line, or -1 when
 * there are too many (or a bare CR). *complete is false if the buffer ends
 * inside them. */
static long leading_empty_lines(const char *buf, size_t len, bool *complete)
{
    size_t i = 0;
    for (int lines = 0;; lines++) {
        if (i < len && buf[i] == '\n') {
            i++;
        } else if (i < len && buf[i] == '\r') {
            if (i + 1 == len)
                break;
            if (buf[i + 1] != '\n')
                return -1;
            i += 2;
        } else {
            *complete = i < len;
            return (long)i;
        }
        if (lines == MAX_LEADING_EMPTY_LINES)
            return -1;
    }
    *complete = false;
    return (long)i;
}

/* Finds the end of the header block in buf[from..len): the index just past
 * "\n\n" or "\n\r\n", or 0 when not there yet. */
static size_t find_end(const char *buf, size_t from, size_t len)
{
    const char *p = buf + from, *end = buf + len;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        if (p + 1 < end && p[1] == '\n')
            return (size_t)(p + 2 - buf);
        if (p + 2 < end && p[1] == '\r' && p[2] == '\n')
            return (size_t)(p + 3 - buf);
        p++;
    }
    return 0;
}

/* ---- parsing a complete block ---------------------------------------------- */

/* Parses a line end at *p: CRLF or LF. A CR that is not followed by LF is
 * an error (a bare CR can split a line differently in other parsers). */
static bool line_end(const char **p)
{
    if (**p == '\n') {
        (*p)++;
        return true;
    }
    if ((*p)[0] == '\r' && (*p)[1] == '\n') {
        *p += 2;
        return true;
    }
    return false;
}

/* The target's characters, and that every '%' starts an escape. Square
 * brackets only within [from, to): the authority, where an IP literal
 * lives. */
static int check_target_chars(const char *t, size_t n, size_t from, size_t to)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (!is(c, C_TARGET) && !((c == '[' || c == ']') && i >= from && i < to))
            return -400;
        if (c == '%' && (i + 2 >= n || !is((unsigned char)t[i + 1], C_HEX) ||
                         !is((unsigned char)t[i + 2], C_HEX)))
            return -400;
    }
    return 0;
}

static bool method_is(const struct eddy_http_request *req, const char *m, size_t n)
{
    return req->method_len == n && memcmp(req->method, m, n) == 0;
}

/* The four forms of RFC 9112 3.2, each only where it belongs: origin-form
 * ("/path?query"), absolute-form ("scheme:..."), authority-form
 * ("host:port", CONNECT only) and asterisk-form ("*", OPTIONS only). */
static int parse_target(const struct eddy_http_request *req)
{
    const char *t = req->target;
    size_t n = req->target_len;
    if (t[0] == '/')
        return check_target_chars(t, n, 0, 0);
    if (n == 1 && t[0] == '*')
        return method_is(req, "OPTIONS", 7) ? 0 : -400;
    if (method_is(req, "CONNECT", 7)) {
        const char *colon = memrchr(t, ':', n);
        if (!colon || colon + 1 == t + n)
            return -400;
        for (const char *p = colon + 1; p < t + n; p++)
            if (*p < '0' || *p > '9')
                return -400;
        for (size_t i = 0; i < n; i++)
            if (!is((unsigned char)t[i], C_HOST))
                return -400;
        return 0;
    }
    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then ':' */
    size_t i = 0;
    while (i < n && (((t[i] | 0x20) >= 'a' && (t[i] | 0x20) <= 'z') ||
                     (i > 0 && ((t[i] >= '0' && t[i] <= '9') || t[i] == '+' || t[i] == '-' ||
                                t[i] == '.'))))
        i++;
    if (i == 0 || i == n || t[i] != ':')
        return -400;
    size_t from = 0, to = 0;
    if (n - i > 2 && t[i + 1] == '/' && t[i + 2] == '/') {
        from = i + 3;
        to = from;
        while (to < n && t[to] != '/' && t[to] != '?')
            to++;
    }
    return check_target_chars(t, n, from, to);
}

static int parse_request_line(const char **pp, const char *end, struct eddy_http_request *req)
{
    const char *p = *pp;
    req->method = p;
    while (p < end && is((unsigned char)*p, C_TOKEN))
        p++;
    req->method_len = (size_t)(p - req->method);
    if (req->method_len == 0 || p == end || *p != ' ')
        return -400;
    req->target = ++p;
    while (p < end && *p != ' ' && *p != '\r' && *p != '\n')
        p++;
    req->target_len = (size_t)(p - req->target);
    if (p == end || *p != ' ' || req->target_len == 0)
        return -400;
    int err = parse_target(req);
    if (err)
        return err;
    p++;
    if (end - p < 8 || memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9' || p[6] != '.' ||
        p[7] < '0' || p[7] > '9')
        return -400;
    int major = p[5] - '0', minor = p[7] - '0';
    p += 8;
    if (!line_end(&p))
        return -400;
    if (major != 1 || minor > 1)
        return -505;
    req->version = 10 + minor;
    *pp = p;
    return 0;
}

static int parse_header_line(const char **pp, struct eddy_http_header *h)
{
    const char *p = *pp;
    /* A line starting with whitespace is obsolete line folding, which
     * RFC 9112 lets a server reject; a name followed by whitespace before
     * the colon must be rejected. Both fall out of the token check. */
    h->name = p;
    while (is((unsigned char)*p, C_TOKEN))
        p++;
    h->name_len = (size_t)(p - h->name);
    if (h->name_len == 0 || *p != ':')
        return -400;
    p++;
    while (*p == ' ' || *p == '\t')
        p++;
    h->value = p;
    while (is((unsigned char)*p, C_VALUE))
        p++;
    const char *value_end = p;
    if (!line_end(&p))
        return -400;
    while (value_end > h->value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
        value_end--;
    h->value_len = (size_t)(value_end - h->value);
    *pp = p;
    return 0;
}

static bool name_is(const struct eddy_http_header *h, const char *name, size_t len)
{
    return h->name_len == len && strncasecmp(h->name, name, len) == 0;
}

/* Walks a comma-separated list (RFC 9110, 5.6.1): each call yields the next
 * non-empty element, trimmed of whitespace. */
struct list_iter {
    const char *p, *end;
};

static bool next_element(struct list_iter *it, const char **elem, size_t *len)
{
    while (it->p && it->p <= it->end) {
        const char *comma = memchr(it->p, ',', (size_t)(it->end - it->p));
        const char *stop = comma ? comma : it->end;
        const char *b = it->p;
        it->p = comma ? comma + 1 : NULL;
        while (b < stop && (*b == ' ' || *b == '\t'))
            b++;
        const char *e = stop;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > b) {
            *elem = b;
            *len = (size_t)(e - b);
            return true;
        }
    }
    return false;
}

static int parse_content_length(const struct eddy_http_header *h, struct eddy_http_request *req)
{
    if (req->has_content_length || h->value_len == 0 || h->value_len > 19)
        return -400;
    uint64_t v = 0;
    for (size_t i = 0; i < h->value_len; i++) {
        if (h->value[i] < '0' || h->value[i] > '9')
            return -400;
        v = v * 10 + (uint64_t)(h->value[i] - '0');
    }
    req->has_content_length = true;
    req->content_length = v;
    return 0;
}

/* Transfer-Encoding: a list of codings, which must end in exactly one
 * "chunked". Any other coding is valid syntax that eddy does not decode. */
static int parse_transfer_encoding(const struct eddy_http_header *h,
                                   struct eddy_http_request *req, bool *other)
{
    struct list_iter it = {h->value, h->value + h->value_len};
    const char *e;
    size_t n;
    while (next_element(&it, &e, &n)) {
        /* A coding is a token, maybe with parameters after ';'. */
        size_t tok = 0;
        while (tok < n && is((unsigned char)e[tok], C_TOKEN))
            tok++;
        if (tok == 0)
            return -400;
        if (req->chunked)
            return -400; /* something after "chunked", or chunked twice */
        if (tok == 7 && tok == n && strncasecmp(e, "chunked", 7) == 0)
            req->chunked = true;
        else
            *other = true;
    }
    /* A line with no coding is an empty list, which other lines may
     * complete (RFC 9110 5.3); interpret() refuses a field with none at all. */
    return 0;
}

static void parse_connection(const struct eddy_http_header *h, bool *close, bool *keep_alive)
{
    struct list_iter it = {h->value, h->value + h->value_len};
    const char *e;
    size_t n;
    while (next_element(&it, &e, &n)) {
        if (n == 5 && strncasecmp(e, "close", 5) == 0)
            *close = true;
        else if (n == 10 && strncasecmp(e, "keep-alive", 10) == 0)
            *keep_alive = true;
    }
}

static int check_host(const struct eddy_http_header *h)
{
    for (size_t i = 0; i < h->value_len; i++)
        if (!is((unsigned char)h->value[i], C_HOST))
            return -400;
    return 0;
}

static int interpret(struct eddy_http_request *req, const struct limits *lim)
{
    int hosts = 0;
    bool close = false, keep_alive = false, other_coding = false, te_field = false;
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct eddy_http_header *h = &req->headers[i];
        int err = 0;
        switch (h->name_len) {
        case 4:
            if (name_is(h, "host", 4)) {
                err = check_host(h);
                req->host = h->value;
                req->host_len = h->value_len;
                hosts++;
            }
            break;
        case 6:
            if (name_is(h, "expect", 6)) {
                if (h->value_len == 12 && strncasecmp(h->value, "100-continue", 12) == 0)
                    req->expect_continue = true;
                else
                    err = -417;
            }
            break;
        case 10:
            if (name_is(h, "connection", 10))
                parse_connection(h, &close, &keep_alive);
            break;
        case 14:
            if (name_is(h, "content-length", 14))
                err = parse_content_length(h, req);
            break;
        case 17:
            if (name_is(h, "transfer-encoding", 17)) {
                te_field = true;
                err = parse_transfer_encoding(h, req, &other_coding);
            }
            break;
        default:
            break;
        }
        if (err)
            return err;
    }
    bool has_te = req->chunked || other_coding;
    if (te_field && !has_te)
        return -400; /* Transfer-Encoding with no coding at all */
    if (hosts > 1 || (req->version == 11 && hosts == 0))
        return -400;
    /* Both framings at once is how requests are smuggled past a proxy that
     * picks the other one; HTTP/1.0 has no transfer codings at all. */
    if (has_te && (req->has_content_length || req->version == 10))
        return -400;
    if (has_te && !req->chunked)
        return -400; /* the final coding must be chunked (RFC 9112, 6.3) */
    if (other_coding)
        return -501;
    if (req->has_content_length && req->content_length > lim->body)
        return -413;
    req->keep_alive = !close && (req->version == 11 || keep_alive);
    return 0;
}

static void reset(struct eddy_http_request *req)
{
    req->num_headers = 0;
    req->host = NULL;
    req->host_len = 0;
    req->content_length = 0;
    req->has_content_length = false;
    req->chunked = false;
    req->keep_alive = false;
    req->expect_continue = false;
    req->body = NULL;
    req->body_len = 0;
}

EDDY_API int eddy_http_parse_request(const char *buf, size_t len, size_t *scanned,
                                     const struct eddy_http_limits *limits,
                                     struct eddy_http_request *req)
{
    struct limits lim = effective(limits);
    bool started;
    long skip = leading_empty_lines(buf, len, &started);
    if (skip < 0)
        return -400;
    if (!started)
        return 0;
    size_t from = *scanned > (size_t)skip + 2 ? *scanned - 2 : (size_t)skip;
    size_t end = find_end(buf, from, len);
    if (end == 0) {
        *scanned = len;
        size_t have = len - (size_t)skip;
        if (have > lim.request_line && !memchr(buf + skip, '\n', lim.request_line))
            return -414;
        if (have > lim.header_bytes)
            return -431;
        return 0;
    }
    /* The same measures as while incomplete, so a request gets the same
     * answer however its bytes were split: first the request line (its
     * line end included), then the whole block. */
    const char *nl = memchr(buf + skip, '\n', end - (size_t)skip);
    if ((size_t)(nl - (buf + skip)) + 1 > lim.request_line)
        return -414;
    if (end - (size_t)skip > lim.header_bytes)
        return -431;

    reset(req);
    const char *p = buf + skip, *stop = buf + end;
    int err = parse_request_line(&p, stop, req);
    if (err)
        return err;
    while (p < stop) {
        if (line_end(&p)) {
            if (p != stop)
                return -400; /* cannot happen: stop is the first blank line */
            break;
        }
        if (req->num_headers == lim.headers)
            return -431;
        err = parse_header_line(&p, &req->headers[req->num_headers]);
        if (err)
            return err;
        req->num_headers++;
    }
    err = interpret(req, &lim);
    return err ? err : (int)end;
}

EDDY_API const struct eddy_http_header *eddy_http_find_header(const struct eddy_http_request *req,
                                                              const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->num_headers; i++)
        if (name_is(&req->headers[i], name, n))
            return &req->headers[i];
    return NULL;
}

/* ---- chunked bodies --------------------------------------------------------- */

enum {
    CH_SIZE = 0,   /* hex digits of a chunk size */
    CH_SIZE_END,   /* whitespace after the size, then ';' or CR */
    CH_EXT,        /* chunk extensions after a ';', up to CR */
    CH_SIZE_LF,    /* the LF after the size line's CR */
    CH_DATA,
    CH_DATA_CR,    /* the CRLF after a chunk's data */
    CH_DATA_LF,
    CH_TRAILER,    /* start of a trailer line, or the final CRLF */
    CH_TRAILER_NAME,
    CH_TRAILER_LINE,
    CH_TRAILER_LF,
    CH_END_LF,     /* the LF of the final CRLF */
    CH_DONE,
};

EDDY_API int eddy_http_chunked_decode(struct eddy_http_chunked *d, char *buf, size_t len,
                                      uint64_t max_body)
{
    if (max_body == 0)
        max_body = DEFAULT_MAX_BODY;
    while (d->in < len) {
        unsigned char c = (unsigned char)buf[d->in];
        switch (d->state) {
        case CH_SIZE:
            if (is(c, C_HEX)) {
                if (d->line == 16)
                    return -400; /* more than 64 bits */
                d->remaining = d->remaining << 4 | (uint64_t)hexval(c);
                d->line++;
                d->in++;
                break;
            }
            if (d->line == 0)
                return -400;
            d->state = CH_SIZE_END;
            break;
        case CH_SIZE_END:
            /* chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ): after
             * the size only whitespace, then ';' or the line's end. */
            if (c == '\r')
                d->state = CH_SIZE_LF;
            else if ((c != ';' && c != ' ' && c != '\t') || ++d->line > MAX_CHUNK_LINE)
                return -400;
            else if (c == ';')
                d->state = CH_EXT;
            d->in++;
            break;
        case CH_EXT:
            /* The extensions mean nothing to eddy: only no CTLs (a bare LF
             * ends up here too) and a bounded length. */
            if (c == '\r') {
                d->state = CH_SIZE_LF;
            } else if (!is(c, C_VALUE) || ++d->line > MAX_CHUNK_LINE) {
                return -400;
            }
            d->in++;
            break;
        case CH_SIZE_LF:
            if (c != '\n')
                return -400;
            d->in++;
            d->line = 0;
            if (d->remaining > max_body - d->out)
                return -413;
            d->state = d->remaining ? CH_DATA : CH_TRAILER;
            break;
        case CH_DATA: {
            size_t n = len - d->in;
            if (n > d->remaining)
                n = (size_t)d->remaining;
            if (d->out != d->in)
                memmove(buf + d->out, buf + d->in, n);
            d->out += n;
            d->in += n;
            d->remaining -= n;
            if (d->remaining == 0)
                d->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
            if (c != '\r')
                return -400;
            d->in++;
            d->state = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            if (c != '\n')
                return -400;
            d->in++;
            d->state = CH_SIZE;
            break;
        case CH_TRAILER:
            if (c == '\r') {
                d->in++;
                d->state = CH_END_LF;
                break;
            }
            /* A trailer field: checked like a header line, then ignored. */
            if (!is(c, C_TOKEN))
                return -400;
            d->state = CH_TRAILER_NAME;
            break;
        case CH_TRAILER_NAME:
            /* A token, then the colon at once: no whitespace before it. */
            if (c == ':')
                d->state = CH_TRAILER_LINE;
            else if (!is(c, C_TOKEN))
                return -400;
            if (++d->trailers > MAX_TRAILER_BYTES)
                return -413;
            d->in++;
            break;
        case CH_TRAILER_LINE:
            if (c == '\r') {
                d->state = CH_TRAILER_LF;
            } else if (!is(c, C_VALUE) || ++d->trailers > MAX_TRAILER_BYTES) {
                return c == '\n' || !is(c, C_VALUE) ? -400 : -413;
            }
            d->in++;
            break;
        case CH_TRAILER_LF:
            if (c != '\n')
                return -400;
            d->in++;
            d->state = CH_TRAILER;
            break;
        case CH_END_LF:
            if (c != '\n')
                return -400;
            d->in++;
            d->state = CH_DONE;
            return 1;
        default:
            return 1;
        }
    }
    return d->state == CH_DONE ? 1 : 0;
}

/* ---- status texts and dates ------------------------------------------------- */

EDDY_API const char *eddy_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* Names written out here, not taken from strftime(), so the text never
 * depends on the process's locale. */
static const char day_names[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char month_names[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

EDDY_API size_t eddy_http_date(int64_t t, char *buf)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (!gmtime_r(&tt, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
        tt = 0;
        gmtime_r(&tt, &tm);
    }
    char text[64];
    int n = snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                     day_names[tm.tm_wday], tm.tm_mday, month_names[tm.tm_mon], tm.tm_year + 1900,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
    memcpy(buf, text, (size_t)n + 1);
    return (size_t)n;
}

static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

EDDY_API int eddy_http_parse_date(const char *s, size_t len, int64_t *t)
{
    /* "Sun, 06 Nov 1994 08:49:37 GMT": fixed positions. */
    struct tm tm = {0};
    int m;
    if (len != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
        s[16] != ' ' || s[19] != ':' || s[22] != ':' || memcmp(s + 25, " GMT", 4) != 0)
        return -EINVAL;
    for (m = 0; m < 12 && memcmp(s + 8, month_names[m], 3) != 0; m++) {
    }
    if (m == 12 || !digits(s + 5, 2, &tm.tm_mday) || !digits(s + 12, 4, &tm.tm_year) ||
        !digits(s + 17, 2, &tm.tm_hour) || !digits(s + 20, 2, &tm.tm_min) ||
        !digits(s + 23, 2, &tm.tm_sec) || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return -EINVAL;
    tm.tm_mon = m;
    tm.tm_year -= 1900;
    *t = (int64_t)timegm(&tm);
    return 0;
}
