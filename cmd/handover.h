/* Listening sockets that outlive a process: taking them over (systemd's
 * socket activation protocol, LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES, which
 * eddy's own restart speaks too), handing them to a new eddy with a
 * readiness pipe, and the pid file that tells operators which eddy is the
 * current one. */
#ifndef EDDY_CMD_HANDOVER_H
#define EDDY_CMD_HANDOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "eddy/tcp.h"

/* The first inherited fd, per the protocol. */
#define LISTEN_FDS_START 3
#define INHERIT_MAX      256
#define INHERIT_NAME_LEN 64
#define READY_FD_ENV     "EDDY_READY_FD"

struct inherited_fd {
    int fd;                      /* -1 once claimed or closed */
    char name[INHERIT_NAME_LEN]; /* from LISTEN_FDNAMES; "" if none */
    struct eddy_addr addr;       /* what getsockname says */
};

struct inherited {
    size_t n;
    struct inherited_fd fds[INHERIT_MAX];
    int ready_fd; /* EDDY_READY_FD, or -1 */
};

/* Takes over the fds the environment says are ours (when LISTEN_PID is
 * our pid), and unsets the variables either way so children do not take
 * them for their own. Every inherited fd is checked to be a listening
 * stream socket and made non-blocking and close-on-exec; one that is not
 * is closed with a warning. Returns 0, or -1 with a message in err when
 * the variables are malformed. */
int inherit_take(struct inherited *in, char *err, size_t size);

/* Claims an inherited socket for the service `name` listening on `want`:
 * same family and address, and the same port unless want's is 0. A socket
 * named after a service only goes to that service. Returns the fd (the
 * caller owns it) and its address in *bound, or -1 if none matches. */
int inherit_claim(struct inherited *in, const char *name, const struct eddy_addr *want,
                  struct eddy_addr *bound);

/* Closes, with a warning each, the inherited sockets no service claimed. */
void inherit_close_unclaimed(struct inherited *in);

/* Tells the process that started us that we serve (no-op without
 * EDDY_READY_FD). */
void inherit_notify_ready(struct inherited *in);

/* Starts exe with argv as a new eddy that inherits fds[0..n) (named
 * names[i]) as LISTEN_FDS, and a pipe as EDDY_READY_FD. The pipe's read
 * end is returned in *ready_fd (close-on-exec, non-blocking): one byte
 * arrives when the new process is ready. Returns once the child has
 * exec'd: 0, or -errno (of fork, or of exec: the child is then reaped).
 * Until then the child holds a copy of every fd of this process; see
 * hold_workers() in eddy.c for why that matters. */
int handover_spawn(const char *exe, char *const *argv, const int *fds, const char *const *names,
                   size_t n, pid_t *pid, int *ready_fd);

/* Sends state ("READY=1", ...) to systemd when it asked for it with
 * NOTIFY_SOCKET (sd_notify's protocol: one datagram). No-op otherwise. */
void notify_systemd(const char *state);

/* Writes our pid to path, atomically (a reader sees the old content or
 * the new, never part of one). Returns 0 or -errno. */
int pidfile_write(const char *path);

/* Reads the pid in path. Returns it, or -errno (-EINVAL if malformed). */
pid_t pidfile_read(const char *path);

/* Removes path if it still holds our pid (after a restart it holds the
 * new process's, which must keep it). */
void pidfile_remove(const char *path);

#endif
