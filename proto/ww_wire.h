/* ww_wire: the codec of the wire contract (waferwatch.v1, see waferwatch.proto).
 *
 * Decoding never trusts its input: ww_wire_decode() unpacks and then validates every
 * field (wire version, required fields, finite numbers in plausible ranges, string
 * lengths and UTF-8, counts, timestamps near now) and explains the first failure in
 * `why` with the field's path, e.g. "batch.samples[3].power_w: NaN is not a finite number".
 */
#ifndef WW_WIRE_H
#define WW_WIRE_H

#include "waferwatch/v1/waferwatch.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define WW_WIRE_VERSION 1u

typedef Waferwatch__V1__Envelope ww_envelope_t;
typedef Waferwatch__V1__Hello ww_hello_t;
typedef Waferwatch__V1__NodeInfo ww_node_info_t;
typedef Waferwatch__V1__Batch ww_batch_t;
typedef Waferwatch__V1__NodeSample ww_node_sample_t;
typedef Waferwatch__V1__Ack ww_ack_t;
typedef Waferwatch__V1__Nack ww_nack_t;
typedef Waferwatch__V1__Heartbeat ww_heartbeat_t;

/* Limits on what a peer may send. */
typedef struct {
    size_t max_message_bytes; /* whole encoded envelope */
    size_t max_samples;       /* samples per batch */
    size_t max_windows;       /* latency windows per batch */
    size_t max_buckets;       /* non-empty buckets per histogram */
    size_t max_nodes;         /* nodes per hello */
    size_t max_string;        /* bytes in any string field */
    int64_t max_past_ns;      /* sample time may be at most this far before now */
    int64_t max_future_ns;    /* ... and at most this far after now */
} ww_wire_limits_t;

/* 16 MiB, 65,536 samples, 65,536 latency windows of at most 8,192 buckets per histogram,
 * 4,096 nodes, 128-byte strings, 7 days back, 5 minutes ahead. */
void ww_wire_limits_default(ww_wire_limits_t *lim);

typedef struct {
    char msg[256];
    /* Set when the bytes decoded as an Envelope even though it failed validation, so the
     * receiver can Nack that exact (epoch, seq) and move the stream past it. */
    int have_seq;
    uint64_t epoch;
    uint64_t seq;
    char agent_id[129]; /* the envelope's agent_id when have_seq */
} ww_wire_why_t;

/* Decodes and validates one message. On success returns 0 and *out owns an envelope the
 * caller frees with ww_wire_free(). On failure *out is NULL, `why` says what is wrong and
 * the return is: -EMSGSIZE (too large), -EBADMSG (does not decode), -EPROTONOSUPPORT
 * (wire version), -EINVAL (fails validation). now_ns anchors the timestamp window. */
int ww_wire_decode(const uint8_t *buf, size_t len, const ww_wire_limits_t *lim, int64_t now_ns,
                   ww_envelope_t **out, ww_wire_why_t *why);

/* Validates a decoded envelope (ww_wire_decode calls it). 0, -EINVAL, -EPROTONOSUPPORT, or
 * -EBADMSG for a field numbered 0 (which protobuf-c accepts but protobuf forbids). */
int ww_wire_validate(const ww_envelope_t *env, const ww_wire_limits_t *lim, int64_t now_ns,
                     ww_wire_why_t *why);

/* Checks the readings of sample i of a batch (finite, within plausible ranges: e.g. power
 * 0..200 kW, temperatures -40..150 C, utilisation 0..1). ww_wire_validate checks a batch's
 * structure but not its readings, so that a receiver refuses an implausible sample alone.
 * 0, or -EINVAL with why->msg naming the field, e.g. "batch.samples[3].outlet_c: 175 is
 * outside the plausible range [-40, 150]". */
int ww_wire_check_sample(const ww_node_sample_t *s, size_t i, ww_wire_why_t *why);

/* Frees a decoded envelope and NULLs *env; safe on NULL. */
void ww_wire_free(ww_envelope_t **env);

/* Encodes env into *buf (grown with realloc as needed; *cap is its size). Returns the
 * encoded length (> 0) or -ENOMEM. The buffer is the caller's, reused across calls. */
long ww_wire_encode(const ww_envelope_t *env, uint8_t **buf, size_t *cap);

/* The Nack code that a decode error (a negative return above) deserves. */
Waferwatch__V1__NackCode ww_wire_nack_code(int decode_rc);

/* True when s (len bytes) is valid UTF-8 without NUL or other C0 control characters. */
int ww_wire_text_ok(const char *s, size_t len);

#endif
