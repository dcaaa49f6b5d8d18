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

/* Blocks come from mappings of this many (1 MiB), unless EDDY__SLABS is 0:
 * under ASan or valgrind (-DEDDY_MALLOC_BLOCKS) each block is malloc'd, so
 * that those tools see every block's bounds and lifetime. */
#define EDDY__SLAB_BLOCKS 64
#if defined(__has_feature)
#if __has_feature(address_sanitizer) /* clang says so here, not in __SANITIZE_ADDRESS__ */
#define EDDY_MALLOC_BLOCKS
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(EDDY_MALLOC_BLOCKS)
#define EDDY__SLABS 0
#else
#define EDDY__SLABS 1
#endif

/* The blocks of one loop. Free ones are kept warm (pages in memory) for
 * reuse, so that a request passing through a buffer costs no allocation;
 * those unused for a while are released: their pages go back to the
 * kernel (madvise) and come back as fresh zero pages when used again. So
 * RSS follows the buffers in use, not the most ever in use at once, which
 * a heap cannot do while small allocations sit between the blocks. A NULL
 * pool is allowed everywhere and means plain malloc() and free(). */
struct eddy__pool {
    void *head;     /* warm free blocks, linked through their first bytes */
    unsigned count; /* how many */
    unsigned max;   /* kept warm at most; the rest are released at once */
    unsigned low;   /* the fewest warm ones since the last decay */
    void **cold;    /* released blocks, a stack (EDDY__SLABS) */
    size_t ncold;
    void **slabs;   /* the mappings (EDDY__SLABS) */
    size_t nslabs, slabs_cap;
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

/* Frees the pool and its blocks. Every block must be back in it. */
EDDY_HIDDEN void eddy__pool_drain(struct eddy__pool *pool);

/* Releases the warm blocks no buffer needed since the last call (as many
 * as the low-water mark): what a burst left behind, not what steady use
 * keeps lending. */
EDDY_HIDDEN void eddy__pool_decay(struct eddy__pool *pool);

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
