/* bench/pollfloor.c: bench/floor.c on poll() instead of epoll, the same
 * per-connection work (floor.h). poll() hands the kernel every descriptor on
 * every call and the program scans every entry afterwards, so its cost grows
 * with all open connections, idle ones included; epoll's grows with the
 * active ones only. bench/scale.sh shows the difference.
 *
 *   build/bench/pollfloor PORT
 *
 * Runs until killed. */
#include <poll.h>

#include "floor.h"

int main(int argc, char **argv)
{
    static char buf[16384];
    struct floor_conn *conns;
    struct pollfd *pfds;
    size_t max_fds, used = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    max_fds = floor_init();
    conns = calloc(max_fds, sizeof *conns);
    pfds = calloc(max_fds, sizeof *pfds);
    if (conns == NULL || pfds == NULL)
        floor_die("calloc");
    pfds[0] = (struct pollfd){.fd = floor_listen(argv[1]), .events = POLLIN};

    for (;;) {
        int ready = poll(pfds, (nfds_t)used, -1);

        if (ready < 0) {
            if (errno == EINTR)
                continue;
            floor_die("poll");
        }
        /* Connections first, from the end, so that removing one (the last
         * entry moves into its slot) never skips an unvisited entry. */
        for (size_t i = used; i-- > 1 && ready > 0;) {
            struct pollfd *p = &pfds[i];
            struct floor_conn *c = &conns[p->fd];
            enum floor_next next;

            if (p->revents == 0)
                continue;
            ready--;
            if (c->owed > 0) {
                next = floor_flush(p->fd, c);
                if (next == FLOOR_READ)
                    p->events = POLLIN;
            } else {
                next = floor_readable(p->fd, c, buf, sizeof buf);
                if (next == FLOOR_WRITE)
                    p->events = POLLOUT;
            }
            if (next == FLOOR_CLOSE) {
                close(p->fd);
                *p = pfds[--used];
            }
        }
        if (pfds[0].revents) {
            int cfd;

            while ((cfd = accept4(pfds[0].fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                if ((size_t)cfd >= max_fds || used >= max_fds) {
                    close(cfd);
                    continue;
                }
                conns[cfd] = (struct floor_conn){0};
                pfds[used++] = (struct pollfd){.fd = cfd, .events = POLLIN};
            }
        }
    }
}
