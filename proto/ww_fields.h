/* ww_fields: the node-sample reading fields, listed once.
 *
 * A reading field (power_w, flow_lpm, ...) travels through every layer: the ww_reading_t a
 * source fills (ww_reading.h), the NodeSample of waferwatch.proto, the plausibility checks of
 * ww_wire_check_sample (ww_wire.c), the READING datagram of the request log (ww_reqlog.h),
 * and a column of node_samples written by the collector's binary COPY. This list is the one
 * place that names them; the struct, the reading <-> NodeSample copy, the checks, the
 * request-log codec and the COPY columns and row are expanded from it. What cannot be
 * expanded (the .proto, the CREATE TABLE / ALTER TABLE of collector/migrations) is checked
 * against it by tests/unit/test_fields.c, which fails when they disagree.
 *
 * WW_READING_FIELDS(X) calls X once per field, in the order of the node_samples COPY row
 * (after time and node_id) and of the members of ww_reading_t:
 *
 *   X(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)
 *
 *   name     the ww_reading_t member, the NodeSample field and the node_samples column
 *   kind     F32  float    protobuf float,  PostgreSQL real,    request log f32 (4 bytes)
 *            U32  uint32_t protobuf uint32, PostgreSQL integer, request log u32 (4 bytes)
 *            BOOL bool     protobuf bool,   PostgreSQL boolean, request log u8 0/1 (1 byte)
 *   pb       the NodeSample field number
 *   lo, hi   the plausible range ww_wire_check_sample enforces: F32 finite and in [lo, hi];
 *            U32 at most hi (2^31 - 1: a PostgreSQL integer); BOOL not checked
 *   rl_off   byte offset in the request-log READING body (after the 16-byte header)
 *   rl_ver   the first request-log version whose READING body carries the field
 *   presence ALWAYS   proto3 implicit presence: always sent; "not measured" is the bit
 *                     WW_FIELD_BIT(pb) of the sample's not_measured (ww_reading_t's too, and
 *                     NaN for an F32 reading): the value is then 0 on the wire, the column
 *                     NULL (nullable since migration 0022; NOT NULL before);
 *            OPTIONAL proto3 `optional`: protobuf-c's has_<name> says whether it was
 *                     sent; in ww_reading_t and the request log NaN means "not measured"
 *                     (F32 only); the column is nullable and NULL when absent (an old
 *                     agent, an old producer, a node without the sensor)
 *   unit     the unit, as in the name
 *   doc      what it measures
 *
 * Adding a field: a line here (next free NodeSample number, the next request-log offset
 * under a new request-log version), its WW_FIELD_RES_<name> below (the agent's quantizer
 * and the block codec do not compile without it), the field in waferwatch.proto, a
 * migration that adds the column (nullable for an OPTIONAL field), and the source that
 * measures it.
 */
#ifndef WW_FIELDS_H
#define WW_FIELDS_H

#include <stdbool.h>
#include <stdint.h>

/* clang-format off */
#define WW_READING_FIELDS(X)                                                                     \
    X(power_w,            F32,  3,  0,   200000,    8,  1, ALWAYS,   "W",     "IT power draw")   \
    X(inlet_c,            F32,  4,  -40, 150,       12, 1, ALWAYS,   "C",     "coolant in")      \
    X(outlet_c,           F32,  5,  -40, 150,       16, 1, ALWAYS,   "C",     "coolant out")     \
    X(flow_lpm,           F32,  6,  0,   10000,     20, 1, ALWAYS,   "l/min", "coolant flow")    \
    X(wafer_hotspot_c,    F32,  7,  -40, 250,       24, 1, ALWAYS,   "C",     "wafer max")       \
    X(utilization,        F32,  8,  0,   1,         28, 1, ALWAYS,   "1",     "busy share")      \
    X(tokens_per_s,       F32,  9,  0,   1e8,       32, 1, ALWAYS,   "1/s",   "output tokens/s") \
    X(requests_queued,    U32,  10, 0,   INT32_MAX, 40, 1, ALWAYS,   "1",     "waiting")         \
    X(requests_in_flight, U32,  11, 0,   INT32_MAX, 44, 1, ALWAYS,   "1",     "running")         \
    X(requests_completed, U32,  14, 0,   INT32_MAX, 48, 1, ALWAYS,   "1",     "done since last") \
    X(throttled,          BOOL, 12, 0,   1,         52, 1, ALWAYS,   "",      "throttling now")  \
    X(throttle_factor,    F32,  13, 0,   1,         36, 1, ALWAYS,   "1",     "1 = full speed")  \
    X(humidity_pct,       F32,  15, 0,   100,       56, 2, OPTIONAL, "%",     "intake air RH")
