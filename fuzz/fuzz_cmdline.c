/* libFuzzer target: eddy's command line (cmd/options.c).
 *
 * Input: the arguments, separated by NUL bytes; argv[0] is "eddy". The
 * parser must not crash, read out of bounds or leak, whatever it is given;
 * on success the result must hold together (known services, addresses of a
 * known family, values in their ranges); on failure there must be a message.
 * Parsing the same arguments again must give the same answer: the parser
 * keeps no state between calls (getopt's is reset). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT 4096

static void check(bool ok)
{
    if (!ok)
        __builtin_trap();
}

/* What the parser settled on, to compare two runs. */
static void check_result(const struct options *o)
{
    check(o->action <= OPTIONS_UPGRADE);
    check(o->workers <= OPTIONS_MAX_WORKERS);
    check(o->read_size >= 1 && o->read_size <= 1 << 20);
    check(o->backlog >= 1 && o->backlog <= 65535);
    check(o->host != NULL);
    if (o->action == OPTIONS_UPGRADE)
        check(o->pid_file && *o->pid_file);
    if (o->action != OPTIONS_RUN)
        return;
    check(o->nservices >= 1 && o->nservices <= OPTIONS_MAX_SERVICES);
    for (size_t i = 0; i < o->nservices; i++) {
        const struct service_spec *sp = &o->services[i];
        check(sp->svc && svc_find(sp->svc->name) == sp->svc);
        int family = sp->addr.ss.ss_family;
        check(family == AF_INET || family == AF_INET6 || family == AF_UNIX);
        check(sp->addr.len > 0 && sp->addr.len <= sizeof sp->addr.ss);
    }
}

static bool same_result(const struct options *a, const struct options *b)
{
    if (a->action != b->action || a->nservices != b->nservices || a->workers != b->workers ||
        a->max_conns != b->max_conns || a->edge != b->edge || a->level != b->level ||
        a->host != b->host || a->port != b->port || a->pid_file != b->pid_file)
        return false;
    for (size_t i = 0; i < a->nservices; i++)
        if (a->services[i].svc != b->services[i].svc ||
            a->services[i].addr.len != b->services[i].addr.len)
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    /* Exactly the input's bytes plus the final NUL, so ASan sees a read
     * past the end of the last argument. */
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    int argc = 1;
    for (size_t i = 0; i < size; i++)
        argc += text[i] == '\0';
    argc += 1; /* argv[0] */
    char **first = calloc((size_t)argc + 1, sizeof *first);
    char **second = calloc((size_t)argc + 1, sizeof *second);
    first[0] = "eddy";
    char *p = text;
    for (int i = 1; i < argc; i++) {
        first[i] = p;
        p += strlen(p) + 1;
    }
    /* getopt_long permutes argv: the second run gets its own array of the
     * same strings. */
    memcpy(second, first, ((size_t)argc + 1) * sizeof *first);

    struct options *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    char err_a[512], err_b[512];
    err_a[0] = err_b[0] = '\0';
    int rc_a = options_parse(a, argc, first, err_a, sizeof err_a);
    int rc_b = options_parse(b, argc, second, err_b, sizeof err_b);
    check(rc_a == rc_b);
    if (rc_a == 0) {
        check_result(a);
        check(same_result(a, b));
    } else {
        check(rc_a == -1 && err_a[0] != '\0' && strcmp(err_a, err_b) == 0);
    }
    free(a);
    free(b);
    free(first);
    free(second);
    free(text);
    return 0;
}
