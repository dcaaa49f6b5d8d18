/* Logging for eddy's programs, to stderr, one line per message, in the
 * shape the tutorials' Python logger used:
 *   2026-11-23 08:21:42,997 - eddy - main - INFO - echo listening on ...
 * Only programs log; the library and the services hand their lines here. */
#ifndef EDDY_CMD_LOG_H
#define EDDY_CMD_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARNING = 2, LOG_ERROR = 3, LOG_TRACE = 4 };

/* name: the logger name ("eddy"); level: the lowest level printed. TRACE
 * lines are printed whenever they are logged (--trace decides that). */
void log_init(const char *name, enum log_level level);

/* The calling thread's name in log lines ("main" until set). */
void log_set_thread(const char *name);

/* Parses "debug", "info", "warning"/"warn", "error". Returns -1 if unknown. */
int log_level_parse(const char *text);

bool log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#endif
