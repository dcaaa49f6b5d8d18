/* A fake socket layer for the connection-cycle fuzzers.
 *
 * The fuzz binaries are linked with -Wl,--wrap=SYMBOL for every system call
 * the loop, net and service layers make (or may make: the whole read and
 * write families are wrapped, used or not). While a fuzz input runs, fds
 * from FS_FD_BASE up are fake: listeners, connections, the epoll instance,
 * the loop's eventfd, /dev/null and in-memory files for sendfile. Every
 * other fd, and every call made outside fs_begin()..fs_end() or from
 * another thread, goes to the real libc, so libFuzzer and the sanitizers
 * are not disturbed.
 *
 * The fake kernel is meant to be faithful where the product depends on it
 * (level and edge readiness, wake-ups of edge-triggered items, half-close,
 * RST, send-buffer room, accept queue), so that an input which only uses
 * realistic steps must never make a connection stall. Steps that no real
 * kernel takes (an EAGAIN while data is queued, a short read while more is
 * queued) are allowed too, but mark the connection `unrealistic`, which
 * excuses it from the liveness checks.
 *
 * Checks done here, each an abort(): an fd still open after teardown, an fd
 * closed twice, any call on an fd that was closed (fd numbers are not
 * reused unless asked, so a stale fd is always caught), I/O that would
 * block on a blocking socket, a write that would raise SIGPIPE (no
 * MSG_NOSIGNAL on a reset or shut-down socket), epoll_ctl on a closed fd. */
#ifndef EDDY_FAKESOCK_H
#define EDDY_FAKESOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* For code that only checks or keeps the fake kernel's books: no coverage
 * instrumentation (ASan and UBSan stay). Its branches tell the fuzzer
 * nothing that eddy's own coverage does not, and its loops over every
 * byte sent or every fd, run after every loop iteration, cost more than
 * the code under test. noinline: inlined into an instrumented caller, the
 * body would be instrumented after all. */
#define FS_NOCOV __attribute__((no_sanitize("coverage"), noinline))

/* Fake fds start here: the kernel's default nr_open is 1 << 20, so no real
 * fd ever has such a number. */
#define FS_FD_BASE (1 << 20)

/* Connections per input; fd objects per input (slots are not re-used, so
 * this bounds every fd ever opened); fds open at once (beyond it: EMFILE,
 * as with a low RLIMIT_NOFILE). */
#define FS_MAX_PEERS 16
#define FS_MAX_FDS   256
#define FS_MAX_OPEN  32

/* Unlimited send-buffer room. */
#define FS_ROOM_ALL ((size_t)1 << 40)

/* What the next read- or write-family call on a connection does instead of
 * the normal thing. */
enum fs_fault {
    FS_FAULT_NONE = 0,
    FS_FAULT_EINTR,  /* realistic enough: retried by every sane caller */
    FS_FAULT_EAGAIN, /* unrealistic when data (read) or room (write) is there */
    FS_FAULT_SHORT,  /* at most n bytes; unrealistic when more were there */
    FS_FAULT_RESET,  /* the peer resets now: realistic */
    FS_FAULT_EOF,    /* the peer half-closes now: realistic */
    FS_FAULT_COUNT
};

/* The client side of one connection, and what the server did with it. */
struct fs_peer {
    int obj;   /* index of the server's fd object; -1 while in the accept queue */
    bool used; /* the slot is taken */
    bool accepted;
    bool srv_closed;  /* the server closed its fd */
    bool srv_shut_wr; /* the server called shutdown(SHUT_WR) */
    bool srv_shut_rd;
    bool peer_shut;     /* the client sent FIN */
    bool peer_gone;     /* the client closed: the next bytes sent cause an RST */
    bool reset;         /* an RST was exchanged */
    int err;            /* pending socket error (SO_ERROR), 0 if none */
    bool unrealistic;   /* a step no real kernel would take happened */
    bool closed_unread; /* the server closed with input unread (an RST in reality) */
    size_t room;        /* bytes the send buffer takes now */
    bool nospace;       /* a send found no room: the next ACK wakes EPOLLOUT */

