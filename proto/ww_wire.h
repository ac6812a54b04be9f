/* ww_wire: the codec of the wire contract (waferwatch.v1, see waferwatch.proto).
 *
 * Decoding never trusts its input. ww_wire_decode() takes these steps, each refusing with
 * a reason in `why` that names the field's path, e.g. "batch.samples[3].power_w: NaN is
 * not a finite number":
 *  1. size: more than max_message_bytes is -EMSGSIZE;
 *  2. raw scan, before any allocation (ww_wire_scan.h): repeated fields past their limit,
 *     strings longer than max_string or holding a NUL byte are -EINVAL; bytes that are not
 *     protobuf (or a field numbered 0) are -EBADMSG;
 *  3. unpack with a bounded allocator: protobuf-c may allocate at most
 *     WW_WIRE_ALLOC_BUDGET(len) bytes (counted as requested plus WW_WIRE_ALLOC_OVERHEAD per
 *     block); past it the message is -EMSGSIZE. Valid messages need at most ~13 times their
 *     size (65,536 samples with one-letter node ids and nothing else: 12.9 times; minimal
 *     latency windows: 5.5 times): only messages made mostly of empty sub-messages (2 bytes
 *     each, a struct of ~100 bytes unpacked), which validation would refuse anyway, or of
 *     unknown fields reach the budget;
 *  4. validation (ww_wire_validate, the rules below): -EINVAL or -EPROTONOSUPPORT.
 * When a message is refused at step 2 (-EINVAL), 3 (-EMSGSIZE) or 4, why->have_seq
 * reports the stream position its Nack needs, if the envelope named one.
 *
 * Validation rules. Every value must reach PostgreSQL unaltered (the column types are in
 * collector/migrations); what a column cannot hold is refused, never clamped:
 *  - envelope: wire_version 1 (else -EPROTONOSUPPORT); agent_id required; seq <= 2^63 - 1
 *    (bigint; any body); epoch any 64-bit value (stored as the bigint of the same 64 bits);
 *    a batch needs epoch != 0 and seq != 0; exactly one body (hello, batch, heartbeat,
 *    ack, nack, pending);
 *  - text (every string field): at most max_string bytes, valid UTF-8 without NUL or other
 *    control characters; node ids are [A-Za-z0-9._:-]+; model 1..47 bytes;
 *  - hello: 1..max_nodes nodes, each with a node id; rated_kw in [0, 1000];
 *    interval_ms <= 2^31 - 1 (integer);
 *  - batch: at most max_samples samples (each with a node id; its time and readings are
 *    checked alone, by ww_wire_check_sample), max_windows latency windows, max_outages
 *    outages; loss counters <= 2^63 - 1 (bigint);
 *  - latency window: duration_ns in [1 ms, 1 h]; start_ns a whole millisecond within
 *    [now - max_past, now + max_future]; requests_ok, _error, _timeout, _rejected and each
 *    histogram's count <= 3600 * WW_WIRE_MAX_REQ_PER_S (an hour at 10^6 per second:
 *    3.6e9); prompt_tokens and output_tokens <= 3600 * WW_WIRE_MAX_TOKENS_PER_S (3.6e10),
 *    whatever the window's duration (a part of a window, sent by an agent that started
 *    inside it, covers less time than its requests span), so sums of 2.5 billion windows
 *    still fit a bigint; each
 *    histogram valid (ww_hist_from_pb: parts summing exactly to count, |sum| <= count *
 *    2^40 s, at most max_buckets buckets); ttft and e2e counts == requests_ok, tpot count
 *    <= requests_ok, queue count == requests_ok + requests_error;
 *  - outage: to_ns a whole microsecond within [now - max_past, now + max_future]; from_ns
 *    0 (not known) or a whole microsecond in [to_ns - WW_WIRE_MAX_OUTAGE_NS, to_ns];
 *    lost_ticks, lost_requests <= 2^63 - 1; cause "stop" or "crash"; no two outages of a
 *    batch with the same to_ns (the stored key);
 *  - ack and pending: seq <= 2^63 - 1 (a collector acks only stored seqs); an ack's
 *    missing_first..missing_last both 0, or 1 <= first <= last <= 2^63 - 1 and, but for a
 *    Hello's Ack (seq 0), last < seq; pending
 *    retry_after_ms <= WW_WIRE_MAX_RETRY_AFTER_MS. A nack's seq is not bounded: it echoes
 *    the refused message's, whatever it was;
 *  - sample (ww_wire_check_sample): time_ns a whole microsecond (timestamptz) within
 *    [now - max_past, now + max_future]; readings finite and plausible; requests_queued,
 *    requests_in_flight, requests_completed <= 2^31 - 1 (integer). The reading fields, their
 *    ranges and their presence are those of proto/ww_fields.h; an OPTIONAL field
 *    (humidity_pct) that was not sent is not checked and is stored as NULL.
 *
 * Presence of an OPTIONAL reading field (waferwatch.proto): the field <name> is the only
 * member of `oneof <name>_present`, the wire form of proto3 `optional`; in C
 * <name>_present_case is the field number when it was sent, 0 when not (WW_WIRE_HAS). The
 * NodeSample of an agent that predates the field lacks it: the column is NULL, not 0.
 */
