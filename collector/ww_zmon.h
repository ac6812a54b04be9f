/* ww_zmon: the ZeroMQ socket monitor of the collector's listening socket: handshakes that
 * fail, counted by reason and logged with the peer's address.
 *
 * Why it exists: a peer that fails the CURVE handshake never produces a message, so the
 * receive loop cannot see it, and only a key that reaches the ZAP handler (ww_auth.c) was
 * logged. A plain (non-CURVE) client, or an agent configured with another collector's
 * public key, left no line and no counter.
 *
 * ww_zmon_new() asks libzmq for the socket's events (zmq_socket_monitor over inproc,
 * version 1) and reads them on a thread of its own, so that a connection's address is read
 * (getpeername on the descriptor of its ACCEPTED event) while the connection still exists,
 * even while the receive loop spends seconds decoding a large message. The failure reasons
 * are libzmq's three handshake-failure events:
 *
 *   protocol   the peer broke the ZMTP/CURVE handshake: it does not speak CURVE ("mechanism
 *              mismatch"), it encrypted to another server key ("cryptographic error"), or
 *              it sent a malformed command
 *   auth       the ZAP handler refused its key (not enrolled, or revoked): ww_auth.c logs the
 *              key and the address; here it is only counted
 *   no_detail  the connection ended during the handshake without a protocol error (closed,
 *              reset, handshake timeout): e.g. a port scanner or a TCP health check
 *
 * A protocol or no_detail failure is logged at WARN with the peer's address, at most one
 * line per ww_zmon_limit_t interval per kind (mechanism mismatch, cryptographic error,
 * other protocol errors, no_detail: a flood of one kind does not hide the first of
 * another), each line with the count of the failures of its kind not logged since the
 * previous one; every failure is counted (ww_zmon_stats, /metrics
 * waferwatch_collector_handshake_failures_total{reason}).
 *
 * The peer's address is best effort: version-1 events name the bound endpoint, not the
 * peer. libzmq emits a protocol or no_detail failure and the DISCONNECTED event of the same
 * connection one right after the other (one call on its I/O thread), so the failure is
 * matched with that descriptor's address as noted at ACCEPTED. A connection that is gone
 * before its ACCEPTED event is read is logged as "an unknown address"; a descriptor
 * reused in that instant may name the next peer.
 */
#ifndef WW_ZMON_H
#define WW_ZMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ww_zmon ww_zmon_t;

typedef enum {
    WW_ZMON_PROTOCOL = 0,
    WW_ZMON_AUTH,
    WW_ZMON_NO_DETAIL,
    WW_ZMON_REASONS /* how many */
} ww_zmon_reason_t;

/* Totals since ww_zmon_new. */
typedef struct {
    uint64_t failed[WW_ZMON_REASONS]; /* handshakes failed, by reason */
    uint64_t accepted;                /* TCP connections accepted */
} ww_zmon_stats_t;

/* Starts monitoring `sock` (a socket of zmq_ctx that the calling thread owns) and the
 * thread that reads its events. Returns NULL with the reason in `why` when libzmq refuses
 * the monitor or the thread cannot start. */
ww_zmon_t *ww_zmon_new(void *zmq_ctx, void *sock, char *why, size_t why_len);

/* Stops the monitor on its socket and the thread, and frees; NULLs *self_p; safe on NULL
 * and twice. Call from the thread that owns the socket, before closing the socket and
 * before terminating the context. */
void ww_zmon_destroy(ww_zmon_t **self_p);

/* Copies the totals; any thread. All zero when self is NULL. */
void ww_zmon_stats(const ww_zmon_t *self, ww_zmon_stats_t *out);

/* "protocol", "auth", "no_detail": the /metrics label values, in enum order. */
const char *ww_zmon_reason_name(ww_zmon_reason_t reason);

/* The rate limit of one kind of refused-connection log line (shared with the ZAP
 * handler's): the first failure is logged; while failures go on, the next line may come
 * one interval after the previous, the interval doubling from 1 s up to 1 h; after a
 * whole interval without a line it starts again at 1 s. Zero-initialise it. Not
 * thread-safe: one per thread that logs. */
typedef struct {
    int64_t next_ns;     /* monotonic time before which no line is logged */
    int64_t interval_ns; /* gap after the last line; 0 before the first */
    uint64_t unlogged;   /* failures since the last line, not logged */
} ww_zmon_limit_t;

/* One failure at monotonic time now_ns: returns true when it is to be logged, with
 * *unlogged set to the failures counted but not logged since the previous line (their
 * count is then reset); false when it is only counted. */
bool ww_zmon_limit_take(ww_zmon_limit_t *l, int64_t now_ns, uint64_t *unlogged);

#endif
