/* agent_link: the agent's side of the wire. A ZeroMQ DEALER to one of the configured
 * collectors, the on-disk spool (ww_spool) of every batch until the collector acks it, an
 * in-memory window of the oldest unacked batches paged in from the spool, the stream's
 * epoch and sequence numbers (persisted by the spool), and the Hello sent on every
 * (re)connect.
 *
 * Delivery: a batch is appended to the spool before it is sent; batches are sent in
 * sequence order with at most max_in_flight unacked; an Ack releases everything up to its
 * seq (memory and spool) except refused batches (below); what is not acked within
 * ack_timeout, and everything in flight when a connection is (re)established, is sent
 * again (the collector makes replays harmless). A Nack is answered by its code
 * (ww_link_nack_keeps): `forbidden` (the collector's allowlist does not admit this agent
 * id or one of its nodes: an operator's mistake that the operator will fix) keeps the
 * batch, see "Refused" below; every other code (`malformed`, `invalid`, `too_large`,
 * `unsupported_version`: the same bytes would be refused again) drops that batch and
 * counts it. After failover_after without progress the link moves to the next collector
 * endpoint and resends from the oldest unacked batch. After a restart the spool's unacked
 * batches are replayed first.
 *
 * Pending (received, not committed: e.g. the collector's database is down): the batches
 * stay where they are (memory and spool) and nothing is resent before the collector's
 * retry_after_ms; consecutive rounds of Pendings back off exponentially up to 30 s, and a
 * deferral that ends resends only what the collector does not hold, or one batch as a
 * probe (ww_backoff.h has the exact rule). An Ack, a new connection or a failover ends
 * the backoff. A Pending counts as progress (no failover: the collector is there) and in
 * the `pendings` counter.
 *
 * Refused (a `forbidden` Nack): the batch stays in memory and in the spool (it counts
 * against spool.max_bytes, so the spool's policy bounds how many are held) and is not sent
 * again before the refusal's retry time: WW_LINK_REFUSAL_FIRST_NS after the first Nack,
 * doubling with each round of Nacks up to WW_LINK_REFUSAL_MAX_NS (the schedule is
 * ww_link_refusal_t's). Held batches keep their place in the in-flight window, so at most
 * max_in_flight batches are sent (and refused) per round; the rest wait in the spool. When
 * the retry is due the held batches are sent again, in order, up to max_in_flight; an Ack
 * of any batch ends the refusal (the schedule starts afresh) and sends the held batches at
 * once. A refused batch is released only by the Ack of its own seq, not by a later batch's
 * cumulative Ack (the collector never received it, or the Ack answers an earlier send): it
 * is sent again and the collector writes it into the hole it left (docs/architecture.md,
 * "Delivery"), so once the allowlist is fixed every held batch is written and acked. A refused
 * Hello is retried on the same schedule. A `forbidden` Nack counts as progress (the collector is
 * there; failing over would not help), and while everything waiting is held no failover
 * and no ack timeout happens. Counted in `forbidden` (every forbidden Nack) and the gauge
 * ww_link_depth_t.held; ww_link_refusal says why for /healthz.
 *
 * Repair (zero loss through a failover of the collector's database): an Ack may name
 * seqs before it that the collector's database does not hold (Ack.missing_first..last:
 * an asynchronous standby promoted after its primary crashed lacks the last commits,
 * which this agent had been acked for). Those this agent released and still keeps
 * (ww_spool.h, keep_acked_ns) are read back from the spool and sent again in order, at
 * most max_in_flight unanswered, again from the first unanswered one after ack_timeout,
 * on a new connection and on failover; the collector writes them into the hole and acks
 * each by its seq. Ranges asked for during a repair join it. Seqs the spool no longer holds
 * are passed (counted in repair_gone; the collector keeps them counted as lost). The Ack of
 * every Hello names the stream's newest hole too, so a repair is taken up again after a
 * restart of the agent, or when the batch's Ack was lost with its collector (what the spool
 * no longer holds is then passed silently: it was counted before).
 *
 * Nack logs are rate-limited (agent_zmon_rate_t: the first at once, then at a growing
 * interval with the count since the previous line): one schedule for `forbidden`, one
 * for the codes that drop; the end of a refusal is logged once at INFO.
 */
#ifndef WW_LINK_H
#define WW_LINK_H

