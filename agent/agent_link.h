/* agent_link: the agent's side of the wire. A ZeroMQ DEALER to the collector, a bounded
 * in-memory queue of encoded batches that are kept until the collector acks them, the
 * stream's epoch and sequence numbers, and the Hello sent on every (re)connect.
 *
 * Delivery: batches are sent in sequence order with at most max_in_flight unacked; an Ack
 * releases everything up to its seq; what is not acked within ack_timeout, and everything
 * in flight when the connection is re-established, is sent again (the collector makes
 * replays harmless). A Nack drops that batch and counts it. When the queue is full the
 * oldest batch is dropped and counted. (The on-disk spool arrives with the delivery
 * guarantees work and slots in behind ww_link_submit.)
 */
#ifndef WW_AGENT_LINK_H
#define WW_AGENT_LINK_H

#include "ww_wire.h"

#include <stdint.h>

typedef struct {
    const char *endpoint;
    const char *agent_id;
    int64_t ack_timeout_ns;
    size_t max_in_flight;
    size_t queue_batches;
} ww_link_conf_t;

typedef struct {
    uint64_t submitted; /* batches handed to the link */
    uint64_t sent;      /* messages sent, including resends */
    uint64_t resent;
    uint64_t acked;    /* batches released by an Ack */
    uint64_t nacked;   /* batches dropped by a Nack */
    uint64_t dropped;  /* batches dropped because the queue was full */
    uint64_t connects; /* connections established */
    uint64_t hellos_acked;
} ww_link_stats_t;

typedef struct ww_link ww_link_t;

/* Creates the link and connects (asynchronously). hello is copied (encoded) and sent on
 * every connect until acked. Returns NULL on failure (logged). */
ww_link_t *ww_link_new(const ww_link_conf_t *conf, const ww_hello_t *hello);

/* Closes the socket and frees everything; NULLs *self_p; safe on NULL and twice. */
void ww_link_destroy(ww_link_t **self_p);

/* Queues a batch under the next sequence number and sends it when the window allows.
 * The batch is encoded; the caller keeps ownership of it. Returns 0, or -ENOMEM. */
int ww_link_submit(ww_link_t *self, const ww_batch_t *batch);

/* Waits up to timeout_ns for replies and connection events, handles them, and (re)sends
 * what is due. Returns 0, or -EINTR when a signal interrupted the wait. */
int ww_link_poll(ww_link_t *self, int64_t timeout_ns);

/* Batches queued and not yet acked. */
size_t ww_link_pending(const ww_link_t *self);

/* The stream epoch (random, non-zero). */
uint64_t ww_link_epoch(const ww_link_t *self);

void ww_link_stats(const ww_link_t *self, ww_link_stats_t *out);

#endif