/* clang-format on */

/* The documented sensor resolution of each reading, in its unit: WW_FIELD_RES_<name>, one per
 * field of the list (kept beside it rather than in it, so that the many expansions of the
 * list keep their ten parameters). What it means:
 *  - the grid the agent quantizes every F32 reading to, whatever its source (agent/ww_quant.h,
 *    as the reading becomes the NodeSample it sends): k = llround(v / res), sent as
 *    (float)((double)k * res), so that a reading carries no digits its sensor cannot give (NaN
 *    "not measured" stays NaN: absent). A promise of the agent, not a check of the wire: a
 *    collector stores any plausible value it receives exactly;
 *  - the fast path of the sample-block codec (lib/ww_sblock.h): a reading on its grid is
 *    stored as its k, by small deltas of k from the previous sample's (a few bits). Any other
 *    value (off the grid: an unquantized reading, -0.0, a NaN whatever its payload, +-inf, a
 *    denormal) is still stored exactly, all 32 bits of it (an escape): a resolution is a
 *    promise about the common case, never a rounding of what is stored.
 * F32 resolutions are powers of ten, 10^e with e in [-9, 9] (a block records e per column
 * and refuses to decode with another: a new resolution needs a new block format version).
 * U32 and BOOL fields are exact: their resolution is 1 and unused, defined so that an
 * expansion of the list may name WW_FIELD_RES_##name for every field. */
#define WW_FIELD_RES_power_w 1.0            /* 1 W */
#define WW_FIELD_RES_inlet_c 0.1            /* 0.1 C */
#define WW_FIELD_RES_outlet_c 0.1           /* 0.1 C */
#define WW_FIELD_RES_flow_lpm 0.1           /* 0.1 l/min */
#define WW_FIELD_RES_wafer_hotspot_c 0.1    /* 0.1 C */
#define WW_FIELD_RES_utilization 0.001      /* 0.1 % of busy */
#define WW_FIELD_RES_tokens_per_s 0.1       /* 0.1 token/s */
#define WW_FIELD_RES_requests_queued 1.0    /* exact (U32) */
#define WW_FIELD_RES_requests_in_flight 1.0 /* exact (U32) */
#define WW_FIELD_RES_requests_completed 1.0 /* exact (U32) */
#define WW_FIELD_RES_throttled 1.0          /* exact (BOOL) */
#define WW_FIELD_RES_throttle_factor 0.001  /* 0.1 % of full speed */
#define WW_FIELD_RES_humidity_pct 0.1       /* 0.1 % RH */
/* The resolution of field `name` (a name of the list). */
#define WW_FIELD_RES(name) WW_FIELD_RES_##name

/* The C type of a kind. */
#define WW_FIELD_CTYPE_F32 float
#define WW_FIELD_CTYPE_U32 uint32_t
#define WW_FIELD_CTYPE_BOOL bool
/* Its size in the request-log READING body. */
#define WW_FIELD_RL_SIZE_F32 4
#define WW_FIELD_RL_SIZE_U32 4
#define WW_FIELD_RL_SIZE_BOOL 1
/* Its PostgreSQL column type (as written in collector/migrations). */
#define WW_FIELD_SQL_F32 "real"
#define WW_FIELD_SQL_U32 "integer"
#define WW_FIELD_SQL_BOOL "boolean"
/* 1 for an OPTIONAL field. */
#define WW_FIELD_IS_OPTIONAL_ALWAYS 0
#define WW_FIELD_IS_OPTIONAL_OPTIONAL 1