#include "ww_spool.h"
#include "ww_wire.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    char *const *endpoints; /* tried in order, round robin on failover */
    size_t n_endpoints;
    const char *agent_id;
    int64_t ack_timeout_ns;
    int64_t failover_after_ns;
    size_t max_in_flight;
    size_t queue_batches; /* in-memory window of unacked batches */
    ww_spool_conf_t spool;
    /* CURVE: all three set, or all NULL for an insecure link */
    const char *server_public_z85;
    const char *public_z85;
    const char *secret_z85;
} ww_link_conf_t;

/* Counters for logs and /metrics. */
typedef struct {
    uint64_t spooled;   /* batches appended to the spool */
    uint64_t sent;      /* messages sent, including resends */
    uint64_t resent;    /* batches sent again (ack timeout, reconnect, failover) */
    uint64_t replayed;  /* unacked batches found in the spool at start */
    uint64_t acked;     /* batches released by an Ack */
    uint64_t nacked;    /* batches dropped by a Nack */
    uint64_t dropped;   /* batches dropped by the spool policy (cumulative for the epoch) */
    uint64_t corrupt;   /* spool records cut as corrupt (cumulative for the epoch) */
    uint64_t refused;   /* batches refused because the spool is full (stop_sampling) */
    uint64_t disk_full; /* batches refused because the filesystem is full and the policy
                           could not make room (stop_sampling, or nothing left to drop) */
    uint64_t connects;  /* connections established */
    uint64_t failovers; /* switches to another endpoint */
    uint64_t hellos_acked;
    uint64_t pendings;           /* Pending replies: received, not committed yet */
    uint64_t connect_failures;   /* connects that failed (refused, unreachable: agent_zmon.h) */
    uint64_t handshake_failures; /* CURVE handshakes that failed (not enrolled, wrong key) */
    uint64_t forbidden;          /* forbidden Nacks taken (a held batch refused again counts
                                    again); the batches are kept, not in `nacked` */
    uint64_t repaired;           /* acked batches sent again because the collector lacked them */
    uint64_t repair_gone;        /* ... it lacked, but the spool no longer held (stay lost) */
} ww_link_stats_t;

typedef struct ww_link ww_link_t;

/* Opens the spool, creates the link and connects (asynchronously). hello is encoded and
 * sent on every connect until acked. Returns NULL on failure (logged), with *err (may be
 * NULL) set to a negative errno: the spool's (ww_spool_open: -EBUSY when another agent
 * holds it) or -ENOMEM, or ZeroMQ's. */
ww_link_t *ww_link_open(const ww_link_conf_t *conf, const ww_hello_t *hello, int *err);

/* ww_link_open without the error. */
ww_link_t *ww_link_new(const ww_link_conf_t *conf, const ww_hello_t *hello);

/* Closes the socket and the spool (everything unacked stays on disk); NULLs *self_p;
 * safe on NULL and twice. */
void ww_link_destroy(ww_link_t **self_p);

/* Spools a batch under the next sequence number (with the stream's loss counters) and
 * sends it when the window allows. The caller keeps ownership of batch. Returns 0,
 * -ENOSPC when the spool is full under the stop_sampling policy or its filesystem is full
 * and the policy could not make room (nothing kept; the caller counts the tick as skipped;
 * ww_link_disk_full tells which), or another negative errno. */
int ww_link_submit(ww_link_t *self, ww_batch_t *batch);

/* Whether the last append to the spool met a full filesystem (ENOSPC/EDQUOT), as opposed
 * to the spool's own bound (spool.max_bytes). The spool logs the path and free bytes. */
bool ww_link_disk_full(const ww_link_t *self);

/* Waits up to timeout_ns for replies and connection events, handles them, and (re)sends
 * what is due. Returns 0, or -EINTR when a signal interrupted the wait. */
int ww_link_poll(ww_link_t *self, int64_t timeout_ns);

/* Another file descriptor for ww_link_poll to wait on (at most WW_LINK_MAX_WATCH): when it
 * is readable, ww_link_poll calls on_ready(arg) (the request log's socket: records arrive
 * between ticks). fd < 0 removes the watch of that arg. Returns 0 or -ENOSPC. */
#define WW_LINK_MAX_WATCH 4
int ww_link_watch(ww_link_t *self, int fd, void (*on_ready)(void *arg), void *arg);

