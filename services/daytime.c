/* daytime (RFC 867): on connect, send the local date and time as one
 * human-readable line, then close. Anything the client sends is ignored. */
#include <time.h>

#include "service.h"

static void daytime_open(struct svc_conn *sc)
{
    time_t now = time(NULL);
    struct tm tm;
    char line[128];
    localtime_r(&now, &tm);
    size_t n = strftime(line, sizeof line, "%A, %B %d, %Y %H:%M:%S %Z\r\n", &tm);
    eddy_conn_write(&sc->conn, line, n);
    eddy_conn_shutdown(&sc->conn);
}

static size_t daytime_read(struct eddy_conn *c, char *data, size_t len)
{
    (void)c;
    (void)data;
    return len;
}

const struct svc_service svc_daytime = {
    .name = "daytime",
    .summary = "send the date and time on connect, then close (RFC 867)",
    .default_port = 8013,
    .conn_size = sizeof(struct svc_conn),
    .on_open = daytime_open,
    .on_read = daytime_read,
};
