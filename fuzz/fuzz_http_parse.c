/* libFuzzer target: eddy_http_parse_request(), differential against llhttp.
 *
 * Input: one byte that chooses a split position, then the request bytes.
 * For each input:
 *   1. The request is parsed whole, split at the chosen position (the first
 *      k bytes, then all of them, `scanned` carried over) and one byte at a
 *      time; the verdicts must agree and every view must lie inside the
 *      header block. This is done with the default limits and again with
 *      small ones, so that the 414/431 paths are reached.
 *   2. The first request (with its body: chunked, decoded by eddy and by a
 *      strict reference reading of RFC 9112 7.1, or Content-Length) is
 *      compared with llhttp 8.1's reading of the same bytes. A request eddy
 *      accepts is first normalized in ways that cannot change eddy's answer
 *      (bare LF line ends become CRLF, a method unknown to llhttp becomes
 *      GET) so that two known and justified leniencies of eddy do not hide
 *      everything behind them. An input whose header block never ends is
 *      compared again with "\r\n\r\n" appended.
 * Any disagreement that is not in the list below aborts.
 *
 * The known differences, each explained where it is tested:
 *   eddy stricter (eddy rejects or waits, llhttp accepts):
 *     P   a policy status: 413, 414, 431 (eddy's limits; llhttp has none),
 *         417 (Expect, RFC 9110 10.1.1), 501 (codings, RFC 9112 6.1),
 *         505 (versions, RFC 9110 15.6.6)
 *     S1..S9 rules of RFC 9112 that llhttp 8.1 (loose) does not apply:
 *         see ref_eddy_stricter() in reference.c
 *     S10 a chunked body that breaks RFC 9112 7.1 (reference.c says where)
 *   llhttp stricter (llhttp rejects, eddy does not):
 *     W   eddy is still waiting for the end of a header block: it checks a
 *         block only once the block is complete
 *     L1  a target that is a valid absolute-URI without "//", or
 *         authority-form with a method other than CONNECT (llhttp insists)
 *     L2  chunk extensions: llhttp 8.1 rejects a ';' after a token value
 *         and BWS around ';' and '=' (RFC 9112 7.1.1 allows both)
 *     L5  an empty list element in Transfer-Encoding ("chunked, "), which
 *         RFC 9110 5.6.1 says a recipient MUST accept
 *     L6  a trailer field named Transfer-Encoding or Content-Length:
 *         llhttp applies its header rules to it; eddy drops trailers, which
 *         RFC 9110 6.5.1 forbids merging into the header section anyway
 *     L7  HTAB as trailing OWS of Transfer-Encoding, Content-Length or
 *         Connection ("chunked<HTAB>", "5<HTAB>", "close<HTAB>"): RFC 9110
 *         5.5 excludes it from the value; llhttp 8.1 reads it as part of
 *         the coding, number or option (for Connection: keep-alive differs)
 *   both accept, views differ:
 *     L3  HTTP/1.0 with both keep-alive and close: RFC 9112 9.3 says close
 *     L4  CONNECT or Upgrade: llhttp hands the bytes after the header block
 *         to the other protocol, eddy frames a body as for any request (RFC
 *         9112 6.3); so eddy may also wait for, or refuse, a body there
 *   eddy's own leniency (llhttp rejects, eddy accepts; harmless):
 *     E1  chunk extensions: after a ';' eddy checks only for CTLs (the size
 *         and the line end stay exact), and takes whitespace before the CR
 *   known eddy bugs (reported; remove the entry when fixed):
 *     K1  an empty host in the target ("CONNECT :443", "http://:80/") is
 *         accepted; RFC 9110 9.3.6 and 4.2.1 make it invalid
 * Beyond llhttp, every header block eddy accepts must have a target in one
 * of the forms of RFC 9112 3.2 (ref_target_ok()), and every chunked body
 * must decode exactly as the reference decodes it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

#include "eddy/http.h"
#include "llhttp_oracle.h"
#include "reference.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static const struct eddy_http_limits small_limits = {
    .max_request_line = 64, .max_header_bytes = 256, .max_headers = 8, .max_body = 64};

static const unsigned char *fuzz_data;
static size_t fuzz_size;
static bool fuzz_ended; /* the input is being checked with an end appended */

