/* The llhttp oracle: see llhttp_oracle.h. Compiled with eddy's warnings;
 * only llhttp's own sources have theirs relaxed (see the Makefile). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

#include "llhttp_oracle.h"

enum { IN_NONE, IN_NAME, IN_VALUE };

static struct oracle_result *result(llhttp_t *p)
{
    return p->data;
}

/* Appends at..at+n to span s. llhttp may report one string in pieces; they
 * are joined, moving the string to the end of the text if something else
 * was collected in between. */
static void span_append(struct oracle_result *r, struct oracle_span *s, const char *at, size_t n)
{
    size_t need = r->text_len + s->len + n;
    if (need > r->text_cap) {
        size_t cap = r->text_cap ? r->text_cap : 256;
        while (cap < need)
            cap *= 2;
        char *t = realloc(r->text, cap);
        if (!t)
            abort();
        r->text = t;
        r->text_cap = cap;
    }
    if (s->len == 0) {
        s->off = r->text_len;
    } else if (s->off + s->len != r->text_len) {
        memmove(r->text + r->text_len, r->text + s->off, s->len);
        s->off = r->text_len;
        r->text_len += s->len;
    }
    if (n)
        memcpy(r->text + r->text_len, at, n);
    r->text_len += n;
    s->len += n;
}

static int on_method(llhttp_t *p, const char *at, size_t n)
{
    span_append(result(p), &result(p)->method, at, n);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    span_append(result(p), &result(p)->target, at, n);
    return 0;
}

static int on_version_complete(llhttp_t *p)
{
    result(p)->version = 10 * p->http_major + p->http_minor;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    struct oracle_result *r = result(p);
    if (r->headers_done) {
        /* A trailer field: eddy checks and drops those, so only its name
         * is kept, to tell framing fields. */
        for (size_t i = 0; i < n && r->trailer_len < sizeof r->trailer; i++)
            r->trailer[r->trailer_len++] = at[i];
        return 0;
    }
    if (r->in_span != IN_NAME) {
        if (r->num_headers == ORACLE_MAX_HEADERS) {
            r->overflow = true;
            return 0;
        }
        r->num_headers++;
        r->in_span = IN_NAME;
    }
    span_append(r, &r->names[r->num_headers - 1], at, n);
    return 0;
}

/* Ends a name or a value: the next name callback starts a new field (a
 * field with an empty value gets no value callback at all). */
static int on_field_or_value_complete(llhttp_t *p)
{
    struct oracle_result *r = result(p);
    r->in_span = IN_NONE;
    if (r->trailer_len) {
        size_t n = r->trailer_len;
        if ((n == 17 && strncasecmp(r->trailer, "transfer-encoding", n) == 0) ||
            (n == 14 && strncasecmp(r->trailer, "content-length", n) == 0))
            r->framing_trailer = true;
        r->trailer_len = 0;
    }
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    struct oracle_result *r = result(p);
    if (r->headers_done || r->overflow || r->num_headers == 0)
        return 0;
    r->in_span = IN_VALUE;
    span_append(r, &r->values[r->num_headers - 1], at, n);
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct oracle_result *r = result(p);
    r->headers_done = true;
    r->in_span = IN_NONE;
    r->keep_alive = llhttp_should_keep_alive(p);
    r->upgrade = p->upgrade;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    span_append(result(p), &result(p)->body, at, n);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    result(p)->complete = true;
    /* Stop here: only the first request is compared. */
    return HPE_PAUSED;
}

void oracle_parse(const char *buf, size_t len, struct oracle_result *r)
{
    static const llhttp_settings_t settings = {
        .on_method = on_method,
        .on_url = on_url,
        .on_version_complete = on_version_complete,
        .on_header_field = on_header_field,
        .on_header_field_complete = on_field_or_value_complete,
        .on_header_value = on_header_value,
        .on_header_value_complete = on_field_or_value_complete,
        .on_headers_complete = on_headers_complete,
        .on_body = on_body,
        .on_message_complete = on_message_complete,
    };
    llhttp_t parser;
    memset(r, 0, sizeof *r);
    llhttp_init(&parser, HTTP_REQUEST, &settings);
    parser.data = r;
    llhttp_errno_t err = llhttp_execute(&parser, buf, len);
    r->err = err;
    r->err_name = llhttp_errno_name(err);
    r->reason = err == HPE_OK ? NULL : llhttp_get_error_reason(&parser);
    if (r->complete) {
        r->verdict = ORACLE_ACCEPT;
        const char *pos = llhttp_get_error_pos(&parser);
        r->consumed = pos ? (size_t)(pos - buf) : len;
    } else if (err != HPE_OK && err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE) {
        r->verdict = ORACLE_REJECT;
    } else {
        r->verdict = ORACLE_INCOMPLETE;
    }
}

void oracle_free(struct oracle_result *r)
{
    free(r->text);
    r->text = NULL;
    r->text_len = r->text_cap = 0;
}

const char *oracle_bytes(const struct oracle_result *r, struct oracle_span s)
{
    return s.len ? r->text + s.off : "";
}

bool oracle_known_method(const char *m, size_t n)
{
#define KNOWN(num, name, string)                                                                   \
    if (n == sizeof #string - 1 && memcmp(m, #string, n) == 0)                                     \
        return true;
    HTTP_METHOD_MAP(KNOWN)
#undef KNOWN
    return false;
}
