/* bench/floor.c: the cheapest epoll "Hello, world!" HTTP server there can be
 * (see floor.h), a measuring instrument for bench/. Level-triggered epoll,
 * one thread, 127.0.0.1 only.
 *
 *   build/bench/floor PORT
 *
 * Runs until killed. */
#include <sys/epoll.h>

#include "floor.h"

static void watch(int ep, int op, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};

    if (epoll_ctl(ep, op, fd, &ev) != 0 && op != EPOLL_CTL_DEL)
        floor_die("epoll_ctl");
}

int main(int argc, char **argv)
{
    static char buf[16384];
    struct epoll_event events[512];
    struct floor_conn *conns;
    size_t max_fds;
    int ep, lfd;

    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    max_fds = floor_init();
    conns = calloc(max_fds, sizeof *conns);
    if (conns == NULL)
        floor_die("calloc");
    lfd = floor_listen(argv[1]);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        floor_die("epoll_create1");
    watch(ep, EPOLL_CTL_ADD, lfd, EPOLLIN);

    for (;;) {
        int n = epoll_wait(ep, events, 512, -1);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            floor_die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            struct floor_conn *c = &conns[fd];
            enum floor_next next;

            if (fd == lfd) {
                int cfd;

                while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    if ((size_t)cfd >= max_fds) {
                        close(cfd);
                        continue;
                    }
                    conns[cfd] = (struct floor_conn){0};
                    watch(ep, EPOLL_CTL_ADD, cfd, EPOLLIN);
                }
                continue;
            }
            if (c->owed > 0) {
                next = floor_flush(fd, c);
                if (next == FLOOR_READ)
                    watch(ep, EPOLL_CTL_MOD, fd, EPOLLIN);
            } else {
                next = floor_readable(fd, c, buf, sizeof buf);
                /* Stop reading while responses are stuck: back-pressure. */
                if (next == FLOOR_WRITE)
                    watch(ep, EPOLL_CTL_MOD, fd, EPOLLOUT);
            }
            if (next == FLOOR_CLOSE)
                close(fd); /* also leaves the epoll set */
        }
    }
}
