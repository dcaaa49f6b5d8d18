/* A contiguous byte buffer with a moving start: consuming from the front is
 * O(1), and the bytes are moved back only when room is needed at the end.
 * Buffers of the standard block size come from and go back to a pool. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static char *block_get(struct eddy__pool *pool)
{
    if (pool && pool->head) {
        char *block = pool->head;
        memcpy(&pool->head, block, sizeof pool->head);
        pool->count--;
        return block;
    }
    return malloc(EDDY__BLOCK);
}

static void block_put(struct eddy__pool *pool, char *data, size_t cap)
{
    if (pool && cap == EDDY__BLOCK && pool->count < pool->max) {
        memcpy(data, &pool->head, sizeof pool->head);
        pool->head = data;
        pool->count++;
        return;
    }
    free(data);
}

void eddy__pool_drain(struct eddy__pool *pool)
{
    while (pool->head) {
        char *block = pool->head;
        memcpy(&pool->head, block, sizeof pool->head);
        free(block);
    }
    pool->count = 0;
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
