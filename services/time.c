/* time (seed 001): after the client's first 3 bytes, reply with the local
 * time as "YYYY-MM-DD HH:MM:SS.ffffff" (the text of Python's
 * str(datetime.now()), with the microseconds always present) and close.
 * Bytes past the third are ignored, however they were split into packets:
 * one request, one reply. */
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

#include "service.h"

struct time_conn {
    struct svc_conn base;
    unsigned got; /* request bytes seen, up to 3 */
};

static size_t time_read(struct eddy_conn *c, char *data, size_t len)
{
    (void)data;
    struct time_conn *tc = (struct time_conn *)svc_conn_of(c);
    size_t take = 3 - tc->got < len ? 3 - tc->got : len;
    tc->got += (unsigned)take;
    if (tc->got == 3) {
        struct timeval tv;
        struct tm tm;
        char now[64];
        gettimeofday(&tv, NULL);
        localtime_r(&tv.tv_sec, &tm);
        size_t n = strftime(now, sizeof now, "%Y-%m-%d %H:%M:%S", &tm);
        n += (size_t)snprintf(now + n, sizeof now - n, ".%06ld", (long)tv.tv_usec);
        eddy_conn_write(c, now, n);
        eddy_conn_shutdown(c);
    }
    return len;
}

const struct svc_service svc_time = {
    .name = "time",
    .summary = "after 3 bytes, reply with the local time and close (seed 001)",
    .default_port = 9090,
    .conn_size = sizeof(struct time_conn),
    .on_read = time_read,
};
