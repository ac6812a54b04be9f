/* ww_backoff: exponential backoff, in one place (ww_backoff_double: the collector's retries
 * of PostgreSQL, the rate limits of repeated log lines), and the agent's bookkeeping of
 * when it resends batches that the collector said it holds but has
 * not committed yet (a Pending reply: e.g. PostgreSQL is down).
 *
 * Without it the link resends its whole in-flight window every ack timeout for as long as
 * the collector cannot commit (issue 14: 559 resends per agent through a 3 min database
 * outage, 1,569 messages for 450 batches). The rule, for one stream:
 *   - A Pending that opens a round defers every resend of the stream until now + delay.
 *     The first delay after an Ack is the collector's retry_after_ms (base_ns when it
 *     sends 0); each later round doubles it, capped at WW_BACKOFF_MAX_NS (30 s); it is
 *     never shorter than retry_after_ms (itself capped at 30 s).
 *   - A round is what one send of the window provokes: the collector answers each batch
 *     of the window, so a Pending that arrives while the stream is deferred belongs to the
 *     round that is open: it raises held_seq and changes nothing else. The next round
 *     opens with the first Pending after the deferral has ended (the answer to the resend).
 *   - held_seq is the highest seq the collector said it holds. When a deferral ends the
 *     link resends only the in-flight batches above held_seq, or, when the collector holds
 *     them all, the oldest one alone as a probe (its answer, Ack or Pending, says whether
 *     the database is back).
 *   - An Ack, a new connection or a failover ends it all (a restarted collector holds
 *     nothing): delay, deferral and held_seq start afresh. The counters are kept.
 * So through an outage of T seconds the link sends about log2(30 s / retry_after) + (T -
 * 60 s) / 30 s probes instead of T / ack_timeout windows.
 *
 * Pure bookkeeping on the monotonic times the caller passes: no clock, no socket, so the
 * decisions are unit-tested alone (tests/unit/test_agent_backoff.c).
 */
#ifndef WW_BACKOFF_H
#define WW_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

#define WW_BACKOFF_MAX_NS (30 * INT64_C(1000000000))

typedef struct {
    int64_t delay_ns;  /* delay of the open or last round; 0: none since the last reset */
    int64_t until_ns;  /* resends deferred until this time; 0: not deferred */
    uint64_t held_seq; /* highest seq the collector holds uncommitted; 0: none known */
    uint64_t pendings; /* Pending replies taken (every one, for stats) */
    uint64_t rounds;   /* of those, the ones that opened a round */
} ww_backoff_t;

/* The next delay of an exponential backoff: cur_ns doubled, capped at max_ns (no
 * overflow whatever cur_ns). */
int64_t ww_backoff_double(int64_t cur_ns, int64_t max_ns);

/* Everything zero: no deferral, nothing held, counters 0. */
void ww_backoff_init(ww_backoff_t *b);

/* A Pending{seq, retry_after_ms} of this stream arrived at now_ns; base_ns is the first
 * delay when retry_after_ms is 0 (the link passes its ack timeout). Returns the time until
 * which resends are deferred. */
int64_t ww_backoff_pending(ww_backoff_t *b, int64_t now_ns, uint64_t seq, uint32_t retry_after_ms,
                           int64_t base_ns);

/* An Ack, a new connection or a failover: delay, deferral and held_seq start afresh. */
void ww_backoff_reset(ww_backoff_t *b);

/* Whether resends are deferred at now_ns. */
bool ww_backoff_deferred(const ww_backoff_t *b, int64_t now_ns);

/* Whether a deferral has ended at now_ns and its resend is not done yet: the caller then
 * resends (see held_seq) and calls ww_backoff_resent. */
bool ww_backoff_due(const ww_backoff_t *b, int64_t now_ns);

/* The resend that ended a deferral was made: the next Pending opens a new round. */
void ww_backoff_resent(ww_backoff_t *b);

#endif
