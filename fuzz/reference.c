/* See reference.h. Written for clarity, not speed: each function follows
 * the ABNF of RFC 9112 / 9110 / 3986 it names. */
#include <string.h>
#include <strings.h>

#include "reference.h"

#define MAX_BODY_DEFAULT        (1024 * 1024)
#define MAX_CHUNK_LINE          4096
#define MAX_TRAILER_BYTES       8192
#define MAX_LEADING_EMPTY_LINES 8

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 9110 5.6.2: tchar. */
static bool is_tchar(unsigned char c)
{
    return is_digit(c) || is_alpha(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* RFC 9110 5.5: field-vchar / SP / HTAB. */
static bool is_field_char(unsigned char c)
{
    return (c >= 0x21 && c <= 0x7e) || c >= 0x80 || c == ' ' || c == '\t';
}

static int hexval(unsigned char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* ---- chunked bodies ---------------------------------------------------------- */

/* A cursor over the body; each step either advances or reports. */
struct cur {
    const char *p;
    size_t i, n;
};

static bool more(const struct cur *c)
{
    return c->i < c->n;
}

static unsigned char at(const struct cur *c)
{
    return (unsigned char)c->p[c->i];
}

static void skip_bws(struct cur *c)
{
    while (more(c) && (at(c) == ' ' || at(c) == '\t'))
        c->i++;
}

/* quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE. Returns 1, 0
 * (ran out), or -1. */
static int quoted_string(struct cur *c)
{
    c->i++; /* the opening DQUOTE */
    while (more(c)) {
        unsigned char ch = at(c);
        if (ch == '"') {
            c->i++;
            return 1;
        }
        if (ch == '\\') {
            c->i++;
            if (!more(c))
                return 0;
            if (!is_field_char(at(c)))
                return -1;
        } else if (!is_field_char(ch)) {
            return -1;
        }
        c->i++;
    }
    return 0;
}

/* What eddy does with an extension that breaks the grammar once a ';' has
 * started it: skip to the CR, refusing only CTLs. Returns 1 at the CR, 0
 * (ran out), or -1. */
static int ext_skip(struct cur *c)
{
    while (more(c) && at(c) != '\r') {
        if (!is_field_char(at(c)))
            return -1;
        c->i++;
    }
    return more(c) ? 1 : 0;
}

/* chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ).
 * Returns 1 at the line's CR, 0 (ran out), or -1 for bytes eddy refuses
 * too: anything but whitespace, ';' or CR right after the size, or a CTL.
 * Grammar eddy lets through (a bad name or value after ';', whitespace
 * before the CR) sets *loose and is skipped as eddy skips it. */
static int chunk_ext(struct cur *c, bool *has_ext, bool *loose)
{
    bool semicolon = false;
    for (;;) {
        size_t before = c->i;
        skip_bws(c);
        *has_ext |= c->i != before;
        if (!more(c))
            return 0;
        if (at(c) == '\r') {
            *loose |= c->i != before;
            return 1;
        }
        if (at(c) != ';') {
            if (!semicolon)
                return -1;
            *loose = true;
            return ext_skip(c);
        }
        semicolon = *has_ext = true;
        c->i++;
        skip_bws(c);
        size_t name = c->i;
        while (more(c) && is_tchar(at(c)))
            c->i++;
        if (!more(c))
            return 0;
        if (c->i == name) {
            *loose = true;
            return ext_skip(c);
        }
        before = c->i;
        skip_bws(c);
        if (!more(c))
            return 0;
        if (at(c) != '=') {
            c->i = before;
            continue;
        }
        c->i++;
        skip_bws(c);
        if (!more(c))
            return 0;
        if (at(c) == '"') {
            int q = quoted_string(c);
            if (q == 0)
                return 0;
            if (q < 0) {
                *loose = true;
                return ext_skip(c);
            }
        } else {
            size_t value = c->i;
            while (more(c) && is_tchar(at(c)))
                c->i++;
            if (!more(c))
                return 0;
            if (c->i == value) {
                *loose = true;
                return ext_skip(c);
            }
        }
    }
}

/* CRLF at the cursor: 1, 0 (ran out), -1. */
static int crlf(struct cur *c)
{
    if (!more(c))
        return 0;
    if (at(c) != '\r')
        return -1;
    if (c->i + 1 == c->n)
        return 0;
    if (c->p[c->i + 1] != '\n')
        return -1;
    c->i += 2;
    return 1;
}

/* Ends ref_chunked() with a verdict of REF_BAD. */
#define BAD(w)                                                                                     \
    do {                                                                                           \
        r->verdict = REF_BAD;                                                                      \
        r->where = (w);                                                                            \
        return;                                                                                    \
    } while (0)

void ref_chunked(const char *buf, size_t len, uint64_t max_body, char *out, struct ref_chunked *r)
{
    struct cur c = {buf, 0, len};
    memset(r, 0, sizeof *r);
    if (max_body == 0)
        max_body = MAX_BODY_DEFAULT;
    r->verdict = REF_MORE;
    for (;;) {
        /* chunk-size = 1*HEXDIG; eddy takes at most 16 digits. */
        size_t start = c.i;
        uint64_t size = 0;
        while (more(&c) && is_hex(at(&c))) {
            if (c.i - start == 16)
                BAD(REF_SIZE);
            size = size << 4 | (uint64_t)hexval(at(&c));
            c.i++;
        }
        if (!more(&c))
            return;
        if (c.i == start)
            BAD(REF_SIZE);
        int e = chunk_ext(&c, &r->has_ext, &r->loose_ext);
        if (c.i - start > MAX_CHUNK_LINE)
            BAD(REF_LIMIT);
        if (e < 0)
            BAD(REF_EXT);
        if (e == 0)
            return;
        e = crlf(&c);
        if (e < 0)
            BAD(REF_EXT);
        if (e == 0)
            return;
        if (size > max_body - r->out)
            BAD(REF_LIMIT);
        if (size == 0)
            break;
        size_t avail = c.n - c.i;
        size_t n = size < avail ? (size_t)size : avail;
        memcpy(out + r->out, c.p + c.i, n);
        r->out += n;
        c.i += n;
        if (n < size)
            return;
        e = crlf(&c);
        if (e < 0)
            BAD(REF_DATA);
        if (e == 0)
            return;
    }
    /* trailer-section = *( field-line CRLF ), then CRLF. */
    size_t trailer_bytes = 0;
    for (;;) {
        if (!more(&c))
            return;
        if (at(&c) == '\r') {
            int e = crlf(&c);
            if (e < 0)
                BAD(REF_TRAILER);
            if (e == 0)
                return;
            r->verdict = REF_DONE;
            r->used = c.i;
            return;
        }
        size_t start = c.i;
        while (more(&c) && is_tchar(at(&c)))
            c.i++;
        if (!more(&c))
            return;
        if (c.i == start || at(&c) != ':')
            BAD(REF_TRAILER);
        while (more(&c) && is_field_char(at(&c)))
            c.i++;
        trailer_bytes += c.i - start;
        if (trailer_bytes > MAX_TRAILER_BYTES)
            BAD(REF_LIMIT);
        int e = crlf(&c);
        if (e < 0)
            BAD(REF_TRAILER);
        if (e == 0)
            return;
    }
}

/* ---- request targets ---------------------------------------------------------- */

/* RFC 3986 2: unreserved / sub-delims, plus ":" "@" (pchar) and the "/" and
 * "?" of paths and queries. '%' is checked apart. */
static bool is_uri_char(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || (c && strchr("-._~!$&'()*+,;=:@/?", c));
}

/* RFC 3986 3.2.2 and RFC 9110 7.2: a host (reg-name, IPv4 or an IP-literal in
 * brackets) as eddy's Host check reads it. */
static bool is_host_char(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || (c && strchr("-._~!$&'()*+,;=:[]%", c));
}

bool ref_target_ok(const char *method, size_t method_len, const char *t, size_t n)
{
    bool options = method_len == 7 && memcmp(method, "OPTIONS", 7) == 0;
    bool connect = method_len == 7 && memcmp(method, "CONNECT", 7) == 0;
    size_t from = 0, to = 0; /* where '[' and ']' may be: an authority */
    if (n == 1 && t[0] == '*')
        return options; /* asterisk-form (3.2.4) */
    if (t[0] == '/') {
        /* origin-form (3.2.1), which eddy takes from any method */
    } else if (connect) {
        /* authority-form (3.2.3): uri-host ":" port, the port not empty */
        const char *colon = NULL;
        for (size_t i = 0; i < n; i++) {
            if (!is_host_char((unsigned char)t[i]))
                return false;
            if (t[i] == ':')
                colon = t + i;
        }
        if (!colon || colon == t || colon + 1 == t + n)
            return false; /* no host (RFC 9110 9.3.6), or no port */
        for (const char *p = colon + 1; p < t + n; p++)
            if (!is_digit((unsigned char)*p))
                return false;
        return true;
    } else {
        /* absolute-form (3.2.2): scheme ":" hier-part */
        size_t i = 0;
        if (!is_alpha((unsigned char)t[0]))
            return false;
        while (i < n && (is_alpha((unsigned char)t[i]) || is_digit((unsigned char)t[i]) ||
                         t[i] == '+' || t[i] == '-' || t[i] == '.'))
            i++;
        if (i == n || t[i] != ':')
            return false;
        if (n - i > 2 && t[i + 1] == '/' && t[i + 2] == '/') {
            from = to = i + 3;
            while (to < n && t[to] != '/' && t[to] != '?')
                to++;
            /* RFC 9110 4.2.1 and 4.2.2: an http(s) URI with an empty host
             * is invalid. */
            const char *at_sign = memchr(t + from, '@', to - from);
            size_t host = at_sign ? (size_t)(at_sign - t) + 1 : from;
            bool http = (i == 4 && strncasecmp(t, "http", 4) == 0) ||
                        (i == 5 && strncasecmp(t, "https", 5) == 0);
            if (http && (host == to || t[host] == ':'))
                return false;
        }
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '%') {
            if (i + 2 >= n || !is_hex((unsigned char)t[i + 1]) || !is_hex((unsigned char)t[i + 2]))
                return false;
        } else if (c == '[' || c == ']') {
            if (i < from || i >= to)
                return false;
        } else if (!is_uri_char(c)) {
            return false;
        }
    }
    return true;
}

bool ref_target_empty_host(const char *method, size_t method_len, const char *t, size_t n)
{
    if (method_len == 7 && memcmp(method, "CONNECT", 7) == 0)
        return n > 1 && t[0] == ':';
    const char *sep = memmem(t, n, "://", 3);
    if (!sep || (sep - t != 4 && sep - t != 5) || strncasecmp(t, "http", 4) != 0)
        return false;
    const char *host = sep + 3, *end = t + n;
    const char *stop = host;
    while (stop < end && *stop != '/' && *stop != '?')
        stop++;
    const char *at_sign = memchr(host, '@', (size_t)(stop - host));
    if (at_sign)
        host = at_sign + 1;
    return host == stop || *host == ':';
}

/* ---- the known reasons for eddy to be stricter ------------------------------------- */

struct line {
    const char *p;
    size_t n; /* without the LF, and without a CR right before it */
    bool bare_cr;
};

/* The lines of the header block, leniently: split at LF, up to the first
 * empty line (or the end of the buffer). */
#define MAX_LINES 256

struct block {
    size_t leading; /* empty lines before the request line */
    bool bare_cr;   /* a CR not followed by LF anywhere in the block */
    struct line lines[MAX_LINES];
    size_t nlines;
};

static void split_block(const char *buf, size_t len, struct block *b)
{
    memset(b, 0, sizeof *b);
    size_t i = 0;
    bool started = false;
    while (i < len && b->nlines < MAX_LINES) {
        const char *lf = memchr(buf + i, '\n', len - i);
        size_t end = lf ? (size_t)(lf - buf) : len;
        struct line l = {buf + i, end - i, false};
        if (l.n && l.p[l.n - 1] == '\r' && lf)
            l.n--;
        /* A CR at the very end of the buffer may yet be followed by LF. */
        size_t scan = !lf && l.n && l.p[l.n - 1] == '\r' ? l.n - 1 : l.n;
        for (size_t k = 0; k < scan; k++)
            if (l.p[k] == '\r')
                l.bare_cr = b->bare_cr = true;
        i = lf ? end + 1 : len;
        if (l.n == 0 && !started) {
            b->leading++;
            continue;
        }
        if (l.n == 0)
            break;
        started = true;
        b->lines[b->nlines++] = l;
    }
}

static bool name_is(const struct line *l, size_t colon, const char *name)
{
    return colon == strlen(name) && strncasecmp(l->p, name, colon) == 0;
}

static void trim(const char **v, size_t *n)
{
    while (*n && (**v == ' ' || **v == '\t'))
        (*v)++, (*n)--;
    while (*n && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t'))
        (*n)--;
}

/* RFC 9110 7.2: Host = uri-host [ ":" port ], as eddy checks it. */
static bool host_ok(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!(is_alpha(c) || is_digit(c) || (c && strchr("-._~!$&'()*+,;=:[]%", c))))
            return false;
    }
    return true;
}

const char *ref_eddy_stricter(const char *buf, size_t len)
{
    struct block b;
    split_block(buf, len, &b);
    /* RFC 9112 2.2: at least one empty line before the request line must be
     * ignored; eddy ignores 8. llhttp any number. */
    if (b.leading > MAX_LEADING_EMPTY_LINES)
        return "S1 more than 8 empty lines before the request line";
    /* RFC 9112 2.2: a bare CR is invalid; llhttp 8.1 takes some (before the
     * request line, and CR CR LF as the end of the block). */
    if (b.bare_cr)
        return "S2 a bare CR";
    if (b.nlines == 0)
        return NULL;

    /* RFC 9112 3: request-line = method SP request-target SP HTTP-version,
     * single SPs. llhttp 8.1 skips extra SP and takes HTTP/0.9 lines. */
    const struct line *rl = &b.lines[0];
    size_t m = 0;
    while (m < rl->n && is_tchar((unsigned char)rl->p[m]))
        m++;
    const char *sp2 = m < rl->n ? memchr(rl->p + m + 1, ' ', rl->n - m - 1) : NULL;
    if (m == 0 || m == rl->n || rl->p[m] != ' ' || !sp2 || sp2 == rl->p + m + 1 ||
        (size_t)(rl->p + rl->n - sp2) != 9 || memcmp(sp2 + 1, "HTTP/", 5) != 0 ||
        !is_digit((unsigned char)sp2[6]) || sp2[7] != '.' || !is_digit((unsigned char)sp2[8]))
        return "S3 not a single-SP request line with an HTTP-version";
    const char *target = rl->p + m + 1;
    size_t target_len = (size_t)(sp2 - target);
    const char *method = rl->p;
    int version = (sp2[6] - '0') * 10 + (sp2[8] - '0');

    /* RFC 9112 3.2 / RFC 3986 2: the target's characters and form. */
    if (!ref_target_ok(method, m, target, target_len))
        return "S4 a request-target outside RFC 3986 / RFC 9112 3.2";

    size_t hosts = 0;
    bool bad_host = false, te = false, te_bad = false, last_chunked = false, cl = false;
    bool cl_long = false;
    size_t chunked = 0;
    for (size_t i = 1; i < b.nlines; i++) {
        const struct line *l = &b.lines[i];
        /* RFC 9112 5.1 and 5.2: no whitespace before the colon, no
         * obs-fold; RFC 9110 5.1: a name is a non-empty token. llhttp 8.1
         * (loose) accepts obs-fold, empty names and SP inside a name. */
        if (l->p[0] == ' ' || l->p[0] == '\t')
            return "S5 obs-fold";
        const char *colon = memchr(l->p, ':', l->n);
        if (!colon)
            return NULL;
        size_t c = (size_t)(colon - l->p);
        for (size_t k = 0; k < c; k++)
            if (!is_tchar((unsigned char)l->p[k]))
                return "S6 a field name that is not a token (whitespace before the colon)";
        if (c == 0)
            return "S6 a field name that is not a token (empty)";
        const char *v = colon + 1;
        size_t vn = l->n - c - 1;
        trim(&v, &vn);
        if (name_is(l, c, "host")) {
            hosts++;
            bad_host |= !host_ok(v, vn);
        } else if (name_is(l, c, "transfer-encoding")) {
            /* RFC 9110 10.1.4: transfer-coding = token *( OWS ";" OWS
             * transfer-parameter ), in a list over all the fields. */
            te = true;
            for (size_t k = 0; k <= vn;) {
                const char *comma = memchr(v + k, ',', vn - k);
                size_t end = comma ? (size_t)(comma - v) : vn;
                const char *e = v + k;
                size_t en = end - k;
                trim(&e, &en);
                if (en) {
                    te_bad |= !is_tchar((unsigned char)e[0]);
                    last_chunked = en == 7 && strncasecmp(e, "chunked", 7) == 0;
                    chunked += last_chunked;
                }
                k = end + 1;
            }
        } else if (name_is(l, c, "content-length")) {
            cl = true;
            cl_long |= vn > 19;
        }
    }
    /* RFC 9112 3.2: exactly one valid Host in HTTP/1.1; llhttp leaves Host
     * to the application. */
    if (hosts > 1 || bad_host || (version == 11 && hosts == 0))
        return "S7 Host missing, repeated or invalid";
    /* RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing; 6.3:
     * without chunked as the final coding (once), or with Content-Length,
     * a request has no reliable framing: 400. llhttp decodes the first,
     * ignores empty fields, and skips framing checks for CONNECT. */
    if (te && (version == 10 || te_bad || !last_chunked || chunked != 1 || cl))
        return "S8 Transfer-Encoding that frames no body (HTTP/1.0, not chunked last)";
    /* eddy reads at most 19 digits (any 64-bit length); llhttp counts the
     * value, so 20 digits with leading zeros pass there. */
    if (cl_long)
        return "S9 a Content-Length of 20 digits or more";
    return NULL;
}
