/* ww_signal: the stop signals of a long-running binary. */
#ifndef WW_SIGNAL_H
#define WW_SIGNAL_H

#include <signal.h>

/* SIGTERM and SIGINT store their number in *stop (no SA_RESTART: a blocking wait returns
 * with EINTR, so the loop sees the flag at once); SIGPIPE is ignored. One flag per process:
 * a second call replaces the first. */
void ww_signal_on_stop(volatile sig_atomic_t *stop);

#endif
