#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "handover.h"
#include "log.h"
#include "service.h"

extern char **environ;

/* ---- taking sockets over ------------------------------------------------------ */

static int parse_uint(const char *text, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end || errno || v > max)
        return -1;
    *out = v;
    return 0;
}

static void unset_all(void)
{
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    unsetenv(READY_FD_ENV);
}

/* A listening stream socket, made ready for an event loop: non-blocking,
 * close-on-exec (only a restart hands it on, deliberately), and for TCP
 * with TCP_NODELAY, which accepted sockets inherit (as eddy's own
 * listeners do). */
static bool adopt_fd(struct inherited_fd *f)
{
    int type = 0, listening = 0;
    socklen_t len = sizeof type;
    if (getsockopt(f->fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
        log_msg(LOG_WARNING, "inherited fd %d is not a socket (%s): closing it", f->fd,
                strerror(errno));
        return false;
    }
    len = sizeof listening;
    if (type != SOCK_STREAM || getsockopt(f->fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 ||
        !listening) {
        log_msg(LOG_WARNING, "inherited fd %d is not a listening stream socket: closing it", f->fd);
        return false;
    }
    f->addr.len = sizeof f->addr.ss;
    if (getsockname(f->fd, (struct sockaddr *)&f->addr.ss, &f->addr.len) < 0) {
        log_msg(LOG_WARNING, "inherited fd %d: getsockname: %s: closing it", f->fd,
                strerror(errno));
        return false;
    }
    int flags = fcntl(f->fd, F_GETFL);
    if (flags < 0 || fcntl(f->fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
        fcntl(f->fd, F_SETFD, FD_CLOEXEC) < 0) {
        log_msg(LOG_WARNING, "inherited fd %d: fcntl: %s: closing it", f->fd, strerror(errno));
        return false;
    }
    if (f->addr.ss.ss_family != AF_UNIX) {
        int one = 1;
        (void)setsockopt(f->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return true;
}

int inherit_take(struct inherited *in, char *err, size_t size)
{
    in->n = 0;
    in->ready_fd = -1;
    const char *pid_text = getenv("LISTEN_PID");
    const char *fds_text = getenv("LISTEN_FDS");
    const char *names = getenv("LISTEN_FDNAMES");
    const char *ready_text = getenv(READY_FD_ENV);
    unsigned long pid, n = 0, ready;
    if (!pid_text || parse_uint(pid_text, (unsigned long)INT32_MAX, &pid) < 0 ||
        (pid_t)pid != getpid()) {
        /* Not ours: meant for a process that exec'd us, or stale. */
        unset_all();
        return 0;
    }
    if (!fds_text || parse_uint(fds_text, INHERIT_MAX, &n) < 0) {
        snprintf(err, size, "LISTEN_FDS='%s' is not a number from 0 to %d",
                 fds_text ? fds_text : "", INHERIT_MAX);
        unset_all();
        return -1;
    }
    if (ready_text) {
        if (parse_uint(ready_text, 65535, &ready) < 0 || ready < LISTEN_FDS_START + n) {
            snprintf(err, size, "%s='%s' is not an fd after the inherited ones", READY_FD_ENV,
                     ready_text);
            unset_all();
            return -1;
        }
        in->ready_fd = (int)ready;
        (void)fcntl(in->ready_fd, F_SETFD, FD_CLOEXEC);
    }
    /* LISTEN_FDNAMES: colon-separated, one per fd; fewer names than fds
     * leave the rest unnamed. */
    const char *p = names;
    for (unsigned long i = 0; i < n; i++) {
        struct inherited_fd *f = &in->fds[in->n];
        f->fd = LISTEN_FDS_START + (int)i;
        f->name[0] = '\0';
        if (p && *p) {
            size_t len = strcspn(p, ":");
            snprintf(f->name, sizeof f->name, "%.*s", (int)len, p);
            p += len + (p[len] == ':');
        }
        if (adopt_fd(f))
            in->n++;
        else
            close(f->fd);
    }
    unset_all();
    return 0;
}

static bool same_address(const struct eddy_addr *want, const struct eddy_addr *have)
{
    if (want->ss.ss_family != have->ss.ss_family)
        return false;
    switch (want->ss.ss_family) {
    case AF_INET: {
        const struct sockaddr_in *w = (const void *)&want->ss, *h = (const void *)&have->ss;
        return w->sin_addr.s_addr == h->sin_addr.s_addr &&
               (w->sin_port == 0 || w->sin_port == h->sin_port);
    }
    case AF_INET6: {
        const struct sockaddr_in6 *w = (const void *)&want->ss, *h = (const void *)&have->ss;
        return memcmp(&w->sin6_addr, &h->sin6_addr, sizeof w->sin6_addr) == 0 &&
               (w->sin6_port == 0 || w->sin6_port == h->sin6_port);
    }
    case AF_UNIX: {
        const struct sockaddr_un *w = (const void *)&want->ss, *h = (const void *)&have->ss;
        return strncmp(w->sun_path, h->sun_path, sizeof w->sun_path) == 0;
    }
    default:
        return false;
    }
}

int inherit_claim(struct inherited *in, const char *name, const struct eddy_addr *want,
                  struct eddy_addr *bound)
{
    for (size_t i = 0; i < in->n; i++) {
        struct inherited_fd *f = &in->fds[i];
        /* systemd names sockets after their unit unless told otherwise,
         * so only a name that is a service's restricts the match. */
        if (f->fd < 0 || (svc_find(f->name) && strcmp(f->name, name) != 0) ||
            !same_address(want, &f->addr))
            continue;
        int fd = f->fd;
        *bound = f->addr;
        f->fd = -1;
        return fd;
    }
    return -1;
}

void inherit_close_unclaimed(struct inherited *in)
{
    char addr[EDDY_ADDR_STRLEN];
    for (size_t i = 0; i < in->n; i++) {
        struct inherited_fd *f = &in->fds[i];
        if (f->fd < 0)
            continue;
        log_msg(LOG_WARNING, "inherited socket %s%s%s (fd %d) matches no service: closing it",
                eddy_addr_format(&f->addr, addr, sizeof addr), f->name[0] ? " named " : "", f->name,
                f->fd);
        close(f->fd);
        f->fd = -1;
    }
}

void inherit_notify_ready(struct inherited *in)
{
    if (in->ready_fd < 0)
        return;
    ssize_t n;
    do
        n = write(in->ready_fd, "R", 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        log_msg(LOG_WARNING, "cannot tell the old process we are ready: %s", strerror(errno));
    close(in->ready_fd);
    in->ready_fd = -1;
}

/* ---- handing them on ---------------------------------------------------------- */

static bool is_ours(const char *entry)
{
    static const char *const vars[] = {
        "LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES=", READY_FD_ENV "="};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (strncmp(entry, vars[i], strlen(vars[i])) == 0)
            return true;
    return false;
}

/* Writes v in decimal at p; async-signal-safe, for the child after fork. */
static void put_decimal(char *p, long v)
{
    char digits[24];
    size_t n = 0;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    while (n)
        *p++ = digits[--n];
    *p = '\0';
}

int handover_spawn(const char *exe, char *const *argv, const int *fds, const char *const *names,
                   size_t n, pid_t *pid, int *ready_fd)
{
    /* Everything the child needs is prepared here: after fork, a
     * multi-threaded process may only make async-signal-safe calls, so no
     * malloc or setenv there. */
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = calloc(nenv + 5, sizeof *envp);
    size_t names_len = 0;
    for (size_t i = 0; i < n; i++)
        names_len += strlen(names[i]) + 1;
    char *fdnames = malloc(sizeof "LISTEN_FDNAMES=" + names_len);
    if (!envp || !fdnames) {
        free(envp);
        free(fdnames);
        return -ENOMEM;
    }
    size_t e = 0;
    for (size_t i = 0; i < nenv; i++)
        if (!is_ours(environ[i]))
            envp[e++] = environ[i];
    char listen_fds[32], listen_pid[32], ready_env[48];
    snprintf(listen_fds, sizeof listen_fds, "LISTEN_FDS=%zu", n);
    snprintf(ready_env, sizeof ready_env, "%s=%zu", READY_FD_ENV, LISTEN_FDS_START + n);
    strcpy(fdnames, "LISTEN_FDNAMES=");
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(fdnames, ":");
        strcat(fdnames, names[i]);
    }
    strcpy(listen_pid, "LISTEN_PID=");
    envp[e++] = listen_fds;
    envp[e++] = fdnames;
    envp[e++] = ready_env;
    envp[e++] = listen_pid; /* the number is the child's, written after fork */
    envp[e] = NULL;

    /* pipefd: readiness, inherited by the new process. execfd: closed by
     * a successful exec (close-on-exec), or carries exec's errno. */
    int pipefd[2], execfd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        int err = -errno;
        free(envp);
        free(fdnames);
        return err;
    }
    if (pipe2(execfd, O_CLOEXEC) < 0) {
        int err = -errno;
        close(pipefd[0]);
        close(pipefd[1]);
        free(envp);
        free(fdnames);
        return err;
    }
    pid_t child = fork();
    if (child == 0) {
        /* Moved above the range first: the dup2s below may land on the
         * number execfd[1] had. Without it, a failure shows as an exit. */
        int above = LISTEN_FDS_START + (int)n + 1;
        int report = fcntl(execfd[1], F_DUPFD_CLOEXEC, above);
        int code;
        if (report < 0)
            _exit(127);
        /* Move every fd above the target range first, so that placing
         * one at 3+i cannot overwrite another still to be placed. The
         * copies are close-on-exec; the dup2 targets are not. */
        int tmp[INHERIT_MAX + 1];
        for (size_t i = 0; i < n; i++)
            if ((tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, above)) < 0)
                goto fail;
        if ((tmp[n] = fcntl(pipefd[1], F_DUPFD_CLOEXEC, above)) < 0)
            goto fail;
        for (size_t i = 0; i <= n; i++)
            if (dup2(tmp[i], LISTEN_FDS_START + (int)i) < 0)
                goto fail;
        put_decimal(listen_pid + strlen("LISTEN_PID="), (long)getpid());
        /* The parent's signal mask (blocked for its signalfd) would
         * otherwise survive exec. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(exe, argv, envp);
    fail:
        code = errno;
        (void)!write(report, &code, sizeof code);
        _exit(127);
    }
    int err = child < 0 ? -errno : 0;
    close(pipefd[1]);
    close(execfd[1]);
    free(envp);
    free(fdnames);
    if (!err) {
        /* Wait until the child has exec'd (EOF) or failed to (its errno):
         * the caller holds its threads still meanwhile. */
        int code;
        ssize_t got;
        while ((got = read(execfd[0], &code, sizeof code)) < 0 && errno == EINTR) {
        }
        if (got == sizeof code) {
            err = -code;
            waitpid(child, NULL, 0);
        }
    }
    close(execfd[0]);
    if (err) {
        close(pipefd[0]);
        return err;
    }
    (void)fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    *pid = child;
    *ready_fd = pipefd[0];
    return 0;
}

/* ---- systemd's notification socket ------------------------------------------------ */

void notify_systemd(const char *state)
{
    /* Left in the environment on purpose: a restarted eddy tells systemd
     * its new pid the same way. */
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = path ? strlen(path) : 0;
    if (len < 2 || len >= sizeof sa.sun_path || (path[0] != '/' && path[0] != '@'))
        return;
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* an abstract socket */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
        log_msg(LOG_WARNING, "cannot notify systemd at %s: %s", path, strerror(errno));
    close(fd);
}

/* ---- the pid file ----------------------------------------------------------------- */

int pidfile_write(const char *path)
{
    char tmp[4200], text[24];
    if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int len = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    int err = write(fd, text, (size_t)len) == len ? 0 : -EIO;
    if (close(fd) < 0 && !err)
        err = -errno;
    if (!err && rename(tmp, path) < 0)
        err = -errno;
    if (err)
        unlink(tmp);
    return err;
}

pid_t pidfile_read(const char *path)
{
    char text[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, text, sizeof text - 1);
    int err = n < 0 ? -errno : 0;
    close(fd);
    if (err)
        return err;
    text[n] = '\0';
    text[strcspn(text, "\n")] = '\0';
    unsigned long pid;
    if (parse_uint(text, (unsigned long)INT32_MAX, &pid) < 0 || pid < 2)
        return -EINVAL;
    return (pid_t)pid;
}

void pidfile_remove(const char *path)
{
    if (pidfile_read(path) == getpid())
        unlink(path);
}
