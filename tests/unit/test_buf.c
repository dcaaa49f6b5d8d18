/* Unit tests for the net layer's private byte buffer (src/buf.h): reserve,
 * append, consume, compaction, growth and release. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../src/buf.h"

/* Fills n bytes with a pattern that depends on the position, so that a copy
 * from the wrong offset is noticed. */
static void pattern(char *p, size_t n, size_t start)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)('a' + (start + i) % 26);
}

static void assert_pattern(const char *p, size_t n, size_t start)
{
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(p[i], (char)('a' + (start + i) % 26), "byte %zu of %zu differs", i, n);
}

Test(buf, empty_buffer_has_no_memory)
{
    struct eddy_buf b = {0};
    cr_assert_eq(eddy__buf_room(&b), 0);
    /* Asking for nothing needs no memory. */
    cr_assert_eq(eddy__buf_reserve(&b, 0, NULL), 0);
    cr_assert_null(b.data);
    eddy__buf_free(&b, NULL);
    cr_assert_null(b.data);
}

Test(buf, reserve_gives_at_least_the_room_asked_for)
{
    struct eddy_buf b = {0};
    cr_assert_eq(eddy__buf_reserve(&b, 10, NULL), 0);
    cr_assert_not_null(b.data);
    cr_assert_geq(eddy__buf_room(&b), 10);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.off, 0);

    /* A request larger than the first allocation grows it. */
    cr_assert_eq(eddy__buf_reserve(&b, 100000, NULL), 0);
    cr_assert_geq(eddy__buf_room(&b), 100000);
    cr_assert_geq(b.cap, 100000);
    eddy__buf_free(&b, NULL);
}

Test(buf, reserve_with_enough_room_changes_nothing)
{
    struct eddy_buf b = {0};
    cr_assert_eq(eddy__buf_append(&b, "hello", 5, NULL), 0);
    char *data = b.data;
    size_t cap = b.cap;
    cr_assert_eq(eddy__buf_reserve(&b, eddy__buf_room(&b), NULL), 0);
    cr_assert_eq(b.data, data);
    cr_assert_eq(b.cap, cap);
    cr_assert_eq(b.len, 5);
    cr_assert_eq(memcmp(eddy__buf_head(&b), "hello", 5), 0);
    eddy__buf_free(&b, NULL);
}

Test(buf, append_and_consume)
{
    struct eddy_buf b = {0};
    cr_assert_eq(eddy__buf_append(&b, "hello ", 6, NULL), 0);
    cr_assert_eq(eddy__buf_append(&b, "world", 5, NULL), 0);
    cr_assert_eq(b.len, 11);
    cr_assert_eq(memcmp(eddy__buf_head(&b), "hello world", 11), 0);
    cr_assert_eq(eddy__buf_tail(&b), eddy__buf_head(&b) + 11);

    eddy__buf_consume(&b, 6);
    cr_assert_eq(b.len, 5);
    cr_assert_eq(b.off, 6);
    cr_assert_eq(memcmp(eddy__buf_head(&b), "world", 5), 0);
    cr_assert_eq(eddy__buf_room(&b), b.cap - 11);

    /* Consuming everything rewinds to the start of the memory. */
    eddy__buf_consume(&b, 5);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.off, 0);
    cr_assert_eq(eddy__buf_room(&b), b.cap);
    eddy__buf_free(&b, NULL);
}

Test(buf, append_nothing_to_an_empty_buffer)
{
    struct eddy_buf b = {0};
    cr_assert_eq(eddy__buf_append(&b, "x", 0, NULL), 0);
    cr_assert_eq(b.len, 0);
    eddy__buf_free(&b, NULL);
}

Test(buf, writing_at_the_tail_then_committing)
{
    /* The way the connection code reads: reserve, read() into the tail,
     * then add to len. */
    struct eddy_buf b = {0};
    cr_assert_eq(eddy__buf_reserve(&b, 300, NULL), 0);
    pattern(eddy__buf_tail(&b), 300, 0);
    b.len += 300;
    cr_assert_eq(eddy__buf_reserve(&b, 300, NULL), 0);
    pattern(eddy__buf_tail(&b), 300, 300);
    b.len += 300;
    assert_pattern(eddy__buf_head(&b), 600, 0);
    eddy__buf_free(&b, NULL);
}

Test(buf, compaction_moves_a_small_remainder_to_the_front)
{
    struct eddy_buf b = {0};
    cr_assert_eq(eddy__buf_reserve(&b, 1, NULL), 0);
    size_t cap = b.cap;
    char *data = b.data;
    char *tmp = malloc(cap);
    cr_assert_not_null(tmp);
    pattern(tmp, cap, 0);
    cr_assert_eq(eddy__buf_append(&b, tmp, cap, NULL), 0);
    cr_assert_eq(eddy__buf_room(&b), 0);

    /* Keep the last 10 bytes: little data, lots of dead space in front. */
    eddy__buf_consume(&b, cap - 10);
    cr_assert_eq(b.off, cap - 10);
    cr_assert_eq(eddy__buf_reserve(&b, 100, NULL), 0);
    cr_assert_eq(b.data, data, "compaction must re-use the memory");
    cr_assert_eq(b.cap, cap);
    cr_assert_eq(b.off, 0);
    cr_assert_eq(b.len, 10);
    cr_assert_geq(eddy__buf_room(&b), 100);
    assert_pattern(eddy__buf_head(&b), 10, cap - 10);
    free(tmp);
    eddy__buf_free(&b, NULL);
}

