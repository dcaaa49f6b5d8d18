/* hello-raw: the HTTP server of seeds 000 and 003 as the tutorials wrote it,
 * on the net layer: read until the blank line that ends a request's header
 * ("\n\n" or "\n\r\n", whatever came before), answer one fixed HTTP/1.0
 * response and close. It does not parse HTTP; the real HTTP/1.1 service is
 * the `http` service. A header that grows past 8 KiB without its blank line
 * is cut off with a close. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "service.h"

#define MAX_REQUEST 8192

struct hello_conn {
    struct svc_conn base;
    size_t scanned; /* bytes already searched for the blank line */
};

static const char body[] = "Hello, world!";

static void reply(struct eddy_conn *c)
{
    char head[160];
    char date[40];
    struct tm tm;
    time_t now = time(NULL);
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    int n = snprintf(head, sizeof head,
                     "HTTP/1.0 200 OK\r\nDate: %s\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     date, sizeof body - 1, body);
    eddy_conn_write(c, head, (size_t)n);
    eddy_conn_shutdown(c);
}

static size_t hello_read(struct eddy_conn *c, char *data, size_t len)
{
    struct hello_conn *hc = (struct hello_conn *)svc_conn_of(c);
    /* Resume the search just before where it stopped, so a terminator split
     * across reads is found and no byte is scanned more than three times. */
    size_t from = hc->scanned > 2 ? hc->scanned - 2 : 0;
    for (size_t i = from; i + 1 < len; i++) {
        if (data[i] != '\n')
            continue;
        if (data[i + 1] == '\n' || (data[i + 1] == '\r' && i + 2 < len && data[i + 2] == '\n')) {
            reply(c);
            return len;
        }
    }
    hc->scanned = len;
    if (len >= MAX_REQUEST)
        eddy_conn_shutdown(c);
    return 0;
}

const struct svc_service svc_hello_raw = {
    .name = "hello-raw",
    .summary = "the tutorials' HTTP/1.0 \"Hello, world!\" server, as they wrote it (seeds 000/003)",
    .default_port = 8080,
    .conn_size = sizeof(struct hello_conn),
    .on_read = hello_read,
};
