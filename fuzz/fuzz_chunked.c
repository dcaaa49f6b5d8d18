/* libFuzzer target: eddy_http_chunked_decode().
 *
 * Input: one byte, then the raw body. The byte's low bit picks max_body
 * (the default, or 100 bytes so that 413 is reached); the other seven pick
 * a split position. The body is decoded whole, in two pieces and one byte
 * at a time: verdict, decoded bytes and bytes used must agree. The verdict
 * must also be the reference's (reference.c: RFC 9112 7.1, with eddy's
 * limits and its one leniency, chunk-extension syntax after a ';'). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sanitizer/asan_interface.h>

#include "eddy/http.h"
#include "reference.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

struct decoded {
    int r;
    struct eddy_http_chunked d;
    char *buf; /* the buffer after decoding: the body at its start */
};

/* Decodes raw[0..len) in place, feeding it in pieces: first `first` bytes,
 * then one byte at a time if `bytewise`, then the rest. Every call sees a
 * buffer of exactly the bytes it is given, so ASan catches a read past:
 * the bytes not yet given are poisoned. (A fresh copy of the prefix for
 * each call did the same, but made a byte-by-byte pass quadratic: with
 * 4 KB inputs this target ran at a few hundred inputs a second. The
 * decoder's state holds offsets, no pointers, so one buffer loses
 * nothing.) */
static void decode(const char *raw, size_t len, size_t first, bool bytewise, uint64_t max_body,
                   struct decoded *out)
{
    memset(out, 0, sizeof *out);
    out->buf = malloc(len ? len : 1);
    memcpy(out->buf, raw, len);
    ASAN_POISON_MEMORY_REGION(out->buf, len ? len : 1);
    size_t step = first;
    for (;;) {
        ASAN_UNPOISON_MEMORY_REGION(out->buf, step);
        out->r = eddy_http_chunked_decode(&out->d, out->buf, step, max_body);
        if (out->r != 0 || step == len)
            break;
        step = bytewise ? step + 1 : len;
    }
    ASAN_UNPOISON_MEMORY_REGION(out->buf, len ? len : 1);
}

static void __attribute__((noreturn, format(printf, 3, 4)))
fail(const unsigned char *data, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "\nfuzz_chunked: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\ninput: byte 0x%02x, then \"", size ? data[0] : 0);
    for (size_t i = 1; i < size; i++) {
        unsigned char c = data[i];
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
    fputs("\"\n", stderr);
    abort();
}

static bool same(const struct decoded *a, const struct decoded *b)
{
    if (a->r != b->r)
        return false;
    if (a->r < 0)
        return true;
    return a->d.out == b->d.out && memcmp(a->buf, b->buf, a->d.out) == 0 &&
           (a->r == 0 || a->d.in == b->d.in);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *raw = (const char *)data + 1;
    size_t len = size - 1;
    uint64_t max_body = data[0] & 1 ? 100 : 0;
    size_t k = len ? (size_t)(data[0] >> 1) * len / 127 : 0;

    struct decoded whole, split, bytes;
    decode(raw, len, len, false, max_body, &whole);
    decode(raw, len, k, false, max_body, &split);
    decode(raw, len, len ? 1 : 0, true, max_body, &bytes);
    if (!same(&whole, &split))
        fail(data, size, "split at %zu: %d, whole %d", k, split.r, whole.r);
    if (!same(&whole, &bytes))
        fail(data, size, "byte by byte: %d, whole %d", bytes.r, whole.r);
    if (whole.r == 1 && (whole.d.in > len || whole.d.out > whole.d.in))
        fail(data, size, "in %zu, out %zu of %zu", whole.d.in, whole.d.out, len);

    char *ref_out = malloc(len ? len : 1);
    struct ref_chunked ref;
    ref_chunked(raw, len, max_body, ref_out, &ref);
    bool agree;
    if (ref.verdict == REF_DONE)
        agree = whole.r == 1 && whole.d.in == ref.used && whole.d.out == ref.out &&
                memcmp(whole.buf, ref_out, ref.out) == 0;
    else if (ref.verdict == REF_MORE)
        agree = whole.r == 0 && whole.d.out == ref.out && memcmp(whole.buf, ref_out, ref.out) == 0;
    else
        agree = whole.r < 0 && (ref.where == REF_LIMIT || whole.r == -400);
    if (!agree)
        fail(data, size, "eddy %d (in %zu, out %zu), reference %d at %d (used %zu, out %zu)",
             whole.r, whole.d.in, whole.d.out, ref.verdict, ref.where, ref.used, ref.out);
    free(ref_out);
    free(whole.buf);
    free(split.buf);
    free(bytes.buf);
    return 0;
}