Test(buf, growth_keeps_the_data)
{
    struct eddy_buf b = {0};
    size_t total = 0;
    char chunk[1000];
    /* Many appends, interleaved with partial consumption, across several
     * growths and compactions; the content must stay the pattern. */
    size_t consumed = 0;
    for (int i = 0; i < 300; i++) {
        pattern(chunk, sizeof chunk, total);
        cr_assert_eq(eddy__buf_append(&b, chunk, sizeof chunk, NULL), 0);
        total += sizeof chunk;
        if (i % 3 == 0) {
            eddy__buf_consume(&b, 700);
            consumed += 700;
        }
        cr_assert_eq(b.len, total - consumed);
        cr_assert_leq(b.off + b.len, b.cap);
    }
    assert_pattern(eddy__buf_head(&b), b.len, consumed);
    cr_assert_geq(b.cap, b.len);
    eddy__buf_free(&b, NULL);
}

Test(buf, growth_from_an_offset_keeps_the_data)
{
    /* More than half full and not at the front: growing must copy from the
     * head, not from the start of the memory. */
    struct eddy_buf b = {0};
    cr_assert_eq(eddy__buf_reserve(&b, 1, NULL), 0);
    size_t cap = b.cap;
    char *tmp = malloc(4 * cap);
    cr_assert_not_null(tmp);
    pattern(tmp, cap, 0);
    cr_assert_eq(eddy__buf_append(&b, tmp, cap, NULL), 0);
    eddy__buf_consume(&b, 100);
    pattern(tmp, 2 * cap, cap);
    cr_assert_eq(eddy__buf_append(&b, tmp, 2 * cap, NULL), 0);
    cr_assert_eq(b.len, 3 * cap - 100);
    cr_assert_geq(b.cap, b.len);
    assert_pattern(eddy__buf_head(&b), b.len, 100);
    free(tmp);
    eddy__buf_free(&b, NULL);
}

Test(buf, free_then_reuse)
{
    struct eddy_buf b = {0};
    cr_assert_eq(eddy__buf_append(&b, "abc", 3, NULL), 0);
    eddy__buf_consume(&b, 1);
    eddy__buf_free(&b, NULL);
    cr_assert_null(b.data);
    cr_assert_eq(b.off, 0);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, 0);
    /* Freeing twice is harmless. */
    eddy__buf_free(&b, NULL);
    cr_assert_eq(eddy__buf_append(&b, "xyz", 3, NULL), 0);
    cr_assert_eq(memcmp(eddy__buf_head(&b), "xyz", 3), 0);
    eddy__buf_free(&b, NULL);
}

/* A request that cannot be met must fail with -ENOMEM and leave the buffer
 * as it was: the size arithmetic must not wrap around. */
static void assert_reserve_refused(size_t want)
{
    struct eddy_buf b = {0};
    cr_assert_eq(eddy__buf_append(&b, "abc", 3, NULL), 0);
    char *data = b.data;
    size_t cap = b.cap;
    int err = eddy__buf_reserve(&b, want, NULL);
    cr_expect_eq(err, -ENOMEM, "reserve(%zu) returned %d with room %zu", want, err,
                 eddy__buf_room(&b));
    cr_expect_eq(b.data, data);
    cr_expect_eq(b.cap, cap);
    cr_expect_eq(b.len, 3);
    cr_expect_eq(memcmp(eddy__buf_head(&b), "abc", 3), 0);
    eddy__buf_free(&b, NULL);
}

Test(buf, reserve_of_size_max_is_refused)
{
    assert_reserve_refused(SIZE_MAX);
}

/* Just over half the address space: the capacity doubling must not
 * overflow to 0 and loop for ever. */
Test(buf, reserve_of_over_half_the_address_space_is_refused, .timeout = 1)
{
    assert_reserve_refused(SIZE_MAX / 2 + 2);
}

Test(buf, reserve_of_half_the_address_space_is_refused)
{
    assert_reserve_refused(SIZE_MAX / 2 - 1);
}

