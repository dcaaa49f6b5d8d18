/* static: serves the files of one directory over HTTP/1.1, with sendfile().
 *
 * Confinement does not rest on string checks alone. The target is
 * percent-decoded once, requests with NUL bytes, encoded slashes or "."/".."
 * segments are refused, and then the file is opened with openat2() and
 * RESOLVE_BENEATH relative to the root directory's fd: the kernel itself
 * refuses any resolution, through ".." or a symlink, that would leave the
 * root. Directories are never listed unless --listing was given. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "service.h"

#define MAX_PATH 4096
#define MAX_LISTING_ENTRIES 10000

struct static_state {
    int rootfd;
    bool listing;
};

static const struct {
    const char *ext;
    const char *type;
} mime_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/vnd.microsoft.icon"},
    {"pdf", "application/pdf"},
    {"wasm", "application/wasm"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tar", "application/x-tar"},
};

static const char *mime_type(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot)
        for (size_t i = 0; i < sizeof mime_types / sizeof mime_types[0]; i++)
            if (strcasecmp(dot + 1, mime_types[i].ext) == 0)
                return mime_types[i].type;
    return "application/octet-stream";
}

static int open_beneath(int dirfd, const char *path)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (it is then
     * refused as not a regular file); regular files ignore the flag. */
    struct open_how how = {
        .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    return fd < 0 ? -errno : (int)fd;
}

static int status_of_errno(int err)
{
    switch (err) {
    case -ENOENT:
    case -ENOTDIR:
        return 404;
    case -ENAMETOOLONG:
        return 414;
    case -EXDEV:  /* would leave the root */
    case -ELOOP:  /* a magic link, or too many symlinks */
    case -EACCES:
    case -EPERM:
        return 403;
    case -EMFILE: /* out of fds or memory: the same request may work soon */
    case -ENFILE:
    case -ENOMEM:
        return 503;
    default:
        return 500;
    }
}

static void respond_text(struct eddy_http_exchange *x, int status,
                         const struct eddy_http_header *extra, size_t nextra)
{
    struct eddy_http_header h[3] = {{"Content-Type", "text/plain; charset=utf-8", 12, 25}};
    for (size_t i = 0; i < nextra && i < 2; i++)
        h[1 + i] = extra[i];
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, eddy_http_reason(status));
    eddy_http_respond(x, status, h, 1 + (nextra < 2 ? nextra : 2), body, (size_t)n);
}

