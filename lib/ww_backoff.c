/* ww_backoff: see ww_backoff.h. */
#include "ww_backoff.h"

#include <string.h>

#define MS_NS INT64_C(1000000)

int64_t ww_backoff_double(int64_t cur_ns, int64_t max_ns)
{
    return cur_ns > max_ns / 2 ? max_ns : cur_ns * 2;
}

void ww_backoff_init(ww_backoff_t *b)
{
    memset(b, 0, sizeof *b);
}

int64_t ww_backoff_pending(ww_backoff_t *b, int64_t now_ns, uint64_t seq, uint32_t retry_after_ms,
                           int64_t base_ns)
{
    b->pendings++;
    if (seq > b->held_seq) {
        b->held_seq = seq;
    }
    if (b->until_ns != 0) {
        /* Deferred, or the deferral ended and its resend is not made yet: either way an
         * answer to a send of the round that is open. */
        return b->until_ns;
    }
    int64_t asked = (int64_t)retry_after_ms * MS_NS;
    if (asked > WW_BACKOFF_MAX_NS) {
        asked = WW_BACKOFF_MAX_NS;
    }
    int64_t delay;
    if (b->delay_ns == 0) {
        delay = asked > 0 ? asked : base_ns;
    } else {
        delay = ww_backoff_double(b->delay_ns, WW_BACKOFF_MAX_NS);
    }
    if (delay < asked) {
        delay = asked;
    }
    if (delay > WW_BACKOFF_MAX_NS) {
        delay = WW_BACKOFF_MAX_NS;
    }
    if (delay <= 0) {
        delay = 1;
    }
    b->delay_ns = delay;
    b->until_ns = now_ns + delay;
    b->rounds++;
    return b->until_ns;
}

void ww_backoff_reset(ww_backoff_t *b)
{
    b->delay_ns = 0;
    b->until_ns = 0;
    b->held_seq = 0;
}

bool ww_backoff_deferred(const ww_backoff_t *b, int64_t now_ns)
{
    return b->until_ns != 0 && now_ns < b->until_ns;
}

bool ww_backoff_due(const ww_backoff_t *b, int64_t now_ns)
{
    return b->until_ns != 0 && now_ns >= b->until_ns;
}

void ww_backoff_resent(ww_backoff_t *b)
{
    b->until_ns = 0;
}