    /* Bytes the client sent, all of them; the server has read `consumed`. */
    unsigned char *in;
    size_t in_len, in_cap, consumed;
    /* Bytes the server sent that the kernel took, all of them. */
    unsigned char *out;
    size_t out_len, out_cap;
    size_t out_after_shut; /* sends attempted after SHUT_WR (always refused) */

    enum fs_fault read_fault, write_fault;
    size_t read_fault_n, write_fault_n;
    uint32_t inject_events; /* reported once by the next epoll_wait */
};

/* Enters fake mode for one input. reuse_fds: hand out the lowest free fd
 * number, like the kernel (stale-fd use is then not caught directly, but
 * shows as cross-talk between connections). */
void fs_begin(bool reuse_fds);

/* Leaves fake mode: aborts if a fake fd is still open, and frees the
 * fake kernel's memory. */
void fs_end(void);

/* A new client connection arrives in the listener's queue. Returns its
 * index, or -1 when FS_MAX_PEERS were made. room: its send-buffer room. */
int fs_connect(size_t room);
int fs_npeers(void);
struct fs_peer *fs_peer(int k);

/* Client actions. Each wakes epoll as the kernel would. */
void fs_peer_send(int k, const void *data, size_t len);
void fs_peer_shutdown(int k);
void fs_peer_close(int k); /* FIN now; an RST if the server sends more */
void fs_peer_reset(int k);
/* Sets the send buffer's room: more is an ACK (fs_peer_ack); less makes
 * the connection unrealistic. */
void fs_peer_set_room(int k, size_t room);
void fs_peer_ack(int k, size_t n); /* the client read n bytes: room grows */

void fs_inject_read(int k, enum fs_fault f, size_t n);
void fs_inject_write(int k, enum fs_fault f, size_t n);
/* The next accept4 fails with err (EAGAIN, EINTR, ECONNABORTED, EMFILE...). */
void fs_inject_accept(int err);
/* The next epoll_wait also reports these EPOLL* bits for connection k.
 * EPOLLERR and EPOLLHUP are turned into the state that causes them (an
 * RST); EPOLLIN, EPOLLOUT and EPOLLRDHUP alone are spurious wake-ups. */
void fs_inject_epoll(int k, uint32_t events);
/* The next epoll_wait fails with EINTR. */
void fs_inject_wait_eintr(void);
/* epoll_wait starts its scan of the interest list at this position, so
 * the order of events in a batch varies. */
void fs_set_rotation(unsigned r);

/* The monotonic clock, in nanoseconds, starts at a fixed value. */
void fs_clock_advance_ms(uint64_t ms);
uint64_t fs_clock_advanced_ms(void); /* total advance since fs_begin */
/* When true, an epoll_wait that finds nothing ready sleeps for its timeout
 * (the clock advances by it), as a real one would. */
void fs_allow_sleep(bool allow);

/* An in-memory regular file for sendfile(): returns a fake fd, or -1 (errno
 * EMFILE) when the table is full. The bytes are copied. */
int fs_file_open(const void *data, size_t len);
/* Cuts the most recently opened file that is still open to n bytes (as
 * another process could), so sendfile finds it short. */
void fs_file_truncate_last(size_t n);

/* Counts of events for the report. */
struct fs_stats {
    uint64_t epoll_waits, reads, writes, accepts, closes, sleeps;
    /* EMFILE from the fd table, or an accept error that makes a listener
     * shed connections (accept and close at once) or pause. */
    uint64_t emfiles;
    uint64_t truncations; /* files cut short while being sent */
};
const struct fs_stats *fs_stats(void);

/* Clears every fault, opens every peer's receive room, lets accepts
 * through, and with time standing still calls run_once until three calls
 * in a row made no system call that moves bytes or fds (a small read size
 * may need one call a byte). False if that does not happen within 20,000
 * calls: the loop is busy. */