#ifndef WW_WIRE_H
#define WW_WIRE_H

#include "waferwatch/v1/waferwatch.pb-c.h"
#include "ww_reading.h"

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
typedef Waferwatch__V1__Pending ww_pending_t;
typedef Waferwatch__V1__Outage ww_outage_t;

/* A latency window may count at most an hour of this many requests per second, per node
 * and model (requests_* and histogram counts): 3.6e9. */
#define WW_WIRE_MAX_REQ_PER_S 1000000u
/* ... and at most this many prompt or output tokens per second. */
#define WW_WIRE_MAX_TOKENS_PER_S 10000000u
/* The longest outage an agent may report: a year (from_ns no earlier than to_ns - this). */
#define WW_WIRE_MAX_OUTAGE_NS (INT64_C(366) * 24 * 3600 * 1000000000)
/* The longest back-off a Pending may ask for: 10 minutes. */
#define WW_WIRE_MAX_RETRY_AFTER_MS 600000u

/* The memory protobuf-c may allocate to unpack a message of len bytes: 16 times its size
 * plus 1 MiB, every block counted with WW_WIRE_ALLOC_OVERHEAD bytes of malloc's own. */
#define WW_WIRE_ALLOC_FACTOR 16u
#define WW_WIRE_ALLOC_BASE ((size_t)1 << 20)
#define WW_WIRE_ALLOC_OVERHEAD 16u
#define WW_WIRE_ALLOC_BUDGET(len) ((size_t)(len)*WW_WIRE_ALLOC_FACTOR + WW_WIRE_ALLOC_BASE)

/* Limits on what a peer may send. */
typedef struct {
    size_t max_message_bytes; /* whole encoded envelope */
    size_t max_samples;       /* samples per batch */
    size_t max_windows;       /* latency windows per batch */
    size_t max_buckets;       /* non-empty buckets per histogram */
    size_t max_nodes;         /* nodes per hello */
    size_t max_outages;       /* outages per batch */
    size_t max_string;        /* bytes in any string field */
    int64_t max_past_ns;      /* sample time may be at most this far before now */
    int64_t max_future_ns;    /* ... and at most this far after now */
} ww_wire_limits_t;

/* 16 MiB, 65,536 samples, 65,536 latency windows of at most 8,192 buckets per histogram,
 * 4,096 nodes, 1,024 outages, 128-byte strings, 7 days back, 5 minutes ahead. */
void ww_wire_limits_default(ww_wire_limits_t *lim);

typedef struct {
    char msg[256];
    /* Set when the bytes decoded as an Envelope even though it failed validation, so the
     * receiver can Nack that exact (epoch, seq) and move the stream past it. */
    int have_seq;
    uint64_t epoch;
    uint64_t seq;
    char agent_id[129]; /* the envelope's agent_id when have_seq */
    /* Bytes protobuf-c requested while unpacking (with WW_WIRE_ALLOC_OVERHEAD per block):
     * an upper bound of the decode's peak memory; 0 when refused before unpacking. */
    size_t unpack_bytes;
} ww_wire_why_t;

