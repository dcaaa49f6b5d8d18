#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *logger_name = "eddy";
static enum log_level min_level = LOG_INFO;
static _Thread_local const char *thread_name = "main";

void log_init(const char *name, enum log_level level)
{
    logger_name = name;
    min_level = level;
}

void log_set_thread(const char *name)
{
    thread_name = name;
}

int log_level_parse(const char *text)
{
    static const struct {
        const char *name;
        enum log_level level;
    } names[] = {{"debug", LOG_DEBUG}, {"info", LOG_INFO},   {"warning", LOG_WARNING},
                 {"warn", LOG_WARNING}, {"error", LOG_ERROR}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(text, names[i].name) == 0)
            return (int)names[i].level;
    return -1;
}

bool log_enabled(enum log_level level)
{
    return level == LOG_TRACE || level >= min_level;
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
    static const char *const names[] = {"DEBUG", "INFO", "WARNING", "ERROR", "TRACE"};
    if (!log_enabled(level))
        return;
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    char line[1024];
    size_t n = strftime(line, sizeof line, "%Y-%m-%d %H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, ",%03ld - %s - %s - %s - ",
                          (long)(tv.tv_usec / 1000), logger_name, thread_name, names[level]);
    int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
    if (m < 0)
        m = 0;
    n = n + (size_t)m < sizeof line - 1 ? n + (size_t)m : sizeof line - 2;
    line[n++] = '\n';
    /* One write per line, so lines from several threads never interleave. */
    ssize_t rc = write(STDERR_FILENO, line, n);
    (void)rc;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}