static int hexval(char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* The path of the target, percent-decoded once, into out. Returns 0 or
 * the status to answer. The parser has already checked that every '%' is
 * followed by two hex digits. */
static int decode_path(const struct eddy_http_request *r, char *out, size_t size, size_t *len)
{
    const char *t = r->target, *end = r->target + r->target_len;
    /* absolute-form: skip "scheme://authority" to the path. */
    if (t[0] != '/') {
        const char *sep = memmem(t, r->target_len, "://", 3);
        if (!sep)
            return 400;
        /* The authority ends at the first '/', '?' or '#'; without a
         * '/' there, the path is empty ("/"), whatever the query holds. */
        const char *a = sep + 3;
        while (a < end && *a != '/' && *a != '?' && *a != '#')
            a++;
        if (a == end || *a != '/')
            t = "/", end = t + 1;
        else
            t = a;
    }
    const char *q = memchr(t, '?', (size_t)(end - t));
    if (q)
        end = q;
    size_t o = 0;
    for (const char *p = t; p < end; p++) {
        char c = *p;
        if (c == '%') {
            c = (char)(hexval(p[1]) << 4 | hexval(p[2]));
            p += 2;
            /* An encoded '/' would hide a segment boundary from the checks
             * below, and NUL would cut the path short. */
            if (c == '/' || c == '\0' || c == '\\')
                return 400;
        }
        if (o + 1 >= size)
            return 414;
        out[o++] = c;
    }
    out[o] = '\0';
    *len = o;
    /* No "." or ".." segments: they are refused, not resolved, so what a
     * client asks for is exactly the name that is looked up. */
    for (const char *s = out; *s;) {
        const char *slash = strchr(s + 1, '/');
        size_t n = (slash ? (size_t)(slash - s) : strlen(s)) - 1;
        if ((n == 1 && s[1] == '.') || (n == 2 && s[1] == '.' && s[2] == '.'))
            return 403;
        if (!slash)
            break;
        s = slash;
    }
    return 0;
}

/* ---- conditional and range requests ---------------------------------------------- */

static bool etag_listed(const struct eddy_http_header *h, const char *etag)
{
    size_t n = strlen(etag);
    const char *v = h->value, *end = h->value + h->value_len;
    while (v < end) {
        while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
            v++;
        const char *e = v;
        while (e < end && *e != ',')
            e++;
        const char *t = e;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        size_t len = (size_t)(t - v);
        if (len == 1 && *v == '*')
            return true;
        /* Weak comparison (RFC 9110, 13.1.2): W/ prefixes do not matter. */
        if (len > 2 && v[0] == 'W' && v[1] == '/') {
            v += 2;
            len -= 2;
        }
        if (len == n && memcmp(v, etag, n) == 0)
            return true;
        v = e;
    }
    return false;
}

static bool not_modified(const struct eddy_http_request *r, const char *etag, time_t mtime)
{
    const struct eddy_http_header *inm = eddy_http_find_header(r, "if-none-match");
    if (inm)
        return etag_listed(inm, etag);
    const struct eddy_http_header *ims = eddy_http_find_header(r, "if-modified-since");
    int64_t since;
    return ims && eddy_http_parse_date(ims->value, ims->value_len, &since) == 0 && mtime <= since;
}

static bool parse_u64(const char *s, const char *end, uint64_t *out)
{
    if (s == end || end - s > 19)
        return false;
    uint64_t v = 0;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

enum range_result { RANGE_NONE, RANGE_OK, RANGE_UNSATISFIABLE };

/* A single "bytes=first-last", "bytes=first-" or "bytes=-suffix". Several
 * ranges, other units or bad syntax: the Range header is ignored and the
 * whole file is sent, as RFC 9110 (14.2) allows. */
static enum range_result parse_range(const struct eddy_http_request *r, const char *etag,
                                     uint64_t size, uint64_t *first, uint64_t *last)
{
    const struct eddy_http_header *h = eddy_http_find_header(r, "range");
    if (!h || h->value_len < 7 || strncasecmp(h->value, "bytes=", 6) != 0)
        return RANGE_NONE;
    const struct eddy_http_header *ifr = eddy_http_find_header(r, "if-range");
    if (ifr && !(ifr->value_len == strlen(etag) && memcmp(ifr->value, etag, ifr->value_len) == 0))
        return RANGE_NONE;
    const char *s = h->value + 6, *end = h->value + h->value_len;
    const char *dash = memchr(s, '-', (size_t)(end - s));
    if (!dash || memchr(s, ',', (size_t)(end - s)))
        return RANGE_NONE;
    uint64_t a, b;
    if (dash == s) {
        if (!parse_u64(dash + 1, end, &b))
            return RANGE_NONE;
        if (b == 0 || size == 0)
            return RANGE_UNSATISFIABLE;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return RANGE_OK;
    }
    if (!parse_u64(s, dash, &a))
        return RANGE_NONE;
    if (dash + 1 == end)
        b = UINT64_MAX;
    else if (!parse_u64(dash + 1, end, &b) || b < a)
        return RANGE_NONE;
    if (a >= size)
        return RANGE_UNSATISFIABLE;
    *first = a;
    *last = b >= size ? size - 1 : b;
    return RANGE_OK;
}

static void serve_file(struct eddy_http_exchange *x, int fd, const struct stat *st,
                       const char *path)
{
    char etag[48], modified[32], content_range[80];
    snprintf(etag, sizeof etag, "\"%llx-%llx\"",
             (unsigned long long)st->st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st->st_mtim.tv_nsec,
             (unsigned long long)st->st_size);
    eddy_http_date(st->st_mtime, modified);
    const char *type = mime_type(path);
    struct eddy_http_header h[5] = {
        {"ETag", etag, 4, strlen(etag)},
        {"Last-Modified", modified, 13, strlen(modified)},
        {"Accept-Ranges", "bytes", 13, 5},
        {"Content-Type", type, 12, strlen(type)},
    };
    if (not_modified(x->req, etag, st->st_mtime)) {
        close(fd);
        eddy_http_respond(x, 304, h, 3, NULL, 0);
        return;
    }
    uint64_t size = (uint64_t)st->st_size, first = 0, last = 0;
    switch (parse_range(x->req, etag, size, &first, &last)) {
    case RANGE_OK:
        snprintf(content_range, sizeof content_range, "bytes %llu-%llu/%llu",
                 (unsigned long long)first, (unsigned long long)last, (unsigned long long)size);
        h[4] = (struct eddy_http_header){"Content-Range", content_range, 13,
                                         strlen(content_range)};
        eddy_http_respond_file(x, 206, h, 5, fd, first, last - first + 1);
        return;
    case RANGE_UNSATISFIABLE:
        close(fd);
        snprintf(content_range, sizeof content_range, "bytes */%llu", (unsigned long long)size);
        respond_text(x, 416,
                     &(struct eddy_http_header){"Content-Range", content_range, 13,
                                                strlen(content_range)},
                     1);
        return;
    case RANGE_NONE:
        eddy_http_respond_file(x, 200, h, 4, fd, 0, size);
        return;
    }
}

/* ---- directories --------------------------------------------------------------------- */

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

enum escape { RAW, HTML, URL };

/* Appends s to a growing page: as it is (the page's own markup), escaped
 * for HTML text and attribute values, or percent-encoded for a link (then
 * any byte of a file name survives as a URL). On allocation failure the
 * page stays as it was. */
static void append(char **buf, size_t *len, size_t *cap, const char *s, enum escape how)
{
    for (; *s; s++) {
        char tmp[8];
        const char *piece = tmp;
        unsigned char c = (unsigned char)*s;
        if (how == URL && !(c == '-' || c == '.' || c == '_' || c == '~' || c == '/' ||
                            (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                            (c >= 'A' && c <= 'Z')))
            snprintf(tmp, sizeof tmp, "%%%02X", c);
        else if (how == HTML && c == '<')
            piece = "&lt;";
        else if (how == HTML && c == '>')
            piece = "&gt;";
        else if (how == HTML && c == '&')
            piece = "&amp;";
        else if (how == HTML && c == '"')
            piece = "&quot;";
        else if (how == HTML && c == '\'')
            piece = "&#39;";
        else
            tmp[0] = (char)c, tmp[1] = '\0';
        size_t n = strlen(piece);
        if (*len + n + 1 > *cap) {
            size_t ncap = *cap ? *cap * 2 : 4096;
            while (ncap < *len + n + 1)
                ncap *= 2;
            char *grown = realloc(*buf, ncap);
            if (!grown)
                return;
            *buf = grown;
            *cap = ncap;
        }
        memcpy(*buf + *len, piece, n + 1);
        *len += n;
    }
}

static void list_directory(struct eddy_http_exchange *x, int fd, const char *path)
{
    DIR *dir = fdopendir(fd);
    if (!dir) {
        close(fd);
        respond_text(x, 500, NULL, 0);
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL && n < MAX_LISTING_ENTRIES) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            char **grown = realloc(names, ncap * sizeof *names);
            if (!grown)
                break;
            names = grown;
            cap = ncap;
        }
        bool is_dir = e->d_type == DT_DIR;
        size_t len = strlen(e->d_name);
        char *name = malloc(len + 2);
        if (!name)
            break;
        memcpy(name, e->d_name, len);
        name[len] = is_dir ? '/' : '\0';
        name[len + 1] = '\0';
        names[n++] = name;
    }
    closedir(dir);
    qsort(names, n, sizeof *names, compare_names);
    char *html = NULL;
    size_t len = 0, hcap = 0;
    append(&html, &len, &hcap, "<!DOCTYPE html>\n<meta charset=\"utf-8\">\n<title>", RAW);
    append(&html, &len, &hcap, path, HTML);
    append(&html, &len, &hcap, "</title>\n<h1>", RAW);
    append(&html, &len, &hcap, path, HTML);
    append(&html, &len, &hcap, "</h1>\n<ul>\n", RAW);
    for (size_t i = 0; i < n; i++) {
        append(&html, &len, &hcap, "<li><a href=\"", RAW);
        append(&html, &len, &hcap, names[i], URL);
        append(&html, &len, &hcap, "\">", RAW);
        append(&html, &len, &hcap, names[i], HTML);
        append(&html, &len, &hcap, "</a>\n", RAW);
        free(names[i]);
    }
    free(names);
    append(&html, &len, &hcap, "</ul>\n", RAW);
    struct eddy_http_header h = {"Content-Type", "text/html; charset=utf-8", 12, 24};
    eddy_http_respond(x, 200, &h, 1, html, len);
    free(html);
}

static void serve_directory(struct eddy_http_exchange *x, const struct static_state *st, int fd,
                            const char *path, size_t path_len)
{
    if (path[path_len - 1] != '/') {
        /* "/docs" -> "/docs/", so relative links inside resolve. */
        char location[MAX_PATH + 2];
        snprintf(location, sizeof location, "%.*s/", (int)x->req->target_len, x->req->target);
        const char *q = memchr(x->req->target, '?', x->req->target_len);
        if (q)
            snprintf(location, sizeof location, "%.*s/%.*s", (int)(q - x->req->target),
                     x->req->target, (int)(x->req->target + x->req->target_len - q), q);
        close(fd);
        respond_text(x, 301, &(struct eddy_http_header){"Location", location, 8, strlen(location)},
                     1);
        return;
    }
    int index = open_beneath(fd, "index.html");
    struct stat sb;
    if (index >= 0 && fstat(index, &sb) == 0 && S_ISREG(sb.st_mode)) {
        close(fd);
        serve_file(x, index, &sb, "index.html");
        return;
    }
    if (index >= 0)
        close(index);
    if (st->listing) {
        list_directory(x, fd, path);
        return;
    }
    close(fd);
    respond_text(x, 403, NULL, 0);
}

static void static_handle(struct eddy_http_exchange *x)
{
    const struct svc_ctx *ctx = x->server->data;
    const struct static_state *st = ctx->state;
    const struct eddy_http_request *r = x->req;
    bool get = r->method_len == 3 && memcmp(r->method, "GET", 3) == 0;
    bool head = r->method_len == 4 && memcmp(r->method, "HEAD", 4) == 0;
    if (!get && !head) {
        respond_text(x, 405, &(struct eddy_http_header){"Allow", "GET, HEAD", 5, 9}, 1);
        return;
    }
    char path[MAX_PATH];
    size_t len = 0;
    int status = decode_path(r, path, sizeof path, &len);
    if (status) {
        respond_text(x, status, NULL, 0);
        return;
    }
    const char *rel = path[1] ? path + 1 : ".";
    int fd = open_beneath(st->rootfd, rel);
    if (fd < 0) {
        respond_text(x, status_of_errno(fd), NULL, 0);
        return;
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        close(fd);
        respond_text(x, 500, NULL, 0);
    } else if (S_ISDIR(sb.st_mode)) {
        serve_directory(x, st, fd, path, len);
    } else if (!S_ISREG(sb.st_mode)) {
        close(fd);
        respond_text(x, 403, NULL, 0);
    } else {
        serve_file(x, fd, &sb, path);
    }
}

static int static_setup(struct svc_ctx *ctx, const struct svc_http_config *cfg, char *err,
                        size_t size)
{
    const char *root = cfg->root ? cfg->root : ".";
    struct static_state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, size, "out of memory");
        return -ENOMEM;
    }
    st->rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (st->rootfd < 0) {
        int e = -errno;
        snprintf(err, size, "cannot serve '%s': %s", root, eddy_strerror(e));
        free(st);
        return e;
    }
    st->listing = cfg->listing;
    ctx->state = st;
    return 0;
}

static void static_teardown(struct svc_ctx *ctx)
{
    struct static_state *st = ctx->state;
    if (!st)
        return;
    close(st->rootfd);
    free(st);
    ctx->state = NULL;
}

const struct svc_service svc_static = {
    .name = "static",
    .summary = "HTTP/1.1 file server for --root (sendfile, ranges, conditional GET)",
    .default_port = 8000,
    .http_handler = static_handle,
    .setup = static_setup,
    .teardown = static_teardown,
};
