/* ww_signal: see ww_signal.h. */
#include "ww_signal.h"

#include <string.h>

static volatile sig_atomic_t *s_flag;

static void s_on_signal(int sig)
{
    *s_flag = sig;
}

void ww_signal_on_stop(volatile sig_atomic_t *stop)
{
    s_flag = stop;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}