/* Batches spooled and not yet acked (on disk, including those paged into memory). */
uint64_t ww_link_pending(const ww_link_t *self);

/* Acked batches the collector lacks that this link still owes it (Repair above): a
 * graceful stop drains them too. */
uint64_t ww_link_repairing(const ww_link_t *self);

/* The stream epoch (persisted in the spool). */
uint64_t ww_link_epoch(const ww_link_t *self);

/* The sequence number the next ww_link_submit appends under (the agent's run log records
 * it before the append, to tell after a crash whether the append happened). */
uint64_t ww_link_next_seq(const ww_link_t *self);

/* Counts ticks the caller skipped, reported to the collector with the next batch. */
void ww_link_count_skipped(ww_link_t *self, uint64_t ticks);

void ww_link_stats(const ww_link_t *self, ww_link_stats_t *out);

/* Gauges for /metrics: what waits for an ack, on disk and in memory. */
typedef struct {
    uint64_t spool_bytes; /* bytes in the spool's segment files */
    uint64_t pending;     /* batches spooled and not acked (ww_link_pending) */
    uint64_t queued;      /* of those, paged into the in-memory window */
    uint64_t in_flight;   /* of those, sent and awaiting an ack (held ones are not) */
    uint64_t held;        /* of those, refused by a `forbidden` Nack and kept for a retry */
    uint64_t kept;        /* acked batches kept on disk for a repair (ww_spool.h) */
} ww_link_depth_t;

void ww_link_depth(const ww_link_t *self, ww_link_depth_t *out);

/* Whether the collector refuses this agent now: a batch or the Hello got a `forbidden`
 * Nack and no batch was acked since. When it does, copies the collector's last reason
 * ("forbidden: ...") into reason (cap bytes, NUL-terminated, cap > 0) and the number of
 * batches held into *held, and returns true; returns false (nothing written) otherwise. */
bool ww_link_refusal(const ww_link_t *self, char *reason, size_t cap, uint64_t *held);

/* Whether a Nack of this code (a Waferwatch__V1__NackCode) keeps the batch for a retry:
 * true for NACK_FORBIDDEN only (the allowlist can change; the bytes need not); false for
 * every other code, whose batch is dropped and counted. */
bool ww_link_nack_keeps(int code);

/* The retry schedule of refused batches: pure bookkeeping on the monotonic times the
 * caller passes (no clock, no socket), unit-tested alone (tests/unit/test_agent_link.c).
 *   - A forbidden Nack that opens a round holds the refused batches until now + delay;
 *     the first delay after a reset is WW_LINK_REFUSAL_FIRST_NS, each later round doubles
 *     it, capped at WW_LINK_REFUSAL_MAX_NS. A Nack that arrives while held belongs to the
 *     round that is open (the other batches of the window sent together) and changes
 *     nothing. The first Nack after the held batches were sent again opens the next round.
 *   - An Ack of a batch resets it: no hold, the next round starts at the first delay. */
#define WW_LINK_REFUSAL_FIRST_NS (INT64_C(5) * 1000000000)
#define WW_LINK_REFUSAL_MAX_NS (INT64_C(300) * 1000000000)

typedef struct {
    int64_t delay_ns; /* delay of the open or last round; 0: none since the last reset */
    int64_t until_ns; /* refused batches held until this time; 0: not held */
    uint64_t rounds;  /* rounds opened since the last reset */
} ww_link_refusal_t;

/* A forbidden Nack arrived at now_ns. Returns the time until which refused batches are
 * held (that of the open round when one is open). */
int64_t ww_link_refusal_nack(ww_link_refusal_t *r, int64_t now_ns);

/* Whether refused batches are held at now_ns (a round is open and its time not reached). */
bool ww_link_refusal_held(const ww_link_refusal_t *r, int64_t now_ns);

/* Whether a round's time has come at now_ns and its retry is not made yet: the caller
 * sends the held batches again and calls ww_link_refusal_retried. */
bool ww_link_refusal_due(const ww_link_refusal_t *r, int64_t now_ns);

/* The retry was made: the next forbidden Nack opens a round of twice the delay. */
void ww_link_refusal_retried(ww_link_refusal_t *r);

/* A batch was acked: everything starts afresh. */
void ww_link_refusal_reset(ww_link_refusal_t *r);

#endif
