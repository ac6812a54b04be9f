/* ww_time: clocks and tick arithmetic shared by agent and collector. */
#ifndef WW_TIME_H
#define WW_TIME_H

#include <stdint.h>

#define WW_NS_PER_S INT64_C(1000000000)
#define WW_NS_PER_MS INT64_C(1000000)

/* Wall-clock time, nanoseconds since the Unix epoch (UTC). */
int64_t ww_time_now_ns(void);

/* Monotonic time in nanoseconds, for timeouts and durations. */
int64_t ww_time_mono_ns(void);

/* The first multiple of interval_ns strictly after t_ns. interval_ns > 0. */
int64_t ww_time_next_tick(int64_t t_ns, int64_t interval_ns);

/* Sleeps until wall-clock time t_ns (absolute, CLOCK_REALTIME), or until a signal
 * arrives. Returns 0 when the time was reached, -EINTR when interrupted. */
int ww_time_sleep_until(int64_t t_ns);

#endif
