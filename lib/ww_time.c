/* ww_time: see ww_time.h. */
#include "ww_time.h"

#include <errno.h>
#include <time.h>

int64_t ww_time_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * WW_NS_PER_S + ts.tv_nsec;
}

int64_t ww_time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * WW_NS_PER_S + ts.tv_nsec;
}

int64_t ww_time_next_tick(int64_t t_ns, int64_t interval_ns)
{
    int64_t q = t_ns / interval_ns;
    if (t_ns < 0 && q * interval_ns != t_ns) {
        q--; /* floor division for times before 1970 */
    }
    return (q + 1) * interval_ns;
}

int ww_time_sleep_until(int64_t t_ns)
{
    struct timespec ts = {.tv_sec = t_ns / WW_NS_PER_S, .tv_nsec = t_ns % WW_NS_PER_S};
    int rc = clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL);
    return rc == 0 ? 0 : -rc;
}