bool fs_settle(void (*run_once)(void));

/* ---- the script ----------------------------------------------------------------

 * The fuzz input after the target's own header bytes: a sequence of steps,
 * each an opcode byte and its arguments. Bit 7 of the opcode byte clear
 * means "then run the loop once (without sleeping)", so that most
 * mutations still make progress; set, the next step comes first (two sends
 * arriving in one read, a fault armed before the loop runs). The low seven
 * bits, modulo FS_OP_COUNT plus the target's own ops, pick the step; k is
 * a connection (modulo the connections made so far; the step is skipped
 * when there are none), b a byte. A missing byte reads as 0.
 *
 *   CONNECT b      a client connects; its send-buffer room is room(b)
 *   SEND k n data  the client sends n bytes (data, as many as remain)
 *   SHUT k         the client half-closes (FIN)
 *   CLOSE k        the client closes: FIN, and an RST if more bytes come
 *   RESET k        the client resets the connection (RST)
 *   ROOM k b       the send buffer has room(b) bytes free (less than now:
 *                  unrealistic, see fs_peer_set_room)
 *   ACK k b        the client read room(b) bytes: room grows, EPOLLOUT wakes
 *   RFAULT k f n   the next read-family call: fault f (enum fs_fault), n
 *   WFAULT k f n   the next write-family call: fault f, n
 *   AFAULT b       the next accept4 fails (EAGAIN, EINTR, ECONNABORTED,
 *                  EMFILE, ENFILE, ENOBUFS, ENOMEM, EPERM, EPROTO)
 *   EPOLL k b      the next epoll_wait reports b's bits on k (1 IN, 2 OUT,
 *                  4 RDHUP, 8 HUP, 16 ERR; HUP/ERR come from an RST, RDHUP
 *                  from a FIN)
 *   EINTR          the next epoll_wait fails with EINTR
 *   RUN            one loop iteration, time standing still
 *   SLEEP          one loop iteration whose wait sleeps its whole timeout
 *   ADVANCE b      the clock advances by ms(b)
 *   ROTATE b       epoll_wait scans its interest list from position b
 *   TRUNCATE b     the newest open file shrinks to b bytes
 *   (target ops)   FS_OP_COUNT + i: the target's step i, with one byte
 *
 * room(b) = 255 ? unlimited : b * b;  ms(b) = b < 100 ? b : (b - 99)^2 * 100 */
enum fs_op {
    FS_OP_CONNECT = 0,
    FS_OP_SEND,
    FS_OP_SHUT,
    FS_OP_CLOSE,
    FS_OP_RESET,
    FS_OP_ROOM,
    FS_OP_ACK,
    FS_OP_RFAULT,
    FS_OP_WFAULT,
    FS_OP_AFAULT,
    FS_OP_EPOLL,
    FS_OP_EINTR,
    FS_OP_RUN,
    FS_OP_SLEEP,
    FS_OP_ADVANCE,
    FS_OP_ROTATE,
    FS_OP_TRUNCATE,
    FS_OP_COUNT
};

struct fs_script {
    const uint8_t *p, *end;
    int target_ops; /* how many ops the target adds */
    bool trace;     /* print each step (FAKESOCK_TRACE=1 in the environment) */
};

void fs_script_init(struct fs_script *s, const uint8_t *data, size_t size, int target_ops);
/* Plays the whole script: its steps, and after each the loop run once
 * (run_once) when the step asks, or the target's own op (target_step, with
 * op below target_ops and the byte that follows it). */
void fs_script_play(struct fs_script *s, void (*run_once)(void),
                    void (*target_step)(int op, uint8_t arg));
/* Prints a line of the trace (the target's own steps and checks). */
void fs_trace(const struct fs_script *s, const char *what);
/* Prints each connection's state (when tracing). */
void fs_trace_peers(const struct fs_script *s);

#endif
