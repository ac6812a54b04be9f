/* ww_otlp_json: the JSON encoding of an OTLP trace export (OTLP/HTTP with Content-Type
 * application/json) turned into its protobuf encoding, so that one decoder,
 * ww_otlp_trace_decode, reads both and both are held to the same rules.
 *
 * As the OTLP specification's JSON mapping says (proto3's JSON form with its exceptions):
 * field names in lowerCamelCase (the .proto's own snake_case names are accepted too); 64-bit
 * integers (times in Unix ns, intValue) as decimal strings or as numbers, read exactly,
 * never through a double; doubles as numbers or as "NaN" / "Infinity" strings; the status
 * code as its number or its name (STATUS_CODE_ERROR); fields this reader does not carry
 * (trace and span ids, kind, events, links, array and kvlist values, bytes values) and
 * unknown fields are ignored. Carried: resourceSpans[].resource.attributes,
 * .scopeSpans[].spans[] with name, startTimeUnixNano, endTimeUnixNano, attributes (string,
 * int, double and bool values) and status (code, message).
 *
 * A known field of the wrong type (a time that is not an integer, attributes that are not
 * an array, a key that is not a string) refuses the whole export, with the field's path.
 */
#ifndef WW_OTLP_JSON_H
#define WW_OTLP_JSON_H

#include <stddef.h>
#include <stdint.h>

/* Values a JSON export may hold (ww_json.h: each costs a node while it is read): ~40 a
 * span, so thousands of spans, and at most ~20 MB of nodes for a hostile body. */
#define WW_OTLP_JSON_MAX_VALUES 262144

/* Reads the NUL-terminated json. Returns 0 with the protobuf encoding in *out (malloc'd,
 * *out_len bytes); -EBADMSG with the reason in why (the JSON's line and column, or the
 * field's path); -ENOMEM. */
int ww_otlp_json_to_pb(const char *json, uint8_t **out, size_t *out_len, char *why, size_t why_cap);

/* The same for a metrics export (OTLP/HTTP POST /v1/metrics, application/json) into an
 * ExportMetricsServiceRequest (proto/otlp/otlp_metrics.proto). Carried:
 * resourceMetrics[].resource.attributes, .scopeMetrics[].metrics[] with name, unit and one of
 * exponentialHistogram {aggregationTemporality (number or name), dataPoints[]: attributes,
 * startTimeUnixNano, timeUnixNano, count, sum, scale, zeroCount, positive and negative
 * {offset, bucketCounts}, min, max, zeroThreshold} or histogram {aggregationTemporality,
 * dataPoints[]: attributes, times, count, sum}; a gauge, sum or summary is carried as a gauge
 * without points (a metric of another kind). Counts are unsigned 64-bit integers as strings
 * or numbers, read exactly; sum, min and max are optional (absent or null: not set). */
int ww_otlp_json_metrics_to_pb(const char *json, uint8_t **out, size_t *out_len, char *why,
                               size_t why_cap);

#endif
