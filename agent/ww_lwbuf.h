/* agent_batch: the latency-window part of one tick's Batch. Closed windows are converted
 * into protobuf LatencyWindow messages (sparse histograms) that stay valid until
 * ww_lwbuf_reset(); the buffer is reused tick after tick. */
#ifndef WW_LWBUF_H
#define WW_LWBUF_H

#include "ww_latency.h"
#include "ww_wire.h"

#include <stddef.h>

typedef Waferwatch__V1__LatencyWindow ww_latency_window_pb_t;
typedef Waferwatch__V1__Histogram ww_histogram_pb_t;

typedef struct {
    ww_latency_window_pb_t *w;
    ww_latency_window_pb_t **ptrs;
    ww_histogram_pb_t *h; /* 4 per window */
    void **scratch;       /* bucket arrays to free at reset, 2 per histogram */
    size_t n, cap;
    int failed; /* windows lost to out-of-memory since the last reset */
} ww_lwbuf_t;

void ww_lwbuf_init(ww_lwbuf_t *b);
void ww_lwbuf_fini(ww_lwbuf_t *b);
/* Frees this tick's bucket arrays; keeps the message arrays for the next tick. */
void ww_lwbuf_reset(ww_lwbuf_t *b);

/* Appends one closed window: start_ns is its grid start, duration_ns the part of it the
 * agent covered (the window's length when whole; less for a window sent at a stop or the
 * first one after a start, see ww_latency.h), sent as LatencyWindow.duration_ns.
 * Strings are borrowed and must outlive the next reset. Returns 0 or -ENOMEM (counted in
 * b->failed). */
int ww_lwbuf_add(ww_lwbuf_t *b, const char *node_id, const char *model, int64_t start_ns,
                 int64_t duration_ns, const ww_lat_window_t *w);

/* Points batch->latency_windows at the buffer's windows. */
void ww_lwbuf_attach(ww_lwbuf_t *b, ww_batch_t *batch);

#endif