/* Expansion helpers: WW_FIELD_<WHAT>(kind) and WW_FIELD_IS_OPTIONAL(presence), through one
 * more level so that macro arguments expand first. */
#define WW_FIELD_CAT_(a, b) a##b
#define WW_FIELD_CAT(a, b) WW_FIELD_CAT_(a, b)
#define WW_FIELD_CTYPE(kind) WW_FIELD_CAT(WW_FIELD_CTYPE_, kind)
#define WW_FIELD_RL_SIZE(kind) WW_FIELD_CAT(WW_FIELD_RL_SIZE_, kind)
#define WW_FIELD_SQL(kind) WW_FIELD_CAT(WW_FIELD_SQL_, kind)
#define WW_FIELD_IS_OPTIONAL(presence) WW_FIELD_CAT(WW_FIELD_IS_OPTIONAL_, presence)

/* The bit of NodeSample.not_measured (and ww_reading_t.not_measured) for the ALWAYS field
 * numbered pb. */
#define WW_FIELD_BIT(pb) (UINT32_C(1) << ((pb)-3))
#define WW_FIELD_MASK_BIT_ALWAYS(pb) WW_FIELD_BIT(pb)
#define WW_FIELD_MASK_BIT_OPTIONAL(pb) 0
#define WW_FIELD_MASK_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                \
    | WW_FIELD_CAT(WW_FIELD_MASK_BIT_, presence)(pb)
/* The bits not_measured may have: one per ALWAYS field. */
#define WW_FIELD_NOT_MEASURED_BITS (0u WW_READING_FIELDS(WW_FIELD_MASK_))

/* The number of fields. */
#define WW_FIELD_COUNT_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc) +1
#define WW_READING_NFIELDS (0 WW_READING_FIELDS(WW_FIELD_COUNT_))

/* ", power_w, inlet_c, ...": the node_samples columns of the fields, in list order, as one
 * string literal (the COPY column list appends it to "time, node_id"). */
#define WW_FIELD_COLUMN_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc) ", " #name
#define WW_READING_COLUMNS WW_READING_FIELDS(WW_FIELD_COLUMN_)

/* One row of the list as data, for code that walks it at run time (tests, tools). */
typedef enum { WW_FIELD_KIND_F32, WW_FIELD_KIND_U32, WW_FIELD_KIND_BOOL } ww_field_kind_t;

typedef struct {
    const char *name;
    ww_field_kind_t kind;
    unsigned pb;
    double lo, hi;
    unsigned rl_off;
    unsigned rl_ver;
    bool optional;
    const char *unit;
    const char *doc;
} ww_field_t;

#define WW_FIELD_KIND_ENUM_F32 WW_FIELD_KIND_F32
#define WW_FIELD_KIND_ENUM_U32 WW_FIELD_KIND_U32
#define WW_FIELD_KIND_ENUM_BOOL WW_FIELD_KIND_BOOL
#define WW_FIELD_ROW_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                 \
    {#name,  WW_FIELD_CAT(WW_FIELD_KIND_ENUM_, kind), pb,   lo, hi, rl_off,                        \
     rl_ver, WW_FIELD_IS_OPTIONAL(presence),          unit, doc},

/* The list as an array initializer: static const ww_field_t t[] = WW_READING_FIELD_TABLE; */
#define WW_READING_FIELD_TABLE                                                                     \
    {                                                                                              \
        WW_READING_FIELDS(WW_FIELD_ROW_)                                                           \
    }

#endif