/* Prints the input, escaped, and what went wrong; then aborts. */
static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "\nfuzz_http_parse: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\ninput (%zu bytes after the split byte): \"", fuzz_size ? fuzz_size - 1 : 0);
    for (size_t i = 1; i < fuzz_size; i++) {
        unsigned char c = fuzz_data[i];
        if (c == '\r')
            fputs("\\r", stderr);
        else if (c == '\n')
            fputs("\\n", stderr);
        else if (c == '"' || c == '\\')
            fprintf(stderr, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
    fputs(fuzz_ended ? "\" with \"\\r\\n\\r\\n\" appended\n" : "\"\n", stderr);
    abort();
}

/* With EDDY_FUZZ_STATS set, how often each known difference explained a
 * disagreement is printed at exit. */
#define MAX_REASONS 64
static struct {
    const char *why;
    unsigned long count;
} reasons[MAX_REASONS];

static void print_reasons(void)
{
    for (size_t i = 0; i < MAX_REASONS && reasons[i].why; i++)
        fprintf(stderr, "%10lu  %s\n", reasons[i].count, reasons[i].why);
}

static const char *note(const char *why)
{
    static bool registered;
    if (!why || !getenv("EDDY_FUZZ_STATS"))
        return why;
    if (!registered) {
        atexit(print_reasons);
        registered = true;
    }
    for (size_t i = 0; i < MAX_REASONS; i++) {
        if (reasons[i].why == NULL || strcmp(reasons[i].why, why) == 0) {
            reasons[i].why = why;
            reasons[i].count++;
            break;
        }
    }
    return why;
}

/* ---- 1. whole, split, byte by byte ------------------------------------------ */

static void check_inside(const struct eddy_http_request *req, const char *base, int r)
{
    const char *end = base + r;
#define INSIDE(p, n) ((p) >= base && (p) + (n) <= end)
    if (!INSIDE(req->method, req->method_len) || req->method_len == 0)
        fail("method outside the header block");
    if (!INSIDE(req->target, req->target_len) || req->target_len == 0)
        fail("target outside the header block");
    if (req->num_headers > EDDY_HTTP_MAX_HEADERS)
        fail("%zu fields", req->num_headers);
    for (size_t i = 0; i < req->num_headers; i++)
        if (!INSIDE(req->headers[i].name, req->headers[i].name_len) ||
            !INSIDE(req->headers[i].value, req->headers[i].value_len))
            fail("field %zu outside the header block", i);
    if (req->host && !INSIDE(req->host, req->host_len))
        fail("host outside the header block");
#undef INSIDE
    if (req->version != 10 && req->version != 11)
        fail("version %d", req->version);
    if (req->chunked && req->has_content_length)
        fail("both chunked and Content-Length");
}

/* The parse of one buffer, with its views as offsets so that parses of
 * different copies compare. */
struct parsed {
    int r;
    struct eddy_http_request req;
};

static int parse_at(const char *base, size_t len, size_t *scanned,
                    const struct eddy_http_limits *lim, struct eddy_http_request *req)
{
    int r = eddy_http_parse_request(base, len, scanned, lim, req);
    if (r > 0) {
        if ((size_t)r > len)
            fail("verdict %d past the %zu bytes given", r, len);
        check_inside(req, base, r);
    }
    return r;
}

static void same_views(const struct eddy_http_request *a, const char *abase,
                       const struct eddy_http_request *b, const char *bbase, const char *how)
{
#define OFF(req, base, p) ((p) ? (size_t)((p) - (base)) : (size_t)-1)
    bool same = a->method_len == b->method_len && a->target_len == b->target_len &&
                OFF(a, abase, a->target) == OFF(b, bbase, b->target) && a->version == b->version &&
                a->num_headers == b->num_headers && a->content_length == b->content_length &&
                a->has_content_length == b->has_content_length && a->chunked == b->chunked &&
                a->keep_alive == b->keep_alive && a->expect_continue == b->expect_continue &&
                OFF(a, abase, a->host) == OFF(b, bbase, b->host) && a->host_len == b->host_len;
    for (size_t i = 0; same && i < a->num_headers; i++)
        same = OFF(a, abase, a->headers[i].name) == OFF(b, bbase, b->headers[i].name) &&
               a->headers[i].name_len == b->headers[i].name_len &&
               OFF(a, abase, a->headers[i].value) == OFF(b, bbase, b->headers[i].value) &&
               a->headers[i].value_len == b->headers[i].value_len;
#undef OFF
    if (!same)
        fail("%s: the views differ from the whole parse", how);
}

static void check_split(const char *buf, size_t len, unsigned char sel,
                        const struct eddy_http_limits *lim, const struct parsed *whole)
{
    static struct eddy_http_request req;
    size_t k = len ? (size_t)sel * len / 255 : 0;

    /* The first k bytes from a copy of exactly k bytes, then all of them. */
    char *part = malloc(k ? k : 1);
    memcpy(part, buf, k);
    size_t scanned = 0;
    const char *base = part;
    int v = parse_at(part, k, &scanned, lim, &req);
    if (v == 0) {
        base = buf;
        v = parse_at(buf, len, &scanned, lim, &req);
    }
    if (v != whole->r)
        fail("split at %zu: %d, whole: %d", k, v, whole->r);
    if (v > 0)
        same_views(&whole->req, buf, &req, base, "split");
    free(part);

    /* One byte at a time, on the growing buffer. */
    scanned = 0;
    v = 0;
    for (size_t n = 1; n <= len && v == 0; n++)
        v = parse_at(buf, n, &scanned, lim, &req);
    if (v != whole->r)
        fail("byte by byte: %d, whole: %d", v, whole->r);
    if (v > 0)
        same_views(&whole->req, buf, &req, buf, "byte by byte");
}

/* ---- 2. against llhttp ----------------------------------------------------------- */

/* eddy's answer for the first request, body included. */
struct full {
    int verdict;        /* ORACLE_ACCEPT, _INCOMPLETE, _REJECT */
    int status;         /* when rejected */
    bool body_rejected; /* the header block was fine, the body not */
    size_t consumed;    /* when accepted */
    char *body;         /* decoded, owned */
    size_t body_len;
    struct ref_chunked ref; /* the reference's reading of a chunked body */
};

static void eddy_full(const char *buf, size_t len, int head, const struct eddy_http_request *req,
                      struct full *f)
{
    memset(f, 0, sizeof *f);
    if (head <= 0) {
        f->verdict = head < 0 ? ORACLE_REJECT : ORACLE_INCOMPLETE;
        f->status = -head;
        return;
    }
    size_t avail = len - (size_t)head;
    f->body = malloc(avail ? avail : 1);
    memcpy(f->body, buf + head, avail);
    if (!req->chunked) {
        if (avail < req->content_length) {
            f->verdict = ORACLE_INCOMPLETE;
        } else {
            f->verdict = ORACLE_ACCEPT;
            f->body_len = (size_t)req->content_length;
            f->consumed = (size_t)head + f->body_len;
        }
        return;
    }

    /* Chunked: eddy's decoder against the reference. */
    char *ref_out = malloc(avail ? avail : 1);
    ref_chunked(buf + head, avail, 0, ref_out, &f->ref);
    struct eddy_http_chunked d = {0};
    int r = eddy_http_chunked_decode(&d, f->body, avail, 0);
    const struct ref_chunked *ref = &f->ref;
    bool agree;
    if (ref->verdict == REF_DONE)
        agree = r == 1 && d.in == ref->used && d.out == ref->out &&
                memcmp(f->body, ref_out, d.out) == 0;
    else if (ref->verdict == REF_MORE)
        agree = r == 0 && d.out == ref->out && memcmp(f->body, ref_out, d.out) == 0;
    else
        agree = r < 0 && (ref->where == REF_LIMIT || r == -400);
    if (!agree)
        fail("chunked: eddy %d (in %zu, out %zu), reference %d at %d (used %zu, out %zu)", r, d.in,
             d.out, ref->verdict, ref->where, ref->used, ref->out);
    free(ref_out);
    if (r == 1) {
        f->verdict = ORACLE_ACCEPT;
        f->body_len = d.out;
        f->consumed = (size_t)head + d.in;
    } else if (r == 0) {
        f->verdict = ORACLE_INCOMPLETE;
    } else {
        f->verdict = ORACLE_REJECT;
        f->status = -r;
        f->body_rejected = true;
    }
}

/* A copy of the input in which the header block's bare LFs are CRLF and a
 * method llhttp does not know is GET. Neither changes eddy's answer (this
 * is checked): they let llhttp judge the rest. */
static char *normalize(const char *buf, size_t len, int head, const struct eddy_http_request *req,
                       size_t *nlen, bool *method_replaced)
{
    char *out = malloc(2 * len + 8);
    size_t n = 0;
    size_t m0 = (size_t)(req->method - buf);
    *method_replaced = !oracle_known_method(req->method, req->method_len);
    for (size_t i = 0; i < (size_t)head; i++) {
        if (i == m0 && *method_replaced) {
            memcpy(out + n, "GET", 3);
            n += 3;
            i += req->method_len - 1;
            continue;
        }
        if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
            out[n++] = '\r';
        out[n++] = buf[i];
    }
    memcpy(out + n, buf + head, len - (size_t)head);
    *nlen = n + len - (size_t)head;
    return out;
}

static bool bytes_eq(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && memcmp(a, b, an) == 0;
}

static bool has_token(const struct eddy_http_request *req, const char *name, const char *token)
{
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct eddy_http_header *h = &req->headers[i];
        if (h->name_len != strlen(name) || strncasecmp(h->name, name, h->name_len) != 0)
            continue;
        for (size_t k = 0; k + strlen(token) <= h->value_len; k++)
            if (strncasecmp(h->value + k, token, strlen(token)) == 0)
                return true;
    }
    return false;
}

