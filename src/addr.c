/* Listen and connect addresses in text form: "1.2.3.4:80", "[::1]:80",
 * "localhost:80", "unix:/path". Numeric only: parsing never blocks on DNS. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "eddy/tcp.h"

static int parse_port(const char *s, uint16_t *port)
{
    if (*s == '\0')
        return -EINVAL;
    unsigned long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > 65535)
            return -EINVAL;
    }
    *port = (uint16_t)v;
    return 0;
}

static int parse_unix(struct eddy_addr *addr, const char *path)
{
    struct sockaddr_un *un = (struct sockaddr_un *)&addr->ss;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof un->sun_path)
        return -EINVAL;
    memset(un, 0, sizeof *un);
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, n + 1);
    addr->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

static int parse(struct eddy_addr *addr, const char *text);

EDDY_API int eddy_addr_parse(struct eddy_addr *addr, const char *text)
{
    /* Parse into a copy: a refused text leaves *addr as it was. */
    struct eddy_addr parsed;
    int err = parse(&parsed, text);
    if (!err)
        *addr = parsed;
    return err;
}

static int parse(struct eddy_addr *addr, const char *text)
{
    if (strncmp(text, "unix:", 5) == 0)
        return parse_unix(addr, text + 5);

    char host[INET6_ADDRSTRLEN];
    const char *port_text;
    bool v6 = text[0] == '[';
    if (v6) {
        const char *end = strchr(text, ']');
        if (!end || end[1] != ':' || (size_t)(end - text - 1) >= sizeof host)
            return -EINVAL;
        memcpy(host, text + 1, (size_t)(end - text - 1));
        host[end - text - 1] = '\0';
        port_text = end + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon || (size_t)(colon - text) >= sizeof host)
            return -EINVAL;
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        port_text = colon + 1;
    }
    uint16_t port;
    if (parse_port(port_text, &port) < 0)
        return -EINVAL;

    memset(&addr->ss, 0, sizeof addr->ss);
    if (v6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&addr->ss;
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
            return -EINVAL;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        addr->len = sizeof *in6;
        return 0;
    }
    struct sockaddr_in *in = (struct sockaddr_in *)&addr->ss;
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    /* inet_pton (unlike inet_aton) accepts only the dotted-quad form, so
     * "127.1" or "0x7f.1" are refused rather than silently reinterpreted. */
    if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
        return -EINVAL;
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    addr->len = sizeof *in;
    return 0;
}

EDDY_API char *eddy_addr_format(const struct eddy_addr *addr, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN];
    switch (addr->ss.ss_family) {
    case AF_INET: {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&addr->ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(buf, size, "%s:%u", host, ntohs(in->sin_port));
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&addr->ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(buf, size, "[%s]:%u", host, ntohs(in6->sin6_port));
        break;
    }
    case AF_UNIX: {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&addr->ss;
        size_t n = addr->len > offsetof(struct sockaddr_un, sun_path)
                       ? addr->len - offsetof(struct sockaddr_un, sun_path)
                       : 0;
        snprintf(buf, size, "unix:%.*s", (int)strnlen(un->sun_path, n), un->sun_path);
        break;
    }
    default:
        snprintf(buf, size, "unknown");
    }
    return buf;
}
