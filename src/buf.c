/* A contiguous byte buffer with a moving start: consuming from the front is
 * O(1), and the bytes are moved back only when room is needed at the end. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define BUF_MIN 4096

int eddy__buf_reserve(struct eddy_buf *b, size_t want)
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
    size_t cap = b->cap ? b->cap : BUF_MIN;
    while (cap < need)
        cap *= 2;
    char *data = malloc(cap);
    if (!data)
        return -ENOMEM;
    if (b->len)
        memcpy(data, eddy__buf_head(b), b->len);
    free(b->data);
    b->data = data;
    b->cap = cap;
    b->off = 0;
    return 0;
}

int eddy__buf_append(struct eddy_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0; /* an empty buffer has no data pointer to copy to */
    int err = eddy__buf_reserve(b, n);
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

void eddy__buf_free(struct eddy_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}
