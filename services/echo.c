/* echo (RFC 862) and upper (seed 002's second server): every byte received
 * is sent back, by upper in upper case. Replies go out in the order the
 * bytes came; back-pressure comes from the connection's watermarks, so a
 * client that sends without reading stops being read, not buffered. */
#include <ctype.h>

#include "service.h"

static size_t echo_read(struct eddy_conn *c, char *data, size_t len)
{
    eddy_conn_write(c, data, len);
    return len;
}

static size_t upper_read(struct eddy_conn *c, char *data, size_t len)
{
    /* The input buffer is ours to change: convert in place, no copy. */
    for (size_t i = 0; i < len; i++)
        data[i] = (char)toupper((unsigned char)data[i]);
    eddy_conn_write(c, data, len);
    return len;
}

/* On EOF echo has nothing more to say: the default (send what is queued,
 * then close) is exactly right, so on_eof stays NULL. */
const struct svc_service svc_echo = {
    .name = "echo",
    .summary = "send back every byte received (RFC 862)",
    .default_port = 8888,
    .conn_size = sizeof(struct svc_conn),
    .on_read = echo_read,
};

const struct svc_service svc_upper = {
    .name = "upper",
    .summary = "echo in upper case (seed 002)",
    .default_port = 8889,
    .conn_size = sizeof(struct svc_conn),
    .on_read = upper_read,
};
