/* failmalloc: an LD_PRELOAD interposer that makes malloc, calloc and realloc
 * fail on demand, so the end-to-end tests can show what eddy does when a
 * buffer cannot be allocated while data is in flight.
 *
 *   FAILMALLOC_CTL=/path/to/ctl LD_PRELOAD=build/tests/libfailmalloc.so eddy ...
 *
 * The control file is mapped shared at start, so the test switches failures
 * on and off by rewriting it while eddy runs, with no signal and no system
 * call in the allocator's path. Its first line is read as
 *
 *   EVERY MIN_SIZE
 *
 * EVERY 0 means "never fail" (also what a missing, empty or unreadable file
 * means); EVERY N fails every Nth eligible call, so 1 fails them all. An
 * eligible call asks for at least MIN_SIZE bytes (default 0), which lets a
 * test starve the data buffers while small bookkeeping allocations go on.
 * realloc(p, 0) and free() are never failed.
 *
 * The interposer writes what it did into the same file at offset
 * FAILMALLOC_STATS_OFF as one line, "failed=F eligible=E", so a test can
 * assert that a failure was really injected. The file must be at least
 * FAILMALLOC_SIZE bytes long when eddy starts.
 *
 * The real allocator is reached through glibc's __libc_* entry points rather
 * than dlsym(RTLD_NEXT), which itself allocates and would recurse. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define FAILMALLOC_SIZE 128
#define FAILMALLOC_STATS_OFF 64

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);

static volatile char *ctl; /* the shared mapping, NULL when not configured */
static atomic_ulong eligible, failed;

__attribute__((constructor)) static void failmalloc_init(void)
{
    const char *path = getenv("FAILMALLOC_CTL");
    if (!path || !*path)
        return;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return;
    void *p = mmap(NULL, FAILMALLOC_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd); /* the mapping keeps the file; eddy must not see an extra fd */
    if (p != MAP_FAILED)
        ctl = p;
}

/* Parses one unsigned decimal number at *i, skipping leading blanks. */
static unsigned long number(volatile const char *s, size_t *i, size_t end)
{
    unsigned long v = 0;
    while (*i < end && (s[*i] == ' ' || s[*i] == '\t'))
        (*i)++;
    while (*i < end && s[*i] >= '0' && s[*i] <= '9')
        v = v * 10 + (unsigned long)(s[(*i)++] - '0');
    return v;
}

static void publish(unsigned long f, unsigned long e)
{
    char line[FAILMALLOC_SIZE - FAILMALLOC_STATS_OFF];
    int n = snprintf(line, sizeof line, "failed=%lu eligible=%lu\n", f, e);
    if (n < 0 || (size_t)n >= sizeof line)
        return;
    for (int i = 0; i < n; i++)
        ctl[FAILMALLOC_STATS_OFF + i] = line[i];
}

/* True if this allocation of `size` bytes should fail. */
static int should_fail(size_t size)
{
    if (!ctl)
        return 0;
    size_t i = 0;
    unsigned long every = number(ctl, &i, FAILMALLOC_STATS_OFF);
    unsigned long min = number(ctl, &i, FAILMALLOC_STATS_OFF);
    if (every == 0 || size < min)
        return 0;
    unsigned long e = atomic_fetch_add(&eligible, 1) + 1;
    if (e % every != 0)
        return 0;
    unsigned long f = atomic_fetch_add(&failed, 1) + 1;
    publish(f, e);
    errno = ENOMEM;
    return 1;
}

void *malloc(size_t size)
{
    return should_fail(size) ? NULL : __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total))
        total = (size_t)-1;
    return should_fail(total) ? NULL : __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    if (size != 0 && should_fail(size))
        return NULL;
    return __libc_realloc(p, size);
}