/* Some Transfer-Encoding field has an empty list element. */
static bool te_empty_element(const struct eddy_http_request *req)
{
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct eddy_http_header *h = &req->headers[i];
        if (h->name_len != 17 || strncasecmp(h->name, "transfer-encoding", 17) != 0)
            continue;
        bool empty = true; /* the element so far has nothing in it */
        for (size_t k = 0; k < h->value_len; k++) {
            if (h->value[k] == ',') {
                if (empty)
                    return true;
                empty = true;
            } else if (h->value[k] != ' ' && h->value[k] != '\t') {
                empty = false;
            }
        }
        if (empty)
            return true;
    }
    return false;
}

/* Some field of this name has an HTAB in or right after its value. */
static bool field_has_htab(const struct eddy_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct eddy_http_header *h = &req->headers[i];
        if (h->name_len != strlen(name) || strncasecmp(h->name, name, h->name_len) != 0)
            continue;
        for (const char *p = h->value; *p != '\r' && *p != '\n'; p++)
            if (*p == '\t')
                return true;
    }
    return false;
}

static void compare_views(const struct eddy_http_request *req, const struct full *f,
                          const struct oracle_result *o, bool method_replaced)
{
    if (!method_replaced &&
        !bytes_eq(oracle_bytes(o, o->method), o->method.len, req->method, req->method_len))
        fail("llhttp: another method");
    if (!bytes_eq(oracle_bytes(o, o->target), o->target.len, req->target, req->target_len))
        fail("llhttp: another target \"%.*s\"", (int)o->target.len, oracle_bytes(o, o->target));
    if (o->version != req->version)
        fail("llhttp: version %d, eddy %d", o->version, req->version);
    if (o->num_headers != req->num_headers)
        fail("llhttp: %zu fields, eddy %zu", o->num_headers, req->num_headers);
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct eddy_http_header *h = &req->headers[i];
        const char *v = oracle_bytes(o, o->values[i]);
        size_t vn = o->values[i].len;
        /* llhttp keeps trailing whitespace, which RFC 9110 5.5 excludes. */
        while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
            vn--;
        if (!bytes_eq(oracle_bytes(o, o->names[i]), o->names[i].len, h->name, h->name_len) ||
            !bytes_eq(v, vn, h->value, h->value_len))
            fail("llhttp: field %zu differs", i);
    }
    bool l4 = o->upgrade || bytes_eq(req->method, req->method_len, "CONNECT", 7);
    if (!l4) {
        if (!bytes_eq(oracle_bytes(o, o->body), o->body.len, f->body, f->body_len))
            fail("llhttp: another body (%zu bytes, eddy %zu)", o->body.len, f->body_len);
        if (o->consumed != f->consumed)
            fail("llhttp: the request took %zu bytes, eddy %zu", o->consumed, f->consumed);
    }
    bool l3 = req->version == 10 && !req->keep_alive && has_token(req, "connection", "close");
    bool l7 = field_has_htab(req, "connection");
    if (o->keep_alive != req->keep_alive && !l3 && !l4 && !l7)
        fail("llhttp: keep-alive %d, eddy %d", o->keep_alive, req->keep_alive);
}

