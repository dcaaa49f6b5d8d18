/* Signals through a signalfd, and cross-thread wake-ups (eddy_loop_stop,
 * eddy_async_send) through one eventfd per loop. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* ---- wake-ups ---------------------------------------------------------------- */

static void run_asyncs(struct eddy_loop *loop)
{
    /* A callback may stop handles, including the next one in the list; when
     * the list changed, start again from its head. Handles already run have
     * pending == 0 by then, so none runs twice. */
restart:
    loop->asyncs_changed = false;
    struct eddy_list *pos;
    eddy_list_for_each(pos, &loop->asyncs) {
        struct eddy_async *a = eddy_list_entry(pos, struct eddy_async, link);
        if (!__atomic_exchange_n(&a->pending, 0, __ATOMIC_ACQ_REL))
            continue;
        a->cb(a);
        if (loop->asyncs_changed)
            goto restart;
    }
}

static void on_wake(struct eddy_io *io, unsigned events)
{
    (void)events;
    struct eddy_loop *loop = io->data;
    uint64_t count;
    /* Clear the flag before draining: a send racing with us then writes the
     * eventfd again, and we see it in the next iteration. */
    atomic_store(&loop->woken, 0);
    while (read(loop->wakefd, &count, sizeof count) < 0 && errno == EINTR) {
    }
    run_asyncs(loop);
}

int eddy__wake_init(struct eddy_loop *loop)
{
    loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wakefd < 0)
        return -errno;
    eddy_io_init(loop, &loop->wake_io, loop->wakefd, on_wake);
    loop->wake_io.data = loop;
    int err = eddy_io_start(&loop->wake_io, EDDY_READ);
    if (err) {
        close(loop->wakefd);
        return err;
    }
    loop->internal++;
    return 0;
}

void eddy__wake(struct eddy_loop *loop)
{
    if (atomic_exchange(&loop->woken, 1))
        return;
    uint64_t one = 1;
    /* write() is async-signal-safe; EAGAIN only means the counter is
     * already non-zero, which wakes the loop just as well. */
    ssize_t n;
    do
        n = write(loop->wakefd, &one, sizeof one);
    while (n < 0 && errno == EINTR);
}

EDDY_API void eddy_async_start(struct eddy_loop *loop, struct eddy_async *a, eddy_async_cb cb)
{
    a->loop = loop;
    a->cb = cb;
    a->pending = 0;
    eddy_list_push(&loop->asyncs, &a->link);
    loop->active++;
    loop->asyncs_changed = true;
}

EDDY_API void eddy_async_stop(struct eddy_async *a)
{
    if (!a->link.next || eddy_list_empty(&a->link))
        return; /* never started, or stopped */
    eddy_list_remove(&a->link);
    a->loop->active--;
    a->loop->asyncs_changed = true;
}

EDDY_API void eddy_async_send(struct eddy_async *a)
{
    if (__atomic_exchange_n(&a->pending, 1, __ATOMIC_ACQ_REL))
        return;
    eddy__wake(a->loop);
}

/* ---- signals -------------------------------------------------------------------- */

static void on_signal(struct eddy_io *io, unsigned events)
{
    (void)events;
    struct eddy_loop *loop = io->data;
    struct signalfd_siginfo info[16];
    ssize_t n;
    while ((n = read(loop->sigfd, info, sizeof info)) > 0) {
        for (size_t i = 0; i < (size_t)n / sizeof info[0]; i++) {
            int signum = (int)info[i].ssi_signo;
            /* Each watcher of the signal runs once per delivery, even if
             * callbacks stop and start watchers (which may re-order the
             * list): walk from the head again after every call. */
            uint64_t round = ++loop->sig_round;
            struct eddy_signal *s = loop->signals;
            while (s) {
                if (s->signum == signum && s->delivered != round) {
                    s->delivered = round;
                    s->cb(s, signum);
                    s = loop->signals;
                } else {
                    s = s->next;
                }
            }
        }
    }
}

static bool watched(const struct eddy_loop *loop, int signum)
{
    for (const struct eddy_signal *s = loop->signals; s; s = s->next)
        if (s->signum == signum)
            return true;
    return false;
}

EDDY_API void eddy_signal_init(struct eddy_loop *loop, struct eddy_signal *sig)
{
    sig->loop = loop;
    sig->cb = NULL;
    sig->signum = 0;
    sig->next = NULL;
    sig->delivered = 0;
}

static int update_sigfd(struct eddy_loop *loop)
{
    int fd = signalfd(loop->sigfd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (loop->sigfd < 0) {
        loop->sigfd = fd;
        eddy_io_init(loop, &loop->sig_io, fd, on_signal);
        loop->sig_io.data = loop;
        int err = eddy_io_start(&loop->sig_io, EDDY_READ);
        if (err) {
            close(fd);
            loop->sigfd = -1;
            return err;
        }
        loop->internal++;
    }
    return 0;
}

EDDY_API int eddy_signal_start(struct eddy_signal *sig, eddy_signal_cb cb, int signum)
{
    struct eddy_loop *loop = sig->loop;
    if (signum <= 0 || signum >= NSIG || signum == SIGKILL || signum == SIGSTOP)
        return -EINVAL;
    if (sig->signum)
        return -EBUSY;
    if (!watched(loop, signum)) {
        /* Block first: a signal arriving between the two steps then waits
         * for the signalfd instead of meeting its default disposition. */
        sigset_t one, old;
        sigemptyset(&one);
        sigaddset(&one, signum);
        pthread_sigmask(SIG_BLOCK, &one, &old);
        sigaddset(&loop->sigmask, signum);
        int err = update_sigfd(loop);
        if (err) {
            sigdelset(&loop->sigmask, signum);
            if (!sigismember(&old, signum))
                pthread_sigmask(SIG_UNBLOCK, &one, NULL);
            return err;
        }
        if (!sigismember(&old, signum))
            sigaddset(&loop->blocked_by_us, signum);
    }
    sig->cb = cb;
    sig->signum = signum;
    sig->delivered = loop->sig_round;
    sig->next = loop->signals;
    loop->signals = sig;
    loop->active++;
    return 0;
}

EDDY_API void eddy_signal_stop(struct eddy_signal *sig)
{
    struct eddy_loop *loop = sig->loop;
    if (!sig->signum)
        return;
    for (struct eddy_signal **pp = &loop->signals; *pp; pp = &(*pp)->next) {
        if (*pp == sig) {
            *pp = sig->next;
            break;
        }
    }
    int signum = sig->signum;
    sig->signum = 0;
    sig->next = NULL;
    loop->active--;
    if (watched(loop, signum))
        return;
    sigdelset(&loop->sigmask, signum);
    /* Shrinking the mask of an existing signalfd cannot fail. */
    (void)signalfd(loop->sigfd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sigismember(&loop->blocked_by_us, signum)) {
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, signum);
        sigdelset(&loop->blocked_by_us, signum);
        /* An instance still pending would meet its default action (for
         * most signals: death) the moment it is unblocked. Nobody watches
         * it any more, so take it off the queue first. */
        const struct timespec now = {0, 0};
        while (sigtimedwait(&one, NULL, &now) == signum) {
        }
        pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    }
}

void eddy__signal_cleanup(struct eddy_loop *loop)
{
    while (loop->signals)
        eddy_signal_stop(loop->signals);
    if (loop->sigfd >= 0) {
        eddy_io_stop(&loop->sig_io);
        loop->internal--;
        close(loop->sigfd);
        loop->sigfd = -1;
    }
}
