/* agent_link: the agent's side of the wire. A ZeroMQ DEALER to one of the configured
 * collectors, the on-disk spool (ww_spool) of every batch until the collector acks it, an
 * in-memory window of the oldest unacked batches paged in from the spool, the stream's
 * epoch and sequence numbers (persisted by the spool), and the Hello sent on every
 * (re)connect.
 *
 * Delivery: a batch is appended to the spool before it is sent; batches are sent in
 * sequence order with at most max_in_flight unacked; an Ack releases everything up to its
 * seq (memory and spool); what is not acked within ack_timeout, and everything in flight
 * when a connection is (re)established, is sent again (the collector makes replays
 * harmless). A Nack drops that batch and counts it. After failover_after without progress
 * the link moves to the next collector endpoint and resends from the oldest unacked
 * batch. After a restart the spool's unacked batches are replayed first.
 *
 * Pending (received, not committed: e.g. the collector's database is down): the batches
 * stay where they are (memory and spool) and nothing is resent before the collector's
 * retry_after_ms; consecutive rounds of Pendings back off exponentially up to 30 s, and a
 * deferral that ends resends only what the collector does not hold, or one batch as a
 * probe (agent_backoff.h has the exact rule). An Ack, a new connection or a failover ends
 * the backoff. A Pending counts as progress (no failover: the collector is there) and in
 * the `pendings` counter.
 */
#ifndef WW_AGENT_LINK_H
#define WW_AGENT_LINK_H

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
    uint64_t in_flight;   /* of those, sent and awaiting an ack */
} ww_link_depth_t;

void ww_link_depth(const ww_link_t *self, ww_link_depth_t *out);

#endif
