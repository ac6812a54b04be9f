/* ww_reading: what both wire contracts carry from a node: its readings at one tick
 * (ww_reading_t: the node sample of waferwatch.proto, the READING datagram of the request
 * log) and one finished request (ww_request_t: a REQUESTS record; the agent merges them
 * into the latency windows of waferwatch.proto). The agent's sources (agent/sources/
 * ww_source.h) produce them.
 */
#ifndef WW_READING_H
#define WW_READING_H

#include "ww_fields.h"

#include <stdbool.h>
#include <stdint.h>

/* One node's measurements at one tick: one member per field of ww_fields.h (which gives
 * each one's type, unit and range), in its order. A reading the source did not measure:
 * its bit WW_FIELD_BIT(pb) in not_measured (an ALWAYS field; an F32 one may instead be
 * NaN), or NaN (an OPTIONAL field, humidity_pct). A zeroed reading was all measured. */
#define WW_READING_MEMBER_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)            \
    WW_FIELD_CTYPE(kind) name;
typedef struct {
    WW_READING_FIELDS(WW_READING_MEMBER_)
    uint32_t not_measured;
} ww_reading_t;
#undef WW_READING_MEMBER_

typedef enum {
    WW_REQ_OK = 0,
    WW_REQ_ERROR = 1,
    WW_REQ_TIMEOUT = 2,
    WW_REQ_REJECTED = 3, /* refused at admission: queue full */
} ww_req_status_t;

#define WW_MODEL_NAME_MAX 48

/* One finished request. Times are ns since the Unix epoch. For a rejected request
 * first_token_ns = done_ns = the rejection time and output_tokens = 0. */
typedef struct {
    uint16_t model; /* index into the source's model list */
    ww_req_status_t status;
    int64_t arrival_ns; /* request arrived at the server */
    int64_t start_ns;   /* admitted into the running batch (queue time = start - arrival) */
    int64_t first_token_ns;
    int64_t done_ns;
    uint32_t prompt_tokens;
    uint32_t output_tokens;
} ww_request_t;

#endif
