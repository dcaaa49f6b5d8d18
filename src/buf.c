/* A contiguous byte buffer with a moving start: consuming from the front is
 * O(1), and the bytes are moved back only when room is needed at the end.
 * Buffers of the standard block size come from and go back to a pool. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "buf.h"

#if EDDY__SLABS
#define SLAB_BYTES ((size_t)EDDY__SLAB_BLOCKS * EDDY__BLOCK)

/* Maps one more slab, its blocks all released (untouched pages cost no
 * memory). The arrays grow first, doubling, so a failure leaves nothing
 * behind and a million connections' blocks cost few copies. */
static int slab_add(struct eddy__pool *pool)
{
    if (pool->nslabs == pool->slabs_cap) {
        size_t cap = pool->slabs_cap ? pool->slabs_cap * 2 : 4;
        void **slabs = realloc(pool->slabs, cap * sizeof *slabs);
        if (!slabs)
            return -ENOMEM;
        pool->slabs = slabs;
        void **cold = realloc(pool->cold, cap * EDDY__SLAB_BLOCKS * sizeof *cold);
        if (!cold)
            return -ENOMEM;
        pool->cold = cold;
        pool->slabs_cap = cap;
    }
    char *slab = mmap(NULL, SLAB_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (slab == MAP_FAILED)
        return -ENOMEM;
    pool->slabs[pool->nslabs++] = slab;
    for (size_t i = EDDY__SLAB_BLOCKS; i > 0; i--)
        pool->cold[pool->ncold++] = slab + (i - 1) * EDDY__BLOCK;
    return 0;
}

static char *block_new(struct eddy__pool *pool)
{
    if (pool->ncold == 0 && slab_add(pool) < 0)
        return NULL;
    return pool->cold[--pool->ncold];
}

/* The cold stack has room for every block of every slab. */
static void block_release(struct eddy__pool *pool, char *block)
{
    (void)madvise(block, EDDY__BLOCK, MADV_DONTNEED);
    pool->cold[pool->ncold++] = block;
}
#else
static char *block_new(struct eddy__pool *pool)
{
    (void)pool;
    return malloc(EDDY__BLOCK);
}

static void block_release(struct eddy__pool *pool, char *block)
{
    (void)pool;
    free(block);
}
#endif

static char *warm_pop(struct eddy__pool *pool)
{
    char *block = pool->head;
    memcpy(&pool->head, block, sizeof pool->head);
    if (--pool->count < pool->low)
        pool->low = pool->count;
    return block;
}

static char *block_get(struct eddy__pool *pool)
{
    if (!pool)
        return malloc(EDDY__BLOCK);
    return pool->head ? warm_pop(pool) : block_new(pool);
}

static void block_put(struct eddy__pool *pool, char *data, size_t cap)
{
    if (!pool || cap != EDDY__BLOCK) {
        free(data);
    } else if (pool->count < pool->max) {
        memcpy(data, &pool->head, sizeof pool->head);
        pool->head = data;
        pool->count++;
    } else {
        block_release(pool, data);
    }
}

void eddy__pool_decay(struct eddy__pool *pool)
{
    for (unsigned n = pool->low; n > 0; n--)
        block_release(pool, warm_pop(pool));
    pool->low = pool->count;
}

void eddy__pool_drain(struct eddy__pool *pool)
{
    while (pool->head)
        block_release(pool, warm_pop(pool));
#if EDDY__SLABS
    for (size_t i = 0; i < pool->nslabs; i++)
        munmap(pool->slabs[i], SLAB_BYTES);
    free(pool->slabs);
    free(pool->cold);
#endif
    *pool = (struct eddy__pool){.max = pool->max};
}

int eddy__buf_reserve(struct eddy_buf *b, size_t want, struct eddy__pool *pool)
{
    if (eddy__buf_room(b) >= want)
        return 0;
    /* Sizes past half the address space cannot be allocated anyway, and
     * refusing them keeps the doubling below from overflowing. */
    if (want > SIZE_MAX / 2 || b->len > SIZE_MAX / 2 - want)
        return -ENOMEM;
    size_t need = b->len + want;
    /* Moving the data to the front is enough when it frees the room and
     * the data is small next to the capacity (so the copy stays cheap). */
    if (b->cap >= need && b->len <= b->cap / 2) {
        memmove(b->data, eddy__buf_head(b), b->len);
        b->off = 0;
        return 0;
    }
    size_t cap = b->cap ? b->cap * 2 : EDDY__BLOCK;
    while (cap < need)
        cap *= 2;
    char *data = cap == EDDY__BLOCK ? block_get(pool) : malloc(cap);
    if (!data)
        return -ENOMEM;
    if (b->len)
        memcpy(data, eddy__buf_head(b), b->len);
    if (b->data)
        block_put(pool, b->data, b->cap);
    b->data = data;
    b->cap = cap;
    b->off = 0;
    return 0;
}

int eddy__buf_append(struct eddy_buf *b, const void *p, size_t n, struct eddy__pool *pool)
{
    if (n == 0)
        return 0; /* an empty buffer has no data pointer to copy to */
    int err = eddy__buf_reserve(b, n, pool);
    if (err)
        return err;
    memcpy(eddy__buf_tail(b), p, n);
    b->len += n;
    return 0;
}

void eddy__buf_consume(struct eddy_buf *b, size_t n)
{
    b->off += n;
    b->len -= n;
    if (b->len == 0)
        b->off = 0;
}

void eddy__buf_free(struct eddy_buf *b, struct eddy__pool *pool)
{
    if (b->data)
        block_put(pool, b->data, b->cap);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}
