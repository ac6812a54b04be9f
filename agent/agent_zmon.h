/* agent_zmon: what the agent's DEALER socket monitor says about the link to the
 * collector, told to the operator: connections that fail and CURVE handshakes that fail.
 *
 * Why it exists: libzmq reconnects silently. An agent whose collector is down, or which
 * the collector refuses (its key is not in the allowlist, or it trusts another
 * collector's key), produced no line at all: only the collector's side logged the
 * refusal, and the agent's operator saw 20 s of silence, then only a failover warning.
 *
 * Events read (zmq_socket_monitor, version 1: a frame of u16 event and u32 value, then a
 * frame with the endpoint):
 *   CONNECT_RETRIED without a CONNECTED since the last one   a connect failure: the TCP
 *       connection was refused or timed out, or the ipc socket is missing; CONNECTED
 *       ends a spell of them;
 *   HANDSHAKE_FAILED_AUTH       the collector's ZAP handler refused this agent's key;
 *   HANDSHAKE_FAILED_PROTOCOL / _NO_DETAIL   the CURVE handshake broke off: with CURVE
 *       on, the collector could not decrypt our HELLO (we trust another collector's key)
 *       or it does not speak CURVE, or it dropped us during the handshake;
 *   HANDSHAKE_SUCCEEDED         the link works.
 * The end of a spell of failures is logged once at INFO, with how many it had.
 * A handshake failure says "not enrolled, or the wrong collector key?" (with CURVE on).
 *
 * Rate limit (collectd's c_complain): the first failure of a kind is logged at once at
 * WARN; later ones are counted and logged only when the kind's interval has passed, with
 * the count since the previous line; the interval starts at AGENT_ZMON_FIRST_NS and
 * doubles at each line up to AGENT_ZMON_MAX_NS. Success resets it. A reconnect every
 * 2 s thus writes lines at 0 s, 10 s, 30 s, 70 s, ... then one every 10 minutes.
 *
 * Not thread-safe: the link's thread owns it. No allocation.
 */
#ifndef AGENT_ZMON_H
#define AGENT_ZMON_H

#include <stdbool.h>
#include <stdint.h>
#include <zmq.h>

/* The events ww_link asks the monitor for. */
#define AGENT_ZMON_EVENTS                                                                          \
    (ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_CLOSED | \
     ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |                        \
     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

#define AGENT_ZMON_FIRST_NS (INT64_C(10) * 1000000000)
#define AGENT_ZMON_MAX_NS (INT64_C(600) * 1000000000)

/* One kind of failure being reported at a growing interval. */
typedef struct {
    bool failing;      /* a failure was reported and no success since */
    uint64_t unlogged; /* failures since the last line */
    uint64_t spell;    /* failures since the first line of this spell */
    uint64_t total;    /* failures since agent_zmon_init */
    int64_t next_ns;   /* monotonic: no line before this */
    int64_t every_ns;  /* the current interval */
} agent_zmon_rate_t;

typedef enum { AGENT_ZMON_CONNECT = 0, AGENT_ZMON_HANDSHAKE, AGENT_ZMON_KINDS } agent_zmon_kind_t;

typedef struct {
    agent_zmon_rate_t rate[AGENT_ZMON_KINDS];
    bool curve;      /* CURVE on: a handshake failure is a key problem */
    bool handshaken; /* the current connection completed its handshake */
    bool reached;    /* the current attempt connected (the next RETRIED is no failure) */
} agent_zmon_t;

/* Starts with nothing failing. curve: whether the link uses CURVE. */
void agent_zmon_init(agent_zmon_t *self, bool curve);

/* Reads one event from the monitor's PAIR socket without waiting. Returns 1 with *event
 * and *value set, 0 when none is waiting, or a negative errno. */
int agent_zmon_read(void *mon, uint16_t *event, uint32_t *value);

/* Accounts one event seen at monotonic time now_ns on the connection to endpoint and logs
 * what it means (rate-limited, see above). Returns true for a handshake failure or a
 * connect failure, whose DISCONNECTED, if any, then needs no line of its own. */
bool agent_zmon_note(agent_zmon_t *self, uint16_t event, uint32_t value, const char *endpoint,
                     int64_t now_ns);

/* Whether one more failure of rate r at now_ns gets a line; counts it either way. On true,
 * *unlogged receives the failures not logged since the previous line (0 for the first) and
 * the interval grows. Exposed for the unit test of the schedule. */
bool agent_zmon_rate_take(agent_zmon_rate_t *r, int64_t now_ns, uint64_t *unlogged);

/* Ends a spell of failures of rate r; returns how many it had (0: none was failing). */
uint64_t agent_zmon_rate_clear(agent_zmon_rate_t *r);

#endif