/* Why eddy is stricter here, or NULL. */
static const char *eddy_stricter(const char *buf, size_t len, int head,
                                 const struct eddy_http_request *req, const struct full *f,
                                 const struct oracle_result *o)
{
    if (f->verdict == ORACLE_REJECT && f->status != 400)
        return "P a policy status";
    if (head > 0 && (o->upgrade || bytes_eq(req->method, req->method_len, "CONNECT", 7)))
        return "L4 CONNECT or Upgrade: llhttp reads no body";
    if (f->body_rejected)
        return f->ref.verdict == REF_BAD ? "S10 an invalid chunked body" : NULL;
    return ref_eddy_stricter(buf, len);
}

/* Why llhttp is stricter here, or NULL. */
static const char *llhttp_stricter(int head, const struct eddy_http_request *req,
                                   const struct full *f, const struct oracle_result *o)
{
    if (head == 0)
        return "W eddy waits for the end of the header block";
    if (o->err == HPE_INVALID_URL && req->target[0] != '/')
        return "L1 llhttp's absolute-form needs \"//\", authority-form CONNECT";
    if (req->chunked && f->ref.loose_ext)
        return "E1 eddy skips extension syntax after ';'";
    if (req->chunked && f->ref.has_ext && f->ref.verdict != REF_BAD &&
        (o->err == HPE_INVALID_CHUNK_SIZE || o->err == HPE_STRICT))
        return "L2 llhttp 8.1's chunk-extension bugs";
    if (o->err == HPE_INVALID_TRANSFER_ENCODING && te_empty_element(req))
        return "L5 an empty element in Transfer-Encoding";
    if (req->chunked && f->ref.verdict != REF_BAD && o->framing_trailer)
        return "L6 Transfer-Encoding or Content-Length as a trailer";
    if ((o->err == HPE_INVALID_TRANSFER_ENCODING && field_has_htab(req, "transfer-encoding")) ||
        (o->err == HPE_INVALID_CONTENT_LENGTH && field_has_htab(req, "content-length")))
        return "L7 HTAB as OWS in Transfer-Encoding or Content-Length";
    return NULL;
}

