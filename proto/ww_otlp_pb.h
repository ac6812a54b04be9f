/* ww_otlp_pb: what the OTLP trace and metrics decoders (ww_otlp_trace, ww_otlp_metrics)
 * share: a protobuf-c allocator that tells a failed allocation from bad bytes, and the
 * lookup of an attribute among a span's, a data point's or a resource's KeyValues.
 */
#ifndef WW_OTLP_PB_H
#define WW_OTLP_PB_H

#include "otlp/otlp_trace.pb-c.h"

#include <stdbool.h>
#include <stddef.h>

/* A ProtobufCAllocator whose allocator_data is a bool set to true when malloc fails:
 * protobuf-c answers NULL for bad bytes and for a failed allocation alike. */
#define WW_OTLP_PB_ALLOCATOR(oom_flag_p)                                                           \
    {                                                                                              \
        ww_otlp_pb_alloc, ww_otlp_pb_free, (oom_flag_p)                                            \
    }
void *ww_otlp_pb_alloc(void *oom_flag, size_t size);
void ww_otlp_pb_free(void *oom_flag, void *p);

/* The value of attribute key among attrs[0..n), or NULL (also for an empty key). */
const Ww__Otlp__V1__AnyValue *ww_otlp_pb_attr(Ww__Otlp__V1__KeyValue *const *attrs, size_t n,
                                              const char *key);

/* The attribute key as a clean UTF-8 string of 1 .. cap - 1 bytes copied into dst: 1; 0
 * when absent or not a string; -1 when empty, too long or not clean. */
int ww_otlp_pb_attr_text(Ww__Otlp__V1__KeyValue *const *attrs, size_t n, const char *key, char *dst,
                         size_t cap);

/* Writes the reason into why[0..cap) unless one is there already (the first is kept). */
void ww_otlp_pb_why(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
