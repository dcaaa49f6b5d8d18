/* Timers: a binary min-heap of pointers ordered by (deadline, start order).
 * Start, stop and expiry are O(log n); the next deadline is O(1). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "internal.h"

#define NS_PER_MS 1000000u

static bool earlier(const struct eddy_timer *a, const struct eddy_timer *b)
{
    return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

static void place(struct eddy_timer **heap, size_t i, struct eddy_timer *t)
{
    heap[i] = t;
    t->heap_index = i;
}

static void sift_up(struct eddy_timer **heap, size_t i)
{
    struct eddy_timer *t = heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!earlier(t, heap[parent]))
            break;
        place(heap, i, heap[parent]);
        i = parent;
    }
    place(heap, i, t);
}

static void sift_down(struct eddy_timer **heap, size_t len, size_t i)
{
    struct eddy_timer *t = heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= len)
            break;
        if (child + 1 < len && earlier(heap[child + 1], heap[child]))
            child++;
        if (!earlier(heap[child], t))
            break;
        place(heap, i, heap[child]);
        i = child;
    }
    place(heap, i, t);
}

static void heap_remove(struct eddy_loop *loop, struct eddy_timer *t)
{
    size_t i = t->heap_index;
    struct eddy_timer *last = loop->heap[--loop->heap_len];
    t->heap_index = SIZE_MAX;
    if (last == t)
        return;
    place(loop->heap, i, last);
    if (i > 0 && earlier(last, loop->heap[(i - 1) / 2]))
        sift_up(loop->heap, i);
    else
        sift_down(loop->heap, loop->heap_len, i);
}

static int heap_insert(struct eddy_loop *loop, struct eddy_timer *t)
{
    if (loop->heap_len == loop->heap_cap) {
        size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 16;
        struct eddy_timer **heap = realloc(loop->heap, cap * sizeof *heap);
        if (!heap)
            return -ENOMEM;
        loop->heap = heap;
        loop->heap_cap = cap;
    }
    t->seq = loop->timer_seq++;
    place(loop->heap, loop->heap_len, t);
    sift_up(loop->heap, loop->heap_len++);
    return 0;
}

EDDY_API void eddy_timer_init(struct eddy_loop *loop, struct eddy_timer *t)
{
    t->loop = loop;
    t->cb = NULL;
    t->due_ns = 0;
    t->repeat_ms = 0;
    t->seq = 0;
    t->heap_index = SIZE_MAX;
}

EDDY_API int eddy_timer_active(const struct eddy_timer *t)
{
    return t->heap_index != SIZE_MAX;
}

/* Milliseconds to nanoseconds, saturating: a timeout of years is "never",
 * not an overflow into the past. */
static uint64_t ms_to_ns(uint64_t ms)
{
    return ms > UINT64_MAX / NS_PER_MS ? UINT64_MAX : ms * NS_PER_MS;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

EDDY_API int eddy_timer_start(struct eddy_timer *t, eddy_timer_cb cb, uint64_t timeout_ms,
                              uint64_t repeat_ms)
{
    struct eddy_loop *loop = t->loop;
    if (eddy_timer_active(t)) {
        heap_remove(loop, t);
        loop->active--;
    }
    t->cb = cb;
    t->repeat_ms = repeat_ms;
    t->due_ns = add_sat(loop->now_ns, ms_to_ns(timeout_ms));
    int err = heap_insert(loop, t);
    if (err)
        return err;
    loop->active++;
    return 0;
}

EDDY_API void eddy_timer_stop(struct eddy_timer *t)
{
    if (!eddy_timer_active(t))
        return;
    heap_remove(t->loop, t);
    t->loop->active--;
}

int eddy__timer_next_timeout(struct eddy_loop *loop)
{
    if (loop->heap_len == 0)
        return -1;
    uint64_t due = loop->heap[0]->due_ns;
    if (due <= loop->now_ns)
        return 0;
    /* Round up: waking a fraction of a millisecond early would find nothing
     * due and wait again with a timeout of 0, spinning until the deadline. */
    uint64_t ms = (due - loop->now_ns + NS_PER_MS - 1) / NS_PER_MS;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

void eddy__timer_run(struct eddy_loop *loop)
{
    /* Timers (re)started by these callbacks wait for the next iteration even
     * when already due, so a callback that restarts its timer with a timeout
     * of 0 cannot keep this loop from returning to epoll_wait. */
    uint64_t first_new = loop->timer_seq;
    while (loop->heap_len > 0) {
        struct eddy_timer *t = loop->heap[0];
        if (t->due_ns > loop->now_ns || t->seq >= first_new)
            break;
        if (t->repeat_ms > 0) {
            uint64_t next = add_sat(t->due_ns, ms_to_ns(t->repeat_ms));
            t->due_ns = next > loop->now_ns ? next : add_sat(loop->now_ns, ms_to_ns(t->repeat_ms));
            t->seq = loop->timer_seq++;
            sift_down(loop->heap, loop->heap_len, 0);
        } else {
            heap_remove(loop, t);
            loop->active--;
        }
        t->cb(t);
    }
}

void eddy__timer_free_heap(struct eddy_loop *loop)
{
    free(loop->heap);
    loop->heap = NULL;
    loop->heap_len = loop->heap_cap = 0;
}
