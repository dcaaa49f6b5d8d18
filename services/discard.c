/* discard (RFC 863) and sink (seed 004's edge-triggered receiver): read
 * everything and drop it; close only when the client has finished sending
 * (EOF), so a client is never cut off mid-stream. sink also logs every
 * chunk as it arrives, as the tutorial's receiver prints "recv:...". */
#include "service.h"

static size_t discard_read(struct eddy_conn *c, char *data, size_t len)
{
    struct svc_conn *sc = svc_conn_of(c);
    if (sc->ctx->svc->log_data && sc->ctx->log_level <= SVC_INFO) {
        char text[256];
        svc_log(sc->ctx, SVC_INFO, "%s: recv: %s", sc->ctx->svc->name,
                svc_repr(data, len, text, sizeof text));
    }
    return len;
}

const struct svc_service svc_discard = {
    .name = "discard",
    .summary = "read and drop everything, close on EOF (RFC 863)",
    .default_port = 7788,
    .conn_size = sizeof(struct svc_conn),
    .on_read = discard_read,
};

const struct svc_service svc_sink = {
    .name = "sink",
    .summary = "discard that logs every chunk received (seed 004)",
    .default_port = 7789,
    .conn_size = sizeof(struct svc_conn),
    .log_data = true,
    .on_read = discard_read,
};
