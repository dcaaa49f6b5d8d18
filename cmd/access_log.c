#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "access_log.h"
#include "log.h"

#define FLUSH_EVERY_MS 1000

static void flush(struct access_log *al)
{
    size_t off = 0;
    while (off < al->len) {
        ssize_t n = write(al->fd, al->buf + off, al->len - off);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else
            break; /* EAGAIN: keep the rest for the next flush */
    }
    memmove(al->buf, al->buf + off, al->len - off);
    al->len -= off;
    if (al->dropped) {
        log_msg(LOG_WARNING, "access log: %llu line(s) dropped: the log could not keep up",
                (unsigned long long)al->dropped);
        al->dropped = 0;
    }
}

static void on_flush(struct eddy_timer *t)
{
    struct access_log *al = t->data;
    pthread_mutex_lock(&al->lock);
    flush(al);
    pthread_mutex_unlock(&al->lock);
}

int access_log_open(struct access_log *al, struct eddy_loop *loop, const char *path)
{
    /* For standard output, open a new file description of the same file or
     * pipe, so making it non-blocking does not affect the shell's. */
    const char *target = strcmp(path, "-") == 0 ? "/proc/self/fd/1" : path;
    al->fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0644);
    if (al->fd < 0)
        return -errno;
    al->len = 0;
    al->dropped = 0;
    pthread_mutex_init(&al->lock, NULL);
    eddy_timer_init(loop, &al->flush);
    al->flush.data = al;
    int err = eddy_timer_start(&al->flush, on_flush, FLUSH_EVERY_MS, FLUSH_EVERY_MS);
    if (err) {
        pthread_mutex_destroy(&al->lock);
        close(al->fd);
        return err;
    }
    return 0;
}

void access_log_write(void *arg, const char *line, size_t len)
{
    struct access_log *al = arg;
    pthread_mutex_lock(&al->lock);
    if (al->len + len + 1 > sizeof al->buf)
        flush(al);
    if (al->len + len + 1 > sizeof al->buf) {
        al->dropped++;
    } else {
        memcpy(al->buf + al->len, line, len);
        al->len += len;
        al->buf[al->len++] = '\n';
    }
    pthread_mutex_unlock(&al->lock);
}

void access_log_close(struct access_log *al)
{
    eddy_timer_stop(&al->flush);
    flush(al);
    close(al->fd);
    pthread_mutex_destroy(&al->lock);
}
