/* ww_reqlog: the request-log datagram contract and its codec. The inference server (or
 * `waferwatch-sim`, the simulated wafer-scale system run as its own process) sends the agent its
 * node readings and one completion record per request as datagrams on a Unix socket that the agent
 * binds.
 *
 * Why a socket and datagrams: on a real node the serving stack, not the agent, runs the
 * requests; the agent only records them. Records travel in batches (hundreds per
 * datagram, sent together every ~250 ms), so the agent wakes a few times a second, not once a
 * request, and a datagram is a whole message: no framing to resynchronise after a
 * producer crash. Several producers may send to one socket (each datagram stands alone).
 * The producer sends with MSG_DONTWAIT and never blocks serving on telemetry: when the
 * agent is not draining (the kernel queue holds a few datagrams) it keeps a bounded
 * backlog and counts what it drops.
 *
 * Datagram layout, versions 1 and 2. Every integer and float is LITTLE-ENDIAN, whatever
 * the host; floats are IEEE 754 binary32. Version 2 differs from version 1 only in the
 * READING body, which appends humidity_pct; REQUESTS are the same in both. The agent accepts
 * both versions of both types. This encoder writes READINGs as version 2 and REQUESTS as
 * version 1 (their layout did not change, so an agent that only knows version 1 still
 * takes them).
 *   header, 16 bytes:
 *     0  u32 magic     the bytes 'W' 'R' 'L' '1' in that order (0x314C5257 read as LE u32)
 *     4  u8  version   1 or 2
 *     5  u8  type      1 = READING, 2 = REQUESTS
 *     6  u16 n_models  REQUESTS: entries of the model table that follows; READING: 0
 *     8  u32 count     READING: 1; REQUESTS: records (0 allowed)
 *     12 u32 reserved  0
 *   READING body, 56 bytes in version 1, 60 in version 2 (the node's state at time_ns;
 *   offsets from the start of the datagram; the fields are those of proto/ww_fields.h,
 *   whose rl_off column is the offset from the start of the body, 16 less):
 *     16 i64 time_ns   ns since the Unix epoch
 *     24 f32 power_w, inlet_c, outlet_c, flow_lpm, wafer_hotspot_c, utilization (0..1),
 *            tokens_per_s, throttle_factor (1 = full speed); each finite
 *     56 u32 requests_queued, requests_in_flight, requests_completed (since the previous
 *            reading)
 *     68 u8  throttled (0 or 1), then 3 zero bytes
 *   version 2 only:
 *     72 f32 humidity_pct   relative humidity (%) at the air intake; NaN = not measured
 *            (stored as NULL); infinities are refused. A version 1 reading has no
 *            humidity: not measured.
 *   REQUESTS body:
 *     the model table: n_models entries (1..WW_REQLOG_MAX_MODELS), each u8 len (1..47) and
 *     len bytes of name (printable ASCII, no space); then zero bytes up to the next offset
 *     that is a multiple of 8; then count records of 48 bytes:
 *       0  i64 arrival_ns, start_ns, first_token_ns, done_ns (ns since the Unix epoch;
 *              arrival <= start <= first token <= done)
 *       32 u32 prompt_tokens, output_tokens
 *       40 u16 model     index into this datagram's model table
 *       42 u8  status    0 ok, 1 error, 2 timeout, 3 rejected (ww_req_status_t)
 *       43 5 zero bytes
 *     Records come in completion order (done_ns never decreases), across datagrams too.
 * A datagram is at most WW_REQLOG_MAX_DGRAM bytes and its length is exactly what its
 * header says. A bad datagram is dropped whole and counted; a bad record (times out of
 * order, unknown status or model) is dropped and counted, the rest of its datagram kept.
 */
#ifndef WW_REQLOG_H
#define WW_REQLOG_H

#include "ww_reading.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WW_REQLOG_MAGIC 0x314C5257u
#define WW_REQLOG_VERSION 2          /* the newest version: what READINGs are written as */
#define WW_REQLOG_REQUESTS_VERSION 1 /* what REQUESTS are written as (same in 1 and 2) */
#define WW_REQLOG_READING 1
#define WW_REQLOG_REQUESTS 2
#define WW_REQLOG_HEADER 16
#define WW_REQLOG_READING_BYTES_V1 56
#define WW_REQLOG_READING_BYTES_V2 60
#define WW_REQLOG_READING_BYTES WW_REQLOG_READING_BYTES_V2 /* the body the encoder writes */
#define WW_REQLOG_RECORD 48
#define WW_REQLOG_MAX_DGRAM 16384
#define WW_REQLOG_MAX_MODELS 8

/* A parsed datagram; points into the buffer it was parsed from. */
typedef struct {
    unsigned version; /* 1 or 2 */
    unsigned type;    /* WW_REQLOG_READING or WW_REQLOG_REQUESTS */
    /* READING */
    int64_t time_ns;
    ww_reading_t reading;
    /* REQUESTS */
    unsigned n_models;
    const char *model[WW_REQLOG_MAX_MODELS]; /* not NUL-terminated: model_len bytes */
    uint8_t model_len[WW_REQLOG_MAX_MODELS];
    uint32_t count;
    const uint8_t *records; /* count * WW_REQLOG_RECORD bytes */
} ww_reqlog_msg_t;

/* Parses one datagram of len bytes. Returns 0, or -EBADMSG with *why (a static string naming
 * the field at fault) set. */
int ww_reqlog_parse(const void *buf, size_t len, ww_reqlog_msg_t *m, const char **why);

/* Decodes record k (< m->count) of a parsed REQUESTS datagram into *r; r->model is the index
 * into the datagram's table. Returns 0, or -EINVAL with *why set (the record is bad). */
int ww_reqlog_record(const ww_reqlog_msg_t *m, uint32_t k, ww_request_t *r, const char **why);

/* ---- producing ---- */

/* A REQUESTS datagram being filled. */
typedef struct {
    uint8_t buf[WW_REQLOG_MAX_DGRAM];
    size_t len;         /* bytes used */
    size_t records_off; /* where the first record goes */
    uint32_t count;
    unsigned n_models;
} ww_reqlog_batch_t;

/* Starts an empty REQUESTS datagram with this model table (1..WW_REQLOG_MAX_MODELS names of
 * 1..47 printable ASCII characters without spaces). Returns 0 or -EINVAL. */
int ww_reqlog_begin(ww_reqlog_batch_t *b, const char *const *models, unsigned n_models);

/* Appends one record (r->model < the table's size). Returns 1, or 0 when the datagram is
 * full (send it and begin another). */
int ww_reqlog_add(ww_reqlog_batch_t *b, const ww_request_t *r);

/* Encodes a READING datagram of version WW_REQLOG_VERSION (2) into buf (at least
 * WW_REQLOG_HEADER + WW_REQLOG_READING_BYTES bytes); returns its length. An OPTIONAL field
 * (humidity_pct) that is NaN is sent as NaN: not measured. */
size_t ww_reqlog_reading(uint8_t *buf, int64_t time_ns, const ww_reading_t *rd);

/* The same in a given version (1 or 2: a version 1 reading leaves humidity_pct out); returns
 * its length, or 0 for a version this codec does not write. For tests and producers that
 * must speak to an agent that only knows version 1. */
size_t ww_reqlog_reading_v(uint8_t *buf, unsigned version, int64_t time_ns, const ww_reading_t *rd);

#endif
