/* ww_log: see ww_log.h. */
#include "ww_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

ww_log_level_t ww_log_level = WW_LOG_INFO;

const char *const ww_log_level_names[] = {[WW_LOG_ERROR] = "error",
                                          [WW_LOG_WARN] = "warn",
                                          [WW_LOG_INFO] = "info",
                                          [WW_LOG_DEBUG] = "debug",
                                          [WW_LOG_DEBUG + 1] = NULL};

int ww_log_set_level_name(const char *name)
{
    if (!name) {
        return -EINVAL;
    }
    for (int i = 0; i <= WW_LOG_DEBUG; i++) {
        if (strcmp(name, ww_log_level_names[i]) == 0) {
            ww_log_level = (ww_log_level_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *ww_log_level_name(ww_log_level_t level)
{
    return (level >= WW_LOG_ERROR && level <= WW_LOG_DEBUG) ? ww_log_level_names[level] : "?";
}

void ww_log_write(ww_log_level_t level, const char *module, const char *fmt, ...)
{
    static const char *const tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, tags[level], module);
    if (n < 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) {
        len = sizeof line - 2;
    }
    line[len++] = '\n';
    /* One write per line so lines from several threads do not interleave. */
    fwrite(line, 1, len, stderr);
    fflush(stderr);
}