static void differential(const char *buf, size_t len, const struct parsed *whole)
{
    int head = whole->r;
    const struct eddy_http_request *req = &whole->req;
    static struct parsed norm;
    const char *in = buf;
    size_t in_len = len;
    char *copy = NULL;
    bool method_replaced = false;
    if (head > 0) {
        if (!ref_target_ok(req->method, req->method_len, req->target, req->target_len) &&
            !note(ref_target_empty_host(req->method, req->method_len, req->target, req->target_len)
                      ? "K1 (eddy bug) an empty host in the target"
                      : NULL))
            fail("eddy accepted a target in no RFC 9112 3.2 form");
        copy = normalize(buf, len, head, req, &in_len, &method_replaced);
        size_t scanned = 0;
        norm.r = eddy_http_parse_request(copy, in_len, &scanned, NULL, &norm.req);
        if (norm.r <= 0 || norm.req.num_headers != req->num_headers ||
            norm.req.chunked != req->chunked || norm.req.content_length != req->content_length ||
            norm.req.keep_alive != req->keep_alive)
            fail("normalized (CRLF, method GET): eddy answers %d", norm.r);
        in = copy;
        head = norm.r;
        req = &norm.req;
    }

    struct full f;
    eddy_full(in, in_len, head, req, &f);
    struct oracle_result o;
    oracle_parse(in, in_len, &o);

    if (f.verdict == o.verdict) {
        if (f.verdict == ORACLE_ACCEPT)
            compare_views(req, &f, &o, method_replaced);
        note(f.verdict == ORACLE_ACCEPT   ? "= both accept, views compared"
             : f.verdict == ORACLE_REJECT ? "= both reject"
                                          : "= both incomplete");
    } else if (f.verdict < o.verdict) {
        if (!note(eddy_stricter(in, in_len, head, req, &f, &o)))
            fail("eddy %d (%d), llhttp %d: unexplained", f.verdict, f.status, o.verdict);
    } else if (!note(llhttp_stricter(head, req, &f, &o))) {
        fail("eddy %d, llhttp %d (%s: %s): unexplained", f.verdict, o.verdict, o.err_name,
             o.reason ? o.reason : "");
    }
    oracle_free(&o);
    free(f.body);
    free(copy);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static struct parsed whole, small;
    if (size == 0)
        return 0;
    fuzz_data = data;
    fuzz_size = size;
    fuzz_ended = false;
    size_t len = size - 1;
    char *buf = malloc(len ? len : 1);
    memcpy(buf, data + 1, len);

    size_t scanned = 0;
    whole.r = parse_at(buf, len, &scanned, NULL, &whole.req);
    check_split(buf, len, data[0], NULL, &whole);
    scanned = 0;
    small.r = parse_at(buf, len, &scanned, &small_limits, &small.req);
    check_split(buf, len, data[0], &small_limits, &small);

    differential(buf, len, &whole);

    /* Most inputs never end their header block, and eddy only waits on
     * them: compare them again with an end added. */
    if (whole.r == 0) {
        char *ended = malloc(len + 4);
        memcpy(ended, buf, len);
        memcpy(ended + len, "\r\n\r\n", 4);
        fuzz_ended = true;
        scanned = 0;
        whole.r = parse_at(ended, len + 4, &scanned, NULL, &whole.req);
        differential(ended, len + 4, &whole);
        free(ended);
    }
    free(buf);
    return 0;
}
