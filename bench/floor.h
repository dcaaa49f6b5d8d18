/* The part of bench/floor.c and bench/pollfloor.c that does not depend on the
 * readiness API: a listener, the fixed response, and what to do when a
 * connection is readable or writable.
 *
 * These two programs are measuring instruments, not product code. They do the
 * least an HTTP "Hello, world!" server can do and still keep wrk and ab happy:
 * read, count request ends ("\r\n\r\n"), write that many copies of one fixed
 * response. There is no parsing, no Date header, no limits, no timeouts, so
 * their cost per request is close to the cost of the system calls alone: the
 * floor that eddy's figures are compared with. */
#ifndef EDDY_BENCH_FLOOR_H
#define EDDY_BENCH_FLOOR_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define FLOOR_RESPONSE                                                                             \
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!"
#define FLOOR_RESPONSE_LEN (sizeof(FLOOR_RESPONSE) - 1)
/* Enough copies for one pipelined batch of 64 requests in one write. */
#define FLOOR_BLOB_COPIES 64

/* What is kept per connection, in an array indexed by fd: the bytes of
 * responses still owed (more than one write could take) and how much of a
 * "\r\n\r\n" the last read ended with, so a terminator split across two reads
 * still counts. */
struct floor_conn {
    uint32_t owed;
    uint8_t match;
};

enum floor_next { FLOOR_READ, FLOOR_WRITE, FLOOR_CLOSE };

static char floor_blob[FLOOR_RESPONSE_LEN * FLOOR_BLOB_COPIES];

static void floor_die(const char *what)
{
    fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Raises the open-file limit to the hard limit, as eddy does, and returns it:
 * the size of the per-fd arrays. */
static size_t floor_init(void)
{
    struct rlimit rl;

    for (size_t i = 0; i < FLOOR_BLOB_COPIES; i++)
        memcpy(floor_blob + i * FLOOR_RESPONSE_LEN, FLOOR_RESPONSE, FLOOR_RESPONSE_LEN);
    /* A client that closes early must not kill the instrument. */
    signal(SIGPIPE, SIG_IGN);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        floor_die("getrlimit");
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        floor_die("setrlimit");
    return (size_t)rl.rlim_cur;
}

/* A non-blocking listener on 127.0.0.1:port. TCP_NODELAY is set on the
 * listener so that accepted sockets inherit it without a system call each. */
static int floor_listen(const char *port_arg)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    char *end;
    long port = strtol(port_arg, &end, 10);
    int one = 1, fd;

    if (*port_arg == '\0' || *end != '\0' || port < 0 || port > 65535) {
        fprintf(stderr, "floor: bad port '%s'\n", port_arg);
        exit(2);
    }
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        floor_die("socket");
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        floor_die("setsockopt");
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        floor_die("bind 127.0.0.1");
    if (listen(fd, 511) != 0)
        floor_die("listen");
    return fd;
}

/* Writes what is owed until it is all gone or the socket is full. */
static enum floor_next floor_flush(int fd, struct floor_conn *c)
{
    while (c->owed > 0) {
        /* What is owed is always the tail of whole responses, so where it
         * starts in the blob follows from its length. */
        size_t off = (FLOOR_RESPONSE_LEN - c->owed % FLOOR_RESPONSE_LEN) % FLOOR_RESPONSE_LEN;
        size_t len = sizeof floor_blob - off;
        ssize_t n;

        if (len > c->owed)
            len = c->owed;
        n = write(fd, floor_blob + off, len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return FLOOR_WRITE;
            return FLOOR_CLOSE;
        }
        c->owed -= (uint32_t)n;
    }
    return FLOOR_READ;
}

/* One read, then one response per request end found in it. */
static enum floor_next floor_readable(int fd, struct floor_conn *c, char *buf, size_t cap)
{
    static const char end[4] = {'\r', '\n', '\r', '\n'};
    ssize_t n = read(fd, buf, cap);
    unsigned match = c->match, requests = 0;

    if (n == 0)
        return FLOOR_CLOSE;
    if (n < 0)
        return (errno == EAGAIN || errno == EINTR) ? FLOOR_READ : FLOOR_CLOSE;
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == end[match]) {
            if (++match == 4) {
                requests++;
                match = 0;
            }
        } else {
            /* No proper prefix of "\r\n\r\n" is also a suffix of a longer
             * one except "\r", so a mismatch restarts at 0 or 1. */
            match = buf[i] == '\r';
        }
    }
    c->match = (uint8_t)match;
    if (requests == 0)
        return FLOOR_READ;
    c->owed += requests * (uint32_t)FLOOR_RESPONSE_LEN;
    return floor_flush(fd, c);
}

#endif