/* Writes a printf-formatted reason into why->msg (why may be NULL) and returns rc: the
 * one way the contract's checks (ww_wire.c, ww_hist_wire.c) refuse something. */
int ww_wire_fail(ww_wire_why_t *why, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Decodes and validates one message (the steps and rules above). On success returns 0
 * and *out owns an envelope the caller frees with ww_wire_free() (its parts are plain
 * malloc() blocks: protobuf_c_message_free_unpacked(part, NULL) may free one). On failure
 * *out is NULL, `why` says what is wrong and the return is: -EMSGSIZE (too large, or
 * unpacking it needs more than WW_WIRE_ALLOC_BUDGET), -EBADMSG (does not decode),
 * -EPROTONOSUPPORT (wire version), -EINVAL (fails validation), or -ENOMEM (malloc failed
 * within the budget: not the message's fault, worth a retry). now_ns anchors the
 * timestamp window. */
int ww_wire_decode(const uint8_t *buf, size_t len, const ww_wire_limits_t *lim, int64_t now_ns,
                   ww_envelope_t **out, ww_wire_why_t *why);

/* Validates a decoded envelope (ww_wire_decode calls it). 0, -EINVAL, -EPROTONOSUPPORT, or
 * -EBADMSG for a field numbered 0 (which protobuf-c accepts but protobuf forbids). It
 * cannot see NUL bytes (protobuf-c has already cut strings there): only the raw scan of
 * ww_wire_decode refuses them. */
int ww_wire_validate(const ww_envelope_t *env, const ww_wire_limits_t *lim, int64_t now_ns,
                     ww_wire_why_t *why);

/* Checks sample i of a batch on its own: time_ns a whole microsecond within [now_ns -
 * lim->max_past_ns, now_ns + lim->max_future_ns], readings finite and within plausible
 * ranges (e.g. power 0..200 kW, temperatures -40..150 C, utilisation 0..1), counters
 * within PostgreSQL's integer (<= 2^31 - 1). ww_wire_validate checks a batch's structure
 * (and each sample's node id) but not this, so that a receiver refuses a bad sample alone.
 * 0, or -EINVAL with why->msg naming the field, e.g. "batch.samples[3].outlet_c: 175 is
 * outside the plausible range [-40, 150]". */
int ww_wire_check_sample(const ww_node_sample_t *s, size_t i, const ww_wire_limits_t *lim,
                         int64_t now_ns, ww_wire_why_t *why);

/* True when the NodeSample s carries the OPTIONAL reading field `name` (ww_fields.h). */
#define WW_WIRE_HAS(s, name) ((s)->name##_present_case != 0)

/* Copies the reading fields of *r (all of ww_fields.h) into *s; node_id and time_ns are
 * left alone. An OPTIONAL field that is NaN in the reading (not measured) is left unset. */
void ww_wire_sample_from_reading(ww_node_sample_t *s, const ww_reading_t *r);

/* The reverse: the reading fields of *s into *r; an unset OPTIONAL field becomes NaN. */
void ww_wire_sample_to_reading(const ww_node_sample_t *s, ww_reading_t *r);

/* Frees a decoded envelope and NULLs *env; safe on NULL. */
void ww_wire_free(ww_envelope_t **env);

/* Encodes env into *buf (grown with realloc as needed; *cap is its size). Returns the
 * encoded length (> 0) or -ENOMEM. The buffer is the caller's, reused across calls. */
long ww_wire_encode(const ww_envelope_t *env, uint8_t **buf, size_t *cap);

/* The Nack code that a decode error (a negative return above) deserves. */
Waferwatch__V1__NackCode ww_wire_nack_code(int decode_rc);

/* True when every character of s is in a node id's alphabet, [A-Za-z0-9._:-] (node ids
 * become primary-key text and file names); length and emptiness are checked apart. */
int ww_wire_node_id_chars_ok(const char *s);

/* True when s (len bytes) is valid UTF-8 without NUL or other C0 control characters. */
int ww_wire_text_ok(const char *s, size_t len);

#endif
