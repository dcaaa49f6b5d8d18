/* Private to the net layer: a growable byte buffer, struct eddy_buf (declared
 * in eddy/tcp.h because connections embed it). Unlike internal.h, this header
 * exposes nothing of the loop, so the net layer stays on the loop's public
 * API. */
#ifndef EDDY_BUF_H
#define EDDY_BUF_H

#include "eddy/tcp.h"

#define EDDY_HIDDEN __attribute__((visibility("hidden")))

/* Buffers start as one block of this size, which is also the default read
 * size, so one read fills at most one block. */
#define EDDY__BLOCK 16384

/* Free blocks kept for reuse (one pool per loop), so that a request that
 * passes through a buffer does not cost a malloc() and a free(). A NULL
 * pool is allowed everywhere and means plain malloc() and free(). */
struct eddy__pool {
    void *head;     /* free blocks, linked through their first bytes */
    unsigned count; /* how many */
    unsigned max;   /* kept at most; the rest are freed */
};

/* Makes room for at least `want` more bytes after the data, compacting or
 * growing the buffer. Returns 0 or -ENOMEM (the buffer is then unchanged). */
EDDY_HIDDEN int eddy__buf_reserve(struct eddy_buf *b, size_t want, struct eddy__pool *pool);

/* Appends n bytes. Returns 0 or -ENOMEM (nothing appended). */
EDDY_HIDDEN int eddy__buf_append(struct eddy_buf *b, const void *p, size_t n,
                                 struct eddy__pool *pool);

/* Drops n bytes from the front (n <= len). */
EDDY_HIDDEN void eddy__buf_consume(struct eddy_buf *b, size_t n);

/* Releases the memory; the buffer is then empty and may be used again. */
EDDY_HIDDEN void eddy__buf_free(struct eddy_buf *b, struct eddy__pool *pool);

/* Frees the pool's blocks. */
EDDY_HIDDEN void eddy__pool_drain(struct eddy__pool *pool);

static inline char *eddy__buf_head(const struct eddy_buf *b)
{
    return b->data + b->off;
}

static inline char *eddy__buf_tail(const struct eddy_buf *b)
{
    return b->data + b->off + b->len;
}

static inline size_t eddy__buf_room(const struct eddy_buf *b)
{
    return b->cap - b->off - b->len;
}

#endif