Test(buf, pool_reuses_blocks_and_keeps_at_most_max)
{
    struct eddy__pool pool = {.max = 1};
    struct eddy_buf a = {0}, b = {0};
    cr_assert_eq(eddy__buf_append(&a, "abc", 3, &pool), 0);
    cr_assert_eq(a.cap, EDDY__BLOCK);
    char *block = a.data;
    eddy__buf_free(&a, &pool);
    cr_assert_eq(pool.count, 1);
    /* The next buffer gets the same block back instead of a new one. */
    cr_assert_eq(eddy__buf_append(&b, "xyz", 3, &pool), 0);
    cr_assert_eq(b.data, block);
    cr_assert_eq(pool.count, 0);
    cr_assert_eq(memcmp(eddy__buf_head(&b), "xyz", 3), 0);
    /* Past max, freed blocks are released. */
    cr_assert_eq(eddy__buf_append(&a, "abc", 3, &pool), 0);
    eddy__buf_free(&a, &pool);
    eddy__buf_free(&b, &pool);
    cr_assert_eq(pool.count, 1);
    eddy__pool_drain(&pool);
    cr_assert_eq(pool.count, 0);
    cr_assert_null(pool.head);
}

/* How many of the block's pages are in memory. */
static int resident_pages(const char *block)
{
    long page = sysconf(_SC_PAGESIZE);
    unsigned char vec[EDDY__BLOCK / 4096];
    cr_assert_leq((size_t)(EDDY__BLOCK / page), sizeof vec);
    cr_assert_eq(mincore((void *)block, EDDY__BLOCK, vec), 0, "mincore: %s", strerror(errno));
    int n = 0;
    for (long i = 0; i < EDDY__BLOCK / page; i++)
        n += vec[i] & 1;
    return n;
}

/* A burst leaves warm blocks behind; those no buffer needed between two
 * decays are released, and with slabs their pages leave memory. Blocks
 * still lent out, or used since, stay. */
Test(buf, decay_releases_the_blocks_unused_since_the_last_one)
{
    enum { N = 8 };
    struct eddy__pool pool = {.max = N};
    struct eddy_buf b[N] = {{0}};
    for (int i = 0; i < N; i++)
        cr_assert_eq(eddy__buf_append(&b[i], "burst", 5, &pool), 0);
    char *first = b[0].data;
    for (int i = 0; i < N; i++)
        eddy__buf_free(&b[i], &pool);
    cr_assert_eq(pool.count, N);
    /* All were lent out since the pool began: none is released yet. */
    eddy__pool_decay(&pool);
    cr_assert_eq(pool.count, N);
    /* Steady use of two, then a decay: the other six go. */
    for (int round = 0; round < 3; round++) {
        cr_assert_eq(eddy__buf_append(&b[0], "a", 1, &pool), 0);
        cr_assert_eq(eddy__buf_append(&b[1], "b", 1, &pool), 0);
        eddy__buf_free(&b[0], &pool);
        eddy__buf_free(&b[1], &pool);
    }
    eddy__pool_decay(&pool);
    cr_assert_eq(pool.count, 2);
    eddy__pool_decay(&pool);
    cr_assert_eq(pool.count, 0, "two blocks unused since the last decay stayed");
    if (EDDY__SLABS) {
        cr_assert_eq(resident_pages(first), 0, "a released block kept its pages");
        /* Used again, a released block is fresh memory. */
        cr_assert_eq(eddy__buf_append(&b[0], "again", 5, &pool), 0);
        cr_assert_eq(memcmp(eddy__buf_head(&b[0]), "again", 5), 0);
        cr_assert_gt(resident_pages(b[0].data), 0);
        eddy__buf_free(&b[0], &pool);
    }
    eddy__pool_drain(&pool);
    cr_assert_eq(pool.count, 0);
}

/* More blocks than one slab: each comes from somewhere distinct, and all
 * go back (drain unmaps them; LeakSanitizer sees malloc'd ones). */
Test(buf, blocks_from_several_slabs_are_distinct)
{
    enum { N = EDDY__SLAB_BLOCKS * 2 + 3 };
    static struct eddy_buf b[N];
    struct eddy__pool pool = {.max = 4};
    for (int i = 0; i < N; i++) {
        cr_assert_eq(eddy__buf_append(&b[i], &i, sizeof i, &pool), 0);
        memset(eddy__buf_tail(&b[i]), 0x5a, eddy__buf_room(&b[i]));
    }
    for (int i = 0; i < N; i++) {
        int v;
        memcpy(&v, eddy__buf_head(&b[i]), sizeof v);
        cr_assert_eq(v, i, "block %d was overwritten", i);
    }
    for (int i = 0; i < N; i++)
        eddy__buf_free(&b[i], &pool);
    cr_assert_eq(pool.count, 4);
    eddy__pool_drain(&pool);
}

Test(buf, growing_past_a_block_returns_the_block_to_the_pool)
{
    struct eddy__pool pool = {.max = 4};
    struct eddy_buf b = {0};
    cr_assert_eq(eddy__buf_append(&b, "hello", 5, &pool), 0);
    cr_assert_eq(eddy__buf_reserve(&b, EDDY__BLOCK, &pool), 0);
    cr_assert_gt(b.cap, EDDY__BLOCK);
    cr_assert_eq(memcmp(eddy__buf_head(&b), "hello", 5), 0);
    cr_assert_eq(pool.count, 1);
    eddy__buf_free(&b, &pool);
    cr_assert_eq(pool.count, 1, "a large buffer is freed, not pooled");
    eddy__pool_drain(&pool);
}
