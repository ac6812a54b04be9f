/* ww_log: leveled logging to stderr, shared by every waferwatch binary.
 *
 * Each .c file sets its module prefix before including this header:
 *     #define WW_LOG_MODULE "spool"
 * The macros test the level first, so arguments below the level cost nothing.
 * Lines look like: 2026-11-28T14:54:30.123Z INFO  collector: listening on tcp://...
 */
#ifndef WW_LOG_H
#define WW_LOG_H

#include <stdbool.h>

typedef enum { WW_LOG_ERROR = 0, WW_LOG_WARN, WW_LOG_INFO, WW_LOG_DEBUG } ww_log_level_t;

#ifndef WW_LOG_MODULE
#define WW_LOG_MODULE "ww"
#endif

extern ww_log_level_t ww_log_level;

/* The level names, indexed by ww_log_level_t and NULL-terminated: the allowed values of a
 * configuration's log_level enum row (WW_CFG_ENUM), whose index is then the level. */
extern const char *const ww_log_level_names[];

/* Parses "error", "warn", "info" or "debug"; returns 0 or -EINVAL. */
int ww_log_set_level_name(const char *name);
const char *ww_log_level_name(ww_log_level_t level);

/* Writes one line; use the macros instead. */
void ww_log_write(ww_log_level_t level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define WW_LOG_AT(lvl, ...)                                                                        \
    do {                                                                                           \
        if ((lvl) <= ww_log_level) {                                                               \
            ww_log_write((lvl), WW_LOG_MODULE, __VA_ARGS__);                                       \
        }                                                                                          \
    } while (0)

#define WW_ERROR(...) WW_LOG_AT(WW_LOG_ERROR, __VA_ARGS__)
#define WW_WARN(...) WW_LOG_AT(WW_LOG_WARN, __VA_ARGS__)
#define WW_INFO(...) WW_LOG_AT(WW_LOG_INFO, __VA_ARGS__)
#define WW_DEBUG(...) WW_LOG_AT(WW_LOG_DEBUG, __VA_ARGS__)

/* A condition that fails repeatedly is logged once when it starts and once when it
 * recovers (collectd's c_complain idea). Embed one per condition. */
typedef struct {
    bool failing;
    unsigned long repeats; /* failures since the first one was logged */
} ww_complain_t;

/* Logs at WARN the first failure only; later ones are counted. */
#define WW_COMPLAIN(c, ...)                                                                        \
    do {                                                                                           \
        if (!(c)->failing) {                                                                       \
            (c)->failing = true;                                                                   \
            (c)->repeats = 0;                                                                      \
            WW_WARN(__VA_ARGS__);                                                                  \
        } else {                                                                                   \
            (c)->repeats++;                                                                        \
        }                                                                                          \
    } while (0)

/* Logs at INFO once when a failing condition recovers. */
#define WW_RECOVERED(c, ...)                                                                       \
    do {                                                                                           \
        if ((c)->failing) {                                                                        \
            (c)->failing = false;                                                                  \
            WW_INFO(__VA_ARGS__);                                                                  \
        }                                                                                          \
    } while (0)

#endif
